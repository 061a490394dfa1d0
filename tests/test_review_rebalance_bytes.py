"""Review (H4) of `rebalance --target-bytes` on real shapes of data.

A list or struct column has several Parquet leaf columns, so the per-column compressed sizes
(7 leaves) no longer lined up with the logical sizes (6 columns): a ValueError traceback for
any dataset with a nested column. And a row much bigger than a share (a 3 MB log line among
copyright texts) made several byte cuts meet, leaving an output shard with no rows, whose
task died with an IndexError. Now every row arrives (oracle: pyarrow's read of the input) and
no output shard is empty.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from parts_data import run

from dataprep import dataset
from dataprep.runner import run_stage

DOCS = sorted(Path("/usr/share/doc").glob("*/copyright"))[:40]


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bytes")
    texts = [d.read_text(errors="replace") for d in DOCS] + ["x" * 3_000_000]
    n = len(texts)
    table = pa.table(
        {
            "id": [f"r{i:03d}" for i in range(n)],
            "text": texts,
            "nums": pa.array([[i, i + 1] for i in range(n)], pa.list_(pa.int64())),
            "meta": pa.array([{"a": i, "b": str(i)} for i in range(n)]),
        }
    )
    pq.write_table(table, root / "in.parquet")
    keep = ["id", "text", "nums", "meta"]
    run_stage(
        "shard", {"shard_rows": 7, "keep": keep}, root / "s", inputs=[str(root / "in.parquet")]
    )
    return root / "s"


def _rows(root: Path) -> Counter:
    tables = [pq.read_table(root / s.path) for s in dataset.read_manifest(root).shards]
    return Counter(repr(r) for r in pa.concat_tables(tables).to_pylist())


@pytest.mark.parametrize("target", [1_000, 20_000, 10_000_000])
def test_target_bytes_keeps_every_row_with_nested_columns_and_a_huge_row(
    shards: Path, tmp_path: Path, target: int
) -> None:
    run("rebalance", {"target_bytes": target}, shards, tmp_path / "out")
    assert _rows(tmp_path / "out") == _rows(shards)
    assert all(s.rows > 0 for s in dataset.read_manifest(tmp_path / "out").shards)
