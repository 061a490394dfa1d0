"""Text normalisation (Arrow compute, whole columns) and exact xxh3-128 fingerprints.

The same normalisation feeds both the exact fingerprint and the MinHash tokeniser, so
"the same after normalising" means the same thing to both methods.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from dataprep import arrow_np

from . import params

PUNCTUATION = r"[\p{P}\p{S}]+"
FIELD_SEP = "\x1f"
NULL_MARK = "\x00"


def normalise(text: pa.Array | pa.ChunkedArray, steps: Sequence[str]) -> pa.Array:
    """Apply the configured steps in a fixed order (NFKC first, whitespace last)."""
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    if pa.types.is_large_string(text.type):
        text = text.cast(pa.string())
    # separators and fills as Arrow scalars: a Python str would make pyarrow import pandas
    if "nfkc" in steps:
        text = pc.utf8_normalize(text, "NFKC")
    if "lowercase" in steps:
        text = pc.utf8_lower(text)
    if "punctuation" in steps:
        text = pc.replace_substring_regex(text, PUNCTUATION, " ")
    if "whitespace" in steps:  # split + join: several times faster than a regex replace
        text = pc.binary_join(pc.utf8_split_whitespace(text), arrow_np.string(" "))
        text = pc.utf8_trim_whitespace(text)
    return text


def token_steps(steps: Sequence[str]) -> list[str]:
    """Steps that change MinHash tokens: whitespace is moot once text is split on it."""
    return [s for s in steps if s != "whitespace"]


def fingerprints(columns: Sequence[pa.Array], steps: Sequence[str]) -> np.ndarray:
    """xxh3-128 of the normalised content, as an (n, 2) uint64 array (high, low).

    Several columns are joined with a unit separator, and a null is marked, so ("a", "b|c")
    and ("a|b", "c") never collide by construction.
    """
    parts = []
    for column in columns:
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            column = pc.cast(column, pa.string())
        parts.append(pc.fill_null(normalise(column, steps), arrow_np.string(NULL_MARK)))
    sep = arrow_np.string(FIELD_SEP)
    joined = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, sep)
    offsets, data = params._string_buffers(joined)
    return hash_rows(data, offsets)


def hash_rows(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """xxh3-128 of each data[offsets[i]:offsets[i + 1]] as an (n, 2) uint64 array (high, low):
    straight from the buffer (no Python strings)."""
    view = memoryview(np.ascontiguousarray(data, np.uint8))
    bounds = offsets.tolist()
    digest = xxhash.xxh3_128_digest
    raw = b"".join([digest(view[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
    return np.frombuffer(raw, dtype=">u8").reshape(-1, 2).astype(np.uint64)
