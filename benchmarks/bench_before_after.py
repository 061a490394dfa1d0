"""Two checkouts of dataprep side by side: same output, code shape, paired whole-process timings.

Made for the "one shape for every stage" refactor (issue 20), usable for any two commits:

    git worktree add --detach /tmp/ba/before 8f81024
    git worktree add --detach /tmp/ba/after HEAD
    # same output: run one recipe in each tree, then compare every stage's shards
    python benchmarks/bench_before_after.py checksums /tmp/ba/qs_before /tmp/ba/qs_after
    # code shape of each tree (import cycles found with the graph code of the newer tree's
    # tests/test_architecture.py)
    python benchmarks/bench_before_after.py measures /tmp/ba/before /tmp/ba/after
    # paired timings: A B A B ..., each run a fresh `python -m dataprep ...` process
    python benchmarks/bench_before_after.py bench /tmp/ba/before /tmp/ba/after --pairs 5

Each tree runs from its own folder with PYTHONPATH=<tree> (nothing is installed), so the two
trees import their own `dataprep`. A run is timed from outside, as `/usr/bin/time -v` does:
wall from the fork to the reap, user+sys and peak RSS from `wait4` (the child and every
descendant it waited for; peak RSS is the largest single process). On a shared machine quote
CPU (user+sys): wall swings with the other jobs, CPU much less.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# --- same output -------------------------------------------------------------------------------

_RUN_TIMES = {"started", "finished", "created", "elapsed_s", "seconds"}


def _without_times(value: object) -> object:
    """A manifest with its clock readings removed: the only part that may differ between runs."""
    if isinstance(value, dict):
        return {k: _without_times(v) for k, v in value.items() if k not in _RUN_TIMES}
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value


def _listing(manifest: dict) -> list[tuple]:
    return [(s["path"], s["rows"], s["xxh3_128"]) for s in manifest["shards"]]


def _file_digests(folder: Path, manifest: dict) -> list[str]:
    """sha256 of each shard file's bytes, computed here (independent of dataprep's xxh3)."""
    out = []
    for shard in manifest["shards"]:
        path = folder / shard["path"]
        out.append(hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "")
    return out


def compare_outputs(before: Path, after: Path) -> list[dict]:
    """Per stage folder of `before`: the manifest's shard list, the shard files' own bytes and
    the manifest less its timestamps, each compared with `after`'s."""
    rows = []
    for stage in sorted(p.name for p in before.iterdir() if (p / ".manifest.json").exists()):
        m_b = json.loads((before / stage / ".manifest.json").read_text())
        m_a_path = after / stage / ".manifest.json"
        m_a = json.loads(m_a_path.read_text()) if m_a_path.exists() else {"shards": []}
        rows.append(
            {
                "stage": stage,
                "shards": len(m_b["shards"]),
                "rows": sum(s["rows"] for s in m_b["shards"]),
                "xxh3_128 list": _listing(m_b) == _listing(m_a),
                "file sha256": _file_digests(before / stage, m_b)
                == _file_digests(after / stage, m_a),
                "manifest less times": _without_times(m_b) == _without_times(m_a),
            }
        )
    return rows


# --- code shape --------------------------------------------------------------------------------


def _py_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _lines(path: Path) -> int:
    return len(path.read_bytes().splitlines())


def code_measures(tree: Path, graph_from: Path) -> dict:
    """Lines in dataprep/cli/, the largest module, the longest function, modules over 400 lines,
    and import cycles (module-level plus undocumented function-level imports, the rule of
    `graph_from`/tests/test_architecture.py)."""
    package = tree / "dataprep"
    files = _py_files(package)
    sizes = {str(p.relative_to(tree)): _lines(p) for p in files}
    functions = []  # (lines, path::name), every def including methods and nested ones
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                functions.append((length, f"{path.relative_to(tree)}::{node.name}"))
    functions.sort(key=lambda f: (-f[0], f[1]))
    largest = max(sizes.items(), key=lambda kv: kv[1])
    arch = _load_architecture(graph_from)
    imports = arch.all_imports(tree, "dataprep")
    counted = arch.cycles(
        imports, lambda i: i.scope == "module" or (i.scope == "function" and not i.documented)
    )
    module_level = arch.cycles(imports, lambda i: i.scope == "module")
    return {
        "tree": str(tree),
        "modules": len(files),
        "package lines": sum(sizes.values()),
        "cli lines": sum(v for k, v in sizes.items() if k.startswith("dataprep/cli/")),
        "cli modules": sum(1 for k in sizes if k.startswith("dataprep/cli/")),
        "largest module": f"{largest[0]} ({largest[1]})",
        "modules over 400 lines": sorted(k for k, v in sizes.items() if v > 400),
        "longest functions": [f"{name} ({n})" for n, name in functions[:3]],
        "functions over 60 lines": sum(1 for n, _ in functions if n > 60),
        "import cycles (module-level)": [c for _, c in module_level],
        "import cycles (counted by the rule)": [c for _, c in counted],
    }


def _load_architecture(tree: Path):  # noqa: ANN202 - a test module loaded by path
    path = tree / "tests" / "test_architecture.py"
    spec = importlib.util.spec_from_file_location("_architecture_rules", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up while building
    spec.loader.exec_module(module)
    return module


# --- paired timings ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    wall: float
    cpu: float
    peak_mb: float
    code: int


LOADER = """
import sys, hashlib
from dataprep.loader import ShardDataset, make_dataloader
ds = ShardDataset(sys.argv[1], columns=["id", "text"], batch_size=256, shuffle=True, seed=1)
digest, n = hashlib.sha256(), 0
for batch in make_dataloader(ds, num_workers=0):
    ids = batch["id"]
    digest.update("\\n".join(map(str, ids)).encode())
    n += len(ids)
print(n, digest.hexdigest())
"""


def workloads(data: Path, shards: Path, tiny: Path, out: Path) -> dict[str, list[str]]:
    """name -> argv after `python`; `OUT` is replaced by a fresh folder per run."""
    stage = ["-w", "1", "-q"]
    return {
        "help": ["-m", "dataprep", "--help"],
        "shard 1 file (start-up)": ["-m", "dataprep", "shard", str(tiny), "-o", "OUT", *stage],
        "shard": [
            "-m",
            "dataprep",
            "shard",
            str(data),
            "-o",
            "OUT",
            "--shard-rows",
            "5000",
            *stage,
        ],
        "dedup exact": [
            "-m",
            "dataprep",
            "dedup",
            str(shards),
            "-o",
            "OUT",
            "--method",
            "exact",
            *stage,
        ],
        "dedup minhash": [
            "-m",
            "dataprep",
            "dedup",
            str(shards),
            "-o",
            "OUT",
            "--method",
            "minhash",
            *stage,
        ],
        "compress zstd 9": [
            "-m",
            "dataprep",
            "compress",
            str(shards),
            "-o",
            "OUT",
            "--codec",
            "zstd",
            "--level",
            "9",
            *stage,
        ],
        "partition 8": [
            "-m",
            "dataprep",
            "partition",
            str(shards),
            "-o",
            "OUT",
            "--key",
            "id",
            "--partitions",
            "8",
            *stage,
        ],
        "rebalance 4 shuffle": [
            "-m",
            "dataprep",
            "rebalance",
            str(shards),
            "-o",
            "OUT",
            "--shards",
            "4",
            "--shuffle",
            *stage,
        ],
        "loader epoch": ["-c", LOADER, str(shards)],
        "quickstart recipe": [
            "-m",
            "dataprep",
            "run",
            str(out / "quickstart.yaml"),
            "--set",
            "vars.root=OUT",
            "-q",
        ],
    }


def run_once(tree: Path, argv: list[str], out: Path, log: Path) -> Run:
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    args = [
        sys.executable,
        *[str(out) if a == "OUT" else a.replace("=OUT", f"={out}") for a in argv],
    ]
    with log.open("ab") as sink:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            args, cwd=tree, env=env, stdout=sink, stderr=sink, stdin=subprocess.DEVNULL
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode)


def prepare(before: Path, work: Path, docs: int) -> tuple[Path, Path, Path]:
    """One corpus and one shard set, made once by `before`, read by both trees."""
    data, shards, tiny = work / "corpus", work / "shards", work / "tiny"
    env = {**os.environ, "PYTHONPATH": str(before)}
    py = [sys.executable, "-m", "dataprep"]
    if not data.exists():
        subprocess.run(
            [*py, "sample", "-o", str(data), "--docs", str(docs)],
            cwd=before,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    if not shards.exists():
        subprocess.run(
            [*py, "shard", str(data), "-o", str(shards), "--shard-rows", "5000", "-q"],
            cwd=before,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    if not tiny.exists():
        tiny.mkdir()
        shutil.copy(data / "news.jsonl.zst", tiny / "news.jsonl.zst")
    recipe = (before / "pipelines" / "quickstart.yaml").read_text()
    (work / "quickstart.yaml").write_text(recipe.replace("path: sample_data/", f"path: {data}/"))
    return data, shards, tiny


def bench(
    before: Path, after: Path, work: Path, pairs: int, docs: int, only: list[str] | None
) -> list[dict]:
    work.mkdir(parents=True, exist_ok=True)
    data, shards, tiny = prepare(before, work, docs)
    results = []
    for name, argv in workloads(data, shards, tiny, work).items():
        if only and name not in only:
            continue
        slug = "".join(c if c.isalnum() else "_" for c in name)
        logs = {side: work / f"{slug}.{side}.log" for side in ("before", "after")}
        for log in logs.values():
            log.unlink(missing_ok=True)
        runs: dict[str, list[Run]] = {"before": [], "after": []}
        for i in range(pairs + 1):  # the first pair warms the page cache and is dropped
            for side, tree in (("before", before), ("after", after)):
                run = run_once(tree, argv, work / f"out_{side}", logs[side])
                if run.code != 0:
                    raise SystemExit(f"{name} ({side}) exited {run.code}: see {logs[side]}")
                if i:
                    runs[side].append(run)
        row = {"workload": name}
        for side in ("before", "after"):
            row[f"{side} wall"] = statistics.median(r.wall for r in runs[side])
            row[f"{side} cpu"] = statistics.median(r.cpu for r in runs[side])
            row[f"{side} peak MB"] = statistics.median(r.peak_mb for r in runs[side])
        row["cpu ratio (median of pairs)"] = statistics.median(
            a.cpu / b.cpu for a, b in zip(runs["after"], runs["before"], strict=True)
        )
        row["wall ratio (median of pairs)"] = statistics.median(
            a.wall / b.wall for a, b in zip(runs["after"], runs["before"], strict=True)
        )
        row["cpu spread"] = {
            s: [round(min(r.cpu for r in runs[s]), 2), round(max(r.cpu for r in runs[s]), 2)]
            for s in runs
        }
        print(json.dumps(row), flush=True)
        results.append(row)
    return results


def _table(rows: list[dict]) -> str:
    keys = list(rows[0])
    out = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    c = sub.add_parser("checksums", help="compare two recipe output roots, stage by stage")
    c.add_argument("before", type=Path)
    c.add_argument("after", type=Path)
    m = sub.add_parser("measures", help="code shape of two trees")
    m.add_argument("before", type=Path)
    m.add_argument("after", type=Path)
    b = sub.add_parser("bench", help="paired whole-process timings")
    b.add_argument("before", type=Path)
    b.add_argument("after", type=Path)
    b.add_argument("--work", type=Path, default=Path("/tmp/bench_before_after"))
    b.add_argument("--pairs", type=int, default=5)
    b.add_argument("--docs", type=int, default=20000, help="documents in the sample corpus")
    b.add_argument("--only", help="comma-separated workload names")
    args = parser.parse_args()
    if args.what == "checksums":
        rows = compare_outputs(args.before, args.after)
        print(_table(rows))
        sys.exit(0 if all(v for r in rows for v in r.values() if isinstance(v, bool)) else 1)
    if args.what == "measures":
        graph = args.after.resolve()
        print(
            json.dumps(
                [code_measures(t.resolve(), graph) for t in (args.before, args.after)], indent=1
            )
        )
    if args.what == "bench":
        only = args.only.split(",") if args.only else None
        rows = bench(
            args.before.resolve(), args.after.resolve(), args.work, args.pairs, args.docs, only
        )
        print(_table([{k: v for k, v in r.items() if k != "cpu spread"} for r in rows]))


if __name__ == "__main__":
    main()
