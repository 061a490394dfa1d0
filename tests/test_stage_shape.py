"""The shape every stage shares (issue 20): shard writers as context managers, typed stage
contexts and task payloads, and an executor protocol that imports nothing of ours."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataprep import stage
from dataprep.dataset import RollingShardWriter, ShardWriter, file_checksum
from dataprep.executors import protocol

TABLE = pa.table({"id": [f"r{i}" for i in range(10)], "text": ["x" * i for i in range(10)]})


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_shard_writer_closes_on_success(tmp_path: Path) -> None:
    with ShardWriter(tmp_path / "part-00000.parquet", TABLE.schema) as writer:
        writer.write(TABLE)
    entry = writer.entry
    assert _leftovers(tmp_path) == ["part-00000.parquet"]
    assert pq.read_table(tmp_path / "part-00000.parquet").equals(TABLE)
    assert (entry.path, entry.rows) == ("part-00000.parquet", 10)
    assert entry.xxh3_128 == file_checksum(tmp_path / "part-00000.parquet")


def test_shard_writer_aborts_on_exception(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), ShardWriter(tmp_path / "p.parquet", TABLE.schema) as w:
        w.write(TABLE)
        raise KeyboardInterrupt
    assert _leftovers(tmp_path) == [], "no shard and no temporary file"
    with pytest.raises(RuntimeError, match="was not closed"):
        _ = w.entry


def test_shard_writer_aborts_when_its_close_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_upload(self: object, local: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("dataprep.storage.StoragePath.upload_from", broken_upload)
    with (
        pytest.raises(OSError, match="No space"),
        ShardWriter(tmp_path / "p.parquet", TABLE.schema) as w,
    ):
        w.write(TABLE)
    assert _leftovers(tmp_path) == []


def test_shard_writer_closed_or_aborted_inside_the_block_stays_so(tmp_path: Path) -> None:
    with ShardWriter(tmp_path / "a.parquet", TABLE.schema) as a:
        a.write(TABLE)
        first = a.close()
    assert a.entry is first
    with ShardWriter(tmp_path / "b.parquet", TABLE.schema) as b:
        b.abort()  # e.g. every row was a duplicate: no empty shard
    assert _leftovers(tmp_path) == ["a.parquet"]


def test_rolling_writer_context(tmp_path: Path) -> None:
    with RollingShardWriter(tmp_path, "part", TABLE.schema, shard_rows=4) as writer:
        writer.write(TABLE)
    assert [e.rows for e in writer.entries] == [4, 4, 2]
    (tmp_path / "x").mkdir()
    with (
        pytest.raises(ValueError),
        RollingShardWriter(tmp_path / "x", "part", TABLE.schema, 4) as w,
    ):
        w.write(TABLE.slice(0, 6))
        raise ValueError("task failed")
    assert _leftovers(tmp_path / "x") == ["part-00000.parquet"], "the shard in progress is gone"


def test_executor_protocol_imports_nothing_of_ours() -> None:
    """stage.py needs only the protocol; importing it loads no executor and no stage code."""
    code = (
        "import sys, dataprep.executors.protocol as p; "
        "print(sorted(m for m in sys.modules if m.startswith('dataprep')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [
        "['dataprep',",
        "'dataprep.executors',",
        "'dataprep.executors.protocol']",
    ]
    stage_source = Path(stage.__file__).read_text()
    imported = {
        node.module
        for node in ast.walk(ast.parse(stage_source))
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert {m for m in imported if m.startswith("dataprep.executors")} == {
        "dataprep.executors.protocol"
    }
    from dataprep.executors import Executor

    assert Executor is protocol.Executor
