"""score: add quality-signal columns to every row; nothing is dropped.

One task per shard, row group by row group: the signals of a whole row group are computed at
once by `dataprep.quality.signals` (Arrow string kernels and numpy over the pieces' document
numbers), appended as columns, and written out. A column an earlier `score` wrote (the
input's lineage says which) is replaced, so rescoring is idempotent; a user's own column
under a signal's name (a `language` label) stops the stage unless `--replace-columns` asks
to overwrite it. `filter` then keeps or drops rows by these columns, and changing thresholds
reruns only `filter` (the recipe cache keeps `score`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from dataprep.dataset import ShardWriter
from dataprep.errors import DataprepError
from dataprep.layout import shard_name
from dataprep.progress import tick
from dataprep.quality import presets, signals
from dataprep.stage import (
    Stage,
    StageConfig,
    StageContext,
    StageResult,
    Task,
    TaskResult,
    require_column,
    sum_counts,
)
from dataprep.stages.added_columns import History, check_added, written_before


class ScoreConfig(StageConfig):
    text_column: str = Field("text", description="column holding the document text")
    signals: list[str] | None = Field(
        None,
        description="signals to add: names (docs/quality-signals.md) or a preset's name "
        "(gopher, c4, fineweb) for the signals it reads; default: all",
    )

    words: Literal["whitespace", "spacy"] = Field(
        "whitespace",
        description="how word and n-gram signals split words: whitespace, or spacy (spaCy's "
        "English tokens, as datatrove's default word tokenizer; no spaCy needed)",
    )
    replace_columns: bool = Field(
        False,
        description="overwrite input columns named like a signal that no earlier score wrote "
        "(their values are lost); without it such a column stops the stage",
    )

    @field_validator("signals")
    @classmethod
    def _known(cls, value: list[str] | None) -> list[str] | None:
        for name in value or []:
            if name not in signals.SIGNALS and name not in presets.PRESETS:
                raise ValueError(
                    f"{name!r} is neither a signal nor a preset (signals: "
                    f"{', '.join(signals.SIGNALS)}; presets: {', '.join(presets.PRESETS)})"
                )
        return value

    def signal_names(self) -> list[str]:
        """The chosen signals in table order (presets expanded)."""
        if self.signals is None:
            return list(signals.SIGNALS)
        return signals.names_for(signals_of(self.signals))


def signals_of(chosen: list[str] | None) -> set[str]:
    """The columns a score config's `signals` (names or presets; None = all) adds."""
    if chosen is None:
        return set(signals.SIGNALS)
    names: set[str] = set()
    for name in chosen:
        names.update(presets.columns(name) if name in presets.PRESETS else [name])
    return names


def scored_before(history: History) -> set[str]:
    """Signal columns an earlier `score` wrote; `history`: (op, config) per earlier stage."""
    return written_before(history, "score", lambda config: signals_of(config.get("signals")))


def check_clash(config: ScoreConfig, schema: pa.Schema, history: History) -> None:
    """A user's column named like a signal is data no one asked to delete: one sentence
    naming it, unless `replace_columns` asks for it or an earlier score wrote it."""
    if not config.replace_columns:
        check_added(
            config.signal_names(),
            schema,
            scored_before(history),
            stage="score",
            named=("a signal", "signals"),
            leave_out=("leave it out of --signals", "leave them out of --signals"),
        )


def check_reads(
    reads: dict[str, str], schema: pa.Schema, history: Iterable[tuple[str, dict[str, Any]]]
) -> None:
    """`reads`: signal columns a stage reads by name -> the option that reads them. An input
    column of such a name that no earlier score wrote is the user's own data (their own
    `language` labels are not the detector's): reading it as the signal would be a silent
    forgery, so one sentence naming it and the ways out."""
    ours = scored_before(history)
    theirs = {c: o for c, o in reads.items() if c in schema.names and c in signals.SIGNALS}
    theirs = {c: o for c, o in theirs.items() if c not in ours}
    if not theirs:
        return
    listed = ", ".join(repr(c) for c in theirs)
    options = " and ".join(dict.fromkeys(theirs.values()))
    one = len(theirs) == 1
    raise DataprepError(
        f"{options} read{'' if ' and ' in options else 's'} the signal{'' if one else 's'} "
        f"{listed}, but the input's column{'' if one else 's'} of that name no earlier score "
        f"wrote (it is the input's own data): run score first (--replace-columns overwrites "
        f"{'it' if one else 'them'}), or filter on {'it' if one else 'them'} with --where"
    )


def scored_schema(schema: pa.Schema, names: list[str]) -> pa.Schema:
    """The input's columns (any old signal columns dropped) followed by the signals."""
    kept = [f for f in schema if f.name not in set(names)]
    return pa.schema(kept + [pa.field(n, signals.SIGNALS[n].type) for n in names])


def add_signals(
    table: pa.Table, text_column: str, names: list[str], words: str = "whitespace"
) -> pa.Table:
    """`table` with the named signal columns computed from `text_column` (replacing any),
    words split as `words` says (signals.WORDS)."""
    values = signals.compute(table.column(text_column), names, words)
    table = table.drop_columns([n for n in names if n in table.column_names])
    for name in names:
        table = table.append_column(pa.field(name, signals.SIGNALS[name].type), values[name])
    return table


def require_text(schema: pa.Schema, column: str) -> None:
    """The text column must exist and hold strings; one sentence otherwise."""
    require_column(schema, column, "--text-column")
    kind = schema.field(column).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise DataprepError(f"--text-column {column!r} holds {kind}, not text (strings)")


class ScoreStage(Stage[ScoreConfig]):
    name = "score"
    Config = ScoreConfig
    help = "Add quality-signal columns (lengths, ratios, repetition, language); drops nothing."

    def details(self, report: dict[str, Any]) -> list[str]:
        return [
            f"{len(report.get('signals') or []):,} signal columns added over "
            f"{report.get('text_mb', 0)} MB of text, {report.get('mb_per_s', 0)} MB/s"
        ]

    def column_params(self, config: ScoreConfig) -> dict[str, list[str]]:
        return {"text_column": [config.text_column]}

    def check_plan(
        self, config: ScoreConfig, schema: pa.Schema, history: list[tuple[str, dict[str, Any]]]
    ) -> None:
        """Recipe validation: a clashing column stops the recipe before anything runs."""
        check_clash(config, schema, history)

    def output_schema(
        self, config: ScoreConfig, schema: pa.Schema | None, inputs: Any = ()
    ) -> pa.Schema | None:
        return None if schema is None else scored_schema(schema, config.signal_names())

    def run(self, ctx: StageContext[ScoreConfig]) -> StageResult:
        config, source = ctx.config, ctx.require_input()
        require_column(source.schema, config.text_column, "--text-column")
        require_text(source.schema, config.text_column)
        check_clash(config, source.schema, [(e.stage, e.config) for e in source.lineage])
        paths = ctx.input_shard_paths()
        if paths and source.encryption is not None:
            ctx.read_options.open(paths[0])  # a wrong key: one sentence here, before any task
        t0 = time.perf_counter()
        tasks = ctx.shard_tasks("score", lambda s: s.partition)  # the output keeps the tag
        results = ctx.map(score_task, tasks)
        wall = time.perf_counter() - t0
        shards = [s for r in results for s in r.shards]
        report = dict(sum_counts(results))
        report["rows_in"], report["rows_out"] = source.rows, sum(s.rows for s in shards)
        report["signals"] = config.signal_names()
        report["text_mb"] = round(report.pop("text_bytes", 0) / 1e6, 3)
        report["seconds"] = round(wall, 3)
        report["mb_per_s"] = round(report["text_mb"] / wall, 2) if wall else 0.0
        task_seconds = report.pop("task_ms", 0) / 1000
        report["mb_per_s_per_task"] = (
            round(report["text_mb"] / task_seconds, 2) if task_seconds else 0.0
        )
        schema = next((r.schema for r in results if r.schema is not None), None)
        return StageResult(shards, schema or self.output_schema(config, source.schema), report)


def score_task(task: Task[ScoreConfig, int | None]) -> TaskResult[None]:
    """Score one shard, row group by row group."""
    config = task.config
    names = config.signal_names()
    path = task.inputs[0]
    schema = scored_schema(task.read_options.schema(path), names)
    t0 = time.perf_counter()
    rows = text_bytes = 0
    target = task.out / shard_name(task.index, task.payload)
    with ShardWriter(target, schema, task.write_options, task.payload) as w:
        for table in task.read_options.row_groups(path):
            text = table.column(config.text_column)
            text_bytes += int(pc.sum(pc.binary_length(text)).as_py() or 0)
            scored = add_signals(table, config.text_column, names, config.words)
            scored = scored.select(schema.names)
            w.write(scored.cast(schema))
            rows += table.num_rows
            tick(rows=table.num_rows)
    counts = {
        "rows": rows,
        "text_bytes": text_bytes,
        "task_ms": int((time.perf_counter() - t0) * 1000),
    }
    return TaskResult([w.entry], counts, schema)
