"""Faults in what stages and the reader read: corrupted shards and wrong column keys.

A flipped byte inside a data page must stop `compress`, `export` and the reader with one
sentence naming the shard (page checksums, and the manifest's file checksum where a task reads
a whole shard), never flow on into an output that passes `verify`. A key file whose column key
is wrong must stop `decrypt` and `compress` with one sentence naming the shard and column,
never abort the process inside pyarrow (exit 134) or break the worker pool.
"""

from __future__ import annotations

import base64
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from dataprep import crypto, dataset
from dataprep.errors import DataprepError
from dataprep.executors import make_executor
from dataprep.export import export_jsonl
from dataprep.loader import ShardDataset
from dataprep.runner import run_stage
from dataprep.stages.shard import ShardConfig

INLINE = make_executor("local", workers=1)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from dataprep.cli import main; sys.argv[0] = 'dataprep'; main()"
    env = {**os.environ, "COLUMNS": "400"}  # no wrapping: one error, one line
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env
    )


def _one_sentence(proc: subprocess.CompletedProcess[str], *words: str) -> str:
    """The run failed with exit 2 and a single `error: ...` line containing `words`."""
    err = proc.stderr.strip()
    assert proc.returncode == 2, (proc.returncode, err[-2000:])
    assert "Traceback" not in err and "terminate called" not in err, err[-2000:]
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err[-2000:]
    for word in words:
        assert word in err, err
    return err


def _lines() -> list[str]:
    """Real text where this machine has some (licence files), else generated words."""
    found = sorted(p for p in Path("/usr/share/common-licenses").glob("*") if p.is_file())
    lines = [x.strip() for p in found for x in p.read_text(errors="replace").splitlines()]
    lines = [x for x in lines if x]
    if len(lines) < 3000:
        rng = random.Random(1)
        words = "the of and to in data shard page key column row group file".split()
        lines = [" ".join(rng.choices(words, k=12)) for _ in range(3000)]
    return lines[:3000]


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two shards of (random 62-bit id, a line of text): random ids do not compress, so zstd
    stores their pages raw and flipped bytes there decode without any error today."""
    base = tmp_path_factory.mktemp("faults-read")
    (base / "src").mkdir()
    rng = random.Random(4)
    with open(base / "src" / "lines.jsonl", "w") as f:
        for line in _lines():
            f.write(json.dumps({"id": rng.getrandbits(62), "text": line}) + "\n")
    out = base / "plain"
    config = ShardConfig(shard_rows=1500)
    run_stage("shard", config, out, inputs=[str(base / "src")], executor=INLINE)
    return out


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _shard(root: Path, i: int = 1) -> Path:
    return root / dataset.read_manifest(root).shards[i].path


def _flip_page(path: Path, column: int = 0, where: float = 0.5, count: int = 4) -> int:
    """Flip `count` bytes in the middle of row group 0's data pages of `column` (the footer
    says where they are); returns the offset."""
    chunk = pq.ParquetFile(path).metadata.row_group(0).column(column)
    first = chunk.dictionary_page_offset if chunk.has_dictionary_page else chunk.data_page_offset
    end = first + chunk.total_compressed_size
    pos = chunk.data_page_offset + int((end - chunk.data_page_offset) * where)
    _flip_at(path, pos, count)
    return pos


def _flip_at(path: Path, pos: int, count: int = 4) -> None:
    data = bytearray(path.read_bytes())
    for k in range(pos, min(pos + count, len(data))):
        data[k] ^= 0xFF
    path.write_bytes(bytes(data))


def _read_all(root: Path, columns: list[str], key_file: Path | None = None) -> list:
    rows: list = []
    ds = ShardDataset(root, columns=columns, batch_size=97, key_file=key_file)
    for batch in ds:
        rows += list(batch[columns[0]])
    return rows


# --- item 4: a corrupted shard ----------------------------------------------------------------


def test_flipped_page_stops_compress_export_and_reader(plain: Path, tmp_path: Path) -> None:
    """Bytes flipped in the ids' data page: today compress/export/reader exit 0 with changed
    ids; each must stop with one sentence naming the shard, and nothing is committed."""
    bad = _copy(plain, tmp_path / "bad")
    target = _shard(bad)
    _flip_page(target, column=0)
    assert _cli("verify", bad).returncode == 1  # the manifest checksum sees it (control)

    out = tmp_path / "compressed"
    proc = _cli("compress", bad, "-o", out, "-w", "2", "--level", "5")
    _one_sentence(proc, f"shard {target.name} is corrupt", "rerun the stage that wrote it")
    assert not (out / ".manifest.json").exists()

    proc = _cli("export", bad, "-o", tmp_path / "x.jsonl")
    _one_sentence(proc, f"shard {target.name} is corrupt")
    assert not (tmp_path / "x.jsonl").exists()

    with pytest.raises(DataprepError, match=rf"shard {target.name} is corrupt \(page checksum"):
        _read_all(bad, ["id"])


def test_every_writer_writes_page_checksums(plain: Path, tmp_path: Path) -> None:
    """A flipped byte in the middle of any column's data page is a page-checksum error."""
    columns = pq.ParquetFile(_shard(plain)).schema_arrow.names
    for i, name in enumerate(columns):
        bad = _copy(plain, tmp_path / f"bad-{name}")
        _flip_page(_shard(bad), column=i, count=1)
        options = dataset.ReadOptions()
        with pytest.raises(DataprepError, match="is corrupt") as info:
            options.read_table(_shard(bad))
        assert "\n" not in str(info.value)


def test_random_flips_never_change_rows_silently(plain: Path, tmp_path: Path) -> None:
    """4 bytes flipped at random offsets of a shard: compress always stops (it checks the
    manifest checksum of the whole shard it reads); the reader either stops with a sentence
    naming the shard or reads exactly the original rows (a flip in footer statistics)."""
    expected = _read_all(plain, ["id", "text"])
    size = _shard(plain).stat().st_size
    rng = random.Random(14)
    positions = sorted(rng.randrange(4, size - 8) for _ in range(10))
    for n, pos in enumerate(positions):
        bad = _copy(plain, tmp_path / f"bad-{n}")
        target = _shard(bad)
        _flip_at(target, pos)
        out = tmp_path / f"out-{n}"
        with pytest.raises(DataprepError, match=rf"shard {target.name} is corrupt"):
            run_stage("compress", {"level": 5}, out, input_path=bad, executor=INLINE)
        assert not (out / ".manifest.json").exists()
        try:
            got = _read_all(bad, ["id", "text"])
        except DataprepError as exc:
            assert target.name in str(exc) and "\n" not in str(exc), (pos, exc)
        else:
            assert got == expected, f"offset {pos}: rows changed silently"


def test_old_dataset_without_page_checksums(plain: Path, tmp_path: Path) -> None:
    """Shards written without page checksums (older dataprep, other tools): compress and
    export still stop, by the manifest's file checksum."""
    old = _copy(plain, tmp_path / "old")
    doc = json.loads((old / ".manifest.json").read_text())
    for entry in doc["shards"]:
        path = old / entry["path"]
        pq.write_table(pq.read_table(path), path, row_group_size=10_000, compression="zstd")
        entry["bytes"], entry["xxh3_128"] = path.stat().st_size, dataset.file_checksum(path)
    doc["totals"]["bytes"] = sum(e["bytes"] for e in doc["shards"])
    (old / ".manifest.json").write_text(json.dumps(doc))
    target = _shard(old)
    _flip_page(target, column=0)
    out = tmp_path / "out"
    with pytest.raises(DataprepError, match=rf"shard {target.name} is corrupt \(.*manifest"):
        run_stage("compress", {"level": 5}, out, input_path=old, executor=INLINE)
    with pytest.raises(DataprepError, match=rf"shard {target.name} is corrupt"):
        export_jsonl(old, tmp_path / "x.jsonl")


def test_clean_data_still_flows(plain: Path, tmp_path: Path) -> None:
    """Control: the checks pass on untouched data, and outputs carry page checksums."""
    out = tmp_path / "out"
    run_stage("compress", {"level": 5}, out, input_path=plain, executor=INLINE)
    assert dataset.read_rows(out).equals(dataset.read_rows(plain))
    assert _read_all(out, ["id"]) == _read_all(plain, ["id"])
    export_jsonl(out, tmp_path / "x.jsonl")
    assert len((tmp_path / "x.jsonl").read_text().splitlines()) == dataset.read_manifest(out).rows
    _flip_page(_shard(out), column=1, count=1)
    with pytest.raises(DataprepError, match="page checksum mismatch"):
        dataset.ReadOptions().read_table(_shard(out))


# --- item 13: a wrong column key --------------------------------------------------------------


@pytest.fixture(scope="module")
def encrypted(plain: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(dataset encrypted with k1, k1, k1 with its column key swapped for k2's)."""
    base = tmp_path_factory.mktemp("faults-keys")
    k1, k2 = base / "k1.json", base / "k2.json"
    crypto.generate_key_file(k1)
    crypto.generate_key_file(k2)
    enc = base / "enc"
    run_stage("encrypt", {"key_file": str(k1)}, enc, input_path=plain, executor=INLINE)
    doc, other = json.loads(k1.read_text()), json.loads(k2.read_text())
    doc["keys"][doc["column_key"]] = other["keys"][other["column_key"]]
    bad = base / "bad.json"
    bad.write_text(json.dumps(doc))
    return enc, k1, bad


def test_wrong_column_key_is_one_sentence(encrypted, tmp_path: Path) -> None:
    """decrypt died with `terminate called ... ParquetStatusException` (exit 134), compress
    with a BrokenProcessPool traceback; both now name the shard, the column and the key id."""
    enc, _, bad = encrypted
    column_key = json.loads(bad.read_text())["column_key"]
    proc = _cli("decrypt", enc, "-o", tmp_path / "dec", "-k", bad)
    _one_sentence(proc, "part-00000.parquet", "columns id, text", repr(column_key))
    proc = _cli("compress", enc, "-o", tmp_path / "cmp", "-k", bad, "-w", "2")
    _one_sentence(proc, "part-00000.parquet", "columns id, text", repr(column_key))
    assert not (tmp_path / "dec" / ".manifest.json").exists()
    assert not (tmp_path / "cmp" / ".manifest.json").exists()
    with pytest.raises(DataprepError, match=rf"{column_key}.*columns id, text.*check value"):
        _read_all(enc, ["id"], key_file=bad)  # the reader: the same sentence, before any read


def test_key_checks_in_manifest_hold_no_key_material(encrypted) -> None:
    enc, k1, _ = encrypted
    checks = dataset.read_manifest(enc).encryption["key_checks"]
    doc = json.loads(k1.read_text())
    assert set(checks) == {doc["footer_key"], doc["column_key"]}
    for b64 in doc["keys"].values():
        raw = base64.b64decode(b64)
        for value in checks.values():
            assert b64 not in value and raw.hex() not in value and raw.hex()[:16] not in value


@pytest.mark.slow
def test_wrong_column_key_with_an_old_manifest(plain: Path, encrypted, tmp_path: Path) -> None:
    """A manifest written before key checks existed: the stages still end in one sentence."""
    enc, k1, bad = encrypted
    old = _copy(enc, tmp_path / "old")
    doc = json.loads((old / ".manifest.json").read_text())
    del doc["encryption"]["key_checks"]
    (old / ".manifest.json").write_text(json.dumps(doc))
    proc = _cli("decrypt", old, "-o", tmp_path / "dec", "-k", bad)
    _one_sentence(proc, "part-00000.parquet", "column id")
    proc = _cli("compress", old, "-o", tmp_path / "cmp", "-k", bad, "-w", "2")
    _one_sentence(proc, "part-00000.parquet", "column id")
    out = tmp_path / "ok"  # and the right key still works on the old manifest
    run_stage("decrypt", {"key_file": str(k1)}, out, input_path=old, executor=INLINE)
    assert dataset.read_rows(out).equals(dataset.read_rows(plain))
