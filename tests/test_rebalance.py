"""rebalance on uneven real shards: equal sizes, order or a seeded shuffle, bytes, groups."""

from __future__ import annotations

import math
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from parts_data import column, make_sharded, report, run, shard_tables

from dataprep import dataset
from dataprep.errors import DataprepError
from dataprep.stages.rebalance import RebalanceConfig, read_range
from dataprep.stages.rebalance_scatter import contingency


@pytest.fixture(scope="module")
def sharded(corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_sharded(corpus_dir, tmp_path_factory.mktemp("rebal") / "shards", shard_rows=170)


def test_input_is_uneven(sharded: Path) -> None:
    rows = [s.rows for s in dataset.read_manifest(sharded).shards]
    assert max(rows) - min(rows) > 50  # otherwise the tests below prove little


def test_equal_rows_in_order(sharded: Path, tmp_path: Path) -> None:
    run("rebalance", {"shards": 4}, sharded, tmp_path / "r")
    rows = [s.rows for s in dataset.read_manifest(tmp_path / "r").shards]
    assert len(rows) == 4 and max(rows) - min(rows) <= 1
    assert column(tmp_path / "r", "id") == column(sharded, "id")
    assert column(tmp_path / "r", "text") == column(sharded, "text")
    assert dataset.verify_dataset(tmp_path / "r").rows == sum(rows)


def test_target_rows(sharded: Path, tmp_path: Path) -> None:
    total = dataset.read_manifest(sharded).rows
    run("rebalance", {"target_rows": 400}, sharded, tmp_path / "r")
    rows = [s.rows for s in dataset.read_manifest(tmp_path / "r").shards]
    assert len(rows) == math.ceil(total / 400)
    assert max(rows) <= 400 and max(rows) - min(rows) <= 1
    assert column(tmp_path / "r", "id") == column(sharded, "id")


def test_read_range_equals_slicing_the_whole_shard(sharded: Path) -> None:
    rng = random.Random(5)
    for entry, table in shard_tables(sharded):
        path = str(sharded / entry.path)
        for _ in range(5):
            a = rng.randint(0, entry.rows)
            b = rng.randint(a, entry.rows)
            pieces = list(read_range(path, entry.row_groups, a, b))
            got = [i for p in pieces for i in p.column("id").to_pylist()]
            assert got == table.column("id").to_pylist()[a:b]
            assert len(pieces) <= math.ceil((b - a) / 40) + 1  # only overlapping row groups


def test_shuffle_is_seeded_equal_and_complete(sharded: Path, tmp_path: Path) -> None:
    ids = column(sharded, "id")
    run("rebalance", {"shards": 3, "shuffle": True, "seed": 7}, sharded, tmp_path / "a", workers=2)
    run("rebalance", {"shards": 3, "shuffle": True, "seed": 7}, sharded, tmp_path / "b")
    run("rebalance", {"shards": 3, "shuffle": True, "seed": 8}, sharded, tmp_path / "c")
    a, b, c = (column(tmp_path / x, "id") for x in "abc")
    assert Counter(a) == Counter(ids) == Counter(c)
    assert a == b  # same seed, same order, whatever the worker count
    assert a != c and a != ids
    rows = [s.rows for s in dataset.read_manifest(tmp_path / "a").shards]
    assert max(rows) - min(rows) <= 1
    # rows of every input shard are spread over the outputs, not kept together
    first_shard = set(
        pq.read_table(sharded / dataset.read_manifest(sharded).shards[0].path)
        .column("id")
        .to_pylist()
    )
    spread = [sum(1 for i in ids_ if i in first_shard) for ids_ in _per_shard(tmp_path / "a")]
    assert min(spread) > 0


def _per_shard(root: Path) -> list[list[str]]:
    return [t.column("id").to_pylist() for _, t in shard_tables(root)]


def test_contingency_table_has_exact_margins() -> None:
    rows = [170, 170, 35, 170, 12, 90]
    sizes = [216, 216, 215]
    table = contingency(rows, sizes, seed=3)
    assert table.sum(axis=1).tolist() == rows
    assert table.sum(axis=0).tolist() == sizes
    assert (table >= 0).all()


def test_target_bytes_within_5_percent_in_order(sharded: Path, tmp_path: Path) -> None:
    total = dataset.read_manifest(sharded).bytes
    target = -(-total // 4)  # ceil: exactly four shards
    run(
        "rebalance",
        {"target_bytes": target},
        sharded,
        tmp_path / "r",
        write_options=dataset.WriteOptions(),
    )
    sizes = np.array([s.bytes for s in dataset.read_manifest(tmp_path / "r").shards])
    assert len(sizes) == 4
    assert sizes.max() / sizes.mean() <= 1.05 and sizes.min() / sizes.mean() >= 0.95
    assert column(tmp_path / "r", "id") == column(sharded, "id")


def _lpt(sizes: dict[str, int], bins: int) -> list[int]:
    """Independent greedy largest-first packing: groups above the fair share are cut into
    near-equal pieces, each piece goes to the least-loaded bin not yet holding its group."""
    cap = -(-sum(sizes.values()) // bins)
    items = []
    for name, size in sizes.items():
        parts = -(-size // cap)
        items += [(size // parts + (1 if j < size % parts else 0), name) for j in range(parts)]
    loads = [0] * bins
    holders: dict[str, set[int]] = {name: set() for name in sizes}
    for size, name in sorted(items, key=lambda it: -it[0]):
        free = [k for k in range(bins) if k not in holders[name]] or list(range(bins))
        k = min(free, key=lambda b: (loads[b], b))
        loads[k] += size
        holders[name].add(k)
    return sorted(loads)


def test_by_packs_groups_largest_first(sharded: Path, tmp_path: Path) -> None:
    counts = Counter(column(sharded, "source"))
    run("rebalance", {"shards": 3, "by": "source"}, sharded, tmp_path / "r")
    per_shard = [Counter(t.column("source").to_pylist()) for _, t in shard_tables(tmp_path / "r")]
    assert sorted(sum(c.values()) for c in per_shard) == _lpt(dict(counts), 3)
    cap = -(-sum(counts.values()) // 3)
    for group, size in counts.items():
        holders = [c[group] for c in per_shard if c[group]]
        assert sum(holders) == size
        if size <= cap:
            assert len(holders) == 1  # small groups stay whole
        else:
            assert len(holders) == -(-size // cap)  # a hot key is split, not dumped on one shard
    ids = column(sharded, "id")
    position = {k: i for i, k in enumerate(ids)}
    for shard_ids in _per_shard(tmp_path / "r"):
        assert [position[k] for k in shard_ids] == sorted(position[k] for k in shard_ids)
    rep = report(tmp_path / "r")
    assert rep["groups"] == len(counts) and rep["mode"] == "by"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "exactly one of shards, target_rows or target_bytes"),
        ({"shards": 2, "target_rows": 5}, "exactly one of"),
        ({"target_bytes": "1MB", "shuffle": True}, "target_bytes works only in order"),
        ({"shards": 2, "shuffle": True, "by": "source"}, "shuffle or by"),
    ],
)
def test_bad_options(params: dict, message: str) -> None:
    with pytest.raises(DataprepError, match=message):
        RebalanceConfig.parse(params)


def test_unknown_by_column(sharded: Path, tmp_path: Path) -> None:
    with pytest.raises(DataprepError, match="--by 'nope' is not a column"):
        run("rebalance", {"shards": 2, "by": "nope"}, sharded, tmp_path / "r")
