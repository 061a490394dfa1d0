"""Top-level fields the schema sample lacks, counted as they are read: the output schema is
fixed from the first input, so such a field (a later file's `url`) cannot be written, and it
was dropped with nothing said. Its rows are fine (text and kept fields): they are not
quarantined, but the rows holding a value of each such field are counted for the report.

Counted from what the readers have anyway (the columns Arrow infers in a block, a Parquet
file's metadata), not row by row in Python, so a clean run pays nothing measurable."""

from __future__ import annotations

from collections.abc import Container
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

LINE = "__line"

Unsampled = dict[str, int]  # field name -> rows holding a value of it


def count_columns(table: pa.Table, known: Container[str], into: Unsampled | None) -> None:
    """Add the non-null values of `table`'s columns that `known` lacks."""
    if into is None:
        return
    for i, name in enumerate(table.column_names):
        if name not in known and name != LINE:
            rows = table.num_rows - table.column(i).null_count
            if rows:
                into[name] = into.get(name, 0) + rows


def count_keys(row: dict[str, Any], known: Container[str], into: Unsampled | None) -> None:
    """Add one JSON row's keys that `known` lacks and whose value is not null."""
    if into is None:
        return
    for name, value in row.items():
        if value is not None and name not in known:
            into[name] = into.get(name, 0) + 1


def count_parquet(parquet: pq.ParquetFile, known: Container[str], into: Unsampled | None) -> None:
    """Add a Parquet file's columns that `known` lacks, from its metadata alone: its rows less
    the nulls its statistics give (all its rows where they give none, or for a nested one)."""
    if into is None:
        return
    meta = parquet.metadata
    leaves = {meta.schema.column(j).path: j for j in range(meta.num_columns)}
    for name in parquet.schema_arrow.names:
        if name in known:
            continue
        rows = meta.num_rows
        j = leaves.get(name)
        if j is not None:
            for g in range(meta.num_row_groups):
                stats = meta.row_group(g).column(j).statistics
                if stats is not None and stats.has_null_count:
                    rows -= stats.null_count
        if rows:
            into[name] = into.get(name, 0) + rows
