"""Overhead of live metrics: a stage command with and without `--metrics-port`.

The real CLI runs the same stage (`score` by default: one progress tick per row group, the
stage with the most ticks per second) on the same generated corpus, `--force`d, in paired
rounds: each round runs both variants, in alternating order (AB, BA, ...) so drift on a shared
machine falls on both. With metrics on, a scraper thread reads the endpoint every
`--scrape-every` seconds (Prometheus' default is 15 s; 1 s is harsher), so the figure includes
serving scrapes. Prints the medians of the per-round ratios (with / without) of the whole
command's wall time, of the stage's own seconds (.report.json) and of the CPU seconds of the
command and its pool workers (user + system, from the kernel's accounting of waited-for
children: on a shared machine far steadier than wall time), the medians of each, and the
best (lowest) wall of each variant, the run least disturbed by other load.

A micro-benchmark also times what metrics add per progress tick (the recorder's sink in front
of the progress bar's), the only metrics code on the row path.

    python benchmarks/bench_metrics.py          # 20000 docs, score, 2 workers, 7 rounds
    python benchmarks/bench_metrics.py --docs 50000 --rounds 9 --stage clean --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def scrape_loop(url: str, every: float, stop: threading.Event, count: list[int]) -> None:
    while not stop.wait(every):
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                response.read()
            count[0] += 1
        except OSError:
            return


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(stage: str, src: Path, out: Path, workers: int, metrics: bool, every: float):
    """(wall s, stage s, CPU s, scrapes) of one `dataprep STAGE SRC -o OUT --force`."""
    cmd = [sys.executable, "-m", "dataprep", stage, str(src), "-o", str(out), "--force"]
    cmd += ["--workers", str(workers), "--json"]
    if metrics:
        cmd += ["--metrics-port", "0"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATAPREP_METRICS_LINGER": "0"}
    stop, scrapes = threading.Event(), [0]
    cpu0 = children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT
    )
    scraper = None
    if metrics:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        found = re.search(r"(http://\S+/metrics)", line)
        if found is None:
            raise SystemExit(f"no metrics URL announced: {line!r}")
        scraper = threading.Thread(target=scrape_loop, args=(found.group(1), every, stop, scrapes))
        scraper.start()
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    cpu = children_cpu() - cpu0
    stop.set()
    if scraper is not None:
        scraper.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{stderr}")
    report = json.loads(stdout)[0]["report"]
    return wall, float(report["seconds"]), cpu, scrapes[0]


def tick_cost(ticks: int = 200_000) -> tuple[float, float]:
    """ns per tick through the progress bar's sink alone, and with the metrics recorder."""
    from dataprep.observe import stage_metrics
    from dataprep.progress import Reporter

    bar = Reporter(quiet=True)
    recorder = stage_metrics.StageMetrics().begin("bench", "bench")
    recorder.start_phase("map", 1)
    counted = recorder.sink(bar.on_tick)
    costs = []
    for sink in (bar.on_tick, counted):
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(ticks):
                sink({"rows": 1024})
            best = min(best, time.perf_counter() - t0)
        costs.append(best / ticks * 1e9)
    return costs[0], costs[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=20000)
    parser.add_argument("--shard-rows", type=int, default=500)
    parser.add_argument("--stage", default="score")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--scrape-every", type=float, default=1.0)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from dataprep.runner import run_stage
    from dataprep.sample import generate_corpus

    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as tmp:
        root = Path(tmp)
        generate_corpus(root / "raw", docs=args.docs, seed=0, malformed=0)
        shards = root / "shards"
        run_stage("shard", {"shard_rows": args.shard_rows}, shards, inputs=[str(root / "raw")])
        run_once(args.stage, shards, root / "warm", args.workers, False, args.scrape_every)
        rows = []
        for r in range(args.rounds):
            order = (False, True) if r % 2 == 0 else (True, False)
            result = {}
            for metrics in order:
                out = root / ("with" if metrics else "without")
                result[metrics] = run_once(
                    args.stage, shards, out, args.workers, metrics, args.scrape_every
                )
            rows.append(result)
            (w0, s0, c0, _), (w1, s1, c1, n) = result[False], result[True]
            print(
                f"round {r + 1}: wall {w0:.2f} -> {w1:.2f} s ({w1 / w0:.3f}x), "
                f"stage {s0:.2f} -> {s1:.2f} s ({s1 / s0:.3f}x), "
                f"CPU {c0:.2f} -> {c1:.2f} s ({c1 / c0:.3f}x), {n} scrapes",
                flush=True,
            )
    med = statistics.median
    wall_ratio = med(r[True][0] / r[False][0] for r in rows)
    stage_ratio = med(r[True][1] / r[False][1] for r in rows)
    cpu_ratio = med(r[True][2] / r[False][2] for r in rows)
    bar_ns, with_ns = tick_cost()
    print(f"\n{args.stage}, {args.docs} docs, {args.workers} workers, {args.rounds} paired rounds")
    print("| | without | with --metrics-port | ratio (median of pairs) |")
    print("|---|---:|---:|---:|")
    print(
        f"| wall s (median) | {med(r[False][0] for r in rows):.2f} | "
        f"{med(r[True][0] for r in rows):.2f} | {wall_ratio:.3f} |"
    )
    print(
        f"| stage s (median) | {med(r[False][1] for r in rows):.2f} | "
        f"{med(r[True][1] for r in rows):.2f} | {stage_ratio:.3f} |"
    )
    print(
        f"| CPU s (median) | {med(r[False][2] for r in rows):.2f} | "
        f"{med(r[True][2] for r in rows):.2f} | {cpu_ratio:.3f} |"
    )
    print(
        f"| wall s (best) | {min(r[False][0] for r in rows):.2f} | "
        f"{min(r[True][0] for r in rows):.2f} | "
        f"{min(r[True][0] for r in rows) / min(r[False][0] for r in rows):.3f} (of bests) |"
    )
    print(f"| ns per progress tick | {bar_ns:.0f} | {with_ns:.0f} | {with_ns / bar_ns:.2f} |")
    verdict = "within" if wall_ratio <= 1.02 else "OVER"
    print(
        f"\nwall ratio {wall_ratio:.3f}: {verdict} the 1.02 target (load {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    main()
