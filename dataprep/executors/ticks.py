"""The pool's progress ticks on the driver's side: a thread forwards what workers put on the
tick queue to this process's sink, and a run waits until its finished tasks' last ticks did
arrive (`executors.local`)."""

from __future__ import annotations

import multiprocessing.connection as mp_connection
import threading
from queue import Empty
from typing import Any

from dataprep import progress

TASK_END = "task-end"  # sent on the tick queue after a task's last tick (see Arrivals)
END_WAIT_S = 5.0  # how long a run waits for its tasks' last ticks (a dead worker loses them)
POLL_SECONDS = 0.25  # the forwarder's poll where it cannot sleep on the queue's pipe


class Arrivals:
    """Counts the tasks whose last tick the driver has forwarded, so a run returns only once
    every tick of its finished tasks reached the sink. A worker's queue writes go through a
    feeder thread and its result through another pipe, so without this the last rows of a
    phase could arrive after it ended (or after the stage removed its sink): progress bars
    and metrics would miss them."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._expected = 0
        self._seen = 0

    def expect(self) -> None:
        with self._cond:
            self._expected += 1

    def arrived(self) -> None:
        with self._cond:
            self._seen += 1
            self._cond.notify_all()

    def wait(self, timeout: float = END_WAIT_S) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._seen >= self._expected, timeout)


def forward_ticks(queue: Any, arrivals: Arrivals, stop: threading.Event, wake: int) -> None:
    """Forward the workers' ticks until `stop` is set and the queue is drained. It sleeps on
    the queue's pipe and on `wake` (written by `close`) together, so a pool's close does not
    wait out a poll interval (0.25 s on every `-w 2` command); POLL_SECONDS is only the
    fallback where the queue has no readable end to wait on."""
    reader = getattr(queue, "_reader", None)  # multiprocessing.Queue's receiving Connection
    while True:
        if reader is not None and not stop.is_set():
            mp_connection.wait([reader, wake], POLL_SECONDS)
            timeout = 0.0
        else:
            timeout = 0.0 if stop.is_set() else POLL_SECONDS
        try:
            counts = queue.get(timeout=timeout) if timeout else queue.get_nowait()
        except Empty:
            if stop.is_set():
                return
            continue
        if isinstance(counts, str):  # TASK_END: every tick of that task is forwarded
            arrivals.arrived()
            continue
        progress.tick(**counts)
