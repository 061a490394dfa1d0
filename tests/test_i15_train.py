"""Issue 15, training: user errors in ranks are one sentence (never retried), the logged lr is
the one each step used, a finished run says so, and Ctrl-C is one line and exit 130.

Real `dataprep train` runs: 2 gloo processes on CPU, the tiny model, a few steps.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import cli, cli_all, logged_steps, token_blocks, wait_for

SEQ = 32
BASE = ("--model", "tiny", "--seq-len", str(SEQ), "--num-workers", "0", "--device", "cpu")


@pytest.fixture(scope="module")
def blocks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return token_blocks(tmp_path_factory.mktemp("blocks"), SEQ)


def _train_args(data: Path, out: Path, *more: str) -> tuple[str, ...]:
    return ("train", str(data), "--out", str(out), *BASE, *more)


def _train(data: Path, out: Path, *more: str) -> subprocess.CompletedProcess:
    return cli(*_train_args(data, out, *more), check=False)


def _copy(run: Path, to: Path) -> Path:
    """A copy of a shared finished run, for a test that resumes (and so changes) it."""
    shutil.copytree(run, to)
    return to


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def _rank_pids(pid: int) -> set[int]:
    """The spawned rank processes under `pid` (multiprocessing's spawn_main children)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmd = (entry / "cmdline").read_bytes()
            if b"spawn_main" in cmd and b"resource_tracker" not in cmd:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(stat[1]) == pid:
                    found.add(int(entry.name))
    return found


def _run_counting_ranks(args: list[str]) -> tuple[subprocess.CompletedProcess, int]:
    """Run `dataprep ARGS`, noting every rank process the launcher spawns (a retry spawns
    a new set)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dataprep", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: set[int] = set()
    out: list[str] = []

    def drain() -> None:
        out.extend(proc.communicate(timeout=300))

    import threading

    reader = threading.Thread(target=drain)
    reader.start()
    while reader.is_alive():
        seen |= _rank_pids(proc.pid)
        time.sleep(0.02)
    reader.join()
    return subprocess.CompletedProcess(args, proc.returncode, out[0], out[1]), len(seen)


# --- item 4: a user error in a rank ---------------------------------------------------------


@pytest.mark.slow
def test_resume_with_another_batch_size_is_one_sentence(
    blocks: Path, finished: Path, tmp_path: Path
) -> None:
    """Both ranks refuse the resume (the finished run's batch size was 4): one sentence."""
    out = _copy(finished, tmp_path / "run")
    again = _train(blocks, out, "--batch-size", "8", "--steps", "8", "--nproc-per-node", "2")
    assert again.returncode == 2, again.stderr[-3000:]
    assert "Traceback" not in again.stderr and "rerun to resume" not in again.stderr
    [error] = _errors(again.stderr)
    assert again.stderr.strip() == error, again.stderr[-3000:]
    assert "--batch-size 4" in error and "new --out" in error, error


@pytest.mark.slow
def test_user_error_on_one_rank_is_not_retried(blocks: Path, tmp_path: Path) -> None:
    """Only rank 1 cannot write its sample trace: one sentence naming it, exit 2, and with
    --max-restarts 1 no second set of ranks is started."""
    out = tmp_path / "run"
    (out / "samples-rank1.txt").mkdir(parents=True)
    args = ["train", str(blocks), "--out", str(out), *BASE, "--batch-size", "4"]
    args += ["--steps", "3", "--nproc-per-node", "2", "--trace-samples", "--max-restarts", "1"]
    proc, ranks = _run_counting_ranks(args)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    [error] = _errors(proc.stderr)
    assert proc.stderr.strip() == error, proc.stderr[-3000:]
    assert "samples-rank1.txt" in error, error
    assert ranks == 2, f"{ranks} rank processes: the user error was retried"


# --- item 5: what training reports ----------------------------------------------------------


def _schedule(step: int, lr: float, warmup: int, horizon: int, floor: float = 0.1) -> float:
    """The documented schedule, written out: linear warmup, then cosine down to floor * lr."""
    if step <= warmup:
        return lr * step / warmup
    progress = (step - warmup) / (horizon - warmup)
    return lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


@pytest.fixture(scope="module")
def finished(blocks: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    proc = _train(
        blocks, out, "--batch-size", "4", "--steps", "4", "--warmup-steps", "2", "--lr", "1e-3",
        "--nproc-per-node", "1", "--quiet",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.mark.slow
def test_logged_lr_is_the_one_each_step_used(finished: Path) -> None:
    records = [json.loads(line) for line in (finished / "metrics.jsonl").read_text().splitlines()]
    logged = {r["step"]: r["lr"] for r in records if "lr" in r}
    assert logged[1] == pytest.approx(_schedule(1, 1e-3, 2, 4)), logged  # 5e-4, not 1e-3
    assert logged == pytest.approx({s: _schedule(s, 1e-3, 2, 4) for s in (1, 2, 3, 4)})


@pytest.mark.slow
def test_rerunning_a_finished_run_says_it_is_complete(
    blocks: Path, finished: Path, tmp_path: Path
) -> None:
    records = [json.loads(line) for line in (finished / "metrics.jsonl").read_text().splitlines()]
    loss = [r["loss"] for r in records if "loss" in r][-1]
    args = ("--batch-size", "4", "--steps", "4", "--warmup-steps", "2", "--lr", "1e-3")
    args += ("--nproc-per-node", "1")
    # three independent reruns, side by side, each on its own copy of the finished run
    again, as_json, longer = cli_all(
        _train_args(blocks, _copy(finished, tmp_path / "text"), *args),
        _train_args(blocks, _copy(finished, tmp_path / "json"), *args, "--json"),
        _train_args(blocks, _copy(finished, tmp_path / "longer"), *args, "--steps", "5", "--json"),
        check=False,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "nan" not in again.stdout and "0 tokens/s" not in again.stdout, again.stdout
    assert "already complete at step 4" in again.stdout and f"{loss:.4f}" in again.stdout
    summary = json.loads(as_json.stdout)
    assert summary["status"] == "complete" and summary["step"] == 4
    assert summary["loss"] == pytest.approx(loss)
    done = json.loads(longer.stdout)
    assert done["status"] == "trained" and done.keys() == summary.keys()  # the same shape


# --- Ctrl-C ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _in_own_group(args: list[str]) -> Iterator[subprocess.Popen]:
    """`dataprep ARGS` in its own process group, as a shell's foreground job: Ctrl-C reaches
    the launcher and every rank."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dataprep", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()


@pytest.mark.slow
def test_ctrl_c_saves_and_exits_130_with_one_line(blocks: Path, tmp_path: Path) -> None:
    from dataprep.train import checkpoint

    out = tmp_path / "run"
    args = ["train", str(blocks), "--out", str(out), *BASE, "--batch-size", "4", "--json"]
    args += ["--steps", "100000", "--checkpoint-every", "100000", "--nproc-per-node", "2"]
    with _in_own_group(args) as proc:
        wait_for(lambda: len(logged_steps(out)) >= 3, proc)
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr and "SignalException" not in stderr, stderr[-3000:]
    step = json.loads(stdout)["step"]
    line = f"interrupted at step {step}; checkpoint saved; rerun the same command to resume"
    assert stderr.strip().splitlines()[-1] == line, stderr[-3000:]
    choice = checkpoint.choose(out)
    assert choice.loaded is not None and choice.loaded.path.name == f"step-{step:08d}"
