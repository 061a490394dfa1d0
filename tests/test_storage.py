"""`dataprep.storage`: the same answers for a local directory and an s3:// prefix."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from dataprep.arrays import load_array, load_array_slice, save_array
from dataprep.sources import resolve
from dataprep.storage import StoragePath


@pytest.fixture(params=["local", "s3"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> StoragePath:
    if request.param == "local":
        return StoragePath(tmp_path / "root")
    return StoragePath(request.getfixturevalue("s3_bucket")) / "root"


def test_files_listing_and_atomic_writes(root: StoragePath) -> None:
    (root / "sub").mkdir()
    assert not (root / "a.txt").exists()
    (root / "a.txt").write_atomic("one")
    (root / "sub" / "b.bin").write_atomic(b"\x00two")
    (root / "sub" / ".hidden").write_atomic(b"x")
    assert (root / "a.txt").read_text() == "one" and (root / "a.txt").is_file()
    assert (root / "sub").is_dir() and not (root / "sub").is_file()
    assert [p.name for p in root.iterdir()] == ["a.txt", "sub"]
    assert [p.name for p in (root / "sub").glob("*.bin")] == ["b.bin"]
    assert [str(p) for p in root.walk_files()] == [
        str(root / "a.txt"),
        str(root / "sub" / ".hidden"),
        str(root / "sub" / "b.bin"),
    ]
    assert (root / "sub" / "b.bin").stat()[0] == 4
    assert pickle.loads(pickle.dumps(root / "a.txt")) == root / "a.txt"
    (root / "a.txt").unlink()
    (root / "a.txt").unlink()  # absent: no error
    root.rmtree()
    assert not root.exists() and root.iterdir() == []


def test_arrays_whole_and_by_row(root: StoragePath) -> None:
    array = np.arange(5 * 7, dtype=np.uint64).reshape(5, 7)
    save_array(root / "a.npy", array)
    assert np.array_equal(load_array(root / "a.npy"), array)
    assert np.array_equal(load_array(root / "a.npy", mmap=False), array)
    for row in range(5):  # remotely a ranged read of just that row
        assert np.array_equal(load_array(root / "a.npy", row=row), array[row])
        for start, end in [(0, 7), (2, 5), (5, 99), (9, 12)]:
            got = load_array_slice(root / "a.npy", row, start, end)
            assert np.array_equal(got, array[row, start:end])
    flat = np.array([b"x" * 16, b"y" * 16, b"z" * 16], dtype="S16")
    save_array(root / "b.npy", flat)
    assert np.array_equal(load_array_slice(root / "b.npy", None, 1, 3), flat[1:3])


def test_raw_inputs_from_directory_and_glob(root: StoragePath) -> None:
    for name in ["x/1.jsonl", "x/2.jsonl", "x/notes.json", "y/3.csv"]:
        (root / name).write_atomic(b'{"text": "a"}\n')
    by_dir = resolve([str(root / "x")])
    assert [(s.name, s.format, s.size) for s in by_dir] == [
        ("1.jsonl", "jsonl", 14),
        ("2.jsonl", "jsonl", 14),
    ]
    by_glob = resolve([f"{root}/*/*.jsonl"])
    assert [s.path for s in by_glob] == [str(root / "x" / "1.jsonl"), str(root / "x" / "2.jsonl")]


def test_fsspec_protocol_runs_stages(corpus_dir: Path) -> None:
    """A scheme pyarrow does not know (here fsspec's in-memory one) goes through fsspec."""
    from dataprep.dataset import read_manifest, read_rows, verify_dataset
    from dataprep.executors.local import LocalExecutor
    from dataprep.runner import run_stage

    with LocalExecutor(workers=1) as inline:  # in-process: the memory filesystem is per process
        run_stage(
            "shard",
            {"shard_rows": 500},
            "memory://bkt/shards",
            inputs=[str(corpus_dir)],
            executor=inline,
        )
        run_stage(
            "dedup",
            {"method": "exact"},
            "memory://bkt/exact",
            input_path="memory://bkt/shards",
            executor=inline,
        )
    shards, exact = read_manifest("memory://bkt/shards"), read_manifest("memory://bkt/exact")
    assert 0 < exact.rows < shards.rows
    assert verify_dataset("memory://bkt/exact").rows == exact.rows
    ids = read_rows("memory://bkt/exact", ["id"]).column("id").to_pylist()
    assert len(ids) == len(set(ids)) == exact.rows
