"""Progress that works the same in-process, in a process pool, or nowhere.

Task code calls `tick(rows=..., bytes=...)` and never knows who listens: the driver installs a
sink (a rich bar), a process-pool worker forwards ticks over a queue, and a Ray task or a quiet
run drops them.
"""

from __future__ import annotations

import os
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


def _eta(done: int, total: int, elapsed: float) -> str:
    """Time left at the rate so far, as H:MM:SS; '?' before the first task finishes."""
    if done <= 0 or total <= done:
        return "?" if done <= 0 else "0:00:00"
    left = int(elapsed * (total - done) / done)
    return f"{left // 3600}:{left % 3600 // 60:02d}:{left % 60:02d}"


class Reporter:
    """The driver-side view on stderr: a rich progress bar with an ETA per stage when stderr is
    a terminal; otherwise (CI logs, batch jobs) no live bar, whose redraws would leave blank
    lines and control codes, but one plain line every `interval` seconds
    (DATAPREP_PROGRESS_SECONDS, default 30); silence with `quiet`."""

    def __init__(self, quiet: bool = False, interval: float | None = None, console: Any = None):
        self.quiet = quiet
        self._progress: Any = None
        self._task: Any = None
        self.rows = 0
        self._started = 0.0
        self._console = console
        if interval is None:
            interval = float(os.environ.get("DATAPREP_PROGRESS_SECONDS", "30") or 30)
        self._interval = interval
        self._plain: dict[str, Any] | None = None

    def start(self, description: str, total_tasks: int) -> None:
        self.rows = 0
        self._started = time.perf_counter()
        if self.quiet:
            return
        from rich.console import Console

        console = self._console or Console(stderr=True)
        if not console.is_terminal:
            self._plain = {"console": console, "label": description, "total": total_tasks}
            self._plain.update(done=0, said=self._started)
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("tasks · {task.fields[rows]:,} rows · {task.fields[rate]:,.0f} rows/s ·"),
            TimeElapsedColumn(),
            TextColumn("· ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task(description, total=total_tasks, rows=0, rate=0.0)

    def on_tick(self, counts: dict[str, int]) -> None:
        self.rows += counts.get("rows", 0)
        if self._progress is not None:
            elapsed = max(time.perf_counter() - self._started, 1e-6)
            self._progress.update(self._task, rows=self.rows, rate=self.rows / elapsed)
        elif self._plain is not None:
            self._say()

    def task_done(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)
        elif self._plain is not None:
            self._plain["done"] += 1
            self._say()

    def _say(self) -> None:
        """A plain progress line for logs, at most one per interval."""
        plain = self._plain
        assert plain is not None
        now = time.perf_counter()
        if now - plain["said"] < self._interval:
            return
        plain["said"] = now
        elapsed = now - self._started
        done, total = plain["done"], plain["total"]
        plain["console"].print(
            f"{plain['label']}: {done:,}/{total:,} tasks, {self.rows:,} rows, "
            f"{self.rows / max(elapsed, 1e-6):,.0f} rows/s, ETA {_eta(done, total, elapsed)}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )

    def stop(self) -> None:
        self._plain = None
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
