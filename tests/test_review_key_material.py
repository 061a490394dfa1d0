"""Review (H4) of tampering with an encrypted dataset's key material.

The manifest's `encryption.key_material.dir` was taken as given: `../other/.keys/0` or an
absolute path made every reader open the shards with wrapped keys from outside the dataset
(another dataset's, or a file an attacker placed), and a copied dataset silently depend on
files outside it. Loading the manifest now refuses any dir but `.keys/N`, in one sentence,
for every read path (head, decrypt, the loader, verify, keys rotate).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import cli

from dataprep.runner import run_stage

DOCS = sorted(Path("/usr/share/doc").glob("*/copyright"))[:12]


@pytest.fixture(scope="module")
def enc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("material")
    raw = root / "raw.jsonl"
    with raw.open("w") as out:
        for i, doc in enumerate(DOCS):
            out.write(json.dumps({"id": f"d{i}", "text": doc.read_text(errors="replace")}) + "\n")
    run_stage("shard", {"shard_rows": 4}, root / "shards", inputs=[str(raw)])
    cli("keygen", "-o", root / "k.keys")
    cli("encrypt", root / "shards", "-o", root / "enc", "-k", root / "k.keys", "-q")
    return root / "enc"


@pytest.mark.parametrize("where", ["../enc/.keys/0", "ABS", ".keys/0/../../enc/.keys/0", 7])
def test_key_material_outside_the_dataset_is_refused(enc: Path, tmp_path: Path, where) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(enc, copy)
    doc = json.loads((copy / ".manifest.json").read_text())
    assert doc["encryption"]["key_material"] == {"storage": "external", "dir": ".keys/0"}
    doc["encryption"]["key_material"]["dir"] = str(enc / ".keys/0") if where == "ABS" else where
    (copy / ".manifest.json").write_text(json.dumps(doc))
    keys = enc.parent / "k.keys"
    for args in (
        ("head", copy, "-k", keys, "-n", "1"),
        ("decrypt", copy, "-o", tmp_path / "dec", "-k", keys),
        ("verify", copy),
    ):
        proc = cli(*args, check=False)
        assert proc.returncode in (1, 2), proc.stdout[-300:]
        assert "encryption.key_material.dir" in proc.stderr and "is not .keys/N" in proc.stderr
        assert "Traceback" not in proc.stderr
    assert not (tmp_path / "dec").exists()


def test_swapped_key_material_is_named_in_the_error(enc: Path, tmp_path: Path) -> None:
    """Two shards' key material files swapped (a bad restore): the shard bytes and the master
    keys are fine, so the old sentence ('changed since it was written or the key is wrong')
    sent users after the wrong cause; it now names the key material file too."""
    copy = tmp_path / "copy"
    shutil.copytree(enc, copy)
    keys = copy / ".keys" / "0"
    shutil.copy(
        keys / "_KEY_MATERIAL_FOR_part-00001.parquet.json",
        keys / "_KEY_MATERIAL_FOR_part-00000.parquet.json",
    )
    proc = cli("decrypt", copy, "-o", tmp_path / "dec", "-k", enc.parent / "k.keys", check=False)
    assert proc.returncode == 2, proc.stderr[-300:]
    assert "(.keys/0/_KEY_MATERIAL_FOR_part-00000.parquet.json) were replaced" in proc.stderr
    assert not (tmp_path / "dec" / ".manifest.json").exists()


def test_verify_with_the_key_checks_footers_and_finds_swapped_key_material(
    enc: Path, tmp_path: Path
) -> None:
    """`verify` on encrypted data checked sizes and checksums only and said "ok" for a dataset
    no key could read (two shards' wrapped keys swapped: no checksum covers `.keys/`).
    `verify --key-file` decrypts and checks every footer; a wrong key file is exit 2."""
    keys = enc.parent / "k.keys"
    good = cli("verify", enc, "-k", keys, "--json")
    assert json.loads(good.stdout)["skipped"] is None
    copy = tmp_path / "copy"
    shutil.copytree(enc, copy)
    folder = copy / ".keys" / "0"
    shutil.copy(
        folder / "_KEY_MATERIAL_FOR_part-00001.parquet.json",
        folder / "_KEY_MATERIAL_FOR_part-00000.parquet.json",
    )
    assert cli("verify", copy, check=False).returncode == 0  # without the key: cannot tell
    proc = cli("verify", copy, "-k", keys, check=False)
    assert proc.returncode == 1, proc.stderr[-300:]
    assert "shard part-00000.parquet failed decryption" in proc.stderr
    cli("keygen", "-o", tmp_path / "other.keys")
    wrong = cli("verify", enc, "-k", tmp_path / "other.keys", check=False)
    assert wrong.returncode == 2 and "footer key every reader needs" in wrong.stderr
