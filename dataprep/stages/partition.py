"""partition: route every row to one of N partitions by a consistent hash of a key column.

One task per input shard: hash the key column (xxh64, vectorised), route the hashes (jump by
default; rendezvous or a ring for weighted partitions), stable-sort the shard by partition and
write one file per (partition, input shard) that received rows, tagged with its partition in
the manifest. Rows keep their input order within a partition. Consistent hashing means going
from N to N+1 partitions moves only ~1/(N+1) of the keys, all of them into the new partition;
`previous` measures that on real data: one more map over an earlier partition output re-routes
its key column and counts the rows whose partition tag would change.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from dataprep import dataset, hashing
from dataprep.dataset import ReadOptions, ShardWriter
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
    brief,
    require_column,
    sum_counts,
)
from dataprep.stages.key_values import canonical, require_groupable
from dataprep.storage import StoragePath

Scheme = Literal["jump", "rendezvous", "ring"]


class PartitionConfig(StageConfig):
    key: str = Field(description="column whose value decides the partition")
    partitions: int = Field(gt=0, le=1 << 20, description="number of partitions")
    scheme: Scheme = Field("jump", description="jump (default), rendezvous or ring")
    weights: list[float] | None = Field(None, description="relative partition weights")
    names: list[str] | None = Field(None, description="rendezvous/ring: partition names")
    vnodes: int = Field(256, gt=0, description="ring: virtual nodes per unit of weight")
    seed: int = Field(0, ge=0, description="xxh64 seed of the key hash")
    previous: str | None = Field(None, description="an earlier partition output to compare")

    @model_validator(mode="after")
    def _check_weights(self) -> PartitionConfig:
        for option, values in (("weights", self.weights), ("names", self.names)):
            if values is None:
                continue
            if self.scheme == "jump":
                raise ValueError(f"{option} need scheme rendezvous or ring (jump has neither)")
            if len(values) != self.partitions:
                raise ValueError(
                    f"{option} has {len(values)} values but partitions is {self.partitions}"
                )
        if self.weights is not None and any(w <= 0 for w in self.weights):
            raise ValueError("weights must all be > 0")
        if self.names is not None and len(set(self.names)) != len(self.names):
            raise ValueError("names must be distinct")
        return self


def route_table(table: pa.Table, config: PartitionConfig) -> np.ndarray:
    """Partition number of every row (rows with a null key are the caller's business); equal
    keys share a partition, so -0.0 is hashed as 0.0."""
    hashes = hashing.xxh64_array(canonical(table.column(config.key)), seed=config.seed)
    return hashing.route(
        hashes, config.partitions, config.scheme, config.weights, config.vnodes, config.names
    )


@dataclass(frozen=True)
class RouteJob:
    """A `route` task: its shard's manifest checksum. The whole shard is read, so the file
    is checked first: a shard swapped for another with as many rows is refused, not routed."""

    checksum: str


@dataclass(frozen=True)
class MovedJob:
    """A `moved` task: the partition its previous shard was in, among the previous ones."""

    old_name: str
    old_names: tuple[str, ...]


class PartitionStage(Stage[PartitionConfig]):
    """Rows with a null key go to OUT/.quarantine.jsonl. .report.json records partition sizes
    and balance (max/mean), and with --previous the fraction of rows that moved."""

    name = "partition"
    help = "Route rows to N partitions by a consistent hash of a key column."

    def details(self, report: dict[str, Any]) -> list[str]:
        sizes = report.get("partition_rows") or []
        names = report.get("names") or list(range(len(sizes)))
        spread = (report.get("balance") or {}).get("max_over_mean")
        line = f"rows per partition: {brief(dict(zip(map(str, names), sizes, strict=False)))}"
        if spread is not None:
            line += f" (largest/mean {spread:.3f})"
        moved = (report.get("previous") or {}).get("moved_fraction")
        return [line + (f"; {moved:.1%} of rows moved" if moved is not None else "")]

    def column_params(self, config: PartitionConfig) -> dict[str, list[str]]:
        return {"key": [config.key]}

    def run(self, ctx: StageContext[PartitionConfig]) -> StageResult:
        config, source = ctx.config, ctx.require_input()
        require_column(source.schema, config.key, "--key")
        require_groupable(source.schema, config.key, "--key")
        previous = _previous_config(config) if config.previous else None
        paths, sums = ctx.input_shard_paths(), [s.xxh3_128 for s in source.shards]
        tasks = [ctx.task("route", i, [p], RouteJob(sums[i])) for i, p in enumerate(paths)]
        results = ctx.map(partition_task, tasks)
        shards = sorted(
            (s for r in results for s in r.shards), key=lambda s: (s.partition or 0, s.path)
        )
        sizes = [0] * config.partitions
        for s in shards:
            sizes[s.partition or 0] += s.rows
        routed = sum(sizes)
        mean = routed / config.partitions
        report: dict[str, Any] = {
            "rows_in": source.rows,
            "key": config.key,
            "scheme": config.scheme,
            "partitions": config.partitions,
            "partition_rows": sizes,
            "names": config.names,
            "balance": {
                "max_over_mean": round(max(sizes) / mean, 6) if mean else None,
                "min_over_mean": round(min(sizes) / mean, 6) if mean else None,
            },
        }
        if previous is not None:
            report["previous"] = _moved(ctx, config, previous)
        return StageResult(shards, source.schema, report)


def _ideal_moved(previous: PartitionConfig, config: PartitionConfig) -> float | None:
    """What a perfect consistent hash moves when only partitions are added: the new share."""
    if config.partitions <= previous.partitions:
        return None
    w = config.weights or [1.0] * config.partitions
    return round(sum(w[previous.partitions :]) / sum(w), 6)


def _previous_config(config: PartitionConfig) -> PartitionConfig:
    """The config an earlier partition run used, read from its manifest's lineage."""
    assert config.previous is not None
    manifest = dataset.read_manifest(config.previous)
    last = manifest.lineage[-1] if manifest.lineage else {}
    if last.get("stage") != "partition" or any(s.partition is None for s in manifest.shards):
        raise DataprepError(
            f"--previous {config.previous} was not written by 'dataprep partition'; "
            "point it at an earlier partition output"
        )
    old = PartitionConfig.parse({**last["config"], "previous": None}, "previous config")
    if old.key != config.key:
        raise DataprepError(
            f"--previous {config.previous} was partitioned by {old.key!r}, not {config.key!r}; "
            "moved rows are only meaningful for the same key"
        )
    return old


def _moved(
    ctx: StageContext[PartitionConfig], config: PartitionConfig, previous: PartitionConfig
) -> dict[str, Any]:
    """Rows of the previous output whose partition differs under this config (a map over its
    shards reading only the key column), and where they go."""
    assert config.previous is not None
    root = StoragePath(config.previous)
    old = dataset.read_manifest(root)
    names = tuple(hashing.node_names(previous.partitions, previous.names))
    reading = _previous_read_options(ctx, old)
    tasks = [
        replace(
            ctx.task("moved", i, [str(root / s.path)], MovedJob(names[s.partition or 0], names)),
            read_options=reading,
        )
        for i, s in enumerate(old.shards)
    ]
    counts = sum_counts(ctx.map(moved_task, tasks))
    rows, moved = counts.get("rows", 0), counts.get("moved", 0)
    return {
        "path": config.previous,
        "partitions": previous.partitions,
        "scheme": previous.scheme,
        "rows": rows,
        "rows_moved": moved,
        "moved_fraction": round(moved / rows, 6) if rows else 0.0,
        "moved_between_old_partitions": counts.get("between_old", 0),
        "ideal_fraction": _ideal_moved(previous, config),
    }


def _previous_read_options(ctx: StageContext[Any], old: dataset.Manifest) -> ReadOptions:
    """The previous output may be encrypted too: same key file as the input, else the output's."""
    if old.encryption is None:
        return ReadOptions()
    key_file = ctx.read_options.key_file
    if key_file is None and ctx.write_options.encryption is not None:
        key_file = ctx.write_options.encryption.key_file
    return ReadOptions(key_file, old.encryption)


def moved_task(task: Task[PartitionConfig, MovedJob]) -> TaskResult[None]:
    """Re-route one previous shard's keys; count rows whose partition would change.

    Partitions are compared by identity (name, or number when unnamed), so removing a named
    partition from the middle of the list is not counted as renumbering the others.
    """
    config, old_name, old_names = task.config, task.payload.old_name, task.payload.old_names
    keys = task.read_options.read_table(task.inputs[0], [config.key]).column(0).drop_null()
    parts = route_table(pa.table({config.key: keys}), config)
    current = hashing.node_names(config.partitions, config.names)
    new_names = np.array(current)[parts]
    changed = new_names != old_name
    # a move between two partitions that exist before and after: consistent hashing has none
    between = changed & np.isin(new_names, old_names) if old_name in current else changed & False
    tick(rows=len(keys))
    counts = {"rows": len(keys), "moved": int(changed.sum()), "between_old": int(between.sum())}
    return TaskResult(counts=counts)


def partition_task(task: Task[PartitionConfig, RouteJob]) -> TaskResult[None]:
    """Route one input shard and write one file per partition it feeds."""
    config = task.config
    source = StoragePath(task.inputs[0])
    table = task.read_options.read_table(source, checksum=task.payload.checksum)
    keys = table.column(config.key)
    quarantine = task.quarantine()
    if keys.null_count:
        nulls = pc.is_null(keys)
        for line in np.nonzero(nulls.to_numpy(zero_copy_only=False))[0]:
            quarantine.add(source.name, int(line), f"null key in column {config.key!r}")
        table = table.filter(pc.invert(nulls))
    quarantine.close()
    parts = route_table(table, config)
    order = np.argsort(parts, kind="stable")
    table = table.take(pa.array(order))
    parts = parts[order]
    bounds = np.searchsorted(parts, np.arange(config.partitions + 1), side="left")
    shards = []
    for p in np.nonzero(np.diff(bounds))[0]:
        start, end = int(bounds[p]), int(bounds[p + 1])
        name = shard_name(task.index, int(p))
        with ShardWriter(
            task.out / name, table.schema, task.write_options, partition=int(p)
        ) as writer:
            writer.write(table.slice(start, end - start))
        shards.append(writer.entry)
    tick(rows=table.num_rows)
    counts = {"rows": table.num_rows, "quarantined": quarantine.count}
    return TaskResult(shards, counts, table.schema)
