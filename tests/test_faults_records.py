"""What a run reads back from its work folder, and what it leaves behind (issue 14: 8, 12, 16).

- Task records (`OUT/.dataprep/tasks/`) are data, never code: a planted pickle or a garbled
  record makes its task rerun; every record every stage writes decodes to exactly what the
  task returned, and a run resumed from them gives the same shards as an uninterrupted one.
- An encrypted run's quarantine keeps source, line and reason, never the row's text.
- Process-pool workers die with their driver; a worker killed mid-task is still retried.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import json
import os
import pickle
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import yaml
from flaky_stage import FlakyStage, attempts
from helpers import column, descendants, manifest

from dataprep import records, stages
from dataprep.dataset import ShardEntry
from dataprep.executors.local import LocalExecutor
from dataprep.runner import run_stage
from dataprep.stage import TaskResult, load_record, record_path

# ---------------------------------------------------------------------------------------------
# The codec


def same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (float bits, dtypes, tuple vs list)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, np.generic):
        return a.dtype == b.dtype and a.tobytes() == b.tobytes()
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return len(a) == len(b) and all(
            same(ka, kb) and same(va, vb)
            for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True)
        )
    if isinstance(a, pa.Schema):
        return a.equals(b, check_metadata=True)
    if isinstance(a, TaskResult):
        return all(
            same(getattr(a, k), getattr(b, k)) for k in ("shards", "counts", "schema", "payload")
        )
    if dataclasses.is_dataclass(a):  # a @recordable result payload (or a shard entry)
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    return bool(a == b)


ODD_VALUES: list[Any] = [
    None,
    True,
    0,
    -(2**70),
    "",
    "text with \u00e9, \U0001f600 and a lone \ud800 surrogate",
    0.1,
    -0.0,
    1e300,
    float("inf"),
    float("-inf"),
    float("nan"),
    struct.unpack("<d", bytes.fromhex("0100000000f8ff7f"))[0],  # a NaN with a payload
    (1, [2, (3.5,)], ()),
    [],
    {"a": 1, "$dict": 2, "$": 3},
    {None: 1, "web": 2, 3: 4, 2.5: 5, True: 6, (1, "x"): 7, float("nan"): 8},
    {b"\x00\xff": 1},
    np.arange(12, dtype=np.uint32).reshape(3, 4),
    np.array([[1.5, np.nan], [-0.0, np.inf]], dtype=">f8").T,  # big-endian, not contiguous
    np.zeros((0, 5), np.uint64),
    np.array([True, False]),
    np.array(3 + 4j, dtype=np.complex64),
    np.float32(1.25),
    np.int64(-7),
    np.uint64(2**64 - 1),
    np.bool_(True),
    pa.schema([("id", pa.string()), ("tokens", pa.list_(pa.int32()))], {"k": "v"}),
    ShardEntry("part-00000.parquet", 10, 1234, "ab" * 16, [5, 5], 3),
    ShardEntry("part-00001.parquet", 0, 9, "cd" * 16),
]


@pytest.mark.parametrize("value", ODD_VALUES, ids=lambda v: type(v).__name__)
def test_codec_round_trip_is_exact(value: Any) -> None:
    back = records.loads(records.dumps(value))
    assert same(back, value), (back, value)


def test_codec_round_trips_arrow_value_counts_of_every_hashable_kind() -> None:
    """Label / group values (resample, rebalance --by) come from Arrow: any scalar type."""
    when = dt.datetime(2024, 5, 1, 12, 30, 15, 123456)
    columns = [
        pa.array([dt.date(2024, 1, 2), None, dt.date(2024, 1, 2)]),
        pa.array([when, when], pa.timestamp("us")),
        pa.array([when], pa.timestamp("us", tz="Europe/Paris")),
        pa.array([1_000_000_000], pa.timestamp("ns")),
        pa.array([dt.time(1, 2, 3)]),
        pa.array([dt.timedelta(days=2, microseconds=5)]),
        pa.array([decimal.Decimal("1.50"), decimal.Decimal("-0.01")]),
        pa.array([b"\x00bin", b""]),
        pa.array([1.5, float("nan"), None]),
        pa.array([True, False]),
        pa.array(["web", "books"]).dictionary_encode(),
    ]
    for col in columns:
        counts = {c["values"]: c["counts"] for c in pc.value_counts(col).to_pylist()}
        back = records.loads(records.dumps(counts))
        assert [type(k) for k in back] == [type(k) for k in counts], col.type
        assert [str(k) for k in back] == [str(k) for k in counts], col.type
        assert list(back.values()) == list(counts.values())


class Unlisted:
    pass


@pytest.mark.parametrize(
    "value, where",
    [
        ({"a": [1, {2, 3}]}, "['a'][1]"),
        ((Unlisted(),), "[0]"),
        ({"x": np.array([object(), 1], dtype=object)}, "['x']"),
        (np.zeros(2, dtype=[("a", "i4"), ("b", "f8")]), "(value)"),
        ([1, lambda: 0], "[1]"),
        (frozenset(), "(value)"),
        ({"s": np.str_("x")}, "['s']"),
    ],
)
def test_codec_refuses_other_types_when_writing(value: Any, where: str) -> None:
    with pytest.raises(TypeError, match="task record") as caught:
        records.dumps(value)
    assert where in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        '{"$pickle": "gASV"}',
        '{"$ndarray": ["|O", [2], "AAAAAAAAAAA="]}',
        '{"$ndarray": ["<f8", [3], "AAAAAAAAAAA="]}',  # 8 bytes for 3 float64s
        '{"$ndarray": ["<f8", [-1], ""]}',
        '{"$ndarray": ["os.system", [1], ""]}',
        '{"$tuple": 5}',
        '{"$dict": [[1]]}',
        '{"$float": "zz"}',
        '{"$arrow": "bm90IGFycm93"}',
        '{"$schema": "bm90IGFycm93"}',
        '{"$shard": {"path": 1}}',
        '{"$shard": {"path": "p", "rows": 1, "bytes": 1, "xxh3_128": "x", "evil": 1}}',
        '{"$shard": {"path": "../outside.parquet", "rows": 1, "bytes": 1, "xxh3_128": "x"}}',
        '{"$shard": {"path": "/etc/passwd", "rows": 1, "bytes": 1, "xxh3_128": "x"}}',
        "NaN",
        "[" * 100_000 + "]" * 100_000,
    ],
)
def test_codec_rejects_garbled_records_without_running_anything(text: str) -> None:
    with pytest.raises(records.RecordError):
        records.loads(text.encode())


@pytest.mark.parametrize(
    "patch",
    [
        (b"\x08\x00\x00\x00abcdefgh", b"\x00\x00\x00\x40abcdefgh"),  # offset past the data
        (b"\x08\x00\x00\x00\x00\x00\x00\x00\x00", b"\x00\x00\x00\x40\x00\x00\x00\x00\x00"),
    ],
    ids=["offsets", "lengths"],
)
def test_codec_rejects_arrow_values_pointing_outside_their_buffers(
    patch: tuple[bytes, bytes],
) -> None:
    """Read unchecked, a tampered offset would make Arrow read far past the buffer."""
    batch = pa.record_batch([pa.array(["abcdefgh"])], names=["v"])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    stream = sink.getvalue().to_pybytes()
    assert stream.count(patch[0]) >= 1
    tampered = base64.b64encode(stream.replace(patch[0], patch[1], 1)).decode()
    with pytest.raises(records.RecordError):
        records.loads(json.dumps({"$arrow": tampered}).encode())


# ---------------------------------------------------------------------------------------------
# Records written by real stages


class Crash(Exception):
    """Stands for a SIGKILL of the driver right after it committed a task."""


class CheckingExecutor:
    """One in-process worker; reads back each task record as soon as the driver commits it and
    compares it with what the task returned. `crash_after=N` stops the run after N commits."""

    workers = 1

    def __init__(self, crash_after: int | None = None):
        self.inner = LocalExecutor(workers=1)
        self.crash_after = crash_after
        self.committed = 0
        self.extras: set[str] = set()

    def run(self, fn: Callable[[Any], Any], tasks: Sequence[Any], on_done: Any = None) -> list[Any]:
        for task in tasks:  # a phase's own frozen payload (no tuples or dicts), picklable
            payload = task.payload
            assert payload is None or type(payload).__dataclass_params__.frozen, (
                f"{task.phase}: payload {type(payload).__name__}"
            )
            assert pickle.loads(pickle.dumps(task)).payload.__class__ is payload.__class__

        def done(i: int, result: TaskResult) -> None:
            on_done(i, result)
            assert result.payload is None or dataclasses.is_dataclass(result.payload)
            task = tasks[i]
            loaded = load_record(record_path(task.work, task), task)
            assert same(loaded, result), f"{task.phase}-{task.index}: {loaded} != {result}"
            self.extras.add(_shape(result.payload))
            self.committed += 1
            if self.crash_after is not None and self.committed >= self.crash_after:
                raise Crash

        return self.inner.run(fn, tasks, done)

    def close(self) -> None:
        self.inner.close()

    def __enter__(self) -> CheckingExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _shape(value: Any) -> str:
    if dataclasses.is_dataclass(value):
        fields = ",".join(_shape(getattr(value, f.name)) for f in dataclasses.fields(value))
        return f"{type(value).__name__}({fields})"
    if isinstance(value, dict):
        return "dict(" + ",".join(sorted({type(k).__name__ for k in value})) + ")"
    if isinstance(value, list | tuple):
        return type(value).__name__ + "(" + ",".join(sorted({_shape(v) for v in value})) + ")"
    return type(value).__name__


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small sharded corpus (with labels, sources, duplicates) that the stages below read."""
    from dataprep.sample import generate_corpus

    tmp = tmp_path_factory.mktemp("records")
    generate_corpus(tmp / "raw", docs=600, seed=5)
    out = tmp / "base"
    inputs = sorted(str(p) for p in (tmp / "raw").glob("*.jsonl.zst"))
    with CheckingExecutor() as ex:
        run_stage("shard", {"shard_rows": 100}, out, inputs=inputs, executor=ex)
    return out


# (test id, op, config, kinds of payload its tasks return: every kind the stages produce)
WRITE_STATS = "WriteStats(float,float,dict(str),dict(int),dict(int))"
STAGE_RUNS: list[tuple[str, str, dict[str, Any], set[str]]] = [
    ("shard", "shard", {"shard_rows": 70, "chunk_bytes": 20_000}, {"NoneType"}),
    ("dedup-exact", "dedup", {"method": "exact"}, {"TaskStats(float,float)", WRITE_STATS}),
    (
        "dedup-minhash",
        "dedup",
        {"method": "minhash", "threshold": 0.7},
        {"TaskStats(float,float)", WRITE_STATS},
    ),
    ("rebalance-bytes", "rebalance", {"target_bytes": 20_000}, {"ColumnBytes(ndarray,ndarray)"}),
    (
        "rebalance-shuffle",
        "rebalance",
        {"shards": 3, "shuffle": True, "seed": 1},
        {"Sent(list(int))"},
    ),
    (
        "rebalance-by-int",
        "rebalance",
        {"shards": 3, "by": "cluster"},
        {"ValueCounts(dict(int))", "Sent(list(int))"},
    ),
    (
        "rebalance-by-float",
        "rebalance",
        {"shards": 3, "by": "quality"},
        {"ValueCounts(dict(float))"},
    ),
    (
        "resample",
        "resample",
        {"label": "label", "strategy": "undersample"},
        {"ValueCounts(dict(str))"},
    ),
    ("partition", "partition", {"key": "id", "partitions": 3}, {"NoneType"}),
    ("compress", "compress", {"codec": "zstd", "level": 5}, {"CompressStats(dict(str),float)"}),
    ("tokenize", "tokenize", {"seq_len": 64}, {"NoneType"}),
]


def _run(base: Path, op: str, config: dict[str, Any], out: Path, executor: Any) -> None:
    if op == "shard":
        raw = sorted(str(p) for p in (base.parent / "raw").glob("*.jsonl.zst"))
        run_stage(op, config, out, inputs=raw, executor=executor)
    else:
        run_stage(op, config, out, input_path=base, executor=executor)


@pytest.mark.parametrize("name, op, config, kinds", STAGE_RUNS, ids=[s[0] for s in STAGE_RUNS])
def test_every_stage_record_decodes_exactly_and_resumes(
    name: str, op: str, config: dict[str, Any], kinds: set[str], base: Path, tmp_path: Path
) -> None:
    clean = tmp_path / "clean"
    with CheckingExecutor() as ex:
        _run(base, op, config, clean, ex)
    total = ex.committed
    assert kinds <= ex.extras
    assert total >= 2, "the stage should have more than one task"

    out = tmp_path / "out"
    with CheckingExecutor(crash_after=total - 1) as ex, pytest.raises(Crash):
        _run(base, op, config, out, ex)
    with CheckingExecutor() as ex:  # resumes from the records the "killed" run left
        _run(base, op, config, out, ex)
    assert ex.committed == 1, "only the one unfinished task reruns"
    assert [s["xxh3_128"] for s in manifest(out)["shards"]] == [
        s["xxh3_128"] for s in manifest(clean)["shards"]
    ]


# ---------------------------------------------------------------------------------------------
# Planted and garbled records


class _Payload:
    """Unpickling this creates a marker file (as a real attack would run a shell command)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def _half_done_shard(tmp_path: Path, raw: list[str]) -> Path:
    out = tmp_path / "out"
    with CheckingExecutor(crash_after=2) as ex, pytest.raises(Crash):
        run_stage("shard", {"shard_rows": 50, "chunk_bytes": 20_000}, out, inputs=raw, executor=ex)
    return out


@pytest.fixture
def raw(base: Path) -> list[str]:
    return sorted(str(p) for p in (base.parent / "raw").glob("*.jsonl.zst"))


def test_planted_pickle_records_run_no_code(
    raw: list[str], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    clean = tmp_path / "clean"
    run_stage(
        "shard",
        {"shard_rows": 50, "chunk_bytes": 20_000},
        clean,
        inputs=raw,
        executor=LocalExecutor(workers=1),
    )
    out = _half_done_shard(tmp_path, raw)
    tasks = out / ".dataprep" / "tasks"
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Payload(marker))
    for name in ("read-00000.pkl", "read-00000.json", "read-00001.json", "read-00003.pkl"):
        (tasks / name).write_bytes(payload)

    with CheckingExecutor() as ex:
        run_stage("shard", {"shard_rows": 50, "chunk_bytes": 20_000}, out, inputs=raw, executor=ex)
    assert not marker.exists(), "a task record ran code"
    assert column(out, "id") == column(clean, "id")
    warned = [line for line in capfd.readouterr().err.splitlines() if "task record" in line]
    assert len(warned) == 2 and all("rerun" in line for line in warned), warned


def _garble(path: Path, how: str) -> None:
    data = json.loads(path.read_text())
    if how == "truncated":
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    elif how == "wrong-task":
        data["index"] += 1
        path.write_text(json.dumps(data))
    elif how == "bad-types":
        data["counts"] = {"$tuple": "x"}
        path.write_text(json.dumps(data))
    elif how == "bad-shard":
        data["shards"] = [{"$shard": {"path": 5}}]
        path.write_text(json.dumps(data))
    elif how == "shard-deleted":
        (path.parents[2] / data["shards"][0]["$shard"]["path"]).unlink()
    elif how == "newer-format":
        data["format_version"] = 999
        path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    "how", ["truncated", "wrong-task", "bad-types", "bad-shard", "shard-deleted", "newer-format"]
)
def test_garbled_record_reruns_its_task_with_one_warning(
    how: str, base: Path, raw: list[str], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    out = _half_done_shard(tmp_path, raw)
    record = out / ".dataprep" / "tasks" / "read-00001.json"
    _garble(record, how)
    capfd.readouterr()
    with CheckingExecutor() as ex:
        run_stage("shard", {"shard_rows": 50, "chunk_bytes": 20_000}, out, inputs=raw, executor=ex)
    err = capfd.readouterr().err
    assert "Traceback" not in err
    warned = [line for line in err.splitlines() if "task record" in line]
    assert len(warned) == 1 and "read-00001.json" in warned[0], err
    ids = column(out, "id")
    assert len(ids) == len(set(ids)) and sorted(ids) == sorted(column(base, "id"))


# ---------------------------------------------------------------------------------------------
# Quarantine of an encrypted run


def test_encrypted_run_quarantine_keeps_no_row_text(tmp_path: Path) -> None:
    src = tmp_path / "raw"
    src.mkdir()
    rows = [json.dumps({"id": f"r{i}", "text": f"good row {i}"}) for i in range(20)]
    rows[3] = '{"id": "r3", "text": "SECRET-BROKEN-JSON-4711" '  # broken JSON
    rows[7] = json.dumps({"id": "r7", "text": ["SECRET-WRONG-TYPE-0815"]})
    (src / "a.jsonl").write_text("\n".join(rows) + "\n")
    (src / "b.csv").write_text('id,text\nc1,fine\nc2,"SECRET-CSV-ROW-2222",extra\n')
    keys = tmp_path / "keys.json"
    subprocess.run(
        [sys.executable, "-m", "dataprep", "keygen", "-o", str(keys)],
        check=True,
        capture_output=True,
    )
    recipe = {
        "version": 1,
        "name": "q",
        "vars": {"root": str(tmp_path / "work")},
        "input": {"path": str(src), "text_column": "text"},
        "executor": {"kind": "local", "workers": 1},
        "output": {"encryption": {"key_file": str(keys)}},
        "stages": [{"id": "shards", "op": "shard", "params": {"shard_rows": 100}}],
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    proc = subprocess.run(
        [sys.executable, "-m", "dataprep", "run", str(path), "-q"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "work" / "shards"
    quarantine = (out / ".quarantine.jsonl").read_text()
    assert "SECRET" not in quarantine
    for leftover in out.rglob("*"):
        if leftover.is_file():
            assert b"SECRET" not in leftover.read_bytes(), leftover
    entries = [json.loads(line) for line in quarantine.splitlines()]
    assert sorted((e["source"], e["line"]) for e in entries)[:2] == [("a.jsonl", 4), ("a.jsonl", 8)]
    assert [e["source"] for e in entries].count("b.csv") == 1
    assert all(set(e) == {"source", "line", "reason"} and e["reason"] for e in entries)
    reasons = {(e["source"], e["line"]): e["reason"] for e in entries}
    assert reasons["a.jsonl", 4].startswith("invalid JSON")
    assert reasons["a.jsonl", 8] == "field 'text'"  # the value after ": " is dropped


def test_plain_run_quarantine_still_keeps_the_raw_row(tmp_path: Path) -> None:
    src = tmp_path / "a.jsonl"
    src.write_text('{"id": "x", "text": "ok"}\n{"id": "y", "text": "KEEP-ME\n')
    run_stage(
        "shard",
        {"shard_rows": 10},
        tmp_path / "out",
        inputs=[str(src)],
        executor=LocalExecutor(workers=1),
    )
    (entry,) = [json.loads(line) for line in (tmp_path / "out" / ".quarantine.jsonl").open()]
    assert "KEEP-ME" in entry["raw"] and entry["line"] == 2


# ---------------------------------------------------------------------------------------------
# Pool workers and their driver


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.fixture(scope="module")
def big_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Enough JSONL that `shard --workers 2` is still busy a second after it starts."""
    src = tmp_path_factory.mktemp("big")
    rng = np.random.default_rng(0)
    words = np.array("alpha beta gamma delta epsilon zeta eta theta iota kappa".split())
    for f in range(6):
        picks = words[rng.integers(0, len(words), size=(20_000, 40))]
        lines = (json.dumps({"id": f"{f}-{r}", "text": " ".join(p)}) for r, p in enumerate(picks))
        (src / f"f{f}.jsonl").write_text("\n".join(lines) + "\n")
    return src


def test_pool_workers_die_with_a_killed_driver(big_raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "dataprep",
        "shard",
        str(big_raw),
        "-o",
        str(out),
        "--shard-rows",
        "2000",
        "--workers",
        "2",
        "-q",
    ]
    driver = subprocess.Popen(cmd)
    family: list[int] = []
    try:
        deadline = time.time() + 60
        workers: list[int] = []
        while time.time() < deadline and driver.poll() is None:
            workers = [p for p in descendants(driver.pid) if _is_pool_worker(p)]
            if len(workers) == 2 and any((out / ".dataprep" / "tasks").glob("*.json")):
                break
            time.sleep(0.05)
        family = descendants(driver.pid)  # the workers, the fork server, the resource tracker
        assert len(workers) == 2 and driver.poll() is None, "the run should be mid-way"
        driver.kill()
        driver.wait()
        deadline = time.time() + 5
        while time.time() < deadline and any(_alive(p) for p in family):
            time.sleep(0.05)
        survivors = [_cmdline(p)[:100] for p in family if _alive(p)]
    finally:
        driver.kill()
        for pid in family:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert not survivors, f"orphaned: {survivors}"


def _is_pool_worker(pid: int) -> bool:
    """A spawned worker, or a fork of the fork server (which runs the server's command line,
    or is named dataprep-server: a fork of the command, see executors.forkserver)."""
    if "spawn_main" in _cmdline(pid):
        return True
    try:
        parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        server = Path(f"/proc/{parent}/comm").read_text().strip()
    except (OSError, IndexError, ValueError):
        return False
    return "multiprocessing.forkserver" in _cmdline(parent) or server == "dataprep-server"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


def test_worker_killed_mid_task_is_still_retried(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(stages.BUILTIN, "flaky", f"flaky_stage:{FlakyStage.__name__}")
    marker = tmp_path / "marker"
    marker.mkdir()
    config = {"mode": "kill_once", "marker_dir": str(marker), "tasks": 4, "fail_index": 1}
    with LocalExecutor(workers=2) as executor:
        run = run_stage("flaky", config, tmp_path / "out", executor=executor)
    assert run.status == "ran"
    assert attempts(marker, 1) >= 2  # the first attempt died with its worker; a retry wrote it
    assert sorted(column(tmp_path / "out", "value")) == list(range(40))
