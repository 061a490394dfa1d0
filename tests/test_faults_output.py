"""Outputs under faults: never into the input, never two writers, never lost before replaced.

Issue 14 items 1, 3, 10 and 11. Oracles: the input dataset's own manifest and shard bytes
(unchanged after a refused or failed run), `verify`, and the holder facts (host, pid) of the
process that really holds an output, started here as a separate process.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from flaky_stage import attempts
from helpers import cli, column

from dataprep import dataset, recipe
from dataprep.errors import DataprepError
from dataprep.executors import make_executor
from dataprep.runner import run_stage
from dataprep.storage import StoragePath

INLINE = make_executor("local", workers=1)
HOST = socket.gethostname()


# -- shared data --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def base_ds(corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("faults-output") / "ds"
    run_stage("shard", {"shard_rows": 500}, out, inputs=[str(corpus_dir)], executor=INLINE)
    return out


@pytest.fixture
def ds(base_ds: Path, tmp_path: Path) -> Path:
    """A private copy of a finished dataset, so a test that destroys it harms no other."""
    target = tmp_path / "ds"
    shutil.copytree(base_ds, target)
    return target


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# -- item 1: output = input ---------------------------------------------------------------------
def test_cli_compress_into_its_own_input_is_refused(ds: Path) -> None:
    before = _snapshot(ds)
    proc = cli("compress", ds, "-o", ds, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "is the input dataset" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert _snapshot(ds) == before  # not a byte touched
    dataset.verify_dataset(ds)


@pytest.mark.parametrize(
    "where",
    ["same-relative", "same-file-uri", "same-trailing-slash", "symlink", "inside", "contains"],
)
def test_output_overlapping_the_input_is_refused(
    ds: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "link").symlink_to(ds)
    out = {
        "same-relative": "./sub/../ds",
        "same-file-uri": f"file://{ds}",
        "same-trailing-slash": f"{ds}/",
        "symlink": str(tmp_path / "link"),
        "inside": str(ds / "nested"),
        "contains": str(tmp_path),
    }[where]
    before = _snapshot(ds)
    with pytest.raises(DataprepError, match="input dataset"):
        run_stage("compress", {}, out, input_path=ds, executor=INLINE)
    assert _snapshot(ds) == before
    assert not (ds / "nested").exists()


def test_remote_locations_compare_normalised() -> None:
    from dataprep.storage import canonical

    assert canonical("s3://bkt/a/b/") == canonical("s3://bkt//a/./b?endpoint_override=x")
    assert canonical("s3a://bkt/a") == canonical("s3://bkt/a")
    with pytest.raises(DataprepError, match="lies inside the input dataset"):
        run_stage("compress", {}, "s3://bkt/a/b/c", input_path="s3://bkt//a/b/")
    with pytest.raises(DataprepError, match="contains the input dataset"):
        run_stage("compress", {}, "s3://bkt/a", input_path="s3://bkt/a/b")


@pytest.mark.parametrize("where", ["inside-input-dir", "contains-input-file", "is-input-file"])
def test_shard_output_overlapping_raw_inputs_is_refused(tmp_path: Path, where: str) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.jsonl").write_text('{"text": "hello"}\n')
    inputs, out = {
        "inside-input-dir": ([str(raw)], raw / "shards"),
        "contains-input-file": ([str(raw / "a.jsonl")], raw),
        "is-input-file": ([str(raw / "*.jsonl")], raw / "a.jsonl"),
    }[where]
    with pytest.raises(DataprepError, match="raw input"):
        run_stage("shard", {}, out, inputs=inputs, executor=INLINE)
    assert sorted(p.name for p in raw.iterdir()) == ["a.jsonl"]


def test_output_that_is_a_file_is_refused(ds: Path, tmp_path: Path) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    with pytest.raises(DataprepError, match="is a file"):
        run_stage("compress", {}, target, input_path=ds, executor=INLINE)
    assert target.read_text() == "mine"


def test_shard_output_next_to_a_flat_glob_is_allowed(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.jsonl").write_text('{"text": "hello"}\n')
    run = run_stage("shard", {}, raw / "shards", inputs=[str(raw / "*.jsonl")], executor=INLINE)
    assert run.status == "ran"


def _write_recipe(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_recipe_whose_first_stage_writes_its_input_fails_validate(ds: Path, tmp_path: Path) -> None:
    path = _write_recipe(
        tmp_path,
        {
            "vars": {"root": str(ds.parent)},
            "input": {"path": str(ds)},
            "stages": [{"id": "ds", "op": "compress"}],
        },
    )
    before = _snapshot(ds)
    proc = cli("validate", path, check=False)
    assert proc.returncode == 2 and "stage 'ds'" in proc.stderr, proc.stdout + proc.stderr
    assert "input" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("run", path, check=False)
    assert proc.returncode == 2
    assert _snapshot(ds) == before


# -- item 1: a finished dataset stays until its replacement commits -----------------------------
# (the `flaky` fixture: conftest.py)


def test_failed_force_rerun_keeps_the_old_dataset_then_resumes(flaky: Path, tmp_path: Path):
    out = tmp_path / "out"
    good = {"mode": "none", "marker_dir": str(flaky), "tasks": 4}
    run_stage("flaky", good, out, executor=INLINE)
    before = _snapshot(out)

    broken = {"mode": "always", "marker_dir": str(flaky), "tasks": 5, "fail_index": 3}
    (flaky / "broken").touch()
    with pytest.raises(RuntimeError, match="broken until"):
        run_stage("flaky", broken, out, executor=INLINE, force=True)
    # the old dataset is untouched and readable; the new run's work sits in the work folder
    assert {k: v for k, v in _snapshot(out).items() if not k.startswith(".dataprep")} == before
    assert dataset.verify_dataset(out).rows == 40
    assert sorted(column(out, "value")) == list(range(40))
    done_before = {i: attempts(flaky, i) for i in range(5)}

    (flaky / "broken").unlink()
    run = run_stage("flaky", broken, out, executor=INLINE)
    assert run.status == "ran"
    assert [i for i in range(5) if attempts(flaky, i) > done_before[i]] == [3, 4]  # resumed
    assert dataset.verify_dataset(out).rows == 50
    assert sorted(column(out, "value")) == list(range(50))
    assert sorted(p.name for p in out.iterdir()) == [
        ".manifest.json",
        ".report.json",
        *(f"part-{i:05d}.parquet" for i in range(5)),
    ]


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


def test_killed_replacement_run_keeps_the_old_dataset_and_resumes(flaky: Path, tmp_path: Path):
    out = tmp_path / "out"
    run_stage("flaky", {"marker_dir": str(flaky), "tasks": 3}, out, executor=INLINE)
    before = _snapshot(out)
    tests = str(Path(__file__).parent)
    proc = subprocess.run([sys.executable, "-c", KILLED_RUN, tests, str(flaky), str(out)])
    assert proc.returncode == -signal.SIGKILL  # its task killed the whole run (inline)
    assert {k: v for k, v in _snapshot(out).items() if not k.startswith(".dataprep")} == before
    assert dataset.verify_dataset(out).rows == 30

    config = {"mode": "kill_once", "marker_dir": str(flaky), "tasks": 4, "fail_index": 3}
    assert run_stage("flaky", config, out, executor=INLINE).status == "ran"  # lock was freed
    assert [attempts(flaky, i) for i in range(4)] == [2, 2, 2, 2]  # only task 3 ran again
    assert sorted(column(out, "value")) == list(range(40))
    assert dataset.verify_dataset(out).rows == 40


def test_killed_swap_is_rolled_forward_by_the_next_run(
    flaky: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataprep import commit

    out = tmp_path / "out"
    run_stage("flaky", {"marker_dir": str(flaky), "tasks": 4}, out, executor=INLINE)
    new = {"marker_dir": str(flaky), "tasks": 2}
    moved: list[str] = []
    real_move = commit.move

    def dies_after_one_move(source: StoragePath, target: StoragePath) -> None:
        if moved:
            raise KeyboardInterrupt("killed mid-swap")
        moved.append(source.name)
        real_move(source, target)

    monkeypatch.setattr(commit, "move", dies_after_one_move)
    with pytest.raises(KeyboardInterrupt):
        run_stage("flaky", new, out, executor=INLINE)
    assert not (out / ".manifest.json").exists()  # mid-swap: no manifest, so nothing trusts it
    monkeypatch.setattr(commit, "move", real_move)

    run = run_stage("flaky", new, out, executor=INLINE)
    assert run.status == "cached"  # the staged run had committed; the swap was completed
    assert dataset.verify_dataset(out).rows == 20
    assert sorted(column(out, "value")) == list(range(20))
    assert not (out / "part-00002.parquet").exists() and not (out / ".dataprep").exists()


def test_failed_rerun_on_s3_keeps_the_old_dataset(base_ds: Path, s3_bucket: str) -> None:
    source, out = f"{s3_bucket}/ds", f"{s3_bucket}/packed"
    for file in sorted(base_ds.iterdir()):
        (StoragePath(source) / file.name).write_atomic(file.read_bytes())
    run_stage("compress", {"level": 1}, out, input_path=source, executor=INLINE)
    before = StoragePath(out).walk_files()
    with pytest.raises(DataprepError, match="nope"):  # the stage itself raises, mid-run
        run_stage("compress", {"sort_by": ["nope"]}, out, input_path=source, executor=INLINE)
    assert [p for p in StoragePath(out).walk_files() if "/.dataprep" not in str(p)] == before
    assert dataset.verify_dataset(out).rows == dataset.read_manifest(base_ds).rows
    assert run_stage("compress", {"level": 9}, out, input_path=source).status == "ran"
    assert dataset.verify_dataset(out).rows == dataset.read_manifest(base_ds).rows
    assert dataset.read_manifest(out).lineage[-1]["config"]["level"] == 9
    shards = [s.path for s in dataset.read_manifest(out).shards]
    names = sorted(p.name for p in StoragePath(out).iterdir())
    assert names == sorted([".manifest.json", ".report.json", *shards])  # no claim left behind


# -- item 3: one writer per output --------------------------------------------------------------
HOLD = """
import sys, time
from dataprep.lock import OutputLock
lock = OutputLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
time.sleep(float(sys.argv[2]))
lock.release()
"""

TRY = """
import json, sys, time
from dataprep.errors import DataprepError
from dataprep.lock import OutputLock
lock = OutputLock(sys.argv[1])
try:
    lock.acquire()
except DataprepError as exc:
    print(json.dumps({"refused": str(exc)}), flush=True)
    sys.exit(0)
start = time.time()
time.sleep(float(sys.argv[2]))
end = time.time()
lock.release()
print(json.dumps({"held": [start, end]}), flush=True)
"""


def _holder(out: str, seconds: float = 120) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, out, str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.parametrize("where", ["local", "s3"])
def test_second_writer_is_refused_naming_the_holder_and_recovers_after_kill(
    ds: Path,
    tmp_path: Path,
    where: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if where == "s3":
        out = f"{request.getfixturevalue('s3_bucket')}/packed"
        monkeypatch.setenv("DATAPREP_LOCK_TIMEOUT", "3")  # the CLI inherits it
    else:
        out = str(tmp_path / "packed")
    holder = _holder(out)
    try:
        proc = cli("compress", ds, "-o", out, check=False)
        assert proc.returncode == 2, proc.stderr
        message = " ".join(proc.stderr.split())
        assert f"pid {holder.pid}" in message and HOST in message and "since" in message
        assert "Traceback" not in proc.stderr
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    if where == "s3":
        time.sleep(3.5)  # the dead holder's heartbeat goes stale
    cli("compress", ds, "-o", out)
    assert dataset.verify_dataset(out).rows == dataset.read_manifest(ds).rows
    names = [p.name for p in StoragePath(out).iterdir()]
    assert not [n for n in names if n.startswith(".dataprep.lock")]  # released: nothing left


def test_stalled_owner_taken_over_on_s3_does_not_commit(
    s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataprep.lock import OutputLock

    monkeypatch.setenv("DATAPREP_LOCK_TIMEOUT", "2")
    first = OutputLock(f"{s3_bucket}/x")
    first.acquire()
    first._stop.set()  # a stall: its heartbeat stops (a long pause, a network outage)
    time.sleep(3)
    second = OutputLock(f"{s3_bucket}/x")
    second.acquire()  # the stale claim is removed
    with pytest.raises(DataprepError, match="taken over by another run"):
        first.check()
    second.check()
    second.release()
    first.release()


@pytest.mark.parametrize("where", ["local", "s3"])
def test_concurrent_claims_never_overlap(
    tmp_path: Path, where: str, request: pytest.FixtureRequest
) -> None:
    if where == "s3":
        out = f"{request.getfixturevalue('s3_bucket')}/x"
    else:
        out = str(tmp_path / "x")
    procs = [
        subprocess.Popen([sys.executable, "-c", TRY, out, "1.5"], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    results = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    held = sorted(r["held"] for r in results if "held" in r)
    assert held, results
    for (_, end), (start, _) in zip(held, held[1:], strict=False):
        assert end <= start, held  # never two holders at once
    for r in results:
        if "refused" in r:
            assert "in use by another dataprep run" in r["refused"], r


def test_concurrent_cli_runs_leave_a_verified_output(ds: Path, tmp_path: Path) -> None:
    out = tmp_path / "packed"
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "dataprep", "compress", str(ds), "-o", str(out)]
            + ["--level", str(level), "--workers", "1", "--force"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for level in (1, 9)
    ]
    outcomes = [(p.wait(timeout=300), p.stderr.read() if p.stderr else "") for p in procs]
    for code, err in outcomes:
        assert code == 0 or (code == 2 and "in use by another dataprep run" in err), err
    assert dataset.verify_dataset(out).rows == dataset.read_manifest(ds).rows
    assert sorted(p.name for p in out.glob("*.parquet")) == sorted(
        s.path for s in dataset.read_manifest(out).shards
    )


# -- item 10: stage ids are names ---------------------------------------------------------------
def _id_recipe(tmp_path: Path, ds: Path, stage_id: str) -> Path:
    return _write_recipe(
        tmp_path,
        {
            "vars": {"root": str(tmp_path / "root")},
            "input": {"path": str(ds)},
            "stages": [{"id": stage_id, "op": "compress"}],
        },
    )


@pytest.mark.parametrize("bad", [".", "a/b", "/abs", "", ".hidden", "x/../.."])
def test_stage_id_that_is_not_a_name_is_refused(ds: Path, tmp_path: Path, bad: str) -> None:
    with pytest.raises(DataprepError, match=r"stages\.0\.id: .* is not a plain name"):
        recipe.load(_id_recipe(tmp_path, ds, bad))


def test_stage_id_dotdot_writes_nothing_outside_root(ds: Path, tmp_path: Path) -> None:
    path = _id_recipe(tmp_path, ds, "..")
    for command in ("validate", "run"):
        proc = cli(command, path, check=False)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "stages.0.id: '..' is not a plain name" in " ".join(proc.stderr.split())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "recipe.yaml"]


# -- item 11: YAML bombs ------------------------------------------------------------------------
LEVELS = ["a: &a [x, x, x, x, x, x, x, x, x, x]"] + [
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]" for i in range(8)
]  # 10**9 leaves from 9 short lines
BOMB = "\n".join([*LEVELS, "stages: [{id: s, op: compress, params: {level: *i}}]", ""])


def test_alias_bomb_stops_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    assert len(BOMB) < 700
    start = time.perf_counter()
    proc = cli("validate", path, check=False)
    assert time.perf_counter() - start < 30
    assert proc.returncode == 2 and "aliases" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_set_value_bomb_and_huge_recipe_are_refused(tmp_path: Path, ds: Path) -> None:
    path = _write_recipe(
        tmp_path, {"input": {"path": str(ds)}, "stages": [{"id": "s", "op": "compress"}]}
    )
    value = "{" + ", ".join([*LEVELS, "z: *i"]) + "}"
    with pytest.raises(DataprepError, match="aliases"):
        recipe.load(path, [f"s.level={value}"])
    big = tmp_path / "big.yaml"
    big.write_text("stages: []\n" + "# padding\n" * 200_000)
    with pytest.raises(DataprepError, match="larger than"):
        recipe.load(big)


def test_unwritable_output_that_is_up_to_date_still_counts_as_cached(
    flaky: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataprep.lock import OutputLock

    out = tmp_path / "out"
    config = {"marker_dir": str(flaky), "tasks": 2}
    run_stage("flaky", config, out, executor=INLINE)

    def read_only(self: OutputLock) -> None:  # as on a read-only mount or bucket (we are root)
        raise PermissionError(13, "Permission denied", str(self.path))

    monkeypatch.setattr(OutputLock, "acquire", read_only)
    assert run_stage("flaky", config, out, executor=INLINE).status == "cached"
    with pytest.raises(PermissionError):
        run_stage("flaky", config, out, executor=INLINE, force=True)


def test_an_unreadable_claim_on_s3_still_holds_the_output(s3_bucket: str) -> None:
    """A claim read while its owner rewrites it can come back torn (moto serves the new body
    over the old one); that is a live claim, never a vanished one (two owners, seen in CI)."""
    import boto3

    from dataprep.lock import OutputLock

    bucket = s3_bucket.removeprefix("s3://")
    torn = '{"state": "held", "pid": 7}e": "claiming"}'
    boto3.client("s3").put_object(
        Bucket=bucket, Key="x/.dataprep.lock-00000000000000000001-h-7-abcd.json", Body=torn
    )
    with pytest.raises(DataprepError, match="its claim could not be read"):
        OutputLock(f"{s3_bucket}/x").acquire()


def test_a_claim_left_by_a_killed_run_on_this_machine_is_taken_at_once(
    ds: Path, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run killed on this machine cannot heartbeat, and this machine can tell: its process
    is gone. The rerun takes the output at once instead of waiting out the claim's timeout
    (300 s by default); a live holder is still refused."""
    out = f"{s3_bucket}/packed"
    monkeypatch.delenv("DATAPREP_LOCK_TIMEOUT", raising=False)
    holder = _holder(out)
    refused = cli("compress", ds, "-o", out, check=False)
    assert refused.returncode == 2 and f"pid {holder.pid}" in refused.stderr, refused.stderr
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    started = time.monotonic()
    cli("compress", ds, "-o", out)  # no wait for the dead claim to go stale
    assert time.monotonic() - started < 60
    assert dataset.verify_dataset(out).rows == dataset.read_manifest(ds).rows


def test_a_claim_from_another_machine_or_a_reused_pid_is_judged_by_its_heartbeat() -> None:
    from dataprep.lock import _holder_info, _holder_is_dead

    me = _holder_info()
    assert not _holder_is_dead(me)  # this very process
    assert _holder_is_dead({**me, "pid": 2**22 + 7})  # no such process here
    assert _holder_is_dead({**me, "started": me["started"] + 1})  # the pid was reused
    assert not _holder_is_dead({**me, "pid": 2**22 + 7, "host": "elsewhere"})  # cannot tell
    assert not _holder_is_dead({**me, "pid": 2**22 + 7, "boot": "other-boot"})
    assert not _holder_is_dead({**me, "pid": 2**22 + 7, "pidns": -1})  # another container
    legacy = {k: v for k, v in me.items() if k not in ("boot", "pidns", "started")}
    assert not _holder_is_dead({**legacy, "pid": 2**22 + 7})  # written by an older version


def test_a_killed_but_unreaped_holder_is_dead() -> None:
    from dataprep.lock import _holder_info, _holder_is_dead

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        me = _holder_info()
        holder = {**me, "pid": child.pid, "started": _started(child.pid)}
        assert not _holder_is_dead(holder)
        child.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{child.pid}/stat").read_text().split(") ")[1][0] != "Z":
            assert time.monotonic() < deadline, "the killed child never became a zombie"
            time.sleep(0.05)
        assert _holder_is_dead(holder)  # a zombie: its parent has not waited for it yet
    finally:
        child.kill()
        child.wait()


def _started(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
