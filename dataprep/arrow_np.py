"""Arrow <-> numpy conversions that never wake pyarrow's pandas shim.

WHY: the first time a process calls `pa.array(...)`, `pa.scalar(...)` (so `pc.fill_null(x,
value)`) or `Array.to_numpy(zero_copy_only=False)`, pyarrow imports pandas (~0.18 s of CPU,
~40 MB) just to ask whether the argument is a pandas object. A one-worker `dataprep dedup` needs
nothing from pandas, and that import was a third of its cold-process cost on 42 MB. These
helpers do the same conversions from the Arrow buffers (tests compare them with pyarrow's own).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def _bits(buffer: pa.Buffer | None, offset: int, length: int, absent: bool) -> np.ndarray:
    if buffer is None:
        return np.full(length, absent, dtype=bool)
    raw = np.frombuffer(buffer, dtype=np.uint8)
    return np.unpackbits(raw, count=offset + length, bitorder="little")[offset:].view(bool)


def bools(array: pa.Array | pa.ChunkedArray, null: bool = False) -> np.ndarray:
    """A boolean array as numpy bools, a null read as `null`."""
    if isinstance(array, pa.ChunkedArray):
        parts = [bools(chunk, null) for chunk in array.chunks]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)
    if not pa.types.is_boolean(array.type):
        raise TypeError(f"expected a boolean array, got {array.type}")
    n, offset = len(array), array.offset
    if n == 0:
        return np.zeros(0, dtype=bool)
    validity, values = array.buffers()[:2]
    out = _bits(values, offset, n, False).copy()
    if array.null_count:
        valid = _bits(validity, offset, n, True)
        out = np.where(valid, out, null)
    return out


def valid(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Which rows are not null, as numpy bools (`pc.is_valid(...).to_numpy()`)."""
    if isinstance(array, pa.ChunkedArray):
        parts = [valid(chunk) for chunk in array.chunks]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)
    if array.null_count == 0:
        return np.ones(len(array), dtype=bool)
    if pa.types.is_null(array.type):
        return np.zeros(len(array), dtype=bool)
    return _bits(array.buffers()[0], array.offset, len(array), True).copy()


def mask(values: np.ndarray) -> pa.BooleanArray:
    """numpy bools as an Arrow boolean array (`pa.array(values)`), e.g. for `Table.filter`."""
    values = np.asarray(values, dtype=bool)
    packed = np.packbits(values, bitorder="little")
    return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(packed)])


def int64s(values: np.ndarray) -> pa.Int64Array:
    """numpy integers as an Arrow int64 array (`pa.array(values)`), e.g. for `take`."""
    values = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(values)])


def strings(values: list[str]) -> pa.StringArray:
    """Python strings as an Arrow string array (`pa.array(values)`, no nulls)."""
    raw = [v.encode() for v in values]
    offsets = np.zeros(len(raw) + 1, dtype=np.int32)
    np.cumsum([len(r) for r in raw], out=offsets[1:])
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(raw))]
    return pa.Array.from_buffers(pa.string(), len(raw), buffers)


def string(value: str) -> pa.StringScalar:
    """An Arrow string scalar (`pa.scalar(value)`), e.g. for a compute function's argument."""
    return strings([value])[0]


_INTS = {pa.int8(): np.int8, pa.int16(): np.int16, pa.int32(): np.int32, pa.int64(): np.int64,
         pa.uint8(): np.uint8, pa.uint16(): np.uint16, pa.uint32(): np.uint32,
         pa.uint64(): np.uint64}  # fmt: skip


def ints(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """An integer array without nulls as numpy (`to_numpy()`), zero-copy for one chunk."""
    if isinstance(array, pa.ChunkedArray):
        parts = [ints(chunk) for chunk in array.chunks]
        return np.concatenate(parts) if parts else np.zeros(0, _INTS.get(array.type, np.int64))
    if array.type not in _INTS or array.null_count:
        raise TypeError(f"expected integers without nulls, got {array.type}")
    dtype, n = np.dtype(_INTS[array.type]), len(array)
    data = array.buffers()[1]
    if n == 0 or data is None:
        return np.zeros(n, dtype)
    return np.frombuffer(data, dtype)[array.offset : array.offset + n]
