"""clean: repair and normalise a text column in one pass: mojibake (ftfy), Unicode form,
control characters, roff and HTML remnants, lines repeated across a source's documents,
whitespace; documents left empty are dropped.

One task per shard; the shard's table is cleaned as a whole, step after step, each step a
vectorised Arrow function (`dataprep.quality.clean`). The report says, per step, how many
documents and characters it changed, with a few short before/after excerpts (none for an
encrypted input: the report is plaintext).

Repeated lines are counted per shard (and per `source_column` value within it), not over the
whole dataset: no extra pass, no plan to ship between tasks, and a task's output depends on
its own shard only, so a killed run resumes to the same bytes. Boilerplate of a source shows
up in every shard that holds enough of its documents; a source spread thinly over many shards
(fewer than `repeated_min_docs` documents in each) is left alone: `partition --key source`
first gathers it. A shard `partition` tagged keeps its tag and its `pNNNNN-` name.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from dataprep.dataset import ShardWriter
from dataprep.errors import DataprepError
from dataprep.layout import shard_name
from dataprep.progress import tick
from dataprep.quality import clean
from dataprep.stage import (
    Stage,
    StageConfig,
    StageContext,
    StageResult,
    Task,
    TaskResult,
    brief,
    recordable,
    require_column,
)

STEPS = (
    "fix_unicode",
    "normalize",
    "strip_control",
    "roff",
    "html",
    "drop_lines",
    "repeated_lines",
    "collapse_whitespace",
)


class CleanConfig(StageConfig):
    text_column: str = Field("text", description="the column cleaned")
    source_column: str | None = Field(
        None, description="repeated lines are counted per value of this column (else per shard)"
    )
    fix_unicode: bool = Field(True, description="repair mojibake with ftfy.fix_encoding")
    normalize: Literal["NFC", "NFKC", "none"] = Field("NFC", description="Unicode form")
    strip_control: bool = Field(True, description="remove control characters but \\n and \\t")
    roff: bool = Field(True, description="man pages: drop roff control lines and escapes")
    html: bool = Field(True, description="drop HTML tags and tag-only lines, decode entities")
    drop_lines: str | None = Field(
        None,
        description="drop lines this RE2 pattern matches in full (boilerplate no rule above "
        "knows, e.g. '(?i)share on \\w+|we use cookies.*'; | between several)",
    )
    repeated_lines: bool = Field(
        False, description="drop lines held by many documents of the same source"
    )
    repeated_min_docs: int = Field(10, ge=2, description="a repeated line is in >= this many")
    repeated_fraction: float = Field(
        0.3, gt=0, le=1, description="... and >= this fraction of its source's documents"
    )
    repeated_min_chars: int = Field(8, ge=1, description="shorter lines are never repeated")
    collapse_whitespace: bool = Field(True, description="trailing blanks, space runs, blank runs")
    drop_empty: bool = Field(True, description="drop documents that end up empty")
    examples: int = Field(3, ge=0, le=20, description="before/after excerpts per step")

    @field_validator("drop_lines")
    @classmethod
    def _re2(cls, value: str | None) -> str | None:
        if value is not None:
            clean.check_pattern(value)
        return value


def text_and_source_columns(config: Any) -> dict[str, list[str]]:
    """`column_params` of a stage that reads `text_column` and an optional `source_column`."""
    named = {"text_column": [config.text_column]}
    if config.source_column:
        named["source_column"] = [config.source_column]
    return named


def require_text(schema: pa.Schema, name: str) -> None:
    """The text column exists and holds strings (one sentence before any task, not a cast
    error deep in one)."""
    require_column(schema, name, "--text-column")
    kind = schema.field(name).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise DataprepError(f"--text-column {name!r} holds {kind}, not text")


def source_values(table: pa.Table, column: str) -> list[str]:
    values = table.column(column).combine_chunks().cast(pa.string())
    return [("(null)" if v is None else v) for v in values.to_pylist()]


@recordable
@dataclass(frozen=True)
class CleanStats:
    """A task's seconds per step and its before/after excerpts per step."""

    seconds: dict[str, float]
    examples: dict[str, list[list[str]]]


class CleanStage(Stage[CleanConfig]):
    name = "clean"
    Config = CleanConfig
    help = "Repair and normalise text: mojibake, Unicode form, controls, markup, whitespace."

    def details(self, report: dict[str, Any]) -> list[str]:
        steps = (report.get("steps") or {}).items()
        changed = {k: v["documents"] for k, v in steps if v.get("documents")}
        empty = report.get("dropped_empty", 0)
        tail = f"; {empty:,} left empty and dropped" if empty else ""
        return [f"documents changed per step: {brief(changed) or 'none'}{tail}"]

    def column_params(self, config: CleanConfig) -> dict[str, list[str]]:
        return text_and_source_columns(config)

    def run(self, ctx: StageContext[CleanConfig]) -> StageResult:
        config, source = ctx.config, ctx.require_input()
        require_text(source.schema, config.text_column)
        tasks = ctx.shard_tasks("clean", lambda s: s.partition)  # the output keeps the tag
        t0 = time.perf_counter()
        results = ctx.map(clean_task, tasks)
        wall = time.perf_counter() - t0
        shards = [s for r in results for s in r.shards]
        report = summarise(results, config, wall)
        report["rows_in"] = source.rows
        return StageResult(shards, source.schema, report)


def steps(config: CleanConfig, groups: pa.Array) -> list[tuple[str, clean.Step]]:
    chosen: list[tuple[str, clean.Step]] = []
    if config.fix_unicode:
        chosen.append(("fix_unicode", clean.fix_mojibake))
    if config.normalize != "none":
        chosen.append(("normalize", clean.normalize(config.normalize)))
    if config.strip_control:
        chosen.append(("strip_control", clean.strip_control))
    if config.roff:
        chosen.append(("roff", clean.strip_roff))
    if config.html:
        chosen.append(("html", clean.strip_html))
    if config.drop_lines is not None:
        chosen.append(("drop_lines", clean.drop_matching_lines(config.drop_lines)))
    if config.repeated_lines:

        def repeated(texts: pa.Array) -> pa.Array:
            wide = texts.cast(pa.large_string())  # one type for line keys, string or large
            counts = clean.count_lines(wide, wide_groups, config.repeated_min_chars)
            keys = clean.repeated_keys(counts, config.repeated_min_docs, config.repeated_fraction)
            return clean.drop_lines(wide, wide_groups, keys).cast(texts.type)

        wide_groups = groups.cast(pa.large_string())

        chosen.append(("repeated_lines", repeated))
    if config.collapse_whitespace:
        chosen.append(("collapse_whitespace", clean.collapse_whitespace))
    return chosen


def clean_text(
    texts: pa.Array, config: CleanConfig, groups: pa.Array, examples: int
) -> tuple[pa.Array, dict[str, int], dict[str, Any]]:
    """Run the chosen steps; per step the documents and characters it changed, its seconds,
    and up to `examples` short before/after excerpts."""
    counts: dict[str, int] = {}
    extra: dict[str, Any] = {"seconds": {}, "examples": {}}
    for name, step in steps(config, groups):
        t0 = time.perf_counter()
        after = step(texts)
        extra["seconds"][name] = time.perf_counter() - t0
        changed = pc.fill_null(pc.not_equal(texts, after), False)
        counts[f"{name}.docs"] = int(pc.sum(changed).as_py() or 0)
        counts[f"{name}.chars"] = clean.chars(texts) - clean.chars(after)
        if examples and counts[f"{name}.docs"]:
            rows = pc.indices_nonzero(changed)[:examples]
            before_s, after_s = texts.take(rows).to_pylist(), after.take(rows).to_pylist()
            extra["examples"][name] = [
                list(clean.snippet(b, a)) for b, a in zip(before_s, after_s, strict=True)
            ]
        texts = after
    return texts, counts, extra


def clean_task(task: Task[CleanConfig, int | None]) -> TaskResult[CleanStats]:
    """Clean one shard (the payload: its partition tag, kept with its pNNNNN- name)."""
    config: CleanConfig = task.config
    table = task.read_options.read_table(task.inputs[0])
    index = table.schema.get_field_index(config.text_column)
    texts = table.column(index).combine_chunks()
    groups = clean.group_column(table, config.source_column)
    examples = config.examples if task.write_options.encryption is None else 0
    texts, counts, extra = clean_text(texts, config, groups, examples)
    table = table.set_column(index, table.schema.field(index), texts)
    if config.drop_empty:
        keep = pc.fill_null(pc.greater(pc.utf8_length(texts), 0), True)
        counts["dropped_empty"] = table.num_rows - int(pc.sum(keep).as_py() or 0)
        table = table.filter(keep)
    target = task.out / shard_name(task.index, task.payload)
    with ShardWriter(target, table.schema, task.write_options, task.payload) as w:
        w.write(table)
    tick(rows=table.num_rows)
    return TaskResult([w.entry], counts, None, CleanStats(extra["seconds"], extra["examples"]))


def summarise(
    results: list[TaskResult[CleanStats]], config: CleanConfig, wall: float
) -> dict[str, Any]:
    totals: dict[str, int] = {}
    for result in results:
        for key, value in result.counts.items():
            totals[key] = totals.get(key, 0) + value
    report_steps: dict[str, Any] = {}
    for name in STEPS:
        if f"{name}.docs" not in totals:
            continue
        seconds = sum(r.payload.seconds.get(name, 0.0) for r in results)
        examples = [e for r in results for e in r.payload.examples.get(name, [])]
        report_steps[name] = {
            "documents": totals[f"{name}.docs"],
            "chars_removed": totals[f"{name}.chars"],
            "seconds": round(seconds, 3),
            "examples": [{"before": b, "after": a} for b, a in examples[: config.examples]],
        }
    return {
        "steps": report_steps,
        "dropped_empty": totals.get("dropped_empty", 0),
        "seconds_in_tasks": round(sum(sum(r.payload.seconds.values()) for r in results), 3),
        "wall_seconds": round(wall, 3),
    }
