"""compress: re-encode shards with another codec, level, dictionary setting or row-group size.

One task per shard, streaming row group by row group (or one shard in memory when sorting,
which is per shard: rows with equal sort keys end up together and compress better). Sizes
per column come from the Parquet footers before and after, so the report shows where the
bytes go. An encrypted input stays encrypted with the same keys: re-encoding never
silently writes plaintext. A shard `partition` tagged keeps its tag and its `pNNNNN-` name:
re-encoding a partitioned dataset must not undo the layout.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ByteSize, Field, model_validator

from dataprep.crypto import EncryptionSpec
from dataprep.dataset import ReadOptions, ShardWriter, WriteOptions
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
    recordable,
    require_column,
    sum_counts,
)
from dataprep.storage import StoragePath

Codec = Literal["zstd", "lz4", "snappy", "gzip", "brotli", "none"]
LEVELLED_CODECS = ("zstd", "gzip", "brotli")


class CompressConfig(StageConfig):
    codec: Codec = Field("zstd", description="Parquet compression codec")
    level: int | None = Field(None, description="codec level (default: the codec's own)")
    dictionary: bool = Field(True, description="dictionary-encode columns")
    row_group_rows: int | None = Field(None, gt=0, description="rows per row group")
    sort_by: list[str] | None = Field(None, description="sort rows within each shard first")
    page_bytes: ByteSize = Field(
        ByteSize(8 << 20),
        description="data page size: pages are compressed one by one, so bigger pages give "
        "zstd longer matches (1 MiB pages cost ~10% of ratio at level 9)",
    )

    @model_validator(mode="after")
    def _check_level(self) -> CompressConfig:
        problem = level_problem(self.codec, self.level)
        if problem:
            raise ValueError(problem)
        return self


def level_problem(codec: str, level: int | None) -> str | None:
    """Why `level` does not suit `codec`, or None when it does (or is unset)."""
    if level is None:
        return None
    if codec not in LEVELLED_CODECS:
        return f"codec {codec} takes no level; drop --level"
    low = pa.Codec.minimum_compression_level(codec)
    high = pa.Codec.maximum_compression_level(codec)
    if not low <= level <= high:
        return f"{codec} levels run from {low} to {high}"
    return None


@dataclass(frozen=True)
class CompressJob:
    """A `compress` task: the output encoding, the input shard's manifest checksum and
    partition tag."""

    options: WriteOptions
    checksum: str
    partition: int | None = None


@recordable
@dataclass(frozen=True)
class CompressStats:
    """Per top-level column: bytes before, after and uncompressed; the task's seconds."""

    columns: dict[str, dict[str, int]]
    seconds: float


class CompressStage(Stage[CompressConfig]):
    """.report.json has bytes before/after, ratio per column and MB/s."""

    name = "compress"
    help = "Re-encode shards: codec, level, dictionary, row-group size, optional sorting."

    def details(self, report: dict[str, Any]) -> list[str]:
        return [
            f"{report.get('bytes_before', 0):,} -> {report.get('bytes_after', 0):,} bytes "
            f"(x{report.get('ratio_vs_input', 0)} vs input, x{report.get('ratio', 0)} vs "
            f"uncompressed), {report.get('mb_per_s', 0)} MB/s"
        ]

    def column_params(self, config: CompressConfig) -> dict[str, list[str]]:
        return {"sort_by": list(config.sort_by or [])}

    def run(self, ctx: StageContext[CompressConfig]) -> StageResult:
        config, source = ctx.config, ctx.require_input()
        for column in config.sort_by or []:
            require_column(source.schema, column, "--sort-by")
        options = output_options(ctx, config)
        paths = ctx.input_shard_paths()
        if paths and source.encryption is not None:
            ctx.read_options.open(paths[0])  # a wrong key: one sentence here, before any task
        tasks = ctx.shard_tasks("compress", lambda s: CompressJob(options, s.xxh3_128, s.partition))
        t0 = time.perf_counter()
        results = ctx.map(compress_task, tasks)
        wall = time.perf_counter() - t0
        shards = [s for r in results for s in r.shards]
        schema = next((r.schema for r in results if r.schema is not None), source.schema)
        encryption = None
        if options.encryption is not None:
            encryption = options.encryption.manifest(schema)
        report = {"rows_in": source.rows, **summarise(results, source.bytes, wall)}
        report["codec"], report["level"] = config.codec, config.level
        return StageResult(shards, schema, report, encryption)


def output_options(ctx: StageContext[CompressConfig], config: CompressConfig) -> WriteOptions:
    """The config's encoding; encryption from the output settings, or kept from the input."""
    encryption = ctx.write_options.encryption
    enc_in = ctx.require_input().encryption
    if encryption is None and enc_in is not None:
        if ctx.read_options.key_file is None:
            raise DataprepError(
                f"input {ctx.input_root} is encrypted (key set {enc_in.get('key_set')}); "
                "pass --key-file (the output is encrypted with the same keys)"
            )
        encryption = EncryptionSpec.from_manifest(ctx.read_options.key_file, enc_in)
    return WriteOptions(
        compression=config.codec,
        compression_level=config.level,
        row_group_rows=config.row_group_rows or ctx.write_options.row_group_rows,
        use_dictionary=config.dictionary,
        encryption=encryption,
        page_bytes=int(config.page_bytes),
    )


def compress_task(task: Task[CompressConfig, CompressJob]) -> TaskResult[CompressStats]:
    """Re-encode one shard; hand back per-column sizes before and after.

    The whole shard is read, so its manifest checksum is checked first (a cheap pass over
    bytes the read brings into the page cache anyway): corruption stops here, with the
    shard's name, instead of flowing into an output that would pass `verify`."""
    config, options = task.config, task.payload.options
    path = task.inputs[0]
    t0 = time.perf_counter()
    source = task.read_options.open(path, task.payload.checksum)
    before = column_sizes(source.metadata)
    schema = source.schema_arrow
    part = task.payload.partition
    target = task.out / shard_name(task.index, part)
    rows = 0
    with ShardWriter(target, schema, options, partition=part) as writer:
        if config.sort_by:
            table = pa.concat_tables(task.read_options.row_groups(path))
            table = table.sort_by([(c, "ascending") for c in config.sort_by])
            writer.write(table)
            rows = table.num_rows
            tick(rows=rows)
        else:
            for table in task.read_options.row_groups(path):
                writer.write(table)
                rows += table.num_rows
                tick(rows=table.num_rows)
    seconds = time.perf_counter() - t0
    after = column_sizes(written_metadata(target, options, schema))
    sizes = {
        name: {"before": before.get(name, (0, 0))[0], "after": c, "uncompressed": u}
        for name, (c, u) in after.items()
    }
    return TaskResult([writer.entry], {"rows": rows}, schema, CompressStats(sizes, seconds))


def written_metadata(
    path: StoragePath, options: WriteOptions, schema: pa.Schema
) -> pq.FileMetaData:
    """The footer of a shard this task just wrote (decrypting it with the same keys)."""
    if options.encryption is None:
        return ReadOptions().open(path).metadata
    spec = options.encryption
    return ReadOptions(spec.key_file, spec.manifest(schema)).open(path).metadata


def column_sizes(meta: pq.FileMetaData) -> dict[str, tuple[int, int]]:
    """Top-level column -> (compressed, uncompressed) bytes over all row groups and leaves."""
    sizes: dict[str, list[int]] = {}
    for rg in range(meta.num_row_groups):
        group = meta.row_group(rg)
        for i in range(group.num_columns):
            chunk = group.column(i)
            name = chunk.path_in_schema.split(".")[0]
            acc = sizes.setdefault(name, [0, 0])
            acc[0] += chunk.total_compressed_size
            acc[1] += chunk.total_uncompressed_size
    return {k: (v[0], v[1]) for k, v in sizes.items()}


def summarise(
    results: list[TaskResult[CompressStats]], bytes_before: int, wall: float
) -> dict[str, Any]:
    """Report figures: totals, per-column ratios, and throughput over uncompressed bytes."""
    columns: dict[str, dict[str, float]] = {}
    for result in results:
        for name, s in result.payload.columns.items():
            acc = columns.setdefault(name, {"before": 0, "after": 0, "uncompressed": 0})
            for key in acc:
                acc[key] += s[key]
    for acc in columns.values():
        acc["ratio"] = round(acc["uncompressed"] / acc["after"], 3) if acc["after"] else 0.0
    bytes_after = sum(s.bytes for r in results for s in r.shards)
    raw = sum(c["uncompressed"] for c in columns.values())
    task_seconds = sum(r.payload.seconds for r in results)
    counts = sum_counts(results)
    return {
        "bytes_before": bytes_before,
        "bytes_after": bytes_after,
        "ratio_vs_input": round(bytes_before / bytes_after, 3) if bytes_after else 0.0,
        "uncompressed_bytes": raw,
        "ratio": round(raw / bytes_after, 3) if bytes_after else 0.0,
        "mb_per_s": round(raw / 1e6 / wall, 2) if wall else 0.0,
        "mb_per_s_per_task": round(raw / 1e6 / task_seconds, 2) if task_seconds else 0.0,
        "rows": counts.get("rows", 0),
        "columns": columns,
    }
