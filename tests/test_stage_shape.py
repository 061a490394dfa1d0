"""The shape every stage shares (issue 20): shard writers as context managers, typed stage
contexts and task payloads, and an executor protocol that imports nothing of ours."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import column

from dataprep import records, stage, stages
from dataprep.dataset import RollingShardWriter, ShardWriter, file_checksum
from dataprep.errors import DataprepError
from dataprep.executors import protocol
from dataprep.executors.local import LocalExecutor
from dataprep.progress import Reporter
from dataprep.runner import run_stage
from dataprep.stage import Stage, StageConfig, StageContext, StageResult, TaskResult
from dataprep.storage import StoragePath

TABLE = pa.table({"id": [f"r{i}" for i in range(10)], "text": ["x" * i for i in range(10)]})


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_shard_writer_closes_on_success(tmp_path: Path) -> None:
    with ShardWriter(tmp_path / "part-00000.parquet", TABLE.schema) as writer:
        writer.write(TABLE)
    entry = writer.entry
    assert _leftovers(tmp_path) == ["part-00000.parquet"]
    assert pq.read_table(tmp_path / "part-00000.parquet").equals(TABLE)
    assert (entry.path, entry.rows) == ("part-00000.parquet", 10)
    assert entry.xxh3_128 == file_checksum(tmp_path / "part-00000.parquet")


def test_shard_writer_aborts_on_exception(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), ShardWriter(tmp_path / "p.parquet", TABLE.schema) as w:
        w.write(TABLE)
        raise KeyboardInterrupt
    assert _leftovers(tmp_path) == [], "no shard and no temporary file"
    with pytest.raises(RuntimeError, match="was not closed"):
        _ = w.entry


def test_shard_writer_aborts_when_its_close_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_upload(self: object, local: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("dataprep.storage.StoragePath.upload_from", broken_upload)
    with (
        pytest.raises(OSError, match="No space"),
        ShardWriter(tmp_path / "p.parquet", TABLE.schema) as w,
    ):
        w.write(TABLE)
    assert _leftovers(tmp_path) == []


def test_shard_writer_closed_or_aborted_inside_the_block_stays_so(tmp_path: Path) -> None:
    with ShardWriter(tmp_path / "a.parquet", TABLE.schema) as a:
        a.write(TABLE)
        first = a.close()
    assert a.entry is first
    with ShardWriter(tmp_path / "b.parquet", TABLE.schema) as b:
        b.abort()  # e.g. every row was a duplicate: no empty shard
    assert _leftovers(tmp_path) == ["a.parquet"]


def test_rolling_writer_context(tmp_path: Path) -> None:
    with RollingShardWriter(tmp_path, "part", TABLE.schema, shard_rows=4) as writer:
        writer.write(TABLE)
    assert [e.rows for e in writer.entries] == [4, 4, 2]
    (tmp_path / "x").mkdir()
    with (
        pytest.raises(ValueError),
        RollingShardWriter(tmp_path / "x", "part", TABLE.schema, 4) as w,
    ):
        w.write(TABLE.slice(0, 6))
        raise ValueError("task failed")
    assert _leftovers(tmp_path / "x") == ["part-00000.parquet"], "the shard in progress is gone"


def _imported(module: Any) -> set[str]:
    tree = ast.parse(Path(module.__file__).read_text())
    found = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    found |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    return found


def test_executor_protocol_imports_nothing_of_ours() -> None:
    """stage.py needs only the protocol, which imports no module of ours: no stage <->
    executors cycle, and loading it starts no executor and no stage code."""
    assert not {m for m in _imported(protocol) if m.startswith("dataprep")}
    assert {m for m in _imported(stage) if m.startswith("dataprep.executors")} == {
        "dataprep.executors.protocol"
    }
    code = (
        "import sys, dataprep.executors.protocol; "
        "print(' '.join(m for m in sys.modules if m.startswith('dataprep')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    assert "dataprep.executors.protocol" in loaded
    assert not loaded & {"dataprep.stage", "dataprep.executors.local", "dataprep.executors.ray"}
    from dataprep.executors import Executor

    assert Executor is protocol.Executor


# ---------------------------------------------------------------------------------------------
# Typed payloads in task records


@records.recordable
@dataclass(frozen=True)
class _Counted:
    counts: dict[Any, int]
    sizes: np.ndarray


def test_recordable_payload_round_trips_and_nothing_else_is_built() -> None:
    value = _Counted({"a": 1, None: 2, 3: 4}, np.arange(4, dtype=np.float64))
    back = records.loads(records.dumps(value))
    assert type(back) is _Counted and back.counts == value.counts
    assert back.sizes.tobytes() == value.sizes.tobytes()
    name = f"{__name__}._Counted"
    with pytest.raises(records.RecordError, match="not a result payload this dataprep knows"):
        records.loads(json.dumps({"$payload": ["os.system", {"command": "true"}]}).encode())
    with pytest.raises(records.RecordError, match="has fields"):
        records.loads(json.dumps({"$payload": [name, {"counts": {}}]}).encode())

    @dataclass(frozen=True)
    class Unmarked:
        n: int

    with pytest.raises(TypeError, match="cannot store"):
        records.dumps(Unmarked(1))


class _CrashAfterFirst:
    """One in-process worker that stops the run (like a SIGKILL) after its first commit."""

    workers = 1

    def __init__(self) -> None:
        self.inner = LocalExecutor(workers=1)

    def run(self, fn: Any, tasks: Any, on_done: Any = None) -> Any:
        def done(i: int, result: Any) -> None:
            on_done(i, result)
            raise KeyboardInterrupt

        return self.inner.run(fn, tasks, done)

    def close(self) -> None:
        self.inner.close()

    def __enter__(self) -> _CrashAfterFirst:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def test_a_record_of_the_previous_version_reruns_its_task_with_one_warning(
    corpus_dir: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A killed run of the version before typed payloads left `"extra"` dicts: the upgrade
    reads none of them as a payload, says so once per record, and reruns those tasks."""
    base = tmp_path / "base"
    inputs = sorted(str(p) for p in corpus_dir.glob("*.jsonl*"))
    run_stage("shard", {"shard_rows": 150}, base, inputs=inputs, executor=LocalExecutor(1))
    config = {"label": "label", "strategy": "undersample", "seed": 3}
    clean = tmp_path / "clean"
    run_stage("resample", config, clean, input_path=base, executor=LocalExecutor(1))

    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_stage("resample", config, out, input_path=base, executor=_CrashAfterFirst())
    [record] = list(out.glob(".dataprep*/**/tasks/count-00000.json")) or list(
        tmp_path.glob("**/tasks/count-00000.json")
    )
    data = json.loads(record.read_text())
    old = {k: v for k, v in data.items() if k != "payload"}
    old.update(format_version=1, extra={"$dict": [["a", 1]]})  # what version 1 wrote
    record.write_text(json.dumps(old))
    capfd.readouterr()
    run_stage("resample", config, out, input_path=base, executor=LocalExecutor(1))
    err = capfd.readouterr().err
    warned = [line for line in err.splitlines() if "task record" in line]
    assert len(warned) == 1 and "count-00000.json" in warned[0] and "reruns" in warned[0], err
    assert "Traceback" not in err
    assert column(out, "id") == column(clean, "id")


# ---------------------------------------------------------------------------------------------
# Stage[C] and the plain Stage plugins wrote before


def test_require_input_is_one_sentence(tmp_path: Path) -> None:
    ctx: StageContext[StageConfig] = StageContext(
        StageConfig(),
        StoragePath(str(tmp_path)),
        LocalExecutor(1),
        Reporter(quiet=True),
        description="mystage",
    )
    with pytest.raises(DataprepError, match="stage 'mystage' reads a dataset, but was given no"):
        ctx.require_input()


def _old_style_task(task: Any) -> TaskResult:
    """A plugin's task as written before issue 20: `task.extra`, `TaskResult(extra=...)`."""
    table = task.read_options.read_table(task.inputs[0])
    table = table.append_column(task.extra["column"], pa.array([1] * table.num_rows, pa.int64()))
    with ShardWriter(task.out / f"part-{task.index:05d}.parquet", table.schema) as writer:
        writer.write(table)
    return TaskResult([writer.entry], {"rows": table.num_rows}, table.schema, extra={"n": 1})


class OldConfig(StageConfig):
    column: str = "one"


class OldStyleStage(Stage):
    """A third-party stage in the shape before issue 20: plain `Stage`, `Config = ...`,
    an isinstance preamble, `extra=` payloads."""

    name = "oldstyle"
    Config = OldConfig

    def run(self, ctx: StageContext) -> StageResult:
        config = ctx.config
        assert isinstance(config, OldConfig) and ctx.input is not None
        tasks = [
            ctx.task("map", i, [p], extra={"column": config.column})
            for i, p in enumerate(ctx.input_shard_paths())
        ]
        results = ctx.map(_old_style_task, tasks)
        assert all(r.extra == {"n": 1} for r in results)
        shards = [s for r in results for s in r.shards]
        return StageResult(shards, results[0].schema, {"rows_in": ctx.input.rows})


def test_a_plugin_in_the_old_shape_still_runs(
    corpus_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = tmp_path / "base"
    inputs = sorted(str(p) for p in corpus_dir.glob("*.jsonl*"))
    run_stage("shard", {"shard_rows": 200}, base, inputs=inputs, executor=LocalExecutor(1))
    monkeypatch.setitem(stages.BUILTIN, "oldstyle", f"{__name__}:OldStyleStage")
    out = tmp_path / "old"
    run_stage("oldstyle", {"column": "flag"}, out, input_path=base, executor=LocalExecutor(2))
    assert column(out, "flag") == [1] * len(column(base, "id"))
    assert column(out, "id") == column(base, "id")


def test_stage_config_comes_from_its_type_parameter() -> None:
    """`Stage[C]` is the one place a stage names its config model."""

    class Other(StageConfig):
        n: int = 1

    class Typed(Stage[OldConfig]):
        name = "typed"

    assert Typed.Config is OldConfig and OldStyleStage.Config is OldConfig
    assert stages.get_stage("dedup").Config.__name__ == "DedupConfig"
    with pytest.raises(TypeError, match="Config Other is not the OldConfig of Stage"):

        class Mismatched(Stage[OldConfig]):
            Config = Other
