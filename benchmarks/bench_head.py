"""How long `dataprep head` takes to show rows of a dataset, against reading it all and against
duckdb and polars doing the same (`LIMIT 10`, `USING SAMPLE`, `scan_parquet().head`).

The dataset is this machine's package copyright files, repeated `--copies` times with distinct
ids, sharded by dataprep (real text, ~20 KB a document). Times are the best of `--repeat` runs
in one process (no interpreter start-up); `cli` rows time the whole `dataprep head` command.

    python benchmarks/bench_head.py [--copies 12] [--repeat 5] [--work /tmp/bench_head]
"""

from __future__ import annotations

import argparse
import glob
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def build(work: Path, copies: int) -> Path:
    out = work / "ds"
    if (out / ".manifest.json").exists():
        return out
    work.mkdir(parents=True, exist_ok=True)
    texts = []
    for path in sorted(glob.glob("/usr/share/doc/*/copyright")):
        try:
            texts.append((path, Path(path).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError):
            continue
    with open(work / "docs.jsonl", "w") as f:
        for copy in range(copies):
            for path, text in texts:
                f.write(json.dumps({"id": f"{path}#{copy}", "text": text}) + "\n")
    cmd = [sys.executable, "-m", "dataprep", "shard", str(work / "docs.jsonl"), "-o", str(out)]
    subprocess.run([*cmd, "-q", "--shard-bytes", "32MB"], check=True)
    return out


def best(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--work", default="/tmp/bench_head")
    args = parser.parse_args()
    ds = build(Path(args.work), args.copies)

    import duckdb
    import polars as pl
    import pyarrow.parquet as pq

    from dataprep.dataset import read_manifest
    from dataprep.rows import head

    manifest = read_manifest(ds)
    files = [str(ds / s.path) for s in manifest.shards]
    glob_ = str(ds / "*.parquet")
    where = "id >= '/usr/share/doc/z'"
    rows: list[tuple[str, float, str]] = []

    def ours(label: str, **kw: Any) -> None:
        found = head(ds, 10, **kw)
        cost = f"{found.row_groups_read} row groups of {found.shards_opened} shards"
        rows.append((label, best(lambda: head(ds, 10, **kw), args.repeat), cost))

    ours("dataprep head -n 10")
    ours("dataprep head -n 10 --shuffle", shuffle=True, seed=1)
    ours(f'dataprep head -n 10 --where "{where}"', where=where)
    con = duckdb.connect()
    peers = {
        "duckdb LIMIT 10": f"SELECT * FROM read_parquet('{glob_}') LIMIT 10",
        "duckdb USING SAMPLE 10 ROWS": f"SELECT * FROM read_parquet('{glob_}') "
        "USING SAMPLE 10 ROWS (reservoir, 1)",
        "duckdb WHERE ... LIMIT 10": f"SELECT * FROM read_parquet('{glob_}') "
        f"WHERE {where} LIMIT 10",
    }
    for label, sql in peers.items():
        rows.append((label, best(lambda sql=sql: con.execute(sql).fetchall(), args.repeat), ""))
    polars = lambda: pl.scan_parquet(glob_).head(10).collect()  # noqa: E731
    rows.append(("polars scan_parquet().head(10)", best(polars, args.repeat), ""))
    whole = lambda: [pq.read_table(f) for f in files]  # noqa: E731
    rows.append(("pyarrow: read every shard", best(whole, args.repeat), "all"))
    cli = [sys.executable, "-m", "dataprep", "head", str(ds), "--jsonl"]
    run = lambda: subprocess.run(cli, check=True, capture_output=True)  # noqa: E731
    rows.append(("cli: dataprep head DIR --jsonl (process)", best(run, args.repeat), ""))

    text_mb = sum(len(t) for t in pq.read_table(files[0], columns=["text"])["text"].to_pylist())
    print(
        f"dataset: {manifest.rows:,} rows, {len(files)} shards, "
        f"{sum(len(s.row_groups) for s in manifest.shards)} row groups, "
        f"{manifest.bytes / 1e6:.1f} MB on disk (shard 0 holds {text_mb / 1e6:.0f} MB of text)"
    )
    print(f"{'what':48} {'ms':>9}  read")
    for label, seconds, cost in rows:
        print(f"{label:48} {seconds * 1000:9.1f}  {cost}")


if __name__ == "__main__":
    main()
