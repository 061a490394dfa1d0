"""resample: exact planned class counts (checked by recounting the output), seeded choices,
clear errors, and null labels in quarantine."""

from __future__ import annotations

import math
import random
from collections import Counter
from pathlib import Path

import pytest
from parts_data import column, report, run, shard_tables, write_jsonl

from dataprep import dataset
from dataprep.errors import DataprepError
from dataprep.runner import run_stage
from dataprep.stages.resample import ResampleConfig

SIZES = {"a": 600, "b": 250, "c": 40}
NULLS = 10


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three skewed classes plus null labels, shuffled over ~10 uneven shards."""
    root = tmp_path_factory.mktemp("resample")
    labels: list[str | None] = [k for k, n in SIZES.items() for _ in range(n)] + [None] * NULLS
    random.Random(4).shuffle(labels)
    rows = [{"id": f"r{i}", "text": f"row {i}", "label": lab} for i, lab in enumerate(labels)]
    (root / "raw").mkdir()
    write_jsonl(root / "raw" / "a.jsonl", rows[:500])
    write_jsonl(root / "raw" / "b.jsonl", rows[500:])
    run_stage("shard", {"shard_rows": 90}, root / "shards", inputs=[str(root / "raw")])
    return root / "shards"


def _input_ids(root: Path) -> dict[str, str | None]:
    table = dataset.read_rows(root, ["id", "label"])
    return dict(zip(table.column("id").to_pylist(), table.column("label").to_pylist(), strict=True))


def test_undersample_uniform_is_exact_seeded_and_ordered(labelled: Path, tmp_path: Path) -> None:
    params = {"label": "label", "strategy": "undersample", "seed": 1}
    run("resample", params, labelled, tmp_path / "a")
    run("resample", params, labelled, tmp_path / "b", workers=2)
    run("resample", {**params, "seed": 2}, labelled, tmp_path / "c")
    assert Counter(column(tmp_path / "a", "label")) == dict.fromkeys(SIZES, 40)
    ids = column(tmp_path / "a", "id")
    order = list(_input_ids(labelled))
    assert len(set(ids)) == len(ids) and set(ids) <= set(order)
    assert ids == [k for k in order if k in set(ids)]  # a subset in input order
    assert ids == column(tmp_path / "b", "id")  # same seed, same rows, any worker count
    assert ids != column(tmp_path / "c", "id")
    rep = report(tmp_path / "a")
    assert rep["classes_in"] == SIZES and rep["classes_out"] == dict.fromkeys(SIZES, 40)
    assert rep["quarantined"] == NULLS
    quarantine = (tmp_path / "a" / ".quarantine.jsonl").read_text().splitlines()
    assert len(quarantine) == NULLS and all("null label" in line for line in quarantine)


def test_oversample_max_ratio_repeats_each_row_floor_or_ceil(
    labelled: Path, tmp_path: Path
) -> None:
    run(
        "resample",
        {"label": "label", "strategy": "oversample", "max_ratio": 7, "seed": 3},
        labelled,
        tmp_path / "o",
    )
    want_c = math.ceil(600 / 7)
    assert Counter(column(tmp_path / "o", "label")) == {"a": 600, "b": 250, "c": want_c}
    labels = _input_ids(labelled)
    copies = Counter(column(tmp_path / "o", "id"))
    for key, label in labels.items():
        if label in ("a", "b"):
            assert copies[key] == 1
        elif label == "c":
            assert copies[key] in (want_c // 40, want_c // 40 + 1)
    assert sum(1 for k, n in copies.items() if n == want_c // 40 + 1) == want_c % 40
    # the repeated rows come from, and land in, many shards
    holders = [t for _, t in shard_tables(tmp_path / "o")]
    with_extra = [t for t in holders if len(set(t.column("id").to_pylist())) < t.num_rows]
    assert len(with_extra) > 3


@pytest.mark.parametrize(
    ("strategy", "ratios", "expected"),
    [
        ("undersample", "a=3,b=2,c=1", {"a": 120, "b": 80, "c": 40}),
        ("undersample", {"a": 1, "b": 1, "c": 0.5}, {"a": 80, "b": 80, "c": 40}),
        ("oversample", "a=1, b=1, c=1", {"a": 600, "b": 600, "c": 600}),
        ("oversample", {"a": 2, "b": 1, "c": 1}, {"a": 600, "b": 300, "c": 300}),
    ],
)
def test_ratios_give_exact_counts(
    labelled: Path, tmp_path: Path, strategy: str, ratios: object, expected: dict
) -> None:
    params = {"label": "label", "strategy": strategy, "ratios": ratios}
    run("resample", params, labelled, tmp_path / "r")
    assert Counter(column(tmp_path / "r", "label")) == expected
    assert dataset.verify_dataset(tmp_path / "r").rows == sum(expected.values())


def test_weights_are_inverse_frequency_with_mean_one(labelled: Path, tmp_path: Path) -> None:
    run("resample", {"label": "label", "strategy": "weights"}, labelled, tmp_path / "w")
    table = dataset.read_rows(tmp_path / "w", ["id", "label", "sample_weight"])
    labels = table.column("label").to_pylist()
    weights = table.column("sample_weight").to_pylist()
    total = sum(SIZES.values())
    assert len(labels) == total
    for label, weight in zip(labels, weights, strict=True):
        assert weight == pytest.approx(total / (len(SIZES) * SIZES[label]))
    assert sum(weights) / len(weights) == pytest.approx(1.0)
    assert column(tmp_path / "w", "id") == [k for k, v in _input_ids(labelled).items() if v]


def test_errors_are_clear(labelled: Path, tmp_path: Path) -> None:
    with pytest.raises(DataprepError, match="--label 'nope' is not a column"):
        run("resample", {"label": "nope", "strategy": "undersample"}, labelled, tmp_path / "x")
    with pytest.raises(DataprepError, match="--ratios names 'zzz'"):
        params = {"label": "label", "strategy": "undersample", "ratios": "a=1,zzz=2"}
        run("resample", params, labelled, tmp_path / "y")
    with pytest.raises(DataprepError, match="must give every class a ratio; missing 'c'"):
        params = {"label": "label", "strategy": "oversample", "ratios": "a=1,b=2"}
        run("resample", params, labelled, tmp_path / "z")
    with pytest.raises(DataprepError, match="CLASS=NUMBER"):
        ResampleConfig.parse({"label": "l", "strategy": "weights", "ratios": "a1"})
    with pytest.raises(DataprepError, match="one of target, ratios or max_ratio"):
        ResampleConfig.parse(
            {"label": "l", "strategy": "weights", "target": "uniform", "max_ratio": 3}
        )
