"""Start-up cost of the `dataprep` command and of its worker processes (issue 19, item 2).

Every figure is the real console script (`bin/dataprep` next to this Python, else `python -m
dataprep`) in a subprocess, in paired rounds: each round runs every case once, in turn, so a
burst of load on this shared box hits all cases alike; the table prints medians over rounds.

- wall: the command's own wall time (until it exits).
- cpu: user + system seconds of the command and of every process it started (pool workers,
  the fork server, multiprocessing's resource tracker): the benchmark is the children's
  subreaper, so it reaps the fork server and its workers too and counts their CPU.
- stage s: the stage's own time from .report.json (planning + tasks + commit, no start-up).
- `-w 2 / -w 1`: per round, the ratio of the two runs (back to back, so under alike load);
  the median over rounds (< 1: two workers were faster).

Cases:
  help           `dataprep --help`
  one-shard      `dataprep shard` of one small JSONL into one shard, then `dedup`, `filter`,
                 `compress` of that one-shard dataset (default flags; one task each)
  shard/dedup    N documents (dataprep.sample's corpus, decompressed into one JSONL so the
                 input splits into 8 equal tasks with --chunk-bytes), `-w 1` vs `-w 2`; dedup
                 reads the 8-shard dataset that shard wrote (MinHash, defaults)

With `--before DIR` (a checkout of an older commit, e.g. `git worktree add DIR REV`) every
case also runs with PYTHONPATH=DIR in the same round, right before ours: a paired before/after.

    python benchmarks/bench_startup.py                          # 5k, 20k, 50k docs, 3 rounds
    python benchmarks/bench_startup.py --sizes 20000 --rounds 5 --skip-small
    python benchmarks/bench_startup.py --before /tmp/before     # before/after, paired

`--per-process N -- ARGS` instead runs `dataprep ARGS` N times and prints each process's own
CPU (user, system) and minor page faults: the command, the fork server, the resource tracker,
each worker. Every process of the command's session is sampled from /proc every 2 ms (its last
sample counts: clock-tick resolution, 10 ms here); medians over the runs. `--clear DIR` is
removed before each run (the command's output).

    python benchmarks/bench_startup.py --per-process 7 --clear /tmp/o -- \
        shard /tmp/8mb.jsonl -o /tmp/o --chunk-bytes 2MB -w 2 -q

`--driver N -- ARGS` runs `dataprep ARGS` N times and prints the driver's own CPU (the process
that plans, forks the server and collects results; `time.process_time()` when `main()` ends,
read in that process: exact, where /proc's ticks are 10 ms), and the top-level modules a
start-up never needs that it loaded. With `--before DIR`, each round runs DIR's code right
before ours: medians of each side and of the per-round ratios (ours / before).

    python benchmarks/bench_startup.py --driver 15 --before /tmp/before --clear /tmp/o -- \
        shard /tmp/8mb.jsonl -o /tmp/o -w 2
"""

from __future__ import annotations

import argparse
import ctypes
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PR_SET_CHILD_SUBREAPER = 36
TASKS = 8  # input splits for the worker cases: 4 per worker at -w 2


def command() -> list[str]:
    script = Path(sys.executable).with_name("dataprep")
    return [str(script)] if script.exists() else [sys.executable, "-m", "dataprep"]


def reap_all() -> None:
    """Wait for every descendant re-parented to us (the fork server, its workers)."""
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def timed(args: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """(wall s, CPU s of the command and all its descendants, stdout) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(  # cwd: not the checkout, so PYTHONPATH picks the code
        args, capture_output=True, text=True, timeout=600, env=env, cwd=tempfile.gettempdir()
    )
    wall = time.perf_counter() - started
    reap_all()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(args)}\n{proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stdout


def stage_seconds(stdout: str) -> float:
    return float(json.loads(stdout)[0]["report"]["seconds"])


def plain_corpus(tmp: Path, docs: int) -> Path:
    """dataprep.sample's corpus as one uncompressed JSONL (byte ranges split evenly)."""
    import zstandard

    from dataprep.sample import generate_corpus

    folder = tmp / f"corpus-{docs}"
    generate_corpus(folder, docs=docs, seed=0, malformed=0)
    out = tmp / f"docs-{docs}.jsonl"
    with out.open("wb") as sink:
        for part in sorted(folder.glob("*.jsonl.zst")):
            with part.open("rb") as raw:
                reader = zstandard.ZstdDecompressor().stream_reader(raw)
                shutil.copyfileobj(io.BufferedReader(reader), sink)
    shutil.rmtree(folder)
    return out


class Cases:
    """name -> (argv, output dir to remove after the run or None, has a stage report)."""

    def __init__(self) -> None:
        self.cases: dict[str, tuple[list[str], Path | None, bool]] = {}

    def add(self, name: str, args: list[str], out: Path | None, report: bool) -> None:
        self.cases[name] = (args, out, report)


def small_cases(tmp: Path, cmd: list[str], cases: Cases) -> None:
    cases.add("help", [*cmd, "--help"], None, False)
    if cmd[0] != sys.executable:
        cases.add("help (python -m)", [sys.executable, "-m", "dataprep", "--help"], None, False)
    src = plain_corpus(tmp, 1000)
    one = tmp / "one"
    timed([*cmd, "shard", str(src), "-o", str(one), "-q"])
    out = tmp / "one-out"
    cases.add("one-shard shard", [*cmd, "shard", str(src), "-o", str(out), "--json"], out, True)
    for stage in ("dedup", "filter", "compress"):
        extra = ["--preset", "gopher"] if stage == "filter" else []
        args = [*cmd, stage, str(one), "-o", str(out), "--json", *extra]
        cases.add(f"one-shard {stage}", args, out, True)


def worker_cases(tmp: Path, cmd: list[str], cases: Cases, docs: int) -> None:
    src = plain_corpus(tmp, docs)
    chunk = str(-(-src.stat().st_size // TASKS))
    rows = str(-(-docs // TASKS))
    base = tmp / f"base-{docs}"
    timed([*cmd, "shard", str(src), "-o", str(base), "--chunk-bytes", chunk, "-q"])
    out = tmp / f"out-{docs}"
    for workers in ("1", "2"):
        args = [*cmd, "shard", str(src), "-o", str(out), "--chunk-bytes", chunk]
        args += ["--shard-rows", rows, "--json", "-w", workers]
        cases.add(f"shard {docs} -w {workers}", args, out, True)
    for workers in ("1", "2"):
        args = [*cmd, "dedup", str(base), "-o", str(out), "--json", "-w", workers]
        cases.add(f"dedup {docs} -w {workers}", args, out, True)


TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _session_stats(session: int) -> dict[tuple[int, int], tuple[str, int, int, int]]:
    """(pid, start tick) -> (name, user ticks, system ticks, minor faults) of each process
    of `session` (setsid: the command, its fork server, tracker and workers)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                raw = f.read()
        except OSError:
            continue
        name, rest = raw[raw.index("(") + 1 : raw.rindex(")")], raw[raw.rindex(")") + 2 :].split()
        if int(rest[3]) == session:  # fields after the name: state ppid pgrp session ...
            found[(int(entry), int(rest[19]))] = (name, int(rest[11]), int(rest[12]), int(rest[7]))
    return found


def per_process(cmd: list[str], args: list[str], runs: int, clear: str | None) -> None:
    """Each process's own CPU and page faults in `dataprep ARGS`, medians over `runs`."""
    table: dict[str, list[tuple[float, float, int]]] = {}
    for _ in range(runs):
        if clear:
            shutil.rmtree(clear, ignore_errors=True)
        proc = subprocess.Popen([*cmd, *args], start_new_session=True, stdout=subprocess.DEVNULL)
        seen: dict[tuple[int, int], tuple[str, int, int, int]] = {}
        while proc.poll() is None or _session_stats(proc.pid):
            seen.update(_session_stats(proc.pid))
            time.sleep(0.002)
        reap_all()
        workers = 0
        for (pid, _), (name, user, system, faults) in sorted(seen.items(), key=lambda i: i[0][1]):
            if pid == proc.pid:
                label = "command"
            elif name.startswith("dataprep-worker"):
                workers += 1
                label = f"worker {workers}"
            else:
                label = name
            table.setdefault(label, []).append((user / TICK, system / TICK, faults))
    print(f"{' '.join([*cmd, *args])}; medians of {runs} runs")
    print(f"{'process':18} {'cpu s':>6} {'user':>6} {'sys':>6} {'faults':>8} {'runs':>5}")
    for label, rows in table.items():
        user, system = (statistics.median(r[i] for r in rows) for i in (0, 1))
        faults = statistics.median(r[2] for r in rows)
        cpu = statistics.median(r[0] + r[1] for r in rows)
        print(f"{label:18} {cpu:6.2f} {user:6.2f} {system:6.2f} {faults:8.0f} {len(rows):5}")


_DRIVER = """
import os, sys, time
sys.argv = ["dataprep", *sys.argv[1:]]
from dataprep.cli import main
try:
    main()
except SystemExit:
    pass
unused = ("typer.rich_utils", "rich.markdown", "hashlib")
loaded = [m for m in unused if m in sys.modules]
os.write(2, f"\\nDRIVER {time.process_time():.6f} {','.join(loaded) or '-'}\\n".encode())
"""


def driver(args: list[str], runs: int, clear: str | None, before: str | None) -> None:
    """The driver's own CPU in `dataprep ARGS` (paired with `before`'s code when given)."""
    sides = {"before": before, "after": str(ROOT)} if before else {"ours": str(ROOT)}
    found: dict[str, list[float]] = {side: [] for side in sides}
    loaded: dict[str, str] = {}
    for _ in range(runs):
        for side, path in sides.items():
            if clear:
                shutil.rmtree(clear, ignore_errors=True)
            env = dict(os.environ, PYTHONPATH=path)
            proc = subprocess.run(  # cwd: not the checkout, so PYTHONPATH picks the code
                [sys.executable, "-c", _DRIVER, *args], env=env, cwd=tempfile.gettempdir(),
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=600,
            )  # fmt: skip
            if proc.returncode != 0 or "\nDRIVER " not in proc.stderr:
                sys.exit(f"failed: dataprep {' '.join(args)}\n{proc.stderr[-2000:]}")
            cpu, loaded[side] = proc.stderr.rsplit("\nDRIVER ", 1)[1].split()
            found[side].append(float(cpu))
    print(f"dataprep {' '.join(args)}; driver CPU, medians of {runs} rounds")
    for side, cpus in found.items():
        print(f"{side:7} {statistics.median(cpus) * 1000:7.1f} ms  unused loaded: {loaded[side]}")
    if before:
        ratios = [a / b for b, a in zip(found["before"], found["after"], strict=True)]
        print(f"after / before, same round: {statistics.median(ratios):.3f}")


def main() -> None:
    if "--driver" in sys.argv:
        parser = argparse.ArgumentParser()
        parser.add_argument("--driver", type=int, required=True, metavar="RUNS")
        parser.add_argument("--clear", help="A folder removed before each run.")
        parser.add_argument("--before", help="A checkout of the code to compare with (paired).")
        parser.add_argument("args", nargs=argparse.REMAINDER)
        opts = parser.parse_args()
        args = [a for a in opts.args if a != "--"]
        driver(args, opts.driver, opts.clear, opts.before)
        return
    if "--per-process" in sys.argv:
        parser = argparse.ArgumentParser()
        parser.add_argument("--per-process", type=int, required=True, metavar="RUNS")
        parser.add_argument("--clear", help="A folder removed before each run.")
        parser.add_argument("args", nargs=argparse.REMAINDER)
        opts = parser.parse_args()
        per_process(command(), [a for a in opts.args if a != "--"], opts.per_process, opts.clear)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="5000,20000,50000", help="Doc counts, comma-separated.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-small", action="store_true", help="No --help/one-shard cases.")
    parser.add_argument("--skip-workers", action="store_true", help="No -w 1 / -w 2 cases.")
    parser.add_argument("--before", help="A checkout of the code to compare with (paired).")
    args = parser.parse_args()
    envs = {"": dict(os.environ, PYTHONPATH=str(ROOT))}
    if args.before:
        envs = {"before ": dict(os.environ, PYTHONPATH=args.before), "after ": envs[""]}
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p
    )
    sys.path.insert(0, str(ROOT))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    cmd = command()
    tmp = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    load: list[float] = []
    try:
        cases = Cases()
        if not args.skip_small:
            small_cases(tmp, cmd, cases)
        if not args.skip_workers:
            for docs in (int(s) for s in args.sizes.split(",")):
                worker_cases(tmp, cmd, cases, docs)
        names = [label + n for n in cases.cases for label in envs]
        samples: dict[str, list[tuple[float, float, float]]] = {n: [] for n in names}
        for _ in range(args.rounds):
            load.append(os.getloadavg()[0])
            for name, (argv, out, report) in cases.cases.items():
                for label, env in envs.items():
                    wall, cpu, stdout = timed(argv, env)
                    stage = stage_seconds(stdout) if report else 0.0
                    samples[label + name].append((wall, cpu, stage))
                    if out is not None:
                        shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{' '.join(cmd)}; medians of {args.rounds} paired rounds; 1-min load at each round "
          f"start: {', '.join(f'{x:.1f}' for x in load)} on {os.cpu_count()} cores")  # fmt: skip
    print(f"{'case':31} {'wall s':>7} {'cpu s':>7} {'stage s':>8}")
    for name, runs in samples.items():
        wall, cpu, stage = (statistics.median(r[i] for r in runs) for i in range(3))
        shown = f"{stage:8.2f}" if stage else ""
        print(f"{name:31} {wall:7.2f} {cpu:7.2f} {shown:>8}")
    print_worker_ratios(samples)


def print_worker_ratios(samples: dict[str, list[tuple[float, float, float]]]) -> None:
    """`-w 2` over `-w 1` of the same round (they run back to back, so alike in load), as the
    median of the per-round ratios: < 1 means two workers were faster."""
    pairs = [(n, n[: -len("-w 1")] + "-w 2") for n in samples if n.endswith("-w 1")]
    if not pairs:
        return
    print(f"{'-w 2 / -w 1, same round':31} {'wall':>7} {'cpu':>7}  target: 2 workers beat 1")
    for one, two in pairs:
        ratios = [
            (b[0] / a[0], b[1] / a[1]) for a, b in zip(samples[one], samples[two], strict=True)
        ]
        wall, cpu = (statistics.median(r[i] for r in ratios) for i in range(2))
        verdict = "met" if wall < 1 else "NOT met"
        print(f"{one[: -len(' -w 1')]:31} {wall:7.2f} {cpu:7.2f}  {verdict}")


if __name__ == "__main__":
    main()
