"""Pool workers forked from one preloaded server instead of spawned one interpreter each.

A spawned worker starts Python and imports pyarrow, pandas (pyarrow loads it at its first
array) and the stage's modules: ~0.5-1 s of CPU per worker, paid again for every pool, which
made 2 workers slower than 1 below ~50k documents on 2 cores. multiprocessing's fork server
pays that once per driver: it imports the modules the driver already loaded for the stage, and
every worker is a fork of it (~10 ms). It starts when the executor is made, so its imports run
while the driver plans the stage.

Fork from the server, never from the driver: the driver runs threads (progress, prefetch, the
pool's manager) that fork would copy mid-lock. The server runs no Python thread; the native
ones pyarrow and numpy start at import (jemalloc's purger, OpenBLAS) have fork handlers.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import sys
import threading
from collections.abc import Sequence
from multiprocessing import forkserver, process, resource_tracker, util

from dataprep.executors import server_boot

# Always worth having in a worker: what every task unpickles, and pandas, which pyarrow imports
# on the first array it builds (~0.35 s).
BASE = (
    "dataprep.executors.local",
    "dataprep.task",
    "pyarrow",
    "pyarrow.parquet",
    "pyarrow.compute",
    "pandas",
    "pyarrow.pandas_compat",
)
# Never preloaded: the CLI (a worker runs no command), and what starts threads or services
# at import (Ray, torch) or only the driver needs.
SKIP = (
    "dataprep.cli",
    "dataprep.__main__",
    "dataprep.executors.ray",
    "dataprep.train",
    "dataprep.loader",
    "dataprep.observe",
)


def available() -> bool:
    """POSIX, and the ForkServer internals `start` relies on (3.11-3.13)."""
    server = getattr(forkserver, "_forkserver", None)
    needed = ("_lock", "_forkserver_pid", "_forkserver_alive_fd", "_forkserver_address")
    methods = mp.get_all_start_methods()
    return "forkserver" in methods and all(hasattr(server, a) for a in needed)


def preload(extra: Sequence[str] = ()) -> list[str]:
    """The boot module first (see server_boot), BASE, `extra`, then the dataprep modules this
    driver has imported (the stage's and what it needs)."""
    loaded = sorted(
        name
        for name in list(sys.modules)
        if name.startswith("dataprep.")
        and not name.startswith(SKIP)
        and name not in BASE
        and name != server_boot.__name__
    )
    return [server_boot.__name__, *BASE, *extra, *(m for m in loaded if m not in extra)]


def start(extra: Sequence[str] = ()) -> None:
    """Make sure this process's fork server runs, with this process's environment (returns at
    once; the server imports in the background).

    A worker used to be a fresh interpreter with the driver's environment of the moment
    (PYTHONPATH, a sitecustomize, thread counts); a server started under another environment
    is retired (it exits once the workers of pools still open are gone) and a new one
    started. A server started by the main thread dies with this process at once
    (PR_SET_PDEATHSIG, set by server_boot), so its workers do too."""
    server = forkserver._forkserver  # type: ignore[attr-defined]
    global _started_env
    _reap()
    if server._forkserver_pid is not None:
        if _started_env == os.environ:
            forkserver.ensure_running()  # restarts one that died
            return
        _retire(server)
    forkserver.set_forkserver_preload(preload(extra))
    _started_env = dict(os.environ)
    main = threading.current_thread() is threading.main_thread()
    # The server starts with SIGINT blocked, so a Ctrl-C during its imports cannot reach it;
    # starting the resource tracker unblocks SIGINT in this thread, so that goes first.
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    resource_tracker.ensure_running()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    os.environ[server_boot.ENV] = str(os.getpid()) if main else ""
    os.environ[server_boot.MAIN_ENV] = command_script() or ""
    try:
        forkserver.ensure_running()
    finally:
        os.environ.pop(server_boot.ENV, None)
        os.environ.pop(server_boot.MAIN_ENV, None)
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def command_script() -> str | None:
    """The `dataprep` console script when it is this process's main module, as multiprocessing
    names it to a worker (which reruns a main script as `__mp_main__` unless its own
    `__main__` already has that file: see server_boot). The script defines nothing a task
    needs, and rerunning it imported the whole CLI in every worker (~0.3 s of CPU each)."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if getattr(main, "__spec__", None) is not None or not path:
        return None  # `python -m dataprep` (workers skip a package's __main__ already)
    if os.path.basename(path) != "dataprep":
        return None  # a user's script: its functions may be the tasks, so workers run it
    if not os.path.isabs(path) and process.ORIGINAL_DIR is not None:
        path = os.path.join(process.ORIGINAL_DIR, path)
    return os.path.normpath(path)


_started_env: dict[str, str] | None = None
_retired: list[int] = []


def _retire(server: forkserver.ForkServer) -> None:
    """Forget the running server: closing our end of its alive pipe lets it exit once no
    worker holds the other end; it is reaped by a later `start`."""
    with server._lock:  # type: ignore[attr-defined]
        if server._forkserver_pid is None:  # type: ignore[attr-defined]
            return
        os.close(server._forkserver_alive_fd)  # type: ignore[attr-defined]
        address = server._forkserver_address  # type: ignore[attr-defined]
        if address and not util.is_abstract_socket_namespace(address):
            with contextlib.suppress(OSError):
                os.unlink(address)
        _retired.append(server._forkserver_pid)  # type: ignore[attr-defined]
        server._forkserver_pid = None  # type: ignore[attr-defined]
        server._forkserver_alive_fd = server._forkserver_address = None  # type: ignore[attr-defined]


def _reap() -> None:
    for pid in list(_retired):
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == 0:
                continue
        _retired.remove(pid)
