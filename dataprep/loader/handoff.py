"""Carrying DataLoader workers' batches to the training process through reused shared memory.

torch sends each tensor a worker returns through a fresh shared-memory segment: created, every
page faulted in by the worker, mapped and faulted again by the main process, then unmapped. For
2 MB token batches that costs more CPU than decoding them: on 2 cores that hand-over alone tops
out at 85-115k samples/s, this one at ~400k. Here each worker owns a few slots of one shared
buffer, mapped once per pass: it copies a batch's numeric arrays into a free slot and sends a
small `Ticket`; the main process copies them out (into pinned memory when the loader pins) and
frees the slot. A batch that finds no free slot, or does not fit, travels the ordinary way, so
the ring changes speed, never results.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import get_worker_info

ALIGN = 64  # each array starts on a cache line
HEADROOM = 1 << 20  # slot bytes beyond the dataset's columns: alignment, what a collate_fn adds
MAX_RING_BYTES = 512 << 20  # above this (huge batches) the ordinary path is used


@dataclass(frozen=True)
class Ticket:
    """Where one array of a batch lies in the ring."""

    worker: int
    slot: int
    offset: int
    dtype: torch.dtype
    shape: tuple[int, ...]


class BatchRing:
    """`slots` reusable slots of `slot_bytes` per worker; a lock orders the slot flags."""

    def __init__(self, workers: int, slots: int, slot_bytes: int, lock: Any):
        self.slots = slots
        self.slot_bytes = slot_bytes
        self.buffer = _shared((workers, slots, slot_bytes))
        self.busy = _shared((workers, slots))  # 1: the slot holds a batch not yet taken out
        self.lock = lock
        self._next = 0  # a worker's next slot to try (each worker process has its own copy)

    @classmethod
    def for_loader(
        cls, workers: int, prefetch: int, batch_bytes: int, context: Any
    ) -> BatchRing | None:
        """A ring sized for `batch_bytes` per batch, or None where the ordinary path is better."""
        slots = prefetch + 2  # at most `prefetch` batches per worker are in flight
        slot_bytes = batch_bytes + HEADROOM
        if batch_bytes <= 0 or workers * slots * slot_bytes > MAX_RING_BYTES:
            return None
        return cls(workers, slots, slot_bytes, context.Lock())

    # --- in a worker -------------------------------------------------------------------------

    def pack(self, batch: Any) -> Any:
        """`batch` with its numeric CPU tensors moved into a free slot and replaced by tickets."""
        info = get_worker_info()
        if info is None or not isinstance(batch, dict):
            return batch
        places, end = {}, 0  # arrays in batch order while they fit; the rest go the usual way
        for name, value in batch.items():
            if _packable(value) and end + value.nbytes <= self.slot_bytes:
                places[name] = end
                end += _aligned(value.nbytes)
        slot = self._claim(info.id) if places else None
        if slot is None:
            return batch
        out = dict(batch)
        slots = self.buffer[info.id, slot].numpy()
        for name, offset in places.items():
            raw = _bytes(batch[name])
            slots[offset : offset + len(raw)] = raw
            out[name] = Ticket(info.id, slot, offset, batch[name].dtype, tuple(batch[name].shape))
        return out

    def _claim(self, worker: int) -> int | None:
        busy = self.busy[worker].numpy()
        with self.lock:
            for k in range(self.slots):
                slot = (self._next + k) % self.slots
                if not busy[slot]:
                    busy[slot] = 1
                    self._next = slot + 1
                    return slot
        return None

    # --- in the main process -----------------------------------------------------------------

    def unpack(self, batch: Any, pin: bool = False) -> Any:
        """`batch` with its tickets turned back into tensors the caller owns; slots freed."""
        if not isinstance(batch, dict):
            return batch
        tickets = [(k, v) for k, v in batch.items() if isinstance(v, Ticket)]
        if not tickets:
            return batch
        out = dict(batch)
        for name, t in tickets:
            size = int(np.prod(t.shape)) * t.dtype.itemsize
            src = self.buffer[t.worker, t.slot].numpy()[t.offset : t.offset + size]
            # numpy copies on this thread: torch's copy_ would wake its intra-op pool, whose
            # spinning threads take CPU from the workers. Unpinned, the copy lives in plain
            # malloc memory: torch's 64-byte-aligned blocks do not fit the holes that freed
            # batches leave between small arrays a caller keeps (ids), so the heap would grow
            if pin:
                out[name] = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
                _bytes(out[name])[:] = src
            else:
                out[name] = torch.from_numpy(src.copy()).view(t.dtype).view(t.shape)
        worker, slot = tickets[0][1].worker, tickets[0][1].slot
        with self.lock:
            self.busy[worker].numpy()[slot] = 0
        return out


def _shared(shape: tuple[int, ...]) -> torch.Tensor:
    """A zeroed uint8 tensor in new shared memory. Not `share_memory_()`: that copies, and a
    parallel torch copy hangs in a process forked after its parent used the OpenMP pool."""
    storage = torch.UntypedStorage._new_shared(int(np.prod(shape)))
    return torch.empty(0, dtype=torch.uint8).set_(storage).view(shape)


def _bytes(tensor: torch.Tensor) -> np.ndarray:
    """A contiguous CPU tensor's memory as a flat uint8 numpy view (any dtype, bf16 too)."""
    return tensor.detach().reshape(-1).view(torch.uint8).numpy()


def _packable(value: Any) -> bool:
    return (
        isinstance(value, torch.Tensor)
        and value.device.type == "cpu"
        and value.layout == torch.strided
        and not value.is_quantized
        and value.is_contiguous()
    )


def _aligned(nbytes: int) -> int:
    return -(-nbytes // ALIGN) * ALIGN


class RingCollate:
    """The DataLoader's collate step in a worker: the user's collate, then `ring.pack`."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.ring: BatchRing | None = None  # set per pass, before the workers start

    def __call__(self, batch: Any) -> Any:
        batch = self.inner(batch)
        return self.ring.pack(batch) if self.ring is not None else batch
