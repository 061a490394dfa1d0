"""`dataprep sync` and `verify --repair-from`, through the CLI, on real text and a real S3 server.

Oracles are independent of the code under test: sha256 of the shard files, rows read back with
plain pyarrow, and `dataprep verify` on the copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pyarrow.parquet as pq
import pytest
from helpers import cli, manifest, shard_rows, text_dataset

from dataprep.storage import file_checksum


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The machine's package copyright files, 100 documents a shard (~13 shards)."""
    return text_dataset(tmp_path_factory.mktemp("sync") / "src", shard_rows=100)


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same text in ~100 small shards: a sync long enough to interrupt."""
    return text_dataset(tmp_path_factory.mktemp("sync") / "many", shard_rows=8)


def sha256s(root: Path) -> dict[str, str]:
    return {
        s["path"]: hashlib.sha256((root / s["path"]).read_bytes()).hexdigest()
        for s in manifest(root)["shards"]
    }


def sync(*args: object, check: bool = True) -> dict:
    proc = cli("sync", *map(str, args), "--json", check=check)
    return json.loads(proc.stdout) if proc.returncode == 0 else {"rc": proc.returncode}


def objects(uri: str) -> dict[str, bytes]:
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    s3 = boto3.client("s3")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "/").get("Contents", [])
    return {o["Key"].rsplit("/", 1)[1]: o["Key"] for o in listed}


def flip_byte(path: Path, offset: int = 1000) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def new_version(src: Path, changed: Path) -> tuple[Path, str]:
    """A copy of `src` in which one shard lost its first row (manifest updated to match)."""
    shutil.copytree(src, changed)
    doc = manifest(changed)
    entry = doc["shards"][3]
    table = pq.read_table(changed / entry["path"]).slice(1)
    pq.write_table(table, changed / entry["path"])
    entry.update(
        rows=table.num_rows,
        row_groups=[table.num_rows],
        bytes=(changed / entry["path"]).stat().st_size,
        xxh3_128=file_checksum(changed / entry["path"]),
    )
    doc["totals"].update(
        rows=sum(s["rows"] for s in doc["shards"]), bytes=sum(s["bytes"] for s in doc["shards"])
    )
    (changed / ".manifest.json").write_text(json.dumps(doc))
    return changed, entry["path"]


def test_round_trip_through_s3(src: Path, s3_bucket: str, tmp_path: Path) -> None:
    remote = f"{s3_bucket}/backup"
    up = sync(src, remote)
    shards = manifest(src)["shards"]
    assert up["copied"] == len(shards) + 1  # every shard and the report
    assert up["bytes"] == sum(s["bytes"] for s in shards) + (src / ".report.json").stat().st_size
    assert up["manifest_written"] and up["mb_per_s"] > 0
    cli("verify", remote)
    across = sync(remote, f"{s3_bucket}/copy")  # s3 -> s3
    assert across["copied"] == up["copied"]
    back = tmp_path / "back"
    down = sync(f"{s3_bucket}/copy", back)
    assert down["copied"] == up["copied"]
    assert sha256s(back) == sha256s(src)
    assert shard_rows(back) == shard_rows(src)
    assert (back / ".report.json").read_bytes() == (src / ".report.json").read_bytes()
    assert (back / ".manifest.json").read_bytes() == (src / ".manifest.json").read_bytes()
    cli("verify", back)


def test_incremental_copies_only_what_changed(src: Path, s3_bucket: str, tmp_path: Path) -> None:
    remote = f"{s3_bucket}/ds"
    first = sync(src, remote)
    again = sync(src, remote)
    assert again["copied"] == 0 and again["skipped"] == first["copied"]
    assert not again["manifest_written"]
    changed, name = new_version(src, tmp_path / "v2")
    cli("verify", changed)
    third = sync(changed, remote)
    assert third["copied_files"] == [name] and third["manifest_written"]
    back = tmp_path / "back"
    sync(remote, back)
    assert sha256s(back) == sha256s(changed)
    cli("verify", back)


def test_a_changed_copy_at_dst_is_copied_again(src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    sync(src, dst)
    name = manifest(src)["shards"][2]["path"]
    time.sleep(0.01)
    flip_byte(dst / name)  # same size, new mtime: the record no longer vouches for it
    assert cli("verify", dst, check=False).returncode == 1
    again = sync(src, dst)
    assert again["copied_files"] == [name]
    assert sha256s(dst) == sha256s(src)
    # with no record at all (copied by other tools), files are re-read and kept when they match
    (dst / ".sync.json").unlink()
    assert sync(src, dst, "--checksum")["copied"] == 0
    assert sync(src, dst)["copied"] == 0


def start_sync(source: Path, remote: str) -> subprocess.Popen:
    """A one-file-at-a-time sync in the background, once 10 objects are at `remote`."""
    args = [sys.executable, "-m", "dataprep", "sync", str(source), remote, "--workers", "1", "-q"]
    proc = subprocess.Popen(args, start_new_session=True, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while len(objects(remote)) < 10 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    return proc


def test_killed_sync_resumes(
    many: Path, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    total = len(manifest(many)["shards"])
    remote = f"{s3_bucket}/resume"
    monkeypatch.setenv("DATAPREP_LOCK_TIMEOUT", "3")  # the killed run's claim on DST goes stale
    proc = start_sync(many, remote)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = time.monotonic()
    there = {n for n in objects(remote) if n.endswith(".parquet")}
    assert 0 < len(there) < total, "the sync was not cut short"
    assert ".manifest.json" not in objects(remote)  # a reader never sees half a dataset
    assert cli("verify", remote, check=False).returncode != 0
    time.sleep(max(0.0, 3.5 - (time.monotonic() - killed_at)))
    resumed = sync(many, remote)
    assert len(resumed["copied_files"]) <= total - len(there) + 1  # + the report
    assert not set(resumed["copied_files"]) & there  # what was there is not copied again
    assert resumed["manifest_written"]
    cli("verify", remote)
    back = tmp_path / "back"
    sync(remote, back)
    assert sha256s(back) == sha256s(many)


def test_ctrl_c_stops_a_sync_that_then_resumes(many: Path, s3_bucket: str) -> None:
    total = len(manifest(many)["shards"])
    remote = f"{s3_bucket}/interrupted"
    proc = start_sync(many, remote)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "rerun the same command to resume" in err
    there = {n for n in objects(remote) if n.endswith(".parquet")}
    assert 0 < len(there) < total and ".manifest.json" not in objects(remote)
    bucket = s3_bucket.removeprefix("s3://")
    saved = boto3.client("s3").get_object(Bucket=bucket, Key="interrupted/.sync.json")
    assert there <= set(json.loads(saved["Body"].read())["files"])  # saved on the way out
    resumed = sync(many, remote)
    assert not set(resumed["copied_files"]) & there and resumed["skipped"] == len(there)
    cli("verify", remote)


def test_repair_from_an_s3_backup(src: Path, s3_bucket: str, tmp_path: Path) -> None:
    backup = f"{s3_bucket}/backup"
    sync(src, backup)
    work = tmp_path / "work"
    shutil.copytree(src, work)
    shards = [s["path"] for s in manifest(work)["shards"]]
    gone, flipped, good = shards[1], shards[4], shards[6]
    (work / gone).unlink()
    flip_byte(work / flipped)
    before = (work / good).stat()
    assert cli("verify", work, check=False).returncode == 1
    proc = cli("verify", work, "--repair-from", backup, "--json")
    report = json.loads(proc.stdout)
    assert report["ok"] and sorted(report["replaced"]) == sorted([gone, flipped])
    problems = {r["shard"]: r["problem"] for r in report["repairs"]}
    assert problems == {gone: "missing", flipped: "checksum mismatch"}
    assert sha256s(work) == sha256s(src)
    after = (work / good).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    cli("verify", work)
    table = cli("verify", work, "--repair-from", backup)  # nothing left to do
    assert "0 replaced" in table.stdout


def test_repair_refuses_a_corrupt_backup_copy(src: Path, s3_bucket: str, tmp_path: Path) -> None:
    backup = f"{s3_bucket}/backup"
    sync(src, backup)
    work = tmp_path / "work"
    shutil.copytree(src, work)
    shards = [s["path"] for s in manifest(work)["shards"]]
    bad, fine = shards[2], shards[5]
    bucket = s3_bucket.removeprefix("s3://")
    s3 = boto3.client("s3")
    body = bytearray(s3.get_object(Bucket=bucket, Key=f"backup/{bad}")["Body"].read())
    body[500] ^= 0x01
    s3.put_object(Bucket=bucket, Key=f"backup/{bad}", Body=bytes(body))
    (work / bad).unlink()
    (work / fine).unlink()
    proc = cli("verify", work, "--repair-from", backup, check=False)
    assert proc.returncode == 1
    assert bad in proc.stderr and "does not match" in proc.stderr
    assert not (work / bad).exists()  # the bad copy never landed
    assert (work / fine).read_bytes() == (src / fine).read_bytes()  # the good one did
    as_json = json.loads(cli("verify", work, "--repair-from", backup, "--json", check=False).stdout)
    assert not as_json["ok"] and [r["action"] for r in as_json["repairs"]] == ["refused"]


def test_delete_removes_only_dataset_files(src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "part-99999.parquet").write_bytes(b"old shard")
    (dst / "notes.txt").write_text("mine")
    kept = sync(src, dst)
    assert kept["kept_files"] == ["notes.txt", "part-99999.parquet"] and not kept["deleted"]
    deleted = sync(src, dst, "--delete")
    assert deleted["deleted_files"] == ["part-99999.parquet"]
    assert (dst / "notes.txt").read_text() == "mine"
    cli("verify", dst)


def test_a_corrupt_source_shard_is_not_copied(src: Path, tmp_path: Path) -> None:
    bad_src = tmp_path / "src"
    shutil.copytree(src, bad_src)
    name = manifest(bad_src)["shards"][0]["path"]
    flip_byte(bad_src / name)
    proc = cli("sync", bad_src, tmp_path / "dst", check=False)
    assert proc.returncode == 1 and name in proc.stderr
    assert not (tmp_path / "dst" / name).exists()
    assert not (tmp_path / "dst" / ".manifest.json").exists()


def test_sync_into_itself_is_refused(src: Path) -> None:
    proc = cli("sync", src, src / "copy", check=False)
    assert proc.returncode == 2 and "same place" in proc.stderr


def test_repair_a_dataset_on_s3_from_a_local_backup(
    src: Path, s3_bucket: str, tmp_path: Path
) -> None:
    remote = f"{s3_bucket}/live"
    sync(src, remote)
    shards = [s["path"] for s in manifest(src)["shards"]]
    bucket, s3 = s3_bucket.removeprefix("s3://"), boto3.client("s3")
    s3.delete_object(Bucket=bucket, Key=f"live/{shards[0]}")
    body = bytearray(s3.get_object(Bucket=bucket, Key=f"live/{shards[7]}")["Body"].read())
    body[-100] ^= 0x01
    s3.put_object(Bucket=bucket, Key=f"live/{shards[7]}", Body=bytes(body))
    # a backup that lacks one of the two: that one is named, the other is still repaired
    partial = tmp_path / "partial"
    shutil.copytree(src, partial)
    (partial / shards[0]).unlink()
    proc = cli("verify", remote, "--repair-from", partial, "--json", check=False)
    report = json.loads(proc.stdout)
    assert proc.returncode == 1 and report["replaced"] == [shards[7]]
    assert [r["action"] for r in report["repairs"] if r["shard"] == shards[0]] == ["unavailable"]
    table = cli("verify", remote, "--repair-from", src)  # the full backup: all good again
    assert "1 replaced" in table.stdout and shards[0] in table.stdout
    back = tmp_path / "back"
    sync(remote, back)
    assert sha256s(back) == sha256s(src)


def test_sync_prints_a_summary(src: Path, tmp_path: Path) -> None:
    proc = cli("sync", src, tmp_path / "dst")
    assert "synced" in proc.stdout and "MB/s" in proc.stdout
    assert "0 copied" in cli("sync", src, tmp_path / "dst").stdout


def test_every_file_of_an_encrypted_dataset_travels(src: Path, tmp_path: Path) -> None:
    from helpers import encrypted_copy

    enc, _ = encrypted_copy(src, tmp_path)
    (enc / ".quarantine.jsonl").write_text('{"source": "x", "error": "bad line"}\n')
    dst = tmp_path / "dst"
    sync(enc, dst)

    def files(root: Path) -> dict[str, bytes]:
        found = [p for p in root.rglob("*") if p.is_file() and p.name != ".sync.json"]
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in found}

    assert files(dst) == files(enc)
    assert any(name.startswith(".keys/") for name in files(enc))  # wrapped key material
    assert "skipped" in json.loads(cli("verify", dst, "--json").stdout)


def test_a_missing_source_is_one_sentence(tmp_path: Path) -> None:
    proc = cli("sync", tmp_path / "nothing", tmp_path / "dst", check=False)
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_bad_source_never_replaces_a_good_copy(
    src: Path, tmp_path: Path, where: str, request: pytest.FixtureRequest
) -> None:
    dst = f"{request.getfixturevalue('s3_bucket')}/ds" if where == "s3" else tmp_path / "dst"
    sync(src, dst)
    changed, name = new_version(src, tmp_path / "v2")
    flip_byte(changed / name, offset=200)  # v2's changed shard is damaged at the source
    proc = cli("sync", changed, dst, check=False)
    assert proc.returncode == 1 and name in proc.stderr
    assert json.loads(cli("verify", dst, "--json").stdout)["ok"]  # still the good old version
    back = tmp_path / "back"
    sync(dst, back)
    assert sha256s(back) == sha256s(src)


def test_repair_restores_key_material_of_an_encrypted_dataset(src: Path, tmp_path: Path) -> None:
    from helpers import encrypted_copy

    enc, keys = encrypted_copy(src, tmp_path)
    backup = tmp_path / "backup"
    sync(enc, backup)
    work = tmp_path / "work"
    shutil.copytree(enc, work)
    material = sorted((work / ".keys").rglob("_KEY_MATERIAL_FOR_*.json"))
    material[0].unlink()
    material[1].write_text("not json")
    shard = manifest(work)["shards"][2]["path"]
    (work / shard).unlink()
    assert cli("verify", work, check=False).returncode == 1
    report = json.loads(cli("verify", work, "--repair-from", backup, "--json").stdout)
    replaced = {Path(name).name for name in report["replaced"]}
    assert replaced == {material[0].name, material[1].name, shard}
    # the oracle: with the key, every row reads back as the source's
    out = tmp_path / "rows.jsonl"
    cli("export", work, "-k", keys, "-o", out)
    texts = [json.loads(line)["text"] for line in out.read_text().splitlines()]
    assert texts == [r["text"] for r in shard_rows(src, ["text"])]
    # a backup whose key material names a key the manifest does not is refused, by name
    material[0].unlink()
    stray = json.loads((backup / material[0].relative_to(work)).read_text())
    for key, value in stray.items():
        stray[key] = json.dumps({**json.loads(value), "masterKeyID": "someone-else"})
    (backup / material[0].relative_to(work)).write_text(json.dumps(stray))
    proc = cli("verify", work, "--repair-from", backup, check=False)
    assert proc.returncode == 1 and material[0].name in proc.stderr
    assert not material[0].exists()


def test_sync_and_repair_wait_for_no_one_writing_dst(src: Path, tmp_path: Path) -> None:
    from dataprep.lock import OutputLock

    dst = tmp_path / "dst"
    sync(src, dst)
    with OutputLock(dst):  # a stage (or another sync) is writing DST
        proc = cli("sync", src, dst, check=False)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        repair = cli("verify", dst, "--repair-from", src, check=False)
        assert repair.returncode == 2 and "Traceback" not in repair.stderr
    assert sync(src, dst)["copied"] == 0
    assert not list(dst.glob(".dataprep.lock*"))
