"""Atomic checkpoints: every rank writes into a temp dir, rank 0 renames it into place.

A directory named `step-NNNNNNNN` is complete by construction; `.tmp-` ones are leftovers of a
crash and are ignored (and removed by the next save).
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

PREFIX = "step-"


def latest(root: Path) -> Path | None:
    complete = sorted(p for p in (root / "checkpoints").glob(f"{PREFIX}*") if p.is_dir())
    return complete[-1] if complete else None


def rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def save(
    root: Path,
    step: int,
    rank: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    train_state: dict[str, Any],
    keep: int,
) -> Path:
    """Collective: every rank must call it at the same step."""
    folder = root / "checkpoints"
    final = folder / f"{PREFIX}{step:08d}"
    tmp = folder / f".tmp-{PREFIX}{step:08d}"
    if rank == 0:
        for stale in folder.glob(".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir(parents=True, exist_ok=True)
    _barrier()
    torch.save(rng_state(), tmp / f"rng-rank{rank}.pt")
    if rank == 0:
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
            },
            tmp / "state.pt",
        )
        (tmp / "train_state.json").write_text(json.dumps(train_state, indent=2))
    _barrier()
    if rank == 0:
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        for old in sorted(p for p in folder.glob(f"{PREFIX}*") if p.is_dir())[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    _barrier()
    return final


def load(path: Path, rank: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """(model/optimizer/scheduler states, train_state, this rank's RNG state or None)."""
    states = torch.load(path / "state.pt", map_location="cpu", weights_only=False)
    train_state = json.loads((path / "train_state.json").read_text())
    rng_path = path / f"rng-rank{rank}.pt"
    rng = torch.load(rng_path, weights_only=False) if rng_path.exists() else None
    return states, train_state, rng


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
