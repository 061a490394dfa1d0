"""Arrow windows to batches: numpy views taken once per window, one vectorised take per batch.

Numeric and fixed-size-list columns (token blocks) become numpy arrays when a window is loaded
(on the prefetch thread) and each batch is a single fancy-index copy, handed to torch without a
per-row Python step. Strings and other nested values stay Python objects (a list per batch);
a DataLoader `collate_fn` is the hook to tokenize or pad them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

try:  # the loader works without torch: batches are then numpy arrays and lists
    import torch
except ImportError:  # pragma: no cover - exercised only where torch is absent
    torch = None  # type: ignore[assignment]


def column_array(column: pa.ChunkedArray) -> np.ndarray:
    """A window column as numpy: numeric 1-D, fixed-size lists 2-D, anything else objects."""
    kind = column.type
    if column.null_count == 0 and (
        pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
    ):
        return column.to_numpy()
    if pa.types.is_fixed_size_list(kind) and column.null_count == 0:
        value = kind.value_type
        if pa.types.is_integer(value) or pa.types.is_floating(value):
            flat = column.combine_chunks().flatten()
            if flat.null_count == 0:
                return flat.to_numpy().reshape(-1, kind.list_size)
    return column.to_numpy(zero_copy_only=False)


class Window:
    """The rows of one lane window, as numpy columns ready for per-batch takes."""

    def __init__(self, table: pa.Table):
        self.num_rows = table.num_rows
        self.nbytes = table.nbytes
        self.columns = {name: column_array(table.column(name)) for name in table.column_names}

    def take(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        return {name: col[rows] for name, col in self.columns.items()}


def join_parts(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate the pieces of a batch that spans several windows (re-split last round)."""
    if len(parts) == 1:
        return parts[0]
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def to_batch(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """column -> torch tensor for numeric data, list for strings and other objects."""
    out: dict[str, Any] = {}
    for name, arr in arrays.items():
        if arr.dtype == object:
            out[name] = arr.tolist()
        elif torch is not None and arr.dtype.kind in "biuf":
            out[name] = torch.from_numpy(np.ascontiguousarray(arr))
        else:
            out[name] = arr
    return out
