"""One storage layer: stages, raw-input discovery, the loader's index and the shard readers all
resolve paths, globs, checksums and read errors through the same code, for any fsspec URI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xxhash

from dataprep import dataset, storage
from dataprep.errors import DataprepError, short_error
from dataprep.executors.local import LocalExecutor
from dataprep.loader import ShardDataset
from dataprep.loader.index import open_index
from dataprep.runner import run_stage
from dataprep.sources import resolve
from dataprep.storage import StoragePath, file_checksum, glob_files, move
from dataprep.train import checksums


def _docs(n: int) -> bytes:
    return "".join(
        json.dumps({"text": f"document {i} " + "x" * (i % 7)}) + "\n" for i in range(n)
    ).encode()


def _ids(ds: ShardDataset) -> list[str]:
    return [i for batch in ds for i in batch["id"]]


@pytest.fixture
def memory_root(request: pytest.FixtureRequest) -> StoragePath:
    """A fresh folder in fsspec's in-process memory filesystem (a scheme pyarrow lacks)."""
    root = StoragePath(f"memory://h3/{re.sub(r'[^a-z0-9]', '_', request.node.name)}")
    yield root
    root.rmtree()


def test_loader_reads_what_a_stage_wrote_to_memory(memory_root: StoragePath) -> None:
    """A stage writes memory:// through fsspec; the loader read the same URI with its own
    resolver, which knew only pyarrow's schemes ("cannot open memory://...")."""
    (memory_root / "raw" / "a.jsonl").write_atomic(_docs(300))
    out = str(memory_root / "shards")
    with LocalExecutor(workers=1) as inline:  # in-process: the memory filesystem is per process
        run_stage(
            "shard", {"shard_rows": 70}, out, inputs=[str(memory_root / "raw")], executor=inline
        )
    expected = dataset.read_rows(out, ["id"]).column("id").to_pylist()
    assert len(expected) == 300
    assert _ids(ShardDataset(out, columns=["id"], batch_size=16)) == expected
    assert _ids(ShardDataset(out, columns=["id"], batch_size=16, verify=True)) == expected


def test_loader_globs_and_folders_on_memory(memory_root: StoragePath) -> None:
    """Plain Parquet below a memory:// prefix: a folder (recursively, hidden parts skipped) and
    a one-level glob give the files a local copy of the same tree gives."""
    layout = {"a.parquet": 3, "b.parquet": 4, "sub/c.parquet": 5, "_tmp/d.parquet": 6}
    for name, rows in layout.items():
        sink = pa.BufferOutputStream()
        pq.write_table(pa.table({"id": [f"{name}-{i}" for i in range(rows)]}), sink)
        (memory_root / "plain" / name).write_atomic(sink.getvalue().to_pybytes())
    folder = open_index(str(memory_root / "plain"))
    assert [f.name for f in folder.files] == ["a.parquet", "b.parquet", "c.parquet"]
    assert folder.num_rows == 12
    globbed = open_index(f"{memory_root}/plain/*.parquet")  # one level, as locally
    assert [f.name for f in globbed.files] == ["a.parquet", "b.parquet"]
    assert globbed.num_rows == 7
    with pytest.raises(DataprepError, match="no files match"):
        open_index(f"{memory_root}/plain/*.nothing")


def test_listing_keeps_the_spelling_of_the_uri(memory_root: StoragePath) -> None:
    """fsspec lists `/h3/...` for `memory://h3/...`: files below a folder, raw-input names and a
    folder move must still be relative to the folder as the user spelled it."""
    for name in ["x/1.jsonl", "x/deep/2.jsonl"]:
        (memory_root / name).write_atomic(_docs(2))
    files = (memory_root / "x").walk_files()
    assert [str(p) for p in files] == [
        str(memory_root / "x" / "1.jsonl"),
        str(memory_root / "x" / "deep" / "2.jsonl"),
    ]
    assert [s.name for s in resolve([str(memory_root / "x")])] == ["1.jsonl", "deep/2.jsonl"]
    assert [str(p) for p in glob_files(f"{memory_root}/x/*.jsonl")] == [str(files[0])]
    move(memory_root / "x", memory_root / "y")
    assert [p.read_bytes() for p in (memory_root / "y").walk_files()] == [_docs(2), _docs(2)]
    assert not (memory_root / "x").exists()


GLOBS = [
    ("*.parquet", ["a.parquet"]),
    ("*/*.parquet", ["sub/b.parquet"]),
    ("**/*.parquet", ["a.parquet", "sub/b.parquet", "sub/deeper/c.parquet"]),
    ("sub/**", ["sub/b.parquet", "sub/deeper/c.parquet"]),
    (".*.parquet", [".hidden.parquet"]),
    ("s[u]b/*.parq[u]et", ["sub/b.parquet"]),  # (in a URI, "?" starts the query)
]


@pytest.mark.parametrize("where", ["local", "memory"])
def test_a_glob_matches_the_same_everywhere(where: str, tmp_path: Path, memory_root) -> None:
    """Raw inputs and the loader match a glob alike, and a URI like a local path: by
    `glob.glob`'s rules (the loader used `fnmatch` over a listing: `*` crossed folders on a
    URI but not locally, hidden files matched; raw inputs on a URI crossed folders too)."""
    root = str(tmp_path) if where == "local" else str(memory_root)
    for name in ["a.parquet", ".hidden.parquet", "sub/b.parquet", "sub/deeper/c.parquet"]:
        sink = pa.BufferOutputStream()
        pq.write_table(pa.table({"text": [name]}), sink)
        StoragePath(f"{root}/{name}").write_atomic(sink.getvalue().to_pybytes())
    for pattern, expected in GLOBS:
        full = f"{root}/{pattern}"
        want = [f"{root}/{e}" for e in expected]
        assert [str(p) for p in glob_files(full)] == want, pattern
        assert [s.path for s in resolve([full])] == want, pattern
        index = open_index(full)
        assert [f.name for f in index.files] == [e.rsplit("/", 1)[-1] for e in expected], pattern
        assert index.num_rows == len(expected)


def test_one_checksum_everywhere(tmp_path: Path, memory_root: StoragePath) -> None:
    """xxh3-128 of the whole file (the oracle: xxhash over the bytes at once), streamed, for a
    local path, a URI, and a checkpoint file; the manifest records the same function."""
    data = bytes(range(256)) * 70_001  # > 2 blocks of 8 MiB: the streaming seams are crossed
    expected = xxhash.xxh3_128(data).hexdigest()
    (tmp_path / "f.bin").write_bytes(data)
    (memory_root / "f.bin").write_atomic(data)
    assert file_checksum(tmp_path / "f.bin") == expected
    assert file_checksum(str(tmp_path / "f.bin")) == expected
    assert file_checksum(memory_root / "f.bin") == expected
    assert dataset.file_checksum is file_checksum
    checksums.write(tmp_path)
    listed = json.loads((tmp_path / checksums.NAME).read_text())["files"]["f.bin"]
    assert listed[checksums.ALGORITHM] == expected and checksums.verify(tmp_path, ("f.bin",))


def test_short_error_is_the_first_line() -> None:
    assert short_error(ValueError("bad thing\nwith details")) == "bad thing"
    assert short_error(ValueError("\n  indented first\nsecond")) == "indented first"
    assert short_error(KeyError()) == "KeyError"
    assert short_error(OSError("x" * 500)) == "x" * 300
    ray_like = ConnectionError("Traceback (most recent call last):\n  File x\nRuntimeError: no\n)")
    assert short_error(ray_like, last=True) == "RuntimeError: no"


def _break_footer(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-12:-8] = b"\xff\xff\xff\x7f"  # footer length: the file no longer parses
    path.write_bytes(bytes(data))


def test_a_broken_shard_reads_as_one_sentence_everywhere(tmp_path: Path) -> None:
    """The loader and the stages' shard reader said different things about the same broken
    shard ("is not readable Parquet ...; it may be corrupt" vs "is corrupt or not Parquet")."""
    (tmp_path / "in.jsonl").write_bytes(_docs(200))
    out = tmp_path / "ds"
    with LocalExecutor(workers=1) as inline:
        run_stage(
            "shard", {"shard_rows": 80}, out, inputs=[str(tmp_path / "in.jsonl")], executor=inline
        )
    target = out / dataset.read_manifest(out).shards[1].path
    _break_footer(target)
    with pytest.raises(DataprepError) as by_stage:
        dataset.ReadOptions().read_table(target)
    with pytest.raises(DataprepError) as by_loader:
        _ids(ShardDataset(str(out), columns=["id"], batch_size=16))
    assert str(by_loader.value) == str(by_stage.value)
    assert str(by_stage.value).startswith(f"shard {target.name} is corrupt or not Parquet (")
    assert str(by_stage.value).endswith("; rerun the stage that wrote it or restore it")


def test_an_unknown_scheme_is_one_sentence(tmp_path: Path) -> None:
    """fsspec's "Protocol not known" was a ValueError traceback from stages and raw inputs."""
    with pytest.raises(DataprepError, match=r"cannot open nope://b: Protocol not known: nope"):
        StoragePath("nope://b/x").exists()
    with pytest.raises(DataprepError, match="cannot open nope://b"):
        resolve(["nope://b/raw/*.jsonl"])
    with pytest.raises(DataprepError, match="cannot open nope://b"):
        open_index("nope://b/ds")


@pytest.mark.parametrize("where", ["local", "memory"])
def test_plain_parquet_folder_order_is_path_order(where: str, tmp_path: Path, memory_root) -> None:
    """The loader reads a folder's files in path-string order ("x.parquet" before
    "x/y.parquet"; `Path` order puts the folder first): the order rows are read in."""
    root = str(tmp_path) if where == "local" else str(memory_root)
    names = ["x/y.parquet", "x.parquet", "x-z.parquet", "w/v.parquet"]
    for name in names:
        sink = pa.BufferOutputStream()
        pq.write_table(pa.table({"text": [name]}), sink)
        StoragePath(f"{root}/{name}").write_atomic(sink.getvalue().to_pybytes())
    index = open_index(root)
    expected = [storage.resolve(f"{root}/{n}")[1] for n in sorted(names)]
    assert [f.path for f in index.files] == expected
