"""The torch reader, checked against a brute-force read of the same Parquet files.

Oracle: `pq.read_table` of every file gives the set of ids (and their text/tokens); the
reader must yield each exactly once per epoch across ranks x DataLoader workers, keep one
global order for any topology, and resume to exactly the rest of an uninterrupted run.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

torch = pytest.importorskip("torch")
# a prefetch thread that dies (its batches then read inline) must fail the test, not warn
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")

from dataprep.dataset import Manifest, ShardWriter, WriteOptions, write_manifest  # noqa: E402
from dataprep.errors import DataprepError  # noqa: E402
from dataprep.loader import ShardDataset, make_dataloader  # noqa: E402

BS = 16
# (rows, row group rows) per file: uneven shards, uneven and partial row groups, an empty file
LAYOUT = [(1000, 97), (37, 10), (0, 10), (2500, 300), (411, 411), (129, 64)]
TOKENS = 4


def _table(first: int, rows: int) -> pa.Table:
    ids = np.arange(first, first + rows, dtype=np.int64)
    tokens = pa.FixedSizeListArray.from_arrays(
        pa.array(np.repeat(ids, TOKENS).astype(np.int32) * 3), TOKENS
    )
    text = pa.array([f"t{i}" for i in ids], type=pa.string())
    return pa.table({"id": ids, "text": text, "tokens": tokens})


@pytest.fixture(scope="module")
def plain_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Plain Parquet files, no manifest."""
    out = tmp_path_factory.mktemp("plain")
    first = 0
    for i, (rows, group) in enumerate(LAYOUT):
        pq.write_table(_table(first, rows), out / f"f{i}.parquet", row_group_size=group)
        first += rows
    return out


@pytest.fixture(scope="module")
def manifest_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataprep dataset directory (manifest with row groups), including an empty shard."""
    out = tmp_path_factory.mktemp("ds")
    shards, first = [], 0
    schema = _table(0, 1).schema
    for i, (rows, group) in enumerate(LAYOUT):
        options = WriteOptions(row_group_rows=group)
        writer = ShardWriter(out / f"part-{i:05d}.parquet", schema, options)
        if rows:
            writer.write(_table(first, rows))
        shards.append(writer.close())
        first += rows
    write_manifest(out, Manifest(schema, shards))
    return out


def oracle(path: Path) -> pa.Table:
    files = sorted(glob.glob(str(path / "*.parquet")))
    return pa.concat_tables([pq.read_table(f) for f in files])


TOTAL = sum(rows for rows, _ in LAYOUT)


def make(path: Path, **kw) -> ShardDataset:
    kw.setdefault("batch_size", BS)
    window = kw.pop("window", 64)
    ds = ShardDataset(str(path), **kw)
    ds.shuffle_window_rows = window  # several lanes on this small data
    return ds


def ids_of(loader) -> list[np.ndarray]:
    return [batch["id"].numpy().copy() for batch in loader]


def run_rank(path: Path, rank: int, world: int, workers: int, **kw) -> list[np.ndarray]:
    ds = make(path, rank=rank, world_size=world, **kw)
    epoch = kw.pop("epoch", None)
    if epoch is not None:
        ds.set_epoch(epoch)
    if workers == 0 and rank % 2:  # exercise the plain-iterable path too
        return ids_of(ds)
    return ids_of(make_dataloader(ds, num_workers=workers))


def interleave(per_rank: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Global batch sequence from rank sequences (rank r holds global batches r, r+W, ...)."""
    out = []
    for step in range(max(len(r) for r in per_rank)):
        out.extend(r[step] for r in per_rank if step < len(r))
    return out


@pytest.fixture(scope="module")
def reference(plain_dir: Path) -> list[np.ndarray]:
    return ids_of(make(plain_dir, shuffle=True, seed=5))


def test_reference_is_every_row_once_with_intact_values(plain_dir: Path) -> None:
    truth = oracle(plain_dir)
    ds = make(plain_dir, shuffle=True, seed=5)
    assert ds.plan().lanes > 1  # the lane machinery is exercised
    seen = []
    for batch in make_dataloader(ds):
        ids = batch["id"].numpy()
        assert batch["text"] == [f"t{i}" for i in ids]
        assert batch["tokens"].shape == (len(ids), TOKENS)
        assert batch["tokens"].dtype == torch.int32
        assert (batch["tokens"].numpy() == (ids[:, None] * 3)).all()
        seen.append(ids)
    got = np.concatenate(seen)
    assert sorted(got.tolist()) == sorted(truth.column("id").to_pylist())
    assert len(got) == TOTAL
    assert all(len(b) == BS for b in seen[:-1])
    assert not np.array_equal(got, np.sort(got))  # shuffled


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("workers", [0, 1, 2])
def test_exactly_once_and_same_global_order(
    plain_dir: Path, reference: list[np.ndarray], world: int, workers: int
) -> None:
    per_rank = [run_rank(plain_dir, r, world, workers, shuffle=True, seed=5) for r in range(world)]
    everything = np.concatenate([np.concatenate(r) for r in per_rank if r])
    assert len(everything) == TOTAL and len(set(everything.tolist())) == TOTAL
    glob_seq = interleave(per_rank)
    assert len(glob_seq) == len(reference)
    assert all(np.array_equal(a, b) for a, b in zip(glob_seq, reference, strict=True))


def test_manifest_dataset_matches_plain_and_skips_empty_shard(
    manifest_dir: Path, plain_dir: Path, reference: list[np.ndarray]
) -> None:
    ds = make(manifest_dir, shuffle=True, seed=5, verify=True)
    assert len(ds.index.files) == len(LAYOUT)
    got = ids_of(make_dataloader(ds, num_workers=2))
    # same units and row counts -> the same order as the plain files
    assert all(np.array_equal(a, b) for a, b in zip(got, reference, strict=True))
    assert sorted(np.concatenate(got).tolist()) == oracle(manifest_dir).column("id").to_pylist()


def test_epochs_differ_and_seed_repeats(plain_dir: Path, reference: list[np.ndarray]) -> None:
    ds = make(plain_dir, shuffle=True, seed=5)
    ds.set_epoch(1)
    e1 = np.concatenate(ids_of(ds))
    ds.set_epoch(0)
    e0 = np.concatenate(ids_of(ds))
    assert np.array_equal(e0, np.concatenate(reference))
    assert sorted(e1.tolist()) == sorted(e0.tolist()) and not np.array_equal(e0, e1)
    other = np.concatenate(ids_of(make(plain_dir, shuffle=True, seed=6)))
    assert not np.array_equal(other, e0)
    plain = make(plain_dir, shuffle=False)
    first, second = np.concatenate(ids_of(plain)), None
    plain.set_epoch(3)
    second = np.concatenate(ids_of(plain))
    assert np.array_equal(first, second) and sorted(first.tolist()) == list(range(TOTAL))


def consume(path: Path, world: int, workers: int, steps: int, **kw) -> tuple[list, dict]:
    """Every rank takes `steps` batches (DDP lockstep); returns those and rank 0's state."""
    taken, states = [], []
    for rank in range(world):
        dl = make_dataloader(make(path, rank=rank, world_size=world, **kw), num_workers=workers)
        it = iter(dl)
        mine = []
        for _ in range(steps):
            mine.append(next(it)["id"].numpy().copy())
        states.append(dl.state_dict())
        del it
        taken.append(mine)
    assert all(s == states[0] for s in states)  # one state, whichever rank saves it
    return taken, states[0]


@pytest.mark.parametrize(
    ("before", "after", "steps"),
    [((2, 2), (3, 1), 7), ((2, 2), (1, 0), 30), ((3, 0), (2, 2), 1), ((1, 2), (1, 2), 100)],
)
def test_resume_gives_exactly_the_rest(
    plain_dir: Path, reference: list[np.ndarray], before, after, steps: int
) -> None:
    kw = {"shuffle": True, "seed": 5}
    taken, state = consume(plain_dir, *before, steps, **kw)
    assert state["next_batch"] == min(len(reference), steps * before[0])
    world, workers = after
    rest = []
    for rank in range(world):
        dl = make_dataloader(make(plain_dir, rank=rank, world_size=world, **kw), workers)
        dl.load_state_dict(state)
        rest.append(ids_of(dl))
    seq = interleave(taken) + interleave(rest)
    assert len(seq) == len(reference)
    assert all(np.array_equal(a, b) for a, b in zip(seq, reference, strict=True))


def test_loader_without_workers_collates_pins_and_counts(
    plain_dir: Path, reference: list[np.ndarray]
) -> None:
    """No workers: every batch goes through `collate_fn` (pin_memory is harmless without a
    GPU), `len` is the dataset's, and a state saved after 5 batches resumes at the 6th."""
    ds = make(plain_dir, shuffle=True, seed=5)
    loader = make_dataloader(ds, collate_fn=lambda b: {**b, "rows": len(b["id"])}, pin_memory=True)
    it = iter(loader)
    assert len(it) == len(ds) == len(reference)
    first = [next(it) for _ in range(5)]
    state = loader.state_dict()
    assert all(b["rows"] == len(b["id"]) for b in first)
    assert [b["id"].numpy().tolist() for b in first] == [r.tolist() for r in reference[:5]]
    again = make_dataloader(make(plain_dir, shuffle=True, seed=5))
    again.load_state_dict(state)
    rest = [b["id"].numpy() for b in again]
    assert all(np.array_equal(a, b) for a, b in zip(rest, reference[5:], strict=True))
    assert len(rest) == len(reference) - 5


def test_resume_across_epochs_and_state_of_plain_iteration(plain_dir: Path) -> None:
    ds = make(plain_dir, shuffle=True, seed=9)
    ds.set_epoch(2)
    full = ids_of(ds)
    it = iter(ds)
    head = [next(it)["id"].numpy().copy() for _ in range(11)]
    state = ds.state_dict()
    assert state["epoch"] == 2 and state["next_batch"] == 11
    fresh = make(plain_dir, shuffle=True, seed=9)
    fresh.load_state_dict(state)
    fresh.set_epoch(2)  # the usual loop calls set_epoch again: the resume point is kept
    tail = ids_of(make_dataloader(fresh, num_workers=2))
    assert all(np.array_equal(a, b) for a, b in zip(head + tail, full, strict=True))
    fresh.set_epoch(3)  # the next epoch starts from its beginning
    assert sum(len(b) for b in ids_of(fresh)) == TOTAL
    with pytest.raises(DataprepError, match="batch_size"):
        make(plain_dir, shuffle=True, seed=9, batch_size=BS + 1).load_state_dict(state)
    # lanes / window shape the order: a loader set up differently adopts the saved ones
    other = make(plain_dir, shuffle=True, seed=9, window=512)
    other.lanes = 3
    other.load_state_dict(state)
    other.set_epoch(2)
    assert all(np.array_equal(a, b) for a, b in zip(head + ids_of(other), full, strict=True))


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("world", [3, 7])
def test_equal_batches(plain_dir: Path, world: int, drop_last: bool) -> None:
    per_rank, trimmed = [], None
    for rank in range(world):
        ds = make(plain_dir, rank=rank, world_size=world, equal_batches=True, drop_last=drop_last)
        trimmed = ds.trimmed
        per_rank.append(ids_of(make_dataloader(ds, num_workers=2 if rank == 0 else 0)))
        assert len(per_rank[-1]) == len(ds)
    counts = {len(r) for r in per_rank}
    assert len(counts) == 1  # DDP cannot hang
    everything = np.concatenate([np.concatenate(r) for r in per_rank])
    assert len(set(everything.tolist())) == len(everything)  # nothing twice
    assert len(everything) + trimmed == TOTAL  # what is missing is counted
    assert trimmed < world * BS
    if drop_last:
        assert all(len(b) == BS for r in per_rank for b in r)


def test_drop_last_without_equal_batches(plain_dir: Path) -> None:
    ds = make(plain_dir, drop_last=True)
    got = ids_of(ds)
    assert all(len(b) == BS for b in got)
    assert ds.trimmed == TOTAL % BS == TOTAL - sum(len(b) for b in got)


def test_glob_single_file_and_columns(plain_dir: Path) -> None:
    ds = make(Path(str(plain_dir / "f[03].parquet")), columns=["id"])
    assert ds.index.num_rows == 3500 and ds.columns == ["id"]
    batch = next(iter(ds))
    assert set(batch) == {"id"}
    one = ShardDataset(str(plain_dir / "f1.parquet"), batch_size=100)
    assert [b["id"].tolist() for b in one] == [list(range(1000, 1037))]


def test_bad_inputs_are_clear_errors(tmp_path: Path, plain_dir: Path, manifest_dir: Path) -> None:
    with pytest.raises(DataprepError, match="does not exist"):
        ShardDataset(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataprepError, match="no .manifest.json and no .parquet"):
        ShardDataset(str(tmp_path / "empty"))
    with pytest.raises(DataprepError, match="no files match"):
        ShardDataset(str(tmp_path / "*.parquet"))
    with pytest.raises(DataprepError, match="column.*nope.*not in"):
        ShardDataset(str(plain_dir), columns=["id", "nope"])
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataprepError, match="junk.parquet is not a readable Parquet"):
        ShardDataset(str(tmp_path / "junk.parquet"))
    with pytest.raises(DataprepError, match="verify=True needs"):
        ShardDataset(str(plain_dir), verify=True)
    with pytest.raises(DataprepError, match="rank 2"):
        ShardDataset(str(plain_dir), rank=2, world_size=2)
    with pytest.raises(DataprepError, match="batch_size"):
        make_dataloader(ShardDataset(str(plain_dir)), batch_size=4)


def test_corrupt_shard_names_it(tmp_path: Path, manifest_dir: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in manifest_dir.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    target = bad / "part-00003.parquet"
    data = bytearray(target.read_bytes())
    data[-12:-8] = b"\xff\xff\xff\x7f"  # footer length: the file no longer parses
    target.write_bytes(bytes(data))
    wording = r"part-00003.parquet is corrupt \(its bytes do not match the manifest's checksum"
    with pytest.raises(DataprepError, match=wording):
        list(ShardDataset(str(bad), verify=True))
    with pytest.raises(DataprepError, match="part-00003.parquet"):
        list(make_dataloader(ShardDataset(str(bad)), num_workers=1))


def test_topology_from_environment(plain_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    ds = ShardDataset(str(plain_dir))
    assert (ds.rank, ds.world_size) == (1, 3)


def test_works_without_torch(plain_dir: Path) -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import dataprep, dataprep.dataset\n"
        "from dataprep.loader import ShardDataset\n"
        f"ds = ShardDataset({str(plain_dir)!r}, columns=['id'], batch_size=100)\n"
        "ids = sorted(i for b in ds for i in b['id'].tolist())\n"
        f"assert ids == list(range({TOTAL})), len(ids)\n"
        "assert type(next(iter(ds))['id']).__module__ == 'numpy'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_encrypted_dataset(tmp_path: Path) -> None:
    from dataprep import crypto  # ours, and `cryptography` is a dependency: a broken import fails

    key_file = tmp_path / "keys.json"
    crypto.generate_key_file(key_file)
    spec = crypto.EncryptionSpec(key_file=str(key_file))
    out = tmp_path / "enc"
    out.mkdir()
    schema = _table(0, 1).schema
    shards, first = [], 0
    for i, (rows, group) in enumerate([(300, 64), (151, 50)]):
        path = out / f"part-{i:05d}.parquet"
        with pq.ParquetWriter(path, schema, encryption_properties=spec.properties(schema)) as w:
            w.write_table(_table(first, rows), row_group_size=group)
        groups = [min(group, rows - s) for s in range(0, rows, group)]
        from dataprep.dataset import ShardEntry, file_checksum

        size = os.path.getsize(path)
        shards.append(ShardEntry(path.name, rows, size, file_checksum(path), groups))
        first += rows
    write_manifest(out, Manifest(schema, shards, encryption=spec.manifest(schema)))
    with pytest.raises(DataprepError, match="encrypted"):
        ShardDataset(str(out))
    ds = make(out, shuffle=True, key_file=str(key_file), verify=True)
    got = ids_of(make_dataloader(ds, num_workers=2))
    assert sorted(np.concatenate(got).tolist()) == list(range(451))
    other = tmp_path / "other.json"
    crypto.generate_key_file(other)
    with pytest.raises(DataprepError):
        list(make(out, key_file=str(other)))


def _gloo_rank(rank: int, world: int, port: int, path: str, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    ds = make(Path(path), equal_batches=True, shuffle=True, seed=3)  # rank/world from dist
    got = ids_of(make_dataloader(ds, num_workers=2))
    steps = torch.tensor([len(got)])
    dist.all_reduce(steps, op=dist.ReduceOp.MAX)  # would hang if counts differed at a barrier
    np.save(f"{out}/rank{ds.rank}.npy", np.concatenate(got))
    with open(f"{out}/meta{ds.rank}.txt", "w") as f:
        f.write(f"{ds.world_size} {len(got)} {int(steps)} {ds.trimmed}")
    dist.destroy_process_group()


def test_real_gloo_ranks(plain_dir: Path, tmp_path: Path) -> None:
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    world = 2
    mp.start_processes(
        _gloo_rank,
        args=(world, port, str(plain_dir), str(tmp_path)),
        nprocs=world,
        start_method="fork",
    )
    metas = [(tmp_path / f"meta{r}.txt").read_text().split() for r in range(world)]
    assert all(m[0] == str(world) for m in metas)  # world size came from torch.distributed
    assert len({m[1] for m in metas}) == 1 and metas[0][1] == metas[0][2]
    ids = np.concatenate([np.load(tmp_path / f"rank{r}.npy") for r in range(world)])
    assert len(set(ids.tolist())) == len(ids) == TOTAL - int(metas[0][3])


@pytest.fixture()
def s3_endpoint(monkeypatch: pytest.MonkeyPatch):
    server_mod = pytest.importorskip("moto.server")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"{host}:{port}"
    server.stop()


def test_s3_plain_files_and_manifest(
    s3_endpoint: str, plain_dir: Path, manifest_dir: Path, reference: list[np.ndarray]
) -> None:
    boto3 = pytest.importorskip("boto3")

    s3 = boto3.client("s3", endpoint_url=f"http://{s3_endpoint}", region_name="us-east-1")
    s3.create_bucket(Bucket="bucket")
    for local, prefix in [(plain_dir, "plain"), (manifest_dir, "ds")]:
        for f in local.iterdir():
            s3.put_object(Bucket="bucket", Key=f"{prefix}/{f.name}", Body=f.read_bytes())
    query = f"?endpoint_override={s3_endpoint}&scheme=http&region=us-east-1"
    for prefix in ["plain", "ds"]:
        ds = ShardDataset(f"s3://bucket/{prefix}{query}", batch_size=BS, shuffle=True, seed=5)
        ds.shuffle_window_rows = 64
        got = ids_of(make_dataloader(ds, num_workers=2 if prefix == "ds" else 0))
        assert all(np.array_equal(a, b) for a, b in zip(got, reference, strict=True))
    with pytest.raises(DataprepError, match="does not exist"):
        ShardDataset(f"s3://bucket/missing{query}")


@pytest.fixture(scope="module")
def second_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("second")
    pq.write_table(_table(100_000, 700), out / "a.parquet", row_group_size=90)
    return out


def test_mix_proportions_order_and_resume(plain_dir: Path, second_dir: Path) -> None:
    def mixed(rank: int = 0, world: int = 1):
        web = make(plain_dir, shuffle=True, seed=2, rank=rank, world_size=world)
        code = make(second_dir, shuffle=True, seed=2, rank=rank, world_size=world)
        return ShardDataset.mix({"web": web, "code": code}, weights=[0.7, 0.3])

    full = ids_of(make_dataloader(mixed()))
    sources = np.array([b[0] >= 100_000 for b in full])
    # `code` (43 full batches) runs out first: 43 / 0.3 = 143 mixed batches, 100 of web
    assert sources.sum() == 43 and len(full) == 143
    everything = np.concatenate(full)
    assert len(set(everything.tolist())) == len(everything)
    assert all(len(b) == BS for b in full)
    assert all(np.array_equal(a, b) for a, b in zip(ids_of(mixed()), full, strict=True))
    two = interleave([ids_of(make_dataloader(mixed(r, 2), num_workers=2)) for r in range(2)])
    assert all(np.array_equal(a, b) for a, b in zip(two, full, strict=True))
    # resume after 20 lockstep steps on 2 ranks, continue on 3 ranks
    head, states = [], []
    for r in range(2):
        dl = make_dataloader(mixed(r, 2))
        it = iter(dl)
        head.append([next(it)["id"].numpy().copy() for _ in range(20)])
        states.append(dl.state_dict())
    assert states[0] == states[1] and states[0]["next_batch"] == 40
    rest = []
    for r in range(3):
        dl = make_dataloader(mixed(r, 3), num_workers=1)
        dl.load_state_dict(states[0])
        rest.append(ids_of(dl))
    seq = interleave(head) + interleave(rest)
    assert all(np.array_equal(a, b) for a, b in zip(seq, full, strict=True))
    assert len(seq) == len(full)


def test_epoch_plan_places_every_row_once() -> None:
    """Random layouts: the lanes/rounds arithmetic maps batches onto every stream row once."""
    from dataprep.loader.order import EpochPlan

    rng = np.random.default_rng(0)
    for trial in range(200):
        units = rng.integers(1, 300, size=int(rng.integers(1, 40)))
        bs = int(rng.integers(1, 40))
        lanes, window = int(rng.integers(1, 9)), int(rng.integers(1, 200))
        plan = EpochPlan(units, bs, 1, trial, bool(trial % 2), lanes, window)
        rows, taken = [], []
        for b in range(plan.num_batches):
            lane, idx = plan.locate(b)
            first = int(plan.lane_start[lane]) + idx * bs
            rows.extend(range(first, first + plan.batch_len(b)))
            lane_w, window_i, offsets = plan.batch_rows(b)
            a, z = plan.window_span(lane_w, window_i)
            assert lane_w == lane and a <= first < z
            taken.extend(np.arange(a, z)[offsets].tolist())  # the stream rows actually read
        assert sorted(rows) == list(range(int(units.sum())))
        assert sorted(taken) == list(range(int(units.sum())))
        assert plan.lanes <= lanes
