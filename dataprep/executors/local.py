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
    """`workers=1` runs tasks inline (easy to debug); more uses spawned worker processes.

    The pool lives until `close()`, so a stage's phases and a recipe's stages reuse the same
    warm workers instead of paying the interpreter + pyarrow start-up per phase. Spawn rather
    than fork: the driver runs threads (progress, prefetch) that fork would copy mid-lock.
    """

    def __init__(self, workers: int | None = None):
        self.workers = max(1, workers or default_workers())
        self._pool: ProcessPoolExecutor | None = None
        self._queue: Any = None
        self._forward: threading.Thread | None = None

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

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            ctx = mp.get_context("spawn")
            self._queue = ctx.Queue()
            self._forward = threading.Thread(
                target=_forward_ticks, args=(self._queue,), daemon=True
            )
            self._forward.start()
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=ctx,
                initializer=_install_queue_sink,
                initargs=(self._queue,),
            )
        return self._pool

    def _run_pool(
        self,
        fn: Callable[[T], R],
        tasks: Sequence[T],
        on_done: Callable[[int, R], None] | None,
    ) -> list[R]:
        pool = self._ensure_pool()
        results: list[Any] = [None] * len(tasks)
        pending = {pool.submit(fn, task): i for i, task in enumerate(tasks)}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    index = pending.pop(future)
                    results[index] = future.result()  # re-raises the task's exception
                    if on_done:
                        on_done(index, results[index])
        except BaseException:
            self.close()  # a failed or broken pool is not reused
            raise
        return results

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._queue.put(None)
            if self._forward is not None:
                self._forward.join(timeout=5)
        self._pool = self._queue = self._forward = None

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _forward_ticks(queue: Any) -> None:
    while (counts := queue.get()) is not None:
        progress.tick(**counts)
