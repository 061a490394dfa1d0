"""dataprep.hashing against per-key reference implementations, and the consistent-hashing
properties the partition stage promises (balance, minimal movement), measured on 1M keys."""

from __future__ import annotations

import random

import hash_reference as ref
import numpy as np
import pyarrow as pa
import pytest

from dataprep import hashing


def _random_strings(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789:/-é漢"
    # lengths cover every xxh64 path: <4, 4-7, 8-31, and >=32 (stripes) with all tails
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 100))) for _ in range(n)]


def test_xxh64_matches_xxhash_library_on_strings_binary_and_ints() -> None:
    strings = _random_strings(3000, 1)
    arr = pa.array(strings)
    assert hashing.xxh64_array(arr).tolist() == [ref.key_hash(s) for s in strings]
    assert hashing.xxh64_array(arr, seed=99).tolist() == [ref.key_hash(s, 99) for s in strings]
    sliced = arr.slice(17, 500)  # Arrow slices keep an offset into shared buffers
    assert hashing.xxh64_array(sliced).tolist() == [ref.key_hash(s) for s in strings[17:517]]
    chunked = pa.chunked_array([arr.slice(0, 10), arr.slice(10, 30)])
    assert hashing.xxh64_array(chunked).tolist() == [ref.key_hash(s) for s in strings[:40]]
    large = pa.array(strings[:200], pa.large_string())
    assert hashing.xxh64_array(large).tolist() == [ref.key_hash(s) for s in strings[:200]]
    blobs = [s.encode() for s in strings[:200]]
    assert hashing.xxh64_array(pa.array(blobs, pa.binary())).tolist() == [
        ref.key_hash(b) for b in blobs
    ]
    rng = random.Random(2)
    ints = [rng.randint(-(2**63), 2**63 - 1) for _ in range(1000)] + [0, -1, 2**63 - 1]
    assert hashing.xxh64_array(pa.array(ints, pa.int64())).tolist() == [
        ref.key_hash(i) for i in ints
    ]
    small = [rng.randint(-100, 100) for _ in range(100)]
    assert hashing.xxh64_array(pa.array(small, pa.int16())).tolist() == [
        ref.key_hash(i) for i in small
    ]


@pytest.fixture(scope="module")
def million() -> np.ndarray:
    keys = pa.array([f"doc-{i}" for i in range(1_000_000)])
    return hashing.xxh64_array(keys)


@pytest.mark.parametrize("buckets", [1, 2, 3, 7, 64, 1000, 65537])
def test_jump_matches_reference(million: np.ndarray, buckets: int) -> None:
    sample = million[:4000]
    assert hashing.jump(sample, buckets).tolist() == [ref.jump(int(h), buckets) for h in sample]


def test_rendezvous_and_ring_match_reference(million: np.ndarray) -> None:
    sample = million[:3000]
    weights = [1.0, 2.5, 0.5, 1.0, 3.0]
    assert hashing.rendezvous(sample, weights).tolist() == [
        ref.rendezvous(int(h), weights) for h in sample
    ]
    ring = ref.Ring(weights, 50)
    assert hashing.ring(sample, weights, 50).tolist() == [ring.lookup(int(h)) for h in sample]
    # keys exactly on, just before and past the last point wrap as the reference does
    edges = np.array(
        [ring.hashes[0], ring.hashes[-1], ring.hashes[-1] + 1, 0, 2**64 - 1], dtype=np.uint64
    )
    assert hashing.ring(edges, weights, 50).tolist() == [ring.lookup(int(h)) for h in edges]


@pytest.mark.parametrize(("scheme", "vnodes"), [("jump", 0), ("rendezvous", 0), ("ring", 16384)])
def test_balance_1m_keys_64_partitions(million: np.ndarray, scheme: str, vnodes: int) -> None:
    parts = hashing.route(million, 64, scheme, vnodes=vnodes or 256)
    sizes = np.bincount(parts, minlength=64)
    assert sizes.sum() == len(million)
    assert sizes.max() / sizes.mean() <= 1.05


@pytest.mark.parametrize(("scheme", "vnodes"), [("jump", 0), ("rendezvous", 0), ("ring", 4096)])
def test_growing_by_one_moves_few_keys_and_only_to_the_new_partition(
    million: np.ndarray, scheme: str, vnodes: int
) -> None:
    keys = million if scheme == "jump" else million[:250_000]
    for n in (1, 2, 5, 16, 63):
        old = hashing.route(keys, n, scheme, vnodes=vnodes or 256)
        new = hashing.route(keys, n + 1, scheme, vnodes=vnodes or 256)
        moved = old != new
        assert moved.mean() <= 1.1 / (n + 1), (n, moved.mean())
        assert (new[moved] == n).all()  # nothing moves between two old partitions


def test_rendezvous_weights_set_shares(million: np.ndarray) -> None:
    weights = [1.0, 2.0, 4.0, 1.0]
    parts = hashing.rendezvous(million[:400_000], weights)
    shares = np.bincount(parts, minlength=4) / 400_000
    expected = np.array(weights) / sum(weights)
    assert np.allclose(shares, expected, rtol=0.02)
    ring_parts = hashing.ring(million[:400_000], weights, 4096)
    ring_shares = np.bincount(ring_parts, minlength=4) / 400_000
    assert np.allclose(ring_shares, expected, rtol=0.05)


@pytest.mark.parametrize("scheme", ["rendezvous", "ring"])
def test_removing_a_named_partition_moves_only_its_keys(million: np.ndarray, scheme: str) -> None:
    keys = million[:200_000]
    names = ["alpha", "beta", "gamma", "delta", "epsilon"]
    fewer = [n for n in names if n != "gamma"]
    before = np.array(names)[hashing.route(keys, 5, scheme, vnodes=1024, names=names)]
    after = np.array(fewer)[hashing.route(keys, 4, scheme, vnodes=1024, names=fewer)]
    moved = before != after
    assert (before[moved] == "gamma").all() and (before == "gamma").sum() == moved.sum()
    sample = keys[:2000]
    ring = ref.Ring([1.0] * 5, 64, names)
    want = [
        ref.rendezvous(int(h), [1.0] * 5, names) if scheme == "rendezvous" else ring.lookup(int(h))
        for h in sample
    ]
    assert hashing.route(sample, 5, scheme, vnodes=64, names=names).tolist() == want
