"""Gopher repetition signals over whole batches of documents, without a loop per document.

Every piece (line, paragraph, word, n-gram) gets an integer code that is specific to its
document: Arrow's hash-based `dictionary_encode` numbers values in order of first appearance,
so "this piece occurred earlier in its document" is a comparison with a running maximum, and
an n-gram's code is the code of the pair ((n-1)-gram code, next word code). Positions whose
(n-1)-gram occurs once cannot start a repeated n-gram, so each longer n works on fewer
positions (real prose: a few percent by n=5).

The duplicate n-gram fraction follows Gopher's greedy scan as datatrove implements it: walk
the words, and at an n-gram seen before (at a position the walk visited) count its
characters and jump n words ahead. The walk's stops are found for all documents at once by
binary lifting, and "visited" by a fixpoint over the jumps (see `_greedy_dup_chars`).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

TOP_NGRAMS = (2, 3, 4)
DUP_NGRAMS = (5, 6, 7, 8, 9, 10)
MAX_ROUNDS = 64  # fixpoint rounds of the greedy scan (real text: 2-3)


def dense(key: np.ndarray | pa.Array) -> np.ndarray:
    """Codes 0..K-1 numbered in order of first appearance (a hash pass, no sort)."""
    if len(key) == 0:
        return np.zeros(0, dtype=np.int64)
    return pc.dictionary_encode(key).indices.to_numpy().astype(np.int64)


def repeats(codes: np.ndarray) -> np.ndarray:
    """True where the code already occurred at an earlier position (codes from `dense`)."""
    if len(codes) == 0:
        return np.zeros(0, dtype=bool)
    seen_max = np.maximum.accumulate(codes)
    before = np.concatenate(([-1], seen_max[:-1]))
    return codes != before + 1


def per_doc_codes(values: pa.Array, doc: np.ndarray) -> np.ndarray:
    """Codes equal exactly when both the value and its document are equal."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    codes = dense(values)
    return dense(doc * (int(codes.max()) + 1) + codes)


def duplicates(
    values: pa.Array, doc: np.ndarray, lengths: np.ndarray, n_docs: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per document: how many pieces repeat an earlier one, and their characters."""
    dup = repeats(per_doc_codes(values, doc))
    count = np.bincount(doc[dup], minlength=n_docs)
    chars = np.bincount(doc[dup], weights=lengths[dup], minlength=n_docs)
    return count.astype(np.int64), chars


def ngram_signals(
    words: pa.Array, doc: np.ndarray, lengths: np.ndarray, n_docs: int, text_chars: np.ndarray
) -> dict[str, np.ndarray]:
    """top_N_gram_char_fraction (N=2..4) and dup_N_gram_char_fraction (N=5..10).

    `words` are one batch's words in document order, `doc` their document, `lengths` their
    lengths in characters, `text_chars` each document's length (the denominator)."""
    out: dict[str, np.ndarray] = {}
    total = len(words)
    denom = np.where(text_chars > 0, text_chars, 1).astype(np.float64)
    word_counts = np.bincount(doc, minlength=n_docs)
    doc_start = np.concatenate(([0], np.cumsum(word_counts)[:-1]))
    doc_end = doc_start + word_counts
    cum = np.concatenate(([0], np.cumsum(lengths, dtype=np.int64)))
    base = dense(words)  # word codes; the first word's code below makes n-grams per document
    vocab = int(base.max()) + 1 if total else 1
    pos = np.arange(total, dtype=np.int64)
    code = doc * vocab + base
    if n_docs * vocab * vocab >= 1 << 62:  # the packed bigram key would not fit in int64
        code = dense(code)
        vocab = max(vocab, int(code.max()) + 1 if total else 1)
    for n in range(2, max(DUP_NGRAMS) + 1):
        room = pos + n <= doc_end[doc[pos]] if total else np.zeros(0, dtype=bool)
        pos, code = pos[room], code[room]
        code = dense(code * vocab + base[pos + n - 1])
        counts = np.bincount(code) if len(code) else np.zeros(0, dtype=np.int64)
        count_at = counts[code]
        if n in TOP_NGRAMS:
            out[f"top_{n}_gram_char_fraction"] = (
                _top_chars(pos, count_at, doc, doc_start, word_counts, cum, n, n_docs) / denom
            )
        if n in DUP_NGRAMS:
            chars = _greedy_dup_chars(pos[count_at >= 2], code[count_at >= 2], doc, cum, n, n_docs)
            out[f"dup_{n}_gram_char_fraction"] = chars / denom
        keep = count_at >= 2  # an n-gram seen once cannot start a repeated (n+1)-gram
        pos, code = pos[keep], code[keep]
    return out


def _top_chars(
    pos: np.ndarray,
    count_at: np.ndarray,
    doc: np.ndarray,
    doc_start: np.ndarray,
    word_counts: np.ndarray,
    cum: np.ndarray,
    n: int,
    n_docs: int,
) -> np.ndarray:
    """Characters covered by each document's most frequent n-gram (joined with spaces), times
    its count; ties go to the n-gram that appears first, as `Counter.most_common` does."""
    result = np.zeros(n_docs, dtype=np.float64)
    has = word_counts >= n  # a document with n words or more has a first n-gram
    first = doc_start[has]
    result[has] = cum[first + n] - cum[first] + (n - 1)
    repeated = count_at >= 2
    if not repeated.any():
        return result
    p, c = pos[repeated], count_at[repeated]
    d = doc[p]
    best = np.zeros(n_docs, dtype=np.int64)
    np.maximum.at(best, d, c)
    at_best = c == best[d]
    p, c, d = p[at_best], c[at_best], d[at_best]
    head = np.concatenate(([True], d[1:] != d[:-1]))  # positions are sorted: first per doc
    p, c, d = p[head], c[head], d[head]
    result[d] = c * (cum[p + n] - cum[p] + (n - 1))
    return result


def _greedy_dup_chars(
    pos: np.ndarray, code: np.ndarray, doc: np.ndarray, cum: np.ndarray, n: int, n_docs: int
) -> np.ndarray:
    """Characters (spaces excluded) of the repeated n-grams a left-to-right scan counts when
    it jumps n words past each one; an n-gram repeats when it was seen at a position the scan
    visited (not one it jumped over).

    `pos` are the positions whose n-gram occurs twice or more (sorted), `code` their n-gram.
    Which positions are visited depends on the jumps, which depend on what was visited: start
    from "all visited", find the jumps, recompute, until the jumps no longer change. Each
    round fixes at least the next position of the scan, and real text settles in two or
    three rounds."""
    result = np.zeros(n_docs, dtype=np.float64)
    if len(pos) == 0:
        return result
    never = np.iinfo(np.int64).max
    first_seen = np.full(int(code.max()) + 1, never, dtype=np.int64)
    visited = np.ones(len(pos), dtype=bool)
    active = np.ones(len(pos), dtype=bool)  # positions of documents still settling
    for _ in range(MAX_ROUNDS):
        p, c, seen = pos[active], code[active], visited[active]
        first_seen[c] = never
        first_seen[c[seen][::-1]] = p[seen][::-1]  # the earliest visited position wins
        earliest = first_seen[c]
        candidates = p[p > earliest]
        selected = candidates[_on_scan(candidates, doc, n)]
        weight = (cum[selected + n] - cum[selected]).astype(np.float64)
        docs = _sorted_unique(doc[p])
        result[docs] = np.bincount(doc[selected], weights=weight, minlength=n_docs)[docs]
        last = np.searchsorted(selected, p, side="left") - 1
        jumped = last >= 0
        jumped[jumped] = p[jumped] < selected[last[jumped]] + n
        seen = ~jumped
        visited[active] = seen
        # the same earliest visited occurrences give the same repeats, so the same jumps
        first_seen[c] = never
        first_seen[c[seen][::-1]] = p[seen][::-1]
        moved = np.zeros(n_docs, dtype=bool)
        moved[doc[p[first_seen[c] != earliest]]] = True
        if not moved.any():
            break
        active = moved[doc[pos]]
    return result


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique for an already sorted array, without sorting (or hashing) it again."""
    if len(values) == 0:
        return values
    return values[np.concatenate(([True], values[1:] != values[:-1]))]


def _on_scan(dup: np.ndarray, doc: np.ndarray, n: int) -> np.ndarray:
    """Which of the repeated positions `dup` (sorted) the scan stops at: each document's first,
    then from each stop the first repeated position n words on.

    A repeated position n or more words after the previous one is always a stop (whatever
    stopped before it jumped no further), so the positions split into independent segments.
    In a segment of consecutive positions (a repeated passage) the stops are every n-th; the
    other segments are solved by binary lifting, for all positions at once."""
    stops = np.zeros(len(dup), dtype=bool)
    if len(dup) == 0:
        return stops
    d = doc[dup]
    gap = np.diff(dup)
    start = np.concatenate(([True], (gap >= n) | (d[1:] != d[:-1])))
    segment = np.cumsum(start) - 1
    first = np.flatnonzero(start)
    stops = (dup - dup[first[segment]]) % n == 0  # right for runs of consecutive positions
    uneven = np.zeros(len(first), dtype=bool)
    uneven[segment[1:][~start[1:] & (gap != 1)]] = True
    rest = np.flatnonzero(uneven[segment])
    if len(rest):
        stops[rest] = _lifted(dup[rest], segment[rest], n)
    return stops


def _lifted(dup: np.ndarray, segment: np.ndarray, n: int) -> np.ndarray:
    """Stops within segments (each starts with a stop) by binary lifting: for every position,
    the last stop at or before it is found in log2(stops) vector steps."""
    step = np.searchsorted(dup, dup + n, side="left")
    inside = step < len(dup)
    inside[inside] &= segment[step[inside]] == segment[inside]
    step = np.where(inside, step, -1)
    index = np.arange(len(dup))
    head = np.concatenate(([True], segment[1:] != segment[:-1]))
    at = np.maximum.accumulate(np.where(head, index, 0))  # each position's segment start
    jumps = [step]
    while (jumps[-1] >= 0).any():
        prev = jumps[-1]
        jumps.append(np.where(prev >= 0, prev[np.maximum(prev, 0)], -1))
    for table in reversed(jumps):
        ahead = table[at]
        move = (ahead >= 0) & (ahead <= index)
        at = np.where(move, ahead, at)
    return at == index
