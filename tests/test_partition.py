"""partition end to end on real shards, checked row by row against the reference hashes."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import hash_reference as ref
import pytest
from parts_data import column, make_sharded, report, run, shard_tables, write_jsonl

from dataprep import dataset
from dataprep.errors import DataprepError
from dataprep.runner import run_stage
from dataprep.stages.partition import PartitionConfig


@pytest.fixture(scope="module")
def sharded(corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_sharded(corpus_dir, tmp_path_factory.mktemp("part") / "shards")


def _partition_of_ids(root: Path) -> dict[str, int]:
    out = {}
    for entry, table in shard_tables(root):
        for key in table.column("id").to_pylist():
            out[key] = entry.partition
    return out


def test_jump_partition_matches_reference_row_by_row(sharded: Path, tmp_path: Path) -> None:
    out = tmp_path / "p5"
    run("partition", {"key": "id", "partitions": 5}, sharded, out, workers=2)
    ids_in = column(sharded, "id")
    seen: Counter[str] = Counter()
    rows_per_partition = [0] * 5
    order_by_partition: dict[int, list[str]] = {p: [] for p in range(5)}
    manifest = dataset.read_manifest(out)
    assert [s.partition for s in manifest.shards] == sorted(s.partition for s in manifest.shards)
    for entry, table in shard_tables(out):
        assert entry.partition is not None
        for key in table.column("id").to_pylist():
            assert ref.jump(ref.key_hash(key), 5) == entry.partition
            seen[key] += 1
            order_by_partition[entry.partition].append(key)
        rows_per_partition[entry.partition] += table.num_rows
    assert seen == Counter(ids_in)  # every row exactly once
    for p, keys in order_by_partition.items():  # input order kept within a partition
        assert keys == [k for k in ids_in if ref.jump(ref.key_hash(k), 5) == p]
    rep = report(out)
    assert rep["partition_rows"] == rows_per_partition
    mean = sum(rows_per_partition) / 5
    assert rep["balance"]["max_over_mean"] == pytest.approx(max(rows_per_partition) / mean)
    assert dataset.verify_dataset(out).rows == len(ids_in)


@pytest.mark.parametrize("scheme", ["rendezvous", "ring"])
def test_weighted_schemes_match_reference(sharded: Path, tmp_path: Path, scheme: str) -> None:
    weights = [1.0, 3.0, 2.0]
    out = tmp_path / scheme
    run(
        "partition",
        {"key": "id", "partitions": 3, "scheme": scheme, "weights": weights, "vnodes": 64},
        sharded,
        out,
    )
    ring = ref.Ring(weights, 64)
    for key, part in _partition_of_ids(out).items():
        h = ref.key_hash(key)
        want = ref.rendezvous(h, weights) if scheme == "rendezvous" else ring.lookup(h)
        assert part == want


def test_previous_reports_the_fraction_that_moved(sharded: Path, tmp_path: Path) -> None:
    run("partition", {"key": "id", "partitions": 4}, sharded, tmp_path / "p4")
    run(
        "partition",
        {"key": "id", "partitions": 5, "previous": str(tmp_path / "p4")},
        sharded,
        tmp_path / "p5",
    )
    before, after = _partition_of_ids(tmp_path / "p4"), _partition_of_ids(tmp_path / "p5")
    moved = [k for k in before if before[k] != after[k]]
    assert all(after[k] == 4 for k in moved)  # only into the new partition
    rep = report(tmp_path / "p5")["previous"]
    assert rep["rows_moved"] == len(moved) and rep["rows"] == len(before)
    assert rep["moved_between_old_partitions"] == 0
    assert rep["moved_fraction"] == pytest.approx(len(moved) / len(before), abs=1e-6)
    assert rep["ideal_fraction"] == pytest.approx(0.2)


def test_null_keys_go_to_quarantine(tmp_path: Path) -> None:
    rows = [{"text": f"doc {i}", "user": None if i % 7 == 0 else f"u{i % 11}"} for i in range(100)]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    run_stage("shard", {"shard_rows": 30}, tmp_path / "s", inputs=[str(src)])
    run("partition", {"key": "user", "partitions": 3}, tmp_path / "s", tmp_path / "p")
    nulls = sum(1 for r in rows if r["user"] is None)
    assert report(tmp_path / "p")["quarantined"] == nulls
    assert len((tmp_path / "p" / ".quarantine.jsonl").read_text().splitlines()) == nulls
    users = column(tmp_path / "p", "user")
    assert sorted(users) == sorted(r["user"] for r in rows if r["user"] is not None)


def test_bad_options_stop_with_one_clear_sentence(sharded: Path, tmp_path: Path) -> None:
    with pytest.raises(DataprepError, match="'nope' is not a column"):
        run("partition", {"key": "nope", "partitions": 3}, sharded, tmp_path / "x")
    with pytest.raises(DataprepError, match="weights need scheme rendezvous or ring"):
        PartitionConfig.parse({"key": "id", "partitions": 2, "weights": [1, 2]})
    with pytest.raises(DataprepError, match="weights has 2 values but partitions is 3"):
        PartitionConfig.parse({"key": "id", "partitions": 3, "scheme": "ring", "weights": [1, 2]})
    with pytest.raises(DataprepError, match="was not written by 'dataprep partition'"):
        params = {"key": "id", "partitions": 3, "previous": str(sharded)}
        run("partition", params, sharded, tmp_path / "w")
    cmd = [sys.executable, "-c", "from dataprep.cli import main; main()", "partition"]
    args = [str(sharded), "-o", str(tmp_path / "cli"), "--key", "nope", "--partitions", "3"]
    proc = subprocess.run(cmd + args, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "is not a column" in proc.stderr and "Traceback" not in proc.stderr
