"""Mixing several datasets in fixed proportions, deterministic and resumable like one.

A mixed epoch is a sequence of whole batches, each from one source. Source s contributes
exactly round(w_s * G) of its full batches, where G is the largest mixed length that no source
runs out of; which source feeds mixed batch g is a permutation of that multiset drawn from
(seed, epoch), and source s's n-th batch in the mix is global batch n of its own epoch order.
So the mix inherits everything a single dataset promises: ranks take mixed batches
g = rank (mod world), workers split a rank's batches round-robin, and the resume state is the
next mixed batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from dataprep.errors import DataprepError
from dataprep.loader.dataset import STATE_VERSION, IterableDataset, ShardDataset, get_worker_info
from dataprep.loader.split import Strided

_SALT = 0x0317_C0DE


class MixedDataset(IterableDataset):  # type: ignore[misc]
    """Batches drawn from several `ShardDataset`s in fixed proportions."""

    def __init__(
        self,
        datasets: dict[str, ShardDataset],
        weights: list[float] | None = None,
        seed: int | None = None,
    ):
        if not datasets:
            raise DataprepError("mix needs at least one dataset")
        self.names = list(datasets)
        self.sources = [datasets[n] for n in self.names]
        weights = [1.0] * len(self.sources) if weights is None else [float(w) for w in weights]
        if len(weights) != len(self.sources) or min(weights) < 0 or sum(weights) <= 0:
            raise DataprepError(
                f"mix weights {weights} must be one non-negative number per dataset "
                f"({len(self.sources)}), not all zero"
            )
        self.weights = np.asarray(weights) / sum(weights)
        first = self.sources[0]
        if any((d.rank, d.world_size) != (first.rank, first.world_size) for d in self.sources):
            raise DataprepError("datasets in a mix must have the same rank and world_size")
        self.rank, self.world_size = first.rank, first.world_size
        self.equal_batches = any(d.equal_batches for d in self.sources)
        self.seed = first.seed if seed is None else int(seed)
        self.epoch = 0
        self._resume: tuple[int, int] | None = None
        self._local: list[int] = [0, 0, 0]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        for d in self.sources:
            d.set_epoch(epoch)

    def order(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(source of each mixed batch, that source's global batch number)."""
        full = np.array([d.plan(epoch).full_batches for d in self.sources], dtype=np.float64)
        live = self.weights > 0
        total = int(np.floor(np.min(full[live] / self.weights[live])))
        counts = np.minimum(np.floor(self.weights * total + 0.5), full).astype(np.int64)
        source = np.repeat(np.arange(len(self.sources)), counts)
        np.random.default_rng([_SALT, self.seed, epoch]).shuffle(source)
        number = np.empty_like(source)
        for s in range(len(self.sources)):
            where = source == s
            number[where] = np.arange(int(where.sum()))
        if self.equal_batches:
            keep = len(source) - len(source) % self.world_size
            source, number = source[:keep], number[:keep]
        return source, number

    @property
    def batch_bytes(self) -> int:
        """The largest source's: the hand-over ring's slots must hold any of their batches."""
        return max(d.batch_bytes for d in self.sources)

    def _start(self, epoch: int) -> int:
        return self._resume[1] if self._resume is not None and self._resume[0] == epoch else 0

    def __len__(self) -> int:
        source, _ = self.order(self.epoch)
        return len(range(self._start(self.epoch) + self.rank, len(source), self.world_size))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        epoch, start = self.epoch, self._start(self.epoch)
        if info is None:
            self._resume = None
            self._local = [epoch, start, 0]
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        return self._generate(epoch, start, worker, workers, info is None)

    def _generate(
        self, epoch: int, start: int, worker: int, workers: int, track: bool
    ) -> Iterator[dict[str, Any]]:
        source, number = self.order(epoch)
        mine = Strided(range(start + self.rank, len(source), self.world_size), worker, workers)
        streams = []
        for s, d in enumerate(self.sources):
            plan = d.plan(epoch)
            items = [((int(number[g]), 0, plan.batch_size),) for g in mine if source[g] == s]
            streams.append(d.read_items(plan, items))
        try:
            for g in mine:
                batch = next(streams[int(source[g])])
                if track:
                    self._local[2] += 1
                yield batch
        finally:
            for stream in streams:
                stream.close()

    def state_for(self, epoch: int, start: int, items_done: int) -> dict[str, Any]:
        source, _ = self.order(epoch)
        return {
            "version": STATE_VERSION,
            "mix": self.names,
            "epoch": epoch,
            "next_batch": min(len(source), start + items_done * self.world_size),
            "seed": self.seed,
            "weights": [float(w) for w in self.weights],
            "sources": [d.state_for(epoch, 0, 0) for d in self.sources],
            "world_size": self.world_size,
        }

    def state_dict(self) -> dict[str, Any]:
        epoch, start, done = self._local
        if self._resume is not None or (epoch, start, done) == (0, 0, 0):
            return self.state_for(self.epoch, self._start(self.epoch), 0)
        return self.state_for(epoch, start, done)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("mix") != self.names:
            raise DataprepError(f"loader state is for mix {state.get('mix')}, not {self.names}")
        weights = [float(w) for w in self.weights]
        if state.get("seed") != self.seed or not np.allclose(state.get("weights"), weights):
            raise DataprepError("the loader state was saved with other mix seed or weights")
        for d, sub in zip(self.sources, state["sources"], strict=True):
            d.load_state_dict(sub)  # checks each source's order settings
        self.set_epoch(int(state["epoch"]))
        self._resume = (self.epoch, int(state["next_batch"]))
        self._local = [0, 0, 0]
