"""The manifest and its lineage as typed models, against manifests earlier versions wrote.

Oracles: `data/partitioned.manifest.json` is a manifest exactly as dataprep 0.1.0 (before the
typed lineage) wrote it, so writing what was read must give the same bytes; older lineage
shapes (no stage id, digests or start time, plus keys from elsewhere) are made by editing a
real manifest, and must load, show, and pass through a later stage unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import cli

from dataprep import dataset
from dataprep.manifest import LineageEntry, Manifest, ManifestError
from dataprep.runner import run_stage

DATA = Path(__file__).parent / "data"
OLD_ENTRY = {  # what a lineage entry needs to be read by every version
    "stage": "shard",
    "config": {"shard_rows": 10, "id_column": "id"},
    "version": "0.0.9",
    "finished": "2025-01-02T03:04:05Z",
    "host": "build-7",  # a key this version does not know
}


def _corpus(tmp_path: Path, rows: int = 40) -> Path:
    root = tmp_path / "corpus"
    root.mkdir()
    lines = (json.dumps({"id": f"r{i}", "text": f"row {i} " + "y" * (i % 7)}) for i in range(rows))
    (root / "a.jsonl").write_text("\n".join(lines) + "\n")
    return root


def _as_old_dataset(out: Path) -> dict:
    """Rewrite `out`'s manifest as an older version left it: under `manifest.json`, with a
    lineage entry in the oldest shape."""
    data = json.loads((out / dataset.MANIFEST).read_text())
    data["lineage"] = [OLD_ENTRY]
    (out / dataset.MANIFEST).unlink()
    (out / "manifest.json").write_text(json.dumps(data))
    return data


def test_a_manifest_written_before_is_written_back_byte_for_byte() -> None:
    text = (DATA / "partitioned.manifest.json").read_text()
    manifest = Manifest.from_json(json.loads(text))
    assert all(isinstance(e, LineageEntry) for e in manifest.lineage)
    assert [e.stage for e in manifest.lineage] == ["shard", "partition"]
    assert manifest.lineage[-1].config["partitions"] == 2
    assert {s.partition for s in manifest.shards} == {0, 1}
    assert json.dumps(manifest.to_json(), indent=2) + "\n" == text


def test_old_lineage_shape_loads_typed_shows_and_passes_through(tmp_path: Path) -> None:
    shards = tmp_path / "shards"
    run_stage("shard", {"shard_rows": 10}, shards, inputs=[str(_corpus(tmp_path))])
    _as_old_dataset(shards)

    entry = dataset.read_manifest(shards).lineage[0]
    assert (entry.stage, entry.id, entry.input_digest, entry.started) == ("shard", None, None, None)
    assert entry.model_extra == {"host": "build-7"}
    assert entry["config"] == OLD_ENTRY["config"]  # read-only dict access, as before

    shown = cli("inspect", shards).stdout
    assert "0.0.9" in shown and "2025-01-02T03:04:05Z" in shown

    out = tmp_path / "compressed"
    run_stage("compress", {"codec": "zstd", "level": 5}, out, input_path=shards)
    written = json.loads((out / dataset.MANIFEST).read_text())["lineage"]
    assert written[0] == OLD_ENTRY  # no key added, none lost, none renamed
    assert list(written[1]) == [
        "stage",
        "id",
        "config",
        "input_digest",
        "config_digest",
        "version",
        "started",
        "finished",
        "input",  # since `dataprep lineage`: where the input was, rows in and out
        "rows_in",
        "rows_out",
    ]
    assert written[1]["input"] == str(shards.resolve()) and written[1]["rows_in"] == 40
    assert written[1]["input_digest"] == dataset.read_manifest(shards).digest()


def test_cache_compares_the_typed_digests(tmp_path: Path) -> None:
    corpus = [str(_corpus(tmp_path))]
    out = tmp_path / "shards"
    assert run_stage("shard", {"shard_rows": 10}, out, inputs=corpus).status == "ran"
    assert run_stage("shard", {"shard_rows": 10}, out, inputs=corpus).status == "cached"
    assert run_stage("shard", {"shard_rows": 20}, out, inputs=corpus).status == "ran"
    # an output whose last entry predates the digests cannot prove it is current: it reruns
    _as_old_dataset(out)
    assert run_stage("shard", {"shard_rows": 20}, out, inputs=corpus).status == "ran"
    assert run_stage("shard", {"shard_rows": 20}, out, inputs=corpus).status == "cached"


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        ({"input_digest": 5}, r"lineage\[0\]\.input_digest should be a string"),
        ({"config": "shard_rows=10"}, r"lineage\[0\]\.config should be a JSON object"),
        ({"stage": None}, r"lineage\[0\]\.stage should be a string"),
    ],
)
def test_a_lineage_entry_no_stage_wrote_is_refused(edit: dict, where: str) -> None:
    data = json.loads((DATA / "partitioned.manifest.json").read_text())
    data["lineage"][0].update(edit)
    with pytest.raises(ManifestError, match=where):
        Manifest.from_json(data)


def test_a_lineage_given_as_dicts_is_checked_and_typed() -> None:
    manifest = Manifest.from_json(json.loads((DATA / "partitioned.manifest.json").read_text()))
    built = Manifest(manifest.schema, manifest.shards, [dict(OLD_ENTRY)])
    assert built.lineage[0].version == "0.0.9"
    assert built.to_json()["lineage"] == [OLD_ENTRY]
    with pytest.raises(ValueError):
        Manifest(manifest.schema, manifest.shards, [{"stage": "shard"}])
