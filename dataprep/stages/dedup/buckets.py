"""Per-shard bucket files and the per-band merge that turns them into candidate edges.

The map phase writes, for every input shard, each band's (key, row) pairs sorted by key
(`bands.npy`, `bandrows.npy`) and the exact fingerprints sorted (`exact.npy`). A band task
then walks the key space in ranges: for each range it binary-searches every shard's sorted
run, concatenates the slices and sorts them, so equal keys meet while memory stays at one
range (`merge_rows` pairs), however large the corpus. Equal keys become edges.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dataprep.arrays import load_array, load_array_slice
from dataprep.storage import StoragePath

EXACT = -1  # the "band" number of the exact-fingerprint pass
EXACT_DTYPE = np.dtype("S16")  # big-endian (high, low): byte order == numeric order
FENCE = 4096  # every FENCE-th sorted key is kept in fences.npy, to find a key range's bytes


def shard_dir(work: str | Path | StoragePath, index: int) -> StoragePath:
    return StoragePath(work) / "scratch" / f"s{index:05d}"


def exact_keys(fp: np.ndarray) -> np.ndarray:
    """(n, 2) uint64 fingerprints as sortable 16-byte strings."""
    return np.ascontiguousarray(fp.astype(">u8")).view(EXACT_DTYPE).reshape(-1)


@dataclass(frozen=True)
class Run:
    """One sorted (key, global id) run: a shard's band, or a saved index's band."""

    keys: np.ndarray
    ids: np.ndarray  # global ids, same length as keys (may be a memmap + offset)
    offset: int = 0

    def slice(self, lo: object, hi: object) -> tuple[np.ndarray, np.ndarray]:
        i0 = 0 if lo is None else int(np.searchsorted(self.keys, lo, side="left"))
        i1 = len(self.keys) if hi is None else int(np.searchsorted(self.keys, hi, side="left"))
        return np.asarray(self.keys[i0:i1]), np.asarray(self.ids[i0:i1]).astype(np.int64) + (
            self.offset
        )


def shard_runs(
    work: str | Path | StoragePath,
    shards: Sequence[int],
    offsets: Sequence[int],
    band: int,
    key_range: tuple[object, object] | None = None,
) -> list[Run]:
    """Sorted runs of one band (or EXACT), one per shard, in shard order: memory-mapped whole,
    or (with `key_range`) just the keys in [lo, hi), found through the shard's fences so only
    about that part of each file is read."""
    runs = []
    for index in shards:
        folder = shard_dir(work, index)
        keys_file, rows_file, fences_file = (
            ("exact.npy", "exactrows.npy", "exactfences.npy")
            if band == EXACT
            else ("bands.npy", "bandrows.npy", "fences.npy")
        )
        row = None if band == EXACT else band
        if key_range is None:
            if band == EXACT:
                keys, rows = load_array(folder / keys_file), load_array(folder / rows_file)
            else:
                keys = load_array(folder / keys_file, row=band)
                rows = load_array(folder / rows_file, row=band)
            runs.append(Run(keys, rows, offsets[index]))
            continue
        lo, hi = key_range
        fences = load_array(folder / fences_file, mmap=False, row=row)
        first = 0 if lo is None else max(int(np.searchsorted(fences, lo, side="left")) - 1, 0)
        last = len(fences) if hi is None else int(np.searchsorted(fences, hi, side="left"))
        start, end = first * FENCE, last * FENCE
        keys = load_array_slice(folder / keys_file, row, start, end).reshape(-1)
        rows = load_array_slice(folder / rows_file, row, start, end).reshape(-1)
        keys, ids = Run(keys, rows).slice(lo, hi)
        runs.append(Run(keys, ids, offsets[index]))
    return runs


KeyRange = tuple[object, object]  # [lo, hi); None = the end of the key space


def key_ranges(parts: int, dtype: np.dtype, within: KeyRange = (None, None)) -> list[KeyRange]:
    """`parts` contiguous ranges covering `within` (keys are uniform hashes, so even widths
    hold about even counts). Exact keys are cut on their high 8 bytes."""
    if parts <= 1:
        return [within]
    lo, hi = within
    start = 0 if lo is None else _high_bits(lo)
    stop = 1 << 64 if hi is None else _high_bits(hi)
    cuts = [start + (stop - start) * i // parts for i in range(1, parts)]
    if dtype == EXACT_DTYPE:
        values: list[object] = [
            np.array(c.to_bytes(8, "big") + bytes(8), EXACT_DTYPE)[()] for c in cuts
        ]
    else:
        values = [np.uint64(c) for c in cuts]
    edges: list[object] = [lo, *values, hi]
    return list(zip(edges[:-1], edges[1:], strict=True))


def _high_bits(key: object) -> int:
    return int.from_bytes(bytes(key)[:8], "big") if isinstance(key, bytes) else int(key)


def merged_ranges(
    runs: Sequence[Run], merge_rows: int, within: KeyRange = (None, None)
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Sorted (keys, ids) per key range across all runs (whose keys lie `within`), ids
    ascending within equal keys; each range holds about `merge_rows` pairs."""
    if not runs:
        return
    total = sum(len(r.keys) for r in runs)
    parts = max(1, -(-total // merge_rows))
    for lo, hi in key_ranges(parts, runs[0].keys.dtype, within):
        parts = [r.slice(lo, hi) for r in runs]
        keys = np.concatenate([p[0] for p in parts])
        ids = np.concatenate([p[1] for p in parts])
        if len(keys) == 0:
            continue
        yield _sort_pairs(keys, ids)


def argsort_stable(keys: np.ndarray) -> np.ndarray:
    """`np.argsort(keys, kind="stable")` of a 1-d uint64 array, ~3x cheaper on random keys:
    numpy's default (SIMD) sort, then the positions within each run of equal keys put back
    in ascending order (one sort of the tied positions as (run number, position) packed in
    64 bits). The same permutation; over 2**32 keys it is the stable sort itself. Few
    temporaries, and only as long as the tied part: more of them raised the stage's peak RSS
    by ~60 MB (glibc's heap kept what they left behind)."""
    n = len(keys)
    if n >= 1 << 32 or keys.dtype != np.uint64:
        return np.argsort(keys, kind="stable")
    order = np.argsort(keys)
    if n < 2:
        return order
    ordered = keys[order]
    tie = ordered[1:] == ordered[:-1]  # tie[i]: positions i and i + 1 hold equal keys
    del ordered
    if not tie.any():  # no equal keys: the permutation is unique
        return order
    member = np.zeros(n, dtype=bool)
    member[1:] = tie
    member[:-1] |= tie
    pos = np.flatnonzero(member)
    first = np.ones(len(pos), dtype=bool)
    first[1:] = ~tie[pos[1:] - 1]
    packed = np.cumsum(first, dtype=np.uint64)  # the run number of each tied position
    packed <<= np.uint64(32)
    packed |= order[pos].astype(np.uint64)
    packed.sort()
    order[pos] = (packed & np.uint64(0xFFFFFFFF)).astype(np.int64)
    return order


def _sort_pairs(keys: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(keys, ids) sorted by key, then id. The input is a few sorted runs back to back, which
    a stable sort (timsort/radix) orders in about one pass; where that leaves equal keys
    with ids out of order (runs whose ids do not ascend run by run, e.g. an old index's
    after the new rows), the full two-key sort decides, as before."""
    order = np.argsort(keys, kind="stable")
    sorted_keys, by_key = keys[order], ids[order]
    if len(keys) > 1:
        tie = sorted_keys[1:] == sorted_keys[:-1]
        if (by_key[1:][tie] < by_key[:-1][tie]).any():
            return sorted_keys, ids[np.lexsort((ids, keys))]  # the same keys either way
    return sorted_keys, by_key


def group_edges(keys: np.ndarray, ids: np.ndarray, chain: bool = False) -> tuple[np.ndarray, ...]:
    """Edges inside each run of equal keys: (first member, member) for every other member;
    with `chain` also (previous member, member), so a verified union does not hinge on
    the first member alone. Returns (a, b, group sizes of groups with >1 member)."""
    n = len(keys)
    if n < 2:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    new = np.empty(n, dtype=bool)
    new[0] = True
    new[1:] = keys[1:] != keys[:-1]
    first = np.maximum.accumulate(np.where(new, np.arange(n), 0))
    member = ~new
    a = ids[first[member]]
    b = ids[member]
    if chain:
        prev = np.flatnonzero(member)
        not_star = first[prev] != prev - 1
        a = np.concatenate([a, ids[prev[not_star] - 1]])
        b = np.concatenate([b, ids[prev[not_star]]])
    starts = np.flatnonzero(new)
    sizes = np.diff(np.append(starts, n))
    return a, b, sizes[sizes > 1]


def lookup(index_keys: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of `keys` found in sorted `index_keys`: (which keys hit, index positions)."""
    if len(index_keys) == 0 or len(keys) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    pos = np.searchsorted(index_keys, keys)
    pos = np.minimum(pos, len(index_keys) - 1)
    hit = np.asarray(index_keys[pos]) == keys
    return np.flatnonzero(hit), pos[hit]


class SignatureStore:
    """Random access to signatures by global id, from per-shard files.

    Each call maps a shard's file, copies the rows it needs and unmaps it again, so resident
    memory stays at one shard's file plus the rows asked for, however large the corpus.
    Remote files are fetched once per store into (unlinked) local spool files and mapped.
    """

    def __init__(
        self,
        work: str | Path | StoragePath,
        offsets: Sequence[int],
        saved: np.ndarray | None = None,
    ):
        self.work = StoragePath(work)
        self.offsets = np.asarray(offsets, dtype=np.int64)  # len = shards + 1
        self.saved = saved  # signatures of ids >= offsets[-1] (a saved index), memmap
        self._fetched: dict[int, np.ndarray] = {}

    def _signatures(self, index: int) -> np.ndarray:
        if index in self._fetched:
            return self._fetched[index]
        mapped = load_array(shard_dir(self.work, index) / "sig.npy")
        if self.work.remote:
            self._fetched[index] = mapped
        return mapped

    def get(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        base = int(self.offsets[-1])
        out: np.ndarray | None = None
        shard_of = np.searchsorted(self.offsets, ids, side="right") - 1
        for index in np.unique(shard_of):
            mask = shard_of == index
            if index >= len(self.offsets) - 1:
                assert self.saved is not None
                values = np.asarray(self.saved[ids[mask] - base])
            else:
                mapped = self._signatures(int(index))
                values = mapped[ids[mask] - self.offsets[index]]  # a copy: fancy indexing
                del mapped
            if out is None and len(values) == len(ids):  # all from one file: no merge
                return np.asarray(values)
            if out is None:
                out = np.empty((len(ids), values.shape[1]), dtype=np.uint32)
            out[mask] = values
        if out is None:
            return np.zeros((0, 0), dtype=np.uint32)
        return out

    def similar(self, a: np.ndarray, b: np.ndarray, floor: float, chunk: int = 32768) -> np.ndarray:
        """Bool per pair: estimated Jaccard >= floor, in chunks to bound memory."""
        good = np.zeros(len(a), dtype=bool)
        for start in range(0, len(a), chunk):
            part = slice(start, start + chunk)
            sig_a, sig_b = self.get(a[part]), self.get(b[part])
            same = np.count_nonzero(sig_a == sig_b, axis=1)
            good[part] = same / sig_a.shape[1] >= floor  # what .mean(axis=1) computes
        return good
