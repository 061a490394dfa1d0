"""The `Executor` protocol: the one thing stage code knows about where its tasks run.

Imports nothing of dataprep, so `dataprep.stage` can depend on it while the executors
themselves (local processes, Ray) depend on whatever they need, with no import cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    """Runs a picklable task list through a module-level function, in-process or not."""

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

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc: object) -> None: ...
