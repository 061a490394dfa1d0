"""Near-duplicate removal, side by side: datasketch, rensa, (datatrove), and dataprep dedup.

    python benchmarks/bench_dedup.py                      # 20k docs, a few minutes here
    python benchmarks/bench_dedup.py --docs 200000        # the issue's size
    python benchmarks/bench_dedup.py --tools ours1,ours2  # a subset
    python benchmarks/bench_dedup.py --real 42 --repeat 3 \\
        --tools datasketch,rensa,ours1,ours1-warm     # long real documents (issue 19)
    python benchmarks/bench_dedup.py --fragments --docs 200000 --shard-rows 50000 \\
        --datasketch-docs 20000 --repeat 3 --tools datasketch,rensa,ours1,ours1-warm
                                                      # 1-4 KB documents cut from real text
    python benchmarks/bench_dedup.py --real 42 --start-cost   # a process's kernel start

One generated corpus (documents of 1-4 KB drawn from a Zipf vocabulary, ~10% exact and ~15%
near duplicates whose 5-shingle Jaccard with their original is 0.82-0.98, each tagged with
its cluster), num_perm 128, threshold 0.8. Every tool runs in its own process (clean peak
RSS) and reports the rows it would remove; precision and recall are scored here against the
known clusters: a cluster of k rows should lose k-1.

* datasketch: MinHash.update_batch over lowercased 5-word shingles + MinHashLSH(0.8, 128),
  query-then-insert: the ordinary way.
* rensa: RMinHash + RMinHashLSH(0.8, 128, 16 bands, hand-set as rensa requires), same loop.
* datatrove (if its venv exists): its four MinHash stages (signatures, buckets, cluster,
  filter) with LocalPipelineExecutor, 16 buckets x 8 hashes, whitespace words; one worker.
  See benchmarks/datatrove_minhash.py for the venv it needs.
* ours: `dataprep dedup --method minhash --threshold 0.8` through run_stage, from Parquet
  shards to Parquet shards (read, hash, bucket, cluster, write: all timed), 1 and 2 workers.

Peers get their texts as a Python list (reading not timed); ours reads and writes Parquet.
`datasketch-job` and `rensa-job` do the stage's whole job instead (read the shards with
pyarrow, the same loop, write the kept rows with our codec, level and row-group size; all
timed): the like-for-like comparison. Quote both.
`ours1-numpy` is ours1 with DATAPREP_DEDUP_KERNEL=numpy (the signature path before the
compiled kernel), `ours1-numba` with the kernel forced; `ours1` lets the driver choose (the
kernel at >= 32 MiB of text per worker). `--fragments` cuts 1-4 KB documents from the
machine's real text and plants duplicates (benchmarks/dedup_corpus.py); `--datasketch-docs N`
lets datasketch (~1,000 docs/s here) sign only the first N documents, its loop's CPU scaled by
bytes (a -job still reads and writes the whole corpus, timed as it is).
The machine is shared, so besides wall time every tool reports its CPU
seconds (getrusage): "MB/s per core" is input MB per CPU second; ratios pair each round's runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


# ---------------------------------------------------------------- corpus


def generate(
    n_docs: int, seed: int, doc_words: tuple[int, int] = (170, 680)
) -> tuple[list[str], list[int]]:
    """(texts, cluster id per text); a cluster id is the index of its original."""
    rng = np.random.default_rng(seed)
    vocab_size = 50000
    syll = [c + v for c in "bcdfghklmnprstvz" for v in "aeiou"]
    words = []
    seen = set()
    while len(words) < vocab_size:
        w = "".join(rng.choice(syll, int(rng.integers(1, 4))))
        if w not in seen:
            seen.add(w)
            words.append(w)
    vocab = np.array(words)
    cdf = np.cumsum(1.0 / np.arange(1, vocab_size + 1) ** 1.05)
    cdf /= cdf[-1]
    texts: list[str] = []
    clusters: list[int] = []
    token_lists: list[np.ndarray] = []
    for i in range(n_docs):
        kind = rng.random()
        if i > 10 and kind < 0.10:  # exact copy
            j = int(rng.integers(len(texts)))
            texts.append(texts[j])
            clusters.append(clusters[j])
            token_lists.append(token_lists[j])
            continue
        if i > 10 and kind < 0.25:  # near copy at J in [0.82, 0.98]
            j = int(rng.integers(len(texts)))
            toks = token_lists[j].copy()
            target = rng.uniform(0.82, 0.98)
            edits = max(1, int(round((1 - target) / (1 + target) * (len(toks) - 4) / 5)))
            pos = rng.choice(len(toks), edits, replace=False)
            toks[pos] = np.searchsorted(cdf, rng.random(edits))
            texts.append(_text(vocab, toks))
            clusters.append(clusters[j])
            token_lists.append(toks)
            continue
        length = int(rng.integers(*doc_words))  # 170-680 words: ~1-4 KB
        toks = np.minimum(np.searchsorted(cdf, rng.random(length)), vocab_size - 1)
        texts.append(_text(vocab, toks))
        clusters.append(i)
        token_lists.append(toks)
    return texts, clusters


def real_corpus(max_mb: float, seed: int) -> tuple[list[str], list[int]]:
    """Long real documents on this machine (2-50 KB): licences, copyright files, man pages
    (roff source), shuffled with `seed`, up to `max_mb`. No known clusters: each its own."""
    import glob
    import gzip

    paths = sorted(glob.glob("/usr/share/common-licenses/*"))
    paths += sorted(glob.glob("/usr/share/doc/*/copyright"))
    paths += sorted(glob.glob("/usr/share/man/man*/*.gz"))
    np.random.default_rng(seed).shuffle(paths)
    texts: list[str] = []
    size = 0
    for path in paths:
        try:
            raw = gzip.open(path).read() if path.endswith(".gz") else Path(path).read_bytes()
        except OSError:
            continue
        if 2000 <= len(raw) <= 50000 and size + len(raw) <= max_mb * 1e6:
            texts.append(raw.decode("utf-8", "replace"))
            size += len(raw)
    return texts, list(range(len(texts)))


def _text(vocab: np.ndarray, toks: np.ndarray) -> str:
    return " ".join(vocab[np.minimum(toks, len(vocab) - 1)].tolist())


def write_corpus(root: Path, texts: list[str], clusters: list[int], shard_rows: int) -> None:
    import pyarrow as pa

    from dataprep import dataset
    from dataprep.dataset import Manifest, ShardWriter

    shards = root / "shards"
    shards.mkdir(parents=True)
    table = pa.table({"id": [str(i) for i in range(len(texts))], "text": texts})
    entries = []
    for k, start in enumerate(range(0, len(texts), shard_rows)):
        writer = ShardWriter(shards / f"part-{k:05d}.parquet", table.schema)
        writer.write(table.slice(start, shard_rows))
        entries.append(writer.close())
    dataset.write_manifest(shards, Manifest(table.schema, entries))
    (root / "clusters.json").write_text(json.dumps(clusters))


def load_texts(root: Path) -> list[str]:
    from dataprep import dataset

    return dataset.read_rows(root / "shards", ["text"]).column("text").to_pylist()


# ---------------------------------------------------------------- tools (run in a child)


def cpu_seconds() -> float:
    """CPU time of this process and its finished children: the machine is shared, so wall
    time measures the neighbours too; CPU seconds per MB is the per-core throughput."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _count_sign_cpu(info: dict) -> None:
    """Wrap the dedup sign task (inline with 1 worker) to add up its CPU seconds."""
    from dataprep.stages.dedup import tasks

    inner = tasks.sign_task
    info["sign_cpu"] = 0.0

    def timed(task):  # type: ignore[no-untyped-def]
        started = cpu_seconds()
        try:
            return inner(task)
        finally:
            info["sign_cpu"] += cpu_seconds() - started

    tasks.sign_task = timed


def shingles(text: str) -> list[str]:
    words = text.lower().split()
    return [" ".join(words[i : i + 5]) for i in range(max(1, len(words) - 4))]


def datasketch_removed(texts: list[str]) -> tuple[list[int], str]:
    """datasketch's ordinary loop over `texts`: the rows it would remove, and its bands."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=0.8, num_perm=128)
    removed = []
    for i, text in enumerate(texts):
        m = MinHash(num_perm=128)
        m.update_batch([s.encode("utf-8") for s in shingles(text)])
        if lsh.query(m):
            removed.append(i)
        else:
            lsh.insert(i, m)
    return removed, f"{lsh.b}x{lsh.r}"


def rensa_removed(texts: list[str]) -> tuple[list[int], str]:
    """rensa's loop over `texts` (16 bands, hand-set as rensa requires)."""
    from rensa import RMinHash, RMinHashLSH

    lsh = RMinHashLSH(threshold=0.8, num_perm=128, num_bands=16)
    removed = []
    for i, text in enumerate(texts):
        m = RMinHash(num_perm=128, seed=42)
        m.update(shingles(text))
        if lsh.query(m):
            removed.append(i)
        else:
            lsh.insert(i, m)
    return removed, "16x8"


PEERS = {"datasketch": datasketch_removed, "rensa": rensa_removed}


def run_peer(root: Path, name: str) -> tuple[list[int], dict]:
    """A peer's loop over texts handed to it as a list: reading them is not timed."""
    texts = load_texts(root)[: int(os.environ.get("BENCH_DEDUP_DOCS", 0)) or None]
    t0, c0 = time.perf_counter(), cpu_seconds()
    removed, bands = PEERS[name](texts)
    cpu = cpu_seconds() - c0
    return removed, {"seconds": time.perf_counter() - t0, "cpu": cpu, "bands": bands}


def run_peer_job(root: Path, name: str) -> tuple[list[int], dict]:
    """The peer doing the stage's whole job, as a user replacing `dataprep dedup` with it
    would: read the shards (every column) with pyarrow, run the peer's loop on the text
    column, write the kept rows shard by shard with our codec, level, row-group size and
    page checksums. All of it timed, so both sides do the same I/O. With a document limit
    the loop runs on the first documents only (the rest count as kept), but the reading and
    writing are the whole corpus's: only the loop's seconds (`loop_cpu`) are scaled up."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dataprep.shardio import WriteOptions

    limit = int(os.environ.get("BENCH_DEDUP_DOCS", 0)) or None
    out = root / f"{name}-job"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    t0, c0 = time.perf_counter(), cpu_seconds()
    tables = [pq.read_table(path) for path in sorted((root / "shards").glob("*.parquet"))]
    texts = pa.concat_tables(tables).column("text").to_pylist()
    t1, c1 = time.perf_counter(), cpu_seconds()
    removed, bands = PEERS[name](texts[:limit])
    loop = {"loop_seconds": time.perf_counter() - t1, "loop_cpu": cpu_seconds() - c1}
    gone = np.zeros(len(texts), dtype=bool)
    gone[removed] = True
    options = WriteOptions()
    at = 0
    for k, table in enumerate(tables):
        keep = pa.array(~gone[at : at + table.num_rows])
        at += table.num_rows
        pq.write_table(
            table.filter(keep),
            out / f"part-{k:05d}.parquet",
            row_group_size=options.row_group_rows,
            **options.writer_kwargs(table.schema),
        )
    cpu = cpu_seconds() - c0
    return removed, {"seconds": time.perf_counter() - t0, "cpu": cpu, "bands": bands, **loop}


def whole(info: dict, key: str) -> float:
    """A run's `cpu` or `seconds` for the whole corpus: a peer that signed only the first
    documents has its loop's share scaled by bytes (a -job's reading and writing were the
    whole corpus's already); any other run as measured."""
    if "scale" not in info:
        return info[key]
    loop = info.get(f"loop_{key}", info[key])
    return info[key] + loop * (info["scale"] - 1.0)


def run_ours(
    root: Path, workers: int, verify: bool = True, warm: bool = False
) -> tuple[list[int], dict]:
    from dataprep import dataset
    from dataprep.executors import make_executor
    from dataprep.runner import run_stage
    from dataprep.stages.dedup import DedupConfig

    out = root / f"ours-{workers}-{int(verify)}"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(root / "ours-warm-up", ignore_errors=True)
    config = DedupConfig.parse(
        {"method": "minhash", "threshold": 0.8, "num_perm": 128, "verify": verify}
    )
    if warm:  # one untimed run first: numba's import and cache load are paid once per process
        run_stage(
            "dedup",
            config,
            root / "ours-warm-up",
            input_path=root / "shards",
            executor=make_executor("local", workers=workers),
        )
    counted: dict = {}
    if workers == 1:
        _count_sign_cpu(counted)
    t0, c0 = time.perf_counter(), cpu_seconds()
    run = run_stage(
        "dedup",
        config,
        out,
        input_path=root / "shards",
        executor=make_executor("local", workers=workers),
    )
    seconds, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    kept = set(dataset.read_rows(out, ["id"]).column("id").to_pylist())
    total = dataset.read_manifest(root / "shards").rows
    removed = [i for i in range(total) if str(i) not in kept]
    lsh = run.report["lsh"]
    phases = {k: v["seconds"] for k, v in run.report["phases"].items()}
    workers_mb = max(v["peak_rss_mb"] for v in run.report["phases"].values()) if workers > 1 else 0
    return removed, {
        "seconds": seconds,
        "cpu": cpu,
        **counted,
        "bands": f"{lsh['bands']}x{lsh['rows']}",
        "phases": phases,
        "workers_mb": workers_mb,
    }


TOOLS = {
    "datasketch": lambda root: run_peer(root, "datasketch"),
    "rensa": lambda root: run_peer(root, "rensa"),
    # the same job as ours: read the Parquet shards, dedup, write the kept rows (all timed)
    "datasketch-job": lambda root: run_peer_job(root, "datasketch"),
    "rensa-job": lambda root: run_peer_job(root, "rensa"),
    "ours1": lambda root: run_ours(root, 1),
    "ours2": lambda root: run_ours(root, 2),
    "ours1-noverify": lambda root: run_ours(root, 1, verify=False),
    # the numpy signature path (before the compiled kernel), same stage otherwise
    "ours1-numpy": lambda root: run_ours(root, 1),
    # the compiled kernel whatever the input size (the driver's choice overridden)
    "ours1-numba": lambda root: run_ours(root, 1),
    # the second run in one process: what a long-lived worker sees after its first shard
    "ours1-warm": lambda root: run_ours(root, 1, warm=True),
}
ENV = {
    "ours1-numpy": {"DATAPREP_DEDUP_KERNEL": "numpy"},
    "ours1-numba": {"DATAPREP_DEDUP_KERNEL": "numba"},
}


def child(tool: str, root: Path) -> None:
    removed, info = TOOLS[tool](root)
    from dataprep.stages.dedup.tasks import peak_rss_mb  # VmHWM: not inherited via fork

    info.update(removed=removed, rss_mb=peak_rss_mb(), rss_children_mb=info.pop("workers_mb", 0))
    print("RESULT " + json.dumps(info))


# ---------------------------------------------------------------- scoring and driver


def score(removed: list[int], clusters: list[int]) -> tuple[float, float]:
    size: dict[int, int] = {}
    for c in clusters:
        size[c] = size.get(c, 0) + 1
    lost: dict[int, int] = {}
    for i in removed:
        lost[clusters[i]] = lost.get(clusters[i], 0) + 1
    should = sum(k - 1 for k in size.values())
    correct = sum(min(n, size[c] - 1) for c, n in lost.items())
    precision = correct / len(removed) if removed else 1.0
    recall = correct / should if should else 1.0
    return precision, recall


def peak(info: dict) -> float:
    """The largest process of a run: the driver, or one pool worker."""
    return max(info["rss_mb"], info["rss_children_mb"])


def run_tool(tool: str, root: Path, datatrove_python: str, docs: int = 0) -> dict | None:
    if tool == "datatrove":
        if not Path(datatrove_python).exists():
            print(f"datatrove: skipped ({datatrove_python} not found)")
            return None
        script = Path(__file__).with_name("datatrove_minhash.py")
        command = [datatrove_python, str(script), str(root), "1"]
    else:
        command = [sys.executable, __file__, "--child", tool, "--work", str(root)]
    env = {**os.environ, **ENV.get(tool, {}), "BENCH_DEDUP_DOCS": str(docs)}
    before = _children_cpu()
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        print(f"{tool}: failed\n{proc.stderr[-2000:]}")
        return None
    # the whole process: interpreter start, imports, reading the texts (peers), the run
    return {**json.loads(line[7:]), "process_cpu": _children_cpu() - before}


def _children_cpu() -> float:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


START_COST = """
import resource, sys, time
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
from dataprep.stages.dedup import minhash, params  # what a stage run has loaded already
def rss():
    return int(next(x for x in open("/proc/self/status") if x.startswith("VmRSS")).split()[1])
text = pq.ParquetFile(sys.argv[1]).read_row_group(0).column("text").combine_chunks().slice(0, 50)
before, mem = time.process_time(), rss()
from dataprep.stages.dedup import kernel
kernel.signatures(text, 128, 42, 5, None)
print(f"{time.process_time() - before:.3f} s CPU, +{(rss() - mem) / 1024:.0f} MB, numba "
      f"{'imported' if 'numba' in sys.modules else 'not imported'}")
"""


def start_cost(root: Path, processes: int = 3) -> None:
    """A fresh process's first kernel use (import + first call on 50 documents): CPU and
    resident memory, `processes` times (the kernel's build made first, untimed)."""
    print(prepare_kernel())
    shard = sorted((root / "shards").glob("*.parquet"))[0]
    for _ in range(processes):
        out = subprocess.run([sys.executable, "-c", START_COST, str(shard)], capture_output=True,
                             text=True, check=True)  # fmt: skip
        print("kernel start:", out.stdout.strip())


def prepare_kernel() -> str:
    """Build the dedup kernel for this machine before any timed run (untimed, once per
    machine, as a user's first run would): every `ours` run then starts as a user's later
    `dataprep dedup` does, a fresh process that maps the build from disk."""
    from dataprep.stages.dedup import minhash

    started = time.perf_counter()
    module = minhash.kernel_module()
    if module is None:
        return "kernel: not available here (numpy path)"
    return f"kernel: {module.cache_path()} ready ({time.perf_counter() - started:.1f}s)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--words", default="170,680", help="words per document: LO,HI")
    parser.add_argument("--shard-rows", type=int, default=10000)
    parser.add_argument("--tools", default="datasketch,rensa,datatrove,ours1,ours2,ours1-noverify")
    parser.add_argument(
        "--datatrove-python",
        default="/work/venvs/datatrove/bin/python",
        help="interpreter of a venv with datatrove (skipped if missing)",
    )
    parser.add_argument("--work", default="/tmp/bench_dedup")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per tool, interleaved; the median time is reported",
    )
    parser.add_argument(
        "--real",
        type=float,
        default=0.0,
        metavar="MB",
        help="instead of generated text: up to MB of long real documents (licences, copyright "
        "files, man pages; 2-50 KB each); no known clusters, so no precision/recall",
    )
    parser.add_argument(
        "--fragments",
        action="store_true",
        help="instead of generated words: --docs documents of 1-4 KB cut from real text, with "
        "planted exact and near duplicates (benchmarks/dedup_corpus.py)",
    )
    parser.add_argument(
        "--datasketch-docs",
        type=int,
        default=0,
        metavar="N",
        help="datasketch signs only the first N documents (it runs ~500 docs/s); its CPU is "
        "scaled to the whole corpus by bytes for the ratios, its precision/recall is on those N",
    )
    parser.add_argument(
        "--start-cost",
        action="store_true",
        help="only measure a fresh process's first kernel use (CPU, memory) on the corpus",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    root = Path(args.work)
    if args.child:
        child(args.child, root)
        return
    shutil.rmtree(root, ignore_errors=True)
    t0 = time.perf_counter()
    low, high = (int(x) for x in args.words.split(","))
    if args.real:
        texts, clusters = real_corpus(args.real, args.seed)
    elif args.fragments:
        from dedup_corpus import fragments

        texts, clusters = fragments(args.docs, args.seed)
    else:
        texts, clusters = generate(args.docs, args.seed, (low, high))
    write_corpus(root, texts, clusters, args.shard_rows)
    megabytes = sum(len(t.encode()) for t in texts) / 1e6
    print(
        f"corpus: {len(texts):,} docs, {megabytes:.1f} MB text, "
        f"{sum(1 for i, c in enumerate(clusters) if c != i):,} duplicates "
        f"(generated in {time.perf_counter() - t0:.1f}s); num_perm 128, threshold 0.8; "
        f"{os.cpu_count()} cores"
    )
    if args.start_cost:
        start_cost(root)
        return
    if any(t.startswith("ours") for t in args.tools.split(",")):
        print(prepare_kernel())
    runs: dict[str, list[dict]] = {}
    for _ in range(args.repeat):  # interleaved, so load from elsewhere hits every tool alike
        for tool in args.tools.split(","):
            docs = args.datasketch_docs if tool.startswith("datasketch") else 0
            info = run_tool(tool, root, args.datatrove_python, docs)
            if info is not None and 0 < docs < len(texts):
                part = sum(len(t.encode()) for t in texts[:docs]) / 1e6
                info.update(docs=docs, scale=megabytes / part)
            if info is not None:
                runs.setdefault(tool, []).append(info)
    paired = paired_ratios(runs, megabytes)
    rows = {}
    for tool, infos in runs.items():
        infos.sort(key=lambda i: i["seconds"])
        info = infos[len(infos) // 2]  # the median run
        done = info.get("docs", len(texts))
        precision, recall = score(info["removed"], clusters[:done])
        info.update(
            precision=precision,
            recall=recall,
            docs_s=len(texts) / whole(info, "seconds"),
            mb_s=megabytes / whole(info, "seconds"),
            runs=[round(i["seconds"], 2) for i in infos],
        )
        rows[tool] = info
    header = (
        f"{'tool':<16}{'bands':>7}{'seconds':>9}{'docs/s':>10}{'MB/s':>8}"
        f"{'RSS MB':>8}{'child RSS':>10}{'precision':>10}{'recall':>8}"
    )
    print(header)
    for tool, i in rows.items():
        print(
            f"{tool:<16}{i['bands']:>7}{i['seconds']:>9.2f}{i['docs_s']:>10,.0f}"
            f"{i['mb_s']:>8.2f}{i['rss_mb']:>8.0f}{i['rss_children_mb']:>10.0f}"
            f"{i['precision']:>10.4f}{i['recall']:>8.4f}"
        )
    for tool, i in rows.items():
        print(f"{tool} run times (s): {i['runs']}")
    for tool, i in rows.items():
        if "phases" in i:
            decide = sum(v for k, v in i["phases"].items() if k != "write")
            i["decide_docs_s"] = len(texts) / decide
            print(
                f"{tool} phases (s): {i['phases']}; without writing the output Parquet "
                f"(what the peers without a writer do): {i['decide_docs_s']:,.0f} docs/s"
            )
    for ours in [t for t in rows if t.startswith("ours")]:
        for peer in [t for t in rows if not t.startswith("ours")]:
            print(
                f"ratio {ours}/{peer}: docs/s x{rows[ours]['docs_s'] / rows[peer]['docs_s']:.1f}, "
                f"peak RSS x{peak(rows[ours]) / peak(rows[peer]):.2f}"
                + (
                    f"; decisions only x{rows[ours]['decide_docs_s'] / rows[peer]['docs_s']:.1f}"
                    if peer != "datatrove"
                    else ""
                )
            )
    for tool, i in rows.items():
        if "scale" in i:
            print(
                f"{tool} signed the first {i['docs']:,} docs only: its loop's CPU/wall seconds "
                f"are scaled x{i['scale']:.2f} (bytes) in the paired ratios (a -job reads and "
                "writes the whole corpus, unscaled); its peak RSS is that of the loop's part"
            )
    print(paired)


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else float("nan")


def paired_ratios(runs: dict[str, list[dict]], megabytes: float) -> str:
    """Per round (each tool once, interleaved): sign-phase MB per CPU second, and each ours
    tool's speed over each peer's by CPU seconds and by wall seconds; medians over rounds."""
    lines = ["paired rounds (medians; CPU = user+sys of the tool's process, 1 worker):"]
    for tool, infos in runs.items():
        signs = [megabytes / i["sign_cpu"] for i in infos if i.get("sign_cpu")]
        if signs:
            lines.append(
                f"  {tool}: sign phase {_median(signs):.1f} MB/s per core (CPU) "
                f"[{', '.join(f'{x:.0f}' for x in signs)}], whole stage "
                f"{_median([megabytes / i['cpu'] for i in infos]):.1f} MB/s per core, "
                f"peak RSS {_median([peak(i) for i in infos]):.0f} MB"
            )
        elif infos and all("cpu" in i for i in infos):
            per_core = [megabytes / whole(i, "cpu") for i in infos]
            lines.append(
                f"  {tool}: {_median(per_core):.1f} MB/s per core (CPU), "
                f"peak RSS {_median([peak(i) for i in infos]):.0f} MB"
            )
    for ours in [t for t in runs if t.startswith("ours")]:
        for peer in [t for t in runs if not t.startswith("ours")] + ["ours1-numpy"]:
            if peer == ours or peer not in runs:
                continue
            pairs = list(zip(runs[ours], runs[peer], strict=False))
            by_cpu = [whole(p, "cpu") / o["cpu"] for o, p in pairs]
            by_wall = [whole(p, "seconds") / o["seconds"] for o, p in pairs]
            rss = [peak(o) / peak(p) for o, p in pairs]
            lines.append(
                f"  {ours} vs {peer}: x{_median(by_cpu):.1f} by CPU "
                f"[{', '.join(f'{x:.1f}' for x in by_cpu)}], x{_median(by_wall):.1f} by wall; "
                f"peak RSS x{_median(rss):.2f}"
            )
    lines += headline(runs)
    return "\n".join(lines)


def headline(runs: dict[str, list[dict]]) -> list[str]:
    """The 'in one run' figure: `ours1` is what a user's `dataprep dedup` is, a fresh process
    (the kernel's build on disk from an earlier run, the input in the page cache), against
    each peer's run in its own fresh process. By the tools' timed CPU (ours: the whole stage
    from Parquet to Parquet; peers: signing and LSH of texts handed over as a list, or for
    the `-job` peers the same Parquet to Parquet job) and, for
    the record, by the whole child process (interpreter start, imports, peers' reading)."""
    if "ours1" not in runs:
        return []
    out = ["IN ONE RUN (ours1: a fresh process, kernel build on disk, page cache warm):"]
    for peer in [t for t in runs if not t.startswith("ours")]:
        pairs = list(zip(runs["ours1"], runs[peer], strict=False))
        by_cpu = _median([whole(p, "cpu") / o["cpu"] for o, p in pairs])
        by_wall = _median([whole(p, "seconds") / o["seconds"] for o, p in pairs])
        processes = [p["process_cpu"] / o["process_cpu"] for o, p in pairs if "scale" not in p]
        process = f"x{_median(processes):.1f}" if processes else "n/a (peer signed a part)"
        out.append(
            f"  ours1 vs {peer}: x{by_cpu:.1f} by CPU, x{by_wall:.1f} by wall; "
            f"whole processes' CPU {process}"
        )
    return out


if __name__ == "__main__":
    main()
