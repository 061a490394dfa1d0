"""The n-gram signals of one document from its numbered words (numba), for `kernels.scan`.

WHY a module of its own: the word pass (kernels.py) and this part are each one job; the
values are exactly those of `repetition.ngram_signals` (tests/test_score.py compares them).
"""

from __future__ import annotations

import sys

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xC2B2AE3D27D4EB4F)
_S29 = np.uint64(29)
_LONG = np.int64(1) << 62
_LITTLE = sys.byteorder == "little"  # _load8's bytes in the byte loop's order


@njit(cache=True, inline="always")
def _same(data, s1, e1, s2, e2):
    if e1 - s1 != e2 - s2:
        return False
    for k in range(e1 - s1):
        if data[s1 + k] != data[s2 + k]:
            return False
    return True


@njit(cache=True, inline="always")
def _mix(a, b):
    h = (np.uint64(a) * _M1) ^ (np.uint64(b) * _M2)
    return h ^ (h >> _S29)


@intrinsic
def _load8(typingctx, arr, idx):
    """The 8 bytes arr[idx:idx + 8] as one little-endian int64 (one unaligned load; the
    caller checks idx + 8 <= len(arr))."""

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        i64 = ir.IntType(64)
        ptr = builder.bitcast(builder.gep(ary.data, [args[1]]), i64.as_pointer())
        return builder.load(ptr, align=1)

    if not (isinstance(arr, types.Array) and arr.dtype == types.uint8 and arr.layout == "C"):
        return None  # only a contiguous byte array has its bytes one after another
    return types.int64(arr, idx), codegen


@njit(cache=True, inline="always")
def _word_key(data, s, e, h):
    """A key equal for equal words: a word of up to 7 bytes is its bytes and length (exact,
    no second look at the text), a longer one its hash (bit 62 set), checked byte by byte.

    WHY one 8-byte load: most words are short, and a loop of byte loads per word
    costs more than one read (x86 and ARM read little-endian: byte k lands at bit 8k,
    the same key the byte loop builds, which is kept for the text's last 7 bytes and
    big-endian machines)."""
    size = e - s
    if _LITTLE and size <= 7 and s + 8 <= len(data):
        return (_load8(data, s) & ((np.int64(1) << (8 * size)) - 1)) | (np.int64(size) << 56)
    if size <= 7:
        key = np.int64(e - s) << 56
        for k in range(e - s):
            key |= np.int64(data[s + k]) << (8 * k)
        return key
    return np.int64(h >> np.uint64(2)) | _LONG


@njit(cache=True)
def _word_ids(data, ws, we, hs, n, ids, counts, tkey, tval, firstpos):
    """Number the document's n words 0.. in order of first appearance (equal bytes, equal
    number); counts[id] how often each occurs. Returns how many distinct words.

    WHY keys: in a long document the table and the earlier copies of a word are far apart in
    memory; most words are short enough that their key is the word, so a probe is one
    look-up and the bytes of the earlier copy are read only for long words."""
    size = 16  # grown as words are met: a long document has few distinct words
    while size < min(2 * n, 1024):
        size *= 2
    mask = size - 1
    tkey[:size] = -1
    k = 0
    for i in range(n):
        key = _word_key(data, ws[i], we[i], hs[i])
        j = np.int64(_mix(key, 0) & np.uint64(mask))
        while True:
            t = tkey[j]
            if t < 0:
                tkey[j] = key
                tval[j] = k
                ids[i] = k
                counts[k] = 1
                firstpos[k] = i
                k += 1
                if 2 * k > size:  # double the table, put the k words back
                    size *= 2
                    mask = size - 1
                    tkey[:size] = -1
                    for c in range(k):
                        f = firstpos[c]
                        key = _word_key(data, ws[f], we[f], hs[f])
                        j = np.int64(_mix(key, 0) & np.uint64(mask))
                        while tkey[j] >= 0:
                            j = (j + 1) & mask
                        tkey[j], tval[j] = key, c
                break
            if t == key:
                c = tval[j]
                f = firstpos[c]
                if key < _LONG or _same(data, ws[f], we[f], ws[i], we[i]):
                    ids[i] = c
                    counts[c] += 1
                    break
            j = (j + 1) & mask
    return k


@njit(cache=True)
def _regrow(tka, tval, size, k, first, prev, wid, last):
    """Double the n-gram table and put its k n-grams back (each from its first position)."""
    size *= 2
    mask = size - 1
    tka[:size] = -1
    for c in range(k):
        f = first[c]
        key = (prev[f] << 32) | wid[f + last]
        j = np.int64(_mix(key, 0) & np.uint64(mask))
        while tka[j] >= 0:
            j = (j + 1) & mask
        tka[j], tval[j] = key, c
    return size, mask


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
        size = 16  # sized to the n-grams met (grown below), not the positions: long
        while size < 2 * min(nc, kinds):  # repetitive documents meet few, and a small
            size *= 2  # table stays in the CPU cache
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
                    if 2 * k > size:
                        size, mask = _regrow(tka, tval, size, k, first, prev, wid, n - 1)
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
        kinds = k  # the next n splits these: a first guess at how many it meets
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
