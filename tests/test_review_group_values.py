"""Review (H4) of the stages that group rows by a column's values: resample --label,
rebalance --by, partition --key.

Counting runs in Arrow (`value_counts`), merging in a Python dict, routing back in Arrow
(`index_in`), and the three disagreed on floats: Arrow counts 0.0 and -0.0 as two values that
Python's dict merges into one key, so `resample --label` on a float column holding both wrote
half the rows and reported `classes_in {0.0: 20}` for 40 rows in (silently lost), and
`rebalance --by` died with an IndexError. A list or struct column named as the key was a
pyarrow traceback (exit 1) in all three stages.

Expected: every row is in the output (oracle: pyarrow's read of the input, compared row by
row), the classes add up to the rows in, and a column that holds lists or structs is one
sentence before any task runs.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import cli
from parts_data import report, run

from dataprep import dataset
from dataprep.errors import DataprepError
from dataprep.runner import run_stage

ROWS = 40


def _norm(value: object) -> object:
    """NaN and -0.0 spelled out, so rows compare exactly (NaN != NaN; -0.0 == 0.0)."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, float) and value == 0 and math.copysign(1, value) < 0:
        return "-0.0"
    return value


def _rows(root: Path, columns: list[str]) -> Counter:
    table = pa.concat_tables(
        pq.read_table(root / s.path, columns=columns) for s in dataset.read_manifest(root).shards
    )
    return Counter(tuple(_norm(v) for v in row.values()) for row in table.to_pylist())


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("groups")
    table = pa.table(
        {
            "id": [f"r{i:03d}" for i in range(ROWS)],
            "text": [f"document {i}" for i in range(ROWS)],
            "zero": [-0.0 if i % 2 else 0.0 for i in range(ROWS)],
            "score": [math.nan if i % 3 == 0 else float(i % 2) for i in range(ROWS)],
            "nums": pa.array([[i, i + 1] for i in range(ROWS)], pa.list_(pa.int64())),
            "meta": pa.array([{"a": i} for i in range(ROWS)], pa.struct([("a", pa.int64())])),
        }
    )
    pq.write_table(table, root / "in.parquet")
    keep = ["id", "text", "zero", "score", "nums", "meta"]
    out = root / "shards"
    run_stage("shard", {"shard_rows": 6, "keep": keep}, out, inputs=[str(root / "in.parquet")])
    return out


@pytest.mark.parametrize("strategy", ["undersample", "weights"])
def test_resample_on_a_float_label_with_signed_zeros_keeps_every_row(
    shards: Path, tmp_path: Path, strategy: str
) -> None:
    run("resample", {"label": "zero", "strategy": strategy}, shards, tmp_path / "out")
    rep = report(tmp_path / "out")
    assert sum(rep["classes_in"].values()) == ROWS == rep["rows_out"], rep
    columns = ["id", "text", "zero"]
    assert _rows(tmp_path / "out", columns) == _rows(shards, columns)  # -0.0 stays -0.0


def test_resample_on_a_float_label_with_nan_is_one_class(shards: Path, tmp_path: Path) -> None:
    run("resample", {"label": "score", "strategy": "undersample"}, shards, tmp_path / "out")
    rep = report(tmp_path / "out")
    assert rep["classes_in"] == {"0.0": 13, "1.0": 13, "nan": 14}, rep
    assert rep["classes_out"] == {"0.0": 13, "1.0": 13, "nan": 13}
    assert rep["rows_out"] == 39 == sum(_rows(tmp_path / "out", ["id"]).values())


@pytest.mark.parametrize("column", ["zero", "score"])
def test_rebalance_by_a_float_column_keeps_every_row_and_each_group_whole(
    shards: Path, tmp_path: Path, column: str
) -> None:
    run("rebalance", {"shards": 3, "by": column}, shards, tmp_path / "out")
    columns = ["id", "text", "zero", "score"]
    assert _rows(tmp_path / "out", columns) == _rows(shards, columns)
    values = _rows(shards, [column])
    assert report(tmp_path / "out")["groups"] == len({str(v) for (v,) in values if v != "-0.0"})


@pytest.mark.parametrize(
    ("op", "params"),
    [
        ("resample", {"label": "nums", "strategy": "undersample"}),
        ("rebalance", {"shards": 2, "by": "meta"}),
        ("partition", {"key": "nums", "partitions": 2}),
    ],
)
def test_a_list_or_struct_key_column_is_one_sentence(
    shards: Path, tmp_path: Path, op: str, params: dict
) -> None:
    with pytest.raises(DataprepError, match="not a single value per row"):
        run(op, params, shards, tmp_path / "out")
    assert not (tmp_path / "out" / dataset.MANIFEST).exists()


def test_a_struct_key_on_the_command_line_exits_2(shards: Path, tmp_path: Path) -> None:
    proc = cli(
        "rebalance", shards, "-o", tmp_path / "out", "--shards", "2", "--by", "meta", check=False
    )
    assert proc.returncode == 2, proc.stderr[-400:]
    assert "Traceback" not in proc.stderr
    assert "--by 'meta' holds struct" in proc.stderr


def test_partition_puts_equal_float_keys_together(shards: Path, tmp_path: Path) -> None:
    """0.0 and -0.0 are equal keys; they were hashed as the strings '0' and '-0' and could
    land in different partitions."""
    run("partition", {"key": "zero", "partitions": 8}, shards, tmp_path / "out")
    parts = {s.partition for s in dataset.read_manifest(tmp_path / "out").shards}
    assert len(parts) == 1
    assert sum(_rows(tmp_path / "out", ["id"]).values()) == ROWS
