"""The resume protocol shared by `ShardDataset`, the mixture and the DataLoader.

A pass over an epoch is described by a `ReadPosition`: the epoch, the global batch the pass
began at (0, or a loaded resume point) and how many items this process has handed out since.
Only the main process can count what training took (DataLoader workers are copies), so a
dataset exposes where its next pass begins (`next_pass`) and lets whoever counts take the
resume point (`begin_pass`); `state_for` turns any position into the saved state, a dict of a
few integers that any world size or worker count continues from.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from dataprep.errors import DataprepError

try:
    from torch.utils.data import IterableDataset, get_worker_info
except ImportError:  # pragma: no cover - without torch the datasets are plain iterables
    IterableDataset = object  # type: ignore[assignment,misc]

    def get_worker_info() -> Any:  # type: ignore[misc]
        return None


STATE_VERSION = 2  # of the saved state dict (its keys), not of ReadPosition
# 2 added `lane_cuts` (see `order`); a version-1 state is continued with its own cut rule


def is_count(value: Any, zero_ok: bool = True) -> bool:
    """A whole number a saved state could hold (not a bool, a float or a string)."""
    whole = isinstance(value, int) and not isinstance(value, bool) or hasattr(value, "dtype")
    return whole and int(value) == value and value >= (0 if zero_ok else 1)


class ReadPosition(NamedTuple):
    """Where one process stands in a pass: cheap to take at every step, exact to resume.

    `epoch`: the epoch being read; `start`: the global batch this pass began at; `done`:
    items this process handed out since (batches of its share, not global batches).
    Immutable, and a tuple: code that unpacked the earlier `(epoch, start, done)` still works.
    """

    epoch: int = 0
    start: int = 0
    done: int = 0

    def advanced(self, items: int = 1) -> ReadPosition:
        return self._replace(done=self.done + items)

    def to_state(self) -> list[int]:
        """`[epoch, start, done]`: JSON-ready, and the form earlier versions passed around."""
        return [self.epoch, self.start, self.done]

    @classmethod
    def from_state(cls, state: ReadPosition | Sequence[int]) -> ReadPosition:
        """A position from `to_state()` output or an `(epoch, start, done)` tuple."""
        if isinstance(state, ReadPosition):
            return state
        if isinstance(state, Sequence) and not isinstance(state, str | bytes) and len(state) == 3:
            values = list(state)
            if all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
                return cls(*values)
        raise DataprepError(f"a read position is [epoch, start, done] of counts, not {state!r}")


class PassCount:
    """Items handed out in the current pass: the one mutable part of a position, bumped per
    batch by whoever hands batches to training."""

    __slots__ = ("done", "origin")

    def __init__(self, origin: ReadPosition | None = None):
        self.origin = origin or ReadPosition()
        self.done = 0

    @property
    def position(self) -> ReadPosition:
        return self.origin.advanced(self.done)


class Resumable(IterableDataset):  # type: ignore[misc]
    """An iterable dataset that is deterministic in (seed, epoch) and exactly resumable.

    Subclasses implement `state_for` and `load_state_dict` (calling `resume_at`); iterating
    in the main process counts batches here, so `state_dict()` works without a DataLoader.
    """

    epoch: int = 0
    _resume: ReadPosition | None = None  # loaded resume point, until a pass takes it
    _count: PassCount | None = None  # in-process iteration (no DataLoader workers)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch the next pass yields; a pending resume point for it is kept."""
        self.epoch = int(epoch)

    def pass_start(self, epoch: int) -> int:
        """The global batch a pass over `epoch` begins at: a loaded resume point, else 0."""
        point = self._resume
        return point.start if point is not None and point.epoch == epoch else 0

    def next_pass(self) -> ReadPosition:
        """Where the next pass begins (nothing done yet); reading it changes nothing."""
        return ReadPosition(self.epoch, self.pass_start(self.epoch))

    def begin_pass(self) -> ReadPosition:
        """`next_pass()`, taking the resume point: the pass after it starts its epoch afresh.
        A DataLoader calls this once its workers hold their copies of the dataset."""
        position = self.next_pass()
        self._resume = None
        return position

    def counted_pass(self) -> tuple[ReadPosition, PassCount | None]:
        """For `__iter__`: the pass's start, and in the main process its counter (a worker's
        copy counts nothing: the DataLoader in the main process does)."""
        if get_worker_info() is not None:
            return self.next_pass(), None
        self._count = PassCount(self.begin_pass())
        return self._count.origin, self._count

    def resume_at(self, epoch: int, next_batch: int) -> None:
        """Make the next pass over `epoch` begin at global batch `next_batch`."""
        self.set_epoch(epoch)
        self._resume = ReadPosition(self.epoch, int(next_batch))
        self._count = None

    def state_for(self, position: ReadPosition) -> dict[str, Any]:
        """The saved state (a few integers) for a process standing at `position`."""
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Resume state of in-process iteration (num_workers=0 or no DataLoader)."""
        count = self._count
        if self._resume is not None or count is None or count.position == ReadPosition():
            return self.state_for(self.next_pass())
        return self.state_for(count.position)
