"""The shared-memory hand-over of DataLoader workers' batches (`dataprep.loader.handoff`).

The oracle is the in-process loader (num_workers=0): whatever path a batch takes from a worker,
the training process must get the same values, in tensors it owns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

torch = pytest.importorskip("torch")

from dataprep.loader import (  # noqa: E402
    ShardDataset,
    handoff,  # noqa: E402
    make_dataloader,
)
from dataprep.loader.handoff import BatchRing, Ticket  # noqa: E402

ROWS, WIDTH = 3000, 64


@pytest.fixture(scope="module")
def blocks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Token-block-like data in uneven row groups, plus a string column."""
    import pyarrow as pa

    out = tmp_path_factory.mktemp("blocks")
    ids = np.arange(ROWS, dtype=np.int64)
    values = (np.arange(ROWS * WIDTH, dtype=np.int64) % 50_000).astype(np.int32)
    table = pa.table(
        {
            "id": ids,
            "tokens": pa.FixedSizeListArray.from_arrays(pa.array(values), WIDTH),
            "text": pa.array([f"doc {i}" for i in ids]),
        }
    )
    pq.write_table(table.slice(0, 1700), out / "a.parquet", row_group_size=333)
    pq.write_table(table.slice(1700), out / "b.parquet", row_group_size=500)
    return out


class _Worker:
    id, num_workers = 1, 2


def _in_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handoff, "get_worker_info", lambda: _Worker)


def _ring(slots: int = 2, slot_bytes: int = 4096) -> BatchRing:
    return BatchRing(2, slots, slot_bytes, torch.multiprocessing.Lock())


def test_pack_unpack_round_trip_frees_the_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    _in_worker(monkeypatch)
    ring = _ring()
    batch = {
        "id": torch.arange(10, dtype=torch.int64),
        "tokens": torch.arange(40, dtype=torch.int32).reshape(10, 4),
        "text": [f"t{i}" for i in range(10)],
        "weight": torch.linspace(0, 1, 10, dtype=torch.bfloat16),  # no numpy dtype
        "label": torch.tensor(3),
    }
    packed = ring.pack(batch)
    assert isinstance(packed["id"], Ticket) and isinstance(packed["tokens"], Ticket)
    assert packed["text"] is batch["text"]
    assert packed["tokens"].offset % handoff.ALIGN == 0
    assert ring.busy[1].tolist() == [1, 0]
    out = ring.unpack(packed)
    assert ring.busy[1].tolist() == [0, 0]
    for name in ("id", "tokens", "weight", "label"):
        assert isinstance(packed[name], Ticket)
        assert out[name].dtype == batch[name].dtype and torch.equal(out[name], batch[name])
    # the caller owns its tensors: the slot's next batch does not show through them
    ring.pack({"id": torch.full((10,), -1), "tokens": torch.zeros(10, 4, dtype=torch.int32)})
    ring.pack({"id": torch.full((10,), -1), "tokens": torch.zeros(10, 4, dtype=torch.int32)})
    assert torch.equal(out["id"], batch["id"]) and torch.equal(out["tokens"], batch["tokens"])


def test_no_free_slot_or_no_room_goes_the_ordinary_way(monkeypatch: pytest.MonkeyPatch) -> None:
    _in_worker(monkeypatch)
    ring = _ring(slots=2, slot_bytes=256)
    small = {"id": torch.arange(8)}
    held = [ring.pack(dict(small)), ring.pack(dict(small))]
    assert all(isinstance(h["id"], Ticket) for h in held)
    third = ring.pack(dict(small))  # both slots still held by the main process
    assert torch.equal(third["id"], small["id"])
    assert torch.equal(ring.unpack(held[0])["id"], small["id"])
    mixed = ring.pack({"big": torch.zeros(100, dtype=torch.int64), "id": torch.arange(8)})
    assert isinstance(mixed["id"], Ticket) and isinstance(mixed["big"], torch.Tensor)
    assert ring.pack([1, 2]) == [1, 2]
    assert BatchRing.for_loader(2, 2, 0, torch.multiprocessing) is None
    assert BatchRing.for_loader(2, 2, handoff.MAX_RING_BYTES, torch.multiprocessing) is None


def _loader_batches(
    path: Path, workers: int, monkeypatch: pytest.MonkeyPatch | None = None, **kw
) -> tuple[list[dict], list[int]]:
    """All batches of one shuffled pass, every one kept whole, and tickets seen per batch."""
    tickets: list[int] = []
    if monkeypatch is not None:
        unpack = BatchRing.unpack

        def counting(self, batch, pin=False):  # type: ignore[no-untyped-def]
            tickets.append(sum(isinstance(v, Ticket) for v in batch.values()))
            return unpack(self, batch, pin)

        monkeypatch.setattr(BatchRing, "unpack", counting)
    ds = ShardDataset(str(path), batch_size=48, shuffle=True, seed=3)
    ds.shuffle_window_rows = 400
    return list(make_dataloader(ds, num_workers=workers, **kw)), tickets


def _same(a: list[dict], b: list[dict], columns: tuple[str, ...]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        for c in columns:
            assert torch.equal(x[c], y[c])


def test_worker_batches_equal_in_process_ones_and_can_be_kept(
    blocks: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected, _ = _loader_batches(blocks, 0)
    got, tickets = _loader_batches(blocks, 2, monkeypatch)
    _same(got, expected, ("id", "tokens"))
    assert [b["text"] for b in got] == [b["text"] for b in expected]
    assert len(tickets) == len(got) and min(tickets) == 2  # id and tokens came through the ring
    ids = np.concatenate([b["id"].numpy() for b in got])
    assert sorted(ids.tolist()) == list(range(ROWS))


def test_collate_fn_runs_in_the_worker_before_the_hand_over(
    blocks: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    got, tickets = _loader_batches(blocks, 2, monkeypatch, collate_fn=_with_lengths)
    expected, _ = _loader_batches(blocks, 0, collate_fn=_with_lengths)
    _same(got, expected, ("id", "tokens", "lengths"))
    assert min(tickets) == 3


def _with_lengths(batch: dict) -> dict:
    return {**batch, "lengths": torch.tensor([len(t) for t in batch["text"]])}


def test_two_passes_at_once_each_get_their_own_ring(blocks: Path) -> None:
    ds = ShardDataset(str(blocks), batch_size=64, columns=["id", "tokens"])
    loader = make_dataloader(ds, num_workers=2)
    first = iter(loader)
    a = [next(first) for _ in range(3)]
    second = iter(loader)
    b = [next(second) for _ in range(3)]
    a += list(first)
    b += list(second)
    expected = list(make_dataloader(ds, num_workers=0))
    _same(a, expected, ("id", "tokens"))
    _same(b, expected, ("id", "tokens"))


def test_spawned_workers(blocks: Path) -> None:
    """Spawned (not forked) workers get the ring and its lock by pickling."""
    expected, _ = _loader_batches(blocks, 0)
    got, _ = _loader_batches(blocks, 2, multiprocessing_context="spawn")
    _same(got, expected, ("id", "tokens"))


def test_pinned_copy_out_fills_the_new_tensor(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pin_memory branch (GPU training) writes through a byte view of the new tensor; CPU
    torch cannot pin, so the allocation is made unpinned here and only the copy is checked."""
    _in_worker(monkeypatch)
    ring = _ring()
    batch = {
        "tokens": torch.arange(40, dtype=torch.int32).reshape(10, 4),
        "weight": torch.linspace(0, 1, 10, dtype=torch.bfloat16),
    }
    packed = ring.pack(batch)
    empty = torch.empty
    asked: list[bool] = []

    def unpinned(*args, pin_memory=False, **kw):  # type: ignore[no-untyped-def]
        asked.append(pin_memory)
        return empty(*args, **kw)

    monkeypatch.setattr(torch, "empty", unpinned)
    out = ring.unpack(packed, pin=True)
    assert asked == [True, True]
    for name, tensor in batch.items():
        assert out[name].dtype == tensor.dtype and torch.equal(out[name], tensor)
    assert ring.busy[1].tolist() == [0, 0]
