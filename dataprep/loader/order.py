"""The epoch order: which rows make global batch b, fixed by (seed, epoch) alone.

The order never depends on how many ranks or DataLoader workers read it, so a job that restarts
with another topology continues the very same sequence. It is built in three steps:

1. *Stream*: the (shard, row group) units, permuted by (seed, epoch) when shuffling, laid end
   to end.
2. *Lanes*: the stream is cut into `K` contiguous lanes of whole batches (the last lane also
   holds the final partial batch). Global batches take lanes round-robin, so batch b comes from
   lane b mod K. A reader that owns batches b = rho (mod R) with K divisible by R therefore
   reads only its own lanes: no row group is decoded by two readers (except the one a lane
   starts in). K is chosen from the dataset size and the `lanes` setting (at most one lane per
   window of batches and per 4 row groups), never from the topology.
3. *Windows*: each lane is split into windows of `window` rows (a multiple of the batch size);
   rows inside a window are permuted by (seed, epoch, lane, window). A batch lies inside one
   window, so a reader holds one window per lane it owns.

Everything here is O(units + lanes) integers per epoch, computed on demand: resuming costs no
re-read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_SALT = 0x5EED_DA7A
_UNITS_PER_LANE = 4


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
    ):
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.batch_size = bs = batch_size
        self.seed, self.epoch, self.shuffle = seed, epoch, shuffle
        rng = np.random.default_rng([_SALT, seed, epoch])
        units = len(unit_rows)
        self.perm = rng.permutation(units) if shuffle else np.arange(units)
        self.stream_start = np.concatenate([[0], np.cumsum(unit_rows[self.perm])]).astype(np.int64)
        self.num_rows = n = int(self.stream_start[-1])
        self.full_batches = nb = n // bs
        self.tail = n - nb * bs
        self.num_batches = nb + (1 if self.tail else 0)
        self.window_batches = max(1, window_rows // bs)
        self.window = self.window_batches * bs
        # a lane shorter than a window gains nothing, and one shorter than a few row groups
        # re-decodes the row group it starts in (its head is the previous lane's tail)
        self.lanes = k = max(1, min(lanes, nb // self.window_batches, units // _UNITS_PER_LANE))
        self.q, self.m = divmod(nb, k)
        lane_batches = np.full(k, self.q, dtype=np.int64)
        lane_batches[: self.m] += 1
        self.lane_start = np.concatenate([[0], np.cumsum(lane_batches) * bs]).astype(np.int64)
        self.lane_len = lane_batches * bs
        self.lane_len[-1] += self.tail
        self._perms: dict[int, tuple[int, np.ndarray]] = {}  # lane -> its current window's perm

    # --- batches -----------------------------------------------------------------------------

    def locate(self, b: int) -> tuple[int, int]:
        """Global batch b -> (lane, batch index within the lane)."""
        k, q = self.lanes, self.q
        if b < q * k:
            return b % k, b // k
        if b < self.full_batches:
            return b - q * k, q
        if b == self.full_batches and self.tail:
            return k - 1, q
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
