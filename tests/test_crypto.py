"""Encryption: round trips against the plain shards, raw-byte leak checks, and every failure.

The oracle for "nothing leaks" is the file's raw bytes: an unencrypted, uncompressed,
non-dictionary copy of the same data contains every value verbatim (checked as a control), so
finding none of them in the encrypted copy means encryption, not encoding, hid them.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataprep import crypto, dataset
from dataprep.dataset import ReadOptions
from dataprep.errors import DataprepError
from dataprep.executors import make_executor
from dataprep.runner import run_stage
from dataprep.stages.shard import ShardConfig

INLINE = make_executor("local", workers=1)


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    code = "import sys; from dataprep.cli import main; sys.argv[0] = 'dataprep'; main()"
    env = {**os.environ, "COLUMNS": "400"}  # no wrapping: one error, one line
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, env=env
    )


@pytest.fixture(scope="module")
def shards(corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("crypto") / "shards"
    config = ShardConfig(shard_rows=400)
    run_stage("shard", config, out, inputs=[str(corpus_dir)], executor=INLINE)
    return out


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "keys.json"
    crypto.generate_key_file(path)
    return path


@pytest.fixture(scope="module")
def encrypted(shards: Path, keys: Path) -> Path:
    """All columns encrypted, uncompressed and without dictionaries so plaintext would show."""
    out = shards.parent / "enc-plain"
    config = {"key_file": str(keys), "codec": "none"}
    run_stage("encrypt", config, out, input_path=shards, executor=INLINE)
    return out


def _key_strings(keys: Path) -> list[str]:
    """Every spelling of every key a log line could plausibly contain."""
    doc = json.loads(keys.read_text())
    out = []
    for b64 in doc["keys"].values():
        raw = base64.b64decode(b64)
        out += [b64, raw.hex(), base64.urlsafe_b64encode(raw).decode()]
    return out


def _distinct_values(table: pa.Table, column: str, min_len: int = 6) -> set[bytes]:
    return {str(v).encode() for v in table.column(column).to_pylist() if len(str(v)) >= min_len}


def test_keygen_mode_and_refuses_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    result = _cli("keygen", "-o", str(path))
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ring = crypto.load_key_file(path)
    assert len(ring.keys[ring.footer_key]) == 32 and ring.footer_key != ring.column_key
    before = path.read_bytes()
    again = _cli("keygen", "-o", str(path))
    assert again.returncode == 2 and "already exists" in again.stderr
    assert path.read_bytes() == before
    for secret in _key_strings(path):
        assert secret not in result.stdout + result.stderr
        assert secret not in repr(ring)


def test_roundtrip_matches_plain_shards(shards: Path, encrypted: Path, keys: Path) -> None:
    plain = dataset.read_manifest(shards)
    enc = dataset.read_manifest(encrypted)
    assert enc.encryption is not None and enc.encryption["plaintext_columns"] == []
    ((key_id, cols),) = enc.encryption["column_keys"].items()
    assert cols == plain.schema.names
    # the reader's entry point, used directly with pyarrow
    for (s_plain, p_plain), (s_enc, p_enc) in zip(
        dataset.iter_shard_paths(shards, plain),
        dataset.iter_shard_paths(encrypted, enc),
        strict=True,
    ):
        assert s_enc.row_groups == s_plain.row_groups  # row groups copied one to one
        props = crypto.decryption_properties(keys, enc.encryption, p_enc)
        got = pq.read_table(p_enc, decryption_properties=props)
        assert got.equals(pq.read_table(p_plain))
        with pytest.raises(OSError):
            pq.ParquetFile(p_enc)  # footer is encrypted: no key, no metadata
    assert not list(encrypted.rglob("_metadata")) and not list(encrypted.rglob("_common_metadata"))


def test_no_plaintext_in_raw_bytes(shards: Path, encrypted: Path, keys: Path) -> None:
    table = dataset.read_rows(shards)
    values = set()
    for column in ("id", "text", "source", "label"):
        values |= _distinct_values(table, column)
    # control: the same rows written plain with the same encoding do contain them
    control = encrypted.parent / "control.parquet"
    pq.write_table(table, control, compression="none", use_dictionary=False)
    control_bytes = control.read_bytes()
    assert all(v in control_bytes for v in values)
    names = [n.encode() for n in table.column_names if len(n) >= 4]  # 2 bytes occur by chance
    for path in encrypted.glob("*.parquet"):
        raw = path.read_bytes()
        leaked = [v for v in values | set(names) if v in raw]
        assert not leaked, f"{path.name} leaks {leaked[:3]}"


def test_columns_narrow_and_manifest_says_what_is_clear(shards: Path, keys: Path) -> None:
    out = shards.parent / "enc-text"
    config = {"key_file": str(keys), "columns": ["text"], "codec": "none"}
    run = run_stage("encrypt", config, out, input_path=shards, executor=INLINE)
    manifest = dataset.read_manifest(out)
    clear = [c for c in manifest.schema.names if c != "text"]
    assert manifest.encryption["plaintext_columns"] == clear
    assert run.report["plaintext_columns"] == clear
    rows = dataset.read_rows(shards)
    text = _distinct_values(rows, "text", 40)
    ids = _distinct_values(rows, "id")
    raw = b"".join(p.read_bytes() for p in out.glob("*.parquet"))
    assert not any(v in raw for v in text)
    assert any(v in raw for v in ids)  # in the clear, on purpose
    back = pa.concat_tables(
        ReadOptions(str(keys), manifest.encryption).open(out / s.path).read()
        for s in manifest.shards
    )
    assert back.equals(rows)


def test_decrypt_stage_roundtrip_keeps_codec(shards: Path, keys: Path) -> None:
    enc = shards.parent / "enc-zstd"
    run_stage("encrypt", {"key_file": str(keys)}, enc, input_path=shards, executor=INLINE)
    dec = shards.parent / "dec"
    run_stage("decrypt", {"key_file": str(keys)}, dec, input_path=enc, executor=INLINE)
    assert dataset.read_manifest(dec).encryption is None
    assert dataset.read_rows(dec).equals(dataset.read_rows(shards))
    meta = pq.ParquetFile(dec / "part-00000.parquet").metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    bad = {"key_file": str(keys), "level": 99}
    with pytest.raises(DataprepError, match="levels run from"):
        run_stage("encrypt", bad, shards.parent / "bad", input_path=shards, executor=INLINE)


def test_verify_without_key_and_detects_tamper(encrypted: Path, tmp_path: Path) -> None:
    result = _cli("verify", str(encrypted))
    assert result.returncode == 0, result.stderr
    copy = tmp_path / "copy"
    _copy_dataset(encrypted, copy)
    _flip(copy / "part-00001.parquet", 0.5)
    bad = _cli("verify", str(copy))
    assert bad.returncode == 1 and "part-00001.parquet" in bad.stderr


def _copy_dataset(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst)  # with .keys/: the shards' wrapped data keys


def _flip(path: Path, where: float) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * where)] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("where", [0.3, 0.7, -12])
def test_tampered_shard_is_one_clear_error(encrypted: Path, keys: Path, tmp_path, where) -> None:
    copy = tmp_path / "tampered"
    _copy_dataset(encrypted, copy)
    target = copy / "part-00002.parquet"
    if where == -12:  # inside the encrypted footer, just before its length + magic
        data = bytearray(target.read_bytes())
        data[-12] ^= 0x01
        target.write_bytes(bytes(data))
    else:
        _flip(target, where)
    out = tmp_path / "out"
    with pytest.raises(DataprepError, match=r"part-00002\.parquet") as info:
        run_stage("decrypt", {"key_file": str(keys)}, out, input_path=copy, executor=INLINE)
    assert "\n" not in str(info.value)
    assert not (out / ".manifest.json").exists()
    assert not (out / "part-00002.parquet").exists()
    assert not list(out.glob(".*.tmp-*"))


def test_no_key_and_wrong_keys(encrypted: Path, keys: Path, tmp_path: Path) -> None:
    manifest = dataset.read_manifest(encrypted)
    shard = encrypted / manifest.shards[0].path
    with pytest.raises(DataprepError, match=r"part-00000\.parquet is encrypted.*--key-file"):
        ReadOptions(None, manifest.encryption).open(shard)
    other = tmp_path / "other.json"
    crypto.generate_key_file(other)
    with pytest.raises(DataprepError, match="has no key 'footer-"):
        ReadOptions(str(other), manifest.encryption).open(shard)
    # same key ids, different key bytes: only unwrapping can tell
    doc = json.loads(keys.read_text())
    doc["keys"] = {k: base64.b64encode(os.urandom(32)).decode() for k in doc["keys"]}
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(doc))
    with pytest.raises(DataprepError, match=r"shard part-00000\.parquet.*does not unwrap"):
        ReadOptions(str(forged), manifest.encryption).open(shard)
    out = tmp_path / "dec"
    with pytest.raises(DataprepError, match="part-0000"):
        run_stage("decrypt", {"key_file": str(forged)}, out, input_path=encrypted, executor=INLINE)
    assert not (out / ".manifest.json").exists()


def test_cli_errors_and_outputs_never_show_keys(shards: Path, keys: Path, tmp_path) -> None:
    secrets = _key_strings(keys)
    enc = tmp_path / "enc"
    texts = []
    ok = _cli("encrypt", str(shards), "-o", str(enc), "-k", str(keys), "-w", "2", "--json")
    assert ok.returncode == 0, ok.stderr
    texts += [ok.stdout, ok.stderr]
    ok = _cli("inspect", str(enc))
    texts += [ok.stdout, ok.stderr]
    doc = json.loads(keys.read_text())
    doc["keys"] = {k: base64.b64encode(os.urandom(32)).decode() for k in doc["keys"]}
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(doc))
    secrets += _key_strings(forged)
    for key_file in (forged, tmp_path / "missing.json"):
        bad = _cli("decrypt", str(enc), "-o", str(tmp_path / "d"), "-k", str(key_file))
        assert bad.returncode == 2 and "Traceback" not in bad.stderr
        assert bad.stderr.startswith("error: ") and len(bad.stderr.strip().splitlines()) == 1
        texts += [bad.stdout, bad.stderr]
    bad = _cli("export", str(enc), "-o", str(tmp_path / "x.jsonl"))
    assert bad.returncode == 2 and "part-00000.parquet" in bad.stderr
    texts += [bad.stderr]
    files = [p.read_text() for p in enc.rglob("*.json*")]
    for text in texts + files:
        assert not any(s in text for s in secrets)


def test_encryption_spec_pickles_and_rebuilds_in_a_worker(encrypted: Path, keys: Path) -> None:
    spec = crypto.EncryptionSpec(str(keys))
    assert pickle.loads(pickle.dumps(spec)) == spec
    manifest = dataset.read_manifest(encrypted)
    with pytest.raises(TypeError):
        shard = encrypted / manifest.shards[0].path
        pickle.dumps(crypto.decryption_properties(keys, manifest.encryption, shard))
    code = (
        "import sys, json, pyarrow.parquet as pq; from dataprep import crypto, dataset;"
        "m = dataset.read_manifest(sys.argv[1]);"
        "p = lambda f: crypto.decryption_properties(sys.argv[2], m.encryption, f);"
        "print(sum(pq.ParquetFile(f := sys.argv[1] + '/' + s.path, decryption_properties=p(f))"
        ".metadata.num_rows for s in m.shards))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(encrypted), str(keys)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == manifest.rows


def test_recipe_output_encryption_applies_to_every_stage(
    corpus_dir: Path, keys: Path, tmp_path: Path
) -> None:
    from dataprep import recipe

    raw = {
        "vars": {"root": str(tmp_path / "work")},
        "input": {"path": str(corpus_dir), "text_column": "text"},
        "executor": {"kind": "local", "workers": 1},
        "output": {"compression": "zstd", "encryption": {"key_file": str(keys)}},
        "stages": [
            {"id": "shards", "op": "shard", "params": {"shard_rows": 500}},
            {"id": "packed", "op": "compress", "params": {"codec": "zstd", "level": 9}},
        ],
    }
    runs = recipe.run(recipe.build(raw))
    assert [r.status for r in runs] == ["ran", "ran"]
    plain = tmp_path / "plain"
    run_stage("shard", ShardConfig(shard_rows=500), plain, inputs=[str(corpus_dir)])
    expected = dataset.read_rows(plain)
    for run in runs:
        manifest = dataset.read_manifest(run.out)
        assert manifest.encryption is not None
        assert manifest.encryption["plaintext_columns"] == []
        reader = ReadOptions(str(keys), manifest.encryption)
        got = pa.concat_tables(reader.open(run.out / s.path).read() for s in manifest.shards)
        assert got.equals(expected)
        with pytest.raises(OSError):
            pq.read_table(run.out / manifest.shards[0].path)


def test_recipe_with_missing_key_file_fails_before_any_stage(corpus_dir: Path, tmp_path) -> None:
    from dataprep import recipe

    raw = {
        "vars": {"root": str(tmp_path / "work")},
        "input": {"path": str(corpus_dir)},
        "output": {"encryption": {"key_file": str(tmp_path / "nope.json")}},
        "stages": [{"id": "shards", "op": "shard", "params": {"shard_rows": 500}}],
    }
    plan = recipe.build(raw)
    with pytest.raises(DataprepError, match="nope.json does not exist"):
        recipe.check_inputs(plan)
    with pytest.raises(DataprepError, match="nope.json does not exist"):
        recipe.run(plan)
    assert not (tmp_path / "work").exists()


def _copy_task(task):
    from dataprep.dataset import ShardWriter
    from dataprep.stage import TaskResult

    path = Path(task.inputs[0])
    file = task.read_options.open(path)
    writer = ShardWriter(task.out / path.name, file.schema_arrow, task.write_options)
    for table in task.read_options.row_groups(path):
        writer.write(table)
    return TaskResult([writer.close()], {}, file.schema_arrow)


class CopyStage:
    """A stage that knows nothing about encryption, like dedup or partition."""

    name = "copy"
    reads_dataset = True
    writes_plaintext = False

    from dataprep.stage import StageConfig as Config

    def run(self, ctx):
        from dataprep.stage import map_shards

        return map_shards(ctx, _copy_task)


def test_encrypted_input_gives_encrypted_output_in_any_stage(
    encrypted: Path, keys: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataprep import stages

    monkeypatch.setitem(stages.BUILTIN, "copy", f"{__name__}:CopyStage")
    out = tmp_path / "copy"
    run_stage("copy", {}, out, input_path=encrypted, executor=INLINE, key_file=str(keys))
    manifest = dataset.read_manifest(out)
    assert manifest.encryption == dataset.read_manifest(encrypted).encryption
    with pytest.raises(OSError):
        pq.ParquetFile(out / manifest.shards[0].path)
    reader = ReadOptions(str(keys), manifest.encryption)
    got = pa.concat_tables(reader.open(out / s.path).read() for s in manifest.shards)
    expected = pa.concat_tables(
        ReadOptions(str(keys), manifest.encryption).open(encrypted / s.path).read()
        for s in dataset.read_manifest(encrypted).shards
    )
    assert got.equals(expected)
