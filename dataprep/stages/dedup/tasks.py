"""The dedup stage's task functions (module-level, picklable): sign, bucket, index, write.

sign   (map, per shard)  normalise, fingerprint, MinHash, band keys -> sorted per-shard files
bucket (per band)        merge the band's sorted runs by key range -> candidate edge file
index  (per band)        kept rows' keys (plus an old index's) -> a new saved index
write  (map, per shard)  drop duplicates, or mark them with dup_cluster / dup_keep
"""

from __future__ import annotations

import resource
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataprep.arrays import load_array, save_array
from dataprep.dataset import ShardWriter
from dataprep.progress import tick
from dataprep.stage import Task, TaskResult
from dataprep.storage import StoragePath

from . import buckets, lsh, minhash
from .buckets import EXACT, Run, SignatureStore, shard_dir
from .config import DedupConfig
from .index import band_name, open_index
from .normalise import fingerprints, normalise, token_steps

BATCH_ROWS = 2048  # keeps numpy temporaries under glibc's mmap threshold


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, unlike ru_maxrss, is not inherited through fork."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _stats(started: float) -> dict[str, float]:
    return {"peak_rss_mb": peak_rss_mb(), "seconds": time.perf_counter() - started}


def _batches(task: Task, columns: list[str], rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    yield from task.read_options.iter_batches(task.inputs[0], columns, rows)


def _scores(batch: pa.RecordBatch, config: DedupConfig) -> np.ndarray:
    """Smaller is better; NaN (null) ranks last."""
    if config.keep_kind == "longest":
        lengths = pc.utf8_length(batch.column(config.text_column))
        return -pc.fill_null(pc.cast(lengths, pa.float64()), np.nan).to_numpy(zero_copy_only=False)
    column = batch.column(config.keep_column)
    if pa.types.is_temporal(column.type):
        column = pc.cast(column, pa.int64())
    values = pc.fill_null(pc.cast(column, pa.float64()), np.nan).to_numpy(zero_copy_only=False)
    return -values if config.keep_kind == "max" else values


def sign_task(task: Task) -> TaskResult:
    """One shard -> its sorted band runs, exact fingerprints, signatures and keep scores."""
    started = time.perf_counter()
    config: DedupConfig = task.config
    bands, rows = task.extra["bands"], task.extra["rows"]
    folder = shard_dir(task.work_dir, task.index)
    folder.mkdir()
    columns = {config.text_column}
    if config.uses_exact:
        columns.update(config.fingerprint_columns)
    if config.keep_column:
        columns.add(config.keep_column)
    quarantine = task.quarantine()
    keys_parts, rows_parts, sig_parts, fp_parts, fp_rows, score_parts = [], [], [], [], [], []
    seen = 0
    fast = config.signature == "fast"
    signer = minhash.fast_signatures if fast else minhash.datasketch_signatures
    try:
        for batch in _batches(task, sorted(columns)):
            n = batch.num_rows
            text = batch.column(config.text_column)
            valid = pc.is_valid(text).to_numpy(zero_copy_only=False)
            for row in np.flatnonzero(~valid):
                quarantine.add(
                    StoragePath(task.inputs[0]).name,
                    seen + int(row),
                    f"missing or null {config.text_column!r}",
                )
            local = np.arange(seen, seen + n, dtype=np.int64)
            if config.uses_minhash:
                norm = pc.fill_null(normalise(text, token_steps(config.normalize)), "")
                sig, counts = signer(
                    norm, config.num_perm, config.seed, config.ngram, config.char_ngram
                )
                counts = np.where(valid, counts, 0)
                sig[counts == 0] = minhash.SENTINEL
                sig_parts.append(sig)
                usable = counts > 0
                keys_parts.append(minhash.band_keys(sig[usable], bands, rows, config.seed))
                rows_parts.append(local[usable])
            if config.uses_exact and valid.any():
                picked = batch.filter(pa.array(valid))
                cols = [picked.column(c) for c in config.fingerprint_columns]
                fp_parts.append(fingerprints(cols, config.normalize))
                fp_rows.append(local[valid])
            if config.keep_column or config.keep_kind == "longest":
                score_parts.append(_scores(batch, config))
            seen += n
            tick(rows=n)
    finally:
        quarantine.close()
    if config.uses_minhash:
        sig_all = (
            np.concatenate(sig_parts) if sig_parts else np.zeros((0, config.num_perm), np.uint32)
        )
        save_array(folder / "sig.npy", sig_all)
        keys = np.concatenate(keys_parts, axis=1) if keys_parts else np.zeros((bands, 0), np.uint64)
        local_rows = np.concatenate(rows_parts) if rows_parts else np.zeros(0, np.int64)
        order = np.argsort(keys, axis=1, kind="stable")
        sorted_keys = np.take_along_axis(keys, order, axis=1)
        save_array(folder / "bands.npy", sorted_keys)
        save_array(folder / "bandrows.npy", local_rows[order].astype(np.uint32))
        save_array(folder / "fences.npy", np.ascontiguousarray(sorted_keys[:, :: buckets.FENCE]))
    if config.uses_exact:
        fp = np.concatenate(fp_parts) if fp_parts else np.zeros((0, 2), np.uint64)
        fp_keys = buckets.exact_keys(fp)
        fp_local = np.concatenate(fp_rows) if fp_rows else np.zeros(0, np.int64)
        order = np.argsort(fp_keys, kind="stable")
        save_array(folder / "exact.npy", fp_keys[order])
        save_array(folder / "exactrows.npy", fp_local[order].astype(np.uint32))
        save_array(folder / "exactfences.npy", fp_keys[order][:: buckets.FENCE])
    if score_parts:
        save_array(folder / "score.npy", np.concatenate(score_parts))
    counts_out = {"rows": seen, "quarantined": quarantine.count}
    return TaskResult(counts=counts_out, extra=_stats(started))


def bucket_task(task: Task) -> TaskResult:
    """One key range of one band (or of the exact pass): equal keys across shards -> edges;
    hits in an old index. A band too big for one task is split into key ranges."""
    started = time.perf_counter()
    config: DedupConfig = task.config
    band: int = task.extra["band"]
    part, parts = task.extra["part"]
    offsets: list[int] = task.extra["offsets"]
    total: int = offsets[-1]
    shards = list(range(len(offsets) - 1))
    dtype = buckets.EXACT_DTYPE if band == EXACT else np.dtype(np.uint64)
    within = buckets.key_ranges(parts, dtype)[part]
    runs = buckets.shard_runs(task.work_dir, shards, offsets, band, within if parts > 1 else None)
    verify = config.verify and band != EXACT
    store = SignatureStore(task.work_dir, offsets) if verify else None
    saved = open_index(task.extra["against"], check=False) if task.extra["against"] else None
    old_keys = saved.keys(band) if saved is not None else None
    old_ids = saved.ids(band) if saved is not None else None
    if verify and saved is not None:
        store = SignatureStore(task.work_dir, offsets, saved.signatures())
    edges_a, edges_b = [], []
    counts = {
        "candidate_pairs": 0,
        "rejected_pairs": 0,
        "groups": 0,
        "grouped_rows": 0,
        "index_hits": 0,
    }
    for keys, ids in buckets.merged_ranges(runs, config.merge_rows, within):
        a, b, sizes = buckets.group_edges(keys, ids, chain=verify)
        counts["groups"] += len(sizes)
        counts["grouped_rows"] += int(sizes.sum())
        if old_keys is not None and old_ids is not None:
            hit, pos = buckets.lookup(old_keys, keys)
            a = np.concatenate([a, ids[hit]])
            b = np.concatenate([b, total + np.asarray(old_ids[pos], dtype=np.int64)])
            counts["index_hits"] += len(hit)
        counts["candidate_pairs"] += len(a)
        if verify and store is not None and len(a):
            floor = lsh.verify_floor(config.threshold, config.recall, config.num_perm)
            good = store.similar(a, b, floor)
            counts["rejected_pairs"] += int((~good).sum())
            a, b = a[good], b[good]
        edges_a.append(a)
        edges_b.append(b)
        tick(rows=len(keys))
    edges = np.stack(
        [
            np.concatenate(edges_a) if edges_a else np.zeros(0, np.int64),
            np.concatenate(edges_b) if edges_b else np.zeros(0, np.int64),
        ]
    )
    save_array(edges_file(task.work, band, part), edges)
    return TaskResult(counts=counts, extra=_stats(started))


def edges_file(work: StoragePath, band: int, part: int) -> StoragePath:
    return work / "scratch" / "edges" / f"{band_name(band)}-{part:05d}.npy"


def index_task(task: Task) -> TaskResult:
    """One band of the new saved index: kept rows' keys plus the old index's, sorted."""
    started = time.perf_counter()
    config: DedupConfig = task.config
    band: int = task.extra["band"]
    offsets: list[int] = task.extra["offsets"]
    kept_before: list[int] = task.extra["kept_before"]  # index ids of each shard's first kept
    staging = StoragePath(task.extra["staging"])
    name = band_name(band)
    with tempfile.TemporaryDirectory(prefix=f"dataprep-{name}-") as scratch:
        tmp = Path(scratch)  # task-private: renumbered runs, memory-mapped for the merge
        runs = []
        for index, run in enumerate(
            buckets.shard_runs(task.work_dir, range(len(offsets) - 1), [0] * len(offsets), band)
        ):
            keep = load_array(shard_dir(task.work_dir, index) / "keep.npy", mmap=False)
            new_id = np.where(keep, kept_before[index] + np.cumsum(keep) - 1, -1)
            ids = new_id[np.asarray(run.ids, dtype=np.int64)]
            mask = ids >= 0
            np.save(tmp / f"k{index}.npy", np.asarray(run.keys)[mask])
            np.save(tmp / f"i{index}.npy", ids[mask])
            runs.append(
                Run(
                    np.load(tmp / f"k{index}.npy", mmap_mode="r"),
                    np.load(tmp / f"i{index}.npy", mmap_mode="r"),
                )
            )
        if task.extra["against"]:
            saved = open_index(task.extra["against"], check=False)
            runs.append(Run(saved.keys(band), saved.ids(band)))
        with (staging / f"{name}.keys").open_output() as fk:
            with (staging / f"{name}.ids").open_output() as fi:
                for keys, ids in buckets.merged_ranges(runs, config.merge_rows):
                    fk.write(keys.tobytes())
                    fi.write(ids.astype(np.int64).tobytes())
    return TaskResult(extra=_stats(started))


def index_signature_task(task: Task) -> TaskResult:
    """The saved index's signatures: the old index's rows, then this run's kept rows."""
    started = time.perf_counter()
    staging = StoragePath(task.extra["staging"])
    shards = task.extra["shards"]
    with (staging / "sig.u32").open_output() as out:
        if task.extra["against"]:
            old = open_index(task.extra["against"], check=False).signatures()
            if old is not None:
                for start in range(0, len(old), 65536):
                    out.write(np.asarray(old[start : start + 65536]).tobytes())
        for index in range(shards):
            folder = shard_dir(task.work_dir, index)
            keep = load_array(folder / "keep.npy", mmap=False)
            sig = load_array(folder / "sig.npy")
            out.write(np.asarray(sig[keep]).tobytes())
    return TaskResult(extra=_stats(started))


def _count_sources(
    totals: dict[str, list[int]], source: pa.Array, valid: np.ndarray, removed: np.ndarray
) -> None:
    table = pa.table(
        {
            "s": pc.cast(source, pa.string()),
            "v": valid.astype(np.int64),
            "r": removed.astype(np.int64),
        }
    )
    grouped = table.group_by("s").aggregate([("v", "sum"), ("r", "sum")]).to_pydict()
    for name, rows, gone in zip(grouped["s"], grouped["v_sum"], grouped["r_sum"], strict=True):
        entry = totals.setdefault(str(name), [0, 0])
        entry[0] += rows
        entry[1] += gone


def write_task(task: Task) -> TaskResult:
    """Drop (or mark) one shard's duplicates; also count per source and fetch example rows."""
    started = time.perf_counter()
    config: DedupConfig = task.config
    folder = shard_dir(task.work_dir, task.index)
    keep = load_array(folder / "keep.npy", mmap=False)
    cluster = load_array(folder / "cluster.npy", mmap=False)
    wanted: dict[int, int] = task.extra["examples"]  # local row -> global id
    schema: pa.Schema = task.extra["schema"]
    has_source = "source" in schema.names
    per_source: dict[str, list[int]] = {}
    examples: dict[int, str] = {}
    id_name = task.extra.get("id_column")  # examples are cited by this column's values
    example_ids: dict[int, str] = {}
    target = task.out / f"part-{task.index:05d}.parquet"
    seen = kept_rows = 0
    with ShardWriter(target, schema, task.write_options) as writer:
        # whole row groups in, so each output row group is full-sized (not one per batch)
        row_group = task.write_options.row_group_rows
        for batch in _batches(task, task.extra["input_columns"], row_group):
            n = batch.num_rows
            valid = pc.is_valid(batch.column(config.text_column)).to_numpy(zero_copy_only=False)
            k = keep[seen : seen + n]
            c = cluster[seen : seen + n]
            for row in [r for r in wanted if seen <= r < seen + n]:
                examples[wanted[row]] = batch.column(config.text_column)[row - seen].as_py()
                if id_name:
                    example_ids[wanted[row]] = str(batch.column(id_name)[row - seen].as_py())
            if has_source:
                _count_sources(per_source, batch.column("source"), valid, valid & ~k)
            if config.mark_only:
                table = (
                    pa.Table.from_batches([batch])
                    .append_column("dup_cluster", pa.array(c, pa.int64(), mask=c < 0))
                    .append_column("dup_keep", pa.array(k))
                )
                table = table.filter(pa.array(valid))
            else:
                table = pa.Table.from_batches([batch]).filter(pa.array(valid & k))
            writer.write(table.select(schema.names).cast(schema))
            kept_rows += table.num_rows
            seen += n
            tick(rows=n)
        if not kept_rows:
            writer.abort()  # every row was a duplicate: no empty shard
    shards = [writer.entry] if kept_rows else []
    extra = {**_stats(started), "per_source": per_source, "examples": examples}
    extra["example_ids"] = example_ids
    return TaskResult(shards=shards, counts={"rows_written": kept_rows}, schema=schema, extra=extra)
