"""Run tasks on this machine: in-process for one worker, else a pool of worker processes
forked from a preloaded fork server (`executors.forkserver`; spawned where there is none)."""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import multiprocessing.connection as mp_connection
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import resource_tracker
from typing import Any, TypeVar

from dataprep import progress
from dataprep.errors import DataprepError
from dataprep.executors import forkserver
from dataprep.executors.ticks import TASK_END, Arrivals, forward_ticks

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


PR_SET_PDEATHSIG = 1  # linux/prctl.h
PR_SET_NAME = 15
WATCH_SECONDS = 0.25
# Below this much stage input, the default worker count runs tasks in-process: a pool costs a
# fork server's imports (~0.5 s of CPU) and its forks, more than such a stage's whole work.
INLINE_BELOW_BYTES = 4 << 20

_worker_queue: Any = None  # the pool worker's tick queue


def _init_worker(queue: Any, driver: int, pdeathsig: bool, forked: bool) -> None:
    """Each pool worker: forward progress ticks, and die with the driver that started it.

    Ctrl-C reaches the whole process group; the driver handles it (and ends the workers), so a
    worker ignores it rather than print its own KeyboardInterrupt traceback. A worker `forked`
    by the fork server watches both: the server is its parent (single-threaded, so the kernel's
    parent-death signal is safe), the driver its multiprocessing parent.
    """
    global _worker_queue
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):  # what ps and top show (a fork keeps its server's name)
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(PR_SET_NAME, b"dataprep-worker", 0, 0, 0)
    parent = os.getppid() if forked else driver
    pdeathsig = pdeathsig or forked
    _worker_queue = queue
    progress.install(queue.put)
    watched = mp.parent_process()  # the driver, whichever process forked us
    die_with_parent(parent, pdeathsig, sentinel=None if watched is None else watched.sentinel)


def _ready() -> None:
    """A no-op task: submitted to start the pool's workers ahead of the stage's tasks."""


def _start_workers(pool: ProcessPoolExecutor, workers: int) -> None:
    """Start the pool's `workers` (each submit starts one while none idles); a pool closed
    meanwhile (a stage of one task) refuses the rest."""
    with contextlib.suppress(RuntimeError, BrokenProcessPool):
        for _ in range(workers):
            pool.submit(_ready)


def _run_marked(fn: Callable[[T], R], task: T) -> R:
    """A pool task: `fn(task)`, then the end mark behind its ticks on the same queue."""
    result = fn(task)
    if _worker_queue is not None:
        _worker_queue.put(TASK_END)
    return result


@contextlib.contextmanager
def _ctrl_c_held() -> Iterator[None]:
    """Hold off SIGINT in this thread while it spawns workers: a child inherits the blocked
    signal, so a Ctrl-C during its start-up (before `_init_worker`) cannot interrupt it. A
    Ctrl-C meanwhile reaches the driver as soon as the block is lifted. multiprocessing's
    resource tracker unblocks SIGINT when it starts, so it is started before the block."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    resource_tracker.ensure_running()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def die_with_parent(parent: int, pdeathsig: bool = False, sentinel: int | None = None) -> None:
    """End this process (os._exit) as soon as `parent` is gone, so a SIGKILLed driver leaves
    no orphaned workers holding memory.

    A daemon thread polls getppid(): it changes (to 1 or a subreaper) when the parent
    dies, whatever thread of the parent started us; it also ends us when `sentinel` (the
    driver's end of multiprocessing's parent pipe) says the driver is gone, for a worker whose
    parent is the fork server. On Linux, with `pdeathsig`, the kernel also sends SIGKILL at
    once (even while this process holds the GIL in C code); that is only safe when the
    parent's main thread spawned us, since the signal fires when that *thread* exits.
    """
    if pdeathsig and sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # no prctl: the watchdog below still ends us
    if os.getppid() != parent:  # the parent died before we could watch it
        os._exit(1)

    def watched() -> None:
        while os.getppid() == parent:
            if sentinel is None:
                time.sleep(WATCH_SECONDS)
            elif mp_connection.wait([sentinel], WATCH_SECONDS):
                break
        os._exit(1)

    threading.Thread(target=watched, daemon=True, name="die-with-parent").start()


class LocalExecutor:
    """`workers=1` runs tasks inline (easy to debug); more uses worker processes.

    With the default worker count (`workers=None`), a stage whose input is known to be small
    (`expect_input`, told by the runner for the stages shipped with dataprep, not plugins: a
    task that kills its process there ends the command) runs in-process too: starting workers
    would cost more than the work. An explicit count is a request for a pool, however small.

    The pool lives until `close()`, so a stage's phases and a recipe's stages reuse the same
    warm workers; workers are forks of one fork server that imported pyarrow, pandas and the
    stage's modules once (`executors.forkserver`), so a pool starts in milliseconds instead of
    an interpreter + imports per worker. Never a fork of the driver itself: it runs threads
    (progress, prefetch) that fork would copy mid-lock.

    A task that raises is resubmitted up to `max_retries` times (a `DataprepError` is the
    user's to fix and is raised at once). A worker killed mid-task breaks the whole pool; the
    pool is rebuilt and the unfinished tasks resubmitted. The pool cannot say which task died,
    so the crash counts as an attempt of every task that was in flight (at most 2 x workers).

    Workers die with the driver (see `die_with_parent`): a killed `dataprep` leaves no
    orphans. A pool belongs to the thread that made it, since workers are spawned lazily by
    the submitting thread and a parent-death signal is tied to that thread.
    """

    def __init__(
        self,
        workers: int | None = None,
        max_retries: int = 2,
        inline_below: int = INLINE_BELOW_BYTES,
    ):
        self.workers = max(1, workers or default_workers())
        self.inline_below = inline_below if workers is None else 0  # see expect_input
        self._input_bytes: int | None = None
        self.max_retries = max(0, max_retries)
        self._pool: ProcessPoolExecutor | None = None
        self._queue: Any = None
        self._forward: threading.Thread | None = None
        self._stop = threading.Event()  # ends the tick forwarder (see close)
        self._wake: tuple[int, int] | None = None  # a pipe: close wakes the forwarder with it
        self._arrivals = Arrivals()
        self._owner: int | None = None  # thread that made (and spawns workers for) the pool
        self._forked = False  # the pool's workers are forks of the fork server
        self._started_in: tuple[str, dict[str, str]] | None = None  # the pool's cwd and env
        self._ahead: threading.Thread | None = None  # starts the workers early (expect_input)

    def expect_input(self, size: int | None) -> None:
        """The input bytes of the stage about to run (None: unknown, or the stage is over).
        Below `inline_below` its tasks run in-process; unknown sizes get the pool.

        A known size that will get a pool starts its workers now, while the stage plans
        (reads footers, splits inputs): their start (a fork each, ~10-40 ms) then overlaps
        that work instead of delaying the first task. Only with the command's forked server
        (`forkserver.ready_now`; a stage of one task must not wait for a fresh one), by a
        helper thread: the server is the workers' parent, no thread of ours is tied to them."""
        self._input_bytes = size
        if size is None or size < self.inline_below or self.workers == 1:
            return
        self._refresh()
        if not self._may_spawn() or not forkserver.ready_now():
            return
        with _ctrl_c_held():
            pool = self._ensure_pool()
            if self._forked and forkserver.ready_now():
                self._ahead = threading.Thread(
                    target=_start_workers, args=(pool, self.workers), daemon=True
                )
                self._ahead.start()

    def run(
        self,
        fn: Callable[[T], R],
        tasks: Sequence[T],
        on_done: Callable[[int, R], None] | None = None,
    ) -> list[R]:
        tiny = self._input_bytes is not None and self._input_bytes < self.inline_below
        if self.workers == 1 or len(tasks) <= 1 or tiny:
            results = []
            for i, task in enumerate(tasks):
                results.append(self._run_inline(fn, task))
                if on_done:
                    on_done(i, results[-1])
            return results
        return self._run_pool(fn, tasks, on_done)

    def _run_inline(self, fn: Callable[[T], R], task: T) -> R:
        for _ in range(self.max_retries):
            try:
                return fn(task)
            except (DataprepError, ModuleNotFoundError):  # the same on every attempt
                progress.tick(task_failures=1, tasks_failed=1)
                raise
            except Exception:
                progress.tick(task_failures=1, task_retries=1)
                continue  # retried; the last attempt below raises whatever it raises
        try:
            return fn(task)
        except Exception:
            progress.tick(task_failures=1, tasks_failed=1)
            raise

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is not None and self._owner != threading.get_ident():
            self.close()
        if self._pool is None:
            self._owner = threading.get_ident()
            main = threading.current_thread() is threading.main_thread()
            ctx = mp.get_context("forkserver" if forkserver.available() else "spawn")
            forked = self._forked = ctx.get_start_method() == "forkserver"
            if forked:
                forkserver.start()  # preloads what this driver imported for the stage
            self._queue = ctx.Queue()
            self._arrivals = Arrivals()
            self._stop = threading.Event()
            self._wake = os.pipe()
            self._forward = threading.Thread(
                target=forward_ticks,
                args=(self._queue, self._arrivals, self._stop, self._wake[0]),
                daemon=True,
            )
            self._forward.start()
            self._started_in = (os.getcwd(), dict(os.environ))
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=ctx,
                initializer=_init_worker,
                initargs=(self._queue, os.getpid(), main, forked),
            )
        return self._pool

    def _refresh(self) -> None:
        """Close a warm pool whose workers started in another cwd or environment (a caller's
        chdir, audit log or credentials between two runs): a worker takes both once, at its
        start. Checked when a run starts, never mid-run."""
        if self._pool is not None and self._started_in != (os.getcwd(), dict(os.environ)):
            self.close()

    def _may_spawn(self) -> bool:
        """Whether the next submission can start a worker (no pool yet, one of another
        thread, or fewer workers than asked): only then is Ctrl-C held around it."""
        if self._pool is None or self._owner != threading.get_ident():
            return True
        processes = getattr(self._pool, "_processes", None)
        return processes is None or len(processes) < self.workers

    def _run_pool(
        self,
        fn: Callable[[T], R],
        tasks: Sequence[T],
        on_done: Callable[[int, R], None] | None,
    ) -> list[R]:
        self._refresh()
        results: list[Any] = [None] * len(tasks)
        attempts = [0] * len(tasks)
        queue = list(range(len(tasks) - 1, -1, -1))  # popped from the end: task order
        pending: dict[Future[Any], int] = {}
        limit = 2 * self.workers  # bounded, so a crash is charged to few tasks
        try:
            while queue or pending:
                spawns = self._may_spawn()
                with _ctrl_c_held() if spawns else contextlib.nullcontext():
                    pool = self._ensure_pool()
                    while queue and len(pending) < limit:
                        index = queue.pop()
                        pending[pool.submit(_run_marked, fn, tasks[index])] = index
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                broken = False
                for future in done:
                    error = future.exception()
                    if isinstance(error, BrokenProcessPool):
                        broken = True  # stays in `pending`: resubmitted by _rebuild
                        continue
                    index = pending.pop(future)
                    if error is None:
                        self._arrivals.expect()
                        results[index] = future.result()
                        if on_done:
                            on_done(index, results[index])
                        continue
                    attempts[index] += 1
                    final = isinstance(error, DataprepError | ModuleNotFoundError)
                    final = final or attempts[index] > self.max_retries
                    progress.tick(
                        task_failures=1, **{"tasks_failed" if final else "task_retries": 1}
                    )
                    if final:  # a user error (retrying cannot help), or retries spent
                        raise error
                    queue.append(index)
                if broken:
                    self._rebuild(tasks, pending, attempts, queue)
            self._arrivals.wait()  # the finished tasks' last ticks, before the run ends
        except KeyboardInterrupt:
            self._end_workers()  # Ctrl-C: stop now, not after the running tasks
            self.close()
            raise
        except BaseException:
            self.close()  # a failed or broken pool is not reused
            raise
        return results

    def _end_workers(self) -> None:
        """Terminate the pool's workers; their unfinished tasks rerun when the run resumes."""
        processes = getattr(self._pool, "_processes", None) or {}  # pid -> Process
        for process in list(processes.values()):
            with contextlib.suppress(OSError, ValueError):
                process.terminate()

    def _rebuild(
        self,
        tasks: Sequence[Any],
        pending: dict[Future[Any], int],
        attempts: list[int],
        queue: list[int],
    ) -> None:
        """A worker died: every in-flight task used an attempt; start a fresh pool."""
        lost = sorted(pending.values(), reverse=True)
        pending.clear()
        self.close()
        for index in lost:
            attempts[index] += 1
        spent = [i for i in sorted(lost) if attempts[i] > self.max_retries]
        progress.tick(
            task_failures=len(lost), task_retries=len(lost) - len(spent), tasks_failed=len(spent)
        )
        if spent:
            names = ", ".join(_describe(tasks[i], i) for i in spent[:4])
            raise DataprepError(
                f"a worker process died {attempts[spent[0]]} times while task(s) {names} "
                "ran (out of memory, or a crash in native code); finished tasks are kept, "
                "so rerunning the same command resumes"
            )
        queue.extend(lost)

    def close(self) -> None:
        """End the workers and the tick forwarder. The forwarder is stopped by an event, never
        by a message through the tick queue: a worker killed while it held the queue's write
        lock leaves it taken, and a message would wait for it in a feeder thread that
        multiprocessing joins at exit: the process would hang once its run was over."""
        if self._ahead is not None:
            self._ahead.join(timeout=10)  # its submits finish (a fork each) before the pool ends
            self._ahead = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._stop.set()
            if self._wake is not None:
                os.write(self._wake[1], b"x")  # wakes the forwarder at once
            if self._forward is not None:
                self._forward.join(timeout=5)
        if self._wake is not None and (self._forward is None or not self._forward.is_alive()):
            for fd in self._wake:
                os.close(fd)
        self._pool = self._queue = self._forward = self._wake = None
        self._owner = None

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _describe(task: Any, index: int) -> str:
    """A stage task by its record name and inputs; any other task by its position."""
    phase, number = getattr(task, "phase", None), getattr(task, "index", None)
    if phase is None or number is None:
        return f"#{index}"
    inputs = [os.path.basename(str(p)) for p in getattr(task, "inputs", ())][:3]
    return f"{phase}-{number:05d}" + (f" (input {', '.join(inputs)})" if inputs else "")
