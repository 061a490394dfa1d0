"""Executors run a list of picklable tasks through a module-level function.

`Executor.run(fn, tasks)` is the whole interface, so stage code never needs to know whether it
runs in-process, in a process pool, or (issue 8) on Ray.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    workers: int

    def run(
        self,
        fn: Callable[[T], R],
        tasks: Sequence[T],
        on_done: Callable[[int, R], None] | None = None,
    ) -> list[R]:
        """Run `fn` on every task; results come back in task order."""
        ...

    def close(self) -> None:
        """Release workers; the executor may not be used afterwards."""
        ...


def make_executor(kind: str = "local", workers: int | None = None, **options: Any) -> Executor:
    if kind == "local":
        from dataprep.executors.local import LocalExecutor

        return LocalExecutor(workers=workers)
    from dataprep.errors import DataprepError

    raise DataprepError(f"unknown executor {kind!r}; use 'local'")
