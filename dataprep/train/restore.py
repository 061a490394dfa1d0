"""Which checkpoint a starting run resumes from, decided once for every rank.

Rank 0 picks the newest checkpoint that verifies and loads and broadcasts its step, so all
ranks resume from the same one; a run whose checkpoints are all damaged, or whose data order
settings changed, is refused with the ways out rather than silently started afresh. So is a
resume with other optimizer settings: the checkpoint's optimizer state would keep its old lr
and weight decay while the schedule read the new settings, a silent mix of the two runs;
`--allow-optimizer-change` applies the new ones from the resumed step instead.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from dataprep.errors import DataprepError
from dataprep.train import checkpoint, provenance
from dataprep.train.config import TrainConfig
from dataprep.train.user_error import RunRefused


def resume_point(
    out: Path, rank: int, world: int, device: torch.device, warn: Callable[[str], None]
) -> checkpoint.Loaded | None:
    """The checkpoint to resume from (None: start fresh); `warn` hears why newer ones were
    skipped (rank 0 only)."""
    choice = checkpoint.choose(out) if rank == 0 else None
    decided = torch.zeros(1, dtype=torch.long, device=device)  # 0: start fresh
    if choice is not None:
        for line in choice.report():
            warn(line)
        if choice.loaded is not None:
            decided[0] = int(choice.loaded.train_state["step"])
        elif choice.damaged:
            decided[0] = -1  # all damaged: a user decision, not a silent fresh start
    if world > 1:
        dist.broadcast(decided, 0)
    step = int(decided.item())
    if step < 0:
        folder = out / "checkpoints"
        detail = ""
        if choice is not None:
            name, why = choice.damaged[0]
            detail = f" (newest, {name}: {why})"
        raise RunRefused(
            f"no checkpoint in {folder} can be resumed, all are damaged{detail}; start "
            "fresh with a new --out, or remove the damaged checkpoints to start over"
        )
    if step == 0:
        return None
    if choice is not None:
        return choice.loaded
    try:
        return checkpoint.read(out / "checkpoints" / f"step-{step:08d}", rank)
    except checkpoint.Damaged as exc:  # verified by rank 0 a moment ago: changed since
        raise DataprepError(f"checkpoint step-{step:08d} changed as it loaded: {exc}") from None


def check_same_order(
    cfg: TrainConfig,
    out: Path,
    found: checkpoint.Loaded,
    data: provenance.Provenance | None = None,
) -> None:
    """The settings that fix the data order must be those the run was started with, and the
    training data the checkpoint's (`data`, see `provenance`): otherwise resuming is refused
    the same way on every try, so say both ways out."""
    changes = check_settings(cfg, out, found.train_state)
    if data is not None:
        data.resume(out, found.train_state)
        if changes:
            data.optimizer_change(out, found.train_state, changes)


def check_settings(
    cfg: TrainConfig, out: Path, train_state: dict[str, Any]
) -> list[tuple[str, Any, Any]]:
    """`check_same_order` on a checkpoint's train state alone (what --resume-from checks
    before it moves anything). Returns the optimizer changes --allow-optimizer-change
    allowed, as (flag, checkpoint's value, new value)."""
    saved = train_state.get("config") or {}
    step = train_state.get("step")
    for key in ("batch_size", "seed"):
        then, now = saved.get(key), getattr(cfg, key)
        if then is not None and then != now:
            flag = "--" + key.replace("_", "-")
            raise DataprepError(
                f"cannot resume {out} from step {step} with {flag} {now}: the run "
                f"was started with {flag} {then}, which fixes its data order; pass "
                f"{flag} {then} to continue it, or a new --out to start fresh"
            )
    shape = [k for k in MODEL if k in saved and saved[k] != getattr(cfg, k)]
    if cfg.task == "classify" and saved.get("task") == "classify":
        shape += [k for k in ("label_col",) if k in saved and saved[k] != cfg.label_col]
    if shape:  # the weights would not load: a traceback in a rank, then "rerun to resume"
        now = " and ".join(f"{_flag(k)} {_spell(getattr(cfg, k))}" for k in shape)
        then = " and ".join(f"{_flag(k)} {_spell(saved[k])}" for k in shape)
        back = " and ".join(
            f"{_flag(k)} {_spell(saved[k])}" if saved[k] is not None else f"no {_flag(k)}"
            for k in shape
        )
        raise DataprepError(
            f"cannot resume {out} from step {step} with {now}: its checkpoint holds a model "
            f"built with {then}; pass {back} to continue it, or a new --out to start fresh"
        )
    changes = [
        (_flag(key), saved[key], getattr(cfg, key))
        for key in OPTIMIZER
        if key in saved and saved[key] != getattr(cfg, key)
    ]
    if changes and not cfg.allow_optimizer_change:
        now = " and ".join(f"{flag} {_spell(new)}" for flag, _, new in changes)
        then = " and ".join(f"{flag} {_spell(old)}" for flag, old, _ in changes)
        back = " and ".join(
            f"{f} {_spell(old)}" if old is not None else f"no {f}" for f, old, _ in changes
        )
        raise DataprepError(
            f"cannot resume {out} from step {step} with {now}: its checkpoint was saved with "
            f"{then} (its optimizer state and schedule); pass {back} to continue it, "
            f"--allow-optimizer-change to continue with the new settings from step {step}, "
            "or a new --out to start fresh"
        )
    return changes


# what the model was built with: other values cannot load its weights
MODEL = ("model", "n_layer", "n_head", "d_model", "task")

# what the optimizer and its schedule were built with (--steps may grow: it extends a run)
OPTIMIZER = ("lr", "warmup_steps", "lr_decay_steps", "min_lr_ratio", "weight_decay")
OPTIMIZER += ("grad_clip", "grad_accum")


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _spell(value: Any) -> str:
    if value is None:
        return "unset (the default)"
    return f"{value:g}" if isinstance(value, float) else str(value)


def apply_settings(cfg: TrainConfig, optimizer: Any, scheduler: Any) -> None:
    """With --allow-optimizer-change, the loaded optimizer and schedule take the new peak lr
    and weight decay (loading kept the checkpoint's); the schedule's shape and the clipping
    are read from `cfg` at every step anyway."""
    if not cfg.allow_optimizer_change:
        return
    factor = scheduler.lr_lambdas[0](scheduler.last_epoch)  # the next step's, as stepping gives
    scheduler.base_lrs = [cfg.lr for _ in optimizer.param_groups]
    for group, decay in zip(optimizer.param_groups, (cfg.weight_decay, 0.0), strict=True):
        group.update(initial_lr=cfg.lr, lr=cfg.lr * factor, weight_decay=decay)
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
