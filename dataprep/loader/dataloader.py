"""`make_dataloader`: a torch DataLoader whose `state_dict()` is the exact resume point.

Workers run in other processes, so only the main process can know how many batches training
has taken; this DataLoader counts them (a `ReadPosition`) and turns the count into the
dataset's global resume state (epoch, next global batch), which any world size or worker count
can continue from. It uses only the dataset's public resume protocol (`resume.Resumable`).
Workers hand their batches over through a reused shared-memory ring (`handoff`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader
from torch.utils.data._utils.collate import default_convert
from torch.utils.data._utils.pin_memory import pin_memory

from dataprep.errors import DataprepError
from dataprep.loader.handoff import BatchRing, RingCollate
from dataprep.loader.resume import PassCount, ReadPosition, Resumable

_FIXED = ("batch_size", "shuffle", "sampler", "batch_sampler", "drop_last")


class ShardDataLoader(DataLoader):
    """A DataLoader over a `ShardDataset` (or a mix) that can save and restore its position."""

    def __init__(self, dataset: Resumable, num_workers: int = 0, **kwargs: Any):
        collate = kwargs.get("collate_fn") or convert_batch
        kwargs["collate_fn"] = RingCollate(collate) if num_workers > 0 else collate
        super().__init__(dataset, batch_size=None, num_workers=num_workers, **kwargs)
        self._pass: PassCount | None = None  # the current pass, counted here

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        ds: Resumable = self.dataset  # type: ignore[assignment]
        origin = ds.next_pass()
        ring = None
        if isinstance(self.collate_fn, RingCollate):  # a fresh ring per pass: no stale slots
            context = self.multiprocessing_context or torch.multiprocessing
            ring = BatchRing.for_loader(
                self.num_workers, self.prefetch_factor or 2, getattr(ds, "batch_bytes", 0), context
            )
            self.collate_fn.ring = ring
        pin = bool(self.pin_memory) and torch.cuda.is_available()
        if self.num_workers == 0:  # torch's own iterator would add ~10 us a batch (profiler
            # hooks, a sampler of Nones) around what is only `collate_fn` of ready batches
            inner: Iterator[Any] = _Inline(iter(ds), self.collate_fn, self, pin)  # type: ignore
        else:
            inner = super().__iter__()  # workers start here, with the resume point and ring
        ds.begin_pass()  # their copies hold the resume point: this pass has taken it
        self._pass = PassCount(origin)
        return _Counting(inner, self._pass, ring, pin)

    def position(self) -> ReadPosition:
        """Where the reader stands (epoch, pass start, batches yielded), for almost no cost: a
        trainer that fetches a batch ahead keeps this to checkpoint the state before it."""
        if self._pass is None:
            return self.dataset.next_pass()  # type: ignore[attr-defined,no-any-return]
        return self._pass.position

    def state_dict(self, position: ReadPosition | Sequence[int] | None = None) -> dict[str, Any]:
        """A few integers: where the next batch comes from (now, or at an earlier `position`,
        also in its older `(epoch, start, done)` form). Same on every rank in lockstep."""
        at = self.position() if position is None else ReadPosition.from_state(position)
        return self.dataset.state_for(at)  # type: ignore[attr-defined,no-any-return]

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The next pass yields exactly the batches an uninterrupted run would have yielded."""
        self.dataset.load_state_dict(state)  # type: ignore[attr-defined]
        self._pass = None


def convert_batch(batch: Any) -> Any:
    """`default_convert` for a dataset's ready batch, without its walk over lists: it would
    call itself once per string of a text column (~0.8 us a row, a third of reading text)
    only to rebuild equal lists. Tensors and lists (from Arrow) pass as they are."""
    if not isinstance(batch, dict):
        return default_convert(batch)
    return {
        k: v if isinstance(v, torch.Tensor | list) else default_convert(v) for k, v in batch.items()
    }


class _Inline:
    """The batches of a loader without workers: the dataset's, through `collate_fn` (and
    pinned when asked), as torch's single-process iterator would give them."""

    def __init__(self, batches: Iterator[Any], collate: Any, loader: DataLoader, pin: bool):
        self._batches, self._collate, self._loader, self._pin = batches, collate, loader, pin

    def __iter__(self) -> _Inline:
        return self

    def __next__(self) -> Any:
        batch = self._collate(next(self._batches))
        return pin_memory(batch, self._loader.pin_memory_device) if self._pin else batch

    def __len__(self) -> int:
        return len(self._loader)


class _Counting:
    """Iterator wrapper that counts batches handed to training (the main-process truth)
    and takes them out of the hand-over ring."""

    def __init__(self, inner: Iterator[Any], count: PassCount, ring: BatchRing | None, pin: bool):
        self._inner = inner
        self._count = count
        self._ring = ring
        self._pin = pin

    def __iter__(self) -> _Counting:
        return self

    def __next__(self) -> Any:
        batch = next(self._inner)
        self._count.done += 1
        return self._ring.unpack(batch, self._pin) if self._ring is not None else batch

    def __len__(self) -> int:
        return len(self._inner)  # type: ignore[arg-type]


def make_dataloader(
    ds: Resumable, num_workers: int = 0, **dataloader_kwargs: Any
) -> ShardDataLoader:
    """A torch DataLoader over `ds`; `ds` builds the batches (`collate_fn` post-processes)."""
    if not isinstance(ds, Resumable):
        raise DataprepError("make_dataloader needs a dataprep.loader.ShardDataset (or a mix)")
    bad = [k for k in _FIXED if k in dataloader_kwargs]
    if bad:
        raise DataprepError(
            f"{', '.join(bad)} belong to ShardDataset, not the DataLoader: set them there"
        )
    if dataloader_kwargs.get("persistent_workers"):
        raise DataprepError(
            "persistent_workers=True would keep stale epoch/resume state in the workers; "
            "leave it off (workers start in well under a second)"
        )
    return ShardDataLoader(ds, num_workers=num_workers, **dataloader_kwargs)
