"""Issue 18: differentially private training (DP-SGD through Opacus).

Per-sample clipping is checked against brute force (one backward per sample, clipped by
hand) on the trainer's own models; epsilon against Google's `dp_accounting` (an independent
accountant); and real 2-process gloo runs record the epsilon spent, checkpoint the account,
and stop at the budget.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from helpers import cli, cli_all, token_blocks

from dataprep.train.config import TrainConfig
from dataprep.train.model import GPT, ModelShape
from dataprep.train.privacy import PrivateTraining

SEQ = 32
BASE = ("--model", "tiny", "--seq-len", str(SEQ), "--num-workers", "0", "--device", "cpu")


def _private(noise: float = 0.0, clip: float = 0.05) -> PrivateTraining:
    return PrivateTraining(
        epsilon=8.0, delta=1e-5, max_grad_norm=clip, noise_multiplier=noise, sample_rate=0.01
    )


def _lm_loss(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    return model(tokens[:, :-1], targets=tokens[:, 1:])


def _classify_loss(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    labels = tokens[:, 0] % 3
    return torch.nn.functional.cross_entropy(model(tokens), labels)


def _brute_force(model: torch.nn.Module, batches: list[torch.Tensor], loss_fn, clip: float):
    """Mean over samples of each sample's gradient clipped to `clip` (one backward each)."""
    total = [torch.zeros_like(p) for p in model.parameters()]
    clipped = samples = 0
    for batch in batches:
        for row in batch:
            model.zero_grad()
            loss_fn(model, row[None]).backward()
            grads = [p.grad.clone() for p in model.parameters()]
            norm = torch.sqrt(sum((g**2).sum() for g in grads))
            factor = min(1.0, clip / (float(norm) + 1e-6))
            clipped += factor < 1.0
            samples += 1
            for t, g in zip(total, grads, strict=True):
                t += factor * g
    return [t / samples for t in total], clipped


@pytest.mark.parametrize("task", ["lm", "classify"])
@pytest.mark.parametrize("accumulate", [1, 2])
def test_per_sample_clipping_matches_brute_force(task: str, accumulate: int) -> None:
    torch.manual_seed(0)
    shape = ModelShape(vocab_size=50, seq_len=SEQ, n_layer=2, n_head=2, d_model=32)
    if task == "classify":
        shape = ModelShape(50, SEQ, 2, 2, 32, n_classes=3)
    loss_fn = _lm_loss if task == "lm" else _classify_loss
    model = GPT(shape)
    oracle_model = copy.deepcopy(model)
    width = SEQ + 1 if task == "lm" else SEQ
    batches = [torch.randint(0, 50, (4, width)) for _ in range(accumulate)]
    clip = 0.05
    sampled, optimizer = _private(clip=clip).wrap(
        model, torch.optim.SGD(model.parameters(), lr=1.0), world=1, local_batch=4
    )
    for batch in batches:  # the trainer's way: one backward per micro-batch, no division
        loss_fn(sampled, batch).backward()
    assert optimizer.pre_step()  # clip, add (zero) noise, average: p.grad is the update
    expected, clipped = _brute_force(oracle_model, batches, loss_fn, clip)
    assert clipped == 4 * accumulate  # every sample's gradient is above 0.05: clipping is on
    for p, e in zip(model.parameters(), expected, strict=True):
        torch.testing.assert_close(p.grad, e, rtol=1e-4, atol=1e-7)


def _google_epsilon(history: list[tuple[float, float, int]], delta: float) -> float:
    import dp_accounting
    from dp_accounting.rdp import rdp_privacy_accountant

    orders = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))
    accountant = rdp_privacy_accountant.RdpAccountant(orders=orders)
    for sigma, rate, steps in history:
        event = dp_accounting.PoissonSampledDpEvent(rate, dp_accounting.GaussianDpEvent(sigma))
        accountant.compose(dp_accounting.SelfComposedDpEvent(event, steps))
    return accountant.get_epsilon(delta)


def test_epsilon_matches_an_independent_accountant() -> None:
    plan = _private(noise=1.1)
    for _ in range(700):
        plan.step_taken(True, print)
    plan.sample_rate = 0.02  # more processes after a resume: a second kind of step
    for _ in range(300):
        plan.step_taken(True, print)
    assert plan.history == [(1.1, 0.01, 700), (1.1, 0.02, 300)]
    oracle = _google_epsilon(plan.history, 1e-5)
    assert plan.spent() == pytest.approx(oracle, rel=1e-6)


def test_noise_is_calibrated_to_spend_the_target_at_the_last_step() -> None:
    cfg = TrainConfig(data="d", out="o", steps=500, batch_size=8, dp_epsilon=2.0, dp_delta=1e-6)
    plan = PrivateTraining.plan(cfg, rows=8000, world=2)
    assert plan.sample_rate == 16 / 8000
    assert _google_epsilon([(plan.noise_multiplier, plan.sample_rate, 500)], 1e-6) <= 2.0
    assert plan.spent(500) == pytest.approx(2.0, rel=0.02)  # the whole budget, not a fraction
    left = plan.steps_left()
    assert plan.spent(left) <= 2.0 < plan.spent(left + 1)


def test_a_batch_as_large_as_the_data_is_refused() -> None:
    from dataprep.errors import DataprepError

    cfg = TrainConfig(data="d", out="o", batch_size=64, dp_epsilon=1.0)
    with pytest.raises(DataprepError, match="no privacy is gained"):
        PrivateTraining.plan(cfg, rows=100, world=2)


@pytest.fixture(scope="module")
def blocks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return token_blocks(tmp_path_factory.mktemp("blocks"), SEQ)


def _train_args(data: Path, out: Path, *more: str) -> tuple[str, ...]:
    args = ("--nproc-per-node", "2", "--batch-size", "4", "--checkpoint-every", "5", *more)
    return ("train", str(data), "--out", str(out), *BASE, *args, "--json")


def _train(data: Path, out: Path, *more: str):
    return cli(*_train_args(data, out, *more), check=False)


def test_two_ranks_account_epsilon_and_stop_at_the_budget(blocks: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _train(blocks, out, "--steps", "10", "--dp-epsilon", "3", "--dp-max-grad-norm", "0.5")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    spent = [r["dp_epsilon"] for r in records if "dp_epsilon" in r]
    assert len(spent) == 10 and spent == sorted(spent) and spent[0] > 0
    assert 2.9 < spent[-1] <= 3.0 + 1e-6 and summary["dp_epsilon"] == spent[-1]
    state = json.loads((out / "checkpoints" / "step-00000010" / "train_state.json").read_text())
    account = state["privacy"]
    assert account["max_grad_norm"] == 0.5 and sum(h[2] for h in account["history"]) == 10
    oracle = _google_epsilon([tuple(h) for h in account["history"]], account["delta"])
    # the two accountants compute fractional RDP orders differently: agree to 0.1%, not 1e-6
    assert account["epsilon_spent"] == pytest.approx(oracle, rel=1e-3)

    # two independent resumes of the spent run, side by side: past the budget (refused), and
    # past it with --dp-on-budget warn (on a copy)
    warned = shutil.copytree(out, tmp_path / "warned")
    more, warn = cli_all(
        _train_args(blocks, out, "--steps", "20", "--dp-epsilon", "3", "--dp-max-grad-norm", "0.5"),
        _train_args(blocks, warned, "--steps", "12", "--dp-epsilon", "3", "--dp-on-budget", "warn"),
        check=False,
    )
    assert more.returncode == 2 and "privacy budget is spent" in more.stderr
    assert not (out / "checkpoints" / "step-00000011").exists()  # not one step past it
    assert warn.returncode == 0, warn.stderr
    assert "privacy budget reached at step 11" in warn.stderr
    assert json.loads(warn.stdout)["dp_epsilon"] > 3.0


def test_classifier_trains_privately(tmp_path: Path) -> None:
    """DP-SGD on the classifier's model (several ranks: the language-model test above)."""
    from dataprep.runner import run_stage

    rows = [
        {"text": ("good " if i % 2 else "bad ") * (3 + i % 5), "label": "pos" if i % 2 else "neg"}
        for i in range(200)
    ]
    (tmp_path / "in.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    shards, tok = tmp_path / "shards", tmp_path / "tok"
    run_stage("shard", {"shard_rows": 100}, shards, inputs=[str(tmp_path / "in.jsonl")])
    run_stage("tokenize", {"seq_len": 16, "mode": "truncate"}, tok, input_path=shards)
    out = tmp_path / "run"
    proc = cli(
        "train", tok, "--out", out, "--task", "classify", "--steps", "8", "--batch-size", "4",
        "--device", "cpu", "--nproc-per-node", "1", "--num-workers", "0", "--dp-epsilon", "5",
        "--json", check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert 4.5 < json.loads(proc.stdout)["dp_epsilon"] <= 5.0 + 1e-6


def test_compile_with_dp_is_one_sentence(blocks: Path, tmp_path: Path) -> None:
    proc = _train(blocks, tmp_path / "run", "--steps", "2", "--dp-epsilon", "1", "--compile")
    assert proc.returncode == 2
    assert "--compile cannot be combined with --dp-epsilon" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_without_opacus_it_names_the_extra(blocks: Path, tmp_path: Path) -> None:
    hidden = tmp_path / "no_opacus" / "opacus"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'opacus'\", name='opacus')\n"
    )
    env = {"PYTHONPATH": os.pathsep.join([str(hidden.parent), os.environ.get("PYTHONPATH", "")])}
    proc = cli(
        "train", str(blocks), "--out", str(tmp_path / "run"), *BASE, "--dp-epsilon", "1",
        check=False, env=env,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "needs Opacus (for --dp-epsilon): pip install 'dataprep[dp]'" in proc.stderr
    assert not (tmp_path / "run").exists()
