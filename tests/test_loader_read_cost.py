"""What the reader decodes and how its batches leave a DataLoader worker (issue 6 speed fixes).

Oracles: `pq.read_table` for values; the rows a reader may decode are bounded by the rows its
batches need plus the heads of the row groups they start in, computed from the file layout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

torch = pytest.importorskip("torch")
# a prefetch thread that dies (its batches then read inline) must fail the test, not warn
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")

from dataprep.loader import ShardDataset, make_dataloader  # noqa: E402
from dataprep.loader import dataset as loader_dataset  # noqa: E402
from dataprep.loader.batch import Chunks, _numeric_chunk  # noqa: E402
from dataprep.loader.reader import Prefetcher  # noqa: E402
from dataprep.loader.split import Strided  # noqa: E402

BS, WIDTH, GROUP = 8, 16, 40


@pytest.fixture(scope="module")
def blocks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One file of token blocks, 403 rows in row groups of 40 (the tail batch has 3 rows)."""
    out = tmp_path_factory.mktemp("blocks")
    ids = np.arange(403, dtype=np.int64)
    flat = (np.repeat(ids, WIDTH) * 7 + np.tile(np.arange(WIDTH), len(ids))).astype(np.int32)
    tokens = pa.FixedSizeListArray.from_arrays(pa.array(flat), WIDTH)
    pq.write_table(pa.table({"id": ids, "tokens": tokens}), out / "b.parquet", row_group_size=GROUP)
    return out


def test_fixed_size_list_chunk_is_a_zero_copy_view_with_offset() -> None:
    arr = pa.FixedSizeListArray.from_arrays(pa.array(np.arange(60, dtype=np.int32)), 6)
    for piece in (arr, arr.slice(3), arr.slice(2, 5)):
        got = _numeric_chunk(piece)
        assert got is not None and got.shape == (len(piece), 6)
        assert np.array_equal(got, piece.flatten().to_numpy().reshape(-1, 6))


@pytest.mark.parametrize("lanes,piece_bytes", [(1, None), (2, None), (2, 1), (1, 3 * BS * 72)])
def test_a_reader_decodes_only_what_its_batches_need(
    blocks: Path, monkeypatch: pytest.MonkeyPatch, lanes: int, piece_bytes: int | None
) -> None:
    """Worker w of n (after a resume at global batch `start`) decodes only from the row group of
    the first row it yields to that of its last, not whole windows around them; also when
    windows are read in pieces of one or three batches (72 bytes a row: id + 16 ids)."""
    if piece_bytes is not None:
        monkeypatch.setattr(loader_dataset, "PIECE_BYTES", piece_bytes)
    decoded = _count_decoded_rows(monkeypatch)
    table = pq.read_table(blocks / "b.parquet")
    expect = table.column("tokens").combine_chunks().flatten().to_numpy().reshape(-1, WIDTH)
    ds = ShardDataset(blocks, batch_size=BS)
    ds.lanes, ds.shuffle_window_rows = lanes, 10 * BS
    for start in (0, 7, 27):
        schedule = ds.schedule(start, 0)
        plan = schedule.plan
        for workers in (1, 2, 3):
            for worker in range(workers):
                decoded[0] = 0
                got = list(ds.read_items(plan, Strided(schedule, worker, workers)))
                ids = np.concatenate([b["id"].numpy() for b in got])
                mine = range(start + worker, plan.num_batches, workers)
                rows = []
                for b in mine:  # unshuffled, one file: stream row = file row
                    lane, idx = plan.locate(b)
                    first = int(plan.lane_start[lane]) + idx * BS
                    rows.append(np.arange(first, first + plan.batch_len(b)))
                want = np.concatenate(rows)
                assert np.array_equal(ids, want)
                tokens = np.concatenate([b["tokens"].numpy() for b in got])
                assert np.array_equal(tokens, expect[want])
                groups = np.unique(want // GROUP)
                allowed = sum(min(403, (g + 1) * GROUP) - g * GROUP for g in groups)
                assert decoded[0] <= allowed, (start, workers, worker, decoded[0], allowed)


def test_worker_batches_arrive_intact(blocks: Path) -> None:
    """Batches built in workers' shared memory reach the main process whole and in order."""
    table = pq.read_table(blocks / "b.parquet")
    want = table.column("tokens").combine_chunks().flatten().to_numpy().reshape(-1, WIDTH)
    ds = ShardDataset(blocks, batch_size=BS, shuffle=True, seed=3)
    inline = [(b["id"].clone(), b["tokens"].clone()) for b in ds]
    ds.set_epoch(0)
    got = list(make_dataloader(ds, num_workers=2))
    assert len(got) == len(inline)
    for (ids, tokens), batch in zip(inline, got, strict=True):
        assert torch.equal(batch["id"], ids) and torch.equal(batch["tokens"], tokens)
        assert batch["tokens"].is_contiguous() and batch["tokens"].dtype == torch.int32
        assert np.array_equal(batch["tokens"].numpy(), want[batch["id"].numpy()])


def test_chunks_take_across_chunk_boundaries() -> None:
    """A batch's rows may span the pieces a window was decoded in (one copy per piece)."""
    whole = np.arange(40 * 3, dtype=np.int32).reshape(40, 3)
    chunks = Chunks([whole[:7], whole[7:7], whole[7:20], whole[20:21], whole[21:]])
    for a, b in [(0, 7), (5, 9), (6, 21), (0, 40), (19, 22), (20, 21), (39, 40)]:
        assert np.array_equal(chunks.take(slice(a, b)), whole[a:b])
    rows = np.random.default_rng(0).permutation(40)[:17]
    assert np.array_equal(chunks.take(rows), whole[rows])


class _Loads:
    """A load function that records, per lane, that its loads never overlap and keep order."""

    def __init__(self, fail_at: tuple[int, int] | None = None):
        import threading

        self.lock = threading.Lock()
        self.active: set[int] = set()
        self.order: dict[int, list[int]] = {}
        self.overlap = 0
        self.fail_at = fail_at

    def __call__(self, lane: int, i: int) -> object:
        import time

        with self.lock:
            if lane in self.active:
                self.overlap += 1
            self.active.add(lane)
            self.order.setdefault(lane, []).append(i)
        time.sleep(0.001 * ((lane * 7 + i * 3) % 4))
        with self.lock:
            self.active.discard(lane)
        if (lane, i) == self.fail_at:
            raise ValueError(f"cannot read {lane}/{i}")
        return type("W", (), {"nbytes": 10, "key": (lane, i)})()


def _drain_in_need_order(needs: list, loads, threads: int) -> None:
    """Take every need from a Prefetcher over `loads`: each window comes back in need order,
    for its own key, and no lane was ever loaded by two threads at once."""
    prefetch = Prefetcher(iter(needs), loads, budget=25, threads=threads)
    try:
        got = [prefetch.get() for _ in needs]
    finally:
        prefetch.close()
    assert [key for key, _ in got] == needs
    assert all(window.key == key for key, window in got)  # type: ignore[attr-defined]
    assert loads.overlap == 0


@pytest.mark.parametrize("threads", [0, 1, 2, 3])
def test_prefetcher_keeps_need_order_and_lane_order(threads: int) -> None:
    needs = [(lane, i) for i in range(12) for lane in (0, 1, 2) if not (lane == 2 and i > 4)]
    needs += [(1, 12), (1, 13), (0, 12)]
    loads = _Loads()
    _drain_in_need_order(needs, loads, threads)
    for lane, seen in loads.order.items():
        assert seen == [i for ln, i in needs if ln == lane]


@pytest.mark.parametrize("threads", [0, 1, 2])
def test_prefetcher_raises_a_failed_load_in_its_place(threads: int) -> None:
    needs = [(lane, i) for i in range(6) for lane in (0, 1)]
    prefetch = Prefetcher(iter(needs), _Loads(fail_at=(1, 3)), budget=1 << 20, threads=threads)
    try:
        before = [prefetch.get()[0] for _ in range(needs.index((1, 3)))]
        with pytest.raises(ValueError, match="cannot read 1/3"):
            prefetch.get()
    finally:
        prefetch.close()
    assert before == needs[: needs.index((1, 3))]


class _StepLoads:
    """A generator load of `steps` pieces per window. On a prefetch thread each piece takes
    `slow` seconds (a thread starved of a core by a busy neighbour); in the consumer, none.
    Records who ran each piece, and any overlap of two loads of one lane."""

    def __init__(self, steps: int, slow: float):
        import threading

        self.steps, self.slow = steps, slow
        self.lock = threading.Lock()
        self.active: set[int] = set()
        self.pieces: dict[tuple[int, int], list[tuple[int, str]]] = {}
        self.overlap = 0

    def __call__(self, lane: int, i: int):  # noqa: ANN204 - a generator of pieces
        import threading
        import time

        with self.lock:
            self.overlap += lane in self.active
            self.active.add(lane)
        for step in range(self.steps):
            if step:
                yield
            who = threading.current_thread().name
            if who == "dataprep-prefetch":
                time.sleep(self.slow)
            with self.lock:
                self.pieces.setdefault((lane, i), []).append((step, who))
        with self.lock:
            self.active.discard(lane)
        return type("W", (), {"nbytes": 10, "key": (lane, i)})()


def _thread_errors(monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    import threading

    errors: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    return errors


def test_a_starved_decode_thread_does_not_hold_a_batch_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Caller runs: the consumer takes over the window a starved thread is part way through
    at its next piece, instead of waiting for all 20 of its slow pieces (1 s a window)."""
    import time

    errors = _thread_errors(monkeypatch)
    needs = [(0, 0), (1, 0), (0, 1)]
    loads = _StepLoads(steps=20, slow=0.05)
    prefetch = Prefetcher(iter(needs), loads, budget=1 << 20, threads=1)
    t0 = time.perf_counter()
    try:
        got = [prefetch.get()[0] for _ in needs]
    finally:
        prefetch.close()
    assert got == needs
    assert time.perf_counter() - t0 < 1.5  # waiting on the thread: >= 3 s (60 slow pieces)
    assert prefetch.taken_over >= 1
    for key, pieces in loads.pieces.items():  # every piece once, in order, whoever ran it
        assert [step for step, _ in pieces] == list(range(20)), key
    consumer = {who for pieces in loads.pieces.values() for _, who in pieces}
    assert "MainThread" in consumer
    assert loads.overlap == 0 and not errors


@pytest.mark.parametrize("threads", [0, 1, 2, 3])
@pytest.mark.parametrize("slow", [0.0, 0.002])
def test_prefetcher_hand_over_keeps_need_order_and_lane_order(
    monkeypatch: pytest.MonkeyPatch, threads: int, slow: float
) -> None:
    """Loads handed between threads and the consumer still run each piece once, one load of
    a lane at a time, in need order; no thread dies (a claimed job ends the thread's turn)."""
    errors = _thread_errors(monkeypatch)
    needs = [(lane, i) for i in range(10) for lane in (0, 1, 2) if not (lane == 2 and i > 3)]
    loads = _StepLoads(steps=3, slow=slow)
    _drain_in_need_order(needs, loads, threads)
    assert not errors
    assert all([s for s, _ in p] == [0, 1, 2] for p in loads.pieces.values())
    assert sorted(loads.pieces) == sorted(needs)


@pytest.mark.parametrize("shuffle", [False, True])
def test_batches_are_the_same_when_threads_are_starved(
    blocks: Path, monkeypatch: pytest.MonkeyPatch, shuffle: bool
) -> None:
    """Decode threads slowed between pieces (their loads taken over by the iterating thread):
    the same batches as reading inline, each row once, and a mid-epoch resume continues."""
    import threading
    import time

    from dataprep.loader import reader as loader_reader

    errors = _thread_errors(monkeypatch)
    monkeypatch.setattr(loader_reader, "_READ_BYTES", 4 * 72)  # many pieces per window

    def run(threads: int, resume_at: int | None = None) -> list[dict]:
        ds = ShardDataset(blocks, batch_size=BS, shuffle=shuffle, seed=5, decode_threads=threads)
        ds.lanes, ds.shuffle_window_rows = 3, 5 * BS
        if resume_at is not None:
            loader = make_dataloader(ds)
            it = iter(loader)
            for _ in range(resume_at):
                next(it)
            state = loader.state_dict()
            del it
            ds = ShardDataset(
                blocks, batch_size=BS, shuffle=shuffle, seed=5, decode_threads=threads
            )
            ds.load_state_dict(state)
        return list(make_dataloader(ds))

    inline = run(0)
    take = loader_reader.LaneReader._take

    def slow_take(self, need, parts):  # noqa: ANN001, ANN202
        for _ in take(self, need, parts):
            if threading.current_thread().name == "dataprep-prefetch":
                time.sleep(0.003)
            yield

    monkeypatch.setattr(loader_reader.LaneReader, "_take", slow_take)
    for threads in (1, 2):
        starved = run(threads)
        assert len(starved) == len(inline)
        for a, b in zip(inline, starved, strict=True):
            assert torch.equal(a["id"], b["id"]) and torch.equal(a["tokens"], b["tokens"])
        rest = run(threads, resume_at=17)
        assert len(rest) == len(inline) - 17
        for a, b in zip(inline[17:], rest, strict=True):
            assert torch.equal(a["id"], b["id"]) and torch.equal(a["tokens"], b["tokens"])
    ids = torch.cat([b["id"] for b in inline]).numpy()
    assert sorted(ids.tolist()) == list(range(403))
    assert not errors


def test_shuffled_windows_from_many_pieces(blocks: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Shuffled windows decoded in 16-row pieces: over two epochs every batch holds exactly
    its rows' tokens (gathered across pieces), each row once per epoch."""
    from dataprep.loader import reader as loader_reader

    monkeypatch.setattr(loader_reader, "_READ_BYTES", 16 * 72)
    want = pq.read_table(blocks / "b.parquet").column("tokens").combine_chunks()
    want = want.flatten().to_numpy().reshape(-1, WIDTH)
    ds = ShardDataset(blocks, batch_size=BS, shuffle=True, seed=11)
    ds.lanes, ds.shuffle_window_rows = 2, 6 * BS
    orders = []
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        got = list(ds)
        ids = np.concatenate([b["id"].numpy() for b in got])
        assert sorted(ids.tolist()) == list(range(403))
        for b in got:
            assert np.array_equal(b["tokens"].numpy(), want[b["id"].numpy()])
        orders.append(ids)
    assert not np.array_equal(orders[0], orders[1])


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Parquet as `pq.write_table` writes it by default: one row group per file, uneven files
    (row 484, a file boundary, lies half a batch past the middle batch boundary 480)."""
    out = tmp_path_factory.mktemp("plain")
    first = 0
    for i, rows in enumerate([100, 384, 170, 306]):
        ids = np.arange(first, first + rows, dtype=np.int64)
        flat = (np.repeat(ids, WIDTH) * 5 + np.tile(np.arange(WIDTH), rows)).astype(np.int32)
        tokens = pa.FixedSizeListArray.from_arrays(pa.array(flat), WIDTH)
        pq.write_table(pa.table({"id": ids, "tokens": tokens}), out / f"p{i}.parquet")
        first += rows
    return out


@pytest.mark.parametrize("threads", [None, 0, 1, 2])
def test_plain_parquet_with_large_row_groups_is_decoded_once(
    plain: Path, monkeypatch: pytest.MonkeyPatch, threads: int | None
) -> None:
    """A lane starts fewer than a batch of rows into a row group, so an epoch decodes each row
    about once (the nearest-batch cut of version 1 started lane 1 at row 480, 380 rows into
    the 384-row group of p1, which was then decoded twice); every thread count yields the
    same batches, equal to `pq.read_table`."""
    decoded = _count_decoded_rows(monkeypatch)
    files = sorted(plain.glob("*.parquet"))
    table = pa.concat_tables([pq.read_table(f) for f in files])
    want = table.column("tokens").combine_chunks().flatten().to_numpy().reshape(-1, WIDTH)
    ds = ShardDataset(plain, batch_size=BS, decode_threads=threads)
    ds.shuffle_window_rows = 10 * BS
    plan = ds.plan()
    assert plan.lanes == 2 and plan.lane_start.tolist() == [0, 488, 960]
    got = list(make_dataloader(ds))
    ids = np.concatenate([b["id"].numpy() for b in got])
    assert sorted(ids.tolist()) == list(range(960))
    for b, batch in enumerate(got):
        lane, idx = plan.locate(b)
        first = int(plan.lane_start[lane]) + idx * BS
        assert batch["id"].tolist() == list(range(first, first + len(batch["id"])))
        assert np.array_equal(batch["tokens"].numpy(), want[batch["id"].numpy()])
    assert decoded[0] <= 960 + plan.lanes * BS, decoded[0]


@pytest.mark.parametrize(
    "kind",
    [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint32(), pa.uint64()]
    + [pa.float16(), pa.float32(), pa.float64(), pa.bool_()],
)
def test_numeric_columns_are_viewed_with_their_values(kind: pa.DataType) -> None:
    """Windows read numbers off the Arrow buffers (not `to_numpy`, which imports pandas):
    same values and dtype as Arrow's own conversion, also for sliced arrays and list rows."""
    values = [(i * 37) % 101 for i in range(60)]
    if kind == pa.bool_():
        values = [v % 3 == 0 for v in values]
    arr = pa.array(values, kind)
    for piece in (arr, arr.slice(7), arr.slice(5, 30)):
        got = _numeric_chunk(piece)
        want = piece.to_numpy(zero_copy_only=False)
        assert got is not None and got.dtype == want.dtype and np.array_equal(got, want)
    if kind != pa.bool_():
        rows = pa.FixedSizeListArray.from_arrays(arr, 6).slice(2, 7)
        got = _numeric_chunk(rows)
        assert got is not None and np.array_equal(got, np.array(rows.to_pylist(), got.dtype))


def test_reading_imports_no_pandas(blocks: Path, tmp_path: Path) -> None:
    """pandas costs ~1.3 s of CPU to import, in every process and DataLoader worker: reading
    token blocks and (shuffled) text must not pull it in; unshuffled reading needs neither
    numpy.random nor numpy.ma (~45 ms, as long as a plain-Parquet epoch of 60k rows)."""
    import subprocess
    import sys

    text = tmp_path / "t.parquet"
    pq.write_table(pa.table({"id": np.arange(300), "text": [f"row {i}" for i in range(300)]}), text)
    code = (
        "import sys\n"
        "from dataprep.loader import ShardDataset\n"
        f"for path, shuffle in [({str(blocks)!r}, False), ({str(text)!r}, True)]:\n"
        "    ds = ShardDataset(path, batch_size=8, shuffle=shuffle, decode_threads=0)\n"
        "    assert sum(len(b['id']) for b in ds) in (403, 300)\n"
        "    if not shuffle:\n"
        "        assert 'numpy.random' not in sys.modules and 'numpy.ma' not in sys.modules\n"
        "assert 'pandas' not in sys.modules, 'pandas was imported'\n"
    )
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": str(root)}
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def _count_decoded_rows(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A one-item list that counts every row Parquet decodes from here on (what a reader
    reads twice shows up as rows over the table's)."""
    decoded = [0]
    real = pq.ParquetFile.iter_batches

    def counting(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        for batch in real(self, *args, **kwargs):
            decoded[0] += batch.num_rows
            yield batch

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", counting)
    return decoded
