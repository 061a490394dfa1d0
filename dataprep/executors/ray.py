"""Run tasks as Ray tasks, on a cluster the user already runs or on a local Ray started here.

The stage's module-level task function is shipped as-is (cloudpickle by reference), so Ray
workers need dataprep importable (installed on every node) and the dataset paths must mean the
same on every node (shared storage such as s3://). Ray retries a task that raised or whose
worker died (`max_retries`); a `DataprepError` is a user error and is returned instead of
raised inside the task, so Ray never retries it and the driver re-raises it unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from dataprep import progress
from dataprep.errors import DataprepError

T = TypeVar("T")
R = TypeVar("R")

TICK_INTERVAL_S = 0.5  # a worker forwards progress at most this often (one actor call)


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise DataprepError(
            "--executor ray needs Ray on this machine: pip install 'dataprep[ray]'"
        ) from None
    return ray


class _UserError:
    """A DataprepError raised in a task, carried back as a value so Ray does not retry it."""

    def __init__(self, message: str, kind: type[DataprepError]):
        self.message = message
        self.kind = kind


class _TickForwarder:
    """Worker-side progress sink: sums ticks and sends them to the driver's actor in batches."""

    def __init__(self, actor: Any):
        self.actor = actor
        self.pending: dict[str, int] = {}
        self.last = time.monotonic()

    def __call__(self, counts: dict[str, int]) -> None:
        for key, value in counts.items():
            self.pending[key] = self.pending.get(key, 0) + value
        if time.monotonic() - self.last >= TICK_INTERVAL_S:
            self.flush()

    def flush(self, wait: bool = False) -> None:
        """Send what is pending; `wait` (at task end) makes sure the actor has it before the
        task's result reaches the driver, whose last drain would otherwise race it."""
        if self.pending:
            sent = self.actor.add.remote(self.pending)
            self.pending = {}
            if wait:
                import ray

                ray.get(sent)
        self.last = time.monotonic()


def _call(fn: Callable[[Any], Any], task: Any, ticks: Any) -> Any:
    """The Ray task body: forward progress, run the stage's function, return user errors."""
    forwarder = _TickForwarder(ticks) if ticks is not None else None
    previous = progress.install(forwarder)
    try:
        return fn(task)
    except DataprepError as exc:
        return _UserError(str(exc), type(exc))
    finally:
        progress.install(previous)
        if forwarder is not None:
            forwarder.flush(wait=True)


def _warm_up() -> None:
    """A no-op task: makes Ray start a worker process (and import dataprep there) early."""
    import dataprep.stage  # noqa: F401  (the module every task function needs)


class _Ticks:
    """A tiny actor that collects progress ticks until the driver drains them."""

    def __init__(self) -> None:
        self.counts: list[dict[str, int]] = []

    def add(self, counts: dict[str, int]) -> None:
        self.counts.append(counts)

    def drain(self) -> list[dict[str, int]]:
        counts, self.counts = self.counts, []
        return counts


class RayExecutor:
    """Connect to `address` ("auto", "ray://host:10001", "host:6379") or start a local Ray.

    `workers` is how many tasks may run at once (the cluster's CPUs / `cpus_per_task` when
    connecting); at most twice that many are submitted at a time, so a stage with 100k tasks
    does not put all their arguments in the object store up front. Row ticks from the tasks
    reach the driver's progress bar every TICK_INTERVAL_S through a small actor (the bar's task
    count advances as each task finishes).
    """

    def __init__(
        self,
        workers: int | None = None,
        address: str | None = None,
        cpus_per_task: float = 1.0,
        max_retries: int = 2,
    ):
        ray = import_ray()
        if cpus_per_task <= 0:
            raise DataprepError("--cpus-per-task must be greater than 0")
        self._ray = ray
        self._owns_ray = False
        if not ray.is_initialized():
            quiet = {"log_to_driver": False, "logging_level": "ERROR"}
            if address:
                try:
                    ray.init(address=address, **quiet)
                except ConnectionError as exc:
                    raise DataprepError(
                        f"cannot reach the Ray cluster at {address!r} ({exc}); start it with "
                        "`ray start --head` or pass the right --address"
                    ) from None
                except ValueError as exc:  # e.g. ray:// without the client extra installed
                    raise DataprepError(f"cannot use Ray at {address!r}: {exc}") from None
            else:
                from dataprep.executors.local import default_workers

                num_cpus = workers or default_workers()
                ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **quiet)
                self._owns_ray = True
        cpus = ray.cluster_resources().get("CPU", 0.0)
        if cpus < cpus_per_task:
            self.close()
            raise DataprepError(
                f"--cpus-per-task {cpus_per_task:g} is more than the Ray cluster's {cpus:g} CPUs; "
                "no task could ever be scheduled"
            )
        self.workers = max(1, workers or int(cpus // cpus_per_task))
        self.cpus_per_task = cpus_per_task
        self.max_retries = max_retries
        self._remote = ray.remote(_call).options(
            num_cpus=cpus_per_task, max_retries=max_retries, retry_exceptions=True
        )
        self._ticks = ray.remote(num_cpus=0)(_Ticks).remote()
        # Ray starts a new job's worker processes lazily (~1 s); start them now, while the
        # actor starts and the stage plans, instead of when its first tasks arrive.
        warm = ray.remote(_warm_up).options(num_cpus=cpus_per_task)
        self._warming = [warm.remote() for _ in range(min(self.workers, 256))]
        self._drained = time.monotonic()
        try:  # the actor lives in a Ray worker: fail now, in one line, if it cannot import us
            ray.get(self._ticks.drain.remote())
        except ray.exceptions.RayError as exc:
            self.close()
            raise DataprepError(
                "a Ray worker could not start dataprep's progress actor (is dataprep installed "
                f"on every node? pip install 'dataprep[ray]'): {str(exc).strip().splitlines()[-1]}"
            ) from None

    def run(
        self,
        fn: Callable[[T], R],
        tasks: Sequence[T],
        on_done: Callable[[int, R], None] | None = None,
    ) -> list[R]:
        ray = self._ray
        results: list[Any] = [None] * len(tasks)
        in_flight: dict[Any, int] = {}
        next_task = 0
        limit = 2 * self.workers
        try:
            while next_task < len(tasks) or in_flight:
                while next_task < len(tasks) and len(in_flight) < limit:
                    ref = self._remote.remote(fn, tasks[next_task], self._ticks)
                    in_flight[ref] = next_task
                    next_task += 1
                done, _ = ray.wait(list(in_flight), num_returns=1, timeout=TICK_INTERVAL_S)
                if time.monotonic() - self._drained >= TICK_INTERVAL_S:
                    self._forward_ticks()
                for ref in done:
                    index = in_flight.pop(ref)
                    result = ray.get(ref)  # raises the task's error once retries are spent
                    if isinstance(result, _UserError):
                        raise result.kind(result.message)
                    results[index] = result
                    if on_done:
                        on_done(index, result)
        except BaseException:
            for ref in in_flight:
                ray.cancel(ref, force=True)
            raise
        self._forward_ticks()
        return results

    def _forward_ticks(self) -> None:
        self._drained = time.monotonic()
        for counts in self._ray.get(self._ticks.drain.remote()):
            progress.tick(**counts)

    def close(self) -> None:
        if self._ray is None:
            return
        if self._owns_ray:
            self._ray.shutdown()
        elif getattr(self, "_ticks", None) is not None:
            self._ray.kill(self._ticks)
        self._ray = None

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
