"""`dataprep train` on CPU with gloo and 2 real processes: learning, exact resume, faults,
and elastic resume with another process count (no sample repeated or lost)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import xxhash
from helpers import cli, cli_all, column, descendants

from dataprep.executors.local import LocalExecutor
from dataprep.runner import run_stage

SEQ = 32


@pytest.fixture(scope="module")
def blocks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """160 distinct blocks: each 32-byte document plus its end-of-text id is one block."""
    root = tmp_path_factory.mktemp("blocks")
    docs = [
        json.dumps({"text": f"doc {i:05d} " + "abcdefghijklmnopqrstuvwxyz"[: SEQ - 10]})
        for i in range(160)
    ]
    assert all(len(json.loads(d)["text"]) == SEQ for d in docs)
    (root / "in.jsonl").write_text("\n".join(docs) + "\n")
    run_stage(
        "shard",
        {"shard_rows": 50},
        root / "shards",
        inputs=[str(root / "in.jsonl")],
        executor=LocalExecutor(1),
    )
    run_stage(
        "tokenize",
        {"seq_len": SEQ},
        root / "tok",
        input_path=root / "shards",
        executor=LocalExecutor(1),
    )
    return root / "tok"


TRAIN_FLAGS = f"--model tiny --seq-len {SEQ} --batch-size 4 --num-workers 0 --device cpu --json"


def _train_args(data: Path, out: Path, *args: str) -> list[str]:
    return ["train", str(data), "--out", str(out), *TRAIN_FLAGS.split(), *args]


def _train(data: Path, out: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return cli(*_train_args(data, out, *args), check=check)


def _final_params(out: Path) -> dict[str, torch.Tensor]:
    latest = sorted((out / "checkpoints").glob("step-*"))[-1]
    return torch.load(latest / "state.pt", weights_only=False)["model"]


def _traced(out: Path) -> list[str]:
    rows = []
    for trace in sorted(out.glob("samples-rank*.txt")):
        for line in trace.read_text().splitlines():
            rows += line.split()[1:]
    return rows


def _all_blocks(data: Path) -> list[str]:
    import numpy as np

    return [
        xxhash.xxh64(np.asarray(b, np.int32).tobytes()).hexdigest() for b in column(data, "tokens")
    ]


TWO = ("--checkpoint-every", "8", "--nproc-per-node", "2", "--lr-decay-steps", "16")
TWO += ("--trace-samples",)


@pytest.fixture(scope="module")
def runs(blocks: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The module's independent 2-process runs, started together (they overlap on 2 cores):
    16 steps straight; the same run stopped at step 8 (a test resumes it); 16 steps with
    fp16 gradient compression. Each run's --json summary is kept as `summary.json` beside it."""
    root = tmp_path_factory.mktemp("runs")
    more = {
        "straight": ("--steps", "16"),
        "half": ("--steps", "8"),
        "fp16": ("--steps", "16", "--grad-compression", "fp16"),
    }
    done = cli_all(*(_train_args(blocks, root / k / "run", *v, *TWO) for k, v in more.items()))
    for name, proc in zip(more, done, strict=True):
        (root / name / "summary.json").write_text(proc.stdout)
    return {name: root / name / "run" for name in more}


@pytest.fixture(scope="module")
def straight(runs: dict[str, Path]) -> Path:
    return runs["straight"]


@pytest.mark.slow
def test_resume_gives_identical_parameters_and_data(
    blocks: Path, runs: dict[str, Path], straight: Path
) -> None:
    out = runs["half"]  # only this test uses (and resumes) it
    first = json.loads((out.parent / "summary.json").read_text())
    assert first["step"] == 8
    second = json.loads(_train(blocks, out, "--steps", "16", *TWO).stdout)
    assert second["step"] == 16
    ours, theirs = _final_params(out), _final_params(straight)
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    for rank in (0, 1):  # the same samples in the same order on each rank
        name = f"samples-rank{rank}.txt"
        assert (out / name).read_text() == (straight / name).read_text()
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 17))  # appended on resume, numbered from 1


@pytest.mark.slow
def test_resume_from_a_mid_run_checkpoint_with_gradient_accumulation(
    blocks: Path, tmp_path: Path
) -> None:
    """The trainer fetches each step's first batch while the last step still runs, so a
    mid-run checkpoint must record the reader's position before that batch."""
    common = ("--grad-accum", "2", "--nproc-per-node", "1", "--lr-decay-steps", "10")
    common += ("--num-workers", "1", "--checkpoint-every", "5", "--trace-samples")
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    _train(blocks, straight, "--steps", "10", *common)
    mid = straight / "checkpoints" / "step-00000005"  # written with a batch fetched ahead
    shutil.copytree(mid, resumed / "checkpoints" / mid.name)
    _train(blocks, resumed, "--steps", "10", *common)
    ours, theirs = _final_params(resumed), _final_params(straight)
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    straight_trace = (straight / "samples-rank0.txt").read_text().splitlines()
    assert len(straight_trace) == 20  # 10 steps x 2 micro-batches
    assert (resumed / "samples-rank0.txt").read_text().splitlines() == straight_trace[10:]


@pytest.mark.slow
def test_fp16_gradient_compression(runs: dict[str, Path], straight: Path) -> None:
    """The DDP hook really runs (parameters differ from the uncompressed run by the 16-bit
    rounding of the gradients, and only by that) and changes nothing about the data."""
    out = runs["fp16"]  # the same flags as `straight`, plus --grad-compression fp16
    ours, theirs = _final_params(out), _final_params(straight)
    diffs = {k: (ours[k] - theirs[k]).abs().max().item() for k in ours}
    assert any(d > 0 for d in diffs.values())
    assert max(diffs.values()) < 1e-3  # 16 Adam steps of lr 3e-4 move a weight up to ~5e-3
    for rank in (0, 1):
        name = f"samples-rank{rank}.txt"
        assert (out / name).read_text() == (straight / name).read_text()


@pytest.mark.slow
def test_killed_worker_restarts_from_checkpoint_and_matches(
    blocks: Path, straight: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    more = "--steps 16 --checkpoint-every 4 --nproc-per-node 2 --max-restarts 1"
    args = [sys.executable, "-m", "dataprep", *_train_args(blocks, out, *more.split())]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and not (out / "checkpoints" / "step-00000004").exists():
        time.sleep(0.005)
    workers = [
        p for p in descendants(proc.pid) if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()
    ]
    assert workers, "no worker process found"
    os.kill(workers[-1], signal.SIGKILL)
    try:
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        for pid in [proc.pid, *descendants(proc.pid)]:  # never leave a hung job behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 0, stderr[-2000:]
    assert json.loads(stdout)["step"] == 16
    ours, theirs = _final_params(out), _final_params(straight)
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


@pytest.mark.slow
def test_elastic_resume_sees_every_sample_once(blocks: Path, tmp_path: Path) -> None:
    """160 blocks, 4 per process per step: stop mid-epoch on 2 processes, resume on 1, stop
    mid-epoch again, resume on 2 and finish the epoch exactly; together the runs saw every
    block once (one chain covers both 2 -> 1 and 1 -> 2)."""
    out = tmp_path / "run"
    common = ("--lr-decay-steps", "100", "--checkpoint-every", "100", "--trace-samples")
    for steps, nproc, seen in ((5, 2, 40), (15, 1, 80), (25, 2, 160)):  # 40, 40, the last 80
        _train(blocks, out, "--steps", str(steps), "--nproc-per-node", str(nproc), *common)
        assert len(_traced(out)) == seen
    seen = _traced(out)
    assert len(seen) == len(set(seen)) == 160
    assert sorted(seen) == sorted(_all_blocks(blocks))


@pytest.mark.slow
def test_loss_falls_on_the_sample_corpus(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    run_stage("shard", {}, tmp_path / "shards", inputs=[str(root / "sample_data")])
    run_stage("tokenize", {"seq_len": 64}, tmp_path / "tok", input_path=tmp_path / "shards")
    out = tmp_path / "run"
    flags = "--model tiny --steps 150 --batch-size 8 --lr 3e-3 --device cpu --nproc-per-node 2"
    more = "--checkpoint-every 150 --num-workers 1 --eval-every 75 --eval-batches 5"
    cli(
        "train",
        tmp_path / "tok",
        "--out",
        out,
        "--eval-dir",
        tmp_path / "tok",
        *flags.split(),
        *more.split(),
    )
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    start, end = sum(losses[:5]) / 5, sum(losses[-10:]) / 10
    assert start > 5.0 and end < start - 1.5, (start, end)
    evals = [r["eval_loss"] for r in records if "eval_loss" in r]
    assert len(evals) == 2 and evals[1] < evals[0] and abs(evals[1] - end) < 0.5


@pytest.mark.slow
def test_classifier_with_sample_weights(tmp_path: Path) -> None:
    """Truncate-mode blocks with a label and a `sample_weight` column (what resample adds)."""
    import pyarrow.parquet as pq

    rows = [
        {"text": ("good " if i % 3 else "bad ") * (3 + i % 5), "label": "pos" if i % 3 else "neg"}
        for i in range(400)
    ]
    (tmp_path / "in.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    run_stage(
        "shard", {"shard_rows": 100}, tmp_path / "shards", inputs=[str(tmp_path / "in.jsonl")]
    )
    run_stage(
        "tokenize",
        {"seq_len": 48, "mode": "truncate"},
        tmp_path / "tok",
        input_path=tmp_path / "shards",
    )
    run_stage(
        "resample",
        {"label": "label", "strategy": "weights"},
        tmp_path / "weighted",
        input_path=tmp_path / "tok",
    )
    assert "sample_weight" in pq.read_schema(next((tmp_path / "weighted").glob("*.parquet"))).names
    out = tmp_path / "run"
    flags = "--task classify --steps 40 --batch-size 8 --lr 3e-3 --device cpu --nproc-per-node 1"
    proc = cli(
        "train",
        tmp_path / "weighted",
        "--out",
        out,
        *flags.split(),
        "--num-workers",
        "0",
        "--checkpoint-every",
        "40",
        "--json",
    )
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert json.loads(proc.stdout)["step"] == 40
    assert sum(r["loss"] for r in records[-5:]) / 5 < 0.2  # the two classes are trivially apart


@pytest.mark.slow
def test_started_by_torchrun_directly(blocks: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "dataprep",
            "train",
            str(blocks),
            "--out",
            str(out),
            "--model",
            "tiny",
            "--steps",
            "4",
            "--batch-size",
            "4",
            "--num-workers",
            "0",
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1, 2, 3, 4]  # rank 0 logs, once per step


HELD_PORT_RUN = """
import runpy, socket, sys
held = socket.socket()
held.bind(("127.0.0.1", 0))
held.listen()  # another process's port: it accepts and never answers
import dataprep.train.launch as launch
launch._free_port = lambda: held.getsockname()[1]  # what an up-front pick may return
sys.argv = ["dataprep", *sys.argv[1:]]
runpy.run_module("dataprep", run_name="__main__")
"""


def test_the_rendezvous_port_is_bound_by_the_run_not_picked_before(
    blocks: Path, tmp_path: Path
) -> None:
    """Runs started side by side must never meet at one rendezvous: the run's own store binds
    a free port (as `torchrun --standalone` does). A port picked free beforehand can be taken
    before the store binds it; the run then joined whatever listened there and hung."""
    args = _train_args(blocks, tmp_path / "run", "--steps", "2", "--nproc-per-node", "2")
    proc = subprocess.run(
        [sys.executable, "-c", HELD_PORT_RUN, *args],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["step"] == 2


def test_bad_input_stops_with_one_sentence(blocks: Path, tmp_path: Path) -> None:
    shards = blocks.parent / "shards"
    cases = [
        ((shards,), "has no token blocks"),
        ((blocks, "--seq-len", "64"), "--seq-len 64 does not match"),
        ((blocks, "--device", "cuda"), "no CUDA GPU"),
        ((blocks, "--device", "cpu", "--grad-compression", "bf16"), "needs GPUs (NCCL)"),
        ((blocks, "--task", "classify"), "needs a label column"),
        ((tmp_path / "missing",), "does not exist"),
    ]
    # each stops in the launcher before any rank starts: run them side by side
    procs = cli_all(*(("train", *args, "--out", tmp_path / "o") for args, _ in cases), check=False)
    for (args, message), proc in zip(cases, procs, strict=True):
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_trains_on_encrypted_blocks(blocks: Path, tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    cli("keygen", "-o", keys)
    cli("encrypt", blocks, "-o", tmp_path / "enc", "--key-file", keys, "-q")
    out = tmp_path / "run"
    without = _train_args(tmp_path / "enc", tmp_path / "refused", "--steps", "2")
    with_keys = _train_args(tmp_path / "enc", out, "--steps", "4", "--nproc-per-node", "1")
    with_keys += ["--key-file", str(keys), "--trace-samples"]
    refused, done = cli_all(without, with_keys, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert refused.returncode == 2 and "pass --key-file" in refused.stderr
    assert json.loads(done.stdout)["step"] == 4
    assert set(_traced(out)) <= set(_all_blocks(blocks))  # decrypted blocks, not ciphertext
    assert len(_traced(out)) == 16
