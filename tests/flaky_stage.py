"""A test-only stage whose tasks fail on purpose, to check retries and resume on real workers.

Each task writes one small shard. Whether an attempt fails is decided by files in
`marker_dir`, so the same config (same digest, so a rerun resumes) can fail first and succeed
later: `raise_once` / `kill_once` fail the first attempt of task `fail_index` only; `always`
fails it while `marker_dir/broken` exists (`kill_always` kills its worker then);
`user_error` raises a DataprepError. Every attempt leaves `attempt-<index>-<pid>-<n>` so tests
can count what ran. Module-level so the process pool and Ray workers import it by name (tests/
is on their PYTHONPATH).
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import pyarrow as pa

from dataprep.dataset import ShardWriter
from dataprep.errors import DataprepError
from dataprep.stage import Stage, StageConfig, StageContext, StageResult, Task, TaskResult

SCHEMA = pa.schema([("task", pa.int64()), ("value", pa.int64())])


class FlakyConfig(StageConfig):
    mode: Literal["raise_once", "kill_once", "kill_always", "always", "user_error", "none"] = "none"
    marker_dir: str
    tasks: int = 4
    fail_index: int = 1


def attempts(marker_dir: Path, index: int) -> int:
    return len(list(Path(marker_dir).glob(f"attempt-{index}-*")))


def _task(task: Task) -> TaskResult:
    config: FlakyConfig = task.config
    marker = Path(config.marker_dir)
    first = attempts(marker, task.index) == 0
    (marker / f"attempt-{task.index}-{os.getpid()}-{uuid.uuid4().hex[:8]}").touch()
    if task.index == config.fail_index:
        if config.mode == "raise_once" and first:
            raise RuntimeError("flaky task: first attempt fails")
        if config.mode == "kill_once" and first:
            os.kill(os.getpid(), signal.SIGKILL)
        if config.mode == "kill_always" and (marker / "broken").exists():
            os.kill(os.getpid(), signal.SIGKILL)
        if config.mode == "always" and (marker / "broken").exists():
            raise RuntimeError("flaky task: broken until the marker file is removed")
        if config.mode == "user_error":
            raise DataprepError("flaky task: a user error, never retried")
    values = pa.array(range(task.index * 10, task.index * 10 + 10), pa.int64())
    table = pa.table({"task": pa.array([task.index] * 10, pa.int64()), "value": values})
    writer = ShardWriter(Path(task.out_dir) / f"part-{task.index:05d}.parquet", SCHEMA)
    writer.write(table)
    return TaskResult(shards=[writer.close()], counts={"rows_in": 10})


class FlakyStage(Stage):
    name = "flaky"
    Config = FlakyConfig
    reads_dataset = False

    def input_digest(self, config: StageConfig, inputs: Sequence[str]) -> str:
        return "flaky-test-input"

    def run(self, ctx: StageContext) -> StageResult:
        config: FlakyConfig = ctx.config  # type: ignore[assignment]
        tasks = [ctx.task("map", i, []) for i in range(config.tasks)]
        results = ctx.map(_task, tasks)
        shards = [s for r in results for s in r.shards]
        return StageResult(shards, SCHEMA, {"rows_in": 10 * len(shards)})
