"""dedup: exact fingerprints and MinHash-LSH near-duplicates, map -> plan -> map.

1. sign (map)    per shard: fingerprints, signatures, sorted band runs under OUT/.dataprep
2. bucket (map)  per band: merge the shards' runs by key range -> candidate edges
3. cluster       (plan) union-find over the edges' endpoints, keep policy -> per-shard files
4. index (map)   optional: a saved band index of kept rows (--index-out)
5. write (map)   per shard: drop duplicates, or mark them (--mark-only); a shard that keeps
                 every row is copied byte for byte when that equals a rewrite (passthrough.py)

Only the union-find arrays grow with the data: a few int64 per row that has a candidate
partner (not per row of the corpus); everything else is bounded by a shard or a merge range.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from dataprep.arrays import load_array
from dataprep.stage import Stage, StageContext, StageResult, Task, TaskResult, sum_counts
from dataprep.storage import StoragePath
from dataprep.task import record_path

from . import index as saved_index
from . import lsh, minhash, report, scratch, tasks, writing
from .buckets import EXACT, SignatureStore, shard_dir
from .clusters import Members, VerifiedEdges, cluster_members
from .config import DedupConfig, check_schema, output_schema
from .index import SavedIndex
from .passthrough import same_writer
from .payloads import (
    BucketJob,
    IndexJob,
    IndexSignaturesJob,
    SignJob,
    TaskStats,
    WriteJob,
    WriteStats,
)
from .report import describe


@dataclass
class Plan:
    """What the driver knows between phases: small per-shard facts, never rows."""

    config: DedupConfig
    paths: list[str]
    bands: int
    rows: int
    band_ids: list[int]
    offsets: list[int]
    old_rows: int = 0
    rejected: int = 0  # candidate pairs (counting each band's copy) that failed verification
    bucket_jobs: list[tuple[int, int, int]] = field(default_factory=list)  # (band, part, parts)

    @property
    def total(self) -> int:
        return self.offsets[-1]


class DedupStage(Stage[DedupConfig]):
    """The report (OUT/.report.json) lists rows in/out, clusters, the LSH S-curve, example
    pairs with estimated and true Jaccard, and time and memory per phase."""

    name = "dedup"
    help = "Remove exact and near-duplicate rows (xxh3 fingerprints, MinHash-LSH)."

    def details(self, report: dict[str, Any]) -> list[str]:
        """Removed rows, then the LSH S-curve, per-source rates, examples and phases."""
        return describe(report)

    def column_params(self, config: DedupConfig) -> dict[str, list[str]]:
        named = {"text_column": [config.text_column]}
        if config.uses_exact and config.columns:
            named["columns"] = list(config.columns)
        if config.keep_column:
            named["keep"] = [config.keep_column]
        return named

    def output_schema(self, config: DedupConfig, schema: Any, inputs: Any = ()) -> Any:
        return None if schema is None else output_schema(schema, config.mark_only)

    def run(self, ctx: StageContext[DedupConfig]) -> StageResult:
        config, source = ctx.config, ctx.require_input()
        check_schema(config, source.schema)
        plan, against = _make_plan(config, ctx.input_shard_paths())
        phases: dict[str, dict[str, float]] = {}
        out_schema = output_schema(source.schema, config.mark_only)

        with _phase(phases, "sign") as record:
            signed = record(self._sign(ctx, plan))
        plan.offsets = [0, *np.cumsum([r.counts["rows"] for r in signed]).tolist()]
        with _phase(phases, "bucket") as record:
            bucketed = record(self._bucket(ctx, plan))
        with _phase(phases, "cluster"):
            members = self._cluster(ctx, plan)
        if config.index_out:
            with _phase(phases, "index") as record:
                record(self._write_index(ctx, plan, members))
        pairs = report.example_pairs(members.roots, members.keep, config.examples)
        pairs = [(int(members.ids[a]), int(members.ids[b])) for a, b in pairs]
        copies = _copyable(ctx, plan, members, signed)
        with _phase(phases, "write") as record:
            written = record(self._write(ctx, plan, out_schema, pairs, copies))

        quarantined = sum_counts(signed).get("quarantined", 0)
        rep = report.build(config, plan.total, quarantined, members.roots, members.keep)
        rep.update(_bucket_report(plan, bucketed))
        if against is not None:
            rep["against"] = {
                "index": str(config.against),
                "index_rows": against.rows,
                "rows_matching_index": report.count_touching(members.roots, members.new),
            }
        rep.update(report.from_written(config, ctx.work, written, pairs, plan.offsets))
        if ctx.write_options.encryption is not None:  # report.json is plaintext: no row text
            for entry in rep.get("examples", []):
                entry.pop("kept_text", None)
                entry.pop("removed_text", None)
        rep["phases"] = phases
        if config.index_out:
            rep["index_out"] = str(config.index_out)
        shards = [s for r in written for s in r.shards]
        return StageResult(shards, out_schema, rep)

    def _sign(self, ctx: StageContext[DedupConfig], plan: Plan) -> list[TaskResult[TaskStats]]:
        shards = ctx.require_input().shards
        workers = max(1, min(ctx.executor.workers, len(shards)))
        per_worker = sum(s.bytes for s in shards) / workers
        ratio = _text_ratio(ctx, plan) if shards else 1.0
        job = SignJob(plan.bands, plan.rows, minhash.kernel_pays(per_worker * ratio))
        jobs = [
            ctx.task("sign", i, [p], replace(job, docs=shard.rows))
            for i, (p, shard) in enumerate(zip(plan.paths, shards, strict=True))
        ]
        _distrust_unsealed(ctx, jobs, lambda t: tasks.sign_seal(t.work_dir, t.index))
        return ctx.map(tasks.sign_task, jobs)

    def _bucket(self, ctx: StageContext[DedupConfig], plan: Plan) -> list[TaskResult[TaskStats]]:
        """Tasks per band (and for exact fingerprints), each band cut into key ranges of about
        `band_part_rows` keys: parallel by band and by range, so a big corpus fills a cluster.
        The cut depends only on the data and config, so a resumed run finds the same tasks."""
        parts = max(1, -(-plan.total // plan.config.band_part_rows))
        plan.bucket_jobs = [(b, p, parts) for b in plan.band_ids for p in range(parts)]
        against = plan.config.against
        jobs = [
            ctx.task("bucket", i, [], BucketJob(b, p, n, plan.offsets, against))
            for i, (b, p, n) in enumerate(plan.bucket_jobs)
        ]
        _distrust_unsealed(
            ctx, jobs, lambda t: tasks.edges_seal(t.work, t.payload.band, t.payload.part)
        )
        return ctx.map(tasks.bucket_task, jobs)

    def _cluster(self, ctx: StageContext[DedupConfig], plan: Plan) -> Members:
        """Union the edge files, apply the keep policy, and leave keep/cluster files per shard
        (a row in no cluster is kept, with cluster -1)."""
        files = [tasks.edges_file(ctx.work, b, p) for b, p, _ in plan.bucket_jobs]
        batches: list[np.ndarray | StoragePath] = list(files)
        if plan.config.verify and plan.config.uses_minhash:
            batches = _verified_batches(ctx, plan, files)

        def edge_batches() -> Iterator[np.ndarray]:
            return (b if isinstance(b, np.ndarray) else load_array(b, mmap=False) for b in batches)

        def scores(ids: np.ndarray) -> np.ndarray:
            return _member_scores(ctx.work, plan.offsets, ids)

        by_score = plan.config.keep != "first"
        members = cluster_members(edge_batches, plan.total, scores if by_score else None)
        offsets = plan.offsets
        for i in range(len(plan.paths)):
            lo, hi = offsets[i], offsets[i + 1]
            part = members.in_range(lo, hi)
            keep = np.ones(hi - lo, dtype=bool)
            cluster = np.full(hi - lo, -1, dtype=np.int64)
            local = members.ids[part] - lo
            keep[local] = members.keep[part]
            cluster[local] = members.ids[members.roots[part]]
            folder = shard_dir(ctx.work, i)
            scratch.save(folder / "keep.npy", keep)  # rewritten by every run: no seal
            scratch.save(folder / "cluster.npy", cluster)
        return members

    def _write_index(
        self, ctx: StageContext[DedupConfig], plan: Plan, members: Members
    ) -> list[TaskResult[TaskStats]]:
        config = plan.config
        staging = saved_index.staging_dir(ctx.work)
        offsets = plan.offsets
        kept_per_shard = [
            offsets[i + 1]
            - offsets[i]
            - int((~members.keep[members.in_range(*offsets[i : i + 2])]).sum())
            for i in range(len(offsets) - 1)
        ]
        kept_before = (plan.old_rows + np.concatenate([[0], np.cumsum(kept_per_shard)])).tolist()
        jobs = [
            ctx.task(
                "index", i, [], IndexJob(b, offsets, kept_before, str(staging), config.against)
            )
            for i, b in enumerate(plan.band_ids)
        ]
        _distrust_unsealed(ctx, jobs, lambda t: tasks.index_seal(staging, t.payload.band))
        results = ctx.map(tasks.index_task, jobs)
        if config.uses_minhash:
            job = IndexSignaturesJob(len(offsets) - 1, str(staging), config.against)
            sig_jobs = [ctx.task("index-sig", 0, [], job)]
            _distrust_unsealed(ctx, sig_jobs, lambda t: tasks.index_signature_seal(staging))
            results += ctx.map(tasks.index_signature_task, sig_jobs)
        params = saved_index.index_params(config, plan.bands, plan.rows)
        saved_index.finish(
            staging, str(config.index_out or ""), params, plan.old_rows + sum(kept_per_shard)
        )
        return results

    def _write(
        self,
        ctx: StageContext[DedupConfig],
        plan: Plan,
        schema: Any,
        pairs: list[tuple[int, int]],
        copies: list[bool],
    ) -> list[TaskResult[WriteStats]]:
        source = ctx.require_input()
        input_columns = [n for n in schema.names if n not in ("dup_cluster", "dup_keep")]
        plain = ctx.write_options.encryption is None  # report.json is plaintext: no ids
        ids = report.id_column(source.schema, source.lineage) if plain else None
        jobs = []
        for i, path in enumerate(plan.paths):
            lo, hi = plan.offsets[i], plan.offsets[i + 1]
            wanted = {g - lo: g for pair in pairs for g in pair if lo <= g < hi}
            entry = source.shards[i] if copies[i] else None
            job = WriteJob(schema, input_columns, wanted, ids, entry, source.shards[i].partition)
            jobs.append(ctx.task("write", i, [path], job))
        return ctx.map(writing.write_task, jobs)


def _distrust_unsealed(
    ctx: StageContext[DedupConfig], jobs: Sequence[Task[DedupConfig, Any]], seal: Any
) -> None:
    """Before a resumed phase: a finished task whose scratch files do not match their
    checksum list (`scratch.intact`: the machine went down before they reached the disk)
    loses its record, so `ctx.map` runs it again."""
    for job in jobs:
        record = record_path(ctx.work, job)
        if record.exists() and not scratch.intact(seal(job)):
            print(
                f"warning: the scratch files of task {job.phase}-{job.index:05d} are "
                "incomplete (the machine stopped before they were on disk?); the task reruns",
                file=sys.stderr,
            )
            record.unlink()


def _verified_batches(
    ctx: StageContext[DedupConfig], plan: Plan, files: list[StoragePath]
) -> list[np.ndarray | StoragePath]:
    """The band edges whose estimated Jaccard reaches the verify floor, each distinct pair
    checked and kept once (`VerifiedEdges`: held here, no bigger than its verdicts), and the
    exact-fingerprint edge files (not checked); `plan.rejected` counts every rejected copy."""
    config = plan.config
    saved = saved_index.open_index(config.against, check=False) if config.against else None
    sigs = saved.signatures() if saved is not None else None
    store = SignatureStore(ctx.work, plan.offsets, sigs)
    floor = lsh.verify_floor(config.threshold, config.recall, config.num_perm)
    verified = VerifiedEdges(lambda a, b: store.similar(a, b, floor), plan.total + plan.old_rows)
    out: list[np.ndarray | StoragePath] = []
    for (band, _, _), path in zip(plan.bucket_jobs, files, strict=True):
        out.append(path if band == EXACT else verified(load_array(path, mmap=False)))
    plan.rejected = verified.rejected
    return out


def _copyable(
    ctx: StageContext[DedupConfig], plan: Plan, members: Members, signed: list[TaskResult[Any]]
) -> list[bool]:
    """Per shard: whether it keeps every row and may be copied (`passthrough`): not marked,
    not encrypted, no quarantined row, its row groups listed, the input's writer the same."""
    source = ctx.require_input()
    plain = ctx.read_options.encryption is None and ctx.write_options.encryption is None
    if plan.config.mark_only or not plain or not same_writer(source.lineage, ctx.write_options):
        return [False] * len(plan.paths)
    out = []
    for i, result in enumerate(signed):
        part = members.in_range(plan.offsets[i], plan.offsets[i + 1])
        whole = bool(members.keep[part].all()) and not result.counts.get("quarantined", 0)
        out.append(whole and bool(source.shards[i].row_groups))
    return out


def _make_plan(config: DedupConfig, paths: list[str]) -> tuple[Plan, SavedIndex | None]:
    """The banding (from the config, else the index matched against, which it must suit),
    the bands to bucket, and the index matched against (None without --against)."""
    bands, rows = _resolve_bands(config)
    if config.index_out:
        saved_index.check_target(config.index_out)
    against = None
    if config.against:
        against = saved_index.open_index(config.against)
        if config.uses_minhash and config.bands is None:
            bands, rows = against.params["bands"], against.params["rows"]
        saved_index.check_compatible(against, saved_index.index_params(config, bands, rows))
    band_ids = ([EXACT] if config.uses_exact else []) + (
        list(range(bands)) if config.uses_minhash else []
    )
    plan = Plan(config, paths, bands, rows, band_ids, [0])
    plan.old_rows = against.rows if against is not None else 0
    return plan, against


def _bucket_report(plan: Plan, bucketed: list[TaskResult[TaskStats]]) -> dict[str, Any]:
    """Exact duplicates, the LSH section (MinHash) and the number of bucket tasks."""
    is_exact = [b == EXACT for b, _, _ in plan.bucket_jobs]
    exact = sum_counts([r for r, e in zip(bucketed, is_exact, strict=True) if e])
    out: dict[str, Any] = {
        "exact_duplicates": exact.get("grouped_rows", 0) - exact.get("groups", 0)
    }
    if plan.config.uses_minhash:
        lsh_counts = sum_counts([r for r, e in zip(bucketed, is_exact, strict=True) if not e])
        lsh_counts["rejected_pairs"] = plan.rejected
        out["lsh"] = report.lsh_section(plan.config, plan.bands, plan.rows, lsh_counts)
    out["bucket_tasks"] = len(plan.bucket_jobs)
    return out


@contextmanager
def _phase(phases: dict[str, dict[str, float]], name: str) -> Iterator[Any]:
    """Time a phase and record the peak RSS of the driver and of every task in it."""
    started = time.perf_counter()
    results: list[TaskResult[Any]] = []

    def record(rs: Sequence[TaskResult[Any]]) -> list[TaskResult[Any]]:
        results.extend(rs)
        return list(rs)

    yield record
    peaks = [r.payload.peak_rss_mb for r in results if isinstance(r.payload, TaskStats)]
    phases[name] = {
        "seconds": round(time.perf_counter() - started, 3),
        "peak_rss_mb": round(max([tasks.peak_rss_mb(), *peaks]), 1),
    }


def _text_ratio(ctx: StageContext[DedupConfig], plan: Plan) -> float:
    """The text column's uncompressed bytes per byte of Parquet file, from the first shard's
    footer (one small read); 1.0 (the file size) for encrypted input, whose footer the
    driver does not open, or an unreadable one: the sign tasks then report the error."""
    if ctx.read_options.encryption is not None:
        return 1.0
    first = ctx.require_input().shards[0]
    try:
        meta = ctx.read_options.open(plan.paths[0]).metadata
        text = sum(
            meta.row_group(g).column(c).total_uncompressed_size
            for g in range(meta.num_row_groups)
            for c in range(meta.num_columns)
            if meta.row_group(g).column(c).path_in_schema == plan.config.text_column
        )
    except Exception:  # noqa: BLE001 (an estimate: any failure means no estimate)
        return 1.0
    return max(1.0, text / max(first.bytes, 1))


def _resolve_bands(config: DedupConfig) -> tuple[int, int]:
    if config.bands is not None and config.rows is not None:
        return config.bands, config.rows
    return lsh.choose_bands(config.num_perm, config.threshold, config.recall)


def _member_scores(work: StoragePath, offsets: list[int], ids: np.ndarray) -> np.ndarray:
    """Keep-policy scores of the given (sorted, new) rows, one shard's score file at a time."""
    out = np.zeros(len(ids))
    bounds = np.searchsorted(ids, offsets)
    for i in range(len(offsets) - 1):
        lo, hi = int(bounds[i]), int(bounds[i + 1])
        if hi > lo:
            score = load_array(shard_dir(work, i) / "score.npy")
            out[lo:hi] = score[ids[lo:hi] - offsets[i]]
    return out
