"""The parts of the dedup report that need a little arithmetic: cluster sizes, example
pairs with estimated and true Jaccard, and duplicate rates per source."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from .minhash import shingle_strings
from .normalise import normalise


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
    texts = normalise(pa.array([a, b]), steps).to_pylist()
    sa = set(shingle_strings(texts[0] or "", ngram, char_ngram))
    sb = set(shingle_strings(texts[1] or "", ngram, char_ngram))
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


def source_rates(per_source: dict[str, list[int]]) -> dict[str, Any]:
    return {
        name: {"rows": rows, "removed": gone, "dup_rate": round(gone / rows, 4) if rows else 0.0}
        for name, (rows, gone) in sorted(per_source.items())
    }
