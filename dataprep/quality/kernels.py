"""The word and n-gram signals as one compiled pass (numba) per document over Arrow's buffers.

WHY: the vectorised path (`signals._words`, `repetition.ngram_signals`) splits the batch into
an Arrow array of words twice, runs two regexes over every word and makes one hash pass plus
a fixpoint of whole-array steps per n-gram length; here one loop per document tokenises,
numbers its words and n-grams in a small hash table while the document is in cache, and runs
Gopher's greedy duplicate scan as the plain loop it is. numba keeps the machine code on disk
(`cache=True`). The values are exactly those of the vectorised path, which stays as the
reference and the fallback (tests/test_score.py). Words are split where Arrow's
`utf8_split_whitespace` splits; the only Unicode questions (does a non-ASCII word have a
letter, a character outside P/S/C) go back to Arrow's regexes, for those words alone.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from dataprep.utf8_space import unicode_space

TOP = 3  # top_2..4_gram_char_fraction, then dup_5..10_gram_char_fraction
DUP = 6
STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")
# per-document integer outputs of `scan`
N_TOKENS, N_REAL, REAL_CHARS, N_ALPHA, STOP_MASK, HASHES, ELLIPSES, NEWLINES, CHARS = range(9)

_WS = np.zeros(128, np.bool_)
_WS[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True
_ALNUM = np.zeros(128, np.uint8)  # 1 digit, 2 letter
_ALNUM[[ord(c) for c in "0123456789"]] = 1
_ALNUM[[c for c in range(128) if chr(c).isalpha()]] = 2
_STOP = np.zeros((len(STOP_WORDS), 4), np.uint8)
_STOP_LEN = np.array([len(w) for w in STOP_WORDS], np.int64)
for _i, _w in enumerate(STOP_WORDS):
    _STOP[_i, : len(_w)] = np.frombuffer(_w.encode(), np.uint8)
# byte classes: 1 ASCII whitespace, 2 digit, 4 letter, 8 not ASCII, 16 may start a Unicode
# space (see _space), 32 starts a character (not a UTF-8 continuation byte), 64 '#', '.', or
# the first byte of '\u2026'
_CLS = np.zeros(256, np.uint8)
_CLS[np.flatnonzero(_WS)] |= 1
_CLS[:128] |= ((_ALNUM == 1) * 2 + (_ALNUM == 2) * 4).astype(np.uint8)
_CLS[128:] |= 8
_CLS[[0xC2, 0xE1, 0xE2, 0xE3]] |= 16
_CLS[[ord("#"), ord("."), 0xE2]] |= 64  # counted for symbol_to_word_ratio
_CLS[[b for b in range(256) if b & 0xC0 != 0x80]] |= 32
_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xC2B2AE3D27D4EB4F)
_S29 = np.uint64(29)


@njit(cache=True, inline="always")
def _space(data, i, end):
    """Bytes taken by the whitespace character starting at data[i] (Arrow's set), else 0."""
    b = data[i]
    if b < 128:
        return 1 if _WS[b] else 0
    return unicode_space(data, i, end)


@njit(cache=True, inline="always")
def _mix(a, b):
    h = (np.uint64(a) * _M1) ^ (np.uint64(b) * _M2)
    return h ^ (h >> _S29)


@njit(cache=True, inline="always")
def _same(data, s1, e1, s2, e2):
    if e1 - s1 != e2 - s2:
        return False
    for k in range(e1 - s1):
        if data[s1 + k] != data[s2 + k]:
            return False
    return True


@njit(cache=True)
def _word_ids(data, ws, we, hs, n, ids, counts, tkey, tval):
    """Number the document's n words 0.. in order of first appearance (equal bytes, equal
    number); counts[id] how often each occurs. Returns how many distinct words."""
    size = 16
    while size < 2 * n:
        size *= 2
    mask = size - 1
    tkey[:size] = -1
    k = 0
    for i in range(n):
        j = np.int64(hs[i] & np.uint64(mask))
        while True:
            t = tkey[j]
            if t < 0:
                tkey[j] = i
                tval[j] = k
                ids[i] = k
                counts[k] = 1
                k += 1
                break
            if _same(data, ws[t], we[t], ws[i], we[i]):
                ids[i] = tval[j]
                counts[tval[j]] += 1
                break
            j = (j + 1) & mask
    return k


@njit(cache=True)
def _ngrams(wid, wcount, kinds, cum, n_words, denom, out, row, buf):
    """top_2..4 and dup_5..10 n-gram character fractions of one document into out[row].

    Only positions whose (n-1)-gram occurs twice or more can start a repeated n-gram, so
    each n works on the repeated positions of n-1 (`cand`, in order; real prose: a few
    percent by n=5); every other n-gram occurs once."""
    prev, pcount, cur, ccount, first, tka, tkb, tval, cand = buf
    nc = 0
    for i in range(n_words):
        if wcount[wid[i]] >= 2:
            cand[nc] = i
            nc += 1
    prev[:n_words] = wid[:n_words]
    for n in range(2, 11):
        m = n_words - n + 1
        if m <= 0:
            return
        if nc == 0:  # nothing repeats from here: the top n-gram is the first, once
            for r in range(n, 5):
                if n_words >= r:
                    out[row, r - 2] = (cum[r] - cum[0] + r - 1) / denom
            return
        size = 16
        while size < 2 * nc:
            size *= 2
        mask = size - 1
        tka[:size] = -1
        k = 0
        for t in range(nc):
            i = cand[t]
            if i >= m:
                nc = t
                break
            key = (prev[i] << 32) | wid[i + n - 1]  # both are below 2**31: one exact key
            j = np.int64(_mix(key, 0) & np.uint64(mask))
            while True:
                if tka[j] < 0:
                    tka[j], tval[j] = key, k
                    cur[i] = k
                    ccount[k] = 1
                    first[k] = i
                    k += 1
                    break
                if tka[j] == key:
                    cur[i] = tval[j]
                    ccount[tval[j]] += 1
                    break
                j = (j + 1) & mask
        kept = 0  # the positions whose n-gram repeats, in order
        for t in range(nc):
            i = cand[t]
            if ccount[cur[i]] >= 2:
                cand[kept] = i
                kept += 1
        nc = kept
        if n <= 4:  # the most frequent n-gram; ties to the one seen first (smallest number)
            best, p = 1, 0
            for c in range(k):
                if ccount[c] > best:
                    best, p = ccount[c], first[c]
            out[row, n - 2] = best * (cum[p + n] - cum[p] + n - 1) / denom
        else:  # Gopher's greedy scan: a repeat counts its characters and jumps past itself;
            # an n-gram seen once never repeats, so the scan only has to visit `cand`
            tka[:k] = 0  # reused as "seen at a visited position"
            total, nxt = 0, 0
            for t in range(nc):
                i = cand[t]
                if i < nxt:  # jumped over: not visited
                    continue
                c = cur[i]
                if tka[c]:
                    total += cum[i + n] - cum[i]
                    nxt = i + n
                else:
                    tka[c] = 1
                    nxt = i + 1
            out[row, n - 2] = total / denom
        prev, cur = cur, prev


@njit(cache=True)
def scan(data, offsets, want_ngrams):
    """Per document: the integer counts (columns N_TOKENS..CHARS), the n-gram fractions (9
    columns) and the non-ASCII words as (document, start, end, characters) rows."""
    n_docs = len(offsets) - 1
    counts = np.zeros((n_docs, 9), np.int64)
    grams = np.zeros((n_docs, 9), np.float64)
    longest = 0
    for d in range(n_docs):
        longest = max(longest, offsets[d + 1] - offsets[d])
    cap = longest // 2 + 1
    ws = np.empty(cap, np.int64)
    we = np.empty(cap, np.int64)
    hs = np.empty(cap, np.uint64)
    cum = np.empty(cap + 1, np.int64)
    wid = np.empty(cap, np.int64)
    wcount = np.empty(cap, np.int64)
    table = 16
    while table < 2 * cap:
        table *= 2
    tkey = np.empty(table, np.int64)
    tval = np.empty(table, np.int64)
    buf = (
        np.empty(cap, np.int64),
        np.empty(cap, np.int64),
        np.empty(cap, np.int64),
        np.empty(cap, np.int64),
        np.empty(cap, np.int64),
        tkey,
        np.empty(table, np.int64),
        tval,
        np.empty(cap, np.int64),
    )
    other = np.empty((16, 4), np.int64)
    n_other = 0
    for d in range(n_docs):
        start, end = offsets[d], offsets[d + 1]
        row = counts[d]
        n, i, chars = 0, start, 0
        cum[0] = 0
        n_real, real_chars, n_alpha, stop = 0, 0, 0, 0
        hashes, ellipses, newlines, dots, last_dot = 0, 0, 0, 0, -2
        while i < end:
            c = _CLS[data[i]]
            if c & 1:
                newlines += data[i] == 10
                chars += 1
                i += 1
                continue
            if c & 16:
                w = _space(data, i, end)
                if w:
                    chars += 1
                    i += w
                    continue
            s = i  # a word: up to the next whitespace
            h = np.uint64(0xCBF29CE484222325)
            flags, length = 0, 0
            while i < end:
                b = data[i]
                c = _CLS[b]
                if c & 81:
                    if c & 1 or (c & 16 and _space(data, i, end)):
                        break
                    if b == 35:
                        hashes += 1
                    elif b == 46:  # "..." as str.count counts it: runs of dots, by threes
                        dots = dots + 1 if i == last_dot + 1 else 1
                        last_dot = i
                        if dots == 3:
                            ellipses += 1
                            dots = 0
                    elif b == 0xE2 and i + 2 < end and data[i + 1] == 0x80:
                        ellipses += data[i + 2] == 0xA6
                flags |= c
                length += (c >> 5) & 1
                h = (h ^ np.uint64(b)) * np.uint64(0x100000001B3)
                i += 1
            chars += length
            ws[n], we[n], hs[n] = s, i, h
            cum[n + 1] = cum[n] + length
            n += 1
            if not flags & 8:  # ASCII: letters and digits are the word characters
                if flags & 6:
                    n_real += 1
                    real_chars += length
                n_alpha += (flags >> 2) & 1
                size = i - s
                if size <= 4 and flags & 4:
                    for k in range(len(STOP_WORDS)):
                        if _STOP_LEN[k] == size and _same_stop(data, s, k):
                            stop |= 1 << k
            else:
                if n_other == len(other):
                    grown = np.empty((2 * len(other), 4), np.int64)
                    grown[:n_other] = other
                    other = grown
                other[n_other, 0], other[n_other, 1] = d, s
                other[n_other, 2], other[n_other, 3] = i, length
                n_other += 1
        row[N_TOKENS], row[N_REAL], row[REAL_CHARS] = n, n_real, real_chars
        row[N_ALPHA], row[STOP_MASK] = n_alpha, stop
        row[CHARS], row[HASHES], row[ELLIPSES], row[NEWLINES] = chars, hashes, ellipses, newlines
        if want_ngrams and n >= 2:
            kinds = _word_ids(data, ws, we, hs, n, wid, wcount, tkey, tval)
            _ngrams(wid, wcount, kinds, cum, n, max(chars, 1), grams, d, buf)
    return counts, grams, other[:n_other]


@njit(cache=True, inline="always")
def _same_stop(data, s, k):
    for j in range(_STOP_LEN[k]):
        if data[s + j] != _STOP[k, j]:
            return False
    return True


@njit(cache=True)
def _gather(data, other):
    """The non-ASCII words' bytes end to end, with Arrow string offsets."""
    offsets = np.zeros(len(other) + 1, np.int32)
    for r in range(len(other)):
        offsets[r + 1] = offsets[r] + other[r, 2] - other[r, 1]
    out = np.empty(offsets[-1], np.uint8)
    for r in range(len(other)):
        out[offsets[r] : offsets[r + 1]] = data[other[r, 1] : other[r, 2]]
    return offsets, out


def buffers(texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes and the int64 offsets of a string array (nulls already filled)."""
    _, off, data = texts.buffers()
    offsets = np.frombuffer(off, np.int32, len(texts) + 1, texts.offset * 4).astype(np.int64)
    raw = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
    return raw, offsets


def word_signals(texts: pa.Array, want_ngrams: bool) -> dict[str, np.ndarray]:
    """The "words" group (and, with want_ngrams, the "ngrams" group) for one batch."""
    data, offsets = buffers(texts)
    n_docs = len(texts)
    counts, grams, other = scan(data, offsets, want_ngrams)
    n_real, real_chars = counts[:, N_REAL].copy(), counts[:, REAL_CHARS].astype(np.float64)
    alpha = counts[:, N_ALPHA].copy()
    if len(other):
        offs, raw = _gather(data, other)
        words = pa.StringArray.from_buffers(len(other), pa.py_buffer(offs), pa.py_buffer(raw))
        doc, length = other[:, 0], other[:, 3]
        real = pc.match_substring_regex(words, r"[^\pP\pS\pC]").to_numpy(zero_copy_only=False)
        has_letter = pc.match_substring_regex(words, r"\pL").to_numpy(zero_copy_only=False)
        n_real += np.bincount(doc[real], minlength=n_docs)
        real_chars += np.bincount(doc[real], length[real], minlength=n_docs)
        alpha += np.bincount(doc[has_letter], minlength=n_docs)
    n_tokens = counts[:, N_TOKENS]
    stop = counts[:, STOP_MASK]
    n_stop = sum((stop >> k) & 1 for k in range(len(STOP_WORDS)))
    out = {
        "word_count": n_real,
        "mean_word_length": _ratio(real_chars, n_real),
        "alpha_fraction": _ratio(alpha, n_tokens),
        "symbol_to_word_ratio": np.maximum(
            _ratio(counts[:, HASHES], n_tokens), _ratio(counts[:, ELLIPSES], n_tokens)
        ),
        "stop_word_count": np.asarray(n_stop, np.int64),
        "newline_to_word_ratio": _ratio(counts[:, NEWLINES], n_tokens),
    }
    if want_ngrams:
        for n in range(2, 11):
            kind = "top" if n <= 4 else "dup"
            out[f"{kind}_{n}_gram_char_fraction"] = np.ascontiguousarray(grams[:, n - 2])
    return out


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros(len(num), dtype=np.float64), where=den > 0)
