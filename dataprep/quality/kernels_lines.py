"""The line and paragraph signals as one compiled pass (numba) per document.

WHY: the vectorised groups split every batch into Arrow arrays of lines three times (Python's
line breaks, runs of "\\n", runs of "\\n\\n"), trim them and hash them; here each document is
walked once per kind of piece while it is in cache, and the duplicate pieces come from a small
hash table that compares the bytes. The values are exactly those of `signals._lines`,
`_dup_lines` and `_dup_paras`, which stay as the reference and the fallback
(tests/test_score.py). Whitespace is Arrow's (`utf8_trim_whitespace`), as there.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from numba import njit

from dataprep.quality.kernels import _same, _space, buffers
from dataprep.quality.kernels_cache import forget_stale
from dataprep.quality.kernels_views import borrowed

# per-document outputs of `scan_lines`
N_LINES, BULLETS, ELLIPSES, N_LINE_PIECES, DUP_LINES, DUP_LINE_CHARS = range(6)
N_PARAS, DUP_PARAS, DUP_PARA_CHARS, CHARS = range(6, 10)


@njit(cache=True, inline="always")
def _break(data, i, end):
    """Bytes of the str.splitlines() line break starting at data[i], else 0."""
    b = data[i]
    if b == 13:
        return 2 if i + 1 < end and data[i + 1] == 10 else 1
    if b == 10 or b == 11 or b == 12 or b == 28 or b == 29 or b == 30:
        return 1
    if b == 0xC2:
        return 2 if i + 1 < end and data[i + 1] == 0x85 else 0
    if b == 0xE2 and i + 2 < end and data[i + 1] == 0x80:
        return 3 if data[i + 2] == 0xA8 or data[i + 2] == 0xA9 else 0
    return 0


@njit(cache=True, inline="always")
def _space_before(data, start, i):
    """Bytes of the whitespace character ending just before data[i], else 0."""
    for k in (1, 2, 3):
        if i - k >= start and (k == 1 or (data[i - k] & 0xC0) == 0xC0 or data[i - k] < 128):
            if _space(data, i - k, i) == k:
                return k
            if (data[i - k] & 0xC0) != 0x80:
                return 0
    return 0


@njit(cache=True, inline="always")
def _chars(data, s, e):
    n = 0
    for i in range(s, e):
        n += (data[i] & 0xC0) != 0x80
    return n


_K1, _K2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F)


@njit(cache=True, inline="always")
def _hash(data, s, e):
    """A hash of data[s:e] for `_dups` (which compares the bytes of equal hashes): four
    multiply chains over every fourth byte run side by side, where one FNV chain waits on
    each multiply (lines and paragraphs are hashed whole, every byte twice)."""
    a = b = c = d = np.uint64(e - s)
    i = s
    while i + 4 <= e:
        a = (a ^ np.uint64(data[i])) * _K1
        b = (b ^ np.uint64(data[i + 1])) * _K1
        c = (c ^ np.uint64(data[i + 2])) * _K1
        d = (d ^ np.uint64(data[i + 3])) * _K1
        i += 4
    while i < e:
        a = (a ^ np.uint64(data[i])) * _K2
        i += 1
    h = (a ^ (b >> np.uint64(17))) * _K2 + (c ^ (d >> np.uint64(23))) * _K1 + (b ^ d)
    return h ^ (h >> np.uint64(29))


@njit(cache=True)
def _dups(data, ps, pe, n, tkey, hs):
    """How many of the n pieces repeat an earlier piece (equal bytes), and their characters."""
    size = 16
    while size < 2 * n:
        size *= 2
    mask = size - 1
    tkey[:size] = -1
    count, chars = 0, 0
    for p in range(n):
        h = _hash(data, ps[p], pe[p])
        j = np.int64(h & np.uint64(mask))
        while True:
            t = tkey[j]
            if t < 0:
                tkey[j] = p
                hs[j] = h
                break
            if hs[j] == h and _same(data, ps[t], pe[t], ps[p], pe[p]):
                count += 1
                chars += _chars(data, ps[p], pe[p])
                break
            j = (j + 1) & mask
    return count, chars


@njit(cache=True)
def _paragraphs(a, b, rs, re_, runs, ps, pe):
    """Pieces of data[a:b] between the runs rs[r]:re_[r] of "\\n\\n" or more inside it (as a
    regex split: "" is one piece)."""
    n, s = 0, a
    for r in range(runs):
        if rs[r] >= a and re_[r] <= b:
            ps[n], pe[n] = s, rs[r]
            n += 1
            s = re_[r]
    ps[n], pe[n] = s, b
    return n + 1


_SKIP = np.ones(256, np.bool_)  # bytes that cannot start a line break
_SKIP[[10, 11, 12, 13, 28, 29, 30, 0xC2, 0xE2]] = False


@njit(cache=True)
def scan_lines(data, offsets):
    """Per document the counts N_LINES..CHARS (see the module's column names). One walk finds
    Python's lines, the pieces between runs of "\\n" and those runs of two or more (the
    paragraph breaks)."""
    n_docs = len(offsets) - 1
    data = borrowed(data)  # not reference-counted in every inlined helper (kernels_views)
    out = np.zeros((n_docs, 10), np.int64)
    longest = 0
    for d in range(n_docs):
        longest = max(longest, offsets[d + 1] - offsets[d])
    cap = longest + 1
    ps = np.empty(cap, np.int64)
    pe = np.empty(cap, np.int64)
    rs = np.empty(cap, np.int64)
    re_ = np.empty(cap, np.int64)
    table = 16
    while table < 2 * cap:
        table *= 2
    tkey = np.empty(table, np.int64)
    hs = np.empty(table, np.uint64)
    for d in range(n_docs):
        start, end = offsets[d], offsets[d + 1]
        row = out[d]
        row[CHARS] = _chars(data, start, end)
        # Python's lines: bullets after leading whitespace, ellipses before trailing whitespace
        s, i, pieces, last_empty = start, start, 0, True
        n, ns, run_at, nl_end, runs = 0, start, -1, -1, 0  # "\n" pieces, "\n\n+" runs
        while True:
            while i < end and _SKIP[data[i]]:  # most bytes: skip them fast
                i += 1
            k = _break(data, i, end) if i < end else -1
            if k == 0:
                i += 1
                continue
            if k > 0:
                q = i if data[i] == 10 else i + 1 if k == 2 and data[i + 1] == 10 else -1
                if q >= 0:
                    if q != nl_end:  # a new run of "\n": the piece before it ends
                        if nl_end - run_at >= 2:
                            rs[runs], re_[runs] = run_at, nl_end
                            runs += 1
                        ps[n], pe[n] = ns, q
                        n += 1
                        run_at = q
                    ns = nl_end = q + 1
            pieces += 1
            last_empty = i == s
            a, b = s, i
            while a < b:
                w = _space(data, a, b)
                if w == 0:
                    break
                a += w
            if a < b and (
                data[a] == 45
                or (a + 2 < b and data[a] == 0xE2 and data[a + 1] == 0x80 and data[a + 2] == 0xA2)
            ):
                row[BULLETS] += 1
            while b > a:
                w = _space_before(data, a, b)
                if w == 0:
                    break
                b -= w
            if b - a >= 3 and (
                (data[b - 1] == 46 and data[b - 2] == 46 and data[b - 3] == 46)
                or (data[b - 3] == 0xE2 and data[b - 2] == 0x80 and data[b - 1] == 0xA6)
            ):
                row[ELLIPSES] += 1
            if k < 0:
                break
            i += k
            s = i
        row[N_LINES] = pieces - last_empty
        ps[n], pe[n] = ns, end
        n += 1
        if nl_end - run_at >= 2:
            rs[runs], re_[runs] = run_at, nl_end
            runs += 1
        row[N_LINE_PIECES] = n
        row[DUP_LINES], row[DUP_LINE_CHARS] = _dups(data, ps, pe, n, tkey, hs)
        a, b = start, end  # paragraphs of the trimmed text
        while a < b:
            w = _space(data, a, b)
            if w == 0:
                break
            a += w
        while b > a:
            w = _space_before(data, a, b)
            if w == 0:
                break
            b -= w
        n = _paragraphs(a, b, rs, re_, runs, ps, pe)
        row[N_PARAS] = n
        row[DUP_PARAS], row[DUP_PARA_CHARS] = _dups(data, ps, pe, n, tkey, hs)
    return out


def line_signals(texts: pa.Array) -> dict[str, np.ndarray]:
    """The "lines", "dup_lines" and "dup_paras" groups for one batch."""
    c = scan_lines(*buffers(texts))
    chars = c[:, CHARS]
    return {
        "bullet_line_fraction": _ratio(c[:, BULLETS], c[:, N_LINES]),
        "ellipsis_line_fraction": _ratio(c[:, ELLIPSES], c[:, N_LINES]),
        "dup_line_fraction": _ratio(c[:, DUP_LINES], c[:, N_LINE_PIECES]),
        "dup_line_char_fraction": _ratio(c[:, DUP_LINE_CHARS], chars),
        "dup_para_fraction": _ratio(c[:, DUP_PARAS], c[:, N_PARAS]),
        "dup_para_char_fraction": _ratio(c[:, DUP_PARA_CHARS], chars),
    }


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros(len(num), dtype=np.float64), where=den > 0)


forget_stale(globals())  # before anything compiles
