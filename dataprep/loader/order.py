"""The epoch order: which rows make global batch b, fixed by (seed, epoch) alone.

The order never depends on how many ranks or DataLoader workers read it, so a job that restarts
with another topology continues the very same sequence. It is built in three steps:

1. *Stream*: the (shard, row group) units, permuted by (seed, epoch) when shuffling, laid end
   to end.
2. *Lanes*: the stream is cut into `K` contiguous lanes of whole batches (the last lane also
   holds the final partial batch), near-equal, each cut moved to the row-group boundary
   nearest it and then to the first batch boundary at or after that (`cuts="up"`, so a lane
   starts fewer than a batch of rows into a row group; the rule of version-1 states,
   `cuts="nearest"`, took the nearer batch boundary, which could start a lane just before
   the end of a large row group that then had to be decoded twice). Global batches take the
   lanes that still have batches round-robin, so batch b comes from lane b mod K until the
   shortest lane runs out. A reader that owns
   batches b = rho (mod R) with K divisible by R therefore reads only its own lanes (but for
   the last few rounds): a row group is decoded by one reader. K is chosen from the dataset
   size and the `lanes` setting (at most one lane per window of batches and per 2 row groups),
   never from the topology.
3. *Windows*: each lane is split into windows of `window` rows (a multiple of the batch size);
   rows inside a window are permuted by (seed, epoch, lane, window). A batch lies inside one
   window, so a reader holds one window per lane it owns.

Everything here is O(units + lanes) integers per epoch, computed on demand: resuming costs no
re-read.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

_SALT = 0x5EED_DA7A
_UNITS_PER_LANE = 2
CUTS = ("up", "nearest")  # lane cut rules: the current one, and that of version-1 states


@dataclass(frozen=True)
class Piece:
    """Rows [start, stop) of unit `unit` (index into the dataset's unit list)."""

    unit: int
    start: int
    stop: int


class EpochPlan:
    """The global batch sequence of one epoch (see module docstring)."""

    def __init__(
        self,
        unit_rows: np.ndarray,
        batch_size: int,
        seed: int,
        epoch: int,
        shuffle: bool,
        lanes: int,
        window_rows: int,
        cuts: str = "up",
    ):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.batch_size = bs = batch_size
        self.seed, self.epoch, self.shuffle = seed, epoch, shuffle
        if cuts not in CUTS:
            raise ValueError(f"cuts must be one of {CUTS}")
        self.cuts = cuts
        units = len(unit_rows)
        if shuffle:  # unshuffled reading never imports numpy.random (~30 ms)
            self.perm = np.random.default_rng([_SALT, seed, epoch]).permutation(units)
        else:
            self.perm = np.arange(units)
        self.stream_start = np.concatenate([[0], np.cumsum(unit_rows[self.perm])]).astype(np.int64)
        self.num_rows = n = int(self.stream_start[-1])
        self.full_batches = nb = n // bs
        self.tail = n - nb * bs
        self.num_batches = nb + (1 if self.tail else 0)
        self.window_batches = max(1, window_rows // bs)
        self.window = self.window_batches * bs
        # a lane shorter than a window gains nothing, and one shorter than a few row groups
        # would mostly be row groups shared with its neighbours
        k = max(1, min(lanes, nb // self.window_batches, units // _UNITS_PER_LANE))
        counts = self._lane_batches(k)
        self.lanes = k = len(counts)
        self.lane_batches = counts
        self.lane_start = np.concatenate([[0], np.cumsum(counts) * bs]).astype(np.int64)
        self.lane_len = counts * bs
        self.lane_len[-1] += self.tail
        self._rounds(counts)
        self._perms: dict[int, tuple[int, np.ndarray]] = {}  # lane -> its current window's perm

    def _lane_batches(self, k: int) -> np.ndarray:
        """Batches per lane: near-equal lanes cut at the row-group boundary nearest each
        target, rounded to whole batches. A lane that starts inside a row group decodes and
        drops the rows before its start (Parquet cannot seek to a row), so "up" rounds to the
        batch boundary at or after the row-group boundary: fewer than a batch of rows are
        dropped. "nearest" (version-1 states) may drop almost a whole row group."""
        bs, nb = self.batch_size, self.full_batches
        bounds = self.stream_start
        cuts = [0]
        for i in range(1, k):
            target = i * nb * bs / k
            j = int(np.searchsorted(bounds, target))
            near = [int(bounds[x]) for x in (j - 1, j) if 0 <= x < len(bounds)]
            best = min(near, key=lambda v: abs(v - target)) if near else target
            batches = -(-int(best) // bs) if self.cuts == "up" else int(round(best / bs))
            cut = min(nb, max(cuts[-1], batches))
            if cut > cuts[-1]:
                cuts.append(cut)
        if nb > cuts[-1] or len(cuts) == 1:
            cuts.append(nb)
        return np.diff(np.asarray(cuts, dtype=np.int64))

    def _rounds(self, counts: np.ndarray) -> None:
        """Round-robin over lanes that still have batches: segments of rounds with the same
        active lanes, so `locate` is a search over at most `lanes` segments."""
        self._seg_base, self._seg_round, self._seg_lanes = [], [], []
        base, prev = 0, 0
        for t in sorted({int(c) for c in counts if c > 0}):  # np.unique imports numpy.ma
            active = np.flatnonzero(counts >= t)
            self._seg_base.append(base)
            self._seg_round.append(prev)
            self._seg_lanes.append(active)
            base += int(t - prev) * len(active)
            prev = int(t)

    # --- batches -----------------------------------------------------------------------------

    def locate(self, b: int) -> tuple[int, int]:
        """Global batch b -> (lane, batch index within the lane)."""
        if 0 <= b < self.full_batches:
            i = bisect.bisect_right(self._seg_base, b) - 1
            lanes = self._seg_lanes[i]
            offset = b - self._seg_base[i]
            return int(lanes[offset % len(lanes)]), self._seg_round[i] + offset // len(lanes)
        if b == self.full_batches and self.tail:
            return self.lanes - 1, int(self.lane_batches[-1])
        raise IndexError(f"batch {b} outside epoch of {self.num_batches} batches")

    def batch_len(self, b: int) -> int:
        return self.batch_size if b < self.full_batches else self.tail

    def batch_rows(
        self, b: int, start: int = 0, stop: int | None = None
    ) -> tuple[int, int, slice | np.ndarray]:
        """(lane, window, row offsets inside that window) of samples [start, stop) of batch b."""
        lane, idx = self.locate(b)
        stop = self.batch_len(b) if stop is None else stop
        window = idx // self.window_batches
        first = idx * self.batch_size - window * self.window
        perm = self.window_perm(lane, window)
        if perm is None:
            return lane, window, slice(first + start, first + stop)
        return lane, window, perm[first + start : first + stop]

    # --- windows -----------------------------------------------------------------------------

    def window_span(self, lane: int, window: int) -> tuple[int, int]:
        """Stream rows [a, b) of a lane's window."""
        a = int(self.lane_start[lane]) + window * self.window
        end = int(self.lane_start[lane] + self.lane_len[lane])
        return a, min(a + self.window, end)

    def window_perm(self, lane: int, window: int) -> np.ndarray | None:
        if not self.shuffle:
            return None
        cached = self._perms.get(lane)
        if cached is not None and cached[0] == window:
            return cached[1]
        a, b = self.window_span(lane, window)
        rng = np.random.default_rng([_SALT, self.seed, self.epoch, lane, window])
        perm = rng.permutation(b - a)
        self._perms[lane] = (window, perm)
        return perm

    def pieces(self, a: int, b: int) -> list[Piece]:
        """Stream rows [a, b) as (unit, row range) pieces, in stream order."""
        out: list[Piece] = []
        i = int(np.searchsorted(self.stream_start, a, side="right")) - 1
        while a < b:
            s, e = int(self.stream_start[i]), int(self.stream_start[i + 1])
            stop = min(b, e)
            if stop > a:
                out.append(Piece(int(self.perm[i]), a - s, stop - s))
            a = max(a, stop)
            i += 1
        return out
