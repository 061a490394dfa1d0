"""Runs that crash or overlap: a resumed run never trusts a shard whose bytes are not the ones
its task record describes, and two runs started together on one output never both write it.

Oracles: a lone, uninterrupted run of the same stage and config (shard bytes and manifest
entries), `verify`, and the pid of the process that really held the output.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from flaky_stage import attempts
from helpers import column

from dataprep import dataset
from dataprep.executors import make_executor
from dataprep.runner import run_stage

INLINE = make_executor("local", workers=1)
TESTS = str(Path(__file__).parent)

KILLED_RUN = """
import sys
sys.path.insert(0, sys.argv[1])
from dataprep import stages
from dataprep.executors import make_executor
from dataprep.runner import run_stage
stages.BUILTIN["flaky"] = "flaky_stage:FlakyStage"
config = {"mode": "kill_once", "marker_dir": sys.argv[2], "tasks": 4, "fail_index": 3}
run_stage("flaky", config, sys.argv[3], executor=make_executor("local", workers=1))
"""


def _truncate(path: Path) -> None:
    """What a power loss leaves of a shard whose record was on disk but whose pages were not."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _zero_middle(path: Path) -> None:
    """The same size, but a block of zeros (XFS/ext4 can show unwritten extents as zeros)."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle - 16 : middle + 16] = bytes(32)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("where", ["fresh", "staged"])
@pytest.mark.parametrize("damage", [_truncate, _zero_middle], ids=["truncated", "zeroed"])
def test_resume_redoes_a_finished_task_whose_shard_does_not_match_its_record(
    flaky: Path, tmp_path: Path, damage, where: str, capfd: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    staging = out
    if where == "staged":  # OUT holds a finished dataset: the new run writes .dataprep/next/
        other = tmp_path / "other-marker"
        other.mkdir()
        run_stage("flaky", {"marker_dir": str(other), "tasks": 3}, out, executor=INLINE)
        staging = out / ".dataprep" / "next"
    proc = subprocess.run([sys.executable, "-c", KILLED_RUN, TESTS, str(flaky), str(out)])
    assert proc.returncode == -signal.SIGKILL  # killed after tasks 0-2 committed their records
    assert (staging / ".dataprep" / "tasks" / "map-00001.json").is_file()
    damage(staging / "part-00001.parquet")

    config = {"mode": "kill_once", "marker_dir": str(flaky), "tasks": 4, "fail_index": 3}
    assert run_stage("flaky", config, out, executor=INLINE).status == "ran"
    assert [attempts(flaky, i) for i in range(4)] == [1, 2, 1, 2]  # task 1 redone, 0 and 2 kept
    assert "part-00001.parquet" in capfd.readouterr().err  # the rerun is said, naming the shard
    assert dataset.verify_dataset(out).rows == 40
    assert sorted(column(out, "value")) == list(range(40))

    lone = tmp_path / "lone"
    lone_marker = tmp_path / "lone-marker"
    lone_marker.mkdir()
    lone_config = {**config, "mode": "none", "marker_dir": str(lone_marker)}
    run_stage("flaky", lone_config, lone, executor=INLINE)
    shards = dataset.read_manifest(out).shards
    assert [(s.path, s.rows, s.bytes, s.xxh3_128) for s in shards] == [
        (s.path, s.rows, s.bytes, s.xxh3_128) for s in dataset.read_manifest(lone).shards
    ]


# -- two runs started together on one output ----------------------------------------------------
RACE = """
import json, sys, time
from dataprep.errors import DataprepError
from dataprep.executors import make_executor
from dataprep.runner import run_stage
out, src, at = sys.argv[1], sys.argv[2], float(sys.argv[3])
executor = make_executor("local", workers=1)
while time.time() < at:
    pass
try:
    run = run_stage("shard", {"shard_rows": 50}, out, inputs=[src], executor=executor)
    print(json.dumps({"ran": run.status}))
except DataprepError as exc:
    print(json.dumps({"refused": str(exc)}))
"""


def _corpus(path: Path, rows: int = 3000) -> Path:
    text = Path("/usr/share/common-licenses/GPL-3").read_text()
    with path.open("w") as f:
        for i in range(rows):
            f.write(json.dumps({"id": i, "text": text[i % 500 : i % 500 + 2000]}) + "\n")
    return path


def test_two_python_api_runs_started_together_one_is_refused_naming_the_holder(
    tmp_path: Path,
) -> None:
    src = _corpus(tmp_path / "in.jsonl")
    out = tmp_path / "out"
    at = time.time() + 2.0  # both interpreters are up by then: the runs start together
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, str(out), str(src), str(at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outcomes = [(p, *p.communicate(timeout=120)) for p in procs]
    for _, _, err in outcomes:
        assert "Traceback" not in err, err
    results = {p.pid: json.loads(stdout) for p, stdout, _ in outcomes}
    ran = [pid for pid, r in results.items() if "ran" in r]
    refused = [r["refused"] for r in results.values() if "refused" in r]
    if len(ran) == 2:  # the box was so slow that they did not overlap: then one was cached
        assert sorted(r["ran"] for r in results.values()) == ["cached", "ran"]
    else:
        assert len(ran) == 1 and len(refused) == 1, results
        assert f"pid {ran[0]}" in refused[0] and "in use by another dataprep run" in refused[0]
    lone = tmp_path / "lone"
    run_stage("shard", {"shard_rows": 50}, lone, inputs=[str(src)], executor=INLINE)
    got, want = dataset.read_manifest(out), dataset.read_manifest(lone)
    assert [(s.path, s.xxh3_128) for s in got.shards] == [(s.path, s.xxh3_128) for s in want.shards]
    assert dataset.verify_dataset(out).rows == 3000
    names = sorted(os.listdir(out))
    assert names == sorted([".manifest.json", ".report.json", *(s.path for s in got.shards)])


# -- a shard is on disk before anything that trusts it ---------------------------------------------
def _record_fsyncs_and_renames(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Each fsync (of the file its descriptor names) and each rename (of its source), in order."""
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.path.realpath(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: str, dst: str) -> None:
        events.append(("replace", os.path.realpath(src)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


def test_a_local_shard_is_fsynced_before_its_name_is_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A power loss cannot be staged here, so the order of the system calls is the oracle: the
    shard's bytes reach the disk (fsync of the file that becomes the shard) before the rename
    that gives it its name, which the task record and the manifest then point at."""
    import pyarrow as pa

    from dataprep.dataset import ShardWriter

    events = _record_fsyncs_and_renames(monkeypatch)
    target = tmp_path / "part-00000.parquet"
    with ShardWriter(target, pa.schema([("x", pa.int64())])) as writer:
        writer.write(pa.table({"x": list(range(1000))}))
    renames = [e for e in events if e[0] == "replace"]
    assert len(renames) == 1, events
    tmp = renames[0][1]
    assert ("fsync", tmp) in events[: events.index(renames[0])], events
    assert target.stat().st_size == writer.entry.bytes


SLOW_HOLDER = """
import fcntl, json, os, sys, time
from dataprep.lock import _holder_info
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
print("locked", flush=True)
time.sleep(0.3)  # between winning the lock and writing who it is (a loaded box)
info = json.dumps(_holder_info()).encode()
os.pwrite(fd, info, 0)
os.ftruncate(fd, len(info))
time.sleep(30)
"""


def test_a_refusal_names_the_live_holder_not_a_killed_one_nor_nobody(tmp_path: Path) -> None:
    """A killed run leaves its lock file naming it; the next run locks that same file and
    writes its own facts a moment later. A run refused in between must name the live one."""
    from dataprep.errors import DataprepError
    from dataprep.lock import OutputLock

    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json; from dataprep.lock import _holder_info as h; print(json.dumps(h()))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    dead_pid = json.loads(dead)["pid"]
    (out / ".dataprep.lock").write_text(dead)  # what a kill -9 leaves behind
    holder = subprocess.Popen(
        [sys.executable, "-c", SLOW_HOLDER, str(out / ".dataprep.lock")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(DataprepError) as refused:
            OutputLock(out).acquire()
        message = str(refused.value)
        assert f"pid {holder.pid}" in message and f"pid {dead_pid}," not in message, message
    finally:
        holder.kill()
        holder.wait()


def test_two_cli_shard_runs_started_together_exit_2_naming_the_holder(tmp_path: Path) -> None:
    src = _corpus(tmp_path / "in.jsonl", rows=30000)  # ~60 MB: a run outlasts a CLI start
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "dataprep", "shard", str(src), "-o", str(out), "--workers", "1"]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    errs = {p.pid: p.communicate(timeout=120)[1] for p in procs}
    outcomes = {p.pid: (p.returncode, errs[p.pid]) for p in procs}
    for _, err in outcomes.values():
        assert "Traceback" not in err, err
    codes = sorted(code for code, _ in outcomes.values())
    if codes == [0, 2]:  # they overlapped: the second stopped with one sentence
        holder = next(pid for pid, (code, _) in outcomes.items() if code == 0)
        message = next(err for code, err in outcomes.values() if code == 2).strip()
        assert message.startswith("error: output ") and f"pid {holder}," in message, message
        assert "\n" not in message and "in use by another dataprep run" in message
    else:
        assert codes == [0, 0], outcomes  # one after the other: the second found it cached
    lone = tmp_path / "lone"
    run_stage("shard", {}, lone, inputs=[str(src)], executor=INLINE)
    got, want = dataset.read_manifest(out), dataset.read_manifest(lone)
    assert [(s.path, s.xxh3_128) for s in got.shards] == [(s.path, s.xxh3_128) for s in want.shards]
    assert sorted(os.listdir(out)) == sorted(
        [".manifest.json", ".report.json", *(s.path for s in got.shards)]
    )


def test_a_byte_copied_dedup_shard_is_fsynced_before_its_name_is_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dedup copies an untouched shard byte for byte (passthrough.copy_shard) instead of
    rewriting it; that copy must reach the disk before its rename too, as ShardWriter's does."""
    import pyarrow as pa

    from dataprep.dataset import ShardWriter
    from dataprep.stages.dedup.passthrough import copy_shard
    from dataprep.storage import as_path

    source = tmp_path / "in" / "part-00000.parquet"
    source.parent.mkdir()
    with ShardWriter(source, pa.schema([("x", pa.int64())])) as writer:
        writer.write(pa.table({"x": list(range(1000))}))
    events = _record_fsyncs_and_renames(monkeypatch)
    target = tmp_path / "out" / "part-00000.parquet"
    target.parent.mkdir()
    entry = copy_shard(as_path(source), as_path(target), writer.entry)
    renames = [e for e in events if e[0] == "replace"]
    assert len(renames) == 1, events
    assert ("fsync", renames[0][1]) in events[: events.index(renames[0])], events
    assert target.read_bytes() == source.read_bytes() and entry.bytes == source.stat().st_size
