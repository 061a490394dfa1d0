"""dedup's write task (map, per shard): drop duplicates, or mark them with dup_cluster /
dup_keep; a shard the driver found untouched is copied instead (`passthrough`)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataprep import arrow_np
from dataprep.arrays import load_array
from dataprep.dataset import ShardWriter
from dataprep.layout import shard_name
from dataprep.manifest import ShardEntry
from dataprep.progress import tick
from dataprep.stage import Task, TaskResult
from dataprep.storage import StoragePath

from .buckets import shard_dir
from .config import DedupConfig
from .gather import KeptRows
from .passthrough import copy_shard
from .payloads import WriteJob, WriteStats
from .tasks import BATCH_ROWS, _batches, _stats


def _count_sources(
    totals: dict[str, list[int]], source: pa.Array, valid: np.ndarray, removed: np.ndarray
) -> None:
    """Add each source's valid and removed rows (a null source counts as "None"). Counted
    with numpy over the dictionary codes: Arrow's group_by loads pyarrow.dataset, which
    imports pandas (~0.2 s CPU in a process that needs it nowhere else)."""
    codes = pc.dictionary_encode(pc.cast(source, pa.string()), null_encoding="encode")
    if isinstance(codes, pa.ChunkedArray):
        codes = codes.combine_chunks()
    indices = codes.indices.cast(pa.int64())
    index = np.frombuffer(indices.buffers()[1], np.int64, len(indices), indices.offset * 8)
    names = codes.dictionary.to_pylist()
    rows = np.bincount(index, weights=valid, minlength=len(names))
    gone = np.bincount(index, weights=removed, minlength=len(names))
    for name, n, k in zip(names, rows.tolist(), gone.tolist(), strict=True):
        entry = totals.setdefault(str(name), [0, 0])
        entry[0] += int(n)
        entry[1] += int(k)


def write_task(task: Task[DedupConfig, WriteJob]) -> TaskResult[WriteStats]:
    """Drop (or mark) one shard's duplicates; also count per source and fetch example rows.
    A shard the driver found untouched is copied instead, if its footer has the output's
    schema (`passthrough`)."""
    started = time.perf_counter()
    config, job = task.config, task.payload
    target = task.out / shard_name(task.index, job.partition)
    source = StoragePath(task.inputs[0])
    if job.copy_of is not None and task.read_options.schema(source).equals(job.schema, True):
        return _copied(task, copy_shard(source, target, job.copy_of, job.partition), started)
    folder = shard_dir(task.work_dir, task.index)
    keep = load_array(folder / "keep.npy", mmap=False)
    cluster = load_array(folder / "cluster.npy", mmap=False)
    schema = job.schema
    has_source = "source" in schema.names
    per_source: dict[str, list[int]] = {}
    examples: dict[int, str] = {}  # examples are cited by the id column's values
    example_ids: dict[int, str] = {}
    seen = kept_rows = 0
    row_group = task.write_options.row_group_rows
    # small batches, their kept rows gathered into one table per `row_group` input rows (the
    # windows a whole-row-group read would give): decoding a 130 MB row group at once grows
    # its buffers by doubling and faults fresh pages in each time (~0.2 s CPU per 100 MB)
    small, capacity = _streamable(task, schema)
    rows = BATCH_ROWS if small else row_group
    with ShardWriter(target, schema, task.write_options, partition=job.partition) as writer:
        pieces: list[pa.Table] = []
        gathered: KeptRows | None = None  # a streamed window's kept rows, copied once
        batches = _batches(task, job.input_columns, rows)
        for batch, window_ends in _windows(batches, row_group) if small else _whole(batches):
            n = batch.num_rows
            valid = arrow_np.valid(batch.column(config.text_column))
            k = keep[seen : seen + n]
            c = cluster[seen : seen + n]
            _fetch_examples(task, batch, seen, examples, example_ids)
            if has_source:
                _count_sources(per_source, batch.column("source"), valid, valid & ~k)
            if config.mark_only:
                table = (
                    pa.Table.from_batches([batch])
                    .append_column("dup_cluster", pa.array(c, pa.int64(), mask=c < 0))
                    .append_column("dup_keep", pa.array(k))
                )
                pieces.append(table.filter(pa.array(valid)))
                kept_rows += pieces[-1].num_rows
            elif small:
                gathered = gathered or KeptRows(batch.schema, capacity)
                kept_rows += gathered.add(batch, valid & k)
            else:
                pieces.append(_kept_rows(batch, valid & k))
                kept_rows += pieces[-1].num_rows
            seen += n
            tick(rows=n)
            if window_ends:  # one output row group, as full as the window's kept rows
                window = gathered.table() if gathered is not None else _joined(pieces)
                pieces, gathered = [], None
                writer.write(window.select(schema.names).cast(schema))
                del window
        if not kept_rows:
            writer.abort()  # every row was a duplicate: no empty shard
    shards = [writer.entry] if kept_rows else []
    stats = _stats(started)
    done = WriteStats(stats.peak_rss_mb, stats.seconds, per_source, examples, example_ids)
    return TaskResult(shards, {"rows_written": kept_rows}, schema, done)


def _windows(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[tuple[pa.RecordBatch, bool]]:
    """The batches cut at every `rows`-th input row, each with whether a window of `rows`
    rows (or the input) ends with it: the windows `iter_batches(rows)` would yield."""
    filled = 0
    batch = next(batches, None)
    while batch is not None:
        take = min(batch.num_rows, rows - filled)
        part, rest = batch.slice(0, take), batch.slice(take)
        filled = (filled + take) % rows
        batch = rest if rest.num_rows else next(batches, None)
        yield part, filled == 0 or batch is None


def _joined(pieces: list[pa.Table]) -> pa.Table:
    """A window's kept rows as one contiguous table: the writer cuts pages by its input's
    chunks, so a row group's bytes are those of the window's rows read at once."""
    if len(pieces) == 1:
        return pieces[0]
    return pa.concat_tables(pieces).combine_chunks()


def _whole(batches: Iterator[pa.RecordBatch]) -> Iterator[tuple[pa.RecordBatch, bool]]:
    """Each batch a window of its own (read `row_group_rows` at a time)."""
    return ((batch, True) for batch in batches)


def _streamable(
    task: Task[DedupConfig, WriteJob], schema: pa.Schema
) -> tuple[bool, dict[str, int]]:
    """Whether `iter_batches(row_group_rows)` would cut this shard into windows of exactly
    that many rows, as `_windows` does: it also cuts where a column's chunk ends, which
    happens at a row group's end for a dictionary column and at 2 GiB of a string column.
    Otherwise the shard is read a window at a time, as before. Also each column's estimated
    bytes in a window (from the footer's uncompressed sizes, with a margin), to size the
    buffers the kept rows are gathered into."""

    def dictionary(kind: pa.DataType) -> bool:
        if pa.types.is_dictionary(kind):
            return True
        return any(dictionary(kind.field(i).type) for i in range(kind.num_fields))

    if any(dictionary(field.type) for field in schema):
        return False, {}
    footer = task.read_options.open(task.inputs[0]).metadata
    groups = [footer.row_group(i) for i in range(footer.num_row_groups)]
    size = sum(group.total_byte_size for group in groups)
    window = min(task.write_options.row_group_rows, max(footer.num_rows, 1))
    per_column: dict[str, int] = {}
    for group in groups:
        for i in range(group.num_columns):
            chunk = group.column(i)
            name = chunk.path_in_schema.split(".")[0]
            per_column[name] = per_column.get(name, 0) + chunk.total_uncompressed_size
    rows = max(footer.num_rows, 1)
    capacity = {
        name: int(total / rows * window * 1.25) + 65536 for name, total in per_column.items()
    }
    return size < 2**31 - 1, capacity  # the whole shard, uncompressed: no column fills a chunk


def _kept_rows(batch: pa.RecordBatch, kept: np.ndarray) -> pa.Table:
    """The kept rows, as one contiguous table: the runs of kept rows concatenated, which
    sizes every buffer once (Arrow's filter grows a string column's data buffer step by
    step, copying it each time: up to 0.4 s CPU on a 130 MB row group)."""
    if kept.all():  # a row group without duplicates is written uncopied
        return pa.Table.from_batches([batch])
    edges = np.flatnonzero(np.diff(kept.astype(np.int8), prepend=0, append=0)).tolist()
    runs = [batch.slice(a, b - a) for a, b in zip(edges[::2], edges[1::2], strict=True)]
    return pa.Table.from_batches(runs, batch.schema).combine_chunks()


def _copied(
    task: Task[DedupConfig, WriteJob], entry: ShardEntry, started: float
) -> TaskResult[WriteStats]:
    """A copied shard's result: per-source counts (nothing removed) and example rows read
    from just the columns they need, no column at all when there are neither."""
    config, job = task.config, task.payload
    has_source = "source" in job.schema.names
    columns = {"source"} if has_source else set()
    if job.examples:
        columns.update(c for c in (config.text_column, job.id_column) if c)
    per_source: dict[str, list[int]] = {}
    examples: dict[int, str] = {}
    example_ids: dict[int, str] = {}
    seen = 0
    for batch in (
        _batches(task, sorted(columns), task.write_options.row_group_rows) if columns else ()
    ):
        n = batch.num_rows
        _fetch_examples(task, batch, seen, examples, example_ids)
        if has_source:
            _count_sources(per_source, batch.column("source"), np.ones(n, bool), np.zeros(n, bool))
        seen += n
    tick(rows=entry.rows)
    stats = _stats(started)
    done = WriteStats(stats.peak_rss_mb, stats.seconds, per_source, examples, example_ids)
    return TaskResult([entry], {"rows_written": entry.rows}, job.schema, done)


def _fetch_examples(
    task: Task[DedupConfig, WriteJob],
    batch: pa.RecordBatch,
    seen: int,
    examples: dict[int, str],
    example_ids: dict[int, str],
) -> None:
    """The texts (and ids) of the example rows in this batch, by global id."""
    wanted, id_name, n = task.payload.examples, task.payload.id_column, batch.num_rows
    for row in [r for r in wanted if seen <= r < seen + n]:
        examples[wanted[row]] = batch.column(task.config.text_column)[row - seen].as_py()
        if id_name:
            example_ids[wanted[row]] = str(batch.column(id_name)[row - seen].as_py())
