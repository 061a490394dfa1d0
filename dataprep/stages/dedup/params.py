"""Hash constants and tables shared by the numpy signature path (minhash.py) and the
compiled one (kernel.py): one definition, so the two cannot drift apart."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

U64 = np.uint64
M64 = (1 << 64) - 1

SENTINEL = np.uint32(0xFFFFFFFF)
_C1 = U64(0xFF51AFD7ED558CCD)
_C2 = U64(0xC4CEB9FE1A85EC53)
_S33 = U64(33)
_GOLDEN = U64(0x9E3779B97F4A7C15)
_POLY = U64((0x100000001B3 * 0x9E3779B1 | 1) & M64)
# Odd per-position multipliers for combining n token hashes into one shingle hash.
_POSITION = np.random.default_rng(0x5EED).integers(1, 1 << 63, 64, dtype=np.uint64) | U64(1)


def fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser: a bijection with full avalanche (wrapping uint64)."""
    h = h ^ (h >> _S33)
    h = h * _C1
    h = h ^ (h >> _S33)
    h = h * _C2
    return h ^ (h >> _S33)


def seed_mix(seed: int) -> np.uint64:
    return U64((int(seed) * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & M64)


def _string_buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(int64 offsets[n+1], uint8 data) of a StringArray, zero-copy where possible."""
    if pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.string())
    n = len(arr)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset : arr.offset + n + 1]
    data = arr.buffers()[2]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    return offsets.astype(np.int64), raw


_DENSIFY: dict[tuple[int, int], np.ndarray] = {}


def _densify_table(num_perm: int, seed: int) -> np.ndarray:
    """Bin j's t-th fallback bin, the same for every document (so copies stay comparable)."""
    key = (num_perm, seed)
    if key not in _DENSIFY:
        rng = np.random.default_rng([seed, num_perm, 0xD0])
        _DENSIFY[key] = rng.integers(0, num_perm, (16 * num_perm, num_perm))
    return _DENSIFY[key]
