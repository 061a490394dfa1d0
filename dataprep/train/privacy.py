"""Differentially private training (DP-SGD) through Opacus, the library most DP work uses.

Opacus computes each sample's gradient, clips it to `max_grad_norm`, adds Gaussian noise to
the sum and accounts the privacy spent (RDP accountant). The noise multiplier is calibrated
once, when a run starts, so that `--steps` steps spend exactly the target epsilon at the
run's sampling rate (global batch / rows); the checkpoint keeps it and the accountant's
history, so a resumed run adds to the same account. Taking more steps than that budget allows
(a larger `--steps`, or more processes, which raises the sampling rate) stops the run at the
last step within budget, or warns, as the user chose.

Accounting note: the RDP accountant assumes Poisson sampling; the reader draws shuffled
fixed-size batches (exactly once per epoch, resumable), for which the same accounting is the
usual approximation in practice (as in Opacus with `poisson_sampling=False`), not a proof.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from dataprep import dataset
from dataprep.errors import DataprepError
from dataprep.train import stops
from dataprep.train.config import TrainConfig
from dataprep.train.user_error import RunRefused

# Opacus' hints, not problems: the best RDP order at the edge of the range it searches (a
# looser but valid bound), and its hook on the first layer, whose input needs no gradient.
warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
warnings.filterwarnings("ignore", message="Full backward hook is firing when gradients")

_MAX_STEPS_SEARCH = 1 << 40
# The RDP orders Opacus' RDPAccountant uses by default.
_ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))


@dataclass
class PrivateTraining:
    """One run's DP-SGD settings and privacy account (the same on every rank)."""

    epsilon: float  # the target: the run may not spend more (with on_budget="stop")
    delta: float
    max_grad_norm: float
    noise_multiplier: float
    sample_rate: float  # global batch / rows, at the current process count
    on_budget: str = "stop"
    history: list[tuple[float, float, int]] = field(default_factory=list)  # (sigma, q, steps)
    _budget_steps: int | None = field(default=None, repr=False)
    _rdp: dict[tuple[float, float], Any] = field(default_factory=dict, repr=False)
    _warned: bool = field(default=False, repr=False)

    @classmethod
    def plan(cls, cfg: TrainConfig, rows: int, world: int) -> PrivateTraining:
        """Calibrate the noise so that `cfg.steps` steps spend exactly `cfg.dp_epsilon`."""
        from opacus.accountants.utils import get_noise_multiplier

        assert cfg.dp_epsilon is not None
        rate = sample_rate(cfg, rows, world)
        delta = cfg.dp_delta if cfg.dp_delta is not None else 1 / (10 * rows)
        sigma = get_noise_multiplier(
            target_epsilon=cfg.dp_epsilon,
            target_delta=delta,
            sample_rate=rate,
            steps=cfg.steps,
            accountant="rdp",
        )
        return cls(cfg.dp_epsilon, delta, cfg.dp_max_grad_norm, sigma, rate, cfg.dp_on_budget)

    def resumed(self, saved: dict[str, Any]) -> None:
        """Continue the account of a checkpoint: its noise and its history of steps."""
        self.noise_multiplier = float(saved["noise_multiplier"])
        self.delta = float(saved["delta"])
        self.history = [(float(s), float(q), int(n)) for s, q, n in saved["history"]]
        self._budget_steps = None

    def check_start(self, step: int, last_step: int) -> None:
        """A resumed run whose budget is already spent does not take one more step."""
        if step < last_step and self.on_budget == "stop" and self.steps_left() <= 0:
            raise RunRefused(
                f"the privacy budget is spent: step {step} reached epsilon {self.spent():.3g} "
                f"of --dp-epsilon {self.epsilon:g}; pass a larger --dp-epsilon to train "
                "further (or --dp-on-budget warn)"
            )

    def state(self) -> dict[str, Any]:
        """What a checkpoint records (also what `dataprep lineage` shows of a DP run)."""
        return {
            "epsilon_target": self.epsilon,
            "epsilon_spent": self.spent(),
            "delta": self.delta,
            "max_grad_norm": self.max_grad_norm,
            "noise_multiplier": self.noise_multiplier,
            "sample_rate": self.sample_rate,
            "accountant": "rdp",
            "history": [list(h) for h in self.history],
        }

    # --- accounting --------------------------------------------------------------------------

    def step_taken(self, more_to_come: bool, warn: Callable[[str], None]) -> None:
        """Account one optimizer step; at the budget, stop the run (or warn once) if it
        would take another step."""
        sigma, rate = self.noise_multiplier, self.sample_rate
        if self.history and self.history[-1][:2] == (sigma, rate):
            self.history[-1] = (sigma, rate, self.history[-1][2] + 1)
        else:
            self.history.append((sigma, rate, 1))
        if not more_to_come or self.steps_left() > 0 or self._warned:
            return
        spent = f"epsilon {self.spent():.3g} of --dp-epsilon {self.epsilon:g} spent"
        if self.on_budget == "stop":
            stops.request("dp-budget")
            warn(f"privacy budget reached at step {self.taken()} ({spent}); stopping")
        else:
            warn(f"privacy budget reached at step {self.taken()} ({spent}); going on past it")
        self._warned = True

    def spent(self, more_steps: int = 0) -> float:
        """Epsilon spent so far (or after `more_steps` further steps), at this run's delta.

        RDP adds up over steps, so one step's RDP per (noise, rate) is computed once and
        scaled: the same figure as Opacus' RDPAccountant, in microseconds instead of ms."""
        from opacus.accountants.analysis.rdp import get_privacy_spent

        history = list(self.history)
        if more_steps:
            history.append((self.noise_multiplier, self.sample_rate, more_steps))
        if not history:
            return 0.0
        rdp = sum(n * self._one_step_rdp(sigma, rate) for sigma, rate, n in history)
        eps, _ = get_privacy_spent(orders=_ORDERS, rdp=rdp, delta=self.delta)
        return float(eps)

    def _one_step_rdp(self, sigma: float, rate: float) -> Any:
        from opacus.accountants.analysis.rdp import compute_rdp

        key = (sigma, rate)
        if key not in self._rdp:
            self._rdp[key] = compute_rdp(q=rate, noise_multiplier=sigma, steps=1, orders=_ORDERS)
        return self._rdp[key]

    def steps_left(self) -> int:
        """Further steps that stay within the target epsilon (searched once, then counted)."""
        if self._budget_steps is None:
            low, high = 0, 1
            while high < _MAX_STEPS_SEARCH and self.spent(high) <= self.epsilon:
                low, high = high, high * 2
            while high - low > 1:  # spent(low) is within budget, spent(high) is not
                middle = (low + high) // 2
                low, high = (middle, high) if self.spent(middle) <= self.epsilon else (low, middle)
            self._budget_steps = low + self.taken()
        return self._budget_steps - self.taken()

    def taken(self) -> int:
        return sum(n for _, _, n in self.history)

    # --- the model and optimizer -------------------------------------------------------------

    def wrap(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, world: int, local_batch: int
    ) -> tuple[nn.Module, torch.optim.Optimizer]:
        """Per-sample gradients on `model`; an optimizer that clips, noises and (under DDP)
        all-reduces them. Noise is drawn on rank 0 only, so the sum carries it once."""
        from opacus import GradSampleModule
        from opacus.distributed import DifferentiallyPrivateDistributedDataParallel
        from opacus.optimizers import DistributedDPOptimizer, DPOptimizer

        try:
            sampled: nn.Module = GradSampleModule(model, loss_reduction="mean")
        except NotImplementedError as exc:
            raise DataprepError(f"--dp-epsilon cannot train this model: {exc}") from None
        kind = DPOptimizer
        if world > 1:
            sampled = DifferentiallyPrivateDistributedDataParallel(sampled)
            kind = DistributedDPOptimizer
        private = kind(
            optimizer,
            noise_multiplier=self.noise_multiplier,
            max_grad_norm=self.max_grad_norm,
            expected_batch_size=local_batch,
            loss_reduction="mean",
        )
        return sampled, private


def plan_for(cfg: TrainConfig, world: int) -> PrivateTraining | None:
    """This run's DP-SGD plan, or None when it trains without differential privacy."""
    if cfg.dp_epsilon is None:
        return None
    return PrivateTraining.plan(cfg, dataset.read_manifest(cfg.data).rows, world)


def sample_rate(cfg: TrainConfig, rows: int, world: int) -> float:
    batch = cfg.batch_size * cfg.grad_accum * world
    if batch >= rows:
        raise DataprepError(
            f"--dp-epsilon needs batches smaller than the dataset: a global batch of {batch} "
            f"samples samples all {rows} rows every step, so no privacy is gained; lower "
            "--batch-size or --grad-accum"
        )
    return batch / rows
