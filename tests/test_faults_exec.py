"""A task that keeps killing its worker ends in one sentence, and the same command resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from flaky_stage import FlakyStage, attempts
from helpers import column

from dataprep import stages
from dataprep.errors import DataprepError
from dataprep.executors.local import LocalExecutor
from dataprep.runner import run_stage


def test_task_that_kills_every_worker_is_one_sentence_then_resumes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(stages.BUILTIN, "flaky", f"flaky_stage:{FlakyStage.__name__}")
    marker = tmp_path / "marker"
    marker.mkdir()
    (marker / "broken").touch()
    config = {"mode": "kill_always", "marker_dir": str(marker), "tasks": 4, "fail_index": 2}
    with LocalExecutor(workers=2, max_retries=1) as executor, pytest.raises(DataprepError) as err:
        run_stage("flaky", config, tmp_path / "out", executor=executor)
    message = str(err.value)
    assert "map-00002" in message and "died 2 times" in message
    assert "\n" not in message and "rerun" in message
    assert attempts(marker, 2) == 2
    (marker / "broken").unlink()
    with LocalExecutor(workers=2) as executor:
        run = run_stage("flaky", config, tmp_path / "out", executor=executor)
    assert run.status == "ran" and attempts(marker, 2) == 3  # only the lost task ran again
    assert sorted(column(tmp_path / "out", "value")) == list(range(40))


def test_ray_server_traceback_becomes_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ray client server that fails to start sends its whole traceback in the error."""
    import ray

    from dataprep.executors import ray as ray_executor
    from dataprep.executors.ray import RayExecutor

    server_said = (
        "Initialization failure from server:\nTraceback (most recent call last):\n"
        '  File "proxier.py", line 772, in Datapath\n    raise RuntimeError(\n'
        "RuntimeError: Starting Ray client server failed. See ray_client_server.err.\n"
    )

    def refuse(*args: object, **kwargs: object) -> None:
        raise ConnectionError(server_said)

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", refuse)
    monkeypatch.setattr(ray_executor, "CLIENT_RETRY_WAIT_S", 0.0)
    with pytest.raises(DataprepError) as err:
        RayExecutor(address="ray://127.0.0.1:1")
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message
    assert "Starting Ray client server failed" in message and "ray://127.0.0.1:1" in message


@pytest.mark.parametrize(
    "flake",
    [
        "RuntimeError: Starting Ray client server failed. See x.err",
        # the proxy checked a client server process that had just exited (seen in CI)
        "psutil.ZombieProcess: PID still exists but it's a zombie (pid=11435)",
    ],
)
def test_ray_client_server_that_fails_once_is_retried(
    flake: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ray's proxy sometimes fails to start a client's server under load (a known Ray flake):
    a fresh connection then works, so the executor tries again before giving up."""
    import ray

    from dataprep.executors import ray as ray_executor

    calls: list[str] = []

    def flaky_init(*args: object, **kwargs: object) -> None:
        calls.append(str(kwargs.get("address")))
        if len(calls) == 1:
            raise ConnectionError(flake)
        raise RuntimeError("connected")  # stands for the rest of a real start-up

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", flaky_init)
    monkeypatch.setattr(ray_executor, "CLIENT_RETRY_WAIT_S", 0.0)
    with pytest.raises(RuntimeError, match="connected"):
        ray_executor.RayExecutor(address="ray://127.0.0.1:1")
    assert calls == ["ray://127.0.0.1:1", "ray://127.0.0.1:1"]


def hold_the_tick_lock_then_die(index: int) -> int:
    """A pool task: the worker is killed while it holds the tick queue's write lock (as a
    worker OOM-killed mid-tick would), so that lock stays taken for good."""
    if index == 1:
        from dataprep.executors import local

        local._worker_queue._wlock.acquire()
        os.kill(os.getpid(), signal.SIGKILL)
    return index


_DIES_HOLDING_THE_LOCK = (
    "from dataprep.executors.local import LocalExecutor\n"
    "from dataprep.errors import DataprepError\n"
    "from test_faults_exec import hold_the_tick_lock_then_die\n"
    "with LocalExecutor(workers=2, max_retries=0) as pool:\n"
    "    try:\n"
    "        pool.run(hold_the_tick_lock_then_die, list(range(4)))\n"
    "    except DataprepError as error:\n"
    "        print('ERROR', error)\n"
)


def test_a_worker_killed_holding_the_tick_lock_does_not_hang_the_exit() -> None:
    """The driver used to stop its tick forwarder with a message through that same queue:
    its feeder thread then waited for the dead worker's lock, and the process hung at exit
    (multiprocessing joins the feeder thread) after printing its error."""
    tests = str(Path(__file__).parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sys.executable, "-c", _DIES_HOLDING_THE_LOCK],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ERROR a worker process died 1 times" in proc.stdout
