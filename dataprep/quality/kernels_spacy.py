"""spaCy's English word splitting of one whitespace word, compiled (numba), without spaCy.

WHY: datatrove's Gopher filters count spaCy tokens by default; `score --words spacy` must
count the same tokens at the speed of the whitespace kernel. This replays spaCy 3.8's
`Tokenizer._split_affixes` / `_attach_tokens` (spacy/tokenizer.pyx) over the word's code
points: peel one prefix or suffix at a time (stopping at a special case such as "don't" or
"e.g."), keep a URL whole, split the rest at infixes. spaCy's regexes become the class bits
of `spacy_en.classes()`; the tables arrive as arguments (`tables()`), so this module holds
only code. `kernels.scan` calls `split` for every word that is not plain letters and digits.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from dataprep.quality import spacy_en as en

ALPHA, LOWER, UPPER, DIGIT = en.ALPHA, en.LOWER, en.UPPER, en.DIGIT
PREFIX, SUFFIX, QUOTE, DOT_AFTER = en.PREFIX, en.SUFFIX, en.QUOTE, en.DOT_AFTER
ICON, HYPHEN, HOST, INFIX = en.ICON, en.HYPHEN, en.HOST, en.INFIX
_FNV, _PRIME = np.uint64(en.FNV_OFFSET), np.uint64(en.FNV_PRIME)
_TOP = en.TABLE_SIZE
LONGEST = 16  # no special case is longer (spacy_en.exceptions(): 12 characters)


_TABLES: list[tuple] = []


def tables() -> tuple:
    """(classes, special hashes, their offsets, part lengths, unit hashes, longest unit,
    which specials spaCy's matcher looks for: those with a prefix, suffix or infix)."""
    if not _TABLES:
        hashes, offsets, lengths = en.special_table()
        units, longest = en.unit_table()
        cls = en.classes()
        matched = np.zeros(len(hashes), np.bool_)
        for key in en.exceptions():
            cps = np.array([ord(c) for c in key] + [32], np.int64)
            n = len(key)
            marks = _prefix(cps, 0, n, cls) or _suffix(cps, 0, n, cls, units, longest[0])
            marks = marks or any(_infix(cps, i, 0, n, cls) for i in range(n))
            matched[find(hashes, np.uint64(en.fnv(key)))] = bool(marks)
        _TABLES.append((cls, hashes, offsets, lengths, units, longest, matched))
    return _TABLES[0]


@njit(cache=True, inline="always")
def _cls(cls, cp):
    return cls[cp] if cp < _TOP else 0


_TAIL = np.zeros(128, np.bool_)  # ASCII marks spaCy always peels off a word's end
_TAIL[[ord(c) for c in ",:;!?()[]{}<>_#*&'\"`"]] = True


@njit(cache=True, inline="always")
def plain(data, s, e, h, alnum, flags, keys):
    """How spaCy splits an ASCII word of letters alone or digits alone, with at most one mark
    at its end, or of one character, without `split` (most words): 1 = whole, 2 = the last
    byte peeled off, 0 = ask `split` (a special case, "10km", "A.", anything else). h: the
    word's FNV hash; flags, alnum: kernels._CLS bits or-ed and the count of letters and digits."""
    size = e - s
    if flags & 8 or flags & 6 == 6 or alnum < size - 1 or (size > 1 and find(keys, h) >= 0):
        return 0
    if alnum == size or size == 1:  # one character is one token ("-", "*", "a")
        return 1
    last, prev = data[e - 1], data[e - 2] if size >= 2 else 0
    if not (_TAIL[last] or (last == 46 and (97 <= prev <= 122 or 48 <= prev <= 57))):
        return 0
    if size < 2 or not (48 <= prev <= 57 or 65 <= prev <= 90 or 97 <= prev <= 122):
        return 0
    stem = _FNV
    for k in range(s, e - 1):
        stem = (stem ^ np.uint64(data[k])) * _PRIME
    return 0 if find(keys, stem) >= 0 else 2


@njit(cache=True)
def decode(data, s, e, cps, bpos):
    """The code points of data[s:e] into cps, the byte offset of each into bpos; count."""
    n, i = 0, s
    while i < e:
        b = data[i]
        if b < 0x80:
            cp, w = b, 1
        elif b < 0xE0:
            cp, w = b & 0x1F, 2
        elif b < 0xF0:
            cp, w = b & 0x0F, 3
        else:
            cp, w = b & 0x07, 4
        for k in range(1, w):
            if i + k < e:
                cp = (cp << 6) | (data[i + k] & 0x3F)
        cps[n], bpos[n] = cp, i
        n += 1
        i += w
    bpos[n] = e
    return n


@njit(cache=True)
def _hash(cps, a, b):
    h = _FNV
    for k in range(a, b):
        h = (h ^ np.uint64(cps[k])) * _PRIME
    return h


@njit(cache=True, inline="always")
def find(keys, h):
    """The slot of h in the hash set `keys` (spacy_en.hash_set), else -1."""
    mask = len(keys) - 1
    j = (h >> np.uint64(32)) & np.uint64(mask)
    while keys[j]:
        if keys[j] == h:
            return np.int64(j)
        j = (j + np.uint64(1)) & np.uint64(mask)
    return np.int64(-1)


@njit(cache=True)
def _prefix(cps, a, b, cls):
    c = cps[a]
    if c == 43:  # "+" unless a digit follows
        return 0 if a + 1 < b and 48 <= cps[a + 1] <= 57 else 1
    if c == 46:  # a run of dots
        k = a
        while k < b and cps[k] == 46:
            k += 1
        return k - a if k - a >= 2 else 0
    if _cls(cls, c) & PREFIX:
        return 1
    if c == 85 and b - a >= 3 and cps[a + 1] == 83 and cps[a + 2] == 36:  # US$
        return 3
    if (c == 67 or c == 65) and b - a >= 2 and cps[a + 1] == 36:  # C$ A$
        return 2
    return 0


@njit(cache=True, inline="always")
def _is_fck(c):
    return c == 70 or c == 102 or c == 67 or c == 99 or c == 75 or c == 107


@njit(cache=True)
def _suffix(cps, a, b, cls, units, longest):
    """Length of the suffix spaCy's suffix_search finds in cps[a:b] (the leftmost match)."""
    if cps[b - 1] == 46:
        k = b
        while k > a and cps[k - 1] == 46:
            k -= 1
        if b - k >= 2:
            return b - k
    for p in range(max(a, b - longest), b):
        size = b - p
        after_digit = p > a and 48 <= cps[p - 1] <= 57
        if after_digit and find(units, _hash(cps, p, b)) >= 0:
            return size
        if size == 2:
            if (cps[p] == 39 or cps[p] == 0x2019) and (cps[p + 1] == 115 or cps[p + 1] == 83):
                return 2  # 's
            if cps[p] == 0x2026 and cps[p + 1] == 0x2026:
                return 2
        if size != 1:
            continue
        c = cps[p]
        if _cls(cls, c) & SUFFIX or (c == 43 and after_digit):
            return 1
        if c == 46 and p > a:
            prev = _cls(cls, cps[p - 1])
            if after_digit or prev & (LOWER | DOT_AFTER):
                return 1
            if p - 1 > a:
                if prev & UPPER and _cls(cls, cps[p - 2]) & UPPER:
                    return 1
                if cps[p - 2] == 0xB0 and _is_fck(cps[p - 1]):
                    return 1
    return 0


@njit(cache=True)
def _tld_end(cps, t, b, cls):
    """Does a top-level domain start at t and the URL end well after it (port, path, end)?"""
    k = t
    while k < b and _cls(cls, cps[k]) & LOWER:
        k += 1
    if not 2 <= k - t <= 63:
        return False
    if k < b and cps[k] == 58:  # :port
        d = k + 1
        while d < b and 48 <= cps[d] <= 57:
            d += 1
        if not 2 <= d - k - 1 <= 5:
            return False
        k = d
    return k == b or cps[k] == 47 or cps[k] == 63 or cps[k] == 35


@njit(cache=True)
def _host(cps, h, b, cls):
    """Labels "x." (host characters, inner "_" "-") then a lower-case TLD, from h on."""
    k = h
    while k < b:
        start = k
        while k < b and (_cls(cls, cps[k]) & HOST or cps[k] == 95 or cps[k] == 45):
            k += 1
        size = k - start
        if size == 0 or size > 64 or k >= b or cps[k] != 46:
            return False
        if not (_cls(cls, cps[start]) & HOST and _cls(cls, cps[k - 1]) & HOST):
            return False
        k += 1
        if _tld_end(cps, k, b, cls):
            return True
    return False


@njit(cache=True)
def url(cps, a, b, cls, at=True):
    """spaCy's URL_MATCH (scheme://, user@, host names with a TLD; not the IP form); `at`:
    is there an "@" in it."""
    i = a
    for j in range(a, b - 2):
        c = cps[j]
        if c == 58:
            if cps[j + 1] == 47 and cps[j + 2] == 47 and j - a >= 2:
                i = j + 3
            break
        if not (_cls(cls, c) & (ALPHA | DIGIT) or c == 95 or c == 43 or c == 45 or c == 46):
            break
    for j in range(b - 1, i - 1 if at else b - 1, -1):  # user@ (greedy: the last "@" first)
        if cps[j] == 64 and j > i and _host(cps, j + 1, b, cls):
            return True
    return _host(cps, i, b, cls)


@njit(cache=True)
def _infix(cps, i, a, b, cls):
    """Length of the infix matching at i (spaCy's English infixes in order), else 0."""
    c = cps[i]
    if c == 46 and i + 1 < b and cps[i + 1] == 46:
        k = i
        while k < b and cps[k] == 46:
            k += 1
        return k - i
    here = _cls(cls, c)
    if c == 0x2026 or here & ICON:
        return 1
    if i == a or i + 1 >= b:
        return 0
    prev, nxt = _cls(cls, cps[i - 1]), _cls(cls, cps[i + 1])
    if (
        prev & DIGIT
        and (c == 43 or c == 45 or c == 42 or c == 94)
        and (nxt & DIGIT or cps[i + 1] == 45)
    ):
        return 1
    if c == 46 and prev & (LOWER | QUOTE) and nxt & (UPPER | QUOTE):
        return 1
    if c == 44 and prev & ALPHA and nxt & ALPHA:
        return 1
    if not prev & (ALPHA | DIGIT):
        return 0
    if c == 45 or c == 0x2014:  # - -- --- or — ——, before a letter (the shortest first)
        run = i
        while run < b and run - i < (3 if c == 45 else 2) and cps[run] == c:
            run += 1
        for m in range(1, run - i + 1):
            if i + m < b and _cls(cls, cps[i + m]) & ALPHA:
                return m
        return 0
    if c == 0x2013 or c == 126:  # – ~
        return 1 if nxt & ALPHA else 0
    if (c == 58 or c == 60 or c == 62 or c == 61 or c == 47) and nxt & ALPHA:
        return 1
    return 0


@njit(cache=True)
def _emit(cps, a, b, out, n_out, hashes, offsets, lengths, cls):
    """Tokens of the core cps[a:b]: a special case's parts, a URL whole, or infix pieces."""
    if a >= b:
        return n_out
    row = find(hashes, _hash(cps, a, b)) if b - a <= LONGEST else -1
    if row >= 0:
        for k in range(offsets[row], offsets[row + 1]):
            out[n_out, 0], out[n_out, 1] = a, a + lengths[k]
            a += lengths[k]
            n_out += 1
        return n_out
    dot, at = False, False  # a URL has a "."
    for k in range(a, b):
        dot |= cps[k] == 46
        at |= cps[k] == 64
    if not (dot and url(cps, a, b, cls, at)):
        start, i = a, a
        while i < b:
            m = _infix(cps, i, a, b, cls) if _cls(cls, cps[i]) & INFIX else 0
            if m == 0:
                i += 1
                continue
            if i != a:  # spaCy skips an infix at the very start
                if i != start:
                    out[n_out, 0], out[n_out, 1] = start, i
                    n_out += 1
                out[n_out, 0], out[n_out, 1] = i, i + m
                n_out += 1
                start = i + m
            i += m
        a = start
    out[n_out, 0], out[n_out, 1] = a, b
    return n_out + 1


@njit(cache=True)
def split(cps, n, t, out, suf):
    """spaCy's tokens of the word cps[:n] as code-point spans in out[:count]; the count."""
    cls, hashes, offsets, lengths, units, longest, matched = t
    a, b, n_out, n_suf = 0, n, 0, 0
    last = -1
    while a < b and b - a != last:
        if b - a <= LONGEST and find(hashes, _hash(cps, a, b)) >= 0:
            break
        last = b - a
        pre = _prefix(cps, a, b, cls)
        if pre and 0 < b - a - pre <= LONGEST and find(hashes, _hash(cps, a + pre, b)) >= 0:
            out[n_out, 0], out[n_out, 1] = a, a + pre
            n_out += 1
            a += pre
            break
        size = _suffix(cps, a + pre, b, cls, units, longest[0]) if a + pre < b else 0
        if size and 0 < b - size - a <= LONGEST and find(hashes, _hash(cps, a, b - size)) >= 0:
            suf[n_suf, 0], suf[n_suf, 1] = b - size, b
            n_suf += 1
            b -= size
            break
        if pre:
            out[n_out, 0], out[n_out, 1] = a, a + pre
            n_out += 1
            a += pre
        if size:
            suf[n_suf, 0], suf[n_suf, 1] = b - size, b
            n_suf += 1
            b -= size
    n_out = _emit(cps, a, b, out, n_out, hashes, offsets, lengths, cls)
    for k in range(n_suf - 1, -1, -1):
        out[n_out, 0], out[n_out, 1] = suf[k, 0], suf[k, 1]
        n_out += 1
    return _merge(cps, out, n_out, t, suf) if n_out > 1 else n_out


@njit(cache=True)
def _merge(cps, out, n_out, t, buf):
    """spaCy's special-case matcher: runs of 2-4 tokens that spell a special case with
    punctuation in it (":)" "''" "z." "Dr.") become that case's tokens, longest first."""
    hashes, offsets, lengths, matched = t[1], t[2], t[3], t[6]
    n, i = 0, 0
    while i < n_out:
        row, size = -1, 1
        h, last = _FNV, min(4, n_out - i)
        for w in range(last):  # one hash pass, extended token by token; the longest wins
            if out[i + w, 1] - out[i, 0] > LONGEST:
                break
            for k in range(out[i + w, 0], out[i + w, 1]):
                h = (h ^ np.uint64(cps[k])) * _PRIME
            if w:
                hit = find(hashes, h)
                if hit >= 0 and matched[hit]:
                    row, size = hit, w + 1
        if row < 0:
            buf[n, 0], buf[n, 1] = out[i, 0], out[i, 1]
            n += 1
            i += 1
            continue
        a = out[i, 0]
        for k in range(offsets[row], offsets[row + 1]):
            buf[n, 0], buf[n, 1] = a, a + lengths[k]
            a += lengths[k]
            n += 1
        i += size
    out[:n] = buf[:n]
    return n


def tokens(text: str) -> list[str]:
    """spaCy's tokens of `text` as this module splits them (tests and the reference path)."""
    t = tables()
    out: list[str] = []
    for word in text.split():
        raw = np.frombuffer(word.encode(), np.uint8)
        cps = np.empty(len(raw) + 1, np.int64)
        bpos = np.empty(len(raw) + 1, np.int64)
        n = decode(raw, 0, len(raw), cps, bpos)
        spans = np.empty((n + 1, 2), np.int64)
        count = split(cps, n, t, spans, np.empty((n + 1, 2), np.int64))
        out.extend(word[s:e] for s, e in spans[:count])
    return out
