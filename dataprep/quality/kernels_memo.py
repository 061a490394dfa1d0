"""spaCy's tokens of punctuated words met before, for `kernels.scan` (numba).

WHY: spaCy keeps a cache per whitespace word, and so does the compiled pass: changelogs,
licences and man pages repeat "section.", "(a)", ".TP" and their maintainers' addresses.
A hit must cost less than splitting the word again (~0.5 us): one 16-byte slot holds the
word's 64-bit hash and its token lengths packed (up to MAX_TOKENS of them, each under 256
bytes), two slots per set in one cache line, the newer first; a new word pushes out the
older of its set. The table (`kernels.CACHE_WORDS` slots) stays in the CPU's caches, where a
hit is one read instead of three far apart.
"""

from __future__ import annotations

import numpy as np
from numba import njit

MAX_TOKENS = 7  # 4 bits of count + 7 lengths of 8 bits in one uint64
_FOUR, _EIGHT, _BYTE = np.uint64(4), np.uint64(8), np.uint64(255)


@njit(cache=True, inline="always")
def _set(table, h):
    """The index in `table` of the first of the two slots (hash, lengths) where h may be."""
    sets = np.uint64(len(table) >> 2)
    return np.int64(((h >> np.uint64(32)) & (sets - np.uint64(1))) << np.uint64(2))


@njit(cache=True, inline="always")
def recall(table, h, s, e, spans):
    """The token count of the word data[s:e] (hash h) with its byte spans in spans[:count],
    or -1 where it is not remembered (or a word of another length has its hash)."""
    k = _set(table, h)
    for way in (0, 2):
        if table[k + way] == h:
            packed = table[k + way + 1]
            count = np.int64(packed & np.uint64(15))
            pos = s
            for q in range(count):
                size = np.int64((packed >> (_FOUR + _EIGHT * np.uint64(q))) & _BYTE)
                spans[q, 0], spans[q, 1] = pos, pos + size
                pos += size
            return count if pos == e and count > 0 else -1
    return -1


@njit(cache=True, inline="always")
def remember(table, h, spans, count):
    """Keep the word's token lengths (spans[:count]) under its hash h, unless they do not
    fit a slot (more than MAX_TOKENS tokens, a token of 256 bytes or more)."""
    if count > MAX_TOKENS or count < 1 or h == np.uint64(0):
        return
    packed = np.uint64(count)
    for q in range(count):
        size = spans[q, 1] - spans[q, 0]
        if size > 255:
            return
        packed |= np.uint64(size) << (_FOUR + _EIGHT * np.uint64(q))
    k = _set(table, h)
    table[k + 2], table[k + 3] = table[k], table[k + 1]
    table[k], table[k + 1] = h, packed
