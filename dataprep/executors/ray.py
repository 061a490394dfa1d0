"""Run tasks as Ray tasks, on a cluster the user already runs or on a local Ray started here.

The stage's module-level task function is shipped as-is (cloudpickle by reference), so Ray
workers need dataprep importable (installed on every node) and the dataset paths must mean the
same on every node (shared storage such as s3://). Ray retries a task that raised or whose
worker died (`max_retries`); a `DataprepError` is a user error and is returned instead of
raised inside the task, so Ray never retries it and the driver re-raises it unchanged.

Losing a node is a fault of the cluster, not of the data: Ray reruns the tasks that were on it
(they count against `max_retries`); once those are spent, the stage stops with one sentence
and a rerun resumes, since every result is fetched and committed as soon as its task finishes
(a result kept only in the lost node's object store is never needed again). Progress ticks
are best-effort: their actor lives on the driver's node, and if it is gone anyway the stage
goes on without row counts. A cluster left with no node that can run a task is reported
after `node_wait_s` instead of waiting forever.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from dataprep import progress
from dataprep.errors import DataprepError, short_error

T = TypeVar("T")
R = TypeVar("R")

TICK_INTERVAL_S = 0.5  # a worker forwards progress at most this often (one actor call)
FINAL_DRAIN_S = 2.0  # a failing run waits this long at most for its last ticks


NODE_WAIT_S = 300.0  # how long a cluster may have no CPUs for a task (an autoscaler adds nodes)
# Ray's client proxy now and then fails to start the per-client server under load (a known Ray
# flake); a new connection a moment later works, so ray:// connects are tried this many times.
CLIENT_ATTEMPTS = 3
CLIENT_RETRY_WAIT_S = 2.0

# Why a task that Ray could not finish was lost, by error type (the rest say their type name).
_LOST_BECAUSE = {
    "NodeDiedError": "its Ray node died",
    "LocalRayletDiedError": "its Ray node died",
    "WorkerCrashedError": "its Ray worker process died",
    "OutOfMemoryError": "Ray killed its worker for lack of memory",
    "ObjectLostError": "its result was lost with the node that held it",
    "OwnerDiedError": "its result was lost with the node that held it",
    "ObjectReconstructionFailedError": "its result was lost with the node that held it",
}


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
        task's result reaches the driver, whose last drain would otherwise race it. A lost
        actor loses only progress, never the task."""
        if self.pending and self.actor is not None:
            import ray

            try:
                sent = self.actor.add.remote(self.pending)
                if wait:
                    ray.get(sent)
            except ray.exceptions.RayError:
                self.actor = None
        self.pending = {}
        self.last = time.monotonic()

    def failed(self, max_retries: int) -> None:
        """This attempt raised: tick it as a failure, and as a retry while Ray has attempts
        left for the task (the actor counts failures per task id, which retries keep)."""
        import ray

        if self.actor is None:
            return
        try:
            task_id = ray.get_runtime_context().get_task_id()
            failures = ray.get(self.actor.failed.remote(task_id))
        except ray.exceptions.RayError:
            self.actor = None
            return
        outcome = "task_retries" if failures <= max_retries else "tasks_failed"
        self({"task_failures": 1, outcome: 1})
        self.flush(wait=True)


def _call(fn: Callable[[Any], Any], task: Any, ticks: Any, max_retries: int = 0) -> Any:
    """The Ray task body: forward progress, run the stage's function, return user errors."""
    forwarder = _TickForwarder(ticks) if ticks is not None else None
    previous = progress.install(forwarder)
    try:
        return fn(task)
    except DataprepError as exc:
        return _UserError(str(exc), type(exc))
    except Exception:
        if forwarder is not None:
            forwarder.failed(max_retries)
        raise
    finally:
        progress.install(previous)
        if forwarder is not None:
            forwarder.flush(wait=True)


def _warm_up() -> None:
    """A no-op task: makes Ray start a worker process early, with the libraries every task
    needs already imported (no dataprep module: executors sit below the stages)."""
    import pyarrow.parquet  # noqa: F401
    import pydantic  # noqa: F401


class _Ticks:
    """A tiny actor that collects progress ticks until the driver drains them."""

    def __init__(self) -> None:
        self.counts: list[dict[str, int]] = []
        self.failures: dict[str, int] = {}

    def failed(self, task_id: str) -> int:
        """How many attempts of this task have raised, this one included."""
        self.failures[task_id] = self.failures.get(task_id, 0) + 1
        return self.failures[task_id]

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
        node_wait_s: float = NODE_WAIT_S,
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
                    _connect(ray, address, quiet)
                except ConnectionError as exc:
                    why = short_error(exc, last=True)  # it may end the server's whole traceback
                    raise DataprepError(
                        f"cannot reach the Ray cluster at {address!r} ({why}); "
                        "start it with "
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
        self.node_wait_s = node_wait_s
        self._remote = ray.remote(_call).options(
            num_cpus=cpus_per_task, max_retries=max_retries, retry_exceptions=True
        )
        self._ticks: Any = ray.remote(num_cpus=0)(_Ticks).options(**_on_this_node(ray)).remote()
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
        starved = _Starved(ray, self.cpus_per_task, self.node_wait_s)
        try:
            while next_task < len(tasks) or in_flight:
                while next_task < len(tasks) and len(in_flight) < limit:
                    ref = self._remote.remote(fn, tasks[next_task], self._ticks, self.max_retries)
                    in_flight[ref] = next_task
                    next_task += 1
                done, _ = ray.wait(list(in_flight), num_returns=1, timeout=TICK_INTERVAL_S)
                if time.monotonic() - self._drained >= TICK_INTERVAL_S:
                    self._forward_ticks()
                if not done:
                    starved.check()
                for ref in done:  # fetched now: a result must not outlive its node's store
                    index = in_flight.pop(ref)
                    result = self._fetch(ref, tasks[index], index)
                    if isinstance(result, _UserError):
                        progress.tick(task_failures=1, tasks_failed=1)
                        raise result.kind(result.message)
                    results[index] = result
                    if on_done:
                        on_done(index, result)
        except BaseException:
            for ref in in_flight:
                ray.cancel(ref, force=True)
            if self._ticks is not None:  # the failed attempts' ticks, for the metrics
                self._forward_ticks(timeout=FINAL_DRAIN_S)
            raise
        self._forward_ticks()
        return results

    def _fetch(self, ref: Any, task: Any, index: int) -> Any:
        """The task's result; raises its own error once Ray's retries are spent, or one
        sentence when the cluster lost it (a node, a worker process or a result object)."""
        ray = self._ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError:
            raise  # the stage's own exception (as its own type): a bug, with its traceback
        except ray.exceptions.TaskCancelledError:
            raise
        except ray.exceptions.RayError as exc:
            progress.tick(task_failures=1, tasks_failed=1)  # its worker or node is gone: unseen
            names = [cls.__name__ for cls in type(exc).__mro__]
            reason = next((_LOST_BECAUSE[n] for n in names if n in _LOST_BECAUSE), names[0])
            tries = self.max_retries + 1
            raise DataprepError(
                f"{_describe(task, index)} did not finish in {tries} attempt"
                f"{'s' * (tries > 1)} (max retries: {self.max_retries}): {reason}; finished "
                "tasks are kept, so rerunning the same command resumes"
            ) from None

    def _forward_ticks(self, timeout: float | None = None) -> None:
        self._drained = time.monotonic()
        if self._ticks is None:
            return
        try:
            batches = self._ray.get(self._ticks.drain.remote(), timeout=timeout)
        except self._ray.exceptions.RayError:  # the actor is gone: go on without row counts
            self._ticks = None
            return
        for counts in batches:
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


def _on_this_node(ray: Any) -> dict[str, Any]:
    """Scheduling options that keep an actor on the driver's node, whose loss ends the run
    anyway (where Ray cannot say which node that is, Ray chooses)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    try:
        node = ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 (any failure just means: no preference)
        return {}
    if not node:
        return {}
    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node, soft=False)}


def _describe(task: Any, index: int) -> str:
    phase, number = getattr(task, "phase", None), getattr(task, "index", None)
    return f"task {phase}-{number}" if phase is not None and number is not None else f"task {index}"


class _Starved:
    """Notices a cluster with fewer CPUs than one task needs (its nodes lost) for too long."""

    def __init__(self, ray: Any, cpus_per_task: float, wait_s: float):
        self.ray = ray
        self.cpus_per_task = cpus_per_task
        self.wait_s = wait_s
        self.since: float | None = None
        self.checked = 0.0

    def check(self) -> None:
        now = time.monotonic()
        if now - self.checked < 1.0:
            return
        self.checked = now
        cpus = self.ray.cluster_resources().get("CPU", 0.0)
        if cpus >= self.cpus_per_task:
            self.since = None
            return
        self.since = self.since or now
        if now - self.since >= self.wait_s:
            raise DataprepError(
                f"the Ray cluster has had only {cpus:g} CPUs for {self.wait_s:g} s, fewer than "
                f"a task needs ({self.cpus_per_task:g}), so its nodes are gone; finished tasks "
                "are kept, and rerunning the same command once nodes are back resumes"
            )


# Ray Client's proxy failing to start, or to find, the server it spawns for one client: a
# known flake under load that a fresh connection does not hit again.
_CLIENT_SERVER_FLAKES = ("Starting Ray client server failed", "psutil.ZombieProcess")


def _connect(ray: Any, address: str, options: dict[str, Any]) -> None:
    """`ray.init(address)`, trying a Ray Client address again when its proxy's server failed."""
    for attempt in range(1, CLIENT_ATTEMPTS + 1):
        try:
            ray.init(address=address, **options)
            return
        except ConnectionError as exc:
            transient = any(flake in str(exc) for flake in _CLIENT_SERVER_FLAKES)
            if not (address.startswith("ray://") and transient and attempt < CLIENT_ATTEMPTS):
                raise
            time.sleep(CLIENT_RETRY_WAIT_S)
