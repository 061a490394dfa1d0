"""Hostile and half-written dataset directories (issue 14, items 5, 6 and 9).

Every manifest here is a real stage's manifest edited the way a person or a bug would edit it;
the checks are that each consumer (read_manifest, verify, a stage, export, the reader) refuses
it with one sentence naming the entry, and that the stage cache never trusts missing shards.
"""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import cli

from dataprep import crypto, dataset
from dataprep.errors import DataprepError, VerifyError
from dataprep.executors import make_executor
from dataprep.export import export_jsonl
from dataprep.loader import ShardDataset
from dataprep.runner import run_stage
from dataprep.stages.shard import ShardConfig

INLINE = make_executor("local", workers=1)
ROWS, SHARD_ROWS = 6000, 1000
NAMES = [f"part-00000-{i:05d}.parquet" for i in range(6)]  # shard order: both files, one task
Edit = Callable[[dict[str, Any]], None]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real `shard` output: 6 shards of 1,000 rows, one row group each."""
    root = tmp_path_factory.mktemp("manifest")
    src = root / "in"
    src.mkdir()
    for f in range(2):
        lines = (json.dumps({"text": f"doc {f}-{r} " + "w" * (r % 40)}) for r in range(ROWS // 2))
        (src / f"f{f}.jsonl").write_text("\n".join(lines) + "\n")
    out = root / "base"
    run_stage("shard", ShardConfig(shard_rows=SHARD_ROWS), out, inputs=[str(src)], executor=INLINE)
    return out


def _copy(base: Path, dst: Path, edit: Edit | None = None) -> Path:
    shutil.copytree(base, dst)
    if edit is not None:
        target = dst / dataset.MANIFEST
        data = json.loads(target.read_text())
        edit(data)
        target.write_text(json.dumps(data, indent=2))
    return dst


def _retotal(data: dict[str, Any]) -> None:
    """Make totals agree with the shard list, as a careful forger would."""
    shards = data["shards"]
    data["totals"] = {
        "shards": len(shards),
        "rows": sum(s["rows"] for s in shards),
        "bytes": sum(s["bytes"] for s in shards),
    }


def _one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(exc.value)
    assert "\n" not in text and "Traceback" not in text
    return text


# -- item 6: structural impossibilities, refused at load ------------------------------------


def _duplicate(data: dict[str, Any]) -> None:
    data["shards"].append(dict(data["shards"][0]))
    _retotal(data)


def _set(key: str, value: Any, shard: int | None = 2) -> Edit:
    def edit(data: dict[str, Any]) -> None:
        (data["shards"][shard] if shard is not None else data)[key] = value

    return edit


def _totals_rows(data: dict[str, Any]) -> None:
    data["totals"]["rows"] += SHARD_ROWS


def _fields_disagree(data: dict[str, Any]) -> None:
    data["schema"]["fields"][0]["type"] = "int64"


def _arrow_garbage(data: dict[str, Any]) -> None:
    data["schema"]["arrow"] = base64.b64encode(b"not an arrow schema").decode()


def _row_groups_short(data: dict[str, Any]) -> None:
    data["shards"][2]["row_groups"] = [600, 300]


def _drop_bytes(data: dict[str, Any]) -> None:
    del data["shards"][2]["bytes"]


def _lineage_entry(data: dict[str, Any]) -> None:
    data["lineage"] = ["oops"]


STRUCTURAL = {
    "duplicate": (_duplicate, rf"{NAMES[0]}.* twice"),
    "rows-lots": (_set("rows", "lots"), rf"{NAMES[2]}.*rows"),
    "rows-bool": (_set("rows", True), rf"{NAMES[2]}.*rows"),
    "rows-negative": (_set("rows", -5), rf"{NAMES[2]}.*rows"),
    "bytes-missing": (_drop_bytes, rf"{NAMES[2]}.*bytes"),
    "checksum-not-hex": (_set("xxh3_128", "forged"), rf"{NAMES[2]}.*xxh3_128"),
    "unknown-key": (_set("owner", "me"), rf"{NAMES[2]}.*owner"),
    "shard-not-object": (lambda d: d["shards"].__setitem__(2, "x.parquet"), r"shards\[2\]"),
    "lineage-string": (_set("lineage", "oops", None), "lineage"),
    "lineage-entry": (_lineage_entry, r"lineage\[0\]"),
    "encryption-string": (_set("encryption", "none", None), "encryption"),
    "totals": (_totals_rows, r"totals.*7000.*6000"),
    "fields-vs-arrow": (_fields_disagree, r"fields.*id"),
    "arrow-garbage": (_arrow_garbage, "schema"),
    "row-groups-sum": (_row_groups_short, rf"{NAMES[2]}.*row_groups.*900.*1000"),
    "shards-not-list": (_set("shards", {"a": 1}, None), "shards"),
}


@pytest.mark.parametrize("name", list(STRUCTURAL))
def test_read_manifest_names_the_impossible_entry(base: Path, tmp_path: Path, name: str) -> None:
    edit, pattern = STRUCTURAL[name]
    copy = _copy(base, tmp_path / "ds", edit)
    with pytest.raises(DataprepError, match=pattern) as exc:
        dataset.read_manifest(copy)
    assert "manifest.json" in _one_line(exc)
    with pytest.raises(VerifyError, match=pattern):  # verify: the dataset failed (exit 1)
        dataset.verify_dataset(copy)
    with pytest.raises(DataprepError, match=pattern):  # the reader parses it the same way
        ShardDataset(str(copy))


def test_duplicate_shard_is_not_read_twice_downstream(base: Path, tmp_path: Path) -> None:
    copy = _copy(base, tmp_path / "ds", _duplicate)
    verify = cli("verify", copy, check=False)
    assert verify.returncode == 1, verify.stdout
    assert NAMES[0] in verify.stderr and "Traceback" not in verify.stderr
    out = tmp_path / "compressed"
    stage = cli("compress", copy, "-o", out, "-q", check=False)
    assert stage.returncode == 2 and NAMES[0] in stage.stderr
    assert not (out / dataset.MANIFEST).exists()


# -- item 6: verify compares each shard's footer with the manifest ---------------------------


def _rename_column(data: dict[str, Any]) -> None:
    """Rename `text` to `body` in both schema spellings, so the manifest is self-consistent."""
    schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(data["schema"]["arrow"])))
    schema = pa.schema([f.with_name("body") if f.name == "text" else f for f in schema])
    data["schema"]["arrow"] = base64.b64encode(schema.serialize().to_pybytes()).decode()
    data["schema"]["fields"] = [{"name": f.name, "type": str(f.type)} for f in schema]


def _split_row_group(data: dict[str, Any]) -> None:
    data["shards"][3]["row_groups"] = [600, 400]  # sums right; the file has one group of 1000


def _retype_id(data: dict[str, Any]) -> None:
    schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(data["schema"]["arrow"])))
    schema = pa.schema([f.with_type(pa.large_string()) if f.name == "id" else f for f in schema])
    data["schema"]["arrow"] = base64.b64encode(schema.serialize().to_pybytes()).decode()
    data["schema"]["fields"] = [{"name": f.name, "type": str(f.type)} for f in schema]


@pytest.mark.parametrize(
    ("edit", "pattern"),
    [
        (_rename_column, rf"{NAMES[0]}.*schema.*body"),
        (_retype_id, rf"{NAMES[0]}.*schema.*id"),
        (_split_row_group, rf"{NAMES[3]}.*row groups.*\[1000\].*\[600, 400\]"),
    ],
    ids=["renamed-column", "retyped-column", "row-groups"],
)
def test_verify_compares_footers_with_the_manifest(
    base: Path, tmp_path: Path, edit: Edit, pattern: str
) -> None:
    copy = _copy(base, tmp_path / "ds", edit)
    dataset.read_manifest(copy)  # consistent in itself: only the files can tell
    with pytest.raises(VerifyError, match=pattern) as exc:
        dataset.verify_dataset(copy)
    _one_line(exc)


def test_verify_of_encrypted_footers_says_what_it_skipped(base: Path, tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    crypto.generate_key_file(keys)
    enc = tmp_path / "enc"
    run_stage("encrypt", {"key_file": str(keys)}, enc, input_path=base, executor=INLINE)
    result = cli("verify", enc, "--json")
    report = json.loads(result.stdout)
    assert report["ok"] and report["rows"] == ROWS
    assert "schema" in report["skipped"] and "encrypted" in report["skipped"]
    assert "not checked" in cli("verify", enc).stdout
    assert dataset.verify_dataset(base).skipped is None


# -- item 6: the stage cache checks that its shards are still there --------------------------


def test_cache_reruns_when_a_shard_is_missing_or_resized(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.jsonl").write_text("".join(json.dumps({"text": f"t{i}"}) + "\n" for i in range(50)))
    out = tmp_path / "out"
    config = ShardConfig(shard_rows=10)

    def run() -> str:
        return run_stage("shard", config, out, inputs=[str(src)], executor=INLINE).status

    assert (run(), run()) == ("ran", "cached")
    victim = out / "part-00000-00002.parquet"
    victim.unlink()
    (rerun,) = json.loads(cli("shard", src, "-o", out, "--shard-rows", "10", "--json").stdout)
    assert rerun["status"] == "ran" and victim.is_file()
    with victim.open("ab") as f:
        f.write(b"\0")
    assert run() == "ran"
    assert dataset.verify_dataset(out).rows == 50
    (out / dataset.MANIFEST).write_text('{"format": "dataprep.dataset", "shards": "x"}')
    assert run() == "ran"


# -- item 9: shard paths stay inside the dataset ---------------------------------------------


ESCAPES = [
    "../outside/x.parquet",
    "/tmp/x.parquet",
    "sub/../../x.parquet",
    "file:///tmp/x.parquet",
    "s3://bucket/x.parquet",
    "..",
    ".",
    "",
    "a\\..\\x.parquet",
    "sub/x.parquet",
]


@pytest.mark.parametrize("path", ESCAPES)
def test_shard_paths_must_be_plain_names(base: Path, tmp_path: Path, path: str) -> None:
    copy = _copy(base, tmp_path / "ds", _set("path", path, 1))
    with pytest.raises(DataprepError, match=r"shards\[1\].*plain file name") as exc:
        dataset.read_manifest(copy)
    assert repr(path) in _one_line(exc)


def test_escaping_shard_is_read_by_no_consumer(base: Path, tmp_path: Path) -> None:
    """A real Parquet file outside the dataset, with a matching checksum: once verify, compress,
    export and the reader all read it; now each names the entry and reads nothing."""
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "x.parquet"
    shutil.copy(base / NAMES[1], secret)
    relative = _copy(base, tmp_path / "rel", _set("path", "../outside/x.parquet", 1))
    verify = cli("verify", relative, check=False)
    assert verify.returncode == 1 and "plain file name" in verify.stderr
    stage = cli("compress", relative, "-o", tmp_path / "c", "-q", check=False)
    assert stage.returncode == 2 and "plain file name" in stage.stderr
    export = cli("export", relative, "-o", tmp_path / "e.jsonl", check=False)
    assert export.returncode == 2 and "plain file name" in export.stderr
    absolute = _copy(base, tmp_path / "abs", _set("path", str(secret), 1))
    for copy in (relative, absolute):
        with pytest.raises(DataprepError, match="plain file name"):
            ShardDataset(str(copy))
    with pytest.raises(VerifyError, match="plain file name"):
        dataset.verify_dataset(absolute)
    with pytest.raises(DataprepError, match="plain file name"):
        run_stage("compress", {}, tmp_path / "c2", input_path=absolute, executor=INLINE)
    with pytest.raises(DataprepError, match="plain file name"):
        export_jsonl(absolute, tmp_path / "e2.jsonl")
    assert not (tmp_path / "c2" / dataset.MANIFEST).exists()
    assert not (tmp_path / "e2.jsonl").exists()


# -- item 5: a killed stage's output is not a dataset -----------------------------------------


def test_reader_refuses_a_killed_stages_output(base: Path, tmp_path: Path) -> None:
    partial = _copy(base, tmp_path / "partial")
    (partial / dataset.MANIFEST).unlink()
    (partial / dataset.WORK_DIR).mkdir()
    (partial / dataset.WORK_DIR / "state.json").write_text("{}")
    with pytest.raises(DataprepError, match="unfinished output.*rerun") as exc:
        ShardDataset(str(partial))
    _one_line(exc)


def test_reader_still_reads_plain_parquet_directories(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    for i in range(3):
        pq.write_table(pa.table({"x": list(range(i * 10, i * 10 + 10))}), plain / f"{i}.parquet")
    hidden = plain / ".cache"  # other tools' hidden folders are not data (as in pyarrow.dataset)
    hidden.mkdir()
    pq.write_table(pa.table({"x": [-1]}), hidden / "stale.parquet")
    ds = ShardDataset(str(plain))
    assert ds.index.num_rows == 30


def test_cache_on_an_object_store_checks_shards_too(s3_bucket: str, tmp_path: Path) -> None:
    import boto3

    src = tmp_path / "in"
    src.mkdir()
    (src / "a.jsonl").write_text("".join(json.dumps({"text": f"t{i}"}) + "\n" for i in range(30)))
    out = f"{s3_bucket}/ds"
    config = ShardConfig(shard_rows=10)

    def run() -> str:
        return run_stage("shard", config, out, inputs=[str(src)], executor=INLINE).status

    assert (run(), run()) == ("ran", "cached")
    bucket = s3_bucket.removeprefix("s3://")
    boto3.client("s3").delete_object(Bucket=bucket, Key="ds/part-00000-00001.parquet")
    assert run() == "ran"
    assert dataset.verify_dataset(out).rows == 30
