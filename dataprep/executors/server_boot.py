"""Imported first by the fork server (`executors.forkserver`): tie the server to its driver,
and keep its workers from rerunning the `dataprep` console script.

The server's workers hold its "alive" pipe, so a SIGKILLed driver would leave the server and
its workers running; PR_SET_PDEATHSIG makes the kernel kill the server with the driver. Each
worker sets the same for the server (`local._init_worker`), so the whole tree goes at once,
even while a worker holds the GIL in native code. No thread: the server must fork cleanly.

Acts only in a fork server whose environment names its driver in DATAPREP_FORKSERVER_DRIVER
(`forkserver.start` sets it around the server's start, and only from the driver's main
thread: the signal fires when the *thread* that started us exits). Elsewhere: nothing.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

ENV = "DATAPREP_FORKSERVER_DRIVER"
MAIN_ENV = "DATAPREP_FORKSERVER_MAIN"  # the `dataprep` console script (forkserver.command_script)
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _tie_to_driver() -> None:
    driver = os.environ.pop(ENV, "")  # not inherited by the workers
    in_server = "multiprocessing.forkserver" in sys.modules and sys.argv[:1] == ["-c"]
    if driver.isdigit() and in_server:
        tie_to(int(driver))


def tie_to(driver: int) -> None:
    """Die with `driver` (this process's parent): at once by the kernel's parent-death signal,
    and now if it is already gone."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return  # no prctl: the workers still watch the driver themselves
    if os.getppid() != driver:  # the driver died before the signal was armed
        os._exit(1)


def quiet_when_the_driver_left() -> None:
    """A fork of the server reads its process object from the driver before it becomes a
    worker; when the driver has just gone (Ctrl-C while a pool starts), that read fails on a
    vanished pipe or semaphore. The server prints such a failure with `sys.excepthook`: say
    nothing then, as a spawned worker killed with its driver said nothing."""
    server, shown = os.getpid(), sys.excepthook

    def hook(kind: type[BaseException], error: BaseException, tb: object) -> None:
        if os.getpid() != server and issubclass(kind, (EOFError, OSError)):
            return
        shown(kind, error, tb)  # type: ignore[arg-type]

    sys.excepthook = hook


def _main_is_the_command() -> None:
    """A worker reruns its driver's main script unless `__main__.__file__` already names it
    (multiprocessing.spawn._fixup_main_from_path): for the `dataprep` console script, which
    defines nothing a task needs, say so once here, so no worker imports the CLI."""
    script = os.environ.pop(MAIN_ENV, "")  # not inherited by the workers
    if script:
        sys.modules["__main__"].__file__ = script


_tie_to_driver()
if "multiprocessing.forkserver" in sys.modules and sys.argv[:1] == ["-c"]:
    quiet_when_the_driver_left()
    _main_is_the_command()
