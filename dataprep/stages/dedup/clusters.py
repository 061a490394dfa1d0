"""Union-find over candidate edges, vectorised, and the deterministic keep policy.

Only rows that are an endpoint of some edge take part (`Members`): a row without an edge is
kept and in no cluster, so the driver's memory grows with the duplicates, not the corpus.
Roots always link to the smaller root, so every cluster's root is its smallest global id
(first by shard, then row) whatever order the edges arrive in: the result depends only on
the set of edges, never on worker count or scheduling.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np


@dataclass
class Members:
    """The rows that share an edge with another row, in a compact index space.

    `ids` are sorted global ids; the first `new` are rows of this run, the rest rows of a saved
    index (ids >= the run's total). `roots[i]` is the compact index of member i's cluster root
    (its smallest member), `keep[i]` (i < new) whether the keep policy keeps that row.
    """

    ids: np.ndarray
    roots: np.ndarray
    keep: np.ndarray
    new: int

    def in_range(self, lo: int, hi: int) -> slice:
        """The members (all new rows) with global ids in [lo, hi), e.g. one shard."""
        return slice(*np.searchsorted(self.ids[: self.new], [lo, hi]).tolist())


def cluster_members(
    edge_batches: Callable[[], Iterable[np.ndarray]],
    total: int,
    scores: Callable[[np.ndarray], np.ndarray] | None,
) -> Members:
    """Union every (2, k) edge batch over the rows they touch, then apply the keep policy.

    `edge_batches` is called twice (endpoints first, then the unions), so batches can be
    streamed from files instead of held together. `scores(ids)` ranks the new members.
    """
    ids = np.zeros(0, dtype=np.int64)
    for edges in edge_batches():
        ids = _union_sorted(ids, np.asarray(edges, dtype=np.int64).ravel())
    uf = UnionFind(len(ids))
    for edges in edge_batches():
        uf.union(np.searchsorted(ids, edges[0]), np.searchsorted(ids, edges[1]))
    roots = uf.roots()
    new = int(np.searchsorted(ids, total))
    score = scores(ids[:new]) if scores is not None and new else None
    return Members(ids, roots, keepers(roots, new, score), new)


def _union_sorted(ids: np.ndarray, more: np.ndarray) -> np.ndarray:
    """np.union1d(ids, more) for sorted unique `ids`: sort `more`, then one stable sort of
    the two runs back to back (a merge) and a drop of repeats. numpy 2's union1d goes
    through a hash-based unique, ~30x slower on the edge batches of a 200k-row corpus."""
    more = np.sort(more)
    merged = np.concatenate([ids, more])
    merged.sort(kind="stable")
    first = np.ones(len(merged), dtype=bool)
    first[1:] = merged[1:] != merged[:-1]
    return merged[first]


class VerifiedEdges:
    """Candidate edges filtered by a signature check that sees each distinct pair once.

    Bands repeat pairs: a true duplicate shares most bands with its partner, so the band
    files hold a pair up to `bands` times (600k copies of ~70k pairs on 200k documents), and
    checking every copy (what each band task once did) gathered two signatures per copy.
    The verdicts are kept as sorted pair codes, so memory grows with the distinct pairs (a
    few per row with a partner, like the union-find arrays). A call returns only the passing
    pairs it has not returned before: the union of the calls is the set of passing pairs,
    all union-find needs. `rejected` still counts every copy, so the report's figure is the
    per-band one. Ids lie in [0, `size`); a space too large for one 64-bit code per pair
    checks and returns every copy (the same set of pairs, the same count).
    """

    def __init__(self, check: Callable[[np.ndarray, np.ndarray], np.ndarray], size: int):
        self.check = check
        self.size = size
        self.rejected = 0
        self._codes = np.zeros(0, dtype=np.uint64)  # sorted
        self._good = np.zeros(0, dtype=bool)

    def __call__(self, edges: np.ndarray) -> np.ndarray:
        """The (2, k) edges whose pair passes the check and was not returned before."""
        a = np.asarray(edges[0], dtype=np.int64)
        b = np.asarray(edges[1], dtype=np.int64)
        if self.size > 1 << 32:
            good = np.asarray(self.check(a, b), dtype=bool) if len(a) else np.zeros(0, bool)
            self.rejected += int(len(good) - np.count_nonzero(good))
            return np.stack([a[good], b[good]])
        codes = np.sort(a.astype(np.uint64) * np.uint64(self.size) + b.astype(np.uint64))
        pos = np.searchsorted(self._codes, codes)  # sorted needles: each search starts warm
        found = pos < len(self._codes)
        found[found] = self._codes[pos[found]] == codes[found]
        rejected = int(np.count_nonzero(found)) - int(np.count_nonzero(self._good[pos[found]]))
        new, repeats = np.unique(codes[~found], return_counts=True)
        fresh = np.zeros(0, dtype=np.uint64)
        if len(new):
            pair = [np.asarray(x, dtype=np.int64) for x in np.divmod(new, np.uint64(self.size))]
            verdict = np.asarray(self.check(*pair), dtype=bool)
            rejected += int(repeats[~verdict].sum())
            fresh = new[verdict]
            merged = np.concatenate([self._codes, new])
            order = np.argsort(merged, kind="stable")  # two sorted runs: one merge
            self._codes = merged[order]
            self._good = np.concatenate([self._good, verdict])[order]
        self.rejected += rejected
        return np.stack([np.asarray(x, dtype=np.int64) for x in np.divmod(fresh, self.size)])


class UnionFind:
    def __init__(self, size: int):
        self.parent = np.arange(size, dtype=np.int64)

    def find(self, ids: np.ndarray) -> np.ndarray:
        """Roots of `ids`, compressing the paths it walks."""
        parent = self.parent
        roots = parent[ids]
        while True:
            up = parent[roots]
            if np.array_equal(up, roots):
                break
            roots = up
        parent[ids] = roots
        return roots

    def union(self, a: np.ndarray, b: np.ndarray) -> None:
        """Join the pairs (a[i], b[i]); conflicting links are retried until all agree."""
        a = np.asarray(a, dtype=np.int64)
        b = np.asarray(b, dtype=np.int64)
        while len(a):
            ra, rb = self.find(a), self.find(b)
            differ = ra != rb
            if not differ.any():
                return
            a, b, ra, rb = a[differ], b[differ], ra[differ], rb[differ]
            lo, hi = np.minimum(ra, rb), np.maximum(ra, rb)
            self.parent[hi] = lo  # duplicates in `hi`: one write wins, the rest loop again

    def roots(self) -> np.ndarray:
        return self.find(np.arange(len(self.parent), dtype=np.int64))


def keepers(roots: np.ndarray, rows: int, score: np.ndarray | None) -> np.ndarray:
    """Bool per row (first `rows` entries of `roots`): True for the row each cluster keeps.

    `score` ranks rows (smaller is better; NaN last); ties and `score=None` keep the smallest
    id. A cluster holding any id >= `rows` (a row of a saved index) keeps none of the new rows.
    """
    keep = np.ones(rows, dtype=bool)
    sizes = np.bincount(roots, minlength=len(roots))
    in_cluster = np.flatnonzero(sizes[roots[:rows]] > 1)
    if len(in_cluster) == 0:
        return keep
    keep[in_cluster] = False
    old_roots = np.unique(roots[rows:]) if len(roots) > rows else np.zeros(0, np.int64)
    r = roots[in_cluster]
    s = np.zeros(len(in_cluster)) if score is None else score[in_cluster].astype(np.float64)
    s = np.where(np.isnan(s), np.inf, s)
    order = np.lexsort((in_cluster, s, r))
    r_sorted = r[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = r_sorted[1:] != r_sorted[:-1]
    chosen = in_cluster[order[first]]
    chosen = chosen[~np.isin(roots[chosen], old_roots)]
    keep[chosen] = True
    return keep
