"""rebalance: rewrite uneven shards into N equal ones (by rows or bytes), or balance groups.

Four plans, all decided in the driver from small per-shard summaries:
- rows (default): cut the global row order into N runs whose sizes differ by at most one,
  straight from the manifest's row counts; each output task reads only the Parquet row groups
  its run overlaps, one row group at a time, so order is preserved and memory stays small.
- bytes: a map pass writes each shard's cumulative (estimated compressed) row sizes to scratch;
  the cuts are placed where the running total crosses k/N of the whole, then as for rows.
- shuffle: a seeded uniform permutation without holding the dataset: a multivariate
  hypergeometric draw says how many rows each input shard sends to each output shard (exactly
  what a global permutation would), each input shard scatters a seeded permutation of its rows,
  and each output shard shuffles what it gathered.
- by COL: count groups per shard, split groups larger than a fair share into fair-share
  pieces, pack pieces largest-first onto the least-loaded shard (LPT), then scatter/gather.
"""

from __future__ import annotations

import heapq
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import ByteSize, Field, model_validator

from dataprep.dataset import ShardEntry, ShardWriter, WriteOptions
from dataprep.errors import DataprepError
from dataprep.progress import tick
from dataprep.stage import Stage, StageConfig, StageContext, StageResult, Task, TaskResult

SCRATCH = "scratch/rebalance"


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


class RebalanceStage(Stage):
    name = "rebalance"
    Config = RebalanceConfig
    help = "Rewrite uneven shards into N equal ones (rows or bytes), or balance groups."

    def run(self, ctx: StageContext) -> StageResult:
        config = ctx.config
        assert isinstance(config, RebalanceConfig) and ctx.input is not None
        if config.by is not None and config.by not in ctx.input.schema.names:
            raise DataprepError(
                f"--by {config.by!r} is not a column of the input (columns: "
                f"{', '.join(ctx.input.schema.names)})"
            )
        total = ctx.input.rows
        paths = ctx.input_shard_paths()
        rows = [s.rows for s in ctx.input.shards]
        groups = [s.row_groups for s in ctx.input.shards]
        if config.shards is not None:
            n = config.shards
        elif config.target_rows is not None:
            n = math.ceil(total / config.target_rows)
        else:
            n = math.ceil(ctx.input.bytes / int(config.target_bytes or 1))
        n = max(1, min(n, total))
        report: dict[str, Any] = {
            "rows_in": total,
            "input_shards": len(paths),
            "input_rows": {"min": min(rows, default=0), "max": max(rows, default=0)},
            "mode": "rows",
        }
        if total == 0:
            return StageResult([], ctx.input.schema, report)
        if config.by is not None:
            report["mode"] = "by"
            shards = _run_by(ctx, config, paths, n, report)
        elif config.shuffle:
            report["mode"] = "shuffle"
            sizes = _equal_sizes(total, n)
            table = _contingency(rows, sizes, config.seed)
            shards = _scatter_gather(ctx, paths, [table[i] for i in range(len(paths))], n)
        else:
            if config.target_bytes is not None:
                report["mode"] = "bytes"
                cuts = _byte_cuts(ctx, paths, n)
            else:
                cuts = np.concatenate([[0], np.cumsum(_equal_sizes(total, n))])
            plans = [_ranges(paths, rows, groups, int(a), int(b)) for a, b in pairwise(cuts)]
            tasks = [
                ctx.task("write", k, [p[0] for p in plan], plan) for k, plan in enumerate(plans)
            ]
            shards = [s for r in ctx.map(ordered_task, tasks) for s in r.shards]
        out_rows = [s.rows for s in shards]
        out_bytes = [s.bytes for s in shards]
        report["output_rows"] = {"min": min(out_rows), "max": max(out_rows)}
        mean = sum(out_bytes) / len(out_bytes)
        report["output_bytes"] = {
            "min": min(out_bytes),
            "max": max(out_bytes),
            "max_over_mean": round(max(out_bytes) / mean, 4),
        }
        return StageResult(shards, ctx.input.schema, report)


def pairwise(cuts: Any) -> Iterator[tuple[int, int]]:
    for k in range(len(cuts) - 1):
        yield int(cuts[k]), int(cuts[k + 1])


def _equal_sizes(total: int, n: int) -> list[int]:
    base, extra = divmod(total, n)
    return [base + 1] * extra + [base] * (n - extra)


def _ranges(
    paths: list[str], rows: list[int], groups: list[list[int]], start: int, end: int
) -> list[tuple[str, list[int], int, int]]:
    """Which (shard, row groups, local start, local end) pieces make global rows [start, end)."""
    pieces = []
    offset = 0
    for path, count, row_groups in zip(paths, rows, groups, strict=True):
        lo, hi = max(start, offset), min(end, offset + count)
        if lo < hi:
            pieces.append((path, row_groups, lo - offset, hi - offset))
        offset += count
    return pieces


def read_range(path: str, row_groups: list[int], start: int, end: int) -> Iterator[pa.Table]:
    """Rows [start, end) of one shard, reading only the row groups that overlap them."""
    pf = pq.ParquetFile(path)
    if sum(row_groups) != pf.metadata.num_rows:  # manifest without row groups: use the footer
        row_groups = [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)]
    first = 0
    for g, count in enumerate(row_groups):
        lo, hi = max(start, first), min(end, first + count)
        if lo < hi:
            yield pf.read_row_group(g).slice(lo - first, hi - lo)
        first += count
        if first >= end:
            break


class BufferedShard:
    """A ShardWriter fed small pieces: buffers them into full row groups before writing."""

    def __init__(self, path: Path, schema: pa.Schema, options: WriteOptions):
        self.writer = ShardWriter(path, schema, options)
        self.schema = schema
        self.limit = options.row_group_rows
        self.pending: list[pa.Table] = []
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        self.pending.append(table)
        self.rows += table.num_rows
        if self.rows >= self.limit:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.writer.write(pa.concat_tables(self.pending).cast(self.schema))
        self.pending, self.rows = [], 0

    def close(self) -> ShardEntry:
        self.flush()
        return self.writer.close()


def _write_pieces(task: Task, pieces: Iterator[pa.Table], schema: pa.Schema) -> TaskResult:
    out = BufferedShard(task.out / f"part-{task.index:05d}.parquet", schema, task.write_options)
    rows = 0
    try:
        for table in pieces:
            out.write(table)
            rows += table.num_rows
            tick(rows=table.num_rows)
        entry = out.close()
    except BaseException:
        out.writer.abort()
        raise
    return TaskResult([entry], {"rows": rows})


def ordered_task(task: Task) -> TaskResult:
    """Write one output shard from the row ranges the plan gave it, in input order."""
    plan: list[tuple[str, list[int], int, int]] = task.extra
    schema = pq.read_schema(plan[0][0])

    def pieces() -> Iterator[pa.Table]:
        for path, row_groups, start, end in plan:
            yield from read_range(path, row_groups, start, end)

    return _write_pieces(task, pieces(), schema)


# -- bytes -----------------------------------------------------------------------------------


def _byte_cuts(ctx: StageContext, paths: list[str], n: int) -> np.ndarray:
    """Global row indices where the estimated output bytes cross k/N of the total.

    A row's estimated cost is sum over columns of its logical size times that column's
    compressed/logical ratio over the whole input. Per-shard ratios would overcharge rows of
    small shards, which compress worse alone than they will inside a bigger output shard.
    """
    assert ctx.input is not None
    sizes_dir = ctx.work / "scratch" / "sizes"
    sizes_dir.mkdir(parents=True, exist_ok=True)
    tasks = [ctx.task("size", i, [p], extra=str(sizes_dir)) for i, p in enumerate(paths)]
    stats = [r.extra for r in ctx.map(size_task, tasks)]
    compressed = np.sum([c for c, _ in stats], axis=0)
    logical = np.sum([lg for _, lg in stats], axis=0)
    ratio = np.divide(compressed, logical, out=np.zeros_like(compressed), where=logical > 0)
    shard_end = np.cumsum([np.dot(lg, ratio) for _, lg in stats])
    row_start = np.concatenate([[0], np.cumsum([s.rows for s in ctx.input.shards])])
    cuts = [0]
    loaded: tuple[int, np.ndarray] | None = None
    for k in range(1, n):
        target = shard_end[-1] * k / n
        i = min(int(np.searchsorted(shard_end, target, side="left")), len(paths) - 1)
        if loaded is None or loaded[0] != i:  # one shard's sizes in memory at a time
            per_column = np.load(sizes_dir / f"{i:05d}.npy").astype(np.float64)
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


def size_task(task: Task) -> TaskResult:
    """Per-row, per-column logical sizes of one shard (to scratch), and per-column totals of
    logical and compressed bytes (from the Parquet footer) for the global ratios."""
    sizes_dir = task.extra
    pf = pq.ParquetFile(task.inputs[0])
    meta = pf.metadata
    table = pf.read()
    sizes = np.stack([column_sizes(c) for c in table.columns], axis=1).astype(np.float32)
    compressed = np.array(
        [
            sum(
                meta.row_group(g).column(c).total_compressed_size
                for g in range(meta.num_row_groups)
            )
            for c in range(meta.num_columns)
        ],
        dtype=np.float64,
    )
    target = Path(sizes_dir) / f"{task.index:05d}.npy"
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}.npy")
    np.save(tmp, sizes)
    os.replace(tmp, target)
    tick(rows=table.num_rows)
    return TaskResult(extra=(compressed, sizes.astype(np.float64).sum(axis=0)))


# -- shuffle and by: scatter to scratch, gather per output shard -------------------------------


def _contingency(rows: list[int], sizes: list[int], seed: int) -> np.ndarray:
    """How many rows input shard i sends to output shard k under a uniform permutation."""
    rng = np.random.default_rng([seed, 0x5EBA1])
    remaining = np.array(sizes, dtype=np.int64)
    table = np.zeros((len(rows), len(sizes)), dtype=np.int64)
    for i, count in enumerate(rows):
        table[i] = rng.multivariate_hypergeometric(remaining, count, method="marginals")
        remaining -= table[i]
    return table


def _scatter_gather(
    ctx: StageContext, paths: list[str], plans: list[Any], n: int, by: str | None = None
) -> list[ShardEntry]:
    scratch = ctx.work / SCRATCH
    scratch.mkdir(parents=True, exist_ok=True)
    tasks = [
        ctx.task("scatter", i, [p], extra=(str(scratch), plans[i], by)) for i, p in enumerate(paths)
    ]
    sent = np.array([r.extra for r in ctx.map(scatter_task, tasks)], dtype=np.int64).reshape(
        len(paths), n
    )
    gathers = []
    for k in range(n):
        files = [str(scratch / f"{k:05d}-{i:05d}.parquet") for i in range(len(paths)) if sent[i, k]]
        if files:
            gathers.append(ctx.task("gather", k, files, extra=(paths[0], by is None)))
    return [s for r in ctx.map(gather_task, gathers) for s in r.shards]


def scatter_task(task: Task) -> TaskResult:
    """Send each row of one input shard to its output shard's scratch file."""
    scratch, plan, by = task.extra
    config: RebalanceConfig = task.config
    table = pq.read_table(task.inputs[0])
    if by is None:  # shuffle: plan = rows per output shard
        counts = np.asarray(plan, dtype=np.int64)
        rng = np.random.default_rng([config.seed, 1, task.index])
        order = rng.permutation(table.num_rows)
    else:  # by: plan = (groups, bin per group, split pieces, rank offsets in this shard)
        bins = _group_bins(table.column(by), *plan)
        order = np.argsort(bins, kind="stable")
        counts = np.bincount(bins, minlength=len(plan[-1]))
    ends = np.cumsum(counts)
    for k in np.nonzero(counts)[0]:
        rows = order[ends[k] - counts[k] : ends[k]]
        target = Path(scratch) / f"{int(k):05d}-{task.index:05d}.parquet"
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        pq.write_table(table.take(pa.array(rows)), tmp, compression="lz4")
        os.replace(tmp, target)
    tick(rows=table.num_rows)
    return TaskResult(extra=counts.tolist())


def gather_task(task: Task) -> TaskResult:
    """One output shard from its scratch pieces: shuffled (shuffle) or streamed (by)."""
    first_input, shuffle = task.extra
    schema = pq.read_schema(first_input)
    if shuffle:
        table = pa.concat_tables(pq.read_table(p) for p in task.inputs)
        rng = np.random.default_rng([task.config.seed, 2, task.index])
        pieces: Iterator[pa.Table] = iter([table.take(pa.array(rng.permutation(table.num_rows)))])
    else:
        pieces = (pq.read_table(p) for p in task.inputs)
    return _write_pieces(task, pieces, schema)


def _run_by(
    ctx: StageContext, config: RebalanceConfig, paths: list[str], n: int, report: dict[str, Any]
) -> list[ShardEntry]:
    assert config.by is not None
    tasks = [ctx.task("count", i, [p], extra=config.by) for i, p in enumerate(paths)]
    per_shard: list[dict[Any, int]] = [r.extra for r in ctx.map(count_task, tasks)]
    totals: dict[Any, int] = {}
    for counts in per_shard:
        for value, count in counts.items():
            totals[value] = totals.get(value, 0) + count
    groups = sorted(totals, key=lambda v: (v is None, str(v)))
    sizes = np.array([totals[g] for g in groups], dtype=np.int64)
    pieces, loads = pack_groups(sizes, n)
    report.update(
        groups=len(groups),
        split_groups=sum(1 for p in pieces if len(p) > 1),
        load_max_over_mean=round(max(loads) / (sum(loads) / n), 4),
    )
    plans = []
    seen = dict.fromkeys(range(len(groups)), 0)
    for counts in per_shard:
        offsets = np.array([seen[g] for g in range(len(groups))], dtype=np.int64)
        for g, value in enumerate(groups):
            seen[g] += counts.get(value, 0)
        plans.append((groups, pieces, offsets, loads))
    return _scatter_gather(ctx, paths, plans, n, by=config.by)


def pack_groups(sizes: np.ndarray, n: int) -> tuple[list[list[tuple[int, int]]], list[int]]:
    """Greedy largest-first (LPT) packing of groups onto n bins.

    A group larger than the fair share ceil(total/n) is first cut into near-equal pieces no
    larger than it, so a hot key is spread over several shards instead of swamping one.
    Returns, per group, its pieces as (first rank, bin), and the rows per bin.
    """
    cap = math.ceil(int(sizes.sum()) / n)
    items = []  # (size, group, piece index, first rank)
    for g, size in enumerate(sizes.tolist()):
        parts = max(1, math.ceil(size / cap))
        base, extra = divmod(size, parts)
        start = 0
        for j in range(parts):
            piece = base + (1 if j < extra else 0)
            items.append((piece, g, j, start))
            start += piece
    items.sort(key=lambda it: (-it[0], it[1], it[2]))
    heap = [(0, k) for k in range(n)]
    loads = [0] * n
    pieces: list[list[tuple[int, int]]] = [[] for _ in sizes]
    for size, g, _, start in items:
        holding = {k for _, k in pieces[g]}
        skipped = []  # bins that already hold a piece of this group: spread the hot key
        while len(heap) > 1 and heap[0][1] in holding:
            skipped.append(heapq.heappop(heap))
        load, k = heapq.heappop(heap)
        loads[k] = load + size
        pieces[g].append((start, k))
        for item in [*skipped, (loads[k], k)]:
            heapq.heappush(heap, item)
    for p in pieces:
        p.sort()
    return pieces, loads


def count_task(task: Task) -> TaskResult:
    """Rows per group value in one shard (nulls as None)."""
    column = pq.read_table(task.inputs[0], columns=[task.extra]).column(0)
    counts = pc.value_counts(column).to_pylist() if len(column) else []
    tick(rows=len(column))
    return TaskResult(extra={c["values"]: c["counts"] for c in counts})


def _group_bins(
    column: pa.ChunkedArray,
    groups: list[Any],
    pieces: list[list[tuple[int, int]]],
    offsets: np.ndarray,
    loads: list[int],
) -> np.ndarray:
    """Output shard of every row: its group's bin, or for split groups the piece its rank is in."""
    value_set = pa.array(groups, type=column.type)
    gid = pc.index_in(column, value_set=value_set, skip_nulls=False)
    gid = gid.to_numpy(zero_copy_only=False).astype(np.int64)
    bins = np.array([p[0][1] for p in pieces], dtype=np.int64)[gid]
    for g, group_pieces in enumerate(pieces):
        if len(group_pieces) == 1:
            continue
        rows = np.nonzero(gid == g)[0]
        ranks = offsets[g] + np.arange(len(rows))
        starts = np.array([s for s, _ in group_pieces])
        owners = np.array([k for _, k in group_pieces])
        bins[rows] = owners[np.searchsorted(starts, ranks, side="right") - 1]
    return bins
