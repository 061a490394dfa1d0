"""Arrow windows to batches: numpy views taken once per window, one vectorised take per batch.

Numeric and fixed-size-list columns (token blocks) become numpy arrays when a window is loaded
(on the prefetch thread) and each batch is a single fancy-index copy, handed to torch without a
per-row Python step. Strings and other nested values stay Arrow until their batch is cut, then
become a Python list: building Python objects needs the GIL, so doing it on the prefetch thread
would only contend with training. A DataLoader `collate_fn` is the hook to tokenize or pad them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

try:  # the loader works without torch: batches are then numpy arrays and lists
    import torch
except ImportError:  # pragma: no cover - exercised only where torch is absent
    torch = None  # type: ignore[assignment]


Rows = slice | np.ndarray  # a contiguous run (no shuffle) or window offsets
Column = np.ndarray | pa.Array | pa.ChunkedArray


class Chunks:
    """A numeric window column kept as the numpy views of the chunks it was decoded in.

    Joining the chunks first would copy the whole window once more, through main memory for
    wide rows; a batch instead copies just its own rows out of the chunks that hold them.
    """

    def __init__(self, arrays: list[np.ndarray]):
        self.arrays = arrays
        self.starts = np.cumsum([0] + [len(a) for a in arrays])

    def take(self, rows: Rows) -> np.ndarray:
        out = np.empty((_count(rows), *self.arrays[0].shape[1:]), self.arrays[0].dtype)
        if isinstance(rows, slice):  # one contiguous copy per chunk the run crosses
            first = int(np.searchsorted(self.starts, rows.start, side="right")) - 1
            done, pos = 0, rows.start
            while pos < rows.stop:
                begin = pos - int(self.starts[first])
                part = self.arrays[first][begin : begin + rows.stop - pos]
                np.copyto(out[done : done + len(part)], part)
                done, pos, first = done + len(part), pos + len(part), first + 1
            return out
        if len(self.arrays) == 1:  # mode "raise" would gather into a buffer, then copy it to out
            return np.take(self.arrays[0], rows, axis=0, out=out, mode="clip")
        which = np.searchsorted(self.starts, rows, side="right") - 1
        for c in np.unique(which):
            mask = which == c
            out[mask] = self.arrays[c][rows[mask] - self.starts[c]]
        return out


def _count(rows: Rows) -> int:
    return rows.stop - rows.start if isinstance(rows, slice) else len(rows)


def _numeric_chunk(chunk: pa.Array) -> np.ndarray | None:
    kind = chunk.type
    if chunk.null_count:
        return None
    if pa.types.is_boolean(kind):  # bit-packed: the one type that is converted, not viewed
        return chunk.to_numpy(zero_copy_only=False)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return _view(chunk)
    if pa.types.is_fixed_size_list(kind):
        value = kind.value_type
        if pa.types.is_integer(value) or pa.types.is_floating(value):
            # `values` sliced by hand: `flatten()` would first import pyarrow.compute, ~0.3 s
            # of CPU in every DataLoader worker, and the child values are already contiguous
            size = kind.list_size
            flat = chunk.values.slice(chunk.offset * size, len(chunk) * size)
            if flat.null_count == 0:
                return _view(flat).reshape(-1, size)
    return None


def _view(chunk: pa.Array) -> np.ndarray:
    """The numpy view of a null-free integer / float array, read off its data buffer:
    `Array.to_numpy` imports pandas on first use, ~1.3 s of CPU in every process."""
    kind = chunk.type
    code = "f" if pa.types.is_floating(kind) else "i" if pa.types.is_signed_integer(kind) else "u"
    dtype = np.dtype(f"{code}{kind.bit_width // 8}")
    data = chunk.buffers()[1]
    return np.frombuffer(data, dtype, count=len(chunk), offset=chunk.offset * dtype.itemsize)


def column_array(column: pa.ChunkedArray, combine: bool) -> Chunks | Column:
    """A window column: numeric / fixed-size numeric lists as numpy chunks, else Arrow."""
    arrays = [_numeric_chunk(chunk) for chunk in column.chunks]
    if arrays and all(a is not None for a in arrays):
        return Chunks(arrays)  # type: ignore[arg-type]
    # strings etc.: contiguous batches slice the chunks as read; shuffled batches `take`, which
    # wants one chunk (a take over many chunks would re-concatenate them for every batch)
    return column.combine_chunks() if combine and column.num_chunks > 1 else column


class Window:
    """The rows of one lane window, as columns ready for per-batch takes."""

    def __init__(self, table: pa.Table, shuffled: bool, offset: int = 0):
        self.offset = offset  # window row of the table's first row (a partly read window)
        self.num_rows = table.num_rows
        self.nbytes = table.nbytes
        self.columns = {
            name: column_array(table.column(name), shuffled) for name in table.column_names
        }

    def take(self, rows: Rows) -> dict[str, Column]:
        if self.offset:
            assert isinstance(rows, slice)
            rows = slice(rows.start - self.offset, rows.stop - self.offset)
        out: dict[str, Column] = {}
        for name, col in self.columns.items():
            if isinstance(col, Chunks):
                out[name] = col.take(rows)
            elif isinstance(rows, slice):
                out[name] = col.slice(rows.start, rows.stop - rows.start)
            else:
                out[name] = col.take(_indices(rows))
        return out


def _indices(rows: np.ndarray) -> pa.Array:
    """Row offsets as an Arrow array, built on their buffer (`pa.array` imports pandas)."""
    data = np.ascontiguousarray(rows, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(data), [None, pa.py_buffer(data)])


def join_parts(parts: list[dict[str, Column]]) -> dict[str, Column]:
    """Concatenate the pieces of a batch that spans several windows (re-split last round)."""
    if len(parts) == 1:
        return parts[0]
    out: dict[str, Column] = {}
    for name, first in parts[0].items():
        if isinstance(first, np.ndarray):
            out[name] = np.concatenate([p[name] for p in parts])
        else:
            out[name] = pa.chunked_array([p[name] for p in parts])
    return out


def to_batch(arrays: dict[str, Column]) -> dict[str, Any]:
    """column -> torch tensor for numeric data, list for strings and other values."""
    out: dict[str, Any] = {}
    for name, arr in arrays.items():
        if not isinstance(arr, np.ndarray):
            out[name] = arr.to_pylist()
        elif arr.dtype == object:
            out[name] = arr.tolist()
        elif torch is not None and arr.dtype.kind in "biuf":
            out[name] = torch.from_numpy(arr)
        else:
            out[name] = arr
    return out
