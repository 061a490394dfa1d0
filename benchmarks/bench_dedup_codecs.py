"""What dedup would cost with another output codec: CPU seconds and bytes, same data.

    python benchmarks/bench_dedup.py --fragments --docs 200000 --shard-rows 50000 \\
        --tools ours1 --work /tmp/bench_dedup          # builds /tmp/bench_dedup/shards
    PYTHONPATH=. python benchmarks/bench_dedup_codecs.py /tmp/bench_dedup/shards --rounds 2

Numbers for a product decision, not a change: the default stays zstd level 3. One worker, in
this process, the same MinHash settings as bench_dedup_phases.py; per round every case runs
once (the order rotated round by round) after one untimed warm-up run. Cases:

- `zstd-3` (today), `zstd-1`, `lz4`: the output written with that codec, the input as given
  (zstd-3 shards: sign and write still decode zstd);
- `zstd-1 all`, `lz4 all`: the input re-encoded with that codec first (`compress`, untimed), as
  when every stage of a pipeline writes it: decoding gets cheaper too.

Printed per case: the whole stage's CPU (time.process_time), its sign and write phases, the
output's bytes, each as the median of the rounds, and the CPU ratio to zstd-3 per round.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
from pathlib import Path

from bench_dedup_phases import CONFIG, timed_phases

from dataprep.executors import make_executor
from dataprep.runner import run_stage
from dataprep.shardio import WriteOptions

CASES = {  # name -> (input codec or None for the given shards, output codec, level)
    "zstd-3": (None, "zstd", 3),
    "zstd-1": (None, "zstd", 1),
    "lz4": (None, "lz4", None),
    "zstd-1 all": ("zstd-1", "zstd", 1),
    "lz4 all": ("lz4", "lz4", None),
}


def reencode(shards: Path, out: Path, codec: str, level: int | None) -> Path:
    if not out.exists():
        config = {"codec": codec, "level": level}
        run_stage("compress", config, out, input_path=shards, executor=make_executor("local", 1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("shards", type=Path, help="a dataset directory (bench_dedup.py's)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_dedup_codecs"))
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    inputs = {
        None: args.shards,
        "zstd-1": reencode(args.shards, args.work / "in-zstd-1", "zstd", 1),
        "lz4": reencode(args.shards, args.work / "in-lz4", "lz4", None),
    }
    cpu = timed_phases()

    def run(name: str) -> dict[str, float]:
        source, codec, level = CASES[name]
        out = args.work / "out"
        shutil.rmtree(out, ignore_errors=True)
        options = WriteOptions(compression=codec, compression_level=level)
        cpu.clear()
        started = time.process_time()
        run_stage(
            "dedup", CONFIG, out, input_path=inputs[source],
            executor=make_executor("local", workers=1), write_options=options,
        )  # fmt: skip
        total = time.process_time() - started
        size = sum(p.stat().st_size for p in out.glob("*.parquet"))
        return {"total": total, "sign": cpu["_sign"], "write": cpu["_write"], "bytes": size}

    run("zstd-3")  # warm-up: imports, the kernel's mapping, the page cache
    names = list(CASES)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    load = os.getloadavg()[0]
    for index in range(args.rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            results[name].append(run(name))
    print(
        f"dedup of {args.shards} by output codec, {args.rounds} rounds, one worker, "
        f"1-min load {load:.1f} -> {os.getloadavg()[0]:.1f} (CPU s, medians)"
    )
    print(f"  {'case':<12}{'total':>7}{'sign':>7}{'write':>7}{'MB out':>9}   zstd-3 / case")
    base = [r["total"] for r in results["zstd-3"]]
    for name in names:
        rows = results[name]

        def med(key: str, rows: list[dict[str, float]] = rows) -> float:
            return statistics.median(r[key] for r in rows)

        ratios = [b / r["total"] for b, r in zip(base, rows, strict=True)]
        print(
            f"  {name:<12}{med('total'):7.2f}{med('sign'):7.2f}{med('write'):7.2f}"
            f"{med('bytes') / 1e6:9.1f}   {statistics.median(ratios):.2f}x "
            f"{[round(x, 2) for x in ratios]}"
        )


if __name__ == "__main__":
    main()
