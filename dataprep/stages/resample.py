"""resample: fix class imbalance by undersampling, oversampling or a per-row weight column.

Plan: one task per shard counts the label values. The driver turns the global counts into an
exact target per class (uniform, explicit ratios, or a cap on the largest/smallest ratio) and
splits every class's target into per-shard quotas with a seeded multivariate hypergeometric
draw, so the quotas add up exactly and the chosen rows are a uniform random subset of the
class wherever its rows live. Map: each shard keeps (undersample) or repeats (oversample) the
rows its quotas say, chosen by a generator seeded from (seed, shard, class): the same seed
always gives the same rows, on any executor. Rows with a null label go to quarantine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator, model_validator

from dataprep.dataset import ShardWriter
from dataprep.errors import DataprepError
from dataprep.layout import shard_name
from dataprep.progress import tick
from dataprep.stage import (
    Stage,
    StageConfig,
    StageContext,
    StageResult,
    Task,
    TaskResult,
    ValueCounts,
    brief,
    require_column,
)
from dataprep.stages import key_values

Strategy = Literal["undersample", "oversample", "weights"]


class ResampleConfig(StageConfig):
    label: str = Field(description="column holding the class label")
    strategy: Strategy = Field(description="undersample, oversample or weights")
    target: Literal["uniform"] | None = Field(None, description="equal classes (the default)")
    ratios: dict[str, float] | None = Field(None, description="class=ratio, e.g. pos=1,neg=3")
    max_ratio: float | None = Field(None, ge=1, description="cap largest/smallest class ratio")
    seed: int = Field(0, ge=0, description="seed for which rows are kept or repeated")
    weight_column: str = Field("sample_weight", description="weights: name of the new column")

    @field_validator("ratios", mode="before")
    @classmethod
    def _parse_ratios(cls, value: Any) -> Any:
        """Accept 'pos=1,neg=3' (CLI, --set) as well as a mapping (YAML)."""
        if not isinstance(value, str):
            return value
        ratios = {}
        for item in filter(None, (p.strip() for p in value.split(","))):
            name, sep, ratio = item.partition("=")
            if not sep or not name.strip():
                raise ValueError(f"write ratios as CLASS=NUMBER,...; got {item!r}")
            ratios[name.strip()] = ratio.strip()
        return ratios

    @model_validator(mode="after")
    def _one_target(self) -> ResampleConfig:
        given = [n for n in ("target", "ratios", "max_ratio") if getattr(self, n) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of target, ratios or max_ratio, not {' and '.join(given)}")
        if self.ratios is not None and (
            not self.ratios or any(r <= 0 or not math.isfinite(r) for r in self.ratios.values())
        ):
            raise ValueError("ratios must name classes with ratios > 0")
        return self


def plan_targets(counts: dict[str, int], config: ResampleConfig) -> dict[str, int]:
    """Rows per class after resampling (for weights: the class mass the weights aim at)."""
    shrink = config.strategy == "undersample"
    if config.ratios is not None:
        scale = (min if shrink else max)(counts[c] / config.ratios[c] for c in counts)
        raw = {c: scale * config.ratios[c] for c in counts}
        if shrink:
            return {c: min(counts[c], math.floor(raw[c] + 1e-9)) for c in counts}
        return {c: max(counts[c], math.ceil(raw[c] - 1e-9)) for c in counts}
    if config.max_ratio is not None:
        if shrink:
            cap = math.floor(config.max_ratio * min(counts.values()) + 1e-9)
            return {c: min(n, cap) for c, n in counts.items()}
        floor = math.ceil(max(counts.values()) / config.max_ratio - 1e-9)
        return {c: max(n, floor) for c, n in counts.items()}
    level = (min if shrink else max)(counts.values())
    return dict.fromkeys(counts, level)


@dataclass(frozen=True)
class Quota:
    """One shard's rows per class: to keep (undersample), or for oversample every row
    `repeats[c]` times plus `additional[c]` more copies."""

    keep: tuple[int, ...] = ()
    repeats: tuple[int, ...] = ()
    additional: tuple[int, ...] = ()


@dataclass(frozen=True)
class SampleJob:
    """A `sample` task: the label values in class order, the shard's quota (or, for
    weights, each class's weight), and the schema to write."""

    values: tuple[Any, ...]
    out_schema: pa.Schema
    quota: Quota = Quota()
    weights: tuple[float, ...] = ()
    checksum: str | None = None  # the shard's, from the manifest: it is read whole
    partition: int | None = None  # the shard's tag, kept (with its pNNNNN- name)


class ResampleStage(Stage[ResampleConfig]):
    """Class counts after the run equal the plan in .report.json exactly. Rows with a null
    label go to OUT/.quarantine.jsonl."""

    name = "resample"
    help = "Balance classes: undersample, oversample, or add a sample_weight column."

    def details(self, report: dict[str, Any]) -> list[str]:
        before, after = report.get("classes_in") or {}, report.get("classes_out") or {}
        if report.get("weights"):
            weights = {k: f"{w:.3g}" for k, w in report["weights"].items()}
            return [f"{report.get('label')} weights: {brief(weights)}"]
        moves = {k: f"{before.get(k, 0):,} -> {after.get(k, 0):,}" for k in before}
        return [f"{report.get('label')} ({report.get('strategy')}): {brief(moves)}"]

    def column_params(self, config: ResampleConfig) -> dict[str, list[str]]:
        return {"label": [config.label]}

    def output_schema(
        self, config: ResampleConfig, schema: pa.Schema | None, inputs: Sequence[str] = ()
    ) -> pa.Schema | None:
        if schema is None or config.strategy != "weights":
            return schema
        return schema.append(pa.field(config.weight_column, pa.float64()))

    def run(self, ctx: StageContext[ResampleConfig]) -> StageResult:
        config, source = ctx.config, ctx.require_input()
        schema = source.schema
        require_column(schema, config.label, "--label")
        key_values.require_groupable(schema, config.label, "--label")
        if config.strategy == "weights" and config.weight_column in schema.names:
            raise DataprepError(
                f"the input already has a {config.weight_column!r} column; "
                "pass --weight-column with another name"
            )
        paths = ctx.input_shard_paths()
        tasks = [ctx.task("count", i, [p]) for i, p in enumerate(paths)]
        per_shard = key_values.merged([r.payload.counts for r in ctx.map(count_task, tasks)])
        values = sorted({v for c in per_shard for v in c if v is not None}, key=str)
        names = [str(v) for v in values]
        if len(set(names)) != len(names):
            raise DataprepError(f"labels in {config.label!r} are not distinct as text: {names}")
        if not values:  # no rows at all, or every label null
            raise DataprepError(f"column {config.label!r} has no non-null labels to balance")
        _check_ratios(config, names)
        matrix = np.array([[c.get(v, 0) for v in values] for c in per_shard], dtype=np.int64)
        totals = dict(zip(names, matrix.sum(axis=0).tolist(), strict=True))
        report: dict[str, Any] = {
            "rows_in": source.rows,
            "label": config.label,
            "strategy": config.strategy,
            "classes_in": totals,
        }
        targets = plan_targets(totals, config)
        if config.strategy == "weights":
            mass = sum(targets.values())
            rows = sum(totals.values())
            weights = [targets[c] / totals[c] * rows / mass for c in names]
            report["weights"] = dict(zip(names, weights, strict=True))
            out_schema = schema.append(pa.field(config.weight_column, pa.float64()))
            jobs = [SampleJob(tuple(values), out_schema, weights=tuple(weights))] * len(paths)
            report["classes_out"] = totals
        else:
            quotas = _quotas(matrix, [targets[c] for c in names], config)
            out_schema = schema
            jobs = [SampleJob(tuple(values), out_schema, quota) for quota in quotas]
            report["classes_out"] = targets
            warning = _tiny_output(totals, targets, config)
            if warning:
                report["warnings"] = [warning]
        jobs = [
            replace(j, checksum=s.xxh3_128, partition=s.partition)
            for j, s in zip(jobs, source.shards, strict=True)
        ]
        tasks = [ctx.task("sample", i, [p], jobs[i]) for i, p in enumerate(paths)]
        results = ctx.map(sample_task, tasks)
        shards = [s for r in results for s in r.shards]
        return StageResult(shards, out_schema, report)


TINY_SHARE = 0.10  # undersampling that keeps less than this share of the rows is warned about
RARE_SHARE = 0.01  # ... as is one that equals every class to one holding less than this share


def _tiny_output(
    totals: dict[str, int], targets: dict[str, int], config: ResampleConfig
) -> str | None:
    """A warning when undersampling throws away nearly everything because one class is tiny
    (30 of 10,382 rows kept is rarely what the user meant); None otherwise."""
    if config.strategy != "undersample":
        return None
    rows_in, rows_out = sum(totals.values()), sum(targets.values())
    smallest = min(totals, key=lambda name: (totals[name], name))
    uniform = config.ratios is None and config.max_ratio is None
    if rows_out >= TINY_SHARE * rows_in and not (
        uniform and totals[smallest] < RARE_SHARE * rows_in
    ):
        return None
    return (
        f"undersampling keeps {rows_out:,} of {rows_in:,} rows ({rows_out / rows_in:.1%}) "
        f"because the smallest class {smallest!r} has {totals[smallest]:,} rows; --max-ratio "
        "N keeps up to N times as many of every other class, --strategy weights keeps all rows"
    )


def _check_ratios(config: ResampleConfig, names: list[str]) -> None:
    if config.ratios is None:
        return
    unknown = sorted(set(config.ratios) - set(names))
    if unknown:
        raise DataprepError(
            f"--ratios names {', '.join(map(repr, unknown))}, which column {config.label!r} "
            f"does not have (classes: {', '.join(names)})"
        )
    missing = sorted(set(names) - set(config.ratios))
    if missing:
        raise DataprepError(
            f"--ratios must give every class a ratio; missing {', '.join(map(repr, missing))}"
        )


def _quotas(matrix: np.ndarray, targets: list[int], config: ResampleConfig) -> list[Quota]:
    """Per shard: rows to keep of each class (undersample), or repeats and extra copies of
    each class (oversample).

    A multivariate hypergeometric draw over the shards' class counts gives per-shard quotas
    that sum exactly to the target and match a uniform choice over the whole class.
    """
    shards, classes = matrix.shape
    plan = np.zeros((shards, classes), dtype=np.int64)
    repeats = np.ones(classes, dtype=np.int64)
    for c in range(classes):
        rng = np.random.default_rng([config.seed, 0xC1A55, c])
        total = int(matrix[:, c].sum())
        want = targets[c]
        if config.strategy == "oversample":
            repeats[c], want = divmod(want, total)
        plan[:, c] = rng.multivariate_hypergeometric(matrix[:, c], want, method="marginals")
    if config.strategy == "undersample":
        return [Quota(keep=tuple(row.tolist())) for row in plan]
    return [Quota(repeats=tuple(repeats.tolist()), additional=tuple(row.tolist())) for row in plan]


def count_task(task: Task[ResampleConfig, None]) -> TaskResult[ValueCounts]:
    """Rows per label value in one shard (None for nulls)."""
    column = task.read_options.read_table(task.inputs[0], [task.config.label]).column(0)
    tick(rows=len(column))
    return TaskResult(payload=ValueCounts(key_values.counts(column)))


def sample_task(task: Task[ResampleConfig, SampleJob]) -> TaskResult[None]:
    """Keep, repeat or weight one shard's rows as its quotas say."""
    config, job = task.config, task.payload
    out_schema = job.out_schema
    source = task.inputs[0]
    table = task.read_options.read_table(source, checksum=job.checksum)
    labels = table.column(config.label)
    quarantine = task.quarantine()
    if labels.null_count:
        nulls = pc.is_null(labels).to_numpy(zero_copy_only=False)
        for line in np.nonzero(nulls)[0]:
            name = source.rsplit("/", 1)[-1]
            quarantine.add(name, int(line), f"null label in column {config.label!r}")
        table = table.filter(pa.array(~nulls))
        labels = table.column(config.label)
    quarantine.close()
    gid = key_values.group_ids(labels, list(job.values), f"label {config.label!r}")
    if config.strategy == "weights":
        weights = np.asarray(job.weights, dtype=np.float64)[gid]
        table = table.append_column(config.weight_column, pa.array(weights, pa.float64()))
    elif config.strategy == "undersample":  # a mask filters chunk by chunk; take would copy
        mask = np.zeros(table.num_rows, dtype=bool)
        mask[_selection(gid, job.quota, config, task.index)] = True
        table = table.filter(pa.array(mask))
    else:
        table = table.take(pa.array(_selection(gid, job.quota, config, task.index)))
    entry = _write(task, table.cast(out_schema))
    tick(rows=table.num_rows)
    counts = {"rows": table.num_rows, "quarantined": quarantine.count}
    return TaskResult([entry] if entry else [], counts, out_schema)


def _selection(gid: np.ndarray, quota: Quota, config: ResampleConfig, shard: int) -> np.ndarray:
    """Row indices to output, in input order; oversample copies go in at random places."""
    classes = int(gid.max()) + 1 if len(gid) else 0
    rows_of = [np.nonzero(gid == c)[0] for c in range(classes)]
    if config.strategy == "undersample":
        kept = []
        for c, rows in enumerate(rows_of):
            rng = np.random.default_rng([config.seed, shard, c])
            kept.append(rows[rng.choice(len(rows), quota.keep[c], replace=False)])
        return np.sort(np.concatenate(kept)) if kept else np.empty(0, np.int64)
    copies = []
    for c, rows in enumerate(rows_of):
        rng = np.random.default_rng([config.seed, shard, c])
        copies.append(np.repeat(rows, quota.repeats[c] - 1))
        copies.append(rows[np.sort(rng.choice(len(rows), quota.additional[c], replace=False))])
    copy_rows = np.concatenate(copies) if copies else np.empty(0, np.int64)
    rng = np.random.default_rng([config.seed, shard, 0x1A5E27])
    slots = rng.integers(0, len(gid) + 1, size=len(copy_rows))
    keys = np.concatenate([2 * np.arange(len(gid)) + 1, 2 * slots])
    order = np.argsort(keys, kind="stable")
    return np.concatenate([np.arange(len(gid)), copy_rows])[order]


def _write(task: Task, table: pa.Table) -> Any:
    if table.num_rows == 0:
        return None
    part = task.payload.partition
    path = task.out / shard_name(task.index, part)
    with ShardWriter(path, table.schema, task.write_options, partition=part) as writer:
        writer.write(table)
    return writer.entry
