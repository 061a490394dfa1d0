"""The dedup report: counts, cluster sizes, the LSH S-curve, duplicate rates per source, and
example pairs with estimated and true Jaccard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from dataprep import arrow_np
from dataprep.stage import TaskResult

from .buckets import SignatureStore
from .lsh import s_curve, verify_floor
from .minhash import estimate, shingle_strings
from .normalise import normalise
from .payloads import WriteStats


def size_histogram(roots: np.ndarray, rows: int) -> dict[str, int]:
    """Clusters (of new rows, size > 1) by size; sizes above 10 share one bucket."""
    sizes = np.bincount(roots[:rows])
    sizes = sizes[sizes > 1]
    hist: dict[str, int] = {}
    for size, count in zip(*np.unique(np.minimum(sizes, 11), return_counts=True), strict=True):
        hist["11+" if size == 11 else str(int(size))] = int(count)
    return hist


def example_pairs(roots: np.ndarray, keep: np.ndarray, limit: int) -> list[tuple[int, int]]:
    """(kept row, removed row) for the first `limit` clusters, by their smallest id."""
    rows = len(keep)
    removed = np.flatnonzero(
        ~keep[:rows] & (np.bincount(roots[:rows], minlength=rows)[roots[:rows]] > 1)
    )
    pairs: list[tuple[int, int]] = []
    seen: set[int] = set()
    for gid in removed:
        root = int(roots[gid])
        if root in seen:
            continue
        seen.add(root)
        members = np.flatnonzero(roots[:rows] == root) if len(pairs) < limit else []
        kept = [int(m) for m in members if keep[m]]
        partner = kept[0] if kept else root
        pairs.append((partner, int(gid)))
        if len(pairs) >= limit:
            break
    return pairs


def true_jaccard(a: str, b: str, steps: list[str], ngram: int, char_ngram: int | None) -> float:
    texts = normalise(arrow_np.strings([a, b]), steps).to_pylist()
    sa = set(shingle_strings(texts[0] or "", ngram, char_ngram))
    sb = set(shingle_strings(texts[1] or "", ngram, char_ngram))
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


SOURCES_LISTED = 100


def source_rates(per_source: dict[str, list[int]]) -> dict[str, Any]:
    """Rates of the SOURCES_LISTED largest sources, then one "(other N sources)" entry: a
    corpus of one source per document must not make the report as long as the corpus."""
    ranked = sorted(per_source.items(), key=lambda item: (-item[1][0], item[0]))
    listed, rest = ranked[:SOURCES_LISTED], ranked[SOURCES_LISTED:]
    if rest:
        rows, gone = (sum(counts[k] for _, counts in rest) for k in (0, 1))
        listed.append((f"(other {len(rest)} sources)", [rows, gone]))
    return {
        name: {"rows": rows, "removed": gone, "dup_rate": round(gone / rows, 4) if rows else 0.0}
        for name, (rows, gone) in listed
    }


def build(
    config: Any, total: int, quarantined: int, roots: np.ndarray, keep: np.ndarray
) -> dict[str, Any]:
    """The counts every dedup report has: rows in, removed or marked, clusters, sizes.

    `roots` / `keep` are the clustered rows' (`clusters.Members`): every other row is kept.
    """
    valid = total - quarantined
    new = len(keep)
    dups = int(np.count_nonzero(~keep))
    rep: dict[str, Any] = {
        "rows_in": total,
        "method": config.method,
        "duplicates_removed": 0 if config.mark_only else dups,
        "duplicates_marked": dups if config.mark_only else 0,
        "dup_rate": round(dups / valid, 4) if valid else 0.0,
        "clusters": len(np.unique(roots[:new])),
        "cluster_sizes": size_histogram(roots, new) if new else {},
        "keep": config.keep,
    }
    if dups == 0:
        rep["message"] = "no rows to dedup" if valid == 0 else "no duplicates found"
    return rep


def lsh_section(config: Any, bands: int, rows: int, counts: dict[str, int]) -> dict[str, Any]:
    floor = verify_floor(config.threshold, config.recall, config.num_perm)
    return {
        "num_perm": config.num_perm,
        "bands": bands,
        "rows": rows,
        "threshold": config.threshold,
        "signature": config.signature,
        "s_curve": s_curve(bands, rows),
        "candidate_pairs": counts.get("candidate_pairs", 0),
        "verify_floor": round(floor, 4) if config.verify else None,
        "rejected_by_verify": counts.get("rejected_pairs", 0),
    }


def count_touching(roots: np.ndarray, total: int) -> int:
    """New rows whose cluster holds a row of the saved index (ids >= total)."""
    touched = np.zeros(len(roots), dtype=bool)
    touched[roots[total:]] = True
    return int(np.count_nonzero(touched[roots[:total]]))


def id_column(schema: pa.Schema, lineage: list[dict[str, Any]]) -> str | None:
    """The column that names rows, so examples cite ids a person can look up: the id column
    the dataset was sharded with (its lineage says), else `id`; None when there is none."""
    for entry in reversed(lineage):
        if entry.get("stage") == "shard" and isinstance(entry.get("config"), dict):
            name = entry["config"].get("id_column")
            if isinstance(name, str) and name in schema.names:
                return name
    return "id" if "id" in schema.names else None


def from_written(
    config: Any,
    work: Path,
    written: list[TaskResult[WriteStats]],
    pairs: list[tuple[int, int]],
    offsets: list[int],
) -> dict[str, Any]:
    """Per-source rates and example pairs, from what the write tasks handed back: each pair
    by its rows' ids when the write tasks fetched them, else by global row number."""
    texts: dict[int, str] = {}
    ids: dict[int, str] = {}
    per_source: dict[str, list[int]] = {}
    for result in written:
        stats = result.payload
        texts.update(stats.examples)
        ids.update(stats.example_ids)
        for name, counts in stats.per_source.items():
            entry = per_source.setdefault(name, [0, 0])
            entry[0] += counts[0]
            entry[1] += counts[1]
    out: dict[str, Any] = {}
    if per_source:
        out["by_source"] = source_rates(per_source)
    store = SignatureStore(work, offsets) if config.uses_minhash else None
    examples = []
    for kept, removed in pairs:
        if kept not in texts or removed not in texts:
            continue
        a, b = texts[kept], texts[removed]
        truth = true_jaccard(a, b, config.normalize, config.ngram, config.char_ngram)
        entry: dict[str, Any] = (
            {"kept_id": ids[kept], "removed_id": ids[removed]}
            if kept in ids and removed in ids
            else {"kept_row": kept, "removed_row": removed}
        )
        entry["true_jaccard"] = round(truth, 4)
        if store is not None:
            sig = store.get(np.array([kept, removed]))
            entry["estimated_jaccard"] = round(float(estimate(sig[0], sig[1])), 4)
        entry["kept_text"] = a[:160]
        entry["removed_text"] = b[:160]
        examples.append(entry)
    out["examples"] = examples
    return out


def describe(rep: dict[str, Any]) -> list[str]:
    """The lines a dedup run prints after the summary table: removed rows, the LSH S-curve,
    per-source rates, up to three examples and the phases' time and memory."""
    lines = [rep["message"]] if rep.get("message") else []
    lines.append(
        f"removed {rep.get('duplicates_removed', 0):,} rows "
        f"(exact duplicates {rep.get('exact_duplicates', 0):,}; "
        f"clusters {rep.get('clusters', 0):,}; sizes {rep.get('cluster_sizes', {})})"
    )
    lsh = rep.get("lsh")
    if lsh:
        curve = "  ".join(f"J={j}: {p:.3f}" for j, p in lsh["s_curve"].items())
        lines.append(f"LSH {lsh['bands']} bands x {lsh['rows']} rows; catch probability {curve}")
    for name, info in rep.get("by_source", {}).items():
        lines.append(
            f"  source {name}: {info['removed']:,}/{info['rows']:,} "
            f"({info['dup_rate']:.1%}) removed"
        )
    for ex in rep.get("examples", [])[:3]:
        est = ex.get("estimated_jaccard")
        kind = "id" if "kept_id" in ex else "row"
        removed, kept = (repr(ex[f"{k}_{kind}"]) for k in ("removed", "kept"))
        lines.append(
            f"  e.g. {kind} {removed} ~ {kind} {kept}: true J "
            f"{ex['true_jaccard']:.2f}" + (f", estimated {est:.2f}" if est is not None else "")
        )
    phases = ", ".join(
        f"{k} {v['seconds']:.2f}s/{v['peak_rss_mb']:.0f}MB"
        for k, v in rep.get("phases", {}).items()
    )
    if phases:
        lines.append(f"phases: {phases}")
    return lines
