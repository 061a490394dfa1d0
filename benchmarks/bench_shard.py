"""Shard throughput: `dataprep shard` vs duckdb and pyarrow on the same generated JSONL.

Each tool runs as its own process (so peak RSS is that tool's alone), `--repeat` times in
turn; the table prints medians, MB/s of input, peak RSS of the largest process, and the ratio
of our throughput to each peer's.

    pip install duckdb
    python benchmarks/bench_shard.py --mb 1000 --repeat 3          # ~1 GB JSONL
    python benchmarks/bench_shard.py --mb 1000 --zst --repeat 3    # the same as .jsonl.zst
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = 4096


def generate(path: Path, megabytes: int, seed: int = 0) -> int:
    """Write ~`megabytes` of JSONL docs (~1 KB text each) quickly with numpy."""
    import numpy as np

    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab = ["".join(rng.choice(letters, size=rng.integers(2, 9))) for _ in range(WORDS)]
    vocab_arr = np.array(vocab)
    target = megabytes * 1_000_000
    written = 0
    doc = 0
    with open(path, "w") as f:
        while written < target:
            words = vocab_arr[rng.zipf(1.3, size=(2000, 170)) % WORDS]
            lines = []
            for row in words:
                record = {
                    "text": " ".join(row),
                    "source": f"s{doc % 7}",
                    "score": round(float(doc % 1000) / 1000, 3),
                    "n": doc,
                }
                lines.append(json.dumps(record))
                doc += 1
            chunk = "\n".join(lines) + "\n"
            f.write(chunk)
            written += len(chunk)
    return doc


def compress(path: Path) -> Path:
    import zstandard

    target = path.with_suffix(".jsonl.zst")
    with open(path, "rb") as src, open(target, "wb") as dst:
        zstandard.ZstdCompressor(level=3, threads=-1).copy_stream(src, dst)
    return target


def run_tool(tool: str, src: Path, out: Path) -> None:
    """Body of one measured child process."""
    if tool == "dataprep":
        from dataprep.runner import run_stage

        run_stage("shard", {"shard_bytes": "128MB"}, out, inputs=[str(src)], force=True)
    elif tool == "duckdb":
        import duckdb

        out.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect()
        con.execute(
            f"COPY (SELECT * FROM read_json('{src}', format='newline_delimited')) "
            f"TO '{out}/data.parquet' (FORMAT parquet, COMPRESSION zstd)"
        )
    elif tool == "pyarrow":
        import pyarrow.json as pj
        import pyarrow.parquet as pq

        out.mkdir(parents=True, exist_ok=True)
        if src.suffix == ".zst":
            import pyarrow as pa

            stream = pa.input_stream(str(src), compression="zstd")
            table = pj.read_json(stream)
        else:
            table = pj.read_json(str(src))
        pq.write_table(table, out / "data.parquet", compression="zstd")
    else:
        raise SystemExit(f"unknown tool {tool}")


def measure(tool: str, src: Path, work: Path) -> tuple[float, int]:
    out = work / f"out-{tool}"
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--child", tool, str(src), str(out)])
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{tool} failed (status {status})")
    shutil.rmtree(out, ignore_errors=True)
    return seconds, usage.ru_maxrss * 1024  # the largest single process, workers included


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=300, help="input size in MB")
    parser.add_argument("--zst", action="store_true", help="compress the input with zstd")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--input", type=Path, help="reuse this JSONL file instead of generating")
    parser.add_argument("--tools", default="dataprep,duckdb,pyarrow")
    parser.add_argument("--child", nargs=3, metavar=("TOOL", "SRC", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        tool, src, out = args.child
        run_tool(tool, Path(src), Path(out))
        return

    tools = args.tools.split(",")
    with tempfile.TemporaryDirectory(prefix="bench-shard-") as tmp:
        work = Path(tmp)
        src = work / "input.jsonl"
        if args.input:
            os.symlink(args.input.resolve(), src)
            docs = sum(1 for _ in open(src, "rb"))
            args.mb = src.stat().st_size // 1_000_000
        else:
            docs = generate(src, args.mb)
        if args.zst:
            plain, src = src, compress(src)
            plain.unlink()
        size = src.stat().st_size
        raw = args.mb * 1_000_000
        mb = raw / 1e6
        print(f"input: {src.name}, {docs:,} docs, {size / 1e6:.0f} MB on disk, ~{mb:.0f} MB JSON")
        results: dict[str, list[tuple[float, int]]] = {t: [] for t in tools}
        for _ in range(args.repeat):
            for tool in tools:  # interleaved, so drift hits every tool alike
                results[tool].append(measure(tool, src, work))
        medians = {
            t: (statistics.median(s for s, _ in r), statistics.median(m for _, m in r))
            for t, r in results.items()
        }
        print(f"{'tool':10} {'median s':>9} {'MB/s':>8} {'peak RSS MB':>12} {'ours/theirs':>12}")
        ours = medians["dataprep"][0] if "dataprep" in medians else None
        for tool, (seconds, rss) in medians.items():
            ratio = f"{seconds / ours:.2f}x" if ours else "-"
            print(f"{tool:10} {seconds:9.2f} {mb / seconds:8.1f} {rss / 2**20:12.0f} {ratio:>12}")
        print("ours/theirs = our MB/s / their MB/s (> 1: we are faster)")


if __name__ == "__main__":
    main()
