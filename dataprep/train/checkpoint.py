"""Atomic, checksummed, weights-only checkpoints.

Every rank writes into a temp dir, rank 0 lists size and xxh3-128 of each file in
`checksums.json` and renames the dir into place: a `step-NNNNNNNN` folder is complete by
construction, and `.tmp-` ones are leftovers of a crash (removed by the next save). Nothing in
a checkpoint can run code when read: tensors load with `weights_only=True`, everything else is
JSON. On resume the newest checkpoint that verifies and loads is used; damaged ones are named.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from dataprep.train import checksums, rng

PREFIX = "step-"
STATE = "state.pt"  # model, optimizer and scheduler state dicts: tensors and plain values
TRAIN_STATE = "train_state.json"  # step, reader position, config
_RNG = re.compile(r"rng-rank(\d+)\.(json|pt)")  # one per rank; `.pt`: earlier versions


class Damaged(Exception):
    """A checkpoint that cannot be trusted; the message names the file and the reason."""


@dataclass
class Loaded:
    path: Path
    states: dict[str, Any]  # "model", "optimizer", "scheduler"
    train_state: dict[str, Any]
    rng: dict[str, Any] | None  # this rank's (None: the run had fewer ranks)
    verified: bool  # False: written before checksums existed


@dataclass
class Choice:
    """What a resume starts from (None: nothing usable) and why newer checkpoints were not."""

    loaded: Loaded | None
    damaged: list[tuple[str, str]] = field(default_factory=list)  # (folder name, reason)

    def report(self) -> list[str]:
        target = "no older one is usable"
        if self.loaded is not None:
            target = f"resuming from {self.loaded.path.name}"
        lines = [f"checkpoint {name} is corrupt ({why}); {target}" for name, why in self.damaged]
        if self.loaded is not None and not self.loaded.verified:
            lines.append(
                f"checkpoint {self.loaded.path.name} has no checksums (written by an earlier "
                "version); loading it unverified"
            )
        return lines


def complete(root: Path) -> list[Path]:
    """The renamed-into-place checkpoint folders, oldest first."""
    folder = root / "checkpoints"
    return sorted(p for p in folder.glob(f"{PREFIX}*") if p.is_dir() and _step(p) is not None)


def latest(root: Path) -> Path | None:
    found = complete(root)
    return found[-1] if found else None


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
    (tmp / f"rng-rank{rank}.json").write_text(json.dumps(rng.capture()))
    if rank == 0:
        states = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
        }
        torch.save(states, tmp / STATE)
        (tmp / TRAIN_STATE).write_text(json.dumps(train_state, indent=2))
    _barrier()
    if rank == 0:
        checksums.write(tmp)
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        _fsync_dir(folder)
        for old in complete(root)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    _barrier()
    return final


def read(path: Path, rank: int, every_rank: bool = False) -> Loaded:
    """Verify and load one checkpoint for `rank`; `every_rank` also checks the RNG files of
    all ranks (what rank 0 does before the others trust its choice). Raises `Damaged`."""
    try:
        verified = checksums.verify(path, required=(STATE, TRAIN_STATE))
    except checksums.Mismatch as exc:
        raise Damaged(str(exc)) from None
    states = _load_tensors(path / STATE)
    if not isinstance(states, dict) or not {"model", "optimizer", "scheduler"} <= states.keys():
        raise Damaged(f"{STATE} lacks the model, optimizer or scheduler state")
    train_state = _load_json(path / TRAIN_STATE)
    if not isinstance(train_state, dict) or train_state.get("step") != _step(path):
        raise Damaged(f"{TRAIN_STATE} does not record step {_step(path)}")
    rng_files = {}
    for p in sorted(path.iterdir()):  # `.json` before an earlier version's `.pt`
        if match := _RNG.fullmatch(p.name):
            rng_files.setdefault(int(match[1]), p)
    mine = None
    for r, p in sorted(rng_files.items()):
        if r == rank or every_rank:
            state = _load_rng(p)
            mine = state if r == rank else mine
    return Loaded(path, states, train_state, mine, verified)


def verified_state(path: Path) -> dict[str, Any]:
    """A checkpoint's train state, after its checksums (not its tensors: the ranks load
    those): what --resume-from checks before it moves anything. Raises `Damaged`."""
    if _step(path) is None or not (path / TRAIN_STATE).is_file():
        raise Damaged(f"it is not a checkpoint folder ({PREFIX}N with {TRAIN_STATE})")
    try:
        checksums.verify(path, required=(STATE, TRAIN_STATE))
    except checksums.Mismatch as exc:
        raise Damaged(str(exc)) from None
    train_state = _load_json(path / TRAIN_STATE)
    if not isinstance(train_state, dict) or train_state.get("step") != _step(path):
        raise Damaged(f"{TRAIN_STATE} does not record step {_step(path)}")
    return train_state


def choose(root: Path) -> Choice:
    """The newest checkpoint under `root` that verifies and loads, checked as rank 0."""
    damaged = []
    for path in reversed(complete(root)):
        try:
            return Choice(read(path, 0, every_rank=True), damaged)
        except Damaged as exc:
            damaged.append((path.name, str(exc)))
    return Choice(None, damaged)


def set_rng_state(state: dict[str, Any]) -> None:
    rng.restore(state)


def _step(path: Path) -> int | None:
    digits = path.name[len(PREFIX) :]
    return int(digits) if path.name.startswith(PREFIX) and digits.isdigit() else None


def _load_tensors(path: Path) -> Any:
    if not path.is_file():
        raise Damaged(f"{path.name} is missing")
    return _weights_only(path, lambda: torch.load(path, map_location="cpu", weights_only=True))


def _weights_only(path: Path, load: Callable[[], Any]) -> Any:
    """`load()`, with torch's refusals and decoding errors turned into `Damaged`."""
    try:
        return load()
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        what = f"it refers to {found[1]}" if found else _first_line(exc)
        raise Damaged(f"{path.name} cannot be loaded safely ({what})") from None
    except Exception as exc:  # truncated or foreign bytes: torch raises many kinds
        what = "not a complete torch file" if "Pytorch" in str(exc) else _first_line(exc)
        raise Damaged(f"{path.name} cannot be loaded ({what})") from None


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise Damaged(f"{path.name} is missing") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise Damaged(f"{path.name} is not valid JSON ({_first_line(exc)})") from None


def _load_rng(path: Path) -> dict[str, Any]:
    if path.suffix == ".json":
        state = _load_json(path)
    else:
        state = _weights_only(path, lambda: rng.load_legacy(path))
    try:
        rng.parse(state)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise Damaged(f"{path.name} is not a random-number state ({_first_line(exc)})") from None
    return state


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0][:120]}" if text else exc.__class__.__name__


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
