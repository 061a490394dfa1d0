"""Run an iterator one step ahead on a background thread.

Arrow's parsers and Parquet writer release the GIL, so parsing block N+1 while block N is
compressed and written keeps two cores busy from a single process.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


def readahead(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Yield `items` in order while a thread produces up to `depth` of them in advance.

    An exception in the producer is re-raised in the consumer; closing the consumer early
    stops the producer at its next step.
    """
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                slots.put((item, None))
        except BaseException as exc:  # handed to the consumer, raised there
            slots.put((_DONE, exc))
            return
        slots.put((_DONE, None))

    thread = threading.Thread(target=produce, daemon=True, name="readahead")
    thread.start()
    try:
        while True:
            item, error = slots.get()
            if item is _DONE:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                slots.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.01)
