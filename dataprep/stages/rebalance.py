"""rebalance: rewrite uneven shards into N equal ones (by rows or bytes), or balance groups.

Four plans, all decided in the driver from small per-shard summaries:
- rows (default): cut the global row order into N runs whose sizes differ by at most one,
  straight from the manifest's row counts; each output task reads only the Parquet row groups
  its run overlaps, one row group at a time, so order is preserved and memory stays small.
- bytes: a map pass writes each shard's per-row, per-column logical sizes to scratch; a row's
  estimated cost weights them by each column's compression ratio over the whole input, and
  the cuts go where the running cost crosses k/N of the total; then as for rows.
- shuffle and by COL: scatter to scratch, gather per output shard (rebalance_scatter.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import ByteSize, Field, model_validator

from dataprep.arrays import load_array, save_array
from dataprep.dataset import ReadOptions, ShardEntry
from dataprep.errors import DataprepError
from dataprep.progress import tick
from dataprep.stage import (
    Stage,
    StageConfig,
    StageContext,
    StageResult,
    Task,
    TaskResult,
    recordable,
    require_column,
)
from dataprep.stages import key_values
from dataprep.stages.rebalance_scatter import (
    ScatterJob,
    contingency,
    run_by,
    scatter_gather,
    scratch_dir,
    write_pieces,
)
from dataprep.storage import StoragePath


class RebalanceConfig(StageConfig):
    shards: int | None = Field(None, gt=0, description="number of output shards")
    target_rows: int | None = Field(None, gt=0, description="rows per output shard")
    target_bytes: ByteSize | None = Field(None, description="bytes per output shard, e.g. 64MB")
    shuffle: bool = Field(False, description="seeded global shuffle instead of keeping order")
    seed: int = Field(0, ge=0, description="shuffle seed")
    by: str | None = Field(None, description="balance whole groups of this column across shards")

    @model_validator(mode="after")
    def _one_size(self) -> RebalanceConfig:
        given = [
            n for n in ("shards", "target_rows", "target_bytes") if getattr(self, n) is not None
        ]
        if len(given) != 1:
            raise ValueError("give exactly one of shards, target_rows or target_bytes")
        if self.target_bytes is not None and (self.shuffle or self.by):
            raise ValueError("target_bytes works only in order (no shuffle, no by)")
        if self.shuffle and self.by:
            raise ValueError("choose shuffle or by, not both")
        return self


@dataclass(frozen=True)
class RowRange:
    """Rows [start, end) of one input shard, whose row groups hold `row_groups` rows each."""

    path: str
    row_groups: tuple[int, ...]
    start: int
    end: int
    checksum: str | None = None  # the shard's manifest checksum, for the range starting it


@dataclass(frozen=True)
class WriteJob:
    """A `write` task: the row ranges of its output shard, in input order."""

    ranges: tuple[RowRange, ...]


@dataclass(frozen=True)
class SizeJob:
    """A `size` task: where it leaves its shard's per-row, per-column sizes."""

    sizes_dir: str
    checksum: str | None = None  # the shard's, from the manifest: it is read whole


@recordable
@dataclass(frozen=True)
class ColumnBytes:
    """One shard's bytes per column: compressed (Parquet footer) and logical (summed sizes)."""

    compressed: np.ndarray
    logical: np.ndarray


class RebalanceStage(Stage[RebalanceConfig]):
    """Give exactly one of --shards, --target-rows, --target-bytes. Order is kept unless
    --shuffle; --by COL keeps each group in one shard, splitting only groups bigger than a
    fair share, and packs them largest-first onto the emptiest shard."""

    name = "rebalance"
    help = "Rewrite uneven shards into N equal ones (rows or bytes), or balance groups."

    def details(self, report: dict[str, Any]) -> list[str]:
        rows_in, rows_out = report.get("input_rows") or {}, report.get("output_rows") or {}
        size = report.get("output_bytes") or {}
        spread = f", bytes largest/mean {size['max_over_mean']}" if "max_over_mean" in size else ""
        return [
            f"{report.get('input_shards', 0):,} shards of {rows_in.get('min', 0):,}-"
            f"{rows_in.get('max', 0):,} rows -> {report.get('shards', 0):,} shards of "
            f"{rows_out.get('min', 0):,}-{rows_out.get('max', 0):,} rows "
            f"({report.get('mode', '?')}){spread}"
        ]

    def column_params(self, config: RebalanceConfig) -> dict[str, list[str]]:
        return {"by": [config.by]} if config.by else {}

    def run(self, ctx: StageContext[RebalanceConfig]) -> StageResult:
        config, source = ctx.config, ctx.require_input()
        if config.by is not None:
            require_column(source.schema, config.by, "--by")
            key_values.require_groupable(source.schema, config.by, "--by")
        total = source.rows
        paths = ctx.input_shard_paths()
        rows = [s.rows for s in source.shards]
        if config.shards is not None:
            n = config.shards
        elif config.target_rows is not None:
            n = math.ceil(total / config.target_rows)
        else:
            n = math.ceil(source.bytes / int(config.target_bytes or 1))
        n = max(1, min(n, total))
        report: dict[str, Any] = {
            "rows_in": total,
            "input_shards": len(paths),
            "input_rows": {"min": min(rows, default=0), "max": max(rows, default=0)},
            "mode": "rows",
        }
        if total == 0:
            return StageResult([], source.schema, report)
        shards = _rewrite(ctx, paths, n, report)
        out_rows = [s.rows for s in shards]
        out_bytes = [s.bytes for s in shards]
        report["output_rows"] = {"min": min(out_rows), "max": max(out_rows)}
        mean = sum(out_bytes) / len(out_bytes)
        report["output_bytes"] = {
            "min": min(out_bytes),
            "max": max(out_bytes),
            "max_over_mean": round(max(out_bytes) / mean, 4),
        }
        return StageResult(shards, source.schema, report)


def _rewrite(
    ctx: StageContext[RebalanceConfig], paths: list[str], n: int, report: dict[str, Any]
) -> list[ShardEntry]:
    """The n output shards, by the config's plan (its name goes into the report's mode)."""
    config, source = ctx.config, ctx.require_input()
    rows = [s.rows for s in source.shards]
    if config.by is not None:
        report["mode"] = "by"
        return run_by(ctx, config.by, paths, n, report)
    if config.shuffle:
        report["mode"] = "shuffle"
        table = contingency(rows, _equal_sizes(source.rows, n), config.seed)
        scratch = scratch_dir(ctx)
        jobs = [ScatterJob(scratch, sends=tuple(table[i].tolist())) for i in range(len(paths))]
        return scatter_gather(ctx, paths, jobs, n)
    if config.target_bytes is not None:
        report["mode"] = "bytes"
        cuts = _byte_cuts(ctx, paths, n)
    else:
        cuts = np.concatenate([[0], np.cumsum(_equal_sizes(source.rows, n))])
    groups = [s.row_groups for s in source.shards]
    sums = [s.xxh3_128 for s in source.shards]
    jobs = [  # byte cuts may meet (a row bigger than a share): no empty output shard
        WriteJob(_ranges(paths, rows, groups, a, b, sums)) for a, b in pairwise(cuts) if b > a
    ]
    tasks = [ctx.task("write", k, [r.path for r in job.ranges], job) for k, job in enumerate(jobs)]
    return [s for r in ctx.map(ordered_task, tasks) for s in r.shards]


def pairwise(cuts: Any) -> Iterator[tuple[int, int]]:
    for k in range(len(cuts) - 1):
        yield int(cuts[k]), int(cuts[k + 1])


def _equal_sizes(total: int, n: int) -> list[int]:
    base, extra = divmod(total, n)
    return [base + 1] * extra + [base] * (n - extra)


def _ranges(
    paths: list[str],
    rows: list[int],
    groups: list[list[int]],
    start: int,
    end: int,
    sums: list[str],
) -> tuple[RowRange, ...]:
    """Which ranges of which shards make global rows [start, end). The range that starts a
    shard carries its checksum: each input file is hashed once, by one task, so a shard
    swapped for another with as many rows fails the stage instead of feeding it."""
    pieces = []
    offset = 0
    for path, count, row_groups, checksum in zip(paths, rows, groups, sums, strict=True):
        lo, hi = max(start, offset), min(end, offset + count)
        if lo < hi:
            first = checksum if lo == offset else None
            pieces.append(RowRange(path, tuple(row_groups), lo - offset, hi - offset, first))
        offset += count
    return tuple(pieces)


def read_range(
    path: str,
    row_groups: Sequence[int],
    start: int,
    end: int,
    reader: ReadOptions = ReadOptions(),
    checksum: str | None = None,
) -> Iterator[pa.Table]:
    """Rows [start, end) of one shard, reading only the row groups that overlap them. A
    footer whose rows or row groups differ from the manifest's (`row_groups`) is refused:
    reading it by the manifest's numbers would drop or repeat rows."""
    pf = reader.open(path, checksum)
    footer = [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)]
    if row_groups and list(row_groups) != footer:
        raise DataprepError(
            f"shard {StoragePath(path).name} has row groups of {footer} rows where the input's "
            f"manifest says {list(row_groups)}: it was replaced or damaged; restore it or "
            "rerun the stage that wrote it"
        )
    row_groups = footer  # a manifest without row groups (older dataprep): the footer's
    first = 0
    for g, count in enumerate(row_groups):
        lo, hi = max(start, first), min(end, first + count)
        if lo < hi:
            yield pf.read_row_group(g).slice(lo - first, hi - lo)
        first += count
        if first >= end:
            break


def ordered_task(task: Task[RebalanceConfig, WriteJob]) -> TaskResult[None]:
    """Write one output shard from the row ranges the plan gave it, in input order."""
    ranges = task.payload.ranges
    schema = task.read_options.schema(ranges[0].path)

    def pieces() -> Iterator[pa.Table]:
        for r in ranges:
            yield from read_range(
                r.path, r.row_groups, r.start, r.end, task.read_options, r.checksum
            )

    return write_pieces(task, pieces(), schema)


# -- bytes -----------------------------------------------------------------------------------


def _byte_cuts(ctx: StageContext[RebalanceConfig], paths: list[str], n: int) -> np.ndarray:
    """Global row indices where the estimated output bytes cross k/N of the total.

    A row's estimated cost is sum over columns of its logical size times that column's
    compressed/logical ratio over the whole input. Per-shard ratios would overcharge rows of
    small shards, which compress worse alone than they will inside a bigger output shard.
    """
    sizes_dir = ctx.work / "scratch" / "sizes"
    sizes_dir.mkdir()
    sums = [s.xxh3_128 for s in ctx.require_input().shards]
    jobs = [SizeJob(str(sizes_dir), checksum) for checksum in sums]
    tasks = [ctx.task("size", i, [p], jobs[i]) for i, p in enumerate(paths)]
    stats = [r.payload for r in ctx.map(size_task, tasks)]
    compressed = np.sum([s.compressed for s in stats], axis=0)
    logical = np.sum([s.logical for s in stats], axis=0)
    ratio = np.divide(compressed, logical, out=np.zeros_like(compressed), where=logical > 0)
    shard_end = np.cumsum([np.dot(s.logical, ratio) for s in stats])
    row_start = np.concatenate([[0], np.cumsum([s.rows for s in ctx.require_input().shards])])
    cuts = [0]
    loaded: tuple[int, np.ndarray] | None = None
    for k in range(1, n):
        target = shard_end[-1] * k / n
        i = min(int(np.searchsorted(shard_end, target, side="left")), len(paths) - 1)
        if loaded is None or loaded[0] != i:  # one shard's sizes in memory at a time
            per_column = load_array(sizes_dir / f"{i:05d}.npy", mmap=False).astype(np.float64)
            loaded = (i, np.cumsum(per_column @ ratio))
        cum = loaded[1]
        before = shard_end[i - 1] if i else 0.0
        local = int(np.searchsorted(cum, target - before, side="left"))
        if local < len(cum) and (
            local == 0 or cum[local] - (target - before) < (target - before) - cum[local - 1]
        ):
            local += 1  # the crossing row goes left when that lands closer to the target
        cuts.append(max(cuts[-1], int(row_start[i]) + min(local, len(cum))))
    cuts.append(int(row_start[-1]))
    return np.array(cuts)


def column_sizes(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Logical bytes of every value of one column: string/binary lengths or fixed widths."""
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind):
        lengths = pc.binary_length(column).to_numpy(zero_copy_only=False)
        return np.nan_to_num(lengths.astype(np.float64)) + 4
    try:
        width = float(max(kind.bit_width // 8, 1))
    except ValueError:  # nested or other variable-width type: its average
        width = column.nbytes / max(len(column), 1)
    return np.full(len(column), width)


def _leaf_owners(meta: Any, names: list[str]) -> list[int]:
    """The top-level column of each Parquet leaf column (`meta.l.list.element` -> `meta`)."""
    owners = []
    for c in range(meta.num_columns):
        path = meta.schema.column(c).path
        owners.append(next(i for i, n in enumerate(names) if path == n or path.startswith(n + ".")))
    return owners


def size_task(task: Task[RebalanceConfig, SizeJob]) -> TaskResult[ColumnBytes]:
    """Per-row, per-column logical sizes of one shard (to scratch), and per-column totals of
    logical and compressed bytes (from the Parquet footer) for the global ratios."""
    pf = task.read_options.open(task.inputs[0], task.payload.checksum)
    meta = pf.metadata
    table = task.read_options.read_table(task.inputs[0])
    sizes = np.stack([column_sizes(c) for c in table.columns], axis=1).astype(np.float32)
    compressed = np.zeros(table.num_columns, dtype=np.float64)  # per top-level column:
    top = _leaf_owners(meta, table.schema.names)  # a list or struct has several leaves
    for g in range(meta.num_row_groups):
        for c in range(meta.num_columns):
            compressed[top[c]] += meta.row_group(g).column(c).total_compressed_size
    save_array(StoragePath(task.payload.sizes_dir) / f"{task.index:05d}.npy", sizes)
    tick(rows=table.num_rows)
    return TaskResult(payload=ColumnBytes(compressed, sizes.astype(np.float64).sum(axis=0)))
