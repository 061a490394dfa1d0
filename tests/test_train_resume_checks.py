"""Resuming a run with other optimizer settings or another eval set: refused in one sentence
naming what differs (the checkpoint's value and the new one) and the ways out, unless the
override asks for it; then the new settings really apply from the resumed step.

Real `dataprep train` runs (the tiny model, a few steps, gloo on CPU, 2 ranks for one
refusal). Oracle for the applied learning rate: the documented schedule written out in
test_i15_train (linear warmup, cosine to 0.1 x lr over --steps).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import cli, cli_all, token_blocks
from test_i15_train import _schedule

from dataprep import dataset
from dataprep.executors.local import LocalExecutor
from dataprep.runner import run_stage

SEQ = 32
BASE = ("--model", "tiny", "--seq-len", str(SEQ), "--num-workers", "0", "--device", "cpu")
FIRST = ("--batch-size", "4", "--warmup-steps", "2", "--lr", "1e-3", "--eval-every", "2")
FIRST += ("--eval-batches", "2", "--checkpoint-every", "2")


def _eval_blocks(root: Path) -> Path:
    """Held-out token blocks other than the training ones (another manifest digest)."""
    docs = [json.dumps({"text": f"held out {i:04d} zyxwvutsrqponm"}) for i in range(60)]
    (root / "in.jsonl").write_text("\n".join(docs) + "\n")
    run_stage("shard", {"shard_rows": 30}, root / "shards", inputs=[str(root / "in.jsonl")])
    one = LocalExecutor(1)
    run_stage("tokenize", {"seq_len": SEQ}, root / "tok", input_path=root / "shards", executor=one)
    return root / "tok"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Training blocks, two eval sets, and a run finished at step 4 (evaluated on the first)."""
    root = tmp_path_factory.mktemp("resume")
    blocks = token_blocks(root, SEQ)
    (root / "e1").mkdir()
    (root / "e2").mkdir()
    ev1 = _eval_blocks(root / "e1")
    ev2 = root / "e2" / "tok"
    shutil.copytree(blocks, ev2)  # another digest: the training blocks held out as eval
    run = root / "run"
    args = ("train", blocks, "--out", run, *BASE, *FIRST, "--eval-dir", ev1, "--steps", "4")
    proc = cli(*args, "--nproc-per-node", "1", "--quiet", check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"blocks": blocks, "ev1": ev1, "ev2": ev2, "run": run}


def _copy(world: dict[str, Path], to: Path) -> Path:
    shutil.copytree(world["run"], to)
    return to


def _resume(world: dict[str, Path], out: Path, *more: object) -> tuple[str, ...]:
    """The first run's command on `out`, with `more` (later flags win)."""
    args = ("train", world["blocks"], "--out", out, *BASE, *FIRST, "--eval-dir", world["ev1"])
    return tuple(map(str, (*args, "--steps", "6", "--nproc-per-node", "1", *more)))


def _error(proc) -> str:
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    [line] = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert proc.stderr.strip() == line, proc.stderr[-3000:]
    return line


def _steps(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").iterdir())


@pytest.mark.slow
def test_changed_lr_or_eval_set_is_refused_in_one_sentence(
    world: dict[str, Path], tmp_path: Path
) -> None:
    """--lr (2 gloo ranks: both refuse, one sentence), --lr with --resume-from (before
    anything moves), another --eval-dir, another --eval-batches and another model shape:
    each names the checkpoint's value and the new one; nothing is trained or moved."""
    runs = {k: _copy(world, tmp_path / k) for k in ("lr", "back", "eval", "batches", "layers")}
    digest = {k: dataset.read_manifest(world[k]).digest() for k in ("ev1", "ev2")}
    lr, back, other, batches, layers = cli_all(
        _resume(world, runs["lr"], "--lr", "2e-3", "--nproc-per-node", "2"),
        _resume(world, runs["back"], "--lr", "2e-3", "--resume-from", "2"),
        _resume(world, runs["eval"], "--eval-dir", world["ev2"]),
        _resume(world, runs["batches"], "--eval-batches", "3"),
        _resume(world, runs["layers"], "--n-layer", "3"),  # was a load traceback in the rank
        check=False,
    )
    for proc in (lr, back):
        line = _error(proc)
        assert "--lr 0.002" in line and "--lr 0.001" in line, line
        assert "--allow-optimizer-change" in line and "new --out" in line, line
    line = _error(other)
    assert digest["ev1"] in line and digest["ev2"] in line, line
    assert "--allow-data-change" in line and "new --out" in line, line
    line = _error(batches)
    assert "--eval-batches 3" in line and "--eval-batches 2" in line, line
    line = _error(layers)
    assert "--n-layer 3" in line and "no --n-layer" in line and "new --out" in line, line
    for run in runs.values():
        assert _steps(run) == _steps(world["run"]) and not (run / "rollbacks").exists()


@pytest.mark.slow
def test_allowed_changes_apply_from_the_resumed_step(
    world: dict[str, Path], tmp_path: Path
) -> None:
    """--allow-optimizer-change: steps 5 and 6 use the new peak lr in the documented schedule
    (not the checkpoint's 1e-3), and a later resume with it needs no flag; --allow-data-change
    continues on the other eval set, saying so and logging the change."""
    runs = {k: _copy(world, tmp_path / k) for k in ("lr", "eval")}
    lr, other = cli_all(
        _resume(world, runs["lr"], "--lr", "2e-3", "--allow-optimizer-change", "--json"),
        _resume(world, runs["eval"], "--eval-dir", world["ev2"], "--allow-data-change"),
        check=False,
    )
    assert lr.returncode == 0, lr.stderr[-3000:]
    assert "--lr" in lr.stderr and "0.001" in lr.stderr and "0.002" in lr.stderr, lr.stderr
    records = [json.loads(x) for x in (runs["lr"] / "metrics.jsonl").read_text().splitlines()]
    logged = {r["step"]: r["lr"] for r in records if "lr" in r}
    assert logged[4] == pytest.approx(_schedule(4, 1e-3, 2, 4))
    assert [logged[5], logged[6]] == pytest.approx([_schedule(s, 2e-3, 2, 6) for s in (5, 6)])
    assert other.returncode == 0, other.stderr[-3000:]
    assert "eval" in other.stderr and dataset.read_manifest(world["ev2"]).digest() in other.stderr
    more = cli(*_resume(world, runs["lr"], "--lr", "2e-3", "--steps", "7"), check=False)
    assert more.returncode == 0, more.stderr[-3000:]
