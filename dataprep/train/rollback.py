"""`dataprep train --resume-from CKPT`: continue from any kept checkpoint, deleting nothing.

CKPT in the run's own checkpoints/ (a roll back): the later checkpoints move to
OUT/rollbacks/<CKPT>-<UTC time>/checkpoints/, next to a copy of the run log and sample traces
as they were, so CKPT is the newest checkpoint and the ranks resume from it as after any stop
(the same steps, bit for bit, as the original run from there). CKPT of another run (a fork): it
is copied into a new --out, with the other run's log, and resumed there. What a resume would
refuse (another batch size or seed, other data without --allow-data-change, a damaged
checkpoint) is refused here, before anything moves. Runs in the launcher, before any rank.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from dataprep import dataset
from dataprep.errors import DataprepError
from dataprep.train import checkpoint, provenance, restore
from dataprep.train.config import TrainConfig

ARCHIVE = "rollbacks"
_LOGS = ("metrics.jsonl", "samples-rank*.txt", "alerts.jsonl")  # copied as they were


def prepare(cfg: TrainConfig, spec: str) -> str:
    """Make `spec` the checkpoint the run resumes from; returns the line that says how.
    Started by `torchrun`, every rank runs the command: rank 0 alone prepares (the others
    read the checkpoint rank 0 chooses, after it did) and the others get ""."""
    if os.environ.get("RANK", "0") != "0":
        return ""
    out = Path(cfg.out)
    if not cfg.resume:
        raise DataprepError("--resume-from cannot be combined with --no-resume")
    source = find(out, spec)
    try:
        state = checkpoint.verified_state(source)
    except checkpoint.Damaged as exc:
        raise DataprepError(
            f"--resume-from {source}: the checkpoint cannot be used ({exc}); pick another "
            "kept checkpoint"
        ) from None
    restore.check_settings(cfg, out, state)
    sentence = provenance.refusal(cfg, out, state, dataset.read_manifest(cfg.data).digest())
    if sentence is None and cfg.eval_dir:
        now = provenance.data_record(cfg.eval_dir)
        sentence = provenance.eval_refusal(cfg, out, state, now)
    if sentence is not None:
        raise DataprepError(sentence)
    if source.parent.resolve() == (out / "checkpoints").resolve():
        return _roll_back(out, source)
    return _fork(out, source)


def find(out: Path, spec: str) -> Path:
    """A checkpoint folder, or the step (`8`, `step-00000008`) of one in OUT/checkpoints."""
    given = Path(spec)
    if given.is_dir():
        return given
    digits = spec.removeprefix(checkpoint.PREFIX)
    if digits.isdigit():
        named = out / "checkpoints" / f"{checkpoint.PREFIX}{int(digits):08d}"
        if named.is_dir():
            return named
    kept = ", ".join(p.name for p in checkpoint.complete(out)) or "none"
    raise DataprepError(
        f"--resume-from {spec}: no such checkpoint; give a checkpoint folder or the step of "
        f"one kept in {out / 'checkpoints'} (kept: {kept})"
    )


def _roll_back(out: Path, source: Path) -> str:
    step = _step(source)
    later = [p for p in checkpoint.complete(out) if _step(p) > step]
    if not later:
        return f"resuming {out} from {source.name}"
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    archive = out / ARCHIVE / f"{source.name}-{stamp}"
    n = 1
    while archive.exists():  # two roll backs within a second
        n += 1
        archive = out / ARCHIVE / f"{source.name}-{stamp}-{n}"
    (archive / "checkpoints").mkdir(parents=True)
    _copy_logs(out, archive)
    for path in later:
        path.rename(archive / "checkpoints" / path.name)
    names = ", ".join(p.name for p in later)
    return (
        f"rolled {out} back to {source.name}: the later checkpoints ({names}) and the run log "
        f"as it was are kept in {archive}"
    )


def _fork(out: Path, source: Path) -> str:
    mine = checkpoint.complete(out)
    if mine:
        raise DataprepError(
            f"--out {out} already holds checkpoints of its own run (newest {mine[-1].name}); "
            f"to continue {source} pass a new --out, or give a checkpoint of {out}"
        )
    folder = out / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".tmp-{source.name}"  # a copy cut short is a leftover the next save removes
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    tmp.rename(folder / source.name)
    run = source.parent.parent
    if not (out / "metrics.jsonl").exists():  # the log up to the checkpoint carries over
        _copy_logs(run, out)
    return f"starting {out} from {source} (copied; {run} is unchanged)"


def _copy_logs(run: Path, to: Path) -> None:
    for pattern in _LOGS:
        for path in sorted(run.glob(pattern)):
            shutil.copy2(path, to / path.name)


def _step(path: Path) -> int:
    return int(path.name.removeprefix(checkpoint.PREFIX))
