"""Run tasks on this machine: in-process for one worker, else a spawn-based process pool."""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, TypeVar

from dataprep import progress

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _install_queue_sink(queue: Any) -> None:
    progress.install(queue.put)


class LocalExecutor:
    """`workers=1` runs tasks inline (easy to debug); more uses fresh spawned processes.

    Spawn rather than fork: the driver runs threads (progress, prefetch) that fork would copy
    mid-lock.
    """

    def __init__(self, workers: int | None = None):
        self.workers = max(1, workers or default_workers())

    def run(
        self,
        fn: Callable[[T], R],
        tasks: Sequence[T],
        on_done: Callable[[int, R], None] | None = None,
    ) -> list[R]:
        if self.workers == 1 or len(tasks) <= 1:
            results = []
            for i, task in enumerate(tasks):
                results.append(fn(task))
                if on_done:
                    on_done(i, results[-1])
            return results
        return self._run_pool(fn, tasks, on_done)

    def _run_pool(
        self,
        fn: Callable[[T], R],
        tasks: Sequence[T],
        on_done: Callable[[int, R], None] | None,
    ) -> list[R]:
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        forward = threading.Thread(target=_forward_ticks, args=(queue,), daemon=True)
        forward.start()
        results: list[Any] = [None] * len(tasks)
        pool = ProcessPoolExecutor(
            max_workers=min(self.workers, len(tasks)),
            mp_context=ctx,
            initializer=_install_queue_sink,
            initargs=(queue,),
        )
        try:
            pending = {pool.submit(fn, task): i for i, task in enumerate(tasks)}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    index = pending.pop(future)
                    results[index] = future.result()  # re-raises the task's exception
                    if on_done:
                        on_done(index, results[index])
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            queue.put(None)
            forward.join(timeout=5)
        return results


def _forward_ticks(queue: Any) -> None:
    while (counts := queue.get()) is not None:
        progress.tick(**counts)
