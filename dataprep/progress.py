"""Progress that works the same in-process, in a process pool, or nowhere.

Task code calls `tick(rows=..., bytes=...)` and never knows who listens: the driver installs a
sink (a rich bar), a process-pool worker forwards ticks over a queue, and a Ray task or a quiet
run drops them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

Sink = Callable[[dict[str, int]], None]

_sink: Sink | None = None


def install(sink: Sink | None) -> Sink | None:
    """Set this process's sink; returns the previous one so callers can restore it."""
    global _sink
    previous, _sink = _sink, sink
    return previous


def tick(**counts: int) -> None:
    if _sink is not None:
        _sink(counts)


class Reporter:
    """The driver-side view: one rich progress bar per stage, or silence with `quiet`."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self._progress: Any = None
        self._task: Any = None
        self.rows = 0
        self._started = 0.0

    def start(self, description: str, total_tasks: int) -> None:
        self.rows = 0
        self._started = time.perf_counter()
        if self.quiet:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("tasks · {task.fields[rows]:,} rows · {task.fields[rate]:,.0f} rows/s"),
            TimeElapsedColumn(),
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task(description, total=total_tasks, rows=0, rate=0.0)

    def on_tick(self, counts: dict[str, int]) -> None:
        self.rows += counts.get("rows", 0)
        if self._progress is not None:
            elapsed = max(time.perf_counter() - self._started, 1e-6)
            self._progress.update(self._task, rows=self.rows, rate=self.rows / elapsed)

    def task_done(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
