"""CPU cost of the manifest checksum pass that partition (and rebalance, resample, tokenize)
now make over each input shard they read whole (H4, session 7): paired rounds in one process,
with the pass and without it, alternating order; prints the median per-round CPU ratio.

    PYTHONPATH=$PWD python benchmarks/bench_checksum_pass.py [--rows 60000] [--rounds 6]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import statistics
import tempfile
from pathlib import Path

from dataprep.executors import make_executor
from dataprep.runner import run_stage
from dataprep.stages import partition


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _NoChecksum(partition.RouteJob):
    def __init__(self, checksum: str) -> None:
        object.__setattr__(self, "checksum", None)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    docs = [
        p.read_text(errors="replace") for p in sorted(Path("/usr/share/doc").glob("*/copyright"))
    ]
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with (root / "raw.jsonl").open("w") as out:
            for i in range(args.rows):
                out.write(json.dumps({"id": f"r{i}", "text": rng.choice(docs)[:3000]}) + "\n")
        run_stage("shard", {"shard_rows": 5000}, root / "s", inputs=[str(root / "raw.jsonl")])
        original, ratios = partition.RouteJob, []
        for n in range(args.rounds + 1):  # round 0 warms caches and is not counted
            cost = {}
            for mode in ("with", "without") if n % 2 else ("without", "with"):
                partition.RouteJob = original if mode == "with" else _NoChecksum
                shutil.rmtree(root / "out", ignore_errors=True)
                start = _cpu()
                run_stage(
                    "partition",
                    {"key": "id", "partitions": 8},
                    root / "out",
                    input_path=root / "s",
                    executor=make_executor("local", workers=1),
                )
                cost[mode] = _cpu() - start
            partition.RouteJob = original
            if n:
                ratios.append(cost["with"] / cost["without"])
                print(f"round {n}: with {cost['with']:.3f} s, without {cost['without']:.3f} s CPU")
        print(
            f"partition CPU with/without the checksum pass: median {statistics.median(ratios):.3f}"
        )


if __name__ == "__main__":
    main()
