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

import threading

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from dataprep.quality import kernels_memo, kernels_ngrams
from dataprep.quality import kernels_spacy as sp
from dataprep.quality.kernels_cache import forget_stale
from dataprep.quality.kernels_memo import recall, remember
from dataprep.quality.kernels_ngrams import _ngrams, _same, _word_ids  # noqa: F401
from dataprep.quality.kernels_scratch import layout, scratch
from dataprep.quality.kernels_views import bools, borrowed
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


@njit(cache=True, inline="always")
def _space(data, i, end):
    """Bytes taken by the whitespace character starting at data[i] (Arrow's set), else 0."""
    b = data[i]
    if b < 128:
        return 1 if _WS[b] else 0
    return unicode_space(data, i, end)


@njit(cache=True, inline="always")
def _measure(data, s, e):
    """Hash, class flags and characters of the bytes data[s:e] (a piece of a word)."""
    h = np.uint64(0xCBF29CE484222325)
    flags, length = 0, 0
    for i in range(s, e):
        c = _CLS[data[i]]
        flags |= c
        length += (c >> 5) & 1
        h = (h ^ np.uint64(data[i])) * np.uint64(0x100000001B3)
    return h, flags, length


@njit(cache=True, inline="always")
def _add(data, s, e, h, flags, length, acc, ws, we, hs, cum, wide):
    """Record the token data[s:e]; acc: tokens, real words, their characters, words with a
    letter, stop-word bits, non-ASCII tokens (their numbers in `wide`)."""
    n = acc[0]
    ws[n], we[n], hs[n] = s, e, h
    cum[n + 1] = cum[n] + length
    acc[0] = n + 1
    if not flags & 8:  # ASCII: letters and digits are the word characters
        if flags & 6:
            acc[1] += 1
            acc[2] += length
        acc[3] += (flags >> 2) & 1
        size = e - s
        if size <= 4 and flags & 4:
            for k in range(len(STOP_WORDS)):
                if _STOP_LEN[k] == size and _same_stop(data, s, k):
                    acc[4] |= 1 << k
        return
    wide[acc[5]] = n
    acc[5] += 1


@njit(cache=True)
def _room(other, used, more):
    """`other` with room for `more` rows after the first `used` (grown by doubling)."""
    size = len(other)
    while size < used + more:
        size *= 2
    grown = np.empty((size, 4), np.int64)
    grown[:used] = other[:used]
    return grown


@njit(cache=True)
def _split(data, s, e, h, t, cache, cps, bpos, spans, suf):
    """spaCy's tokens of the word data[s:e] (FNV hash h) as byte spans in spans[:count],
    remembered in `cache` (`kernels_memo`)."""
    count = sp.split(cps, sp.decode(data, s, e, cps, bpos), t, spans, suf)
    for q in range(count):
        spans[q, 0], spans[q, 1] = bpos[spans[q, 0]], bpos[spans[q, 1]]
    remember(cache, h, spans, count)
    return count


@njit(cache=True)
def scan(data, offsets, want_ngrams, spacy, t, cache, arena, hs, sizes):
    """Per document: the integer counts (columns N_TOKENS..CHARS), the n-gram fractions (9
    columns) and the non-ASCII words as (document, start, end, characters) rows. Words are
    whitespace words, or with `spacy` spaCy's tokens of them (`kernels_spacy`, tables t).
    arena (int64, `extent(*sizes)`) and hs (uint64, cap) are the scratch, laid out by `sizes`
    (cap, c1, table: at least `layout`'s), kept by the caller between batches: fresh arrays
    per batch cost more in page faults than the words."""
    n_docs = len(offsets) - 1
    counts = np.zeros((n_docs, 9), np.int64)
    grams = np.zeros((n_docs, 9), np.float64)
    cap, c1, table = sizes
    cps, bpos = arena[:c1], arena[c1 : 2 * c1]
    spans = arena[2 * c1 : 4 * c1].reshape((c1, 2))
    suf = arena[4 * c1 : 6 * c1].reshape((c1, 2))
    at = 6 * c1
    ws, we, wid, wcount = (
        arena[at : at + cap],
        arena[at + cap : at + 2 * cap],
        arena[at + 2 * cap : at + 3 * cap],
        arena[at + 3 * cap : at + 4 * cap],
    )
    cum = arena[at + 4 * cap : at + 5 * cap + 1]
    at += 5 * cap + 1
    tkey, tval = arena[at : at + table], arena[at + table : at + 2 * table]
    at += 2 * table
    none = arena[:0]  # the two buffers _ngrams does not use
    buf = (
        arena[at : at + cap],
        none,
        arena[at + cap : at + 2 * cap],
        arena[at + 2 * cap : at + 3 * cap],
        arena[at + 3 * cap : at + 4 * cap],
        tkey,
        none,
        tval,
        arena[at + 4 * cap : at + 5 * cap],
    )
    # the hot loop's arrays as views without reference counts (kernels_views): all of them
    # are the caller's, which outlive this call
    data, ws, we, hs, cum = borrowed(data), borrowed(ws), borrowed(we), borrowed(hs), borrowed(cum)
    cps, bpos, spans, suf = borrowed(cps), borrowed(bpos), borrowed(spans), borrowed(suf)
    cache = borrowed(cache)
    t = (
        borrowed(t[0]),
        borrowed(t[1]),
        borrowed(t[2]),
        borrowed(t[3]),
        borrowed(t[4]),
        borrowed(t[5]),
        borrowed(t[6]),
    )  # spaCy's tables, down to every split helper
    keys = t[1]
    wide = borrowed(wcount)  # a document's non-ASCII tokens, until _word_ids counts in it
    acc = borrowed(arena[at + 5 * cap : at + 5 * cap + 6])  # a document's tokens, real words,
    # their characters, words with a letter, stop-word bits, non-ASCII tokens
    other, used = np.empty((16, 4), np.int64), 0  # (document, start, end, characters) rows
    for d in range(n_docs):
        start, end = offsets[d], offsets[d + 1]
        row = counts[d]
        i, chars = start, 0
        cum[0] = 0
        acc[:] = 0
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
            flags, length, alnum = 0, 0, 0
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
                alnum += (c & 6) != 0
                length += (c >> 5) & 1
                h = (h ^ np.uint64(b)) * np.uint64(0x100000001B3)
                i += 1
            chars += length
            # most words: whole, or "word," (sp.plain); the rest go through spaCy's steps
            how = sp.plain(data, s, i, h, alnum, flags, keys) if spacy else 1
            if how == 2:
                ph, pf, pl = _measure(data, s, i - 1)
                _add(data, s, i - 1, ph, pf, pl, acc, ws, we, hs, cum, wide)
                ph, pf, pl = _measure(data, i - 1, i)
                _add(data, i - 1, i, ph, pf, pl, acc, ws, we, hs, cum, wide)
            elif how == 0:
                count = recall(cache, h, s, i, spans)
                if count < 0:
                    count = _split(data, s, i, h, t, cache, cps, bpos, spans, suf)
                for k in range(count):
                    a, z = spans[k, 0], spans[k, 1]
                    ph, pf, pl = _measure(data, a, z)
                    _add(data, a, z, ph, pf, pl, acc, ws, we, hs, cum, wide)
            else:
                _add(data, s, i, h, flags, length, acc, ws, we, hs, cum, wide)
        n = acc[0]
        if acc[5]:  # the non-ASCII tokens' rows (grown here: not in the loop above)
            if used + acc[5] > len(other):
                other = _room(other, used, acc[5])
            for j in range(acc[5]):
                q = wide[j]
                other[used, 0], other[used, 1], other[used, 2] = d, ws[q], we[q]
                other[used, 3] = cum[q + 1] - cum[q]
                used += 1
        row[N_TOKENS], row[N_REAL], row[REAL_CHARS] = n, acc[1], acc[2]
        row[N_ALPHA], row[STOP_MASK] = acc[3], acc[4]
        row[CHARS], row[HASHES], row[ELLIPSES], row[NEWLINES] = chars, hashes, ellipses, newlines
        if want_ngrams and n >= 2:
            # buf[8] (_ngrams' candidates, filled later) holds each word's first position
            kinds = _word_ids(data, ws, we, hs, n, wid, wcount, tkey, tval, buf[8])
            _ngrams(wid, wcount, kinds, cum, n, max(chars, 1), grams, d, buf)
    return counts, grams, other[:used]


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


_NO_TABLES = (
    np.zeros(1, np.uint16),
    np.zeros(1, np.uint64),
    np.zeros(2, np.int64),
    np.zeros(1, np.int64),
    np.zeros(1, np.uint64),
    np.ones(1, np.int64),
    np.zeros(1, np.bool_),
)  # the types of kernels_spacy.tables(): whitespace words need none of them


_LOCAL = threading.local()
CACHE_WORDS = 1 << 16  # punctuated words remembered (16 bytes each: `kernels_memo`)


def _words_cache(spacy: bool) -> np.ndarray:
    """The words cache of `_split`, one per thread, kept between batches (spaCy's own cache
    lives as long as its tokenizer)."""
    if not spacy:
        return np.zeros(4, np.uint64)
    if not hasattr(_LOCAL, "cache"):
        _LOCAL.cache = np.zeros(2 * CACHE_WORDS, np.uint64)
    return _LOCAL.cache


def word_signals(
    texts: pa.Array, want_ngrams: bool, words: str = "whitespace"
) -> dict[str, np.ndarray]:
    """The "words" group (and, with want_ngrams, the "ngrams" group) for one batch; `words`
    is "whitespace" or "spacy" (spaCy's English tokens, as datatrove counts them)."""
    data, offsets = buffers(texts)
    n_docs = len(texts)
    spacy = words == "spacy"
    t = sp.tables() if spacy else _NO_TABLES
    arena, hs, sizes = scratch(layout(offsets, spacy))
    counts, grams, other = scan(
        data, offsets, want_ngrams, spacy, t, _words_cache(spacy), arena, hs, sizes
    )
    n_real, real_chars = counts[:, N_REAL].copy(), counts[:, REAL_CHARS].astype(np.float64)
    alpha = counts[:, N_ALPHA].copy()
    if len(other):
        offs, raw = _gather(data, other)
        words = pa.StringArray.from_buffers(len(other), pa.py_buffer(offs), pa.py_buffer(raw))
        doc, length = other[:, 0], other[:, 3]
        real = bools(pc.match_substring_regex(words, r"[^\pP\pS\pC]"))
        has_letter = bools(pc.match_substring_regex(words, r"\pL"))
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


# before anything compiles
forget_stale(globals(), sp.__dict__, kernels_ngrams.__dict__, kernels_memo.__dict__)
