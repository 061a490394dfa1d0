"""filter: keep the rows where named rules hold (a `--where` expression, a preset, languages).

Every rule is a safe expression over columns (`dataprep.quality.expr`), checked against the
input schema before any task runs. A rule may read a signal the input lacks: filter computes
it for the rows at hand and does not write it, so `filter --preset gopher` works on raw
shards in one pass, while after `score` the stored columns are read and nothing is
recomputed (thresholds can change without rescoring). A preset or --languages reads a column
under a signal's name only when an earlier `score` wrote it (`score.check_reads`); --where
names columns explicitly and reads them as they are. A dropped row is charged to the first
rule it fails, in preset order, as datatrove does; `--mark-only` keeps every row and writes
that rule's name (null when kept) instead of dropping.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator, model_validator

from dataprep import arrow_np
from dataprep.dataset import ShardWriter
from dataprep.errors import DataprepError
from dataprep.layout import shard_name
from dataprep.progress import tick
from dataprep.quality import expr, presets, signals
from dataprep.stage import (
    Stage,
    StageConfig,
    StageContext,
    StageResult,
    Task,
    TaskResult,
    brief,
    recordable,
)
from dataprep.stages.score import add_signals, check_reads, require_text

Threshold = bool | int | float


class FilterConfig(StageConfig):
    where: str | None = Field(
        None,
        description='keep rows where this holds, e.g. "word_count >= 50 and '
        "language == 'en'\" (columns, numbers, 'strings', comparisons, and/or/not, in [...])",
    )
    preset: Literal["gopher", "c4", "fineweb"] | None = Field(
        None, description="a published rule set (docs/quality-signals.md lists its rules)"
    )
    rules: dict[str, Threshold | None] = Field(
        default_factory=dict,
        description="override a preset's thresholds by rule name: min_words=30,max_words=off "
        "(recipes: a mapping; off or null turns a rule off)",
    )
    languages: list[str] | None = Field(
        None, description="keep rows whose detected language is one of these (en, de, ...)"
    )
    mark_only: bool = Field(False, description="keep every row; name the failing rule instead")
    mark_column: str = Field("filter_reason", description="--mark-only: the column written")
    text_column: str = Field("text", description="text the missing signals are computed from")
    words: Literal["whitespace", "spacy"] = Field(
        "whitespace",
        description="how missing word signals split words (as score --words; stored signal "
        "columns are read as they are)",
    )
    id_column: str = Field("id", description="column quoted in the report's examples")
    source_column: str = Field("source", description="column the report groups drops by")
    examples: int = Field(5, ge=0, le=100, description="dropped-row examples per rule")

    @field_validator("rules", mode="before")
    @classmethod
    def _parse_rules(cls, value: Any) -> Any:
        """`min_words=30,max_words=off` (the command line) as well as a mapping (recipes)."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("{"):
            return json.loads(text)
        rules: dict[str, Threshold | None] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, sep, raw = item.partition("=")
            if not sep:
                raise ValueError(f"{item!r} is not NAME=VALUE (e.g. min_words=30)")
            rules[name.strip()] = _threshold(raw.strip())
        return rules

    @model_validator(mode="after")
    def _check(self) -> FilterConfig:
        if self.where is None and self.preset is None and not self.languages:
            raise ValueError("give --where, --preset or --languages (or several)")
        if self.rules and self.preset is None:
            raise ValueError("rules override a preset's thresholds; add --preset")
        return self


def _threshold(raw: str) -> Threshold | None:
    lowered = raw.lower()
    if lowered in ("off", "null", "none"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a number, true/false or off") from None


def named_rules(config: FilterConfig) -> list[tuple[str, str, str]]:
    """(rule name, expression text, option that set it), in the order rows are charged."""
    out = []
    if config.preset is not None:
        for rule in presets.rules(config.preset, config.rules, "--rules"):
            out.append((rule.name, rule.text, f"--preset {config.preset} rule {rule.name}:"))
    if config.languages:
        from dataprep.quality.language import normalise_language

        codes = sorted({normalise_language(code) for code in config.languages})
        out.append(("languages", f"language in {codes!r}", "--languages"))
    if config.where is not None:
        out.append(("where", config.where, "--where"))
    return out


def plan(config: FilterConfig, schema: pa.Schema) -> tuple[list[str], list[expr.Where], list[str]]:
    """Rule names, their checked expressions, and the signals to compute (missing columns)."""
    types = {n: s.type for n, s in signals.SIGNALS.items()}
    types.update({f.name: f.type for f in schema})
    names, checked = [], []
    for name, text, option in named_rules(config):
        names.append(name)
        checked.append(expr.parse(text, types, option))
    needed = [c for w in checked for c in w.columns if c not in schema.names]
    missing = signals.names_for(needed)
    if missing:
        require_text(schema, config.text_column)
    if config.mark_only and config.mark_column in schema.names:
        raise DataprepError(
            f"--mark-column {config.mark_column!r} is already a column of the input; "
            "choose another name"
        )
    return names, checked, missing


def check_signals(
    config: FilterConfig, schema: pa.Schema, history: list[tuple[str, dict[str, Any]]]
) -> None:
    """--preset and --languages read signals by name: not a user's column of that name."""
    names, checked, _ = plan(config, schema)
    reads: dict[str, str] = {}
    for name, where in zip(names, checked, strict=True):
        option = "--languages" if name == "languages" else f"--preset {config.preset}"
        for column in where.columns if name != "where" else ():
            reads.setdefault(column, option)
    check_reads(reads, schema, history)


def check_languages(config: FilterConfig) -> None:
    """A language code the model never reports would silently keep nothing: one sentence."""
    if not config.languages:
        return
    from dataprep.quality.language import normalise_language, supported_languages

    known = set(supported_languages())
    for code in config.languages:
        if normalise_language(code) not in known:
            raise DataprepError(
                f"--languages {code!r} is not a language the model knows "
                f"(ISO 639-1 codes such as en, de, fr; {len(known)} in all)"
            )


class FilterStage(Stage[FilterConfig]):
    name = "filter"
    Config = FilterConfig
    help = "Keep rows where an expression or a preset's rules hold (Gopher, C4, FineWeb)."

    def details(self, report: dict[str, Any]) -> list[str]:
        rule = report.get("failing_by_rule" if report.get("mark_only") else "dropped_by_rule")
        what = "marked" if report.get("mark_only") else "dropped"
        busy = {k: v for k, v in (rule or {}).items() if v}
        by = f" (by rule: {brief(busy)})" if busy else ""
        return [
            f"kept {report.get('rows_kept', 0):,}, {what} {report.get('rows_dropped', 0):,}{by}"
        ]

    def column_params(self, config: FilterConfig) -> dict[str, list[str]]:
        """The report's columns when the user named them (a typo would silently lose the
        per-source counts and example ids); the defaults `source` and `id` may be absent."""
        named = ("source_column", "id_column")
        return {k: [getattr(config, k)] for k in named if k in config.model_fields_set}

    def output_schema(
        self, config: FilterConfig, schema: pa.Schema | None, inputs: Any = ()
    ) -> pa.Schema | None:
        if schema is None:
            return None
        plan(config, schema)  # recipe validation reports a bad column before anything runs
        check_languages(config)
        return _out_schema(config, schema)

    def check_plan(
        self, config: FilterConfig, schema: pa.Schema, history: list[tuple[str, dict[str, Any]]]
    ) -> None:
        """Recipe validation: a user column read as a signal stops it before anything runs."""
        check_signals(config, schema, history)

    def run(self, ctx: StageContext[FilterConfig]) -> StageResult:
        config, source = ctx.config, ctx.require_input()
        names, checked, missing = plan(config, source.schema)
        check_languages(config)
        check_signals(config, source.schema, [(e.stage, e.config) for e in source.lineage])
        paths = ctx.input_shard_paths()
        if paths and source.encryption is not None:
            ctx.read_options.open(paths[0])  # a wrong key: one sentence here, before any task
        tasks = ctx.shard_tasks("filter", lambda s: s.partition)  # the output keeps the tag
        results = ctx.map(filter_task, tasks)
        shards = [s for r in results for s in r.shards]
        report = _report(config, names, checked, missing, results)
        report["rows_in"], report["rows_out"] = source.rows, sum(s.rows for s in shards)
        return StageResult(shards, _out_schema(config, source.schema), report)


def _out_schema(config: FilterConfig, schema: pa.Schema) -> pa.Schema:
    if config.mark_only:
        return schema.append(pa.field(config.mark_column, pa.string()))
    return schema


def filter_task(task: Task[FilterConfig, int | None]) -> TaskResult[FilterStats]:
    """Filter (or mark) one shard; count drops per rule and per source, keep a few examples."""
    config = task.config
    path = task.inputs[0]
    schema = task.read_options.schema(path)
    names, checked, missing = plan(config, schema)
    out_schema = _out_schema(config, schema)
    hidden = task.read_options.encryption is not None  # no values from an encrypted shard
    stats = _Stats(names, config.examples)
    offset = 0
    target = task.out / shard_name(task.index, task.payload)
    with ShardWriter(target, out_schema, task.write_options, task.payload) as writer:
        for table in task.read_options.row_groups(path):
            work = table
            if missing:
                work = add_signals(table, config.text_column, missing, config.words)
            passed = expr.evaluate(work, checked)
            failed = _first_failure(passed, table.num_rows)
            stats.add(table, failed, passed, offset, config, path, hidden)
            offset += table.num_rows
            if config.mark_only:
                writer.write(table.append_column(config.mark_column, _reasons(names, failed)))
            else:
                writer.write(table.filter(arrow_np.mask(failed < 0)))
            tick(rows=table.num_rows)
    return TaskResult(
        [writer.entry], {"rows": offset, "kept": stats.kept}, out_schema, stats.dump()
    )


def _reasons(names: list[str], failed: np.ndarray) -> pa.StringArray:
    """Each row's first failing rule by name, null where it passes (`pa.array` of the names,
    built from buffers: pyarrow would import pandas to read Python values)."""
    validity = pa.py_buffer(np.packbits(failed >= 0, bitorder="little"))
    index = pa.py_buffer(np.maximum(failed, 0).astype(np.int64))
    rows = pa.Array.from_buffers(pa.int64(), len(failed), [validity, index])
    return pc.take(arrow_np.strings(names), rows)


def _first_failure(passed: list[np.ndarray], rows: int) -> np.ndarray:
    """Index of the first rule each row fails, -1 where it passes them all."""
    if not passed:
        return np.full(rows, -1, dtype=np.int64)
    fails = ~np.vstack(passed)
    first = np.argmax(fails, axis=0)
    return np.where(fails.any(axis=0), first, -1)


@recordable
@dataclass(frozen=True)
class FilterStats:
    """A task's rows dropped by each rule (the first it fails), rows failing each rule on
    its own, drops per source (rows, dropped, and per rule) and example ids per rule."""

    dropped: dict[str, int]
    failing: dict[str, int]
    by_source: dict[str, dict[str, int]]
    examples: dict[str, list[str]]


class _Stats:
    """Per-task drop counts by rule and by source, and the first few dropped rows per rule."""

    def __init__(self, names: list[str], examples: int):
        self.names, self.examples = names, examples
        self.kept = 0
        self.dropped = [0] * len(names)
        self.failing = [0] * len(names)
        self.by_source: dict[str, dict[str, int]] = {}
        self.samples: dict[str, list[str]] = {}

    def add(
        self,
        table: pa.Table,
        failed: np.ndarray,
        passed: list[np.ndarray],
        offset: int,
        config: FilterConfig,
        path: str,
        hidden: bool,
    ) -> None:
        self.kept += int((failed < 0).sum())
        for i, ok in enumerate(passed):
            self.failing[i] += int((~ok).sum())
        counts = np.bincount(failed[failed >= 0], minlength=len(self.names))
        for i, n in enumerate(counts.tolist()):
            self.dropped[i] += n
        if config.source_column in table.column_names and not hidden:
            sources = table.column(config.source_column).to_pylist()
            for source, rule in zip(sources, failed.tolist(), strict=True):
                entry = self.by_source.setdefault(str(source), {"rows": 0, "dropped": 0})
                entry["rows"] += 1
                if rule >= 0:
                    entry["dropped"] += 1
                    entry[self.names[rule]] = entry.get(self.names[rule], 0) + 1
        ids = table.column(config.id_column) if config.id_column in table.column_names else None
        name = path.rsplit("/", 1)[-1]
        for i, rule in enumerate(self.names):
            have = self.samples.setdefault(rule, [])
            if len(have) >= self.examples:
                continue
            rows = np.nonzero(failed == i)[0][: self.examples - len(have)]
            for row in rows.tolist():
                if ids is not None and not hidden:
                    have.append(str(ids[row].as_py()))
                else:
                    have.append(f"{name}#{offset + row}")

    def dump(self) -> FilterStats:
        return FilterStats(
            dropped=dict(zip(self.names, self.dropped, strict=True)),
            failing=dict(zip(self.names, self.failing, strict=True)),
            by_source=self.by_source,
            examples=self.samples,
        )


def _report(
    config: FilterConfig,
    names: list[str],
    checked: list[expr.Where],
    missing: list[str],
    results: list[TaskResult[FilterStats]],
) -> dict[str, Any]:
    """Totals over the tasks: drops by the first failing rule, failures of each rule on its
    own, drops per source, and example rows per rule."""
    dropped = dict.fromkeys(names, 0)
    failing = dict.fromkeys(names, 0)
    by_source: dict[str, dict[str, int]] = {}
    examples: dict[str, list[str]] = {n: [] for n in names}
    rows = kept = 0
    for result in results:
        stats = result.payload
        rows += result.counts.get("rows", 0)
        kept += result.counts.get("kept", 0)
        for n in names:
            dropped[n] += stats.dropped.get(n, 0)
            failing[n] += stats.failing.get(n, 0)
            room = config.examples - len(examples[n])
            examples[n].extend(stats.examples.get(n, [])[: max(room, 0)])
        for source, counts in stats.by_source.items():
            total = by_source.setdefault(source, {})
            for key, value in counts.items():
                total[key] = total.get(key, 0) + value
    return {
        "rows_kept": kept,
        "rows_dropped": rows - kept,
        "mark_only": config.mark_only,
        "rules": [{"name": n, "keep_if": w.text} for n, w in zip(names, checked, strict=True)],
        "signals_computed": missing,
        "dropped_by_rule": dropped,
        "failing_by_rule": failing,
        "dropped_by_source": by_source,
        "examples": {n: ids for n, ids in examples.items() if ids},
    }
