"""Review (H4): a shard replaced by another valid Parquet file with as many rows and the same
schema (a restore from the wrong backup, two datasets' files mixed up by a copy script).

Page checksums pass (the file is intact) and the footer's row count agrees, so partition,
rebalance (every mode), resample and tokenize used to process the foreign rows and exit 0: a
finished dataset holding other rows than its input, with nothing in the report. compress,
encrypt and export already checked the manifest's xxh3-128 of shards they read whole; these
stages read whole shards too, so they now do the same (one sentence, exit 2, no output).
A range read of part of a shard cannot hash the file, so it compares the footer's row groups
with the manifest's instead.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import cli

from dataprep import dataset
from dataprep.errors import DataprepError
from dataprep.runner import run_stage
from dataprep.stages.rebalance import read_range

DOCS = sorted(Path("/usr/share/doc").glob("*/copyright"))[:30]


def _raw(path: Path, reverse: bool) -> Path:
    with path.open("w") as out:
        for i, doc in enumerate(DOCS):
            text = doc.read_bytes().decode("utf-8", "replace")
            text = text[::-1] if reverse else text
            out.write(json.dumps({"id": f"d{i}", "text": text, "label": "ab"[i % 2]}) + "\n")
    return path


@pytest.fixture(scope="module")
def swapped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset whose third shard is the third shard of another dataset (same ids, rows,
    schema; every text reversed)."""
    root = tmp_path_factory.mktemp("swapped")
    for name, reverse in (("good", False), ("other", True)):
        raw = _raw(root / f"{name}.jsonl", reverse)
        run_stage("shard", {"shard_rows": 6}, root / name, inputs=[str(raw)])
    third = dataset.read_manifest(root / "good").shards[2].path
    assert third == dataset.read_manifest(root / "other").shards[2].path
    shutil.copy(root / "other" / third, root / "good" / third)
    return root / "good"


@pytest.mark.parametrize(
    ("op", "params"),
    [
        ("partition", {"key": "id", "partitions": 2}),
        ("rebalance", {"shards": 2}),
        ("rebalance", {"shards": 2, "shuffle": True}),
        ("rebalance", {"shards": 2, "by": "label"}),
        ("rebalance", {"target_bytes": 20000}),
        ("resample", {"label": "label", "strategy": "weights"}),
        ("tokenize", {"seq_len": 64}),
    ],
)
def test_a_swapped_shard_is_refused(swapped: Path, tmp_path: Path, op: str, params: dict) -> None:
    with pytest.raises(DataprepError, match="do not match the manifest's checksum"):
        run_stage(op, params, tmp_path / "out", input_path=swapped)
    assert not (tmp_path / "out" / dataset.MANIFEST).exists()


def test_a_swapped_shard_on_the_command_line_exits_2(swapped: Path, tmp_path: Path) -> None:
    proc = cli(
        "partition",
        swapped,
        "-o",
        tmp_path / "out",
        "--key",
        "id",
        "--partitions",
        "2",
        check=False,
    )
    assert proc.returncode == 2, proc.stderr[-400:]
    assert "part-00000-00002.parquet is corrupt" in proc.stderr and "Traceback" not in proc.stderr


def test_a_range_read_refuses_a_footer_that_disagrees_with_the_manifest(swapped: Path) -> None:
    entry = dataset.read_manifest(swapped).shards[0]
    path = str(swapped / entry.path)
    assert sum(t.num_rows for t in read_range(path, entry.row_groups, 1, 3)) == 2
    with pytest.raises(DataprepError, match="row groups of .* where the input's manifest says"):
        list(read_range(path, [entry.rows - 1, 1], 1, 3))


@pytest.mark.parametrize("shard_rows", [4, 9])
@pytest.mark.parametrize("shuffle", [False, True])
def test_the_reader_refuses_a_shard_whose_footer_disagrees_with_the_manifest(
    swapped: Path, tmp_path: Path, shard_rows: int, shuffle: bool
) -> None:
    """A shard replaced by a file with more rows (9 for 6) used to be read by the manifest's
    counts without a word: other rows, some ids twice. Fewer rows (4) was already an error."""
    from dataprep.loader import ShardDataset

    good = tmp_path / "good"
    shutil.copytree(swapped.parent / "other", good)  # intact, then one shard replaced
    raw = _raw(tmp_path / "raw.jsonl", reverse=False)
    run_stage("shard", {"shard_rows": shard_rows}, tmp_path / "cut", inputs=[str(raw)])
    name = dataset.read_manifest(good).shards[1].path
    shutil.copy(
        tmp_path / "cut" / dataset.read_manifest(tmp_path / "cut").shards[1].path, good / name
    )
    reader = ShardDataset(good, columns=["id", "text"], batch_size=4, shuffle=shuffle, seed=1)
    with pytest.raises(DataprepError, match=f"shard {name} has row groups of"):
        list(reader)


@pytest.mark.parametrize("name", ["stray.parquet", "_old.parquet"])
def test_verify_names_a_parquet_file_the_manifest_does_not_list(
    swapped: Path, tmp_path: Path, name: str
) -> None:
    """A Parquet file beside the shards that the manifest does not list (a stray copy, an
    older run's shard) used to pass `verify` ("ok"), while every other tool reading the
    directory (duckdb `DIR/*.parquet`, Hugging Face `data_dir=DIR`) adds its rows."""
    good = tmp_path / "good"
    shutil.copytree(swapped.parent / "other", good)
    assert cli("verify", good, check=False).returncode == 0
    shutil.copy(good / dataset.read_manifest(good).shards[0].path, good / name)
    proc = cli("verify", good, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"{name} is in the dataset directory but not in its manifest" in proc.stderr
    (good / name).rename(good / f".{name}")  # hidden: every tool skips it
    assert cli("verify", good, check=False).returncode == 0
