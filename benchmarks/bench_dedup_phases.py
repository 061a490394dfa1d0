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

`--fingerprints N` instead times exact fingerprints in this process on N real-text fragments
(benchmarks/dedup_corpus.py, 1-4 KB), in the stage's batches, paired per round: the code before
the kernel (Arrow normalisation, then xxh3 of each Python string), the Arrow path now (the
fallback: hashes straight from the buffer) and the kernel (exact.py); all three must agree.

    PYTHONPATH=. python benchmarks/bench_dedup_phases.py --fingerprints 50000 --rounds 5

`--exact-stage N`: `dedup --method exact` on N such fragments (shards of 50k rows), one worker
in this process, alternating per round the Arrow fingerprints and the kernel's (forced): the
sign phase's CPU seconds of each, and whether the outputs are byte-identical.

    PYTHONPATH=. python benchmarks/bench_dedup_phases.py --exact-stage 200000 --rounds 3

`--baseline TREE`: paired rounds against another checkout (`git worktree add /tmp/base HEAD`;
copy this machine's kernel build, `dataprep/stages/dedup/__pycache__/*.native`, beside its
source, or it builds one). Each tree runs in its own process (the other's `dataprep` on its
PYTHONPATH), warmed up once, then the two alternate round by round (order swapped each round);
it prints both trees' phases, the medians of the per-round ratios, peak RSS, and whether the
two wrote byte-identical shards every round.

    PYTHONPATH=. python benchmarks/bench_dedup_phases.py SHARDS --rounds 5 --baseline /tmp/base
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import statistics
import subprocess
import sys
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


def fingerprint_rounds(docs: int, rounds: int) -> None:
    """Paired CPU seconds of the exact fingerprint paths (see the module docstring)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import xxhash
    from dedup_corpus import fragments

    from dataprep.stages.dedup import exact, minhash, normalise
    from dataprep.stages.dedup.tasks import BATCH_ROWS

    def before(columns: list[pa.Array], steps: list[str]) -> np.ndarray:
        joined = pc.fill_null(normalise.normalise(columns[0], steps), pa.scalar("\x00"))
        raw = b"".join(xxhash.xxh3_128_digest(s.encode()) for s in joined.to_pylist())
        return np.frombuffer(raw, dtype=">u8").reshape(-1, 2).astype(np.uint64)

    kernel = minhash.kernel_module()
    texts, _ = fragments(docs, 0)
    column = pa.array(texts, pa.string())
    megabytes = column.nbytes / 1e6
    batches = [column.slice(i, BATCH_ROWS) for i in range(0, len(column), BATCH_ROWS)]
    steps = list(CONFIG.normalize)
    ways: dict[str, Callable[[list[pa.Array], list[str]], np.ndarray]] = {
        "before": before,
        "arrow": normalise.fingerprints,
        "kernel": lambda cols, st: exact.kernel_fingerprints(kernel, cols, st),
    }
    cpu: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(rounds + 1):  # the first round warms up, untimed
        results = []
        for name, way in ways.items():
            started = time.process_time()
            results.append(np.concatenate([way([b], steps) for b in batches]))
            cpu[name].append(time.process_time() - started)
        assert all(np.array_equal(results[0], r) for r in results[1:]), "fingerprints differ"
    print(f"exact fingerprints of {docs:,} docs ({megabytes:.0f} MB), steps {steps}, CPU s:")
    for name, values in cpu.items():
        values[:] = values[1:]
        print(f"  {name:<8}{statistics.median(values):7.3f}  {[round(v, 3) for v in values]}")
    for name in ("before", "arrow"):
        ratios = [a / k for a, k in zip(cpu[name], cpu["kernel"], strict=True)]
        print(f"  {name} / kernel: {statistics.median(ratios):.1f}x (median of paired rounds)")
    print("  all three bit-identical: True")


def exact_stage_rounds(docs: int, rounds: int, work: Path) -> None:
    """Paired sign-phase CPU of `dedup --method exact`, Arrow vs kernel fingerprints."""
    import os

    from bench_dedup import write_corpus
    from dedup_corpus import fragments

    from dataprep.stages.dedup import exact, normalise, tasks

    shutil.rmtree(work, ignore_errors=True)
    texts, clusters = fragments(docs, 0)
    write_corpus(work, texts, clusters, 50000)
    config = DedupConfig.parse({"method": "exact"})
    ways = {
        "arrow": lambda cols, steps, compiled=False: normalise.fingerprints(cols, steps),
        "kernel": exact.fingerprints,
    }
    cpu = timed_phases()
    sign: dict[str, list[float]] = {name: [] for name in ways}
    os.environ["DATAPREP_DEDUP_KERNEL"] = "numba"  # the kernel way takes the kernel at any size
    for _ in range(rounds + 1):  # the first round warms up, untimed
        for name, way in ways.items():
            tasks.fingerprints = way
            cpu.clear()
            out = work / name
            shutil.rmtree(out, ignore_errors=True)
            run = run_stage(
                "dedup", config, out, input_path=work / "shards",
                executor=make_executor("local", workers=1),
            )  # fmt: skip
            sign[name].append(cpu["_sign"])
    names = [p.name for p in sorted((work / "kernel").glob("part-*.parquet"))]
    same = all(filecmp.cmp(work / "arrow" / n, work / "kernel" / n, shallow=False) for n in names)
    print(
        f"dedup --method exact, {docs:,} docs, {run.report['rows_in'] - run.report['rows_out']:,}"
        f" removed, sign phase CPU s ({rounds} rounds):"
    )
    for name, values in sign.items():
        values[:] = values[1:]
        print(f"  {name:<8}{statistics.median(values):7.2f}  {[round(v, 2) for v in values]}")
    ratios = [a / k for a, k in zip(sign["arrow"], sign["kernel"], strict=True)]
    print(f"  arrow / kernel: {statistics.median(ratios):.1f}x (median of paired rounds)")
    print(f"  the {len(names)} output shards byte-identical: {same}")


def peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(x.split()[1]) / 1024 for x in status if x.startswith("VmHWM:"))


def serve(shards: Path, work: Path) -> None:
    """`--serve`: one warm-up run, then one timed run per line on stdin, a JSON line each
    (phase CPU seconds, the whole run's CPU, the output shards' checksums, peak RSS)."""
    import xxhash

    cpu = timed_phases()
    dedup(shards, work / "first")
    for _ in sys.stdin:
        cpu.clear()
        started, wall = time.process_time(), time.perf_counter()
        dedup(shards, work / "out")
        total, wall = time.process_time() - started, time.perf_counter() - wall
        files = {
            p.name: xxhash.xxh3_128_hexdigest(p.read_bytes())
            for p in sorted((work / "out").glob("part-*.parquet"))
        }
        result = {"cpu": cpu, "total": total, "wall": wall, "files": files, "rss": peak_rss_mb()}
        print(json.dumps(result), flush=True)


def paired_rounds(shards: Path, baseline: Path, rounds: int, work: Path) -> None:
    """This tree against `baseline`, each in a warm process of its own, alternating."""
    here = Path(__file__).resolve().parents[1]
    trees = {"new": here, "base": baseline.resolve()}
    procs = {}
    for name, tree in trees.items():
        env = {**os.environ, "PYTHONPATH": str(tree)}
        command = [sys.executable, __file__, str(shards), "--serve", "--work", str(work / name)]
        procs[name] = subprocess.Popen(
            command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    load = os.getloadavg()
    for index in range(rounds):
        for name in list(trees)[:: 1 if index % 2 == 0 else -1]:
            proc = procs[name]
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write("run\n")
            proc.stdin.flush()
            results[name].append(json.loads(proc.stdout.readline()))
    for proc in procs.values():
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait()
    same = all(
        a["files"] == b["files"] for a, b in zip(results["new"], results["base"], strict=True)
    )

    def column(name: str, key: str) -> list[float]:
        runs = results[name]
        if key == "after signing":
            return [sum(r["cpu"][p] for p in PHASES[1:]) for r in runs]
        return [r[key] if key in ("total", "wall") else r["cpu"][key] for r in runs]

    print(f"paired rounds: {rounds}, new = {here}, base = {trees['base']}")
    print(f"  {'CPU s (median)':<16}{'base':>8}{'new':>8}   base/new per round")
    print(f"  1-min load before / after: {load[0]:.1f} / {os.getloadavg()[0]:.1f}")
    for key in [*PHASES, "after signing", "total", "wall"]:
        a, b = column("base", key), column("new", key)
        ratios = [x / y for x, y in zip(a, b, strict=True)]
        print(
            f"  {key.lstrip('_'):<16}{statistics.median(a):8.2f}{statistics.median(b):8.2f}"
            f"   {statistics.median(ratios):.2f}x {[round(r, 2) for r in ratios]}"
        )
    for name in ("base", "new"):
        after, sign = column(name, "after signing"), column(name, "_sign")
        ratios = [x / y for x, y in zip(after, sign, strict=True)]
        print(
            f"  {name}: bucket+cluster+write / sign {statistics.median(ratios):.2f} "
            f"{[round(r, 2) for r in ratios]}; peak RSS {results[name][-1]['rss']:.0f} MB"
        )
    print(f"  output shards byte-identical every round: {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "shards", type=Path, nargs="?", help="a dataset directory (bench_dedup.py's)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_dedup_phases"))
    parser.add_argument("--copies", action="store_true", help="also: copied vs rewritten shards")
    parser.add_argument("--fingerprints", type=int, help="time exact fingerprints of N docs")
    parser.add_argument("--exact-stage", type=int, help="dedup --method exact on N docs")
    parser.add_argument("--baseline", type=Path, help="paired rounds against this checkout")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.shards, args.work)
    if args.baseline:
        return paired_rounds(args.shards, args.baseline, args.rounds, args.work)
    if args.exact_stage:
        return exact_stage_rounds(args.exact_stage, args.rounds, args.work / "exact")
    if args.fingerprints:
        return fingerprint_rounds(args.fingerprints, args.rounds)
    if args.shards is None:
        parser.error("a dataset directory is needed (or --fingerprints N)")
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
