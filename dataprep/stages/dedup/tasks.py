"""The dedup stage's task functions (module-level, picklable): sign, bucket, index, write.

sign   (map, per shard)  normalise, fingerprint, MinHash, band keys -> sorted per-shard files
bucket (per band)        merge the band's sorted runs by key range -> candidate edge file
index  (per band)        kept rows' keys (plus an old index's) -> a new saved index
write  (map, per shard)  in writing.py
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataprep import arrow_np
from dataprep.arrays import load_array
from dataprep.errors import DataprepError
from dataprep.progress import tick
from dataprep.stage import Quarantine, Task, TaskResult
from dataprep.storage import StoragePath

from . import buckets, minhash, scratch
from .buckets import EXACT, Run, shard_dir
from .config import DedupConfig
from .exact import fingerprints
from .index import band_name, open_index
from .normalise import token_steps
from .payloads import (
    BucketJob,
    IndexJob,
    IndexSignaturesJob,
    SignJob,
    TaskStats,
)

BATCH_ROWS = 2048  # keeps numpy temporaries under glibc's mmap threshold
# What every worker's first task would load itself (~0.04 s CPU each): the shard reader's
# dataprep.crypto and the mapped kernel; a forked fork server does it once (executors.forkserver).
WORKER_PRELOAD = ("dataprep.crypto", "dataprep.stages.dedup.tasks:warm_kernel")


def warm_kernel() -> None:
    """Map this machine's build of the kernel; never build one (whether a build repays itself
    is the driver's choice, `minhash.kernel_pays`)."""
    from dataprep import native

    from . import kernel

    if os.environ.get("DATAPREP_DEDUP_KERNEL") == "numpy" or not kernel.is_built():
        return  # is_built: some CPU's build (a file name); this CPU's is checked below
    try:
        ready = native.read(kernel.cache_path()) is not None
    except (native.NativeError, OSError):
        return
    if ready:
        minhash.kernel_module()


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


def _stats(started: float) -> TaskStats:
    return TaskStats(peak_rss_mb(), time.perf_counter() - started)


def _batches(
    task: Task[DedupConfig, object], columns: list[str], rows: int = BATCH_ROWS
) -> Iterator[pa.RecordBatch]:
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


@dataclass
class _Signed:
    """What `sign_task` gathers batch by batch before sorting and saving it."""

    sig_out: scratch.RowWriter | None = None  # signatures, streamed to sig.npy
    keys: list[np.ndarray] = field(default_factory=list)  # band keys of usable rows
    key_rows: list[np.ndarray] = field(default_factory=list)
    fps: list[np.ndarray] = field(default_factory=list)  # exact fingerprints of valid rows
    fp_rows: list[np.ndarray] = field(default_factory=list)
    scores: list[np.ndarray] = field(default_factory=list)
    seen: int = 0


def sign_task(task: Task[DedupConfig, SignJob]) -> TaskResult[TaskStats]:
    """One shard -> its sorted band runs, exact fingerprints, signatures and keep scores."""
    started = time.perf_counter()
    config = task.config
    folder = shard_dir(task.work_dir, task.index)
    folder.mkdir()
    columns = {config.text_column}
    if config.uses_exact:
        columns.update(config.fingerprint_columns)
    if config.keep_column:
        columns.add(config.keep_column)
    quarantine = task.quarantine()
    signed = _Signed()
    if config.uses_minhash:
        signed.sig_out = scratch.RowWriter(
            folder / "sig.npy", np.dtype(np.uint32), config.num_perm, task.payload.docs
        )
    try:
        for batch in _batches(task, sorted(columns)):
            _sign_batch(task, batch, signed, quarantine)
            tick(rows=batch.num_rows)
    except BaseException:
        if signed.sig_out is not None:
            signed.sig_out.abort()
        raise
    finally:
        quarantine.close()
    sums: dict[str, scratch.Sum] = {}
    if config.uses_minhash:
        sums.update(_save_bands(folder, signed, task.payload.bands))
    if config.uses_exact:
        sums.update(_save_exact(folder, signed))
    if signed.scores:
        sums["score.npy"] = scratch.save(folder / "score.npy", np.concatenate(signed.scores))
    scratch.seal(sign_seal(task.work_dir, task.index), sums)
    counts_out = {"rows": signed.seen, "quarantined": quarantine.count}
    return TaskResult(counts=counts_out, payload=_stats(started))


def _sign_batch(
    task: Task[DedupConfig, SignJob], batch: pa.RecordBatch, signed: _Signed, q: Quarantine
) -> None:
    """Signatures and band keys (MinHash), fingerprints (exact) and scores of one batch;
    rows without text go to quarantine."""
    config, seen, n = task.config, signed.seen, batch.num_rows
    text = batch.column(config.text_column)
    valid = arrow_np.valid(text)
    for row in np.flatnonzero(~valid):
        name = StoragePath(task.inputs[0]).name
        q.add(name, seen + int(row), f"missing or null {config.text_column!r}")
    local = np.arange(seen, seen + n, dtype=np.int64)
    if config.uses_minhash:
        steps = token_steps(config.normalize)
        sig, counts = minhash.sign_text(
            text, steps, config.signature, config.num_perm, config.seed, config.ngram,
            config.char_ngram, compiled=task.payload.compiled,
        )  # fmt: skip
        counts = np.where(valid, counts, 0)
        sig[counts == 0] = minhash.SENTINEL
        assert signed.sig_out is not None
        signed.sig_out.write(sig)
        usable = counts > 0
        bands, rows = task.payload.bands, task.payload.rows
        keys = minhash.band_keys(sig, bands, rows, config.seed)  # per row: the same keys
        key_rows = local
        if not usable.all():
            keys, key_rows = keys[:, usable], local[usable]
        signed.keys.append(keys)
        signed.key_rows.append(key_rows)
    if config.uses_exact and valid.any():
        picked = batch.filter(arrow_np.mask(valid))
        cols = [picked.column(c) for c in config.fingerprint_columns]
        try:
            signed.fps.append(fingerprints(cols, config.normalize, task.payload.compiled))
        except pa.ArrowInvalid as exc:  # a binary column's bytes are cast to text to hash
            if "utf8" not in str(exc).lower():
                raise
            raise DataprepError(
                f"shard {StoragePath(task.inputs[0]).name}: --columns "
                f"{','.join(config.fingerprint_columns)} holds bytes that are not UTF-8 text; "
                "exact dedup hashes each cell as text: leave binary columns out of --columns"
            ) from None
        signed.fp_rows.append(local[valid])
    if config.keep_column or config.keep_kind == "longest":
        signed.scores.append(_scores(batch, config))
    signed.seen += n


def sign_seal(work: str, index: int) -> StoragePath:
    """The checksum list of a sign task's scratch files (`scratch.seal`)."""
    return shard_dir(work, index) / "sign.sums"


def _save_bands(folder: StoragePath, signed: _Signed, bands: int) -> dict[str, scratch.Sum]:
    """Signatures, and per band the keys sorted (with their rows and every FENCE-th key)."""
    assert signed.sig_out is not None
    sums = {"sig.npy": signed.sig_out.close()}
    keys = np.concatenate(signed.keys, axis=1) if signed.keys else np.zeros((bands, 0), np.uint64)
    local_rows = np.concatenate(signed.key_rows) if signed.key_rows else np.zeros(0, np.int64)
    rows = local_rows.astype(np.uint32)
    sorted_keys = np.empty(keys.shape, dtype=np.uint64)
    sorted_rows = np.empty(keys.shape, dtype=np.uint32)
    for band, band_keys in enumerate(keys):  # 1-d takes: ~2x cheaper than 2-d fancy indexing
        order = buckets.argsort_stable(band_keys)
        np.take(band_keys, order, out=sorted_keys[band])
        np.take(rows, order, out=sorted_rows[band])
    sums["bands.npy"] = scratch.save(folder / "bands.npy", sorted_keys)
    sums["bandrows.npy"] = scratch.save(folder / "bandrows.npy", sorted_rows)
    sums["fences.npy"] = scratch.save(folder / "fences.npy", sorted_keys[:, :: buckets.FENCE])
    return sums


def _save_exact(folder: StoragePath, signed: _Signed) -> dict[str, scratch.Sum]:
    """Exact-fingerprint keys sorted, with their rows and every FENCE-th key."""
    fp = np.concatenate(signed.fps) if signed.fps else np.zeros((0, 2), np.uint64)
    fp_keys = buckets.exact_keys(fp)
    fp_local = np.concatenate(signed.fp_rows) if signed.fp_rows else np.zeros(0, np.int64)
    order = np.argsort(fp_keys, kind="stable")
    return {
        "exact.npy": scratch.save(folder / "exact.npy", fp_keys[order]),
        "exactrows.npy": scratch.save(folder / "exactrows.npy", fp_local[order].astype(np.uint32)),
        "exactfences.npy": scratch.save(
            folder / "exactfences.npy", fp_keys[order][:: buckets.FENCE]
        ),
    }


def bucket_task(task: Task[DedupConfig, BucketJob]) -> TaskResult[TaskStats]:
    """One key range of one band (or of the exact pass): equal keys across shards -> candidate
    edges (verified later, see `clusters.VerifiedEdges`); hits in an old index. A band too big
    for one task is split into key ranges."""
    started = time.perf_counter()
    config, job = task.config, task.payload
    band, part, parts, offsets = job.band, job.part, job.parts, job.offsets
    total = offsets[-1]
    shards = list(range(len(offsets) - 1))
    dtype = buckets.EXACT_DTYPE if band == EXACT else np.dtype(np.uint64)
    within = buckets.key_ranges(parts, dtype)[part]
    runs = buckets.shard_runs(task.work_dir, shards, offsets, band, within if parts > 1 else None)
    chain = config.verify and band != EXACT  # checked in the cluster phase, once a pair
    saved = open_index(job.against, check=False) if job.against else None
    old_keys = saved.keys(band) if saved is not None else None
    old_ids = saved.ids(band) if saved is not None else None
    edges_a, edges_b = [], []
    counts = {"candidate_pairs": 0, "groups": 0, "grouped_rows": 0, "index_hits": 0}
    for keys, ids in buckets.merged_ranges(runs, config.merge_rows, within):
        a, b, sizes = buckets.group_edges(keys, ids, chain=chain)
        counts["groups"] += len(sizes)
        counts["grouped_rows"] += int(sizes.sum())
        if old_keys is not None and old_ids is not None:
            hit, pos = buckets.lookup(old_keys, keys)
            a = np.concatenate([a, ids[hit]])
            b = np.concatenate([b, total + np.asarray(old_ids[pos], dtype=np.int64)])
            counts["index_hits"] += len(hit)
        counts["candidate_pairs"] += len(a)
        edges_a.append(a)
        edges_b.append(b)
        tick(rows=len(keys))
    edges = np.stack(
        [
            np.concatenate(edges_a) if edges_a else np.zeros(0, np.int64),
            np.concatenate(edges_b) if edges_b else np.zeros(0, np.int64),
        ]
    )
    path = edges_file(task.work, band, part)
    scratch.seal(edges_seal(task.work, band, part), {path.name: scratch.save(path, edges)})
    return TaskResult(counts=counts, payload=_stats(started))


def edges_file(work: StoragePath, band: int, part: int) -> StoragePath:
    return work / "scratch" / "edges" / f"{band_name(band)}-{part:05d}.npy"


def edges_seal(work: StoragePath, band: int, part: int) -> StoragePath:
    """The checksum list of a bucket task's edge file (`scratch.seal`)."""
    return work / "scratch" / "edges" / f"{band_name(band)}-{part:05d}.sums"


def index_task(task: Task[DedupConfig, IndexJob]) -> TaskResult[TaskStats]:
    """One band of the new saved index: kept rows' keys plus the old index's, sorted."""
    started = time.perf_counter()
    config, job = task.config, task.payload
    band, offsets, kept_before = job.band, job.offsets, job.kept_before
    staging = StoragePath(job.staging)
    name = band_name(band)
    with tempfile.TemporaryDirectory(prefix=f"dataprep-{name}-") as private:
        tmp = Path(private)  # task-private: renumbered runs, memory-mapped for the merge
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
        if job.against:
            saved = open_index(job.against, check=False)
            runs.append(Run(saved.keys(band), saved.ids(band)))
        with (
            scratch.SummedOutput(staging / f"{name}.keys") as fk,
            scratch.SummedOutput(staging / f"{name}.ids") as fi,
        ):
            for keys, ids in buckets.merged_ranges(runs, config.merge_rows):
                fk.write(keys.tobytes())
                fi.write(ids.astype(np.int64).tobytes())
    scratch.seal(index_seal(staging, band), {f"{name}.keys": fk.sum, f"{name}.ids": fi.sum})
    return TaskResult(payload=_stats(started))


def index_seal(staging: StoragePath, band: int) -> StoragePath:
    """The checksum list of an index task's files (`scratch.seal`; `index.finish` skips it)."""
    return staging / f"{band_name(band)}.sums"


def index_signature_seal(staging: StoragePath) -> StoragePath:
    return staging / "sig.sums"


def index_signature_task(task: Task[DedupConfig, IndexSignaturesJob]) -> TaskResult[TaskStats]:
    """The saved index's signatures: the old index's rows, then this run's kept rows."""
    started = time.perf_counter()
    job = task.payload
    with scratch.SummedOutput(StoragePath(job.staging) / "sig.u32") as out:
        if job.against:
            old = open_index(job.against, check=False).signatures()
            if old is not None:
                for start in range(0, len(old), 65536):
                    out.write(np.asarray(old[start : start + 65536]).tobytes())
        for index in range(job.shards):
            folder = shard_dir(task.work_dir, index)
            keep = load_array(folder / "keep.npy", mmap=False)
            sig = load_array(folder / "sig.npy")
            out.write(np.asarray(sig[keep]).tobytes())
    scratch.seal(index_signature_seal(StoragePath(job.staging)), {"sig.u32": out.sum})
    return TaskResult(payload=_stats(started))
