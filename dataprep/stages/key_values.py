"""Exact group values for the stages that count rows per value of a column (resample's
--label, rebalance's --by) and the check they share with partition's --key.

Counting happens per shard in Arrow, merging in a Python dict, and routing back in Arrow
(`index_in`): all three must agree on which values are equal, or rows fall between them.
They disagree on floats: Python says 0.0 == -0.0 (one dict key) where Arrow's value_counts
keeps two, and every NaN is a different dict key where Arrow matches any NaN to NaN. So a
float column is counted with -0.0 as 0.0 and every NaN as the one `NAN` object, and a row
whose value is not among the planned ones is an error, never a silently dropped row.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataprep.errors import DataprepError

NAN = float("nan")  # the one NaN every float group value maps to (dict lookups match by identity)


def require_groupable(schema: pa.Schema, name: str, option: str) -> None:
    """Stop before any task runs when the column holds lists, structs or maps: their values
    cannot be hashed or counted as one key."""
    kind = schema.field(name).type
    if pa.types.is_nested(kind) or pa.types.is_union(kind):
        raise DataprepError(
            f"{option} {name!r} holds {kind}, which is not a single value per row; name a "
            "column of strings, numbers, booleans or dates"
        )


def canonical(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """The column as counted and matched: -0.0 becomes 0.0 (other types unchanged)."""
    if pa.types.is_floating(column.type):
        return pc.add(column, pa.scalar(0.0, column.type))  # -0.0 + 0.0 == +0.0; NaN stays
    return column


def counts(column: pa.ChunkedArray | pa.Array) -> dict[Any, int]:
    """Rows per value (None for nulls), with every NaN counted under `NAN`."""
    if not len(column):
        return {}
    out: dict[Any, int] = {}
    for item in pc.value_counts(canonical(column)).to_pylist():
        value = same_nan(item["values"])
        out[value] = out.get(value, 0) + item["counts"]
    return out


def same_nan(value: Any) -> Any:
    """`NAN` for any NaN (a record round trip makes new float objects), else the value."""
    return NAN if isinstance(value, float) and math.isnan(value) else value


def merged(per_shard: list[dict[Any, int]]) -> list[dict[Any, int]]:
    """Each shard's counts with NaN keys folded onto `NAN` (after a resume they are new objects)."""
    out = []
    for shard in per_shard:
        folded: dict[Any, int] = {}
        for value, count in shard.items():
            key = same_nan(value)
            folded[key] = folded.get(key, 0) + count
        out.append(folded)
    return out


def group_ids(column: pa.ChunkedArray | pa.Array, values: list[Any], what: str) -> np.ndarray:
    """Each row's index in `values` (nulls must be removed first); a value outside them (the
    input changed between counting and routing) is an error naming it."""
    value_set = pa.array(values, type=column.type)
    found = pc.index_in(canonical(column), value_set=value_set, skip_nulls=False)
    if found.null_count:
        missing = pc.filter(column, pc.is_null(found))[0].as_py()
        raise DataprepError(
            f"{what} value {missing!r} was not there when the rows were counted; the input "
            "changed during the run: rerun the stage"
        )
    return found.to_numpy(zero_copy_only=False).astype(np.int64)
