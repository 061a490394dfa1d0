"""dedup: exact fingerprints and MinHash-LSH near-duplicates, map -> plan -> map.

1. sign (map)    per shard: fingerprints, signatures, sorted band runs under OUT/.dataprep
2. bucket (map)  per band: merge the shards' runs by key range -> candidate edges
3. plan          union-find over the edges, keep policy -> a keep/cluster file per shard
4. index (map)   optional: a saved band index of kept rows (--index-out)
5. write (map)   per shard: drop duplicates, or mark them (--mark-only)

Only the union-find arrays (one int64 per row) grow with the corpus; everything else is
bounded by a shard or a merge range.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from dataprep.errors import DataprepError
from dataprep.stage import Stage, StageContext, StageResult, TaskResult, sum_counts

from . import index as saved_index
from . import lsh, report, tasks
from .buckets import EXACT, SignatureStore, shard_dir
from .clusters import UnionFind, keepers
from .config import DedupConfig
from .minhash import estimate


class DedupStage(Stage):
    name = "dedup"
    Config = DedupConfig
    help = "Remove exact and near-duplicate rows (xxh3 fingerprints, MinHash-LSH)."

    def run(self, ctx: StageContext) -> StageResult:
        config = ctx.config
        assert isinstance(config, DedupConfig) and ctx.input is not None
        schema = ctx.input.schema
        _check_columns(config, schema)
        bands, rows = _resolve_bands(config)
        if config.index_out:
            saved_index.check_target(config.index_out)
        against = None
        if config.against:
            against = saved_index.open_index(config.against)
            if config.uses_minhash and config.bands is None:
                bands, rows = against.params["bands"], against.params["rows"]
            params = saved_index.index_params(config, bands, rows)
            saved_index.check_compatible(against, params)
        phases: dict[str, dict[str, float]] = {}
        out_schema = _output_schema(schema, config.mark_only)
        paths = ctx.input_shard_paths()

        # 1. sign
        with _phase(phases, "sign") as record:
            extra = {"bands": bands, "rows": rows}
            results = ctx.map(
                tasks.sign_task, [ctx.task("sign", i, [p], extra) for i, p in enumerate(paths)]
            )
            record(results)
        counts = sum_counts(results)
        offsets = [0, *np.cumsum([r.counts["rows"] for r in results]).tolist()]
        total = offsets[-1]

        # 2. bucket, parallel by band
        band_ids = ([EXACT] if config.uses_exact else []) + (
            list(range(bands)) if config.uses_minhash else []
        )
        with _phase(phases, "bucket") as record:
            extra_for = lambda b: {"band": b, "offsets": offsets, "against": config.against}  # noqa: E731
            bucket_results = ctx.map(
                tasks.bucket_task,
                [ctx.task("bucket", i, [], extra_for(b)) for i, b in enumerate(band_ids)],
            )
            record(bucket_results)
        exact_result = bucket_results[0].counts if config.uses_exact and bucket_results else {}

        # 3. plan: union-find and keep policy
        with _phase(phases, "cluster") as record:
            old_rows = against.rows if against is not None else 0
            uf = UnionFind(total + old_rows)
            edges_dir = ctx.work / "scratch" / "edges"
            for band in band_ids:
                edges = np.load(edges_dir / f"{saved_index.band_name(band)}.npy")
                uf.union(edges[0], edges[1])
            roots = uf.roots()
            score = _load_scores(ctx.work, len(paths)) if config.keep != "first" else None
            keep = keepers(roots, total, score)
            sizes = np.bincount(roots[:total], minlength=total + old_rows)
            clustered = sizes[roots[:total]] > 1
            if old_rows:
                touched = np.zeros(total + old_rows, dtype=bool)
                touched[roots[total:]] = True
                clustered |= touched[roots[:total]]
            cluster = np.where(clustered, roots[:total], -1)
            for i in range(len(paths)):
                folder = shard_dir(ctx.work, i)
                np.save(folder / "keep.npy", keep[offsets[i] : offsets[i + 1]])
                np.save(folder / "cluster.npy", cluster[offsets[i] : offsets[i + 1]])
            record([])

        # 4. optional saved index of what was kept
        if config.index_out:
            with _phase(phases, "index") as record:
                record(
                    self._write_index(ctx, config, band_ids, offsets, keep, bands, rows, old_rows)
                )

        # 5. write
        pairs = report.example_pairs(roots, keep, config.examples) if total else []
        with _phase(phases, "write") as record:
            input_columns = [n for n in out_schema.names if n not in ("dup_cluster", "dup_keep")]
            write_tasks = []
            for i, p in enumerate(paths):
                wanted = {
                    g - offsets[i]: g
                    for pair in pairs
                    for g in pair
                    if offsets[i] <= g < offsets[i + 1]
                }
                extra = {"schema": out_schema, "examples": wanted, "input_columns": input_columns}
                write_tasks.append(ctx.task("write", i, [p], extra))
            write_results = ctx.map(tasks.write_task, write_tasks)
            record(write_results)

        shards = [s for r in write_results for s in r.shards]
        texts: dict[int, str] = {}
        per_source: dict[str, list[int]] = {}
        for r in write_results:
            texts.update(r.extra["examples"])
            for name, (n, gone) in r.extra["per_source"].items():
                entry = per_source.setdefault(name, [0, 0])
                entry[0] += n
                entry[1] += gone
        valid = total - counts.get("quarantined", 0)
        removed = int(np.count_nonzero(~keep)) if not config.mark_only else 0
        rep: dict[str, Any] = {
            "rows_in": total,
            "method": config.method,
            "duplicates_removed": removed,
            "duplicates_marked": int(np.count_nonzero(~keep)) if config.mark_only else 0,
            "dup_rate": round(int(np.count_nonzero(~keep)) / valid, 4) if valid else 0.0,
            "exact_duplicates": int(
                exact_result.get("grouped_rows", 0) - exact_result.get("groups", 0)
            ),
            "clusters": int(np.count_nonzero(np.bincount(cluster[cluster >= 0]) > 0))
            if total
            else 0,
            "cluster_sizes": report.size_histogram(roots, total) if total else {},
            "keep": config.keep,
        }
        if config.uses_minhash:
            minhash_counts = sum_counts(bucket_results[1:] if config.uses_exact else bucket_results)
            rep["lsh"] = {
                "num_perm": config.num_perm,
                "bands": bands,
                "rows": rows,
                "threshold": config.threshold,
                "signature": config.signature,
                "s_curve": lsh.s_curve(bands, rows),
                "candidate_pairs": minhash_counts.get("candidate_pairs", 0),
                "verify_floor": round(
                    lsh.verify_floor(config.threshold, config.recall, config.num_perm), 4
                )
                if config.verify
                else None,
                "rejected_by_verify": minhash_counts.get("rejected_pairs", 0),
            }
        if against is not None:
            rep["against"] = {
                "index": str(config.against),
                "index_rows": against.rows,
                "rows_matching_index": _count_touching(roots, total),
            }
        if per_source:
            rep["by_source"] = report.source_rates(per_source)
        rep["examples"] = _examples(ctx, config, pairs, texts, offsets)
        rep["phases"] = phases
        if rep["duplicates_removed"] == 0 and rep["duplicates_marked"] == 0:
            rep["message"] = "no rows to dedup" if total == 0 else "no duplicates found"
        if config.index_out:
            rep["index_out"] = str(config.index_out)
        return StageResult(shards, out_schema, rep)

    def _write_index(
        self,
        ctx: StageContext,
        config: DedupConfig,
        band_ids: Sequence[int],
        offsets: list[int],
        keep: np.ndarray,
        bands: int,
        rows: int,
        old_rows: int,
    ) -> list[TaskResult]:
        target = Path(config.index_out or "")
        staging = saved_index.staging_dir(ctx.work)
        kept_per_shard = [
            int(keep[offsets[i] : offsets[i + 1]].sum()) for i in range(len(offsets) - 1)
        ]
        kept_before = (old_rows + np.concatenate([[0], np.cumsum(kept_per_shard)])).tolist()
        common = {
            "offsets": offsets,
            "kept_before": kept_before,
            "staging": str(staging),
            "against": config.against,
            "shards": len(offsets) - 1,
        }
        jobs = [ctx.task("index", i, [], {**common, "band": b}) for i, b in enumerate(band_ids)]
        results = ctx.map(tasks.index_task, jobs)
        if config.uses_minhash:
            results += ctx.map(tasks.index_signature_task, [ctx.task("index-sig", 0, [], common)])
        saved_index.finish(
            staging,
            target,
            saved_index.index_params(config, bands, rows),
            old_rows + int(keep.sum()),
        )
        return results


def _count_touching(roots: np.ndarray, total: int) -> int:
    touched = np.zeros(len(roots), dtype=bool)
    touched[roots[total:]] = True
    return int(np.count_nonzero(touched[roots[:total]]))


def _examples(
    ctx: StageContext,
    config: DedupConfig,
    pairs: list[tuple[int, int]],
    texts: dict[int, str],
    offsets: list[int],
) -> list[dict[str, Any]]:
    out = []
    store = SignatureStore(ctx.work, offsets) if config.uses_minhash else None
    for kept, removed in pairs:
        if kept not in texts or removed not in texts:
            continue
        a, b = texts[kept], texts[removed]
        entry: dict[str, Any] = {
            "kept_row": kept,
            "removed_row": removed,
            "true_jaccard": round(
                report.true_jaccard(a, b, config.normalize, config.ngram, config.char_ngram), 4
            ),
        }
        if store is not None:
            sig = store.get(np.array([kept, removed]))
            entry["estimated_jaccard"] = round(float(estimate(sig[0], sig[1])), 4)
        entry["kept_text"] = a[:160]
        entry["removed_text"] = b[:160]
        out.append(entry)
    return out


@contextmanager
def _phase(phases: dict[str, dict[str, float]], name: str) -> Any:
    started = time.perf_counter()
    results: list[TaskResult] = []

    def record(rs: Sequence[TaskResult]) -> None:
        results.extend(rs)

    yield record
    peaks = [
        r.extra["peak_rss_mb"]
        for r in results
        if isinstance(r.extra, dict) and "peak_rss_mb" in r.extra
    ]
    phases[name] = {
        "seconds": round(time.perf_counter() - started, 3),
        "peak_rss_mb": round(max([tasks.peak_rss_mb(), *peaks]), 1),
    }


def _resolve_bands(config: DedupConfig) -> tuple[int, int]:
    if config.bands is not None and config.rows is not None:
        return config.bands, config.rows
    return lsh.choose_bands(config.num_perm, config.threshold, config.recall)


def _check_columns(config: DedupConfig, schema: pa.Schema) -> None:
    needed = {config.text_column}
    if config.uses_exact:
        needed.update(config.fingerprint_columns)
    if config.keep_column:
        needed.add(config.keep_column)
    missing = sorted(n for n in needed if n not in schema.names)
    if missing:
        raise DataprepError(
            f"input has no column {', '.join(map(repr, missing))} (columns: "
            f"{', '.join(schema.names)}); check --text-column / --columns / --keep"
        )
    text_type = schema.field(config.text_column).type
    if not (pa.types.is_string(text_type) or pa.types.is_large_string(text_type)):
        raise DataprepError(
            f"column {config.text_column!r} holds {text_type}, not text; "
            "pick a string column with --text-column"
        )
    if config.keep_column:
        kind = schema.field(config.keep_column).type
        if not (
            pa.types.is_integer(kind)
            or pa.types.is_floating(kind)
            or pa.types.is_temporal(kind)
            or pa.types.is_boolean(kind)
        ):
            raise DataprepError(
                f"--keep {config.keep} needs a numeric or date column; "
                f"{config.keep_column!r} holds {kind}"
            )
    if config.mark_only and {"dup_cluster", "dup_keep"} & set(schema.names):
        raise DataprepError("input already has dup_cluster/dup_keep columns; drop them first")


def _output_schema(schema: pa.Schema, mark_only: bool) -> pa.Schema:
    if not mark_only:
        return schema
    return schema.append(pa.field("dup_cluster", pa.int64())).append(
        pa.field("dup_keep", pa.bool_())
    )


def _load_scores(work: Path, shards: int) -> np.ndarray:
    files = [shard_dir(work, i) / "score.npy" for i in range(shards)]
    parts = [np.load(f) for f in files if f.exists()]
    return np.concatenate(parts) if parts else np.zeros(0)
