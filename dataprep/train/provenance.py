"""What a checkpoint records about the data its model saw, and the resume check built on it.

Every checkpoint's train_state.json carries the dataprep version and, for the training and the
eval data, the location, manifest digest, rows and the manifest's lineage (so `dataprep
lineage` can show a model's chain even after its datasets are deleted). A run refuses to
resume onto training data whose digest differs from the checkpoint's: the data order, and so
every later step, would silently differ. Nor onto other eval data (or --eval-batches): the
eval curve would silently join two measures. `--allow-data-change` continues anyway; the
change is then recorded in the run log (metrics.jsonl), on stderr and (training data) in
every later checkpoint. Optimizer changes --allow-optimizer-change allowed are logged here too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dataprep import __version__, dataset
from dataprep.errors import DataprepError
from dataprep.lineage import location, redacted
from dataprep.train.config import TrainConfig
from dataprep.train.metrics import drop_after


def data_record(path: str) -> dict[str, Any]:
    """Where a dataset is, its manifest digest, size and lineage."""
    manifest = dataset.read_manifest(path)
    return {
        "path": location(path),
        "digest": manifest.digest(),
        "rows": manifest.rows,
        "shards": len(manifest.shards),
        "bytes": manifest.bytes,
        "lineage": [entry.to_json() for entry in manifest.lineage],
    }


def recorded_config(cfg: TrainConfig) -> dict[str, Any]:
    """The run's settings as a checkpoint keeps them: data, eval and output locations without
    the credentials an S3 URI can carry in its query (checkpoints travel with the model)."""
    config = cfg.model_dump(mode="json")
    for key in ("data", "eval_dir", "out"):
        if config.get(key):
            config[key] = redacted(config[key])
    return config


def recorded_digest(train_state: dict[str, Any]) -> str | None:
    """The training data's digest a checkpoint recorded (None: written before it did)."""
    train = (train_state.get("data") or {}).get("train") or {}
    return train.get("digest")


def refusal(cfg: TrainConfig, out: Any, train_state: dict[str, Any], now: str) -> str | None:
    """The sentence refusing to resume onto other data, or None when the data is the same
    (or the checkpoint predates the record, or the change is allowed)."""
    then = recorded_digest(train_state)
    if then is None or then == now or cfg.allow_data_change:
        return None
    return (
        f"cannot resume {out} from step {train_state.get('step')}: its checkpoint was trained on "
        f"data with manifest digest {then}, but {redacted(cfg.data)} now has manifest digest "
        f"{now}; pass --allow-data-change to continue on the changed data, or a new --out to "
        "start fresh"
    )


def eval_refusal(
    cfg: TrainConfig, out: Any, train_state: dict[str, Any], now: dict[str, Any] | None
) -> str | None:
    """The sentence refusing to resume onto other eval data (`now`: its `data_record`) or
    another --eval-batches, or None (same, none evaluated before or now, or allowed)."""
    then = (train_state.get("data") or {}).get("eval")
    if cfg.allow_data_change or not then or not now:
        return None
    step, old = train_state.get("step"), then.get("digest")
    if old is not None and old != now["digest"]:
        return (
            f"cannot resume {out} from step {step}: its evaluations so far were on eval data "
            f"with manifest digest {old}, but --eval-dir {redacted(str(cfg.eval_dir))} now has "
            f"manifest digest {now['digest']}; pass --allow-data-change to continue on the "
            "changed eval data (the eval curve changes there), or a new --out to start fresh"
        )
    batches = (train_state.get("config") or {}).get("eval_batches")
    if batches is not None and batches != cfg.eval_batches:
        return (
            f"cannot resume {out} from step {step} with --eval-batches {cfg.eval_batches}: its "
            f"evaluations so far used --eval-batches {batches}; pass --eval-batches {batches} "
            "to continue them, --allow-data-change to change them from here, or a new --out "
            "to start fresh"
        )
    return None


class Provenance:
    """The data record of one run; `resume` checks it against the checkpoint resumed from."""

    def __init__(self, cfg: TrainConfig, rank: int, warn: Callable[[str], None]):
        self.cfg, self.rank, self.warn = cfg, rank, warn
        self.data = {
            "train": data_record(cfg.data),
            "eval": data_record(cfg.eval_dir) if cfg.eval_dir else None,
        }
        self.changes: list[dict[str, Any]] = []  # data changes allowed on resume, oldest first

    def record(self) -> dict[str, Any]:
        """The keys a checkpoint's train_state.json gets besides step, reader and config."""
        return {"dataprep_version": __version__, "data": self.data, "data_changes": self.changes}

    def resume(self, out: Path, train_state: dict[str, Any]) -> None:
        """Refuse a resume onto changed training data; allowed, record the change (rank 0
        writes it to the run log, metrics.jsonl, as the record of the step resumed from) and
        point the reader at the start of the new data (`train_state` is edited in place)."""
        now = self.data["train"]["digest"]
        sentence = refusal(self.cfg, out, train_state, now)
        sentence = sentence or eval_refusal(self.cfg, out, train_state, self.data["eval"])
        if sentence is not None:
            raise DataprepError(sentence)
        self._eval_change(out, train_state)
        self.changes = list(train_state.get("data_changes") or [])
        then = recorded_digest(train_state)
        if then is None or then == now:
            return
        step = int(train_state["step"])
        # the saved position is one in the old data's order: the new data is read from the
        # first batch of the same epoch (the reader refuses a position of another row count)
        reader = train_state.get("reader") or {}
        train_state["reader"] = {**reader, "rows": self.data["train"]["rows"], "next_batch": 0}
        warning = (
            f"resuming {out} from step {step} on changed data (--allow-data-change): its "
            f"checkpoint was trained on manifest digest {then}, {redacted(self.cfg.data)} now has "
            f"{now}; "
            f"the reader starts the new data from its first batch (epoch {reader.get('epoch')})"
        )
        change = {"step": step, "from": then, "to": now, "path": self.data["train"]["path"]}
        self.changes.append(change)
        if self.rank == 0:
            self.warn(warning)
            _append_record(
                out / "metrics.jsonl",
                step,
                {"step": step, "event": "data_change", "warning": warning, **change},
            )

    def _eval_change(self, out: Path, train_state: dict[str, Any]) -> None:
        """An eval change --allow-data-change allowed: said on stderr and logged (rank 0)."""
        then, now = (train_state.get("data") or {}).get("eval"), self.data["eval"]
        if self.rank != 0 or not then or not now or then.get("digest") in (None, now["digest"]):
            return
        step = int(train_state["step"])
        warning = (
            f"resuming {out} from step {step} on changed eval data (--allow-data-change): its "
            f"evaluations so far were on manifest digest {then['digest']}, "
            f"{redacted(str(self.cfg.eval_dir))} now has {now['digest']}"
        )
        self.warn(warning)
        change = {"from": then["digest"], "to": now["digest"], "path": now["path"]}
        record = {"step": step, "event": "eval_change", "warning": warning, **change}
        _append_record(out / "metrics.jsonl", step, record)

    def optimizer_change(
        self, out: Path, train_state: dict[str, Any], changes: list[tuple[str, Any, Any]]
    ) -> None:
        """Optimizer settings --allow-optimizer-change allowed: said and logged (rank 0)."""
        if self.rank != 0:
            return
        step = int(train_state["step"])
        what = ", ".join(f"{flag} {old} -> {new}" for flag, old, new in changes)
        warning = f"resuming {out} from step {step} with other optimizer settings: {what}"
        self.warn(warning)
        settings = {flag: {"from": old, "to": new} for flag, old, new in changes}
        record = {"step": step, "event": "optimizer_change", "warning": warning}
        _append_record(out / "metrics.jsonl", step, {**record, "settings": settings})


def _append_record(path: Path, step: int, record: dict[str, Any]) -> None:
    """Append to the run log as the resumed run's log will keep it: the records after `step`
    (and a line torn by a kill) go first, as `RunLog` would drop them."""
    drop_after(path, step, lambda line: int(json.loads(line)["step"]))
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
