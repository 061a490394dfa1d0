"""What a checkpoint records about the data its model saw, and the resume check built on it.

Every checkpoint's train_state.json carries the dataprep version and, for the training and the
eval data, the location, manifest digest, rows and the manifest's lineage (so `dataprep
lineage` can show a model's chain even after its datasets are deleted). A run refuses to
resume onto training data whose digest differs from the checkpoint's: the data order, and so
every later step, would silently differ. `--allow-data-change` continues anyway; the change is
then recorded in the run log (metrics.jsonl), on stderr and in every later checkpoint.
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
        if sentence is not None:
            raise DataprepError(sentence)
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


def _append_record(path: Path, step: int, record: dict[str, Any]) -> None:
    """Append to the run log as the resumed run's log will keep it: the records after `step`
    (and a line torn by a kill) go first, as `RunLog` would drop them."""
    drop_after(path, step, lambda line: int(json.loads(line)["step"]))
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
