"""Ray executor overhead: `shard` and `dedup` on local workers vs a 2-CPU local Ray cluster.

Every run is the real CLI in its own session (`dataprep shard|dedup ... [--executor ray
--address ...]`) on the same generated corpus (dataprep.sample.generate_corpus), `--repeat`
times in turn; the table prints medians of the stage's own seconds (.report.json: excludes
interpreter start and the Ray connect), of the wall time of the whole command, docs/s, and the
peak total RSS sampled over every process involved (the CLI and its pool workers; for Ray also
the cluster's GCS, raylet and workers, which a cluster pays whether we use it or not).

Configurations at equal parallelism:
    local-1  --workers 1 (in-process)        ray-1  --cpus-per-task 2 (one task at a time)
    local-2  --workers 2 (process pool)      ray-2  --cpus-per-task 1 (two tasks at a time)

    python benchmarks/bench_ray.py                                  # 3000 and 30000 docs
    python benchmarks/bench_ray.py --sizes 20000,200000 --repeat 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RAY_ENV = {
    "RAY_AUTH_MODE": "disabled",
    "RAY_DISABLE_DOCKER_CPU_WARNING": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
}
CONFIGS = {
    "local-1": ["--workers", "1"],
    "local-2": ["--workers", "2"],
    "ray-1": ["--executor", "ray", "--cpus-per-task", "2"],
    "ray-2": ["--executor", "ray", "--cpus-per-task", "1"],
}


def session_pids(sid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                pids.append(int(entry.name))
    return pids


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


class Sampler(threading.Thread):
    """Peak of the summed RSS of every process in the given sessions, every 50 ms."""

    def __init__(self, sessions: list[int]):
        super().__init__(daemon=True)
        self.sessions = sessions
        self.peak = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            pids = [p for s in self.sessions for p in session_pids(s)]
            self.peak = max(self.peak, rss_mb(pids))
            time.sleep(0.05)


def kill_session(sid: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in session_pids(sid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 2
        while session_pids(sid) and time.monotonic() < deadline:
            time.sleep(0.1)


def start_ray(tmp: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp / "ray-head.log"
    head = subprocess.Popen(
        [shutil.which("ray") or "ray", "start", "--head", "--block", "--num-cpus", "2"]
        + ["--port", str(port), "--include-dashboard=false", "--disable-usage-stats"],
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while "Ray runtime started" not in log.read_text():
        if head.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"ray start failed:\n{log.read_text()[-2000:]}")
        time.sleep(0.2)
    return head, f"127.0.0.1:{port}"


def run_cli(args: list[str], sessions: list[int]) -> tuple[float, float, dict]:
    """(wall seconds, peak RSS MB, .report.json) of one CLI run."""
    cmd = [sys.executable, "-c", "from dataprep.cli import main; main()", *args]
    sampler_sessions = list(sessions)
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE, text=True)
    sampler = Sampler([proc.pid, *sampler_sessions])
    sampler.start()
    out, _ = proc.communicate()
    wall = time.perf_counter() - started
    sampler.stop.set()
    sampler.join()
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(args)}")
    return wall, sampler.peak, json.loads(out)[0]["report"]  # one object per stage run


def bench_size(docs: int, repeat: int, address: str, ray_sid: int, tmp: Path) -> list[dict]:
    from dataprep.sample import generate_corpus

    corpus = tmp / f"corpus-{docs}"
    generate_corpus(corpus, docs=docs, seed=0, malformed=0)
    shard_rows = max(1000, docs // 16)  # 16 shards: enough tasks for 2 workers either way
    base = tmp / f"base-{docs}"
    run_cli(["shard", str(corpus), "--out", str(base), "--shard-rows", str(shard_rows)]
            + ["--json", "--workers", "2"], [])  # fmt: skip
    rows = []
    for stage in ("shard", "dedup"):
        samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name in CONFIGS}
        for r in range(repeat):
            for name, flags in CONFIGS.items():
                out = tmp / f"{stage}-{docs}-{name}-{r}"
                if stage == "shard":
                    args = ["shard", str(corpus), "--shard-rows", str(shard_rows)]
                else:
                    args = ["dedup", str(base), "--method", "minhash"]
                args += ["--out", str(out), "--json", *flags]
                sessions = []
                if name.startswith("ray"):
                    args += ["--address", address]
                    sessions = [ray_sid]
                wall, peak, report = run_cli(args, sessions)
                samples[name].append((report["seconds"], wall, peak))
                shutil.rmtree(out)
        for name in CONFIGS:
            secs = statistics.median(s[0] for s in samples[name])
            wall = statistics.median(s[1] for s in samples[name])
            peak = statistics.median(s[2] for s in samples[name])
            rows.append(
                {"stage": stage, "docs": docs, "config": name, "seconds": secs, "wall": wall}
                | {"docs_s": docs / secs, "peak_rss_mb": peak}
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="3000,30000", help="Comma-separated doc counts.")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.update(RAY_ENV)
    paths = [str(ROOT), os.environ.get("PYTHONPATH")]
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    sys.path.insert(0, str(ROOT))
    tmp = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    head, address = start_ray(tmp)
    try:
        rows = []
        for docs in [int(s) for s in args.sizes.split(",")]:
            rows += bench_size(docs, args.repeat, address, head.pid, tmp)
    finally:
        kill_session(head.pid)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"medians of {args.repeat} runs; stage s = .report.json seconds, wall = whole command")
    header = f"{'stage':6} {'docs':>7} {'config':8} {'stage s':>8} {'wall s':>7} {'docs/s':>9}"
    print(header + f" {'peak RSS MB':>11} {'ray/local (stage s)':>20} {'(wall)':>7}")
    by_key = {(r["stage"], r["docs"], r["config"]): r for r in rows}
    for r in rows:
        ratio = wall_ratio = ""
        if r["config"].startswith("ray"):
            local = by_key[(r["stage"], r["docs"], "local" + r["config"][3:])]
            ratio = f"{r['seconds'] / local['seconds']:.2f}x"
            wall_ratio = f"{r['wall'] / local['wall']:.2f}x"
        print(
            f"{r['stage']:6} {r['docs']:>7} {r['config']:8} {r['seconds']:>8.2f} {r['wall']:>7.2f}"
            f" {r['docs_s']:>9,.0f} {r['peak_rss_mb']:>11,.0f} {ratio:>20} {wall_ratio:>7}"
        )


if __name__ == "__main__":
    main()
