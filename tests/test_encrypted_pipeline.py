"""pipelines/encrypted.yaml end to end: every quickstart stage reads and writes encrypted shards.

Oracle: the same recipe without `output.encryption`. Both runs write uncompressed shards without
dictionaries (only the output settings differ from the shipped recipe), so plaintext would sit
verbatim in the files: the plain run's shards contain every sampled text (the control), and no
file of the encrypted run may contain any of them. Each encrypted stage, decrypted, must equal
the plain run's stage row for row.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from dataprep import dataset
from dataprep.dataset import ReadOptions
from dataprep.sample import generate_corpus

RECIPE = Path(__file__).resolve().parents[1] / "pipelines" / "encrypted.yaml"
TEXT_STAGES = ["shards", "exact", "near", "balanced", "even", "parts"]  # packed: zstd, tokens: ids


def _cli(*args: str, cwd: Path, keys: Path | None = None) -> subprocess.CompletedProcess[str]:
    code = "import sys; from dataprep.cli import main; sys.argv[0] = 'dataprep'; main()"
    env = {**os.environ, "COLUMNS": "400"}
    if keys is not None:
        env["DATAPREP_KEYS"] = str(keys)
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, env=env
    )


def _recipe(tmp: Path, name: str, encrypted: bool) -> Path:
    raw = yaml.safe_load(RECIPE.read_text())
    raw["vars"]["root"] = f"work/{name}"
    raw["output"].update(compression="none", use_dictionary=False)
    if not encrypted:
        del raw["output"]["encryption"]
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _stages() -> list[str]:
    return [s["id"] for s in yaml.safe_load(RECIPE.read_text())["stages"]]


def _plain(root: Path) -> pa.Table:
    manifest = dataset.read_manifest(root)
    return pa.concat_tables(pq.read_table(root / s.path) for s in manifest.shards)


def _decrypted(root: Path, keys: Path) -> pa.Table:
    manifest = dataset.read_manifest(root)
    reader = ReadOptions(str(keys), manifest.encryption)
    return pa.concat_tables(reader.read_table(root / s.path) for s in manifest.shards)


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("encrypted-pipeline")
    generate_corpus(tmp / "sample_data", docs=800, seed=3)
    keys = tmp / "keys.json"
    made = _cli("keygen", "-o", str(keys), cwd=tmp)
    assert made.returncode == 0, made.stderr
    for name, encrypted in (("encrypted", True), ("plain", False)):
        recipe = _recipe(tmp, name, encrypted)
        done = _cli("run", str(recipe), "-q", cwd=tmp, keys=keys)
        assert done.returncode == 0, done.stderr
    return tmp, keys


def test_every_stage_writes_encrypted_shards_with_the_plain_runs_rows(runs) -> None:
    tmp, keys = runs
    assert _stages() == ["shards", "exact", "near", "balanced", "even", "parts", "packed", "tokens"]
    for stage in _stages():
        enc, plain = tmp / "work/encrypted" / stage, tmp / "work/plain" / stage
        manifest = dataset.read_manifest(enc)
        assert manifest.encryption is not None, stage
        assert manifest.encryption["plaintext_columns"] == [], stage
        assert dataset.read_manifest(plain).encryption is None
        expected = _plain(plain)
        assert expected.num_rows > 0, stage
        assert _decrypted(enc, keys).equals(expected), stage
        with pytest.raises(OSError):  # no key, no footer
            pq.read_table(enc / manifest.shards[0].path)
    # the stages did their work: the plain run's counts show dedup, oversampling and partitions
    rows = {s: dataset.read_manifest(tmp / "work/plain" / s).rows for s in _stages()}
    assert rows["exact"] < rows["shards"] and rows["near"] < rows["exact"]
    assert rows["balanced"] > rows["near"]
    parts = dataset.read_manifest(tmp / "work/encrypted/parts").shards
    assert {s.partition for s in parts} == set(range(8))


def test_no_plaintext_anywhere_in_the_encrypted_run(runs) -> None:
    tmp, _ = runs
    texts = _plain(tmp / "work/plain/shards").column("text").to_pylist()
    # 40-byte prefixes: shards hold whole values, dedup reports quote the first 160 characters
    prefixes = {t.encode()[:40] for t in texts if t and len(t) >= 40 and t.isascii()}
    needles = sorted(p for p in prefixes if b'"' not in p and b"\\" not in p)
    sample = needles[:: max(1, len(needles) // 200)]  # for the big files
    assert len(sample) >= 100
    for stage in TEXT_STAGES:  # control: unencrypted, uncompressed shards hold them verbatim
        plain = tmp / "work/plain" / stage
        held = {t.encode()[:40] for t in _plain(plain).column("text").to_pylist() if t}
        kept = held & set(sample)
        blob = b"".join(p.read_bytes() for p in _files(plain) if p.suffix == ".parquet")
        assert kept and all(value in blob for value in kept), stage
    report = (tmp / "work/plain/near/.report.json").read_bytes()  # control: examples quote rows
    assert any(value in report for value in needles)
    files = _files(tmp / "work/encrypted")
    assert any(p.name == ".report.json" for p in files)
    for path in files:  # shards, manifests, reports (dedup examples), tokenizer
        if path.name.startswith("quarantine"):
            continue  # malformed source lines, never parsed into rows
        raw = path.read_bytes()
        leaked = [v for v in (sample if path.suffix == ".parquet" else needles) if v in raw]
        assert not leaked, f"{path.relative_to(tmp)} holds plaintext: {leaked[:3]}"


def test_stage_clis_take_key_file_and_partition_previous_reads_encrypted(runs) -> None:
    tmp, keys = runs
    outputs = {}
    for name in ("encrypted", "plain"):
        work = tmp / "work" / name
        args = ["partition", str(work / "even"), "-o", str(tmp / f"p9-{name}"), "--key", "id"]
        args += ["--partitions", "9", "--previous", str(work / "parts"), "-w", "1", "-q"]
        args += ["--key-file", str(keys)] if name == "encrypted" else []
        done = _cli(*args, cwd=tmp)
        assert done.returncode == 0, done.stderr
        outputs[name] = tmp / f"p9-{name}"
    reports = {k: json.loads((v / ".report.json").read_text()) for k, v in outputs.items()}
    assert reports["encrypted"]["previous"]["rows"] == reports["plain"]["previous"]["rows"] > 0
    moved = reports["encrypted"]["previous"]["rows_moved"]
    assert moved == reports["plain"]["previous"]["rows_moved"] > 0
    assert dataset.read_manifest(outputs["encrypted"]).encryption is not None
    assert _decrypted(outputs["encrypted"], keys).equals(_plain(outputs["plain"]))
    for name, args in (("ordered", ["--shards", "3"]), ("by", ["--shards", "3", "--by", "label"])):
        got = {}
        for run in ("encrypted", "plain"):
            out = tmp / f"rebalance-{name}-{run}"
            key = ["--key-file", str(keys)] if run == "encrypted" else []
            source = str(tmp / "work" / run / "balanced")
            done = _cli("rebalance", source, "-o", str(out), *args, *key, "-w", "1", "-q", cwd=tmp)
            assert done.returncode == 0, done.stderr
            got[run] = _decrypted(out, keys) if run == "encrypted" else _plain(out)
        assert got["encrypted"].equals(got["plain"]), name
    for stage, args in (
        ("dedup", ["--method", "exact"]),
        ("resample", ["--label", "label", "--strategy", "undersample"]),
        ("rebalance", ["--shards", "2"]),
        ("tokenize", ["--seq-len", "64"]),
        ("partition", ["--key", "id", "--partitions", "2"]),
    ):
        out = tmp / f"nokey-{stage}"
        source = str(tmp / "work/encrypted/near")
        failed = _cli(stage, source, "-o", str(out), *args, "-w", "1", "-q", cwd=tmp)
        assert failed.returncode == 2, (stage, failed.stderr)
        assert "--key-file" in failed.stderr and "Traceback" not in failed.stderr, stage
        assert not (out / ".manifest.json").exists()
