"""`make_dataloader`: a torch DataLoader whose `state_dict()` is the exact resume point.

Workers run in other processes, so only the main process can know how many batches training
has taken; this DataLoader counts them and turns the count into the dataset's global resume
state (epoch, next global batch), which any world size or worker count can continue from.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch.utils.data import DataLoader

from dataprep.errors import DataprepError
from dataprep.loader.dataset import ShardDataset

_FIXED = ("batch_size", "shuffle", "sampler", "batch_sampler", "drop_last")


class ShardDataLoader(DataLoader):
    """A DataLoader over a `ShardDataset` that can save and restore its position."""

    def __init__(self, dataset: ShardDataset, num_workers: int = 0, **kwargs: Any):
        super().__init__(dataset, batch_size=None, num_workers=num_workers, **kwargs)
        self._pass: list[int] | None = None  # epoch, start batch, batches yielded

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        ds: ShardDataset = self.dataset  # type: ignore[assignment]
        epoch, start = ds.epoch, ds._start(ds.epoch)
        inner = super().__iter__()  # workers start here, with the pending resume point
        ds._resume = None
        progress = [epoch, start, 0]
        self._pass = progress
        return _Counting(inner, progress)

    def state_dict(self) -> dict[str, Any]:
        """A few integers: where the next batch comes from. Same on every rank in lockstep."""
        ds: ShardDataset = self.dataset  # type: ignore[assignment]
        if self._pass is None:
            return ds.state_for(ds.epoch, ds._start(ds.epoch), 0)
        return ds.state_for(*self._pass)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """The next pass yields exactly the batches an uninterrupted run would have yielded."""
        self.dataset.load_state_dict(state)  # type: ignore[attr-defined]
        self._pass = None


class _Counting:
    """Iterator wrapper that counts batches handed to training (the main-process truth)."""

    def __init__(self, inner: Iterator[Any], progress: list[int]):
        self._inner = inner
        self._progress = progress

    def __iter__(self) -> _Counting:
        return self

    def __next__(self) -> Any:
        batch = next(self._inner)
        self._progress[2] += 1
        return batch

    def __len__(self) -> int:
        return len(self._inner)  # type: ignore[arg-type]


def make_dataloader(
    ds: ShardDataset, num_workers: int = 0, **dataloader_kwargs: Any
) -> ShardDataLoader:
    """A torch DataLoader over `ds`; `ds` builds the batches (`collate_fn` post-processes)."""
    if not isinstance(ds, ShardDataset) and not hasattr(ds, "state_for"):
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
