"""What alerts and `--metrics-port` cost a training run: steps/s with and without them.

    PYTHONPATH=. python benchmarks/bench_metrics_train.py                 # 5 rounds, 200 steps
    PYTHONPATH=. python benchmarks/bench_metrics_train.py --rounds 9 --steps 300 --model small

Each round runs `dataprep train` (2 gloo processes on CPU, real text tokenized by dataprep)
three ways AT THE SAME TIME (each round's three runs share the machine's load of that moment:
on a shared box the load swings 3x between minutes, so sequential runs do not pair; --serial
runs them one after another in a rotating order instead):
  base     --no-default-alerts            (no rule judged, no endpoint)
  alerts   the four default alert rules
  metrics  the default rules and --metrics-port 0, scraped every --scrape-every seconds
steps/s of a run = 1 / the median step_time_s of the steps after the first --warmup
(metrics.jsonl, so interpreter and rank start-up are not counted). Ratios are medians of the
per-round ratios base/variant (steps/s; 1.00 = no cost, above 1 = the variant is slower).

Second table: the per-step cost of the hook itself (`Watch.observe`: alert rules + the
Prometheus snapshot), timed in-process on real records of the last run, no noise from ranks.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = {
    "base": ["--no-default-alerts"],
    "alerts": [],
    "metrics": ["--metrics-port", "0"],
}


def build(root: Path, seq_len: int) -> Path:
    """Real text (this machine's copyright files) sharded and tokenized into blocks."""
    from dataprep.executors.local import LocalExecutor
    from dataprep.runner import run_stage

    lines = []
    for path in sorted(glob.glob("/usr/share/doc/*/copyright"))[:400]:
        text = Path(path).read_text(errors="replace")
        lines.append(json.dumps({"text": text}))
    (root / "in.jsonl").write_text("\n".join(lines) + "\n")
    run_stage("shard", {"shard_rows": 100}, root / "shards", inputs=[str(root / "in.jsonl")])
    run_stage(
        "tokenize",
        {"seq_len": seq_len},
        root / "tok",
        input_path=root / "shards",
        executor=LocalExecutor(1),
    )
    return root / "tok"


def start(data: Path, out: Path, args: argparse.Namespace, extra: list[str]) -> Callable[[], float]:
    """Start one training run; the returned call waits for it and gives its steps/s after
    warm-up: 1 / the median step time (a shared machine's pauses hit single steps; the median
    step is the run's pace)."""
    cmd = [sys.executable, "-m", "dataprep", "train", str(data), "--out", str(out)]
    cmd += ["--model", args.model, "--seq-len", str(args.seq_len), "--device", "cpu"]
    cmd += ["--batch-size", str(args.batch_size), "--steps", str(args.steps), "--quiet"]
    cmd += ["--nproc-per-node", "2", "--num-workers", "1", "--checkpoint-every", "100000"]
    proc = subprocess.Popen(
        [*cmd, *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    if "--metrics-port" in extra:
        threading.Thread(target=scrape, args=(proc, lines, args.scrape_every), daemon=True).start()

    def finish() -> float:
        if proc.wait(timeout=1800) != 0:
            raise SystemExit("".join(lines)[-3000:])
        records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        timed = [r["step_time_s"] for r in records if r["step"] > args.warmup]
        return 1 / statistics.median(timed)

    return finish


def scrape(proc: subprocess.Popen, lines: list[str], every: float) -> None:
    """Scrape the run's endpoint like Prometheus would, until the run ends."""
    url = None
    while proc.poll() is None:
        url = url or next((x.split()[1] for x in lines if x.startswith("metrics: http")), None)
        if url:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    response.read()
            except OSError:
                pass
        time.sleep(every if url else 0.05)


def hook_cost(records: list[dict], repeat: int) -> dict[str, float]:
    """Microseconds per step of `Watch.observe` with the default rules, with and without the
    Prometheus collector (and a scrape's worth of `collect`)."""
    from dataprep.observe import metrics as endpoint
    from dataprep.train.config import TrainConfig
    from dataprep.train.runlog import Console
    from dataprep.train.watch import Watch

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, port in (("alerts", None), ("alerts+prometheus", 0)):
            cfg = TrainConfig(data=tmp, out=tmp, metrics_port=port)
            watch = Watch(cfg, 0, Console(0, True, 0), None, 1024, None)
            t0 = time.perf_counter()
            for _ in range(repeat):
                for record in records:
                    watch.observe(dict(record))
            out[name] = (time.perf_counter() - t0) / (repeat * len(records)) * 1e6
            if watch.prom is not None:  # what one scrape costs the serving process
                t0 = time.perf_counter()
                for _ in range(repeat):
                    endpoint.scrape()
                out["one scrape (exposition text)"] = (time.perf_counter() - t0) / repeat * 1e6
            watch.close()
            if watch.prom is not None:
                endpoint.registry().unregister(watch.prom)
        endpoint.shutdown()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--scrape-every", type=float, default=0.5)
    parser.add_argument("--serial", action="store_true", help="one run at a time")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONPATH", str(ROOT))
    with tempfile.TemporaryDirectory(prefix="bench-metrics-train-") as tmp:
        data = build(Path(tmp), args.seq_len)
        rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
        names = list(VARIANTS)
        for n in range(args.rounds):
            order = names[n % 3 :] + names[: n % 3]
            if args.serial:
                for name in order:
                    out = Path(tmp) / f"{name}-{n}"
                    rates[name].append(start(data, out, args, VARIANTS[name])())
            else:
                runs = {k: start(data, Path(tmp) / f"{k}-{n}", args, VARIANTS[k]) for k in order}
                for name, finish in runs.items():
                    rates[name].append(finish())
            print(f"round {n + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in rates.items()))
        last = Path(tmp) / f"metrics-{args.rounds - 1}" / "metrics.jsonl"
        records = [json.loads(x) for x in last.read_text().splitlines()]
        cost = hook_cost(records, 20)
    print(f"\n{args.model}, batch {args.batch_size} x seq {args.seq_len}, 2 ranks, gloo, CPU;")
    how = "one after another" if args.serial else "the three variants of a round at once"
    print(f"{args.rounds} rounds of {args.steps} steps (first {args.warmup} not timed), {how}\n")
    print("| variant | steps/s (median) | base/variant (median of rounds) |")
    print("|---|---:|---:|")
    for name, values in rates.items():
        ratio = statistics.median(b / v for b, v in zip(rates["base"], values, strict=True))
        print(f"| {name} | {statistics.median(values):.2f} | {ratio:.3f} |")
    print("\n| hook (in-process, real records of the last run) | us |")
    print("|---|---:|")
    for name, micros in cost.items():
        print(f"| {name} | {micros:.1f} |")


if __name__ == "__main__":
    main()
