"""A write window's kept rows, gathered batch by batch into one contiguous table.

Why not filter each batch and concatenate the pieces at the window's end (as before): that
copies every kept byte twice and holds both copies (the pieces and the joined table, ~100 MB
each for a 65,536-row window of 1-4 KB documents) while the writer encodes. Here a string or
binary column's kept bytes are copied once, straight from each decoded batch into one buffer
per window (sized from an estimate, grown if short: untouched capacity is never faulted in),
and the batch is released at once. Other columns (numbers, nested, dictionary) are filtered
per batch and concatenated, as before: they are small next to the text.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from dataprep import arrow_np

_OFFSETS = {
    pa.string(): np.int32,
    pa.binary(): np.int32,
    pa.large_string(): np.int64,
    pa.large_binary(): np.int64,
}


def kept_runs(kept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends (exclusive) of the runs of True in `kept`."""
    edges = np.flatnonzero(np.diff(kept.astype(np.int8), prepend=0, append=0))
    return edges[::2], edges[1::2]


class _Bytes:
    """One string/binary column's kept values: offsets, validity and one growing data buffer."""

    def __init__(self, kind: pa.DataType, capacity: int):
        self.kind = kind
        self.dtype = _OFFSETS[kind]
        self.data = np.empty(max(capacity, 1), np.uint8)
        self.used = 0
        self.lengths: list[np.ndarray] = []
        self.valid: list[np.ndarray] = []
        self.nulls = 0

    def add(self, array: pa.Array, kept: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> None:
        n = len(array)
        if n == 0:  # an empty array may have no offsets buffer at all
            return
        offset_buffer, data_buffer = array.buffers()[1], array.buffers()[2]
        offsets = np.frombuffer(
            offset_buffer, self.dtype, n + 1, array.offset * self.dtype().nbytes
        )
        self.lengths.append(np.diff(offsets)[kept])
        if array.null_count:
            valid = arrow_np.valid(array)[kept]
            self.valid.append(valid)
            self.nulls += int(len(valid) - valid.sum())
        else:
            self.valid.append(np.ones(int(kept.sum()), bool))
        if not len(starts) or data_buffer is None:
            return
        data = np.frombuffer(data_buffer, np.uint8)
        first, last = offsets[starts].tolist(), offsets[ends].tolist()
        need = self.used + sum(last) - sum(first)
        if need > len(self.data):  # the estimate was short: grow once for this batch
            grown = np.empty(max(need, 2 * len(self.data)), np.uint8)
            grown[: self.used] = self.data[: self.used]
            self.data = grown
        out, used = self.data, self.used
        for a, b in zip(first, last, strict=True):
            out[used : used + b - a] = data[a:b]
            used += b - a
        self.used = used

    def array(self) -> pa.Array:
        lengths = np.concatenate(self.lengths) if self.lengths else np.zeros(0, self.dtype)
        offsets = np.zeros(len(lengths) + 1, self.dtype)
        np.cumsum(lengths, out=offsets[1:])
        validity = None
        if self.nulls:
            bits = np.packbits(np.concatenate(self.valid), bitorder="little")
            validity = pa.py_buffer(bits)
        data = pa.py_buffer(self.data[: self.used])
        return pa.Array.from_buffers(
            self.kind, len(lengths), [validity, pa.py_buffer(offsets), data], self.nulls
        )


class KeptRows:
    """Gathers one window's kept rows; `table()` is them as one contiguous table, equal to
    the concatenation of `Table.filter` of each batch."""

    def __init__(self, schema: pa.Schema, capacity: dict[str, int]):
        self.schema = schema
        self.columns: list[_Bytes | list[pa.Array]] = [
            _Bytes(field.type, capacity.get(field.name, 0)) if field.type in _OFFSETS else []
            for field in schema
        ]
        self.rows = 0

    def add(self, batch: pa.RecordBatch, kept: np.ndarray) -> int:
        """Copy the batch's kept rows in; returns how many there were."""
        starts, ends = kept_runs(kept)
        mask = None
        for column, array in zip(self.columns, batch.columns, strict=True):
            if isinstance(column, _Bytes):
                column.add(array, kept, starts, ends)
            else:
                mask = arrow_np.mask(kept) if mask is None else mask
                column.append(array if kept.all() else array.filter(mask))
        count = int(kept.sum())
        self.rows += count
        return count

    def table(self) -> pa.Table:
        """The kept rows so far (call after at least one `add`)."""
        arrays = [c.array() if isinstance(c, _Bytes) else _concat(c) for c in self.columns]
        return pa.Table.from_arrays(arrays, schema=self.schema)


def _concat(pieces: list[pa.Array]) -> pa.Array:
    return pieces[0] if len(pieces) == 1 else pa.concat_arrays(pieces)
