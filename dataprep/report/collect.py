"""What a report plots about one dataset, read from its manifest, its Parquet footers and a
seeded sample of row groups: never the whole table.

Footers give sizes (compressed vs uncompressed per column) for every shard read; values come
only from the columns the page plots (the text column's lengths, numeric columns, source and
label), read one record batch at a time from row groups drawn at random (seeded) until the
row budget is spent, so a billion-row dataset costs what a `sample_rows`-row one does.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataprep import dataset
from dataprep.errors import DataprepError
from dataprep.manifest import Manifest
from dataprep.storage import StoragePath, as_path

SAMPLE_ROWS = 100_000  # rows whose values are plotted (a seeded sample of row groups)
MAX_FOOTERS = 512  # shards whose footers are read for sizes (a seeded sample beyond that)
BATCH_ROWS = 8192  # rows decoded at once: bounds memory on long documents
CATEGORIES_SHOWN = 30  # most frequent values per categorical column; the rest is "(other)"


@dataclass
class ColumnSizes:
    compressed: int = 0
    uncompressed: int = 0

    @property
    def ratio(self) -> float | None:
        return self.uncompressed / self.compressed if self.compressed else None


@dataclass
class DatasetFacts:
    """Everything the page shows about one dataset directory."""

    path: str
    manifest: Manifest
    report: dict[str, Any]  # the .report.json of the stage that wrote it ({} if none)
    text_column: str | None = None
    sampled_rows: int = 0
    sampled_row_groups: int = 0
    total_row_groups: int = 0
    footers_read: int = 0
    text_lengths: np.ndarray | None = None  # characters per row of the sample
    numeric: dict[str, np.ndarray] = field(default_factory=dict)  # finite values of the sample
    categories: dict[str, dict[str, int]] = field(default_factory=dict)  # value -> sample count
    column_sizes: dict[str, ColumnSizes] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what could not be read, and why

    @property
    def sampled(self) -> bool:
        """Values were read, and from fewer rows than the dataset has."""
        return 0 < self.sampled_rows < self.manifest.rows

    @property
    def partition_rows(self) -> dict[int, int]:
        """Rows per partition from the manifest (exact), when the shards carry partitions."""
        rows: dict[int, int] = {}
        for shard in self.manifest.shards:
            if shard.partition is not None:
                rows[shard.partition] = rows.get(shard.partition, 0) + shard.rows
        return dict(sorted(rows.items()))


def read_report(root: StoragePath) -> dict[str, Any]:
    """The directory's .report.json, or {} when it has none or it is not JSON."""
    import json

    target = dataset.existing_file(root, dataset.REPORT)
    try:
        data = json.loads(target.read_text()) if target.is_file() else {}
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def collect_dataset(
    path: str | StoragePath,
    key_file: str | None = None,
    sample_rows: int = SAMPLE_ROWS,
    seed: int = 0,
    categorical: tuple[str, ...] = (),
    text: tuple[str, ...] = ("text",),
) -> DatasetFacts:
    """Read the manifest, footers and a sample of the plotted columns of one dataset: the
    first string column named in `text`, every integer and float column, and the
    `categorical` ones (counted)."""
    root = as_path(path)
    manifest = dataset.read_manifest(root)
    facts = DatasetFacts(str(path), manifest, read_report(root))
    facts.total_row_groups = sum(len(s.row_groups) or 1 for s in manifest.shards)
    if manifest.encryption is not None and key_file is None:
        facts.notes.append(
            "encrypted: only the manifest was read (footers and values need --key-file)"
        )
        return facts
    reader = dataset.ReadOptions(key_file, manifest.encryption, verify_pages=False)
    if manifest.encryption is not None:
        facts.notes.append(
            "encrypted, read with --key-file: this page holds decrypted values (column "
            "statistics, source and label names); keep it as you keep the data"
        )
    columns = _plotted_columns(manifest.schema, categorical, text)
    facts.text_column = columns.text
    _read_footers(facts, root, reader, seed)
    if not columns.all:
        facts.notes.append("no text, numeric, source or label column: no values are plotted")
    elif sample_rows == 0:
        facts.notes.append("values not read (--sample-rows 0)")
    elif manifest.rows:
        _read_sample(facts, root, reader, columns, sample_rows, seed)
    else:
        facts.notes.append("the dataset has no rows: no values to plot")
    return facts


def count_values(
    path: str, column: str, key_file: str | None, budget: int, seed: int
) -> DatasetFacts | None:
    """Counts of one column (no footers, no other column): a resample's input and output
    side by side. None when the dataset lacks the column or cannot be read without a key."""
    root = as_path(path)
    manifest = dataset.read_manifest(root)
    if column not in manifest.schema.names or (manifest.encryption and key_file is None):
        return None
    facts = DatasetFacts(str(path), manifest, {})
    facts.total_row_groups = sum(len(s.row_groups) or 1 for s in manifest.shards)
    reader = dataset.ReadOptions(key_file, manifest.encryption, verify_pages=False)
    _read_sample(facts, root, reader, _Columns(None, [], [column]), budget, seed)
    return facts


@dataclass
class _Columns:
    text: str | None
    numeric: list[str]
    categorical: list[str]

    @property
    def all(self) -> list[str]:
        names = [self.text] if self.text else []
        return names + self.numeric + self.categorical


def _plotted_columns(
    schema: pa.Schema, categorical: tuple[str, ...], texts: tuple[str, ...]
) -> _Columns:
    strings = [
        f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
    ]
    text = next((name for name in texts if name in strings), None)
    numeric = [
        f.name
        for f in schema
        if (pa.types.is_integer(f.type) or pa.types.is_floating(f.type)) and f.name != text
    ]
    flags = [f.name for f in schema if pa.types.is_boolean(f.type)]  # counted true / false
    named = [c for c in categorical if c in schema.names and c != text]
    wanted = list(dict.fromkeys(named + flags))
    numeric = [c for c in numeric if c not in wanted]
    return _Columns(text, numeric, wanted)


def _read_footers(facts: DatasetFacts, root: StoragePath, reader: Any, seed: int) -> None:
    shards = list(facts.manifest.shards)
    if len(shards) > MAX_FOOTERS:
        shards = random.Random(seed).sample(shards, MAX_FOOTERS)
        facts.notes.append(
            f"column sizes from the footers of {MAX_FOOTERS} of {len(facts.manifest.shards)} "
            f"shards (seeded sample, seed {seed})"
        )
    for shard in shards:
        meta = reader.open(root / shard.path).metadata
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for c in range(group.num_columns):
                chunk = group.column(c)
                name = chunk.path_in_schema.split(".", 1)[0]
                sizes = facts.column_sizes.setdefault(name, ColumnSizes())
                sizes.compressed += chunk.total_compressed_size
                sizes.uncompressed += chunk.total_uncompressed_size
        facts.footers_read += 1


def _row_group_plan(manifest: Manifest, budget: int, seed: int) -> list[tuple[int, int]]:
    """(shard index, row group) pairs in a seeded random order, enough to cover `budget` rows
    (all of them when the dataset is smaller); the manifest lists row group sizes, so no
    footer is opened to plan."""
    groups = [
        (i, g, rows)
        for i, shard in enumerate(manifest.shards)
        for g, rows in enumerate(shard.row_groups or [shard.rows])
        if rows
    ]
    random.Random(seed).shuffle(groups)
    chosen, total = [], 0
    for i, g, rows in groups:
        if total >= budget:
            break
        chosen.append((i, g))
        total += rows
    return sorted(chosen)


def _read_sample(
    facts: DatasetFacts,
    root: StoragePath,
    reader: Any,
    columns: _Columns,
    budget: int,
    seed: int,
) -> None:
    plan = _row_group_plan(facts.manifest, budget, seed)
    lengths: list[np.ndarray] = []
    numeric: dict[str, list[np.ndarray]] = {c: [] for c in columns.numeric}
    counts: dict[str, dict[str, int]] = {c: {} for c in columns.categorical}
    wanted = columns.all
    by_shard: dict[int, list[int]] = {}
    for i, g in plan:
        by_shard.setdefault(i, []).append(g)
    for i, groups in by_shard.items():
        if facts.sampled_rows >= budget:
            break
        file = reader.open(root / facts.manifest.shards[i].path)
        names = [c for c in wanted if c in file.schema_arrow.names]
        batches = file.iter_batches(batch_size=BATCH_ROWS, row_groups=groups, columns=names)
        facts.sampled_row_groups += len(groups)
        for batch in batches:
            batch = batch.slice(0, budget - facts.sampled_rows)
            facts.sampled_rows += batch.num_rows
            _take(batch, columns, lengths, numeric, counts)
            if facts.sampled_rows >= budget:
                break
    if columns.text:
        facts.text_lengths = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
    facts.numeric = {
        c: np.concatenate(parts) if parts else np.zeros(0) for c, parts in numeric.items()
    }
    facts.categories = {c: _top(v) for c, v in counts.items()}


def _take(
    batch: pa.RecordBatch,
    columns: _Columns,
    lengths: list[np.ndarray],
    numeric: dict[str, list[np.ndarray]],
    counts: dict[str, dict[str, int]],
) -> None:
    """Fold one record batch into the sample: text lengths, finite numbers, category counts."""
    names = batch.schema.names
    if columns.text in names:
        chars = pc.utf8_length(batch.column(columns.text)).drop_null()
        lengths.append(chars.to_numpy(zero_copy_only=False).astype(np.int64))
    for name in columns.numeric:
        if name in names:
            values = batch.column(name).drop_null().to_numpy(zero_copy_only=False)
            values = values.astype(np.float64)
            numeric[name].append(values[np.isfinite(values)])
    for name in columns.categorical:
        if name in names:
            table = pc.value_counts(batch.column(name).cast(pa.string()))
            target = counts[name]
            for value, n in zip(
                table.field("values").to_pylist(), table.field("counts").to_pylist(), strict=True
            ):
                key = "(null)" if value is None else value
                target[key] = target.get(key, 0) + n


def _top(counts: dict[str, int]) -> dict[str, int]:
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    top = dict(ranked[:CATEGORIES_SHOWN])
    rest = ranked[CATEGORIES_SHOWN:]
    if rest:
        top[f"(other {len(rest)} values)"] = sum(n for _, n in rest)
    return top


def check_readable(path: str) -> None:
    """Stop with one sentence when `path` is not there at all."""
    if not as_path(path).exists():
        raise DataprepError(f"{path} does not exist")
