"""Partition routing speed: dataprep's vectorised hashing vs a plain Python loop vs uhashring.

Every contender routes the same string keys to the same number of partitions; each runs in a
fresh process (so peak RSS is its own) `--repeats` times and the median is reported.

    pip install uhashring
    PYTHONPATH=$PWD python benchmarks/bench_partition.py            # 1M keys, 64 partitions
    PYTHONPATH=$PWD python benchmarks/bench_partition.py --keys 5000000 --partitions 1000

Contenders:
- ours/jump        xxh64 (numpy, whole column) + jump consistent hash (numpy, all keys at once)
- ours/ring        same hash + ring with 640 points per partition (uhashring's default count)
- ours/rendezvous  same hash + weighted rendezvous (one pass per partition)
- python/jump      per key: xxhash.xxh64_intdigest + the published jump loop in Python
- uhashring/ring   per key: HashRing.get_node (ketama md5 ring, 160 vnodes x 4 replicas)
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MASK = (1 << 64) - 1


def make_keys(n: int) -> list[str]:
    return [f"user-{(i * 2654435761) & 0xFFFFFFFF:08x}-{i}" for i in range(n)]


def _python_jump(key: int, buckets: int) -> int:
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) & MASK
        j = int((b + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return b


def run_one(name: str, n: int, partitions: int) -> dict[str, Any]:
    """Build the keys, time only the routing, return keys/s, balance and this process's RSS."""
    import numpy as np
    import pyarrow as pa

    keys = make_keys(n)
    if name.startswith("ours"):
        from dataprep import hashing

        column = pa.array(keys)
        scheme = name.split("/")[1]
        hashing.route(hashing.xxh64_array(column.slice(0, 1000)), partitions, scheme, vnodes=640)
        start = time.perf_counter()
        parts = hashing.route(hashing.xxh64_array(column), partitions, scheme, vnodes=640)
        seconds = time.perf_counter() - start
    elif name == "python/jump":
        import xxhash

        start = time.perf_counter()
        parts = [_python_jump(xxhash.xxh64_intdigest(k.encode()), partitions) for k in keys]
        seconds = time.perf_counter() - start
    elif name == "uhashring/ring":
        from uhashring import HashRing

        ring = HashRing(nodes=[f"partition-{i}" for i in range(partitions)])
        start = time.perf_counter()
        names = [ring.get_node(k) for k in keys]
        seconds = time.perf_counter() - start
        parts = [int(s.rsplit("-", 1)[1]) for s in names]
    else:
        raise ValueError(name)
    sizes = np.bincount(np.asarray(parts), minlength=partitions)
    return {
        "keys_per_s": n / seconds,
        "balance": float(sizes.max() / sizes.mean()),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure(name: str, n: int, partitions: int, repeats: int) -> dict[str, Any]:
    runs = []
    for _ in range(repeats):
        with ProcessPoolExecutor(max_workers=1) as pool:  # fresh process: its own peak RSS
            runs.append(pool.submit(run_one, name, n, partitions).result())
    return {
        "name": name,
        "keys": n,
        "keys_per_s": statistics.median(r["keys_per_s"] for r in runs),
        "balance": runs[0]["balance"],
        "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=1_000_000, help="keys per contender")
    parser.add_argument("--partitions", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    contenders = [
        ("ours/jump", args.keys),
        ("ours/ring", args.keys),
        ("ours/rendezvous", args.keys),
        ("python/jump", args.keys),
    ]
    try:
        import uhashring  # noqa: F401

        contenders.append(("uhashring/ring", args.keys))
    except ImportError:
        print("uhashring not installed (pip install uhashring): skipping it")
    results = {}
    print(f"{args.partitions} partitions, median of {args.repeats} runs, each in a fresh process")
    print(f"{'contender':<18}{'keys':>11}{'keys/s':>14}{'max/mean':>10}{'peak RSS MB':>13}")
    for name, n in contenders:
        r = measure(name, n, args.partitions, args.repeats)
        results[name] = r
        print(
            f"{name:<18}{n:>11,}{r['keys_per_s']:>14,.0f}{r['balance']:>10.4f}"
            f"{r['peak_rss_mb']:>13.0f}"
        )
    print("ratios (ours / theirs, keys/s; >1 means ours is faster):")
    pairs = [("ours/jump", "python/jump"), ("ours/jump", "uhashring/ring")]
    pairs += [("ours/ring", "uhashring/ring"), ("ours/rendezvous", "python/jump")]
    for ours, theirs in pairs:
        if theirs in results:
            ratio = results[ours]["keys_per_s"] / results[theirs]["keys_per_s"]
            print(f"  {ours} / {theirs}: {ratio:.1f}x")


if __name__ == "__main__":
    main()
