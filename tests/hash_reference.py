"""Straightforward per-key Python versions of the published algorithms: the test oracle for
dataprep.hashing's vectorised code (which must agree with these exactly)."""

from __future__ import annotations

import bisect
import math

import xxhash

MASK = (1 << 64) - 1


def key_hash(value: object, seed: int = 0) -> int:
    """xxh64 from the xxhash library, one key at a time."""
    if isinstance(value, bool | int):
        return xxhash.xxh64_intdigest(int(value).to_bytes(8, "little", signed=True), seed)
    data = value.encode() if isinstance(value, str) else bytes(value)  # type: ignore[arg-type]
    return xxhash.xxh64_intdigest(data, seed)


def jump(key: int, buckets: int) -> int:
    """Lamping & Veach, "A Fast, Minimal Memory, Consistent Hash Algorithm" (2014), verbatim."""
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) & MASK
        j = int((b + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return b


def _fmix(h: int) -> int:
    """xxh64's final avalanche, on Python ints."""
    h ^= h >> 33
    h = (h * 14029467366897019727) & MASK
    h ^= h >> 29
    h = (h * 1609587929392839161) & MASK
    return h ^ (h >> 32)


def _names(count: int, names: list[str] | None) -> list[str]:
    return names or [f"partition-{i}" for i in range(count)]


def rendezvous(key: int, weights: list[float], names: list[str] | None = None) -> int:
    """Weighted highest-random-weight: argmax_i w_i / -ln(u_i(key))."""
    best, winner = -math.inf, 0
    for i, (name, w) in enumerate(zip(_names(len(weights), names), weights, strict=True)):
        node = xxhash.xxh64_intdigest(name.encode())
        u = ((_fmix(key ^ node) >> 11) + 0.5) / float(1 << 53)
        score = w / -math.log(u)
        if score > best:
            best, winner = score, i
    return winner


class Ring:
    """Classic consistent-hash ring (Karger et al.) with weighted virtual nodes, via bisect."""

    def __init__(self, weights: list[float], vnodes: int, names: list[str] | None = None):
        points = []
        for i, (name, w) in enumerate(zip(_names(len(weights), names), weights, strict=True)):
            for v in range(max(1, round(vnodes * w))):
                points.append((xxhash.xxh64_intdigest(f"{name}#{v}".encode()), i))
        points.sort(key=lambda p: p[0])
        self.hashes = [p[0] for p in points]
        self.owners = [p[1] for p in points]

    def lookup(self, key: int) -> int:
        i = bisect.bisect_left(self.hashes, key)
        return self.owners[i if i < len(self.hashes) else 0]
