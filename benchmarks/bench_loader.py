"""Reader benchmark: dataprep.loader vs LitData, MosaicML Streaming and plain pyarrow loops.

Cases (`--cases`):

- `text`: N rows of ~1 KiB text; `tokens`: N x 2048-token int32 blocks (BPE-like ids, see
  `_token_ids`). Ours are written as `dataprep tokenize` / `shard` write them (zstd); each peer
  stores the same rows in its own format twice, uncompressed and zstd-compressed
  (`litdata-zstd`, `streaming-zstd`), so no one is compared only on a format it did not choose.
  Batch 256 through a torch DataLoader with 0 and 2 workers; a plain pyarrow loop in a
  DataLoader is the floor.
- `plain`: Parquet as `pyarrow.parquet.write_table` writes it by default (snappy, one row group
  per file, no manifest): 120k rows of 256-int32 fixed-size lists in 4 uneven files; ours at
  0 workers, unshuffled, batch 256, against the 5-line `iter_batches` loop, while a CPU-bound
  process runs beside them (`--burn`).

Fair terms: every loader reads the full epoch and its sample count is checked; ours runs twice,
"best" (its default: two decode threads at 0 workers, one per worker) and "same" threads as the
peers' single read loop (`decode_threads=0`: read in the iterating thread, pyarrow's threads
off). Each measurement is its own process, started from a tiny launcher that samples the
process tree's memory (PSS summed over the loader and its workers, every 0.1 s: RSS counts
shared pages once per process, and `ru_maxrss` carries a parent's peak over to its children).
The data of a case is read once and its page-cache residency checked (mincore) before every
round. Resume (a fresh loader given the state saved at mid-epoch, to its first batch, which is
checked to be the batch the uninterrupted pass read there) is timed for every loader that can
save a state (ours, LitData). CPU time is process + DataLoader workers (getrusage); the
machine's load average is printed with every table.

Loaders take turns in each of `--repeats` rounds; figures are medians, and ours/this is the
median of the per-round ratios (paired, so drift on a shared machine hits both alike).

    python benchmarks/bench_loader.py --cases tokens,text --rows 300000 --token-rows 100000
    python benchmarks/bench_loader.py --cases plain --repeats 9

Peers load from --peer-python (a venv made as /work/shared/PEERS.md says; `import streaming`
needs a stand-in torchvision module, provided here). Missing peers are skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PEER_PYTHON = "/work/venvs/loader-bench/bin/python"
SHARD_ROWS = 50_000
PLAIN_FILES = (0.11, 0.39, 0.17, 0.33)  # shares of the rows in the plain case's 4 files


# --- data --------------------------------------------------------------------------------------


def _text_rows(first: int, n: int, size: int, rng: np.random.Generator) -> list[str]:
    words = np.array(
        [
            w.encode()
            for w in "the of and to in a is that for it as was with be by on "
            "not he this are or his from at which but have an they you were her she "
            "there one all we their been has more if will would so no its".split()
        ]
    )
    out = []
    picks = rng.integers(0, len(words), size=(n, size // 3))
    for i in range(n):
        out.append(f"{first + i} " + b" ".join(words[picks[i]]).decode()[:size])
    return out


def _token_ids(n: int, rng: np.random.Generator, vocab: int = 50_257) -> np.ndarray:
    """BPE-like ids: Zipf-Mandelbrot frequencies (p ~ 1/(rank+2.7)^1.07) over a GPT-2-sized
    vocabulary, ranks mapped to ids by a fixed permutation. Uniform ids would be an unfair
    case for dictionary encoding and compression; real text also repeats phrases, which this
    i.i.d. draw does not, so its files are somewhat larger than real ones."""
    weights = (np.arange(vocab) + 2.7) ** -1.07
    cdf = np.cumsum(weights / weights.sum())
    ids = np.random.default_rng(12345).permutation(vocab).astype(np.int32)
    return ids[np.minimum(np.searchsorted(cdf, rng.random(n)), vocab - 1)]


def prepare(data: Path, kind: str, rows: int, size: int, peers: list[str], py: str) -> dict:
    """Write the dataset once per (kind, rows): ours (manifest dir), LitData, MDS (each peer
    uncompressed and zstd).

    Token blocks are written as `dataprep tokenize` writes them (its column type and write
    options); the peers get the same ids in their own formats."""
    import pyarrow as pa

    sys.path.insert(0, str(ROOT))
    from dataprep.dataset import (
        Manifest,
        RollingShardWriter,
        WriteOptions,
        is_dataset,
        write_manifest,
    )
    from dataprep.stages.tokenize import block_array, block_write_options

    root = data / (f"text-{rows}" if kind == "text" else f"tokens-v4-{size}-{rows}")
    ours = root / "ours"
    if not is_dataset(ours):
        ours.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        schema = _schema(kind, size)
        options = (
            WriteOptions(row_group_rows=8192)
            if kind == "text"
            else block_write_options(WriteOptions(), size, column="value")
        )
        writer = RollingShardWriter(ours, "part", schema, shard_rows=SHARD_ROWS, options=options)
        for first in range(0, rows, 10_000):
            n = min(10_000, rows - first)
            ids = np.arange(first, first + n, dtype=np.int64)
            if kind == "text":
                col = pa.array(_text_rows(first, n, size, rng), pa.string())
            else:
                col = block_array(_token_ids(n * size, rng), size)
            writer.write(pa.Table.from_arrays([pa.array(ids), col], schema=schema))
        write_manifest(ours, Manifest(schema, writer.close()))
    write_peers(root, str(ours), peers, py)
    return {"root": str(root), "kind": kind, "rows": rows, "ours": str(ours)}


def prepare_plain(data: Path, rows: int, width: int) -> dict:
    """`pq.write_table` with its defaults (snappy, one row group per file, no manifest)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = data / f"plain-{width}-{rows}"
    folder = root / "plain"
    if not (root / ".done").exists():
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        counts = [int(rows * share) for share in PLAIN_FILES]
        counts[-1] = rows - sum(counts[:-1])
        first = 0
        for i, n in enumerate(counts):
            values = pa.FixedSizeListArray.from_arrays(pa.array(_token_ids(n * width, rng)), width)
            ids = pa.array(np.arange(first, first + n, dtype=np.int64))
            pq.write_table(pa.table({"id": ids, "value": values}), folder / f"part-{i}.parquet")
            first += n
        (root / ".done").write_text("ok")
    return {"root": str(root), "kind": "plain", "rows": rows, "ours": str(folder)}


def write_peers(root: Path, ours: str, peers: list[str], py: str) -> None:
    for peer in peers:
        for variant in (peer, f"{peer}-zstd"):
            target = root / variant
            if (target / ".done").exists():
                continue
            code = [py, __file__, "--write-peer", variant, "--from", ours, "--to", str(target)]
            proc = subprocess.run(code, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"  [{variant}] could not write its format: {proc.stderr.strip()[-300:]}")
                continue
            (target / ".done").write_text("ok")


def _schema(kind: str, size: int):
    import pyarrow as pa

    from dataprep.stages.tokenize import block_field

    if kind == "text":
        return pa.schema([("id", pa.int64()), ("value", pa.string())])
    return pa.schema([("id", pa.int64()), block_field(size).with_name("value")])


def _rows_of(ours: str):
    import pyarrow.parquet as pq

    for f in sorted(Path(ours).glob("part-*.parquet")):
        for batch in pq.ParquetFile(f).iter_batches(batch_size=4096):
            ids = batch.column(0).to_numpy()
            values = batch.column(1)
            text = values.type == "string"
            vals = values.to_pylist() if text else values.flatten().to_numpy().reshape(len(ids), -1)
            for i in range(len(ids)):
                yield int(ids[i]), vals[i]


def write_peer(variant: str, src: str, dst: str) -> None:
    peer, _, compression = variant.partition("-")
    if peer == "streaming":
        _fake_torchvision()
        from streaming import MDSWriter

        first = next(_rows_of(src))
        kind = "str" if isinstance(first[1], str) else "ndarray:int32"
        columns = {"id": "int64", "value": kind}
        with MDSWriter(
            out=dst, columns=columns, size_limit="64mb", compression=compression or None
        ) as w:
            for i, v in _rows_of(src):
                w.write({"id": i, "value": v})
    elif peer == "litdata":
        import litdata

        files = sorted(str(f) for f in Path(src).glob("part-*.parquet"))
        litdata.optimize(
            fn=_litdata_rows,
            inputs=files,
            output_dir=dst,
            chunk_bytes="64MB",
            compression=compression or None,
            num_workers=1,
            mode="overwrite",
        )


def _litdata_rows(path: str):
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=4096):
        ids = batch.column(0).to_numpy()
        values = batch.column(1)
        if values.type == "string":
            vals = values.to_pylist()
        else:
            vals = values.flatten().to_numpy().reshape(len(ids), -1)
        for i in range(len(ids)):
            yield {"id": int(ids[i]), "value": vals[i]}


def _fake_torchvision() -> None:
    """`import streaming` imports torchvision; no PyPI build loads beside the CPU torch.

    Any `torchvision.*` module imported is an empty stand-in whose attributes are dummy
    classes: the text/token code paths benchmarked here never call them.
    """
    import importlib.abc
    import importlib.machinery
    import types

    class Stub(types.ModuleType):
        def __getattr__(self, attr: str) -> Any:
            if attr.startswith("__"):
                raise AttributeError(attr)
            return type(attr, (), {})

    class Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, name, path, target=None):  # type: ignore[override]
            if name == "torchvision" or name.startswith("torchvision."):
                return importlib.machinery.ModuleSpec(name, self, is_package=True)
            return None

        def create_module(self, spec):  # type: ignore[override]
            mod = Stub(spec.name)
            mod.__path__ = []  # type: ignore[attr-defined]
            return mod

        def exec_module(self, module) -> None:  # type: ignore[override]
            return None

    sys.meta_path.insert(0, Finder())


# --- one measurement (child process) -------------------------------------------------------


# --- one measurement (child process) -------------------------------------------------------


def _pyarrow_loader(ours: str, bs: int, workers: int):
    """The plain pyarrow floor inside a DataLoader (files split over its workers)."""
    from torch.utils.data import DataLoader, IterableDataset, get_worker_info

    class Plain(IterableDataset):
        def __iter__(self):
            info = get_worker_info()
            w, n = (info.id, info.num_workers) if info else (0, 1)
            yield from _loop(sorted(Path(ours).glob("part-*.parquet"))[w::n], bs)

    return DataLoader(Plain(), batch_size=None, num_workers=workers)


def _loop(files: list[Path], bs: int):
    """The 5-line loop a user would write: iter_batches, to numpy, to torch (copied)."""
    import pyarrow.parquet as pq
    import torch

    for f in files:
        for b in pq.ParquetFile(f).iter_batches(batch_size=bs):
            values = b.column(1)
            if values.type == "string":
                v: Any = values.to_pylist()
            else:
                v = torch.from_numpy(values.values.to_numpy().reshape(b.num_rows, -1).copy())
            yield {"id": torch.from_numpy(b.column(0).to_numpy().copy()), "value": v}


def make_loader(name: str, data: dict, bs: int, workers: int, shuffle: bool):
    root, ours = data["root"], data["ours"]
    if name in ("dataprep", "dataprep-same"):
        sys.path.insert(0, str(ROOT))
        from dataprep.loader import ShardDataset, make_dataloader

        threads = 0 if name == "dataprep-same" else None
        ds = ShardDataset(ours, batch_size=bs, shuffle=shuffle, seed=1, decode_threads=threads)
        return make_dataloader(ds, num_workers=workers)
    if name == "pyarrow":
        return _pyarrow_loader(ours, bs, workers)
    if name == "loop":
        assert workers == 0 and not shuffle
        return _loop(sorted(Path(ours).glob("part-*.parquet")), bs)
    if name.startswith("litdata"):
        from litdata import StreamingDataLoader, StreamingDataset

        ds = StreamingDataset(f"{root}/{name}", shuffle=shuffle, seed=1)
        return StreamingDataLoader(ds, batch_size=bs, num_workers=workers)
    if name.startswith("streaming"):
        _fake_torchvision()
        from streaming import StreamingDataset
        from streaming.base.util import clean_stale_shared_memory
        from torch.utils.data import DataLoader

        clean_stale_shared_memory()
        ds = StreamingDataset(
            local=f"{root}/{name}", batch_size=bs, shuffle=shuffle, shuffle_seed=1
        )
        return DataLoader(ds, batch_size=bs, num_workers=workers)
    raise ValueError(name)


def _preimport(name: str) -> None:
    """Library imports (torch alone takes seconds) are not the loader's start-up time."""
    import torch  # noqa: F401

    if name.startswith("dataprep"):
        sys.path.insert(0, str(ROOT))
        import dataprep.loader  # noqa: F401
    elif name.startswith("litdata"):
        import litdata  # noqa: F401
    elif name.startswith("streaming"):
        _fake_torchvision()
        import streaming  # noqa: F401
    elif name in ("pyarrow", "loop"):
        # its first `to_numpy` imports pandas (~1.3 s of CPU): not counted against the loop
        import pandas  # noqa: F401
        import pyarrow.parquet  # noqa: F401


def measure(name: str, data: dict, bs: int, workers: int, shuffle: bool) -> dict:
    _preimport(name)
    expect = data["rows"]
    cpu0 = _cpu_seconds()
    t0 = time.perf_counter()
    loader = make_loader(name, data, bs, workers, shuffle)
    half = expect // bs // 2  # the state is saved after this many batches
    ids, n, t1, state = [], 0, None, None
    for batch in loader:
        if t1 is None:
            t1 = time.perf_counter()
        ids.append(np.asarray(batch["id"]).copy())
        n += len(batch["id"])
        if len(ids) == half and hasattr(loader, "state_dict"):
            state = loader.state_dict()
    t2 = time.perf_counter()
    del loader  # DataLoader workers exit and are reaped: their CPU time counts below
    cpu = _cpu_seconds() - cpu0
    if n != expect:
        raise SystemExit(f"{name} yielded {n} samples, not the epoch's {expect}")
    got = np.sort(np.concatenate(ids))
    if not np.array_equal(got, np.arange(expect)):
        raise SystemExit(f"{name} did not yield every sample exactly once")
    first = len(ids[0])
    out = {
        "cpu_us_per_sample": 1e6 * cpu / n,
        "samples": n,
        # the whole epoch from the loader's creation: a loader that reads ahead before its
        # first batch gets no credit for work it did before the clock started
        "samples_per_s": n / (t2 - t0),
        "steady_samples_per_s": (n - first) / max(t2 - t1, 1e-9) if t1 else 0.0,
        "first_batch_s": (t1 or t2) - t0,
        "rss_mb": _vm_hwm_mb(),
    }
    if shuffle:
        out.update(_quality(ids))
    if state is not None:
        out["resume_s"], out["resume_ok"] = _resume(name, data, bs, workers, shuffle, state, ids)
    return out


def _resume(
    name: str, data: dict, bs: int, workers: int, shuffle: bool, state: Any, ids: list
) -> tuple[float, bool]:
    """A fresh loader given the mid-epoch state: seconds to its first batch, and whether that
    batch is the one the uninterrupted pass read there."""
    t0 = time.perf_counter()
    loader = make_loader(name, data, bs, workers, shuffle)
    loader.load_state_dict(state)
    batch = next(iter(loader))
    seconds = time.perf_counter() - t0
    del loader
    half = data["rows"] // bs // 2
    return seconds, bool(np.array_equal(np.asarray(batch["id"]), ids[half]))


def _quality(ids: list[np.ndarray]) -> dict:
    order = np.concatenate(ids).astype(np.int64)
    ranks = np.empty(len(order))
    ranks[np.argsort(order)] = np.arange(len(order))
    spearman = float(np.corrcoef(np.arange(len(order)), ranks)[0, 1])
    # mean |new position - old position| / N: a uniform random permutation gives 1/3
    displacement = float(np.mean(np.abs(np.arange(len(order)) - ranks)) / len(order))
    distinct = float(np.mean([len(np.unique(np.asarray(b) // 8192)) for b in ids]))
    return {"spearman": spearman, "displacement": displacement, "groups_per_batch": distinct}


def _cpu_seconds() -> float:
    """user + system CPU of this process and its reaped children (DataLoader workers)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _vm_hwm_mb() -> float:
    """This process's own peak RSS (VmHWM starts afresh at exec, unlike ru_maxrss)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


# --- the launcher: a tiny parent that samples the tree's memory ----------------------------

LAUNCHER = r"""
import json, os, subprocess, sys, time
def tree(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out
def memory(pids):
    pss = rss = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
                    elif line.startswith("Rss:"):
                        rss += int(line.split()[1])
        except OSError:
            pass
    return pss / 1024, rss / 1024
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, text=True)
peak_pss = peak_rss = 0.0
while proc.poll() is None:
    pss, rss = memory(tree(proc.pid))
    peak_pss, peak_rss = max(peak_pss, pss), max(peak_rss, rss)
    time.sleep(0.1)
out = proc.stdout.read().strip().splitlines()
if proc.returncode or not out:
    sys.exit(proc.returncode or 1)
result = json.loads(out[-1])
result.update(tree_pss_mb=peak_pss, tree_rss_mb=peak_rss)
print(json.dumps(result))
"""


def run_child(
    py: str, name: str, data: dict, args: argparse.Namespace, workers: int, shuffle: bool
) -> dict | None:
    cmd = [py, __file__, "--child", name, "--case", json.dumps(data)]
    cmd += ["--batch-size", str(args.batch_size), "--workers", str(workers)]
    if shuffle:
        cmd.append("--shuffle")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    launch = [sys.executable, "-S", "-c", LAUNCHER, *cmd]
    proc = subprocess.run(launch, capture_output=True, text=True, env=env, timeout=args.timeout)
    if proc.returncode != 0:
        print(f"  [{name}] failed: {proc.stderr.strip()[-400:]}")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- page cache ----------------------------------------------------------------------------


def warm(folder: Path) -> float:
    """Read every file of `folder` and return the share of its bytes in the page cache."""
    import ctypes
    import mmap

    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t] + [ctypes.c_int] * 3 + [ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    page = mmap.PAGESIZE
    resident = total = 0
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        size = f.stat().st_size
        if not size:
            continue
        with open(f, "rb") as fh:
            while fh.read(8 << 20):
                pass
            addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fh.fileno(), 0)
            pages = (size + page - 1) // page
            vec = (ctypes.c_ubyte * pages)()
            libc.mincore(addr, size, vec)
            libc.munmap(addr, size)
        resident += sum(v & 1 for v in vec) * page
        total += pages * page
    return resident / max(total, 1)


# --- driver --------------------------------------------------------------------------------


def median_of(runs: list[dict]) -> dict:
    keys = [k for k in runs[0] if all(isinstance(r.get(k), int | float) for r in runs)]
    return {k: statistics.median(r[k] for r in runs) for k in keys}


def _burner() -> subprocess.Popen:
    """A CPU-bound process beside the plain case's loaders (the issue's condition)."""
    return subprocess.Popen([sys.executable, "-S", "-c", "while True: pass"])


def run_case(data: dict, args: argparse.Namespace, peers: list[str], py_peer: str) -> None:
    root = Path(data["root"])
    plain = data["kind"] == "plain"
    if plain:
        names, worker_list = ["dataprep", "dataprep-same", "loop"], [0]
    else:
        names = ["dataprep", "dataprep-same", "pyarrow"]
        names += [v for p in peers for v in (p, f"{p}-zstd") if (root / v / ".done").exists()]
        worker_list = [int(w) for w in args.workers.split(",")]
    folders = [Path(data["ours"])] + [root / n for n in names if (root / n).is_dir()]
    burn = _burner() if plain and args.burn else None
    try:
        for workers in worker_list:
            rounds: list[dict[str, dict]] = []
            load = [os.getloadavg()[0]]
            cache = []
            for _ in range(args.repeats):  # loaders take turns: drift hits all of them alike
                cache.append(min(warm(f) for f in folders))
                done = {}
                for name in names:
                    py = py_peer if name.startswith(("litdata", "streaming")) else sys.executable
                    result = run_child(py, name, data, args, workers, False)
                    if result:
                        done[name] = result
                rounds.append(done)
                load.append(os.getloadavg()[0])
            extra = "; a CPU-bound process beside them" if burn else ""
            print(
                f"\n-- {data['kind']}, num_workers={workers}, medians of {len(rounds)} rounds "
                f"(load average {min(load):.1f}-{max(load):.1f}; page cache resident "
                f">= {100 * min(cache):.1f}%{extra})"
            )
            _print_table(rounds, "loop" if plain else "litdata")
    finally:
        if burn is not None:
            burn.kill()
            burn.wait()


def _best_peer(rounds: list[dict[str, dict]], peer: str) -> list[float | None]:
    """Per round, the peer at its best: the faster of its stored variants (median-chosen)."""
    variants = [v for v in (peer, f"{peer}-zstd") if any(v in r for r in rounds)]
    if not variants:
        return [None] * len(rounds)
    best = max(
        variants,
        key=lambda v: statistics.median(r[v]["samples_per_s"] for r in rounds if v in r),
    )
    return [r[best]["samples_per_s"] if best in r else None for r in rounds]


def _paired(rounds: list[dict[str, dict]], ours: str, theirs: list[float | None]) -> str:
    ratios = [
        r[ours]["samples_per_s"] / t for r, t in zip(rounds, theirs, strict=True) if ours in r and t
    ]
    if not ratios:
        return "-"
    spread = f" ({min(ratios):.2f}-{max(ratios):.2f})" if len(ratios) > 1 else ""
    return f"{statistics.median(ratios):.2f}x{spread}"


def _print_table(rounds: list[dict[str, dict]], reference: str) -> None:
    print(
        f"{'loader':<15} {'samples/s':>10} {'CPU us/sample':>14} {'tree PSS MB':>12} "
        f"{'main RSS MB':>12} {'first batch s':>14} {'resume s':>9} {'best/this':>17} "
        f"{'same/this':>17}"
    )
    names = list(dict.fromkeys(n for r in rounds for n in r))
    for name in names:
        m = median_of([r[name] for r in rounds if name in r])
        this = [r[name]["samples_per_s"] if name in r else None for r in rounds]
        resume = "-"
        if "resume_s" in m:
            ok = all(r[name].get("resume_ok") for r in rounds if name in r)
            resume = f"{m['resume_s']:.3f}" + ("" if ok else "!")
        print(
            f"{name:<15} {m['samples_per_s']:>10,.0f} {m['cpu_us_per_sample']:>14.2f} "
            f"{m['tree_pss_mb']:>12,.0f} {m['rss_mb']:>12,.0f} {m['first_batch_s']:>14.3f} "
            f"{resume:>9} {_paired(rounds, 'dataprep', this):>17} "
            f"{_paired(rounds, 'dataprep-same', this):>17}"
        )
    for peer in ("litdata", "streaming") if reference == "litdata" else ():
        best = _best_peer(rounds, peer)
        if any(best):
            print(
                f"{peer + ' (best)':<15} ours best/this {_paired(rounds, 'dataprep', best)}, "
                f"same threads/this {_paired(rounds, 'dataprep-same', best)}"
            )
    print("('!' after resume s: the first batch after resume was not the one read there)")
    _print_targets(rounds, reference)


def _print_targets(rounds: list[dict[str, dict]], reference: str) -> None:
    """Issue 19.4's targets as one line each: the ratio it names, and CPU per sample."""

    def cpu(name: str) -> float | None:
        runs = [r[name]["cpu_us_per_sample"] for r in rounds if name in r]
        return statistics.median(runs) if runs else None

    if reference == "loop":
        loop = [r.get("loop", {}).get("samples_per_s") for r in rounds]
        ratio = _paired(rounds, "dataprep", loop)
        print(f"TARGET plain: ours (default) / loop = {ratio} (>= 1.00x wanted)")
        return
    best = _best_peer(rounds, "litdata")
    if not any(best):
        return
    ours, theirs = cpu("dataprep-same"), min(c for c in (cpu("litdata"), cpu("litdata-zstd")) if c)
    print(
        f"TARGET tokens/text: ours same threads / LitData best = "
        f"{_paired(rounds, 'dataprep-same', best)}, ours default / LitData best = "
        f"{_paired(rounds, 'dataprep', best)}; CPU us per sample ours same threads "
        f"{ours:.2f} vs LitData's lowest {theirs:.2f}"
    )


def _shuffle_report(data: dict, args: argparse.Namespace, peers: list[str], py: str) -> None:
    print(
        "\n-- shuffle quality and cost (num_workers=0; spearman(position, original index): "
        "0 = well mixed, 1 = unshuffled)"
    )
    print(f"{'loader':<10} {'spearman':>9} {'displacement':>13} {'samples/s':>11}")
    for name in ["dataprep", *[x for x in peers if x != "streaming"]]:
        pyx = sys.executable if name == "dataprep" else py
        runs = [run_child(pyx, name, data, args, 0, True) for _ in range(args.repeats)]
        runs = [r for r in runs if r]
        if runs:
            s = median_of(runs)
            print(
                f"{name:<10} {s['spearman']:>9.4f} {s['displacement']:>13.3f} "
                f"{s['samples_per_s']:>11,.0f}"
            )


def _sizes(root: Path, raw: int) -> str:
    """Bytes each format stores, and their ratio to the raw values (text bytes / 4 per id)."""
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = [f for f in folder.rglob("*") if f.is_file() and f.name != ".done"]
        if files:
            total = sum(f.stat().st_size for f in files)
            out.append(f"{folder.name} {total / 1e6:,.0f} MB ({total / raw:.2f}x raw)")
    return ", ".join(out)


def _peer_ok(py: str, name: str) -> bool:
    code = "import litdata"
    if name == "streaming":
        code = (
            "import importlib.util; "
            f"spec = importlib.util.spec_from_file_location('b', {__file__!r}); "
            "b = importlib.util.module_from_spec(spec); spec.loader.exec_module(b); "
            "b._fake_torchvision(); import streaming"
        )
    ok = subprocess.run([py, "-c", code], capture_output=True).returncode == 0
    if not ok:
        print(f"  [{name}] not importable from {py}: skipped")
    return ok


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--cases", default="tokens,text,plain", help="tokens, text, plain")
    p.add_argument("--rows", type=int, default=300_000, help="text rows (~1 KiB each)")
    p.add_argument("--text-bytes", type=int, default=1024)
    p.add_argument("--token-rows", type=int, default=100_000, help="2048-token int32 blocks")
    p.add_argument("--block", type=int, default=2048)
    p.add_argument("--plain-rows", type=int, default=120_000)
    p.add_argument("--plain-width", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", default="0,2")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--peers", default="litdata,streaming")
    p.add_argument("--peer-python", default=PEER_PYTHON)
    p.add_argument("--burn", type=int, default=1, help="plain case: a CPU-bound process beside")
    p.add_argument("--shuffle", action="store_true", help="also report shuffle quality")
    p.add_argument("--data", default="/tmp/dataprep-bench-loader")
    p.add_argument("--timeout", type=int, default=900)
    # internal
    p.add_argument("--child")
    p.add_argument("--case")
    p.add_argument("--write-peer")
    p.add_argument("--from", dest="src")
    p.add_argument("--to")
    args, _ = p.parse_known_args()
    if args.write_peer:
        return write_peer(args.write_peer, args.src, args.to)
    if args.child:
        result = measure(
            args.child, json.loads(args.case), args.batch_size, int(args.workers), args.shuffle
        )
        print(json.dumps(result))
        return None

    py_peer = args.peer_python if Path(args.peer_python).exists() else sys.executable
    peers = [x for x in args.peers.split(",") if x and _peer_ok(py_peer, x)]
    for case in args.cases.split(","):
        t = time.perf_counter()
        if case == "plain":
            data = prepare_plain(Path(args.data), args.plain_rows, args.plain_width)
            raw = args.plain_rows * 4 * args.plain_width
        else:
            rows, size = (
                (args.rows, args.text_bytes) if case == "text" else (args.token_rows, args.block)
            )
            data = prepare(Path(args.data), case, rows, size, peers, py_peer)
            raw = rows * (size if case == "text" else 4 * size)
        print(
            f"\n== {case}: {data['rows']} rows, batch {args.batch_size} "
            f"(data ready in {time.perf_counter() - t:.0f}s; peers: {peers or 'none'})"
        )
        print("   on disk: " + _sizes(Path(data["root"]), raw))
        run_case(data, args, [] if case == "plain" else peers, py_peer)
        if args.shuffle and case != "plain":
            _shuffle_report(data, args, peers, py_peer)


if __name__ == "__main__":
    main()
