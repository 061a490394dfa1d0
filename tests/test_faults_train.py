"""Training under faults and hostile files: damaged or tampered checkpoints, SIGTERM, SIGKILL.

Unit tests drive `dataprep.train.checkpoint` in this process on a toy model; the end-to-end
tests run the real `dataprep train` (2 gloo processes on CPU) on one shared token dataset.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import cli, cli_all, descendants, logged_steps, token_blocks, wait_for

from dataprep.train import checkpoint
from dataprep.train.metrics import MetricsLog

SEQ = 32
FLAGS = f"--model tiny --seq-len {SEQ} --batch-size 4 --num-workers 0 --device cpu --json"


class Payload:
    """Unpickling this runs a shell command: what a replaced checkpoint file could do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


# --- unit: the checkpoint files ------------------------------------------------------------


def _toy(seed: int = 0) -> tuple[torch.nn.Module, torch.optim.Optimizer, object]:
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1 / (i + 1))
    model(torch.randn(2, 4)).sum().backward()
    opt.step()
    sched.step()
    return model, opt, sched


def _save(root: Path, step: int) -> Path:
    model, opt, sched = _toy(step)
    return checkpoint.save(root, step, 0, model, opt, sched, {"step": step}, keep=5)


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(path.stat().st_size))


DAMAGE: dict[str, Callable[[Path], None]] = {
    "flip": _flip,
    "truncate": _truncate,
    "garbage": _garbage,
    "missing": Path.unlink,
}


def test_checkpoint_holds_only_tensors_and_json(tmp_path: Path) -> None:
    """Everything loads with weights_only=True or as JSON, and the RNG state round-trips."""
    folder = _save(tmp_path, 1)
    torch.load(folder / "state.pt", weights_only=True)
    for name in sorted(p.name for p in folder.iterdir()):
        assert name.endswith((".json", ".pt")), name
        if name.endswith(".pt"):
            torch.load(folder / name, weights_only=True)
        else:
            json.loads((folder / name).read_text())
    draws = random.random(), float(np.random.rand()), torch.rand(1).item()
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    loaded = checkpoint.read(folder, 0)
    assert loaded.rng is not None
    checkpoint.set_rng_state(loaded.rng)
    assert (random.random(), float(np.random.rand()), torch.rand(1).item()) == draws


@pytest.mark.parametrize("file", ["state.pt", "train_state.json", "rng-rank0.json"])
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_latest_checkpoint_is_skipped(tmp_path: Path, file: str, damage: str) -> None:
    _save(tmp_path, 1)
    bad = _save(tmp_path, 2)
    DAMAGE[damage](bad / file)
    choice = checkpoint.choose(tmp_path)
    assert choice.loaded is not None and choice.loaded.path.name == "step-00000001"
    assert choice.loaded.train_state == {"step": 1}
    [(name, reason)] = choice.damaged
    assert name == "step-00000002" and file in reason
    assert choice.report()[0] == (
        f"checkpoint step-00000002 is corrupt ({reason}); resuming from step-00000001"
    )


def test_flip_in_state_pt_says_checksum_mismatch(tmp_path: Path) -> None:
    _save(tmp_path, 1)
    _flip(_save(tmp_path, 2) / "state.pt")
    assert checkpoint.choose(tmp_path).damaged == [("step-00000002", "state.pt checksum mismatch")]


def test_no_usable_checkpoint(tmp_path: Path) -> None:
    assert checkpoint.choose(tmp_path).loaded is None  # nothing saved: start fresh
    _flip(_save(tmp_path, 1) / "state.pt")
    choice = checkpoint.choose(tmp_path)
    assert choice.loaded is None and [n for n, _ in choice.damaged] == ["step-00000001"]


def _legacy(root: Path, step: int, state: object | None = None) -> Path:
    """A checkpoint as the previous version wrote it: pickled RNG, no checksums."""
    model, opt, sched = _toy(step)
    folder = root / "checkpoints" / f"step-{step:08d}"
    folder.mkdir(parents=True)
    if state is None:
        state = {"model": model.state_dict(), "optimizer": opt.state_dict()}
        state["scheduler"] = sched.state_dict()
    torch.save(state, folder / "state.pt")
    rng = {"python": random.getstate(), "numpy": np.random.get_state()}
    torch.save({**rng, "torch": torch.get_rng_state()}, folder / "rng-rank0.pt")
    (folder / "train_state.json").write_text(json.dumps({"step": step}))
    return folder


def test_old_checkpoint_without_checksums_loads_unverified(tmp_path: Path) -> None:
    _legacy(tmp_path, 3)
    draws = random.random(), float(np.random.rand()), torch.rand(1).item()
    choice = checkpoint.choose(tmp_path)
    assert choice.loaded is not None and not choice.loaded.verified and not choice.damaged
    assert "has no checksums" in choice.report()[0]
    checkpoint.set_rng_state(choice.loaded.rng)
    assert (random.random(), float(np.random.rand()), torch.rand(1).item()) == draws


@pytest.mark.parametrize("file", ["state.pt", "rng-rank0.pt"])
def test_pickle_payload_in_old_checkpoint_never_runs(tmp_path: Path, file: str) -> None:
    marker = tmp_path / "pwned"
    _legacy(tmp_path, 1)
    bad = _legacy(tmp_path, 2)
    torch.save({"model": Payload(marker)}, bad / file)
    choice = checkpoint.choose(tmp_path)
    assert not marker.exists()
    assert choice.loaded is not None and choice.loaded.path.name == "step-00000001"
    [(name, reason)] = choice.damaged
    assert name == "step-00000002" and f"{file} cannot be loaded safely" in reason


def test_unlisted_file_makes_a_checkpoint_corrupt(tmp_path: Path) -> None:
    _save(tmp_path, 1)
    folder = _save(tmp_path, 2)
    (folder / "extra.pt").write_bytes(pickle.dumps(1))
    [(_, reason)] = checkpoint.choose(tmp_path).damaged
    assert reason == "extra.pt is not listed in checksums.json"


def test_metrics_after_the_resumed_step_are_dropped(tmp_path: Path) -> None:
    lines = [json.dumps({"step": s, "loss": 1.0}) for s in (1, 2, 3, 4, 5)]
    lines.insert(2, json.dumps({"step": 2, "eval_loss": 2.0}))
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + '\n{"step": 6, "lo')  # torn
    MetricsLog(tmp_path, True, resumed_step=3).close()
    kept = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert kept == lines[:4]
    assert [p.name for p in tmp_path.iterdir() if p.name != "tensorboard"] == ["metrics.jsonl"]


# --- end to end: real runs -----------------------------------------------------------------


@pytest.fixture(scope="module")
def blocks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return token_blocks(tmp_path_factory.mktemp("blocks"), SEQ)


RUN6 = ("--steps", "6", "--checkpoint-every", "2", "--lr-decay-steps", "6")


def _args(data: Path, out: Path, *more: str) -> list[str]:
    return ["train", str(data), "--out", str(out), *FLAGS.split(), *more]


def _params(folder: Path) -> dict[str, torch.Tensor]:
    return torch.load(folder / "state.pt", weights_only=True)["model"]


@pytest.fixture(scope="module")
def uninterrupted(blocks: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 steps on 2 processes, checkpoints at 2, 4 and 6."""
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    cli(*_args(blocks, out, *RUN6, "--nproc-per-node", "2"))
    return out


def _killed_at_5(uninterrupted: Path, out: Path) -> Path:
    """A run directory as a kill at step 5 leaves it: checkpoints 2 and 4."""
    for step in (2, 4):
        name = f"step-{step:08d}"
        shutil.copytree(uninterrupted / "checkpoints" / name, out / "checkpoints" / name)
    return out / "checkpoints" / "step-00000004"


CORRUPT = [("state.pt", "flip"), ("state.pt", "truncate"), ("state.pt", "garbage")]
CORRUPT += [("rng-rank1.json", "flip")]


@pytest.fixture(scope="module")
def fell_back(
    blocks: Path, uninterrupted: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, str], tuple[subprocess.CompletedProcess, Path]]:
    """Every case of the test below resumed side by side (independent runs, each on its own
    copy): the finished process and its run directory."""
    root = tmp_path_factory.mktemp("fell_back")
    outs = {case: root / "-".join(case) / "run" for case in CORRUPT}
    for (file, damage), out in outs.items():
        DAMAGE[damage](_killed_at_5(uninterrupted, out) / file)
    runs = (_args(blocks, out, *RUN6, "--nproc-per-node", "2") for out in outs.values())
    procs = cli_all(*runs, check=False)
    return {case: (proc, outs[case]) for case, proc in zip(outs, procs, strict=True)}


@pytest.mark.slow
@pytest.mark.parametrize(("file", "damage"), CORRUPT)
def test_corrupt_latest_checkpoint_falls_back_to_the_previous_one(
    fell_back: dict, uninterrupted: Path, file: str, damage: str
) -> None:
    """Both ranks resume from step 2 (rank 0 decides; rank 1's own RNG file is checked too)
    and finish with the uninterrupted run's parameters, bit for bit."""
    proc, out = fell_back[file, damage]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert f"checkpoint step-00000004 is corrupt ({file}" in proc.stderr
    assert "); resuming from step-00000002" in proc.stderr
    assert json.loads(proc.stdout)["step"] == 6
    ours = _params(out / "checkpoints" / "step-00000006")
    theirs = _params(uninterrupted / "checkpoints" / "step-00000006")
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


@pytest.fixture(scope="module")
def payload_runs(
    blocks: Path, uninterrupted: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[bool, tuple[subprocess.CompletedProcess, Path]]:
    """Both cases of the test below resumed side by side: the process and its marker file."""
    root = tmp_path_factory.mktemp("payload")
    outs, markers = {}, {}
    for old_format in (False, True):
        out = outs[old_format] = root / str(old_format) / "run"
        markers[old_format] = root / str(old_format) / "pwned"
        latest = _killed_at_5(uninterrupted, out)
        if old_format:  # no checksums: weights-only loading alone must refuse it
            for folder in (out / "checkpoints").iterdir():
                (folder / "checksums.json").unlink()
        torch.save({"model": Payload(markers[old_format])}, latest / "state.pt")
    runs = (_args(blocks, out, *RUN6, "--nproc-per-node", "1") for out in outs.values())
    procs = cli_all(*runs, check=False)
    return {case: (proc, markers[case]) for case, proc in zip(outs, procs, strict=True)}


@pytest.mark.slow
@pytest.mark.parametrize("old_format", [False, True])
def test_pickle_payload_in_checkpoint_never_runs(payload_runs: dict, old_format: bool) -> None:
    proc, marker = payload_runs[old_format]
    assert not marker.exists()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "checkpoint step-00000004 is corrupt (state.pt" in proc.stderr
    assert json.loads(proc.stdout)["step"] == 6


@pytest.mark.slow
def test_no_good_checkpoint_stops_with_one_sentence(
    blocks: Path, uninterrupted: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    _killed_at_5(uninterrupted, out)
    for folder in (out / "checkpoints").iterdir():
        _truncate(folder / "state.pt")
    proc = cli(*_args(blocks, out, *RUN6, "--nproc-per-node", "2"), check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "rerun to resume" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "new --out" in errors[0], proc.stderr
    assert not (out / "checkpoints" / "step-00000006").exists()


@contextlib.contextmanager
def _running(args: list[str]):
    proc = subprocess.Popen(
        [sys.executable, "-m", "dataprep", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        for pid in [proc.pid, *descendants(proc.pid)]:  # never leave a job behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.communicate()


@pytest.mark.slow
def test_sigterm_saves_and_exits_143_with_one_line(blocks: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = _args(blocks, out, "--steps", "100000", "--checkpoint-every", "100000")
    with _running([*args, "--nproc-per-node", "2"]) as proc:
        wait_for(lambda: len(logged_steps(out)) >= 3, proc)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr[-3000:]
    assert "Traceback" not in stderr and "SignalException" not in stderr
    step = json.loads(stdout)["step"]
    line = f"stopped by SIGTERM at step {step}; checkpoint saved; rerun the same command to resume"
    assert stderr.strip().splitlines()[-1] == line
    assert "forcefully exiting" not in stderr  # no rank waited out the agent's 30 s grace
    choice = checkpoint.choose(out)
    assert choice.loaded is not None and choice.loaded.verified
    assert choice.loaded.path.name == f"step-{step:08d}"
    assert logged_steps(out) == list(range(1, step + 1))


@pytest.mark.slow
def test_sigkill_then_resume_logs_every_step_once(blocks: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = _args(blocks, out, "--steps", "60", "--checkpoint-every", "20", "--nproc-per-node", "1")
    first_ckpt = out / "checkpoints" / "step-00000020"
    with _running(args) as proc:  # killed (launcher and workers) a few steps after step 20
        wait_for(lambda: first_ckpt.exists() and max(logged_steps(out)) >= 23, proc)
    logged = logged_steps(out)
    saved = checkpoint.choose(out).loaded
    assert saved is not None and saved.train_state["step"] < max(logged) < 60  # steps to drop
    proc = cli(*args, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert logged_steps(out) == list(range(1, 61))


@pytest.mark.slow
def test_sigterm_while_ranks_start_exits_143_with_one_line(blocks: Path, tmp_path: Path) -> None:
    """Ranks still importing torch die of the forwarded signal: still one line, no traceback."""
    out = tmp_path / "run"
    args = _args(blocks, out, "--steps", "100000", "--checkpoint-every", "100000")
    with _running([*args, "--nproc-per-node", "2"]) as proc:
        wait_for(lambda: len(descendants(proc.pid)) >= 2, proc)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr[-3000:]
    assert stderr.strip().splitlines()[-1].startswith("stopped by SIGTERM ")
    assert "Traceback" not in stderr and "Error" not in stderr, stderr[-3000:]
