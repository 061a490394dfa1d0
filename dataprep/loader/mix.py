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

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import numpy as np

from dataprep.errors import DataprepError
from dataprep.loader.order import EpochPlan
from dataprep.loader.resume import (
    PassCount,
    ReadPosition,
    Resumable,
    get_worker_info,
    is_count,
)
from dataprep.loader.split import Item, Strided

_SALT = 0x0317_C0DE


class MixSource(Protocol):
    """What the mix uses of a source (a `ShardDataset`), so this module does not import it."""

    rank: int
    world_size: int
    seed: int
    equal_batches: bool

    @property
    def batch_bytes(self) -> int: ...
    def set_epoch(self, epoch: int) -> None: ...
    def plan(self, epoch: int | None = None) -> EpochPlan: ...
    def read_items(self, plan: EpochPlan, items: Sequence[Item]) -> Iterator[dict[str, Any]]: ...
    def state_for(self, position: ReadPosition) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class MixedDataset(Resumable):
    """Batches drawn from several `ShardDataset`s in fixed proportions."""

    def __init__(
        self,
        datasets: dict[str, MixSource],
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

    def __len__(self) -> int:
        source, _ = self.order(self.epoch)
        return len(range(self.pass_start(self.epoch) + self.rank, len(source), self.world_size))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        origin, count = self.counted_pass()
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        return self._generate(origin.epoch, origin.start, worker, workers, count)

    def _generate(
        self, epoch: int, start: int, worker: int, workers: int, count: PassCount | None
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
                if count is not None:
                    count.done += 1
                yield batch
        finally:
            for stream in streams:
                stream.close()

    def state_for(self, position: ReadPosition) -> dict[str, Any]:
        source, _ = self.order(position.epoch)
        next_batch = position.start + position.done * self.world_size
        sources = [d.state_for(ReadPosition(position.epoch)) for d in self.sources]
        return {
            "version": max(s["version"] for s in sources),  # 1 while continuing a v1 state
            "mix": self.names,
            "epoch": position.epoch,
            "next_batch": min(len(source), next_batch),
            "seed": self.seed,
            "weights": [float(w) for w in self.weights],
            "sources": sources,
            "world_size": self.world_size,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("mix") != self.names:
            raise DataprepError(f"loader state is for mix {state.get('mix')}, not {self.names}")
        weights = [float(w) for w in self.weights]
        if state.get("seed") != self.seed or not np.allclose(state.get("weights"), weights):
            raise DataprepError("the loader state was saved with other mix seed or weights")
        subs = state.get("sources")
        bad = [k for k in ("epoch", "next_batch") if not is_count(state.get(k))]
        if bad or not isinstance(subs, list) or len(subs) != len(self.sources):
            raise DataprepError(f"the mix's loader state has a bad {(bad or ['sources'])[0]}")
        for d, sub in zip(self.sources, subs, strict=True):
            d.load_state_dict(sub)  # checks each source's order settings
        self.resume_at(int(state["epoch"]), int(state["next_batch"]))
