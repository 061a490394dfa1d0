"""The trainer's data feed: batches forever, epoch after epoch, each fetch timed.

Timing a fetch on the host says how long training waited for data; on a GPU two events around
it also say how long the device sat idle for it (a fetch overlapped by queued work costs none).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from dataprep.loader import ShardDataset
from dataprep.loader.dataloader import ShardDataLoader
from dataprep.train.user_error import RunRefused


@dataclass
class Fetched:
    batch: dict[str, Any]
    wait_s: float  # host time blocked in the loader
    marks: tuple[torch.cuda.Event, torch.cuda.Event] | None  # around the fetch, on the stream

    def stall_s(self) -> float:
        """How long the GPU sat idle for want of this batch (after a sync): the gap between
        the marks, about 0 when queued work covered the fetch. On CPU nothing overlaps it."""
        if self.marks is None:
            return self.wait_s
        return self.marks[0].elapsed_time(self.marks[1]) / 1000


class Feed:
    """Batches from `epoch` (at the loader's resumed position) on; `epoch` follows the reader.

    `too_few`: the refusal when a fresh epoch yields no batch at all (equal batches: every
    rank finds none at once, so all refuse together instead of waiting on each other)."""

    def __init__(
        self,
        dataset: ShardDataset,
        loader: ShardDataLoader,
        epoch: int,
        is_cuda: bool,
        too_few: str,
    ):
        self.dataset = dataset
        self.loader = loader
        self.epoch = epoch
        self.is_cuda = is_cuda
        self.too_few = too_few
        self._stream = self._batches()

    def _batches(self) -> Iterator[dict[str, Any]]:
        while True:
            self.dataset.set_epoch(self.epoch)
            fresh = self.dataset.next_pass().start == 0
            yielded = 0
            for batch in self.loader:
                yielded += 1
                yield batch
            if fresh and yielded == 0:
                raise RunRefused(self.too_few)
            self.epoch += 1

    def fetch(self) -> Fetched:
        """The next batch, timed on the host and, bracketed by two events, on the GPU."""
        marks = None
        if self.is_cuda:
            marks = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
            marks[0].record()
        t0 = time.perf_counter()
        batch = next(self._stream)
        wait = time.perf_counter() - t0
        if marks is not None:
            marks[1].record()
        return Fetched(batch, wait, marks)
