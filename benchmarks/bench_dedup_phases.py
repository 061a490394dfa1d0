"""dedup's phases in CPU seconds, and a copied shard against a rewritten one.

    python benchmarks/bench_dedup.py --fragments --docs 200000 --shard-rows 50000 \\
        --tools ours1 --work /tmp/bench_dedup          # builds /tmp/bench_dedup/shards
    python benchmarks/bench_dedup_phases.py /tmp/bench_dedup/shards --rounds 3

One worker, in this process (the stage's tasks run inline), after one untimed warm-up run.
Per round: the CPU seconds (time.process_time, all threads) of each phase method of the
stage, so "after signing" = bucket + cluster + write can be set against sign on a shared box
where wall clocks measure the neighbours too.

Then `--copies`: dedup the first run's output again (it has no duplicates left, and its
lineage proves the encoding), once as it runs (untouched shards copied) and once with the
copy switched off (every shard rewritten), alternating; the write phase's CPU of each, and
whether the files are byte-identical.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dataprep.executors import make_executor
from dataprep.runner import run_stage
from dataprep.stages.dedup import DedupConfig
from dataprep.stages.dedup import stage as dedup_stage

PHASES = ("_sign", "_bucket", "_cluster", "_write")
CONFIG = DedupConfig.parse({"method": "minhash", "threshold": 0.8, "num_perm": 128})


def timed_phases() -> dict[str, float]:
    """Wrap the stage's phase methods; the returned dict holds each one's CPU seconds."""
    cpu: dict[str, float] = {}

    def wrap(name: str, inner: Callable[..., Any]) -> Callable[..., Any]:
        def phase(self: Any, *args: Any, **kwargs: Any) -> Any:
            started = time.process_time()
            try:
                return inner(self, *args, **kwargs)
            finally:
                cpu[name] = cpu.get(name, 0.0) + time.process_time() - started

        return phase

    for name in PHASES:
        setattr(dedup_stage.DedupStage, name, wrap(name, getattr(dedup_stage.DedupStage, name)))
    return cpu


def dedup(src: Path, out: Path) -> Any:
    shutil.rmtree(out, ignore_errors=True)
    executor = make_executor("local", workers=1)
    return run_stage("dedup", CONFIG, out, input_path=src, executor=executor)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("shards", type=Path, help="a dataset directory (bench_dedup.py's)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_dedup_phases"))
    parser.add_argument("--copies", action="store_true", help="also: copied vs rewritten shards")
    args = parser.parse_args()
    cpu = timed_phases()
    first = args.work / "first"
    dedup(args.shards, first)  # warm-up; its output feeds --copies
    rows: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        cpu.clear()
        dedup(args.shards, args.work / "out")
        after = cpu["_bucket"] + cpu["_cluster"] + cpu["_write"]
        for key, value in [*cpu.items(), ("after signing", after)]:
            rows.setdefault(key.lstrip("_"), []).append(value)
    print(f"CPU seconds per phase, {args.rounds} rounds (median [runs]):")
    for key, values in rows.items():
        print(f"  {key:<14}{statistics.median(values):7.2f}  {[round(v, 2) for v in values]}")
    ratios = [a / s for a, s in zip(rows["after signing"], rows["sign"], strict=True)]
    print(
        f"TARGET bucket+cluster+write / sign: {statistics.median(ratios):.2f} (median of the "
        f"rounds' ratios {[round(r, 2) for r in ratios]}; under 1.00 = met)"
    )
    if not args.copies:
        return
    copy = dedup_stage.same_writer
    write: dict[str, list[float]] = {"copied": [], "rewritten": []}
    for _ in range(args.rounds):
        for mode in write:
            dedup_stage.same_writer = copy if mode == "copied" else (lambda *a: False)
            cpu.clear()
            run = dedup(first, args.work / mode)
            write[mode].append(cpu["_write"])
    dedup_stage.same_writer = copy
    names = [p.name for p in sorted((args.work / "copied").glob("part-*.parquet"))]
    same = all(
        filecmp.cmp(args.work / "copied" / n, args.work / "rewritten" / n, shallow=False)
        for n in names
    )
    print(
        f"re-dedup of the output ({run.report['rows_in']:,} rows, none removed: "
        f"{run.report['rows_out'] == run.report['rows_in']}), write phase CPU seconds:"
    )
    for mode, values in write.items():
        print(f"  {mode:<10}{statistics.median(values):7.3f}  {[round(v, 3) for v in values]}")
    print(f"  the {len(names)} shards byte-identical either way: {same}")


if __name__ == "__main__":
    main()
