"""Reader benchmark: dataprep.loader vs a plain pyarrow loop, LitData and MosaicML Streaming.

Same data for everyone (N rows of ~1 KiB text, optionally token blocks), batch 256, through a
torch DataLoader with 0 and 2 workers. Token blocks hold BPE-like ids (Zipf-distributed, see
`_token_ids`); ours are written exactly as `dataprep tokenize` writes them (its column type and
write options: zstd + dictionary, non-nullable), the peers store the same ids in their own
formats; the bytes each format takes on disk are printed next to the speed. Each measurement
runs in a fresh process so peak RSS and start-up are honest. Prints samples/s (steady state,
after the first batch), time to first batch, resume latency (ours), peak RSS, the ratios
ours/theirs, and a shuffle-quality figure:
Spearman correlation between a sample's position in the epoch and its original index (0 is
ideal, 1 is no shuffle), the mean displacement |new - old position| / N (1/3 for a uniform
random permutation) and the mean number of distinct source row groups per batch. CPU time
per sample (process + DataLoader workers) is printed too: on a shared machine it moves less
than wall-clock throughput.

    python benchmarks/bench_loader.py                          # 200k x 1 KiB text
    python benchmarks/bench_loader.py --rows 1000000 --token-rows 200000

Peers are optional: they load from --peer-python (a venv made as /work/shared/PEERS.md says;
`import streaming` needs a stand-in torchvision module, provided here). Missing peers are
skipped. Loaders take turns in each of --repeats rounds; figures are medians over the rounds,
and ours/this is the median of the per-round ratios (paired, so machine drift cancels).
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
    """Write the dataset once per (kind, rows): ours (manifest dir), LitData, MDS.

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

    root = data / (f"text-{rows}" if kind == "text" else f"tokens-v2-{size}-{rows}")
    ours = root / "ours"
    if not is_dataset(ours):
        ours.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        schema = _schema(kind, size)
        options = (
            WriteOptions(row_group_rows=8192)
            if kind == "text"
            else block_write_options(WriteOptions(), size)
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
    for peer in peers:
        target = root / peer
        if not (target / ".done").exists():
            code = [py, __file__, "--write-peer", peer, "--from", str(ours), "--to", str(target)]
            proc = subprocess.run(code, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"  [{peer}] could not write its format: {proc.stderr.strip()[-300:]}")
                continue
            (target / ".done").write_text("ok")
    return {"root": str(root), "kind": kind}


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


def write_peer(peer: str, src: str, dst: str) -> None:
    if peer == "streaming":
        _fake_torchvision()
        from streaming import MDSWriter

        first = next(_rows_of(src))
        kind = "str" if isinstance(first[1], str) else "ndarray:int32"
        with MDSWriter(out=dst, columns={"id": "int64", "value": kind}, size_limit="64mb") as w:
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


def _pyarrow_loader(ours: str, bs: int, workers: int):
    import pyarrow.parquet as pq
    import torch
    from torch.utils.data import DataLoader, IterableDataset, get_worker_info

    class Plain(IterableDataset):
        def __iter__(self):
            info = get_worker_info()
            w, n = (info.id, info.num_workers) if info else (0, 1)
            files = sorted(Path(ours).glob("part-*.parquet"))[w::n]
            for f in files:
                for b in pq.ParquetFile(f).iter_batches(batch_size=bs):
                    values = b.column(1)
                    if values.type == "string":
                        v: Any = values.to_pylist()
                    else:
                        flat = values.flatten().to_numpy()
                        v = torch.from_numpy(flat.reshape(b.num_rows, -1).copy())
                    yield {"id": torch.from_numpy(b.column(0).to_numpy().copy()), "value": v}

    return DataLoader(Plain(), batch_size=None, num_workers=workers)


def make_loader(name: str, root: str, bs: int, workers: int, shuffle: bool):
    if name == "dataprep":
        sys.path.insert(0, str(ROOT))
        from dataprep.loader import ShardDataset, make_dataloader

        ds = ShardDataset(f"{root}/ours", batch_size=bs, shuffle=shuffle, seed=1)
        return make_dataloader(ds, num_workers=workers)
    if name == "pyarrow":
        return _pyarrow_loader(f"{root}/ours", bs, workers)
    if name == "litdata":
        from litdata import StreamingDataLoader, StreamingDataset

        ds = StreamingDataset(f"{root}/litdata", shuffle=shuffle, seed=1)
        return StreamingDataLoader(ds, batch_size=bs, num_workers=workers)
    if name == "streaming":
        _fake_torchvision()
        from streaming import StreamingDataset
        from streaming.base.util import clean_stale_shared_memory
        from torch.utils.data import DataLoader

        clean_stale_shared_memory()
        ds = StreamingDataset(
            local=f"{root}/streaming", batch_size=bs, shuffle=shuffle, shuffle_seed=1
        )
        return DataLoader(ds, batch_size=bs, num_workers=workers)
    raise ValueError(name)


def _preimport(name: str) -> None:
    """Library imports (torch alone takes seconds) are not the loader's start-up time."""
    import torch  # noqa: F401

    if name == "dataprep":
        sys.path.insert(0, str(ROOT))
        import dataprep.loader  # noqa: F401
    elif name == "litdata":
        import litdata  # noqa: F401
    elif name == "streaming":
        _fake_torchvision()
        import streaming  # noqa: F401


def measure(name: str, root: str, bs: int, workers: int, shuffle: bool, cap: int) -> dict:
    _preimport(name)
    cpu0 = _cpu_seconds()
    t0 = time.perf_counter()
    loader = make_loader(name, root, bs, workers, shuffle)
    ids, n, t1 = [], 0, None
    for batch in loader:
        if t1 is None:
            t1 = time.perf_counter()
        ids.append(np.asarray(batch["id"]))
        n += len(batch["id"])
        if n >= cap:
            break
    t2 = time.perf_counter()
    del loader  # DataLoader workers exit and are reaped: their CPU time counts below
    first = len(ids[0]) if ids else 0
    out = {
        "cpu_us_per_sample": 1e6 * (_cpu_seconds() - cpu0) / max(n, 1),
        "samples": n,
        "samples_per_s": (n - first) / max(t2 - t1, 1e-9) if t1 else 0.0,
        "first_batch_s": (t1 or t2) - t0,
        "peak_rss_mb": _peak_rss_mb(),
    }
    if shuffle:
        out.update(_quality(ids, root))
    if name == "dataprep":
        out["resume_s"] = _resume_latency(root, bs, workers, shuffle)
    return out


def _resume_latency(root: str, bs: int, workers: int, shuffle: bool) -> float:
    """Fresh dataset + loader, load a mid-epoch state, time to the first batch."""
    from dataprep.loader import ShardDataset, make_dataloader

    t0 = time.perf_counter()
    ds = ShardDataset(f"{root}/ours", batch_size=bs, shuffle=shuffle, seed=1)
    dl = make_dataloader(ds, num_workers=workers)
    state = dl.state_dict()
    state["next_batch"] = ds.plan().num_batches // 2 + 1
    dl.load_state_dict(state)
    next(iter(dl))
    return time.perf_counter() - t0


def _quality(ids: list[np.ndarray], root: str) -> dict:
    order = np.concatenate(ids).astype(np.int64)
    ranks = np.empty(len(order))
    ranks[np.argsort(order)] = np.arange(len(order))
    spearman = float(np.corrcoef(np.arange(len(order)), ranks)[0, 1])
    # mean |new position - old position| / N: a uniform random permutation gives 1/3
    displacement = float(np.mean(np.abs(np.arange(len(order)) - ranks)) / len(order))
    # source row groups per batch (ours: 8192-row groups in dataset order)
    distinct = float(np.mean([len(np.unique(np.asarray(b) // 8192)) for b in ids]))
    return {"spearman": spearman, "displacement": displacement, "groups_per_batch": distinct}


def _cpu_seconds() -> float:
    """user + system CPU of this process and its reaped children (DataLoader workers)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _peak_rss_mb() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (me + kids) / 1024


# --- driver --------------------------------------------------------------------------------


def run_child(
    py: str, name: str, data: dict, args: argparse.Namespace, workers: int, shuffle: bool
) -> dict | None:
    cap = args.streaming_cap if name == "streaming" else 1 << 62
    cmd = [
        py,
        __file__,
        "--child",
        name,
        "--root",
        data["root"],
        "--batch-size",
        str(args.batch_size),
        "--workers",
        str(workers),
        "--cap",
        str(cap),
    ]
    if shuffle:
        cmd.append("--shuffle")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
    if proc.returncode != 0:
        print(f"  [{name}] failed: {proc.stderr.strip()[-400:]}")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def median_of(runs: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rows", type=int, default=200_000, help="text rows (~1 KiB each); 0: none")
    p.add_argument("--text-bytes", type=int, default=1024)
    p.add_argument("--token-rows", type=int, default=0, help="also run 2048-token int32 blocks")
    p.add_argument("--block", type=int, default=2048)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", default="0,2")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--peers", default="litdata,streaming")
    p.add_argument("--peer-python", default=PEER_PYTHON)
    p.add_argument(
        "--streaming-cap",
        type=int,
        default=20_000,
        help="samples measured for MDS (it runs ~4k samples/s)",
    )
    p.add_argument("--data", default="/tmp/dataprep-bench-loader")
    p.add_argument("--timeout", type=int, default=900)
    # internal
    p.add_argument("--child")
    p.add_argument("--root")
    p.add_argument("--cap", type=int)
    p.add_argument("--shuffle", action="store_true")
    p.add_argument("--write-peer")
    p.add_argument("--from", dest="src")
    p.add_argument("--to")
    args = p.parse_args()
    if args.write_peer:
        return write_peer(args.write_peer, args.src, args.to)
    if args.child:
        print(
            json.dumps(
                measure(
                    args.child,
                    args.root,
                    args.batch_size,
                    int(args.workers),
                    args.shuffle,
                    args.cap,
                )
            )
        )
        return None

    py_peer = args.peer_python if Path(args.peer_python).exists() else sys.executable
    peers = [x for x in args.peers.split(",") if x and _peer_ok(py_peer, x)]
    sets = [("text", args.rows, args.text_bytes)] if args.rows else []
    if args.token_rows:
        sets.append(("tokens", args.token_rows, args.block))
    for kind, rows, size in sets:
        t = time.perf_counter()
        data = prepare(Path(args.data), kind, rows, size, peers, py_peer)
        print(
            f"\n== {kind}: {rows} rows, batch {args.batch_size} "
            f"(data ready in {time.perf_counter() - t:.0f}s; peers: {peers or 'none'})"
        )
        print(
            "   on disk: "
            + _sizes(Path(data["root"]), rows * (size if kind == "text" else 4 * size))
        )
        for workers in [int(w) for w in args.workers.split(",")]:
            names = [
                n
                for n in ["dataprep", "pyarrow", *peers]
                if n in ("dataprep", "pyarrow") or (Path(data["root"]) / n / ".done").exists()
            ]
            rounds: list[dict[str, dict]] = []
            for _ in range(args.repeats):  # loaders take turns, so drift hits all of them alike
                done = {}
                for name in names:
                    py = sys.executable if name in ("dataprep", "pyarrow") else py_peer
                    result = run_child(py, name, data, args, workers, False)
                    if result:
                        done[name] = result
                rounds.append(done)
            _print_table(kind, workers, rounds)
        _shuffle_report(data, args, peers, py_peer)


def _print_table(kind: str, workers: int, rounds: list[dict[str, dict]]) -> None:
    """Medians over rounds; ours/this is the median of each round's own ratio (paired)."""
    print(f"\n-- {kind}, num_workers={workers} (medians of {len(rounds)} rounds)")
    print(
        f"{'loader':<10} {'samples/s':>11} {'first batch s':>14} {'peak RSS MB':>12} "
        f"{'resume s':>9} {'CPU us/sample':>14} {'ours/this':>10} {'CPU this/ours':>14}"
    )
    names = list(dict.fromkeys(n for r in rounds for n in r))
    for name in names:
        runs = [r[name] for r in rounds if name in r]
        m = median_of(runs)
        pairs = [r for r in rounds if name in r and "dataprep" in r]
        speed = [r["dataprep"]["samples_per_s"] / r[name]["samples_per_s"] for r in pairs]
        cpu = [r[name]["cpu_us_per_sample"] / r["dataprep"]["cpu_us_per_sample"] for r in pairs]
        ratio = f"{statistics.median(speed):.2f}x" if speed else "-"
        cpu_ratio = f"{statistics.median(cpu):.2f}x" if cpu else "-"
        resume = f"{m['resume_s']:.3f}" if "resume_s" in m else "-"
        print(
            f"{name:<10} {m['samples_per_s']:>11,.0f} {m['first_batch_s']:>14.3f} "
            f"{m['peak_rss_mb']:>12.0f} {resume:>9} {m['cpu_us_per_sample']:>14.1f} "
            f"{ratio:>10} {cpu_ratio:>14}"
        )
        if name != "dataprep" and speed:
            print(f"{'':<10} per-round ours/this: {', '.join(f'{x:.2f}' for x in speed)}")


def _shuffle_report(data: dict, args: argparse.Namespace, peers: list[str], py: str) -> None:
    print(
        "\n-- shuffle quality and cost (num_workers=0; spearman(position, original index): "
        "0 = well mixed, 1 = unshuffled)"
    )
    print(
        f"{'loader':<10} {'spearman':>9} {'displacement':>13} {'row groups/batch':>17} "
        f"{'samples/s':>11} {'vs unshuffled':>14}"
    )
    for name in ["dataprep", *[x for x in peers if x != "streaming"]]:
        pyx = sys.executable if name == "dataprep" else py
        shuf = [run_child(pyx, name, data, args, 0, True) for _ in range(args.repeats)]
        flat = [run_child(pyx, name, data, args, 0, False) for _ in range(args.repeats)]
        shuf, flat = [r for r in shuf if r], [r for r in flat if r]
        if not shuf or not flat:
            continue
        s, f = median_of(shuf), median_of(flat)
        print(
            f"{name:<10} {s['spearman']:>9.4f} {s['displacement']:>13.3f} "
            f"{s['groups_per_batch']:>17.1f} "
            f"{s['samples_per_s']:>11,.0f} {s['samples_per_s'] / f['samples_per_s']:>13.2f}x"
        )


def _sizes(root: Path, raw: int) -> str:
    """Bytes each format stores, and their ratio to the raw values (text bytes / 4 per id)."""
    out = []
    for name in ["ours", "litdata", "streaming"]:
        files = (
            [f for f in (root / name).rglob("*") if f.is_file()] if (root / name).exists() else []
        )
        if files:
            total = sum(f.stat().st_size for f in files)
            out.append(f"{name} {total / 1e6:,.0f} MB ({total / raw:.2f}x raw)")
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


if __name__ == "__main__":
    main()
