"""Which of the epoch's global batches one rank (and one DataLoader worker) yields.

Rank r takes global batches start + r, start + r + W, ... (W = world size), which is exactly
what DDP consumes in lockstep, so a checkpoint after k steps on every rank means "global batches
< start + k*W are done" whatever W was. Inside a rank, worker w takes the rank's items
w, w + n, ...; torch's DataLoader returns worker outputs round-robin, so the rank sees the same
sequence for any worker count.

With `equal_batches`, the last incomplete round (fewer batches than ranks) is re-split into one
smaller batch per rank so every rank steps the same number of times (DDP cannot hang); only
when fewer samples than ranks remain, or `drop_last` asks for full batches, are samples trimmed,
and the count is reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dataprep.loader.order import EpochPlan

Slice = tuple[int, int, int]  # (global batch, first sample, stop sample) within that batch
Item = tuple[Slice, ...]  # one yielded batch: one slice, or several for a re-split last round


@dataclass
class Schedule:
    """The items of one rank for one pass over an epoch starting at global batch `start`."""

    plan: EpochPlan
    start: int
    rank: int
    world: int
    equal: bool
    drop_last: bool

    def __post_init__(self) -> None:
        plan = self.plan
        drop_tail = self.drop_last and plan.tail > 0
        self.end = plan.full_batches if drop_tail else plan.num_batches
        remaining = max(0, self.end - self.start)
        self.trimmed = plan.tail if drop_tail else 0
        self.split: Item | None = None
        if not self.equal:
            self.full = len(range(self.rank, remaining, self.world))
            return
        self.full = remaining // self.world
        left = range(self.start + self.full * self.world, self.end)
        sizes = [plan.batch_len(b) for b in left]
        total = sum(sizes)
        if self.drop_last or total < self.world:
            self.trimmed += total
            return
        lo, hi = self.rank * total // self.world, (self.rank + 1) * total // self.world
        pieces: list[Slice] = []
        offset = 0
        for b, size in zip(left, sizes, strict=True):
            a, z = max(lo, offset), min(hi, offset + size)
            if z > a:
                pieces.append((b, a - offset, z - offset))
            offset += size
        self.split = tuple(pieces)

    def __len__(self) -> int:
        return self.full + (1 if self.split is not None else 0)

    def __getitem__(self, i: int) -> Item:
        if i < self.full:
            b = self.start + self.rank + i * self.world
            return ((b, 0, self.plan.batch_len(b)),)
        if i == self.full and self.split is not None:
            return self.split
        raise IndexError(i)

    def consumed(self, items_done: int) -> int:
        """Global batches done once every rank has yielded `items_done` items (the resume point)."""
        if items_done >= len(self):
            return self.plan.num_batches
        return min(self.plan.num_batches, self.start + items_done * self.world)


class Strided(Sequence[Item]):
    """Items worker, worker + n, ... of a rank's schedule, without materialising them."""

    def __init__(self, items: Sequence[Item], worker: int, workers: int):
        self._items = items
        self._index = range(worker, len(items), workers)

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, i: int) -> Item:  # type: ignore[override]
        return self._items[self._index[i]]
