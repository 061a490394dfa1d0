"""Consistent hashing on whole columns: xxh64 of keys, then jump / rendezvous / ring routing.

Everything runs on numpy uint64 arrays, a few dozen array operations per batch however many
keys it holds: the loops below run over hash rounds or partitions, never over rows. The
results equal the published per-key algorithms exactly (tests compare against them).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

U64 = np.uint64
P1 = U64(11400714785074694791)
P2 = U64(14029467366897019727)
P3 = U64(1609587929392839161)
P4 = U64(9650029242287828579)
P5 = U64(2870177450012600261)
JUMP_MUL = U64(2862933555777941757)


def _u64(value: int) -> np.uint64:
    """A Python int wrapped to 64 bits (numpy scalars warn on overflow; arrays do not)."""
    return U64(value & 0xFFFFFFFFFFFFFFFF)


def _rotl(x: np.ndarray, r: int) -> np.ndarray:
    return (x << U64(r)) | (x >> U64(64 - r))


def _round(acc: np.ndarray, lane: np.ndarray) -> np.ndarray:
    acc = acc + lane * P2
    return _rotl(acc, 31) * P1


def _avalanche(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> U64(33))
    h = h * P2
    h = h ^ (h >> U64(29))
    h = h * P3
    return h ^ (h >> U64(32))


def xxh64_array(values: pa.Array | pa.ChunkedArray, seed: int = 0) -> np.ndarray:
    """xxh64 of every value (UTF-8 / raw bytes; integers as 8 little-endian bytes).

    Equals `xxhash.xxh64_intdigest(value, seed)` per value. Nulls hash as the empty string;
    callers that care filter them first.
    """
    if isinstance(values, pa.ChunkedArray):
        if values.num_chunks == 1:
            values = values.chunk(0)
        else:
            values = values.combine_chunks()
    kind = values.type
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        ints = pc.cast(values, pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
        return _xxh64_fixed8(ints.astype(np.int64).view(np.uint64), seed)
    if not (pa.types.is_string(kind) or pa.types.is_binary(kind)):
        if pa.types.is_large_string(kind) or pa.types.is_large_binary(kind):
            values = values.cast(pa.large_binary())
        else:
            values = pc.cast(values, pa.string())
    if pa.types.is_large_string(values.type) or pa.types.is_large_binary(values.type):
        offsets_dtype = np.int64
    else:
        offsets_dtype = np.int32
    bufs = values.buffers()
    n = len(values)
    offsets = np.frombuffer(bufs[1], dtype=offsets_dtype)
    offsets = offsets[values.offset : values.offset + n + 1].astype(np.int64)
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.empty(0, np.uint8)
    starts = offsets[:-1]
    lengths = offsets[1:] - starts
    if values.null_count:
        lengths = np.where(values.is_null().to_numpy(zero_copy_only=False), 0, lengths)
    return _xxh64_var(data, starts, lengths, seed)


def _xxh64_fixed8(words: np.ndarray, seed: int) -> np.ndarray:
    """xxh64 of 8-byte inputs (one word each): the short-input path with one 8-byte round."""
    h = np.full(words.shape, _u64(seed + int(P5) + 8), dtype=np.uint64)
    h = h ^ _round(np.zeros_like(words), words)
    h = _rotl(h, 27) * P1 + P4
    return _avalanche(h)


def _xxh64_var(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray, seed: int) -> np.ndarray:
    """xxh64 of variable-length byte strings laid end to end in `data` (Arrow layout)."""
    padded = np.zeros(len(data) + 16, dtype=np.uint8)
    padded[: len(data)] = data
    # Unaligned little-endian words starting at every byte: one gather reads a word anywhere.
    w64 = np.ndarray((len(padded) - 7,), dtype="<u8", buffer=padded, strides=(1,))
    w32 = np.ndarray((len(padded) - 3,), dtype="<u4", buffer=padded, strides=(1,))
    h = np.empty(len(starts), dtype=np.uint64)
    pos = starts.copy()
    stripes = lengths // 32
    long = np.nonzero(stripes > 0)[0]
    short = np.nonzero(stripes == 0)[0]
    h[short] = _u64(seed + int(P5))
    if len(long):
        p = pos[long]
        v1 = np.full(len(long), _u64(seed + int(P1) + int(P2)), dtype=np.uint64)
        v2 = np.full(len(long), _u64(seed + int(P2)), dtype=np.uint64)
        v3 = np.full(len(long), _u64(seed), dtype=np.uint64)
        v4 = np.full(len(long), _u64(seed - int(P1)), dtype=np.uint64)
        ns = stripes[long]
        for s in range(int(ns.max())):
            m = ns > s
            q = p[m] + 32 * s
            v1[m] = _round(v1[m], w64[q])
            v2[m] = _round(v2[m], w64[q + 8])
            v3[m] = _round(v3[m], w64[q + 16])
            v4[m] = _round(v4[m], w64[q + 24])
        acc = _rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)
        for v in (v1, v2, v3, v4):
            acc = (acc ^ _round(np.zeros_like(v), v)) * P1 + P4
        h[long] = acc
        pos[long] += 32 * ns
    h = h + lengths.astype(np.uint64)
    rest = lengths - 32 * stripes
    words = rest // 8
    for k in range(int(words.max()) if len(words) else 0):
        if words.min() > k:  # every key has this word: skip the mask (the common case)
            k1 = _round(np.zeros(len(h), dtype=np.uint64), w64[pos + 8 * k])
            h = _rotl(h ^ k1, 27) * P1 + P4
            continue
        m = np.nonzero(words > k)[0]
        k1 = _round(np.zeros(len(m), dtype=np.uint64), w64[pos[m] + 8 * k])
        h[m] = _rotl(h[m] ^ k1, 27) * P1 + P4
    pos += 8 * words
    rest -= 8 * words
    m = np.nonzero(rest >= 4)[0]
    if len(m):
        k1 = w32[pos[m]].astype(np.uint64) * P1
        h[m] = _rotl(h[m] ^ k1, 23) * P2 + P3
        pos[m] += 4
        rest[m] -= 4
    for k in range(3):
        m = np.nonzero(rest > k)[0]
        if not len(m):
            break
        b = padded[pos[m] + k].astype(np.uint64) * P5
        h[m] = _rotl(h[m] ^ b, 11) * P1
    return _avalanche(h)


def jump(hashes: np.ndarray, buckets: int) -> np.ndarray:
    """Jump consistent hash (Lamping & Veach 2014) of every key at once, as int32 buckets.

    Each pass advances every key that is still jumping; keys drop out as they pass `buckets`,
    so the loop runs ~ln(buckets) times, not once per key.
    """
    out = np.empty(len(hashes), dtype=np.int32)
    idx = np.arange(len(hashes))
    key = hashes.astype(np.uint64, copy=True)
    j = np.zeros(len(hashes), dtype=np.int64)
    scale = float(1 << 31)
    while len(idx):  # arrays shrink to the keys still jumping
        b = j
        key = key * JUMP_MUL + U64(1)
        step = scale / ((key >> U64(33)) + U64(1)).astype(np.float64)
        j = ((b + 1).astype(np.float64) * step).astype(np.int64)
        done = j >= buckets
        out[idx[done]] = b[done]
        going = ~done
        idx, key, j = idx[going], key[going], j[going]
    return out


def node_names(count: int, names: Sequence[str] | None = None) -> list[str]:
    """Each partition's identity in the hash: its given name, else "partition-<i>".

    Identities never depend on how many partitions exist, so adding one (or, with names,
    removing one anywhere in the list) only moves keys to (or from) that partition.
    """
    return list(names) if names else [f"partition-{i}" for i in range(count)]


def node_seeds(names: Sequence[str]) -> np.ndarray:
    return np.array([xxhash.xxh64_intdigest(n.encode()) for n in names], dtype=np.uint64)


def unit_interval(h: np.ndarray) -> np.ndarray:
    """Map 64-bit hashes to floats strictly inside (0, 1) using their top 53 bits."""
    return ((h >> U64(11)).astype(np.float64) + 0.5) * (1.0 / (1 << 53))


def rendezvous(
    hashes: np.ndarray, weights: Sequence[float], names: Sequence[str] | None = None
) -> np.ndarray:
    """Weighted rendezvous (highest random weight): score = w / -ln(u(key, node)); argmax.

    Adding a node only takes keys for itself (other nodes' scores do not change), and each
    node's expected share is proportional to its weight.
    """
    seeds = node_seeds(node_names(len(weights), names))
    best = np.full(len(hashes), -np.inf)
    out = np.zeros(len(hashes), dtype=np.int32)
    for i, w in enumerate(weights):
        score = float(w) / -np.log(unit_interval(_avalanche(hashes ^ seeds[i])))
        better = score > best
        best = np.where(better, score, best)
        out[better] = i
    return out


def ring_points(
    weights: Sequence[float], vnodes: int, names: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The ring: sorted point hashes and the partition that owns each point.

    Partition i places max(1, round(vnodes * w_i)) points at xxh64("<name>#<v>"), so its
    points never depend on the other partitions.
    """
    points: list[int] = []
    owners: list[int] = []
    for i, (name, w) in enumerate(zip(node_names(len(weights), names), weights, strict=True)):
        count = max(1, round(vnodes * w))
        points.extend(xxhash.xxh64_intdigest(f"{name}#{v}".encode()) for v in range(count))
        owners.extend([i] * count)
    order = np.argsort(np.array(points, dtype=np.uint64), kind="stable")
    return np.array(points, dtype=np.uint64)[order], np.array(owners, dtype=np.int32)[order]


def ring(
    hashes: np.ndarray, weights: Sequence[float], vnodes: int, names: Sequence[str] | None = None
) -> np.ndarray:
    """Consistent-hash ring: each key goes to the first point clockwise at or after its hash."""
    points, owners = ring_points(weights, vnodes, names)
    idx = np.searchsorted(points, hashes, side="left")
    idx[idx == len(points)] = 0
    return owners[idx]


def route(
    hashes: np.ndarray,
    partitions: int,
    scheme: str,
    weights: Sequence[float] | None = None,
    vnodes: int = 256,
    names: Sequence[str] | None = None,
) -> np.ndarray:
    """Partition number of each key hash under one scheme."""
    if scheme == "jump":
        return jump(hashes, partitions)
    w = list(weights) if weights else [1.0] * partitions
    if scheme == "rendezvous":
        return rendezvous(hashes, w, names)
    if scheme == "ring":
        return ring(hashes, w, vnodes, names)
    raise ValueError(f"unknown scheme {scheme!r}")
