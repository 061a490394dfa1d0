"""The shape every stage has: a typed config plus a function of (context) -> result.

A stage splits its work into picklable tasks and hands them to `ctx.map`, which runs them on
whatever executor the context holds, skips tasks a killed run already committed, and reports
progress. Stage modules import this file and `dataset`, never an executor.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, ValidationError

from dataprep.dataset import Manifest, ReadOptions, ShardEntry, WriteOptions
from dataprep.errors import DataprepError
from dataprep.executors import Executor
from dataprep.progress import Reporter
from dataprep.storage import StoragePath


class StageConfig(BaseModel):
    """Base for stage configs: the same model validates CLI flags and recipe params."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def parse(cls, data: dict[str, Any], where: str = "options") -> Any:
        """Validate, turning pydantic's report into one line per bad key."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise DataprepError(describe_validation(exc, where)) from None


def require_column(schema: pa.Schema, name: str, option: str) -> None:
    """Stop before any task runs when an option names a column the input does not have."""
    if name not in schema.names:
        raise DataprepError(
            f"{option} {name!r} is not a column of the input (columns: {', '.join(schema.names)})"
        )


def describe_validation(exc: ValidationError, where: str) -> str:
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(value)"
        message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        lines.append(f"{where}: {key}: {message}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Task:
    """One unit of work, picklable so any executor can ship it to a worker."""

    phase: str
    index: int
    inputs: tuple[str, ...]
    out_dir: str
    work_dir: str
    config: Any
    write_options: WriteOptions = WriteOptions()
    extra: Any = None
    read_options: ReadOptions = ReadOptions()

    @property
    def out(self) -> StoragePath:
        return StoragePath(self.out_dir)

    @property
    def work(self) -> StoragePath:
        return StoragePath(self.work_dir)

    def quarantine(self) -> Quarantine:
        return Quarantine(self.work / "quarantine" / f"{self.phase}-{self.index:05d}.jsonl")


@dataclass
class TaskResult:
    """What a task hands back: its committed shards, counters, and any small plan data."""

    shards: list[ShardEntry] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    schema: pa.Schema | None = None
    extra: Any = None


@dataclass
class StageResult:
    shards: list[ShardEntry]
    schema: pa.Schema
    report: dict[str, Any]
    encryption: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None  # facts later stages inherit (e.g. the tokenizer)


class Quarantine:
    """Append-only JSONL of rows a task could not use, with where they came from and why."""

    def __init__(self, path: StoragePath):
        self.path = path
        self.count = 0
        self._file: Any = None

    def add(self, source: str, line: int | None, reason: str, raw: str | None = None) -> None:
        if self._file is None:
            self.path.parent.mkdir()
            self._file = self.path.open_output()
        record = {"source": source, "line": line, "reason": reason}
        if raw is not None:
            record["raw"] = raw[:2000]
        self._file.write((json.dumps(record, ensure_ascii=False) + "\n").encode())
        self.count += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class StageContext:
    """Everything a stage may touch: its config, input, output dir, and the executor."""

    def __init__(
        self,
        config: StageConfig,
        out: StoragePath,
        executor: Executor,
        reporter: Reporter,
        input_root: StoragePath | None = None,
        input_manifest: Manifest | None = None,
        inputs: Sequence[str] = (),
        write_options: WriteOptions = WriteOptions(),
        description: str = "",
        read_options: ReadOptions = ReadOptions(),
    ):
        self.config = config
        self.out = out
        self.work = out / ".dataprep"
        self.executor = executor
        self.reporter = reporter
        self.input_root = input_root
        self.input = input_manifest
        self.inputs = list(inputs)
        self.write_options = write_options
        self.description = description
        self.read_options = read_options

    def task(self, phase: str, index: int, inputs: Sequence[str], extra: Any = None) -> Task:
        return Task(
            phase=phase,
            index=index,
            inputs=tuple(inputs),
            out_dir=str(self.out),
            work_dir=str(self.work),
            config=self.config,
            write_options=self.write_options,
            extra=extra,
            read_options=self.read_options,
        )

    def input_shard_paths(self) -> list[str]:
        assert self.input is not None and self.input_root is not None
        return [str(self.input_root / s.path) for s in self.input.shards]

    def map(self, fn: Callable[[Task], TaskResult], tasks: Sequence[Task]) -> list[TaskResult]:
        """Run tasks, skipping those a previous (killed) run already committed."""
        done_dir = self.work / "tasks"
        done_dir.mkdir()
        results: list[TaskResult | None] = [None] * len(tasks)
        todo: list[int] = []
        for i, task in enumerate(tasks):
            record = done_dir / f"{task.phase}-{task.index:05d}.pkl"
            if record.exists():
                results[i] = pickle.loads(record.read_bytes())
            else:
                todo.append(i)
        phase = tasks[0].phase if tasks else ""
        label = f"{self.description} {phase}".strip()
        self.reporter.start(label, len(tasks))
        for _ in range(len(tasks) - len(todo)):
            self.reporter.task_done()

        def commit(j: int, result: TaskResult) -> None:
            task = tasks[todo[j]]
            record = done_dir / f"{task.phase}-{task.index:05d}.pkl"
            record.write_atomic(pickle.dumps(result))
            results[todo[j]] = result
            self.reporter.task_done()

        try:
            self.executor.run(fn, [tasks[i] for i in todo], on_done=commit)
        finally:
            self.reporter.stop()
        return [r for r in results if r is not None]


def sum_counts(results: Sequence[TaskResult]) -> dict[str, int]:
    total: dict[str, int] = {}
    for result in results:
        for key, value in result.counts.items():
            total[key] = total.get(key, 0) + value
    return total


class Stage:
    """A named transformation; subclasses set `name`, `Config`, and implement `run`."""

    name: ClassVar[str]
    Config: ClassVar[type[StageConfig]]
    help: ClassVar[str] = ""
    reads_dataset: ClassVar[bool] = True  # False for stages that read raw files (shard)
    # An encrypted input's output is encrypted the same way unless the stage sets this (decrypt).
    writes_plaintext: ClassVar[bool] = False

    def input_digest(self, config: StageConfig, inputs: Sequence[str]) -> str:
        """Only for stages with `reads_dataset = False`: a digest of their raw inputs."""
        raise NotImplementedError

    def run(self, ctx: StageContext) -> StageResult:
        raise NotImplementedError


def map_shards(
    ctx: StageContext,
    fn: Callable[[Task], TaskResult],
    phase: str = "map",
    extra: Any = None,
) -> StageResult:
    """The common 1:1 case: one task per input shard, each writing `part-NNNNN.parquet`."""
    paths = ctx.input_shard_paths()
    tasks = [ctx.task(phase, i, [p], extra) for i, p in enumerate(paths)]
    results = ctx.map(fn, tasks)
    counts = sum_counts(results)
    shards = [s for r in results for s in r.shards]
    schema = next((r.schema for r in results if r.schema is not None), None)
    assert ctx.input is not None
    counts.setdefault("rows_in", ctx.input.rows)
    counts.setdefault("rows_out", sum(s.rows for s in shards))
    return StageResult(shards, schema or ctx.input.schema, dict(counts))
