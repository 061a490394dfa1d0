"""export: JSONL / JSONL.zst read back with plain json + zstandard equals the dataset's rows."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from dataprep import crypto, dataset
from dataprep.errors import DataprepError
from dataprep.executors import make_executor
from dataprep.export import export_jsonl
from dataprep.runner import run_stage
from dataprep.stages.shard import ShardConfig

INLINE = make_executor("local", workers=1)


@pytest.fixture(scope="module")
def shards(corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "shards"
    run_stage("shard", ShardConfig(shard_rows=500), out, inputs=[str(corpus_dir)], executor=INLINE)
    return out


def _lines(path: Path) -> list[dict]:
    data = path.read_bytes()
    if path.name.endswith(".zst"):
        data = zstandard.ZstdDecompressor().stream_reader(data).read()
    return [json.loads(line) for line in data.decode().splitlines()]


@pytest.mark.parametrize("name", ["out.jsonl", "out.jsonl.zst"])
def test_roundtrip(shards: Path, tmp_path: Path, name: str) -> None:
    target = tmp_path / name
    summary = export_jsonl(shards, target)
    rows = _lines(target)
    expected = dataset.read_rows(shards).to_pylist()
    assert rows == expected and summary["rows"] == len(expected)
    assert summary["bytes"] == target.stat().st_size
    if name.endswith(".zst"):
        assert target.read_bytes()[:4] == b"\x28\xb5\x2f\xfd"  # zstd frame magic
    with pytest.raises(DataprepError, match="already exists"):
        export_jsonl(shards, target)


def test_columns_and_encrypted_input(shards: Path, tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    crypto.generate_key_file(keys)
    enc = tmp_path / "enc"
    run_stage("encrypt", {"key_file": str(keys)}, enc, input_path=shards, executor=INLINE)
    with pytest.raises(DataprepError, match=r"part-00000\.parquet is encrypted"):
        export_jsonl(enc, tmp_path / "x.jsonl")
    assert not (tmp_path / "x.jsonl").exists() and not list(tmp_path.glob(".x.jsonl.tmp-*"))
    target = tmp_path / "y.jsonl.zst"
    export_jsonl(enc, target, columns=["id", "label"], key_file=keys)
    expected = dataset.read_rows(shards, columns=["id", "label"]).to_pylist()
    assert _lines(target) == expected
    with pytest.raises(DataprepError, match="--columns names nope"):
        export_jsonl(shards, tmp_path / "z.jsonl", columns=["nope"])
    with pytest.raises(DataprepError, match="neither"):
        export_jsonl(shards, tmp_path / "z.csv")


def test_awkward_types(tmp_path: Path) -> None:
    src = tmp_path / "ds"
    src.mkdir()
    table = pa.table(
        {
            "f": [1.5, float("nan"), None],
            "b": [b"\x00\x01", b"", None],
            "l": [[1, 2], [], None],
            "d": pa.array([0, 1, 2], pa.date32()),
        }
    )
    path = src / "part-00000.parquet"
    pq.write_table(table, path)
    entry = dataset.ShardEntry(
        "part-00000.parquet", 3, path.stat().st_size, dataset.file_checksum(path), [3]
    )
    dataset.write_manifest(src, dataset.Manifest(table.schema, [entry]))
    export_jsonl(src, tmp_path / "o.jsonl")
    rows = _lines(tmp_path / "o.jsonl")
    assert rows[0] == {"f": 1.5, "b": "AAE=", "l": [1, 2], "d": "1970-01-01"}
    assert rows[1]["f"] is None and not math.isnan(rows[0]["f"])
    assert rows[2] == {"f": None, "b": None, "l": None, "d": "1970-01-03"}
