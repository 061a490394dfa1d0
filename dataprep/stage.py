"""The shape every stage has: a typed config plus a function of (context) -> result.

A stage splits its work into picklable tasks and hands them to `ctx.map`, which runs them on
whatever executor the context holds, skips tasks a killed run already committed (their results
kept as JSON task records, see `records`), and reports progress. Stage modules import this
file and `dataset`, never an executor.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, ValidationError

from dataprep import records
from dataprep.dataset import Manifest, ReadOptions, ShardEntry, WriteOptions
from dataprep.errors import DataprepError
from dataprep.executors.protocol import Executor
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


def check_columns(
    stage: Stage, config: StageConfig, schema: pa.Schema, label: Callable[[str], str]
) -> None:
    """Every column a stage's config names must be in the schema it reads. `label` turns a
    param into what the user wrote: `--key` on the command line, `stages[2].params.key` in a
    recipe, so the check runs before any output exists or any task starts."""
    named = getattr(stage, "column_params", None)  # a duck-typed plugin may not have it
    for param, names in (named(config) if named else {}).items():
        for name in names:
            if name not in schema.names:
                raise DataprepError(
                    f"{label(param)} {name!r} is not a column of the input "
                    f"(columns: {', '.join(schema.names) or 'none'})"
                )


def output_schema(
    stage: Stage, config: StageConfig, schema: pa.Schema | None, inputs: Sequence[str] = ()
) -> pa.Schema | None:
    """`stage.output_schema`, or None (unknown) for a plugin without the hook."""
    hook = getattr(stage, "output_schema", None)
    return hook(config, schema, inputs) if hook else None


def cli_flag(param: str) -> str:
    """`text_column` -> `--text-column`, as Typer spells a stage option."""
    return "--" + param.replace("_", "-")


_FLAG = re.compile(r"(?<![\w-])--([a-z][a-z0-9-]*)")


def recipe_wording(message: str, config: type[StageConfig], location: str) -> str:
    """Stage code words its errors for the command line (`--keep max:text ...`); inside a recipe
    the same error names the recipe key (`stages[1].params.keep max:text ...`)."""

    def key(match: re.Match[str]) -> str:
        name = match.group(1).replace("-", "_")
        return f"{location}.params.{name}" if name in config.model_fields else match.group(0)

    return _FLAG.sub(key, message)


def describe_validation(exc: ValidationError, where: str, prefix: str = "") -> str:
    """One line per bad key: `WHERE: PREFIX.KEY: problem` (a recipe passes `stages[2].params.`
    as prefix, so the line names the key as written in the recipe)."""
    lines = []
    for error in exc.errors():
        key = prefix + (".".join(str(part) for part in error["loc"]) or "(value)")
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
        path = self.work / "quarantine" / f"{self.phase}-{self.index:05d}.jsonl"
        return Quarantine(path, keep_rows=self.write_options.encryption is None)


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
    """Append-only JSONL of rows a task could not use, with where they came from and why.

    With `keep_rows=False` (an encrypted run) no row content is written next to the
    ciphertext: no raw row, and a reason is cut before its first ": ", where reasons quote
    the offending value (`field 'n': 'abc' is not int64` -> `field 'n'`).
    """

    def __init__(self, path: StoragePath, keep_rows: bool = True):
        self.path = path
        self.keep_rows = keep_rows
        self.count = 0
        self._file: Any = None

    def add(self, source: str, line: int | None, reason: str, raw: str | None = None) -> None:
        if self._file is None:
            self.path.parent.mkdir()
            self._file = self.path.open_output()
        if not self.keep_rows:
            reason, raw = reason.split(": ", 1)[0], None
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
        """Run tasks, skipping those a previous (killed) run already committed.

        A record that does not decode (truncated, edited, another task's) or whose shards are
        gone is reported in one line and its task reruns; `.pkl` records of older versions are
        never read.
        """
        (self.work / "tasks").mkdir()
        results: list[TaskResult | None] = [None] * len(tasks)
        todo: list[int] = []
        for i, task in enumerate(tasks):
            record = record_path(self.work, task)
            if record.exists():
                try:
                    results[i] = load_record(record, task)
                    missing = [
                        s.path for s in results[i].shards if not (self.out / s.path).exists()
                    ]
                    if not missing:
                        continue
                    results[i] = None
                    raise records.RecordError(f"its shard {missing[0]} is gone")
                except records.RecordError as exc:
                    print(
                        f"warning: task record {record} is unreadable ({exc}); the task reruns",
                        file=sys.stderr,
                    )
            todo.append(i)
        phase = tasks[0].phase if tasks else ""
        label = f"{self.description} {phase}".strip()
        self.reporter.start(label, len(tasks))
        for _ in range(len(tasks) - len(todo)):
            self.reporter.task_done()

        def commit(j: int, result: TaskResult) -> None:
            task = tasks[todo[j]]
            save_record(record_path(self.work, task), task, result)
            results[todo[j]] = result
            self.reporter.task_done()

        try:
            self.executor.run(fn, [tasks[i] for i in todo], on_done=commit)
        finally:
            self.reporter.stop()
        return [r for r in results if r is not None]


RECORD_FORMAT = "dataprep-task-record"
RECORD_VERSION = 1


def record_path(work: StoragePath, task: Task) -> StoragePath:
    """Where a finished task's result is kept until the stage commits its manifest."""
    return work / "tasks" / f"{task.phase}-{task.index:05d}.json"


def save_record(path: StoragePath, task: Task, result: TaskResult) -> None:
    """JSON via `records` (never pickle: a work folder must not be able to run code)."""
    record = {
        "format": RECORD_FORMAT,
        "format_version": RECORD_VERSION,
        "phase": task.phase,
        "index": task.index,
        "shards": result.shards,
        "counts": result.counts,
        "schema": result.schema,
        "extra": result.extra,
    }
    path.write_atomic(records.dumps(record))


def load_record(path: StoragePath, task: Task) -> TaskResult:
    """The result `save_record` kept for this very task; RecordError for anything else."""
    data = records.loads(path.read_bytes())
    if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
        raise records.RecordError("not a dataprep task record")
    if data.get("format_version") != RECORD_VERSION:
        raise records.RecordError(
            f"record format {data.get('format_version')!r} is not one this dataprep reads"
        )
    if (data.get("phase"), data.get("index")) != (task.phase, task.index):
        raise records.RecordError(f"it records task {data.get('phase')}-{data.get('index')}")
    shards, counts, schema = data.get("shards"), data.get("counts"), data.get("schema")
    if not isinstance(shards, list) or not all(isinstance(s, ShardEntry) for s in shards):
        raise records.RecordError("its shards are not shard entries")
    if not isinstance(counts, dict) or not all(isinstance(k, str) for k in counts):
        raise records.RecordError("its counts are not a dict of names")
    if schema is not None and not isinstance(schema, pa.Schema):
        raise records.RecordError("its schema is not an Arrow schema")
    return TaskResult(shards, counts, schema, data.get("extra"))


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

    def column_params(self, config: Any) -> dict[str, list[str]]:
        """Param -> the input columns it names; checked against the input's schema before the
        stage runs, and by recipe validation against the schema each stage will see."""
        return {}

    def output_schema(
        self, config: Any, schema: pa.Schema | None, inputs: Sequence[str] = ()
    ) -> pa.Schema | None:
        """The schema this stage writes, given its input's (raw `inputs` for a first stage);
        None when only a run can tell. Recipe validation follows it from stage to stage."""
        return schema if self.reads_dataset else None


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
