"""rebalance's scatter/gather plans: a seeded global shuffle, and groups packed onto shards.

Both send every row of an input shard to its output shard's scratch file (one map), then build
each output shard from its scratch pieces (a second map), so memory stays at about one shard.
- shuffle: a multivariate hypergeometric draw says how many rows input shard i sends to output
  shard k, exactly the margins of a uniform global permutation; input shards scatter a seeded
  permutation, output shards shuffle what they gather.
- by COL: count groups per shard, cut groups bigger than a fair share into fair-share pieces,
  pack pieces largest-first onto the least-loaded shard (LPT), then scatter and gather in order.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dataprep.dataset import ReadOptions, ShardEntry, ShardWriter
from dataprep.progress import tick
from dataprep.stage import StageContext, Task, TaskResult, ValueCounts, recordable
from dataprep.stages import key_values
from dataprep.storage import StoragePath

SCRATCH = "scratch/rebalance"


@dataclass(frozen=True)
class GroupPlan:
    """by COL, for one input shard: the groups (sorted values), each group's pieces as
    (first rank, output shard), this shard's first rank in each group, rows per output."""

    groups: list[Any]
    pieces: list[list[tuple[int, int]]]
    offsets: np.ndarray
    loads: list[int]


@dataclass(frozen=True)
class ScatterJob:
    """A `scatter` task: where scratch files go, and either the rows this shard sends to each
    output shard (shuffle) or the group column and plan (by)."""

    scratch: str
    sends: tuple[int, ...] = ()
    by: str | None = None
    groups: GroupPlan | None = None
    checksum: str | None = None  # the input shard's, from the manifest: it is read whole


@recordable
@dataclass(frozen=True)
class Sent:
    """Rows one input shard sent to each output shard."""

    rows: list[int]


@dataclass(frozen=True)
class GatherJob:
    """A `gather` task: a shard whose schema the output has; whether to shuffle the rows."""

    schema_from: str
    shuffle: bool


@dataclass(frozen=True)
class CountJob:
    """A `count` task: the group column."""

    column: str


class BufferedShard:
    """Feeds a ShardWriter small pieces, buffered into full row groups before writing."""

    def __init__(self, writer: ShardWriter, schema: pa.Schema):
        self.writer = writer
        self.schema = schema
        self.limit = writer.options.row_group_rows
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


def write_pieces(task: Task, pieces: Iterator[pa.Table], schema: pa.Schema) -> TaskResult:
    target = task.out / f"part-{task.index:05d}.parquet"
    rows = 0
    with ShardWriter(target, schema, task.write_options) as writer:
        out = BufferedShard(writer, schema)
        for table in pieces:
            out.write(table)
            rows += table.num_rows
            tick(rows=table.num_rows)
        out.flush()
    return TaskResult([writer.entry], {"rows": rows})


def contingency(rows: list[int], sizes: list[int], seed: int) -> np.ndarray:
    """How many rows input shard i sends to output shard k under a uniform permutation."""
    rng = np.random.default_rng([seed, 0x5EBA1])
    remaining = np.array(sizes, dtype=np.int64)
    table = np.zeros((len(rows), len(sizes)), dtype=np.int64)
    for i, count in enumerate(rows):
        table[i] = rng.multivariate_hypergeometric(remaining, count, method="marginals")
        remaining -= table[i]
    return table


def scatter_gather(
    ctx: StageContext[Any], paths: list[str], jobs: list[ScatterJob], n: int
) -> list[ShardEntry]:
    """Scatter every input shard (`jobs[i]` says how), then gather each of the n outputs."""
    sums = [s.xxh3_128 for s in ctx.require_input().shards]
    jobs = [replace(job, checksum=sums[i]) for i, job in enumerate(jobs)]
    tasks = [ctx.task("scatter", i, [p], jobs[i]) for i, p in enumerate(paths)]
    sent = [r.payload.rows for r in ctx.map(scatter_task, tasks)]
    sent_rows = np.array(sent, dtype=np.int64).reshape(len(paths), n)
    scratch = ctx.work / SCRATCH
    gather = GatherJob(paths[0], shuffle=jobs[0].by is None)
    gathers = []
    for k in range(n):
        files = [
            str(scratch / f"{k:05d}-{i:05d}.parquet") for i in range(len(paths)) if sent_rows[i, k]
        ]
        if files:
            gathers.append(ctx.task("gather", k, files, gather))
    return [s for r in ctx.map(gather_task, gathers) for s in r.shards]


def scratch_dir(ctx: StageContext[Any]) -> str:
    scratch = ctx.work / SCRATCH
    scratch.mkdir()
    return str(scratch)


def scatter_task(task: Task[Any, ScatterJob]) -> TaskResult[Sent]:
    """Send each row of one input shard to its output shard's scratch file."""
    job, config = task.payload, task.config
    table = task.read_options.read_table(task.inputs[0], checksum=job.checksum)
    if job.groups is None:  # shuffle: rows per output shard
        counts = np.asarray(job.sends, dtype=np.int64)
        rng = np.random.default_rng([config.seed, 1, task.index])
        order = rng.permutation(table.num_rows)
    else:  # by: each row's output shard from its group's pieces
        assert job.by is not None
        bins = _group_bins(table.column(job.by), job.groups)
        order = np.argsort(bins, kind="stable")
        counts = np.bincount(bins, minlength=len(job.groups.loads))
    ends = np.cumsum(counts)
    for k in np.nonzero(counts)[0]:
        rows = order[ends[k] - counts[k] : ends[k]]
        target = StoragePath(job.scratch) / f"{int(k):05d}-{task.index:05d}.parquet"
        piece = table.take(pa.array(rows))
        sink = pa.BufferOutputStream()
        pq.write_table(piece, sink, compression="lz4", **_scratch_kwargs(task, table.schema))
        target.write_atomic(sink.getvalue().to_pybytes())
    tick(rows=table.num_rows)
    return TaskResult(payload=Sent(counts.tolist()))


def gather_task(task: Task[Any, GatherJob]) -> TaskResult[None]:
    """One output shard from its scratch pieces: shuffled (shuffle) or streamed (by)."""
    schema = task.read_options.schema(task.payload.schema_from)
    scratch = _scratch_reader(task, schema)
    if task.payload.shuffle:
        table = pa.concat_tables(scratch.read_table(p) for p in task.inputs)
        rng = np.random.default_rng([task.config.seed, 2, task.index])
        pieces: Iterator[pa.Table] = iter([table.take(pa.array(rng.permutation(table.num_rows)))])
    else:
        pieces = (scratch.read_table(p) for p in task.inputs)
    return write_pieces(task, pieces, schema)


def _scratch_kwargs(task: Task[Any, Any], schema: pa.Schema) -> dict[str, Any]:
    """Scratch copies of an encrypted output are encrypted too: no plaintext on disk."""
    spec = task.write_options.encryption
    return {} if spec is None else {"encryption_properties": spec.properties(schema)}


def _scratch_reader(task: Task[Any, Any], schema: pa.Schema) -> ReadOptions:
    spec = task.write_options.encryption
    return ReadOptions() if spec is None else ReadOptions(spec.key_file, spec.manifest(schema))


def run_by(
    ctx: StageContext[Any], by: str, paths: list[str], n: int, report: dict[str, Any]
) -> list[ShardEntry]:
    tasks = [ctx.task("count", i, [p], CountJob(by)) for i, p in enumerate(paths)]
    per_shard = key_values.merged([r.payload.counts for r in ctx.map(count_task, tasks)])
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
    scratch = scratch_dir(ctx)
    jobs = []
    seen = dict.fromkeys(range(len(groups)), 0)
    for counts in per_shard:
        offsets = np.array([seen[g] for g in range(len(groups))], dtype=np.int64)
        for g, value in enumerate(groups):
            seen[g] += counts.get(value, 0)
        jobs.append(ScatterJob(scratch, by=by, groups=GroupPlan(groups, pieces, offsets, loads)))
    return scatter_gather(ctx, paths, jobs, n)


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


def count_task(task: Task[Any, CountJob]) -> TaskResult[ValueCounts]:
    """Rows per group value in one shard (nulls as None)."""
    column = task.read_options.read_table(task.inputs[0], [task.payload.column]).column(0)
    tick(rows=len(column))
    return TaskResult(payload=ValueCounts(key_values.counts(column)))


def _group_bins(column: pa.ChunkedArray, plan: GroupPlan) -> np.ndarray:
    """Output shard of every row: its group's bin, or for split groups the piece its rank is in."""
    pieces, offsets = plan.pieces, plan.offsets
    gid = key_values.group_ids(column, plan.groups, "--by")
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
