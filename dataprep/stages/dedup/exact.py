"""Exact fingerprints with the dedup kernel: `normalise.fingerprints`' values, one pass.

WHY: Arrow's whitespace step (split, join, trim) and whole-document NFKC cost ~1.2 s of CPU per
50k documents of 1-4 KB, more than signing them. `kernel_source.collapse_rows` does the byte
maps (ASCII lower-casing and punctuation: NFKC leaves ASCII as it is) and the whitespace step
on every row in one pass; only the rows with non-ASCII text go through Arrow's Unicode steps
first, line by line (`kernel._normalise_lines`). Bit-identical to the Arrow path, which stays
as the reference and the fallback (tests/test_dedup_exact.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataprep import arrow_np

from . import minhash, params
from .normalise import fingerprints as arrow_fingerprints
from .normalise import hash_rows

_ARROW_STEPS = ("nfkc", "lowercase", "punctuation")  # Unicode steps on non-ASCII rows
_LOWER, _PUNCT, _NULL, _JOIN = 1, 2, 4, 8  # kernel_source.collapse_rows flags


def fingerprints(
    columns: Sequence[pa.Array], steps: Sequence[str], compiled: bool = False
) -> np.ndarray:
    """normalise.fingerprints(columns, steps): with the kernel when the driver chose it
    (`compiled`, see minhash.kernel_pays, or DATAPREP_DEDUP_KERNEL=numba), else Arrow's."""
    kernel = minhash._kernel_for(compiled)
    if kernel is None or not columns:
        return arrow_fingerprints(columns, steps)
    return kernel_fingerprints(kernel, columns, steps)


def kernel_fingerprints(
    kernel: Any, columns: Sequence[pa.Array], steps: Sequence[str]
) -> np.ndarray:
    """The kernel's way: one span per (row, column), row-major, in one buffer."""
    buffers: list[np.ndarray] = []
    starts, ends, flags = [], [], []
    base = 0
    for index, column in enumerate(columns):
        data, start, end, flag = _column_spans(kernel, column, steps)
        buffers.append(data)
        starts.append(start + base)
        ends.append(end + base)
        flags.append(flag | (_JOIN if index else 0))
        base += len(data)
    data = buffers[0] if len(buffers) == 1 else np.concatenate(buffers)
    out, offsets = kernel.collapse_rows(
        data,
        np.stack(starts, axis=1).ravel(),
        np.stack(ends, axis=1).ravel(),
        np.stack(flags, axis=1).ravel(),
        "whitespace" in steps,
    )
    return hash_rows(out, offsets[:: len(columns)])


def _column_spans(
    kernel: Any, column: pa.Array, steps: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(data, starts, ends, flags) of one column's rows: ASCII rows as they are (the kernel
    maps them), the others after Arrow's Unicode steps (appended to data)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if not pa.types.is_string(column.type):
        column = pc.cast(column, pa.string())  # large strings too: as params._string_buffers
    offsets, data = params._string_buffers(column)
    first = int(offsets[0])  # a slice's buffer is its parent's whole buffer: keep its bytes
    data = data[first : int(offsets[-1])]
    starts, ends = offsets[:-1] - first, offsets[1:] - first
    valid = arrow_np.valid(column)
    ascii_rows = arrow_np.bools(pc.string_is_ascii(column), null=False)
    own = ("lowercase" in steps) * _LOWER | ("punctuation" in steps) * _PUNCT
    flags = np.where(ascii_rows, own, 0).astype(np.int64)
    flags[~valid] = _NULL
    others = np.flatnonzero(valid & ~ascii_rows)
    unicode_steps = [s for s in _ARROW_STEPS if s in steps]
    if others.size and unicode_steps:
        rest = kernel._normalise_lines(column.take(arrow_np.int64s(others)), unicode_steps)
        rest_offsets, rest_data = params._string_buffers(rest)
        starts[others] = rest_offsets[:-1] + len(data)
        ends[others] = rest_offsets[1:] + len(data)
        data = np.concatenate([data, rest_data])
    return data, starts, ends, flags
