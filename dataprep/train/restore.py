"""Which checkpoint a starting run resumes from, decided once for every rank.

Rank 0 picks the newest checkpoint that verifies and loads and broadcasts its step, so all
ranks resume from the same one; a run whose checkpoints are all damaged, or whose data order
settings changed, is refused with the ways out rather than silently started afresh.
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
    check_settings(cfg, out, found.train_state)
    if data is not None:
        data.resume(out, found.train_state)


def check_settings(cfg: TrainConfig, out: Path, train_state: dict[str, Any]) -> None:
    """`check_same_order` on a checkpoint's train state alone (what --resume-from checks
    before it moves anything)."""
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
