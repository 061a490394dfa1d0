"""The three stages from a recipe (as in pipelines/quickstart.yaml), in worker processes."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

from parts_data import column, report

from dataprep import dataset, recipe

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_recipe_validates() -> None:
    plan = recipe.load(ROOT / "pipelines" / "quickstart.yaml")
    ops = [p.spec.op for p in plan.stages]
    assert {"resample", "rebalance", "partition"} <= set(ops)


def test_resample_rebalance_partition_recipe(corpus_dir: Path, tmp_path: Path) -> None:
    raw = {
        "vars": {"root": str(tmp_path)},
        "input": {"path": str(corpus_dir)},
        "executor": {"kind": "local", "workers": 2},
        "stages": [
            {"id": "shards", "op": "shard", "params": {"shard_rows": 200}},
            {
                "id": "balanced",
                "op": "resample",
                "params": {"label": "label", "strategy": "oversample", "max_ratio": 10},
            },
            {"id": "even", "op": "rebalance", "params": {"shards": 3, "shuffle": True}},
            {"id": "parts", "op": "partition", "params": {"key": "id", "partitions": 4}},
        ],
    }
    runs = recipe.run(recipe.build(raw, ["parts.partitions=5"]))
    assert [r.status for r in runs] == ["ran"] * 4
    before = Counter(column(tmp_path / "shards", "label"))
    after = Counter(column(tmp_path / "parts", "label"))
    assert after["common"] == before["common"]
    assert after["rare"] == max(before["rare"], math.ceil(before["common"] / 10))
    rows = [s.rows for s in dataset.read_manifest(tmp_path / "even").shards]
    assert max(rows) - min(rows) <= 1
    parts = dataset.read_manifest(tmp_path / "parts")
    assert {s.partition for s in parts.shards} == set(range(5))
    assert report(tmp_path / "parts")["partitions"] == 5
    again = recipe.run(recipe.build(raw, ["parts.partitions=5"]))
    assert [r.status for r in again] == ["cached"] * 4
