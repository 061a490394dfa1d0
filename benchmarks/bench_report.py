"""`dataprep report` on a large dataset: wall time, peak RSS and the size of the page.

Builds (once, kept in --work) a dataset of --rows rows with real-ish text (words from this
machine's license texts, lognormal lengths: median ~400 characters, a long tail to 20k),
skewed sources, a rare label and numeric columns, through `dataprep shard`; then runs
`dataprep report DIR -o report.html --json` in a fresh process --repeats times.

    PYTHONPATH=$PWD python benchmarks/bench_report.py                 # 1M rows
    PYTHONPATH=$PWD python benchmarks/bench_report.py --rows 200000 --sample-rows 50000

Targets (issue 17): under 10 s and 500 MB on the 2-core box. The report reads footers plus
a seeded sample of the plotted columns (default 100,000 rows), so its cost follows
--sample-rows, not --rows.
"""

from __future__ import annotations

import argparse
import glob
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CHUNK = 100_000


def words() -> list[str]:
    text = " ".join(
        Path(p).read_text(errors="replace") for p in glob.glob("/usr/share/common-licenses/*")
    )
    return text.split()


def write_raw(path: Path, rows: int, seed: int = 0) -> None:
    """Parquet of `rows` documents, written CHUNK rows at a time (bounded memory)."""
    rng = np.random.default_rng(seed)
    vocab = np.array(words())
    # 64 MB of license words in random order: rows are slices of it, so text is real words at
    # real lengths without rows of one row group sharing so much that zstd folds them away
    corpus = " ".join(
        " ".join(vocab[rng.integers(0, len(vocab), 500_000)].tolist()) for _ in range(20)
    )
    sources = np.array(["web", "books", "code", "forum", "news"])
    writer = None
    for start in range(0, rows, CHUNK):
        n = min(CHUNK, rows - start)
        lengths = np.clip(rng.lognormal(np.log(400), 1.0, n), 20, 20_000).astype(np.int64)
        offsets = rng.integers(0, len(corpus) - 20_001, n)
        texts = [corpus[o : o + k] for o, k in zip(offsets.tolist(), lengths.tolist(), strict=True)]
        table = pa.table(
            {
                "id": [f"doc{start + i}" for i in range(n)],
                "text": texts,
                "source": sources[rng.choice(5, n, p=[0.55, 0.25, 0.1, 0.07, 0.03])],
                "label": np.where(rng.random(n) < 0.01, "rare", "common"),
                "quality": rng.beta(2, 2, n),
                "char_count": lengths,
                "word_count": np.array([t.count(" ") + 1 for t in texts]),
            }
        )
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema, compression="zstd")
        writer.write_table(table)
    if writer is not None:
        writer.close()


def build(work: Path, rows: int) -> Path:
    ds = work / f"ds-{rows}"
    if (ds / ".manifest.json").exists():
        return ds
    work.mkdir(parents=True, exist_ok=True)
    raw = work / f"raw-{rows}.parquet"
    t0 = time.perf_counter()
    write_raw(raw, rows)
    cmd = [sys.executable, "-m", "dataprep", "shard", str(raw), "-o", str(ds)]
    subprocess.run([*cmd, "--shard-rows", "100000", "-q"], check=True)
    print(f"built {ds} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return ds


def measure(ds: Path, out: Path, sample_rows: int) -> tuple[float, float, float, dict]:
    """Wall seconds, peak RSS (MB) and CPU seconds of one `dataprep report` process (CPU
    time too: on a shared box the wall clock includes waiting for a core)."""
    cmd = [sys.executable, "-m", "dataprep", "report", str(ds), "-o", str(out), "--json"]
    cmd += ["--sample-rows", str(sample_rows)]
    code = (
        "import resource, subprocess, sys, time, json;"
        "t=time.perf_counter(); p=subprocess.run(sys.argv[1:], capture_output=True, text=True);"
        "w=time.perf_counter()-t; assert p.returncode==0, p.stderr;"
        "r=resource.getrusage(resource.RUSAGE_CHILDREN);"
        "print(json.dumps([w, r.ru_maxrss/1024, r.ru_utime+r.ru_stime, json.loads(p.stdout)]))"
    )
    proc = subprocess.run([sys.executable, "-c", code, *cmd], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr)
    wall, rss, cpu, summary = json.loads(proc.stdout)
    return wall, rss, cpu, summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--sample-rows", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_report"))
    args = ap.parse_args()
    ds = build(args.work, args.rows)
    out = args.work / "report.html"
    runs = [measure(ds, out, args.sample_rows) for _ in range(args.repeats)]
    walls, rss = [r[0] for r in runs], [r[1] for r in runs]
    summary = runs[-1][3]
    info = summary["sections"][0]
    shards = json.loads((ds / ".manifest.json").read_text())["totals"]
    result = {
        "rows": info["rows"],
        "dataset_bytes": shards["bytes"],
        "sampled_rows": info["sampled_rows"],
        "figures": info["figures"],
        "wall_s_median": round(statistics.median(walls), 2),
        "wall_s": [round(w, 2) for w in walls],
        "cpu_s_median": round(statistics.median(r[2] for r in runs), 2),
        "peak_rss_mb_max": round(max(rss), 1),
        "html_bytes": summary["bytes"],
        "self_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
