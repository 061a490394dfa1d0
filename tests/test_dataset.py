"""The dataset contract: manifest last, verify, inspect, caching, and resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import xxhash
from helpers import cli, column, leftovers, manifest


def _corpus(root: Path, files: int, rows: int) -> Path:
    root.mkdir()
    for f in range(files):
        lines = (json.dumps({"text": f"file {f} row {r} " + "x" * (r % 50)}) for r in range(rows))
        (root / f"f{f:03d}.jsonl").write_text("\n".join(lines) + "\n")
    return root


def test_manifest_matches_files_and_verify_catches_a_flipped_byte(
    corpus_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    cli("shard", corpus_dir, "-o", out, "--shard-rows", "300", "-q")
    data = manifest(out)
    assert data["format"] == "dataprep.dataset" and data["format_version"] == 1
    assert data["totals"]["rows"] == sum(s["rows"] for s in data["shards"])
    for shard in data["shards"]:  # independent recount with pyarrow and xxhash
        path = out / shard["path"]
        assert xxhash.xxh3_128(path.read_bytes()).hexdigest() == shard["xxh3_128"]
        meta = pq.ParquetFile(path).metadata
        assert meta.num_rows == shard["rows"] == sum(shard["row_groups"])
        assert path.stat().st_size == shard["bytes"]
    lineage = data["lineage"][-1]
    assert lineage["stage"] == "shard" and lineage["config"]["shard_rows"] == 300
    assert {"input_digest", "config_digest", "version", "started", "finished"} <= set(lineage)
    report = json.loads((out / ".report.json").read_text())
    assert {"rows_in", "rows_out", "quarantined", "seconds"} <= set(report)
    assert not leftovers(out)  # no temp files or resume state left behind

    ok = cli("verify", out)
    assert "ok" in ok.stdout
    victim = out / data["shards"][2]["path"]
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    victim.write_bytes(bytes(raw))
    bad = cli("verify", out, check=False)
    assert bad.returncode == 1
    assert data["shards"][2]["path"] in bad.stderr and "Traceback" not in bad.stderr


def test_inspect_json_and_rich(corpus_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    cli("shard", corpus_dir, "-o", out, "-q")
    as_json = json.loads(cli("inspect", out, "--json").stdout)
    assert as_json == manifest(out)
    shown = cli("inspect", out).stdout
    assert "schema" in shown and "lineage" in shown and "totals" in shown
    missing = cli("inspect", tmp_path / "nothing", check=False)
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_rerun_is_a_noop_and_says_so(tmp_path: Path) -> None:
    src = _corpus(tmp_path / "in", files=2, rows=100)
    out = tmp_path / "out"
    (first,) = json.loads(cli("shard", src, "-o", out, "--json").stdout)
    before = (out / ".manifest.json").read_text()
    (again,) = json.loads(cli("shard", src, "-o", out, "--json").stdout)
    assert first["status"] == "ran" and again["status"] == "cached"
    assert (out / ".manifest.json").read_text() == before
    said = " ".join(cli("shard", src, "-o", out).stdout.split())  # wrapped at 80 columns
    assert "up to date" in said  # where it wraps depends on the path's length
    (changed,) = json.loads(cli("shard", src, "-o", out, "--shard-rows", "7", "--json").stdout)
    # the two small files share one task, so 200 rows fill ceil(200 / 7) shards
    assert changed["status"] == "ran" and len(manifest(out)["shards"]) == 29


def test_sigkill_mid_run_then_rerun_gives_identical_output(tmp_path: Path) -> None:
    src = _corpus(tmp_path / "in", files=40, rows=4000)
    clean = tmp_path / "clean"
    # 2 MB chunks: each ~240 KB file is a task of its own (smaller ones would share one)
    chunks = ["--chunk-bytes", "2MB"]
    cli("shard", src, "-o", clean, "--shard-rows", "1500", "--workers", "1", "-q", *chunks)

    out = tmp_path / "out"
    args = [
        sys.executable,
        "-m",
        "dataprep",
        "shard",
        str(src),
        "-o",
        str(out),
        "--shard-rows",
        "1500",
        "--workers",
        "2",
        "-q",
        *chunks,
    ]
    proc = subprocess.Popen(args, start_new_session=True)
    done_dir = out / ".dataprep" / "tasks"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(done_dir.glob("*.json"))) < 8:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its pool workers
    proc.wait()
    finished = len(list(done_dir.glob("*.json")))
    assert 8 <= finished < 40, "the kill should land mid-run"
    assert not (out / ".manifest.json").exists()

    cli("shard", src, "-o", out, "--shard-rows", "1500", "--workers", "2", "-q", *chunks)
    ours, theirs = manifest(out), manifest(clean)
    assert [s["xxh3_128"] for s in ours["shards"]] == [s["xxh3_128"] for s in theirs["shards"]]
    ids = column(out, "id")
    expected = [f"f{f:03d}.jsonl:{r}" for f in range(40) for r in range(1, 4001)]
    assert len(ids) == len(set(ids)) and sorted(ids) == sorted(expected)
    assert not leftovers(out)
