"""`dataprep keys rotate`: new master keys, same data files, crash-safe.

Oracles: the rows read with the old key before rotating (the new key must read exactly
those), and each data file's sha256 before rotating (it must not change). A rotation killed
with SIGKILL before or after its switch must leave one of the two key files opening every shard.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from dataprep import crypto, crypto_keys, dataset
from dataprep.dataset import ReadOptions
from dataprep.errors import DataprepError
from dataprep.executors import make_executor
from dataprep.runner import run_stage
from tests.helpers import cli
from tests.test_column_keys import _license_rows

INLINE = make_executor("local", workers=1)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("rotate")
    _license_rows(tmp / "in.jsonl")
    out = tmp / "plain"
    run_stage(
        "shard", {"shard_bytes": 40_000}, out, inputs=[str(tmp / "in.jsonl")], executor=INLINE
    )
    return out


@pytest.fixture(scope="module")
def source(plain: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One encrypted dataset (text and label under their own keys) that tests copy."""
    tmp = tmp_path_factory.mktemp("rotate-src")
    keys = tmp / "old.keys"
    crypto.generate_key_file(keys, ["text", "label"])
    enc = tmp / "enc"
    config = {"key_file": str(keys), "columns": ["text:text", "label:label"]}
    run_stage("encrypt", config, enc, input_path=plain, executor=INLINE)
    return enc, keys


def _encrypted(source: tuple[Path, Path], tmp: Path) -> tuple[Path, Path]:
    tmp.mkdir(exist_ok=True)
    shutil.copytree(source[0], tmp / "enc")  # with its .keys/ folder
    shutil.copy(source[1], tmp / "old.keys")
    return tmp / "enc", tmp / "old.keys"


def _keygen(path: Path, *names: str) -> Path:
    crypto.generate_key_file(path, list(names or ("text", "label")))
    return path


def _rows(root: Path, keys: Path) -> pa.Table:
    manifest = dataset.read_manifest(root)
    reader = ReadOptions(str(keys), manifest.encryption)
    return pa.concat_tables(
        reader.read_table(p) for _, p in dataset.iter_shard_paths(root, manifest)
    )


def _sha256(root: Path) -> dict[str, str]:
    manifest = dataset.read_manifest(root)
    return {
        s.path: hashlib.sha256((root / s.path).read_bytes()).hexdigest() for s in manifest.shards
    }


def test_rotation_moves_keys_without_touching_data(
    source: tuple[Path, Path], tmp_path: Path
) -> None:
    enc, old = _encrypted(source, tmp_path)
    before_rows, before_sha = _rows(enc, old), _sha256(enc)
    before = dataset.read_manifest(enc)
    new = tmp_path / "new.keys"
    _keygen(new)
    proc = cli("keys", "rotate", enc, "-k", old, "--new-key-file", new, "--json")
    (result,) = json.loads(proc.stdout)
    after = dataset.read_manifest(enc)
    assert _sha256(enc) == before_sha  # data files byte-identical
    assert after.shards == before.shards and after.digest() == before.digest()
    assert _rows(enc, new).equals(before_rows)
    # the manifest records the new ids and the rotation, ids only
    o, n = crypto.load_key_file(old), crypto.load_key_file(new)
    mapping = {
        o.footer_key: n.footer_key,
        **{o.resolve(k): n.resolve(k) for k in ("text", "label")},
    }
    assert result["keys"] == mapping
    info = after.encryption
    assert info["footer_key_id"] == n.footer_key and info["key_set"] == n.key_set
    assert info["column_keys"] == {n.resolve("text"): ["text"], n.resolve("label"): ["label"]}
    (record,) = info["rotations"]
    assert record["keys"] == mapping and record["from_key_set"] == o.key_set
    assert record["to_key_set"] == n.key_set and record["time"].endswith("Z")
    # only the new generation of key material is left: the old key opens nothing
    assert sorted(p.name for p in (enc / ".keys").iterdir()) == ["1"]
    assert result["bytes_written"] < result["dataset_bytes"]
    failed = cli("export", enc, "-o", tmp_path / "x.jsonl", "-k", old, check=False)
    assert failed.returncode == 2 and "has no key" in failed.stderr
    # even told the new ids, the old master keys cannot unwrap the new material
    forged = json.loads(old.read_text())
    forged["keys"] = {mapping[k]: v for k, v in forged["keys"].items()}
    forged["footer_key"], forged["column_key"] = mapping[o.footer_key], mapping[o.column_key]
    (tmp_path / "forged.keys").write_text(json.dumps(forged))
    no_checks = {**info, "key_checks": {}}
    with pytest.raises(DataprepError, match="does not unwrap|failed decryption"):
        reader = ReadOptions(str(tmp_path / "forged.keys"), no_checks)
        reader.read_table(enc / after.shards[0].path)
    # verify needs no key and still passes; a stage reads the rotated data with the new key
    ok = cli("verify", enc)
    assert ok.returncode == 0, ok.stderr
    out = tmp_path / "dec"
    cli("decrypt", enc, "-o", out, "-k", new, "-w", "1")
    assert _rows(out, new).equals(before_rows)


def test_partial_key_file_of_the_new_set_reads_its_columns(
    source: tuple[Path, Path], tmp_path: Path
) -> None:
    enc, old = _encrypted(source, tmp_path)
    new = tmp_path / "new.keys"
    _keygen(new)
    cli("keys", "rotate", enc, "-k", old, "--new-key-file", new)
    lab = tmp_path / "lab.keys"
    cli("keys", "export-subset", new, "--keys", "label", "-o", lab)
    manifest = dataset.read_manifest(enc)
    reader = ReadOptions(str(lab), manifest.encryption)
    got = pa.concat_tables(
        reader.read_table(p, ["id", "label"]) for _, p in dataset.iter_shard_paths(enc, manifest)
    )
    assert got.equals(_rows(enc, new).select(["id", "label"]))


_KILL = """
import os, signal, sys
import dataprep.keys_rotate as kr
where = sys.argv[4]
if where == "before":  # mid-way through writing the new generation
    real, calls = kr.rewrap, []
    def rewrap(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*a, **k)
    kr.rewrap = rewrap
else:  # right after the manifest switch, before the old generation is removed
    real_write = kr.write_manifest
    def write_manifest(*a, **k):
        real_write(*a, **k)
        os.kill(os.getpid(), signal.SIGKILL)
    kr.write_manifest = write_manifest
kr.rotate(sys.argv[1], sys.argv[2], sys.argv[3])
"""


@pytest.mark.parametrize("where", ["before", "after"])
def test_killed_rotation_leaves_one_key_opening_every_shard(
    source: tuple[Path, Path], tmp_path: Path, where: str
) -> None:
    enc, old = _encrypted(source, tmp_path)
    oracle, sha = _rows(enc, old), _sha256(enc)
    new = tmp_path / "new.keys"
    _keygen(new)
    args = [sys.executable, "-c", _KILL, str(enc), str(old), str(new), where]
    proc = subprocess.run(
        args, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()}
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert _sha256(enc) == sha
    works, refused = (old, new) if where == "before" else (new, old)
    assert _rows(enc, works).equals(oracle)  # every shard opens with one of the two
    with pytest.raises(DataprepError, match="has no key"):
        _rows(enc, refused)
    assert cli("verify", enc).returncode == 0
    if where == "before":  # the rerun finishes the rotation and clears the half-written folder
        cli("keys", "rotate", enc, "-k", old, "--new-key-file", new)
    else:  # the old generation is still there; the next rotation removes it
        assert sorted(p.name for p in (enc / ".keys").iterdir()) == ["0", "1"]
        newer = tmp_path / "newer.keys"
        _keygen(newer)
        cli("keys", "rotate", enc, "-k", new, "--new-key-file", newer)
        new = newer
    assert _rows(enc, new).equals(oracle) and _sha256(enc) == sha
    assert len(list((enc / ".keys").iterdir())) == 1


def test_what_cannot_be_rotated_is_one_sentence(
    plain: Path, source: tuple[Path, Path], tmp_path: Path
) -> None:
    old, new = _keygen(tmp_path / "old.keys"), _keygen(tmp_path / "new.keys")
    enc = tmp_path / "enc"
    cli("encrypt", plain, "-o", enc, "-k", old, "--columns", "text", "--key-material", "internal")
    assert not (enc / ".keys").exists()
    proc = cli("keys", "rotate", enc, "-k", old, "--new-key-file", new, check=False)
    assert proc.returncode == 2 and "internal key material" in proc.stderr
    assert _rows(enc, old).num_rows > 0  # untouched, still readable with the old key
    enc2, old2 = _encrypted(source, tmp_path / "copy")
    lab = tmp_path / "lab.keys"
    crypto_keys.export_subset(old2, ["label"], lab)
    proc = cli("keys", "rotate", enc2, "-k", lab, "--new-key-file", new, check=False)
    assert proc.returncode == 2 and "a partial key file cannot rotate" in proc.stderr
    other = _keygen(tmp_path / "other.keys", "body")
    args = ["keys", "rotate", enc2, "-k", old2, "--new-key-file", other, "--map", "text=body"]
    proc = cli(*args, check=False)
    assert proc.returncode == 2 and "has no successor" in proc.stderr  # label has none
    assert "'label-" in proc.stderr
    assert _rows(enc2, old2).num_rows > 0 and sorted(os.listdir(enc2 / ".keys")) == ["0"]


def test_verify_and_readers_name_a_missing_key_material_file(
    source: tuple[Path, Path], tmp_path: Path
) -> None:
    enc, old = _encrypted(source, tmp_path)
    shard = dataset.read_manifest(enc).shards[1].path
    (enc / ".keys" / "0" / f"_KEY_MATERIAL_FOR_{shard}.json").unlink()
    proc = cli("verify", enc, check=False)
    assert proc.returncode == 1 and shard in proc.stderr and "missing" in proc.stderr
    proc = cli("export", enc, "-o", tmp_path / "x.jsonl", "-k", old, check=False)
    assert proc.returncode == 2 and f"shard {shard} cannot be decrypted" in proc.stderr
    assert "copy a dataset with its .keys/ folder" in proc.stderr
    # a rotation that cannot finish changes nothing and leaves no half-written generation
    new = _keygen(tmp_path / "new.keys")
    proc = cli("keys", "rotate", enc, "-k", old, "--new-key-file", new, check=False)
    assert proc.returncode == 2 and shard in proc.stderr
    assert sorted(os.listdir(enc / ".keys")) == ["0"]
    assert dataset.read_manifest(enc).encryption["key_material"]["dir"] == ".keys/0"


def test_column_keys_and_rotation_on_s3(plain: Path, tmp_path: Path, s3_bucket: str) -> None:
    """The key material lives beside the shards on the object store too, and rotates there."""
    from dataprep.export import export_jsonl

    old, new = _keygen(tmp_path / "old.keys"), _keygen(tmp_path / "new.keys")
    enc = f"{s3_bucket}/enc"
    config = {"key_file": str(old), "columns": ["text:text", "label:label"]}
    run_stage("encrypt", config, enc, input_path=plain, executor=INLINE)
    before, after = tmp_path / "before.jsonl", tmp_path / "after.jsonl"
    export_jsonl(enc, before, key_file=old)
    cli("keys", "rotate", enc, "-k", old, "--new-key-file", new)
    export_jsonl(enc, after, key_file=new)
    assert after.read_bytes() == before.read_bytes() and before.stat().st_size > 0
    with pytest.raises(DataprepError, match="has no key"):
        export_jsonl(enc, tmp_path / "x.jsonl", key_file=old)
    lab = tmp_path / "lab.keys"
    crypto_keys.export_subset(new, ["label"], lab)
    part = tmp_path / "lab.jsonl"
    cli("export", enc, "-o", part, "-k", lab, "--columns", "id,label")
    rows = [json.loads(line) for line in part.read_text().splitlines()]
    full = [json.loads(line) for line in after.read_text().splitlines()]
    assert rows == [{"id": r["id"], "label": r["label"]} for r in full]
    assert cli("verify", enc).returncode == 0
