"""Reading encrypted shards vs plain ones through the reader (`dataprep.loader`).

One generated text dataset, encrypted with `dataprep encrypt`; both are read in full through
`ShardDataset` (batch 256, in-process), alternating plain / encrypted, `--repeat` times.
Prints medians, samples/s and the overhead ratio (target <= 1.15).

    python benchmarks/bench_encrypted_read.py --rows 200000 --repeat 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa


def make_dataset(root: Path, rows: int) -> Path:
    from dataprep.runner import run_stage

    rng = np.random.default_rng(0)
    words = np.array([f"w{i}" for i in range(5000)])
    texts = [" ".join(words[rng.integers(0, 5000, 150)]) for _ in range(rows)]
    src = root / "in.parquet"
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": texts}), src)
    run_stage("shard", {"shard_rows": 50_000}, root / "plain", inputs=[str(src)])
    return root / "plain"


def read_all(path: Path, key_file: Path | None) -> tuple[float, int]:
    from dataprep.loader import ShardDataset

    start = time.perf_counter()
    ds = ShardDataset(path, columns=["text"], batch_size=256, key_file=key_file)
    n = sum(len(batch["text"]) for batch in ds)
    return time.perf_counter() - start, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from dataprep.crypto import generate_key_file
    from dataprep.runner import run_stage

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        plain = make_dataset(root, args.rows)
        keys = root / "keys.json"
        generate_key_file(keys)
        run_stage(
            "encrypt", {"key_file": str(keys)}, root / "enc", input_path=plain, key_file=str(keys)
        )
        times: dict[str, list[float]] = {"plain": [], "encrypted": []}
        for _ in range(args.repeat):
            times["plain"].append(read_all(plain, None)[0])
            seconds, n = read_all(root / "enc", keys)
            assert n == args.rows
            times["encrypted"].append(seconds)
    med = {k: statistics.median(v) for k, v in times.items()}
    for name, seconds in med.items():
        print(f"{name:10} {seconds:7.3f} s  {args.rows / seconds:12,.0f} samples/s")
    print(f"encrypted / plain time: {med['encrypted'] / med['plain']:.3f} (target <= 1.15)")


if __name__ == "__main__":
    main()
