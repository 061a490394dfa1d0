"""The shape every stage has: a typed config plus a function of (context) -> result.

`Stage[C]` and `StageContext[C]` are generic over the stage's config model `C`, so `ctx.config`
is typed and a stage never re-checks it; `ctx.require_input()` is the input manifest (one
sentence when a stage that reads a dataset got none). A stage splits its work into picklable
`Task[C, P]`s, each phase with its own frozen payload `P` (`dataprep.task`), and hands them to
`ctx.map`, which runs them on whatever executor the context holds, skips tasks a killed run
already committed (their results kept as JSON task records, see `records`), and reports
progress. Stage modules import this file and `dataset`, never an executor; a plain `Stage`
(no type parameter, config typed `Any`), as plugins wrote before, still runs.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar, get_args, get_origin

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, ValidationError

from dataprep import records
from dataprep.dataset import Manifest, ReadOptions, ShardEntry, WriteOptions
from dataprep.errors import DataprepError
from dataprep.executors.protocol import Executor
from dataprep.progress import Reporter
from dataprep.storage import StoragePath
from dataprep.task import (
    Quarantine,
    Task,
    TaskResult,
    ValueCounts,
    load_record,
    record_path,
    recordable,
    save_record,
    sum_counts,
)

__all__ = [  # the task names are re-exported: stages and plugins import them from here
    "Quarantine",
    "Stage",
    "StageConfig",
    "StageContext",
    "StageResult",
    "Task",
    "TaskResult",
    "ValueCounts",
    "brief",
    "check_columns",
    "cli_flag",
    "describe_validation",
    "load_record",
    "map_shards",
    "output_schema",
    "recipe_wording",
    "record_path",
    "recordable",
    "require_column",
    "save_record",
    "sum_counts",
]


C = TypeVar("C", bound="StageConfig")
P = TypeVar("P")
R = TypeVar("R")


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


@dataclass
class StageResult:
    shards: list[ShardEntry]
    schema: pa.Schema
    report: dict[str, Any]
    encryption: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None  # facts later stages inherit (e.g. the tokenizer)


class StageContext(Generic[C]):
    """Everything a stage may touch: its config, input, output dir, and the executor."""

    def __init__(
        self,
        config: C,
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
        self.config: C = config
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

    def require_input(self) -> Manifest:
        """The input dataset's manifest, for stages that read one (`reads_dataset`)."""
        if self.input is None or self.input_root is None:
            name = f"stage {self.description!r}" if self.description else "this stage"
            raise DataprepError(f"{name} reads a dataset, but was given no input dataset")
        return self.input

    def task(
        self,
        phase: str,
        index: int,
        inputs: Sequence[str],
        payload: P = None,  # type: ignore[assignment]
        *,
        extra: Any = None,
    ) -> Task[C, P]:
        """A task of `phase`; `payload` is the phase's frozen plan piece (`extra` was its name
        before issue 20, kept for plugins)."""
        if payload is None:
            payload = extra
        return Task(
            phase=phase,
            index=index,
            inputs=tuple(inputs),
            out_dir=str(self.out),
            work_dir=str(self.work),
            config=self.config,
            write_options=self.write_options,
            payload=payload,
            read_options=self.read_options,
        )

    def input_shard_paths(self) -> list[str]:
        shards = self.require_input().shards
        assert self.input_root is not None  # require_input checked it
        return [str(self.input_root / s.path) for s in shards]

    def shard_tasks(self, phase: str, payload: Callable[[ShardEntry], P]) -> list[Task[C, P]]:
        """One task of `phase` per input shard, its payload built from the shard's manifest
        entry: a 1:1 stage passes on what the output shard keeps (partition tag, checksum)."""
        pairs = zip(self.require_input().shards, self.input_shard_paths(), strict=True)
        return [self.task(phase, i, [p], payload(s)) for i, (s, p) in enumerate(pairs)]

    def map(
        self, fn: Callable[[Task[C, P]], TaskResult[R]], tasks: Sequence[Task[C, P]]
    ) -> list[TaskResult[R]]:
        """Run tasks, skipping those a previous (killed) run already committed.

        A record that does not decode (truncated, edited, another task's) or whose shards are
        gone is reported in one line and its task reruns; `.pkl` records of older versions are
        never read.
        """
        (self.work / "tasks").mkdir()
        results: list[TaskResult[R] | None] = [None] * len(tasks)
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
                        f"warning: task record {record} cannot be trusted ({exc}); the task reruns",
                        file=sys.stderr,
                    )
            todo.append(i)
        phase = tasks[0].phase if tasks else ""
        label = f"{self.description} {phase}".strip()
        self.reporter.start(label, len(tasks))
        for _ in range(len(tasks) - len(todo)):
            self.reporter.task_done()

        def commit(j: int, result: TaskResult[R]) -> None:
            task = tasks[todo[j]]
            save_record(record_path(self.work, task), task, result)
            results[todo[j]] = result
            self.reporter.task_done()

        try:
            self.executor.run(fn, [tasks[i] for i in todo], on_done=commit)
        finally:
            self.reporter.stop()
        return [r for r in results if r is not None]


class Stage(Generic[C]):
    """A named transformation; subclasses set `name` and implement `run`.

    `class DedupStage(Stage[DedupConfig])` types `ctx.config` and the hooks' `config` as
    `DedupConfig` and sets `Config = DedupConfig` (the model that validates CLI flags and
    recipe params); a plain `Stage` subclass sets `Config` itself, as plugins did before."""

    name: ClassVar[str]
    Config: ClassVar[type[StageConfig]]
    help: ClassVar[str] = ""
    reads_dataset: ClassVar[bool] = True  # False for stages that read raw files (shard)
    # An encrypted input's output is encrypted the same way unless the stage sets this (decrypt).
    writes_plaintext: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in cls.__dict__.get("__orig_bases__", ()):
            args = get_args(base)
            if get_origin(base) is not Stage or not args or not isinstance(args[0], type):
                continue
            given = cls.__dict__.get("Config")
            if given is not None and given is not args[0]:
                raise TypeError(
                    f"{cls.__name__}: Config {given.__name__} is not the "
                    f"{args[0].__name__} of Stage[{args[0].__name__}]"
                )
            cls.Config = args[0]

    def input_digest(self, config: C, inputs: Sequence[str]) -> str:
        """Only for stages with `reads_dataset = False`: a digest of their raw inputs."""
        raise NotImplementedError

    def run(self, ctx: StageContext[C]) -> StageResult:
        raise NotImplementedError

    def details(self, report: dict[str, Any]) -> list[str]:
        """What a run did beyond the summary table's counts, as one short line (dedup: a few),
        printed after the table for a stage command and for each stage of `run`. Made from the
        report alone, so a skipped (cached) run's stored report says the same."""
        return []

    def column_params(self, config: C) -> dict[str, list[str]]:
        """Param -> the input columns it names; checked against the input's schema before the
        stage runs, and by recipe validation against the schema each stage will see."""
        return {}

    def output_schema(
        self, config: C, schema: pa.Schema | None, inputs: Sequence[str] = ()
    ) -> pa.Schema | None:
        """The schema this stage writes, given its input's (raw `inputs` for a first stage);
        None when only a run can tell. Recipe validation follows it from stage to stage."""
        return schema if self.reads_dataset else None


def brief(counts: dict[str, Any], limit: int = 8) -> str:
    """`a 10, b 20, … (+3 more)`: a mapping short enough for one line of `details`."""
    shown = [f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in counts.items()]
    more = f", … (+{len(shown) - limit} more)" if len(shown) > limit else ""
    return ", ".join(shown[:limit]) + more


def map_shards(
    ctx: StageContext[C],
    fn: Callable[[Task[C, P]], TaskResult[Any]],
    phase: str = "map",
    payload: P = None,  # type: ignore[assignment]
    *,
    extra: Any = None,
    payload_of: Callable[[ShardEntry], P] | None = None,
) -> StageResult:
    """The common 1:1 case: one task per input shard, each writing `part-NNNNN.parquet`;
    every task gets the same `payload` (`extra` before issue 20), or `payload_of` its shard's
    manifest entry (its checksum, its partition tag)."""
    manifest = ctx.require_input()
    if payload_of is None:
        paths = ctx.input_shard_paths()
        tasks = [ctx.task(phase, i, [p], payload, extra=extra) for i, p in enumerate(paths)]
    else:
        tasks = ctx.shard_tasks(phase, payload_of)
    results = ctx.map(fn, tasks)
    counts = sum_counts(results)
    shards = [s for r in results for s in r.shards]
    schema = next((r.schema for r in results if r.schema is not None), None)
    counts.setdefault("rows_in", manifest.rows)
    counts.setdefault("rows_out", sum(s.rows for s in shards))
    return StageResult(shards, schema or manifest.schema, dict(counts))
