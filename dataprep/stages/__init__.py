"""The stage registry: built-in stages by name, plus plugins from the `dataprep.stages`
entry-point group (each entry point names a `Stage` subclass)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from dataprep.errors import DataprepError

if TYPE_CHECKING:  # the CLI lists stages without loading pyarrow
    from dataprep.stage import Stage

BUILTIN: dict[str, str] = {
    "shard": "dataprep.stages.shard:ShardStage",
    "dedup": "dataprep.stages.dedup:DedupStage",
    "tokenize": "dataprep.stages.tokenize:TokenizeStage",
    "partition": "dataprep.stages.partition:PartitionStage",
    "rebalance": "dataprep.stages.rebalance:RebalanceStage",
    "resample": "dataprep.stages.resample:ResampleStage",
    "compress": "dataprep.stages.compress:CompressStage",
    "encrypt": "dataprep.stages.encrypt:EncryptStage",
    "decrypt": "dataprep.stages.encrypt:DecryptStage",
    "score": "dataprep.stages.score:ScoreStage",
    "filter": "dataprep.stages.filter:FilterStage",
    "clean": "dataprep.stages.clean:CleanStage",
    "pii": "dataprep.stages.pii:PiiStage",
}


def _load(target: str) -> type[Stage]:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def available() -> dict[str, str]:
    from importlib.metadata import entry_points  # ~10 ms: only where plugins are listed

    names = dict(BUILTIN)
    for ep in entry_points(group="dataprep.stages"):
        names.setdefault(ep.name, ep.value)
    return names


def get_stage(name: str) -> Stage:
    if name in BUILTIN:  # a plugin cannot override a built-in name: skip the entry-point scan
        return _load(BUILTIN[name])()
    names = available()
    if name not in names:
        known = ", ".join(sorted(names))
        raise DataprepError(f"unknown stage {name!r}; known stages: {known}")
    return _load(names[name])()
