"""rebalance and resample vs plain pyarrow on the same skewed shards: time and peak RSS.

Peers (what a user would write without dataprep):
- rebalance: `pyarrow.dataset.write_dataset(max_rows_per_file=ceil(T/N))` (streaming; its
  last file is short) and an in-memory "read everything, write N slices".
- resample (undersample to uniform): read the whole table, pick a seeded subset per class
  with numpy, `take`, write. dataprep's stage streams shard by shard instead.

Each contender runs in a fresh process (peak RSS is its own), `--repeats` times; medians.

    PYTHONPATH=$PWD python benchmarks/bench_rebalance.py               # 200k rows, ~1 KB each
    PYTHONPATH=$PWD python benchmarks/bench_rebalance.py --rows 2000000
"""

from __future__ import annotations

import argparse
import math
import resource
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ZSTD = {"compression": "zstd", "compression_level": 3}  # what dataprep writes by default


def make_dataset(root: Path, rows: int, seed: int = 0) -> Path:
    """Uneven shards (sizes drawn from a skewed distribution) of ~1 KB rows with a rare label."""
    import numpy as np
    import pyarrow as pa

    from dataprep import dataset

    root.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    words = np.array([f"w{i}" for i in range(20_000)])
    weights = rng.pareto(1.5, size=max(4, rows // 20_000)) + 0.2
    sizes = np.floor(weights / weights.sum() * rows).astype(int)
    sizes[0] += rows - sizes.sum()
    shards, start = [], 0
    schema = None
    for i, n in enumerate(sizes):
        ids = [f"doc-{start + j}" for j in range(n)]
        lengths = rng.integers(100, 250, size=n)
        text = [" ".join(words[rng.zipf(1.3, size=k) % len(words)]) for k in lengths]
        label = np.where(rng.random(n) < 0.01, "rare", "common")
        table = pa.table({"id": ids, "text": text, "label": label.tolist()})
        schema = table.schema
        writer = dataset.ShardWriter(root / f"part-{i:05d}.parquet", schema)
        writer.write(table)
        shards.append(writer.close())
        start += n
    assert schema is not None
    dataset.write_manifest(root, dataset.Manifest(schema, shards))
    return root


def run_one(name: str, src: str, out: str, shards: int) -> dict[str, Any]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    from dataprep import dataset
    from dataprep.executors import make_executor
    from dataprep.runner import run_stage

    manifest = dataset.read_manifest(src)
    paths = [str(Path(src) / s.path) for s in manifest.shards]
    start = time.perf_counter()
    if name == "ours/rebalance":
        run_stage("rebalance", {"shards": shards}, out, input_path=src,
                  executor=make_executor("local", workers=1))  # fmt: skip
    elif name == "pyarrow/write_dataset":
        per_file = math.ceil(manifest.rows / shards)
        ds.write_dataset(
            ds.dataset(paths, format="parquet"), out, format="parquet",
            max_rows_per_file=per_file, max_rows_per_group=min(per_file, 65536),
            file_options=ds.ParquetFileFormat().make_write_options(**ZSTD),
        )  # fmt: skip
    elif name == "pyarrow/in-memory slices":
        table = pa.concat_tables(pq.read_table(p) for p in paths)
        Path(out).mkdir()
        base, extra = divmod(table.num_rows, shards)
        offset = 0
        for k in range(shards):
            n = base + (k < extra)
            pq.write_table(table.slice(offset, n), f"{out}/part-{k}.parquet", **ZSTD)
            offset += n
    elif name == "ours/resample":
        run_stage("resample", {"label": "label", "strategy": "undersample"}, out,
                  input_path=src, executor=make_executor("local", workers=1))  # fmt: skip
    elif name == "pyarrow/in-memory resample":
        table = pa.concat_tables(pq.read_table(p) for p in paths)
        labels = table.column("label").to_numpy(zero_copy_only=False)
        classes, counts = np.unique(labels, return_counts=True)
        rng = np.random.default_rng(0)
        keep = np.sort(np.concatenate([
            rng.choice(np.nonzero(labels == c)[0], counts.min(), replace=False) for c in classes
        ]))  # fmt: skip
        Path(out).mkdir()
        pq.write_table(table.take(pa.array(keep)), f"{out}/part-0.parquet", **ZSTD)
    else:
        raise ValueError(name)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "rows_per_s": manifest.rows / seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure(name: str, src: Path, work: Path, shards: int, repeats: int) -> dict[str, Any]:
    runs = []
    for r in range(repeats):
        out = work / f"{name.replace('/', '_').replace(' ', '_')}-{r}"
        with ProcessPoolExecutor(max_workers=1) as pool:
            runs.append(pool.submit(run_one, name, str(src), str(out), shards).result())
        shutil.rmtree(out, ignore_errors=True)
    return {k: statistics.median(run[k] for run in runs) for k in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--shards", type=int, default=8, help="rebalance target shard count")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        src = make_dataset(work / "in", args.rows)
        from dataprep import dataset

        manifest = dataset.read_manifest(src)
        rows = [s.rows for s in manifest.shards]
        print(
            f"input: {manifest.rows:,} rows, {manifest.bytes / 1e6:.0f} MB in {len(rows)} "
            f"shards of {min(rows):,}..{max(rows):,} rows; median of {args.repeats}, 1 process"
        )
        print(f"{'contender':<28}{'seconds':>9}{'rows/s':>12}{'peak RSS MB':>13}")
        results = {}
        for name in (
            "ours/rebalance",
            "pyarrow/write_dataset",
            "pyarrow/in-memory slices",
            "ours/resample",
            "pyarrow/in-memory resample",
        ):
            r = measure(name, src, work, args.shards, args.repeats)
            results[name] = r
            print(
                f"{name:<28}{r['seconds']:>9.2f}{r['rows_per_s']:>12,.0f}{r['peak_rss_mb']:>13.0f}"
            )
        print("ratios (ours / theirs): time (<1 = ours faster), peak RSS (<1 = ours smaller)")
        for ours, theirs in (
            ("ours/rebalance", "pyarrow/write_dataset"),
            ("ours/rebalance", "pyarrow/in-memory slices"),
            ("ours/resample", "pyarrow/in-memory resample"),
        ):
            a, b = results[ours], results[theirs]
            print(
                f"  {ours} / {theirs}: time {a['seconds'] / b['seconds']:.2f}x, "
                f"peak RSS {a['peak_rss_mb'] / b['peak_rss_mb']:.2f}x"
            )


if __name__ == "__main__":
    main()
