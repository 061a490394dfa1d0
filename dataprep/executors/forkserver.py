"""Pool workers forked from one preloaded server instead of spawned one interpreter each.

A spawned worker starts Python and imports pyarrow and the stage's modules: ~0.5-1 s of CPU
per worker, paid again for every pool, which made 2 workers slower than 1 below ~50k
documents on 2 cores. multiprocessing's fork server pays that once per driver, and every
worker is a fork of it (~10 ms).

Two ways to make the server. The CLI forks it from the command itself (`start(fork=True)`),
before the command runs anything, while it has one thread, right after importing the stage
(which it needs anyway): no second interpreter and no second round of imports (~0.5 s of
CPU); the resource tracker is forked the same way. Otherwise (Python callers, a process that
already runs threads) the server is a fresh interpreter that imports `preload()` while the
driver plans the stage.

Never fork workers from a driver that runs threads (progress, prefetch, the pool's manager):
fork would copy their locks mid-use. The server runs no Python thread; the native ones pyarrow
and numpy start at import (jemalloc's purger, OpenBLAS) have fork handlers.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import multiprocessing as mp
import os
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from multiprocessing import connection, forkserver, process, resource_tracker, util

from dataprep.executors import server_boot

# Always worth having in a worker: what every task unpickles and reads with. Not pandas (0.35 s)
# nor pyarrow.compute (~25 ms: a wrapper for each of its ~400 functions): a stage module that
# calls them imports them (or names them in WORKER_PRELOAD); shard's common path never does.
BASE = (
    "dataprep.executors.local",
    "dataprep.task",
    "pyarrow",
    "pyarrow.parquet",
    # what the server and each worker import on their first fork and pool start (~2 ms each)
    "multiprocessing.popen_forkserver",
    "multiprocessing.synchronize",
)
SERVER_NAME = b"dataprep-server"  # what ps and top show for a forked server (not `python ...`)
PR_SET_NAME = 15  # linux/prctl.h
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
    """The boot module first (see server_boot), BASE, `extra`, what loaded modules ask for
    (`worker_preload`), then the dataprep modules this driver has imported (the stage's and
    what it needs)."""
    loaded = sorted(
        name
        for name in list(sys.modules)
        if name.startswith("dataprep.")
        and not name.startswith(SKIP)
        and name not in BASE
        and name != server_boot.__name__
    )
    asked = [m for m in _modules(worker_preload()) if m not in extra]
    rest = [m for m in loaded if m not in extra and m not in asked]
    return [server_boot.__name__, *BASE, *extra, *asked, *rest]


def _modules(names: Sequence[str]) -> list[str]:
    """The module part of preload names (`module` or `module:function`), each once."""
    return list(dict.fromkeys(name.partition(":")[0] for name in names))


def warm(names: Sequence[str]) -> None:
    """Call the `module:function` warm-ups among `names` (a forked server, before it forks
    any worker): what a stage's first task in every worker would otherwise do itself, once.
    A warm-up must start no thread (the server forks); one that fails is skipped: the
    task then does the work itself, as it would without the hook."""
    for name in names:
        module, _, function = name.partition(":")
        if function:
            with contextlib.suppress(Exception):
                getattr(importlib.import_module(module), function)()


def worker_preload() -> list[str]:
    """The hook for stage code: a loaded dataprep module's `WORKER_PRELOAD` names modules every
    worker of its stage imports (pandas for a conversion, a compiled kernel), so the server
    imports them once instead of each worker; `module:function` also calls that function (no
    arguments) in a forked server: a warm-up such as mapping a compiled kernel (`warm`)."""
    names: list[str] = []
    for name, module in list(sys.modules.items()):
        if name.startswith("dataprep.") and module is not None:
            for wanted in getattr(module, "WORKER_PRELOAD", ()):
                if isinstance(wanted, str) and wanted not in names:
                    names.append(wanted)
    return names


def can_fork() -> bool:
    """Whether `start(fork=True)` can make the server a fork of this process: one thread (the
    main one), Linux, and the `forkserver.main` of Python 3.11-3.13."""
    code = getattr(getattr(forkserver, "main", None), "__code__", None)
    names = code.co_varnames[: code.co_argcount] if code is not None else ()
    return (
        sys.platform.startswith("linux")
        and available()
        and threading.active_count() == 1
        and threading.current_thread() is threading.main_thread()
        and names == ("listener_fd", "alive_r", "preload", "main_path", "sys_path")
    )


def start(extra: Sequence[str] = (), fork: bool = False) -> None:
    """Make sure this process's fork server runs, with this process's environment.

    `fork` (the CLI, before a stage runs, while it has one thread; see `can_fork`): the
    server is a fork of this process once it has imported BASE and `extra` (the stage), which
    it would import anyway, so the server costs a fork instead of an interpreter and ~0.5 s
    of imports. Otherwise the server is a fresh interpreter that imports `preload(extra)` in
    the background (returns at once).

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
    forked = fork and can_fork()
    if forked:
        try:
            for name in (*BASE, *extra):  # the driver's own imports, done before the fork
                importlib.import_module(name)
        except ImportError:
            forked = False  # the run reports a missing module itself
    forkserver.set_forkserver_preload(preload(extra))  # also for a restart (ensure_running)
    _started_env = dict(os.environ)
    main = threading.current_thread() is threading.main_thread()
    # The server starts with SIGINT blocked, so a Ctrl-C during its imports cannot reach it;
    # starting the resource tracker unblocks SIGINT in this thread, so that goes first.
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    if forked:
        _fork_tracker()
    resource_tracker.ensure_running()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        if forked:
            _fork_server(server, worker_preload())
            return
        os.environ[server_boot.ENV] = str(os.getpid()) if main else ""
        os.environ[server_boot.MAIN_ENV] = command_script() or ""
        try:
            forkserver.ensure_running()
        finally:
            os.environ.pop(server_boot.ENV, None)
            os.environ.pop(server_boot.MAIN_ENV, None)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _fork_tracker() -> None:
    """Start multiprocessing's resource tracker as a fork of this process (it tracks the
    pool's semaphores until every holder of its pipe is gone), instead of a new interpreter
    (~0.05 s of CPU). Nothing to do where one runs already."""
    tracker = resource_tracker._resource_tracker  # type: ignore[attr-defined]
    if tracker._fd is not None or not callable(getattr(resource_tracker, "main", None)):
        return
    r, w = os.pipe()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(w)
            with contextlib.suppress(OSError, AttributeError):
                ctypes.CDLL(None).prctl(PR_SET_NAME, b"dataprep-tracker", 0, 0, 0)
            resource_tracker.main(r)  # ignores SIGINT/SIGTERM; returns at EOF on `r`
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(r)
    tracker._fd, tracker._pid = w, pid


def _fork_server(server: forkserver.ForkServer, later: Sequence[str]) -> None:
    """`ForkServer.ensure_running`, with a fork of this process instead of a new interpreter;
    `later`: modules the server imports after the fork (what only workers need), and the
    `module:function` warm-ups it calls (`warm`)."""
    address = connection.arbitrary_address("AF_UNIX")  # type: ignore[attr-defined]
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(address)
        if not util.is_abstract_socket_namespace(address):
            os.chmod(address, 0o600)
        listener.listen()
        alive_r, alive_w = os.pipe()  # every client holds the write end; EOF ends the server
        for stream in (sys.stdout, sys.stderr):  # else the child could repeat buffered text
            with contextlib.suppress(Exception):
                stream.flush()
        driver = os.getpid()
        gc.freeze()  # what exists now is shared: no collection in the child writes to it
        pid = os.fork()
        if pid == 0:
            _serve(listener.fileno(), alive_r, alive_w, driver, later)
        os.close(alive_r)
    server._forkserver_address = address  # type: ignore[attr-defined]
    server._forkserver_alive_fd = alive_w  # type: ignore[attr-defined]
    server._forkserver_pid = pid  # type: ignore[attr-defined]
    global _forked_pid
    _forked_pid = pid


def _serve(listener: int, alive_r: int, alive_w: int, driver: int, later: Sequence[str]) -> None:
    """The forked server: what server_boot does for a spawned one, then multiprocessing's
    server loop; it never returns into the driver's code (os._exit, no atexit, no flush)."""
    code = 0
    try:
        os.close(alive_w)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
        gc.enable()  # the CLI holds GC off while it starts; the server and its workers collect
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(PR_SET_NAME, SERVER_NAME, 0, 0, 0)
        server_boot.tie_to(driver)
        server_boot.quiet_when_the_driver_left()
        warm(later)
        forkserver.main(listener, alive_r, _modules(later))
    except SystemExit:
        pass  # the alive pipe closed: the driver and its workers are gone
    except BaseException:
        code = 1
    finally:
        os._exit(code)


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
_forked_pid: int | None = None  # the server `_fork_server` made, while it is the one running


def ready_now() -> bool:
    """Whether the running server is a fork of this process (the command's), so it forks a
    worker within milliseconds; a fresh interpreter may still be importing for a second."""
    server = forkserver._forkserver  # type: ignore[attr-defined]
    return _forked_pid is not None and server._forkserver_pid == _forked_pid


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
