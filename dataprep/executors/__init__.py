"""Executors run a list of picklable tasks through a module-level function.

`Executor.run(fn, tasks)` is the whole interface (`executors.protocol`, which imports nothing of
ours), so stage code never needs to know whether it runs in-process, in a process pool, or on
Ray.
"""

from __future__ import annotations

from dataprep.executors.protocol import Executor

__all__ = ["DEFAULT_MAX_RETRIES", "EXECUTORS", "Executor", "make_executor"]

DEFAULT_MAX_RETRIES = 2  # a raised exception or a dead worker; user errors are never retried
EXECUTORS = ("local", "ray")


def make_executor(
    kind: str = "local",
    workers: int | None = None,
    address: str | None = None,
    cpus_per_task: float = 1.0,
    max_retries: int = DEFAULT_MAX_RETRIES,
) -> Executor:
    """`local`: this machine's cores; `ray`: a Ray cluster at `address`, or a local Ray.

    `address` and `cpus_per_task` only mean something to Ray; the local executor runs one task
    per worker process.
    """
    from dataprep.errors import DataprepError

    if max_retries < 0:
        raise DataprepError("--max-retries must be 0 or more")
    if workers is not None and workers < 1:
        raise DataprepError(f"--workers must be 1 or more (got {workers})")
    if kind == "local":
        if address:
            raise DataprepError("--address needs --executor ray")
        from dataprep.executors.local import LocalExecutor

        return LocalExecutor(workers=workers, max_retries=max_retries)
    if kind == "ray":
        from dataprep.executors.ray import RayExecutor

        return RayExecutor(
            workers=workers, address=address, cpus_per_task=cpus_per_task, max_retries=max_retries
        )
    raise DataprepError(f"unknown executor {kind!r}; use 'local' or 'ray'")
