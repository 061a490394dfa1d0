"""What the trainer needs from a dataset, checked before any process starts."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from dataprep import dataset
from dataprep.errors import DataprepError
from dataprep.train.config import TrainConfig


@dataclass(frozen=True)
class DataFacts:
    vocab_size: int
    seq_len: int  # model context: the block width minus the next-token target
    columns: tuple[str, ...]
    labels: tuple[str, ...] = ()  # classification: class names, index = class id


def inspect_data(cfg: TrainConfig) -> DataFacts:
    """Validate the dataset against the config; one clear sentence when it does not fit."""
    manifest = dataset.read_manifest(cfg.data)
    schema = manifest.schema
    if manifest.encryption and not cfg.key_file:
        raise DataprepError(f"{cfg.data} is encrypted; pass --key-file with its key file")
    if "tokens" not in schema.names or not pa.types.is_fixed_size_list(schema.field("tokens").type):
        raise DataprepError(
            f"{cfg.data} has no token blocks (a fixed-size 'tokens' column); "
            "run `dataprep tokenize` on it first"
        )
    tokenizer = manifest.metadata.get("tokenizer")
    if not tokenizer:
        raise DataprepError(f"{cfg.data} records no tokenizer; make it with `dataprep tokenize`")
    width = schema.field("tokens").type.list_size
    packed = manifest.metadata.get("mode", "pack") == "pack"
    seq_len = width - 1 if packed else width
    if cfg.seq_len is not None and cfg.seq_len != seq_len:
        raise DataprepError(
            f"--seq-len {cfg.seq_len} does not match {cfg.data}, whose blocks hold "
            f"seq_len {seq_len}; pass --seq-len {seq_len} or re-tokenize"
        )
    if cfg.task == "lm":
        if not packed:
            raise DataprepError(
                f"{cfg.data} was tokenized with --mode truncate; use --task classify"
            )
        return DataFacts(tokenizer["vocab_size"], seq_len, ("tokens",))
    if cfg.label_col not in schema.names:
        raise DataprepError(
            f"--task classify needs a label column, and {cfg.data} has no {cfg.label_col!r} "
            f"(columns: {', '.join(schema.names)}); pass --label-col"
        )
    columns = ["tokens", cfg.label_col]
    if "length" in schema.names:
        columns.append("length")
    if "sample_weight" in schema.names:
        columns.append("sample_weight")
    labels_table = dataset.read_rows(cfg.data, [cfg.label_col], key_file=cfg.key_file)
    values = labels_table.column(0).drop_null().unique()
    labels = tuple(sorted(str(v) for v in values.to_pylist()))
    if len(labels) < 2:
        raise DataprepError(f"--task classify needs at least 2 classes in {cfg.label_col!r}")
    return DataFacts(tokenizer["vocab_size"], seq_len, tuple(columns), labels)
