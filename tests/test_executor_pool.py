"""The local pool's own latencies: what a 2-worker run pays that a 1-worker run does not
(issue 19: 2 workers must beat 1 from 20k documents up)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time

import pytest

from dataprep import progress
from dataprep.executors import forkserver, ticks
from dataprep.executors.local import LocalExecutor, default_workers


def _square(x: int) -> int:
    progress.tick(rows_in=1)
    return x * x


def test_closing_the_pool_does_not_wait_out_the_tick_poll(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The tick forwarder used to notice its stop event only when its queue read timed out
    (POLL_SECONDS, 0.25 s): every pool's close, so every -w 2 command, waited for it."""
    monkeypatch.setattr(ticks, "POLL_SECONDS", 30.0)  # the old poll would now take 30 s
    seen: list[dict[str, int]] = []
    previous = progress.install(seen.append)
    pool = LocalExecutor(workers=2)
    try:
        assert pool.run(_square, list(range(6))) == [x * x for x in range(6)]
    finally:
        started = time.perf_counter()
        pool.close()
        closed = time.perf_counter() - started
        progress.install(previous)
    assert sum(c.get("rows_in", 0) for c in seen) == 6  # every tick still arrived
    assert closed < 3.0, f"close took {closed:.2f} s"


def test_a_closed_pool_leaves_no_descriptor_behind() -> None:
    """The forwarder's wake-up pipe is closed with the pool (a long recipe opens many)."""
    before = set(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    for _ in range(3):
        with LocalExecutor(workers=2) as pool:
            pool.run(_square, [1, 2, 3])
    if before is not None:
        leaked = set(os.listdir("/proc/self/fd")) - before
        assert len(leaked) <= 2, leaked  # the fork server's alive pipe and socket, kept


_WARMED = """
import os, sys, types
hooked = types.ModuleType("dataprep.warm_for_test")
hooked.calls = []
hooked.warm_up = lambda: hooked.calls.append(os.getpid())
hooked.broken = lambda: 1 / 0
hooked.WORKER_PRELOAD = (
    "dataprep.warm_for_test:broken", "dataprep.warm_for_test:warm_up", "wave"
)
sys.modules[hooked.__name__] = hooked

def probe(_):
    return os.getpid(), os.getppid(), list(hooked.calls), "wave" in sys.modules

from dataprep.executors import forkserver
assert forkserver.can_fork()
forkserver.start(fork=True)
from dataprep.executors.local import LocalExecutor
with LocalExecutor(workers=2) as pool:
    seen = pool.run(probe, list(range(4)))
print(repr((os.getpid(), hooked.calls, seen)))
"""


@pytest.mark.skipif(not forkserver.available(), reason="no fork server here")
def test_a_warm_up_runs_once_in_the_forked_server_not_in_each_worker() -> None:
    """`module:function` in WORKER_PRELOAD (e.g. mapping dedup's compiled kernel): the forked
    server calls it before it forks workers, so every worker starts warm and none repeats it;
    one that fails is skipped. The driver itself does not run it."""
    proc = subprocess.run(
        [sys.executable, "-c", _WARMED], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    driver, driver_calls, seen = ast.literal_eval(proc.stdout.strip().splitlines()[-1])
    servers = {parent for _, parent, _, _ in seen}
    assert driver_calls == [] and len(servers) == 1 and driver not in servers
    assert all(calls == [parent] for _, parent, calls, _ in seen)  # the server's call only
    assert all(wave for _, _, _, wave in seen)  # a plain module name is still imported


_DEDUP_WORKERS = """
import os, sys
from dataprep.stages.dedup import kernel
from dataprep.executors import forkserver
from dataprep.executors.local import LocalExecutor

def probe(_):
    from dataprep.stages.dedup import minhash
    return "llvmlite" in sys.modules, minhash._KERNEL is kernel

forkserver.start(extra=("dataprep.stages.dedup",), fork=True)
with LocalExecutor(workers=2) as pool:
    seen = pool.run(probe, list(range(4)))
print(repr((kernel.is_built(), "llvmlite" in sys.modules, seen)))
"""


@pytest.mark.skipif(not forkserver.available(), reason="no fork server here")
def test_dedup_workers_start_with_the_kernel_mapped() -> None:
    """dedup's WORKER_PRELOAD: the forked server maps this machine's kernel build once, so no
    worker's first sign task imports llvmlite and maps it (~0.04 s CPU per worker); the driver
    itself still never imports llvmlite."""
    proc = subprocess.run(
        [sys.executable, "-c", _DEDUP_WORKERS], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    built, driver_llvm, seen = ast.literal_eval(proc.stdout.strip().splitlines()[-1])
    if not built:
        pytest.skip("no build of the dedup kernel on this machine (the server never builds)")
    assert not driver_llvm
    assert seen == [(True, True)] * 4


def test_a_running_pool_does_not_probe_the_resource_tracker_per_task(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C is held (and multiprocessing's resource tracker made sure of, which writes a
    probe to that process and wakes it) only while a submission can start a worker, not
    around every task of a long run."""
    from multiprocessing import resource_tracker

    calls: list[int] = []
    real = resource_tracker.ensure_running
    monkeypatch.setattr(resource_tracker, "ensure_running", lambda: calls.append(1) or real())
    with LocalExecutor(workers=2) as pool:
        assert pool.run(_square, list(range(40))) == [x * x for x in range(40)]
        started = len(calls)  # the pool's own semaphores register there too
        assert pool.run(_square, list(range(80))) == [x * x for x in range(80)]
    assert 1 <= started <= 8 and len(calls) == started, (started, len(calls))


_AHEAD = """
import os, sys
from dataprep.executors import forkserver
from dataprep.executors.local import LocalExecutor

def pid(_):
    return os.getpid()

fork, workers, size = sys.argv[1] == "fork", eval(sys.argv[2]), eval(sys.argv[3])
if fork:
    forkserver.start(fork=True)  # as the command does before it runs a stage
with LocalExecutor(workers=workers) as executor:
    executor.expect_input(size)
    if executor._ahead is not None:  # the workers start on a helper thread
        executor._ahead.join(timeout=60)
    started = set(getattr(executor._pool, "_processes", None) or {})
    ran = set(executor.run(pid, list(range(8)))) if fork else set()  # -c: forks see pid
print(repr((len(started), not started or ran <= started)))
"""


@pytest.mark.skipif(not forkserver.available(), reason="no fork server here")
@pytest.mark.parametrize(
    ("fork", "workers", "size", "started"),
    [
        ("fork", 2, 10 << 20, 2),
        ("fork", None, 10 << 20, None),  # the default: one per core
        ("fork", None, 1000, 0),  # runs in-process
        ("fork", 2, None, 0),  # size unknown
        ("fork", 1, 10 << 20, 0),
        ("spawn", 2, 10 << 20, 0),  # a fresh server may still be importing: not ahead
    ],
)
def test_a_stage_that_will_use_the_pool_starts_its_workers_while_it_plans(
    fork: str, workers: int | None, size: int | None, started: int | None
) -> None:
    """The runner tells the executor the stage's input size before the stage plans: where
    that input gets a pool and the command's forked server is up, the workers start then
    (their forks overlap the planning) and the stage's tasks run on those very workers; the
    caller does not wait for their forks."""
    proc = subprocess.run(
        [sys.executable, "-c", _AHEAD, fork, repr(workers), repr(size)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    count, same = ast.literal_eval(proc.stdout.strip().splitlines()[-1])
    want = default_workers() if started is None else started
    assert (count, same) == (want if want > 1 else 0, True)
