"""shard: raw files (JSONL, CSV, Parquet, text; plain, .zst or .gz) to Parquet shards.

One task per newline-aligned byte range of a large uncompressed JSONL/text file, so one big
file still uses every worker; one per other file of 1 MiB or more; and one per run of smaller
files up to `chunk_bytes` in all, so thousands of small files fill shards of the requested size
instead of one shard each. Each task streams blocks, so memory stays at a block or two whatever
the input size. The schema is fixed once, from a sample of the first input, so every shard of
the output has the same one.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import pyarrow as pa
import xxhash
from pydantic import ByteSize, Field, model_validator

from dataprep.dataset import RollingShardWriter
from dataprep.progress import tick
from dataprep.readahead import readahead
from dataprep.sources import SourceFile, open_source, resolve
from dataprep.stage import (
    Quarantine,
    Stage,
    StageConfig,
    StageContext,
    StageResult,
    Task,
    TaskResult,
    sum_counts,
)
from dataprep.stages import readers, readers_unsampled
from dataprep.stages.readers_schema import (
    ids_given,
    infer_schema,
    json_blocks,
    sample_schema,
    sample_source,
)

LINKS_LISTED = 100  # links named in the report; the rest are counted
SMALL_FILE_SHARE = 64  # files under chunk_bytes / this are joined with others into one task
ROWS_PER_WRITE = 65536  # small tables (a document per file) are joined up to this many rows


class ShardConfig(StageConfig):
    shard_rows: int | None = Field(None, gt=0, description="rows per shard")
    shard_bytes: ByteSize | None = Field(
        None, gt=0, description="compressed Parquet bytes per shard, e.g. 128MB"
    )
    text_column: str = Field("text", description="column holding the document text")
    id_column: str = Field(
        "id",
        description="id column; generated as SOURCE:LINE if absent (JSONL lines and CSV data "
        "rows count from 1, Parquet rows from 0, as in the quarantine's line)",
    )
    keep: list[str] | None = Field(
        None,
        description="fields to keep besides text and id; NAME:TYPE (an Arrow type: url:string, "
        "n:int64) keeps a field the first input's sample lacks",
    )
    format: Literal["auto", "jsonl", "csv", "parquet", "text"] = Field(
        "auto", description="auto, jsonl, csv, parquet or text"
    )
    lines: bool = Field(False, description="plain text: one document per line, not per file")
    chunk_bytes: ByteSize = Field(
        ByteSize(64 << 20),
        gt=0,
        description="input bytes per task: big files split, small ones joined",
    )
    block_bytes: ByteSize = Field(ByteSize(8 << 20), gt=0, description="read block size")
    on_truncated: Literal["error", "quarantine"] = Field(
        "error",
        description="a cut .zst/.gz input: stop (error), or keep the rows before the cut and "
        "quarantine the cut (quarantine)",
    )

    @model_validator(mode="after")
    def _default_size(self) -> ShardConfig:
        if self.shard_rows is None and self.shard_bytes is None:
            object.__setattr__(self, "shard_bytes", ByteSize(128 * 10**6))
        return self


@dataclass(frozen=True)
class Part:
    """A byte range [start, end) of one source file, whose first line is `first_line` (None:
    not counted; the task counts it if a row needs it, see `readers_lines`)."""

    source: SourceFile
    start: int
    end: int
    first_line: int | None


@dataclass(frozen=True)
class ReadJob:
    """A `read` task: the source parts it streams, in order, and the output schema."""

    parts: tuple[Part, ...]
    schema: pa.Schema
    ahead: bool = True  # parse the next block on a thread while this one is written


def parses_ahead(index: int, count: int, workers: int) -> bool:
    """Whether task `index` of `count` parses its next block on a thread while it writes one:
    only in the last, partial wave of tasks over `workers` (or with one worker). While the
    tasks keep every worker busy, that thread only shares the same cores and its queued tables
    are more memory to touch: 201 MB in 4 tasks, -w 2, paired: CPU 0.95x, wall 0.96x."""
    return workers <= 1 or index >= count // workers * workers


class ShardStage(Stage[ShardConfig]):
    """Malformed rows go to OUT/.quarantine.jsonl with their source and line; the run goes on."""

    name = "shard"
    help = "Read raw files into Parquet shards of N rows or bytes."
    reads_dataset = False

    def details(self, report: dict[str, Any]) -> list[str]:
        per = report.get("rows_per_shard") or {}
        rows = f" of {per['min']:,}-{per['max']:,} rows" if per else ""
        links = len(report.get("links_skipped") or {}) + report.get("links_skipped_not_listed", 0)
        skipped = f"; {links:,} links to files already read skipped" if links else ""
        return [
            f"{report.get('inputs', 0):,} files ({report.get('input_bytes', 0):,} bytes) -> "
            f"{report.get('shards', 0):,} shards{rows}, {report.get('bytes_out', 0):,} bytes"
            + skipped,
            *readers_unsampled.note(report),
        ]

    def input_digest(self, config: ShardConfig, inputs: Sequence[str]) -> str:
        h = xxhash.xxh3_128()
        for src in resolve(list(inputs), config.format):
            h.update(f"{src.path}\0{src.size}\0{src.mtime_ns}\0".encode())
        return h.hexdigest()

    def output_schema(
        self, config: ShardConfig, schema: pa.Schema | None, inputs: Sequence[str] = ()
    ) -> pa.Schema | None:
        """What `run` will write: inferred from a sample of the first input."""
        return infer_schema(sample_source(resolve(list(inputs), config.format)), config)

    def run(self, ctx: StageContext[ShardConfig]) -> StageResult:
        config = ctx.config
        links: dict[str, str] = {}
        sources = resolve(ctx.inputs, config.format, links)
        first = sample_source(sources)
        sample = sample_schema(first, config)
        schema = infer_schema(first, config, sample)
        tasks = []
        plans = plan_tasks(sources, config, ids_given(sample, config))
        for parts in plans:
            paths = list(dict.fromkeys(part.source.path for part in parts))
            ahead = parses_ahead(len(tasks), len(plans), ctx.executor.workers)
            job = ReadJob(tuple(parts), schema, ahead)
            tasks.append(ctx.task("read", len(tasks), paths, job))
        results = ctx.map(shard_task, tasks)
        counts = sum_counts(results)
        unsampled = readers_unsampled.report(counts, first.name, schema.names[2:])
        unsampled.update(readers_unsampled.empty_declared(counts, sample.names))
        shards = [s for r in results for s in r.shards]
        report = {
            "rows_in": counts.get("rows", 0) + counts.get("quarantined", 0),
            "inputs": len(sources),
            "input_bytes": sum(s.size for s in sources),
            "tasks": len(tasks),
        }
        if shards:
            sizes = [s.rows for s in shards]
            report["rows_per_shard"] = {"min": min(sizes), "max": max(sizes)}
        if links:
            report.update(_links_report(links))
            print(f"note: {_links_note(links)}", file=sys.stderr)
        report.update(unsampled)
        return StageResult(shards, schema, report)


def plan_tasks(
    sources: Sequence[SourceFile], config: ShardConfig, ids_given: bool = False
) -> list[list[Part]]:
    """Tasks as lists of parts, in input order: a file of 1/64 of `chunk_bytes` (1 MiB) or more
    is a task of its own (a range of it, when big and splittable), so a few such files still
    use every worker; runs of smaller files are joined while their bytes add up to at most
    `chunk_bytes`, since each costs more as a task and a shard than it takes to read.
    `ids_given`: the JSONL rows carry ids, so their ranges' lines are not counted ahead."""
    tasks: list[list[Part]] = []
    pack: list[Part] = []
    pack_bytes = 0
    for src in sources:
        ranges = _ranges(src, config, ids_given)
        alone = len(ranges) > 1 or src.size * SMALL_FILE_SHARE >= config.chunk_bytes
        if pack and (alone or pack_bytes + src.size > config.chunk_bytes):
            tasks.append(pack)
            pack, pack_bytes = [], 0
        if alone:
            tasks += [[Part(src, *r)] for r in ranges]
            continue
        pack.append(Part(src, *ranges[0]))
        pack_bytes += src.size
    if pack:
        tasks.append(pack)
    return tasks


def _links_report(links: dict[str, str]) -> dict[str, object]:
    """`links_skipped`: {path left out: path read}, the first LINKS_LISTED, then a count."""
    listed = dict(list(links.items())[:LINKS_LISTED])
    report: dict[str, object] = {"links_skipped": listed}
    if len(links) > len(listed):
        report["links_skipped_not_listed"] = len(links) - len(listed)
    return report


def _links_note(links: dict[str, str]) -> str:
    examples = ", ".join(f"{a} -> {b}" for a, b in list(links.items())[:3])
    more = f" and {len(links) - 3} more" if len(links) > 3 else ""
    return (
        f"{len(links)} input path(s) lead to a file already read and were skipped "
        f"({examples}{more}); the report's links_skipped lists them"
    )


def _ranges(
    src: SourceFile, config: ShardConfig, ids_given: bool
) -> list[tuple[int, int, int | None]]:
    """A big line-based file in ranges of equal size, at most `chunk_bytes` each: cut at every
    `chunk_bytes`, 201 MB in 64 MiB made 3 tasks and a 50 KB one, so of 2 workers one read
    twice what the other did. Lines are counted ahead only where every row's id is its line."""
    line_based = src.format == "jsonl" or (src.format == "text" and config.lines)
    if src.compression is None and line_based and src.size > config.chunk_bytes:
        pieces = -(-src.size // config.chunk_bytes)
        cut = readers.line_cuts if ids_given and src.format == "jsonl" else readers.line_ranges
        return list(cut(src.path, src.size, -(-src.size // pieces)))
    return [(0, src.size, 1)]


def shard_task(task: Task[ShardConfig, ReadJob]) -> TaskResult[None]:
    """Stream the task's source ranges, one after another, into rolling shards named after
    the task index."""
    config, schema = task.config, task.payload.schema
    quarantine = task.quarantine()
    writer = RollingShardWriter(
        task.out,
        f"part-{task.index:05d}",
        schema,
        shard_rows=config.shard_rows,
        shard_bytes=int(config.shard_bytes) if config.shard_bytes else None,
        options=task.write_options,
    )
    rows = 0
    unsampled: dict[str, int] | None = {} if config.keep is None else None  # --keep: chosen
    declared = readers_unsampled.declared(config.keep, schema.names)  # --keep NAME:TYPE
    filled: dict[str, int] = {}
    try:
        with writer:
            tables = _tables(task.payload.parts, schema, config, quarantine, unsampled)
            batched = _joined(tables, int(config.block_bytes))
            ahead = readahead(batched) if task.payload.ahead else batched
            for table in ahead:  # ahead: the next block is parsed while this one is written
                if table.num_rows:
                    writer.write(table)
                    rows += table.num_rows
                    readers_unsampled.count_filled(table, declared, filled)
                tick(rows=table.num_rows)
    except OSError as exc:
        if exc.filename is None and exc.errno:  # Arrow's write errors name no file: say where
            raise OSError(exc.errno, os.strerror(exc.errno), str(task.out)) from None
        raise
    finally:
        quarantine.close()
    counts = {"rows": rows, "quarantined": quarantine.count}
    counts.update(readers_unsampled.task_counts(unsampled), **filled)
    return TaskResult(writer.entries, counts, schema)


def _tables(
    parts: Sequence[Part], schema: pa.Schema, config: ShardConfig, q: Quarantine,
    unsampled: dict[str, int] | None = None,
) -> Iterator[pa.Table]:  # fmt: skip
    """The task's rows in schema order: runs of whole-file text documents many files to a
    table, every other part read block by block."""

    def document(part: Part) -> bool:
        return part.source.format == "text" and not config.lines

    for is_document, run in itertools.groupby(parts, key=document):
        if is_document:
            sources = (part.source for part in run)
            yield from readers.read_text_documents(
                sources, schema, config, q, int(config.block_bytes)
            )
            continue
        for part in run:
            lines = readers.LazyLines(part.source.path, part.start, part.first_line)
            rebased = lines.quarantine(q)
            for table in _read(part, lines.first, schema, config, rebased, unsampled):
                yield _finish(table, part.source, schema, config, rebased, lines)


def _joined(tables: Iterable[pa.Table], block: int) -> Iterator[pa.Table]:
    """Tables of about a block each: a row group per small file would make shards slow to
    write and to read."""
    held: list[pa.Table] = []
    rows = size = 0
    for table in tables:
        held.append(table)
        rows += table.num_rows
        size += table.nbytes
        if rows >= ROWS_PER_WRITE or size >= block:
            yield held[0] if len(held) == 1 else pa.concat_tables(held)
            held, rows, size = [], 0, 0
    if held:
        yield held[0] if len(held) == 1 else pa.concat_tables(held)


def _read(
    part: Part, first_line: int, schema: pa.Schema, config: ShardConfig, quarantine: Quarantine,
    unsampled: dict[str, int] | None = None,
) -> Iterator[pa.Table]:  # fmt: skip
    """Tables with a `__line` column (source line or row number, counted from `first_line`)
    for ids and quarantine."""
    src, start, end = part.source, part.start, part.end
    block = int(config.block_bytes)
    if src.format == "parquet":
        yield from readers.read_parquet(src, schema, block, quarantine, unsampled)
    elif src.format == "csv":
        with open_source(src) as stream:
            yield from readers.read_csv(stream, src, schema, config, quarantine, block, unsampled)
    else:
        with open_source(src) as stream:
            if start:
                stream.seek(start)
            limit = end - start if src.compression is None else None  # sizes are compressed
            tolerate = config.on_truncated == "quarantine"
            on_cut = partial(readers.quarantine_cut, quarantine, src) if tolerate else None
            if src.format == "text":
                blocks = readers.counted_blocks(stream, limit, first_line, block, on_cut)
                lines = ((data, line) for data, line, _ in blocks)
                yield from readers.read_text_lines(lines, src, config, quarantine)
            else:  # each block is parsed before the next one overwrites its buffer
                views = readers.view_blocks(stream, limit, first_line, block, on_cut)
                views = json_blocks(views, src, start, block, on_cut)  # `.json`: an array?
                for data, line, newlines in views:  # a missing id is null, then generated
                    yield readers.parse_jsonl_block(
                        data, line, src, schema, quarantine, config.id_column, newlines,
                        config.text_column, unsampled,
                    )  # fmt: skip


def _finish(
    table: pa.Table, src: SourceFile, schema: pa.Schema, config: ShardConfig, q: Quarantine,
    numbers: readers.LazyLines,
) -> pa.Table:  # fmt: skip
    """Drop rows without text (to quarantine), fill ids (`numbers` rebases the `__line`s a
    generated id holds), and order columns as the schema. `pyarrow.compute` only where a row
    lacks a value: its import is ~25 ms of CPU in every process."""
    lines = table.column("__line")
    text = table.column(config.text_column)
    if text.null_count:
        import pyarrow.compute as pc

        missing = pc.is_null(text)
        for line in pc.filter(lines, missing).to_pylist():
            q.add(src.name, line, f"missing field {config.text_column!r}")
        table = table.filter(pc.invert(missing))
        lines = table.column("__line")
    ids = table.column(config.id_column) if config.id_column in table.column_names else None
    if ids is None or (ids.null_count and pa.types.is_string(ids.type)):
        generated = readers.numbered_ids(src.name + ":", lines, numbers.shift())
        if ids is None or ids.null_count == len(ids):  # no id in the file: all generated
            ids = generated
        else:
            import pyarrow.compute as pc

            ids = pc.coalesce(ids, generated)  # rows without an id get SOURCE:LINE
    elif ids.null_count:
        import pyarrow.compute as pc

        absent = pc.is_null(ids)
        for line in pc.filter(lines, absent).to_pylist():
            q.add(src.name, line, f"missing field {config.id_column!r}")
        table = table.filter(pc.invert(absent))
        ids = table.column(config.id_column)
    columns = {f.name: table.column(f.name) for f in schema if f.name != config.id_column}
    return pa.table({config.id_column: ids, **columns}, schema=schema)
