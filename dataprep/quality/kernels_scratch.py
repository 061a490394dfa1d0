"""The compiled word pass's scratch: its sizes for a batch, and one arena per thread.

WHY a module of its own: how much scratch `kernels.scan` needs and how it is kept between
batches is one job, apart from the pass itself (kernels.py).
"""

from __future__ import annotations

import threading

import numpy as np
from numba import njit

_LOCAL = threading.local()


@njit(cache=True)
def layout(offsets, spacy):
    """Sizes of `scan`'s scratch for these documents: (tokens per document at most, rows
    for one word's code points and spans, hash table slots, int64 values in all)."""
    longest = 0
    for d in range(len(offsets) - 1):
        longest = max(longest, offsets[d + 1] - offsets[d])
    cap = longest + 1 if spacy else longest // 2 + 1  # spaCy: up to a token per byte
    c1 = cap + 1 if spacy else 1
    table = 16
    while table < 2 * cap:
        table *= 2
    return cap, c1, table, extent(cap, c1, table)


@njit(cache=True)
def extent(cap, c1, table):
    """int64 values of scratch for `layout`'s first three sizes."""
    return 6 * c1 + 10 * cap + 7 + 2 * table


SCRATCH_KEPT = 1 << 28  # int64 values of scratch a thread may keep between batches (2 GiB
# of address space: only the pages the documents touch are memory, see scratch)


def scratch(sizes: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray, tuple]:
    """`scan`'s scratch (arena, hs, the sizes it is laid out by) for `layout`'s sizes: the
    thread's own, kept between batches with one layout, grown to the largest sizes met.

    WHY one layout: each part then starts at the same place in every batch, so a batch
    reuses the pages the earlier ones touched (a part's first tokens' worth) instead of
    faulting in freshly zeroed ones: on long documents the kernel zeroing pages took ~15%
    of the pass. A batch that needs more than SCRATCH_KEPT gets arrays of its own."""
    have = getattr(_LOCAL, "scratch", None)
    if have is not None and all(k >= s for k, s in zip(have[2], sizes[:3], strict=True)):
        return have
    dims = sizes[:3]
    if have is not None:  # at least the old sizes; cap by half again, not by every byte
        dims = (
            max(dims[0], have[2][0] * 3 // 2),
            max(dims[1], have[2][1]),
            max(dims[2], have[2][2]),
        )
    need = extent(*dims)
    if need > SCRATCH_KEPT:
        return np.empty(sizes[3], np.int64), np.empty(sizes[0], np.uint64), sizes[:3]
    _LOCAL.scratch = (np.empty(need, np.int64), np.empty(dims[0], np.uint64), dims)
    return _LOCAL.scratch
