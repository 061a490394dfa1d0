"""Review (H4, from H3's note) of 1:1 stages on a partitioned dataset, and of empty inputs.

encrypt, decrypt, tokenize and resample write one output shard per input shard, but named
it `part-NNNNN` without the input's partition tag, so `partition -> encrypt` lost the layout
(every shard untagged, the pNNNNN- names gone) while compress, score and filter kept it. And
resample on a dataset with no rows (a filter that kept nothing) died with a TypeError
traceback instead of its sentence about having no labels.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import cli

from dataprep import dataset
from dataprep.errors import DataprepError
from dataprep.runner import run_stage

DOCS = sorted(Path("/usr/share/doc").glob("*/copyright"))[:30]


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tags")
    raw = root / "raw.jsonl"
    with raw.open("w") as out:
        for i, doc in enumerate(DOCS):
            text = doc.read_text(errors="replace")
            out.write(json.dumps({"id": f"d{i}", "text": text, "label": "abc"[i % 3]}) + "\n")
    run_stage("shard", {"shard_rows": 7}, root / "shards", inputs=[str(raw)])
    run_stage(
        "partition", {"key": "id", "partitions": 3}, root / "parts", input_path=root / "shards"
    )
    cli("keygen", "-o", root / "k.keys")
    return root / "parts"


def _tags(path: Path) -> list[tuple[int | None, str]]:
    return [(s.partition, s.path.split("-part-")[0]) for s in dataset.read_manifest(path).shards]


def test_encrypt_decrypt_tokenize_and_resample_keep_partition_tags(
    parts: Path, tmp_path: Path
) -> None:
    want = _tags(parts)
    assert {p for p, _ in want} == {0, 1, 2} and all(n == f"p{p:05d}" for p, n in want)
    keys = parts.parent / "k.keys"
    cli("encrypt", parts, "-o", tmp_path / "enc", "-k", keys, "-q")
    cli("decrypt", tmp_path / "enc", "-o", tmp_path / "dec", "-k", keys, "-q")
    run_stage("tokenize", {"seq_len": 32}, tmp_path / "tok", input_path=parts)
    params = {"label": "label", "strategy": "weights"}
    run_stage("resample", params, tmp_path / "res", input_path=parts)
    for name in ("enc", "dec", "tok", "res"):
        assert _tags(tmp_path / name) == want, name


def test_resample_of_an_empty_dataset_is_one_sentence(parts: Path, tmp_path: Path) -> None:
    run_stage("filter", {"where": "label == 'none'"}, tmp_path / "empty", input_path=parts)
    assert dataset.read_manifest(tmp_path / "empty").rows == 0
    with pytest.raises(DataprepError, match="has no non-null labels to balance"):
        run_stage(
            "resample",
            {"label": "label", "strategy": "weights"},
            tmp_path / "out",
            input_path=tmp_path / "empty",
        )
