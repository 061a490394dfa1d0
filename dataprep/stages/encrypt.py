"""encrypt / decrypt: Parquet Modular Encryption of whole datasets, one task per shard.

Shards stay Parquet with the same row groups, so a reader can still fetch and decrypt one
row group at a time. The codec and level of the input are kept (re-encrypting should not
silently re-compress), unless the config names others. Tasks carry only the key-file path
and key ids; each worker rebuilds pyarrow's (unpicklable) encryption objects itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from dataprep.crypto import EncryptionSpec, load_key_file
from dataprep.dataset import ReadOptions, ShardWriter, WriteOptions
from dataprep.errors import DataprepError
from dataprep.layout import shard_name
from dataprep.progress import tick
from dataprep.stage import Stage, StageConfig, StageContext, StageResult, Task, TaskResult
from dataprep.stages.compress import Codec, level_problem

_PARQUET_CODECS = {"UNCOMPRESSED": "none", "LZ4_RAW": "lz4", "LZ4": "lz4"}


class EncryptConfig(StageConfig):
    key_file: str = Field(description="key file made by `dataprep keygen`")
    columns: list[str] | None = Field(
        None,
        description="columns to encrypt (default: all), each COLUMN or COLUMN:KEY (a key id or "
        "name in the key file) to put column groups under different master keys",
    )
    key_material: Literal["external", "internal"] = Field(
        "external",
        description="where the wrapped data keys live: external (OUT/.keys/, so `dataprep keys "
        "rotate` re-wraps them without rewriting data) or internal (each file's footer)",
    )
    codec: Codec | None = Field(None, description="codec (default: keep the input's)")
    level: int | None = Field(None, description="codec level (default: keep the input's)")


class DecryptConfig(StageConfig):
    key_file: str = Field(description="the key file the data was encrypted with")
    codec: Codec | None = Field(None, description="codec (default: keep the input's)")
    level: int | None = Field(None, description="codec level (default: keep the input's)")


@dataclass(frozen=True)
class RecodeJob:
    """An `encrypt` / `decrypt` task: how to read the shard, how to write it, its checksum."""

    reader: ReadOptions
    options: WriteOptions
    checksum: str
    partition: int | None = None  # the input shard's tag, kept (with its pNNNNN- name)


class EncryptStage(Stage[EncryptConfig]):
    name = "encrypt"
    help = "Encrypt shards (Parquet Modular Encryption, AES-GCM, encrypted footer)."

    def run(self, ctx: StageContext[EncryptConfig]) -> StageResult:
        config, source = ctx.config, ctx.require_input()
        if source.encryption is not None:
            raise DataprepError(
                f"input {ctx.input_root} is already encrypted (key set "
                f"{source.encryption.get('key_set')}); decrypt it first to re-encrypt"
            )
        load_key_file(config.key_file)
        columns = tuple(config.columns) if config.columns else None
        spec = EncryptionSpec(config.key_file, columns, key_material=config.key_material)
        encryption = spec.manifest(source.schema)  # checks the columns and key ids
        options = _options(ctx, config.codec, config.level, spec, ReadOptions())
        return _map(ctx, "encrypt", ReadOptions(), options, encryption)


class DecryptStage(Stage[DecryptConfig]):
    name = "decrypt"
    help = "Decrypt shards encrypted by `dataprep encrypt`, given the key file."
    writes_plaintext = True

    def run(self, ctx: StageContext[DecryptConfig]) -> StageResult:
        config, source = ctx.config, ctx.require_input()
        if source.encryption is None:
            raise DataprepError(f"input {ctx.input_root} is not encrypted; nothing to decrypt")
        if ctx.write_options.encryption is not None:
            raise DataprepError(
                "the recipe's output encryption would encrypt decrypt's output again; "
                "remove output.encryption or the decrypt stage"
            )
        from dataprep.audit_use import use
        from dataprep.crypto import decryption_properties, readable_columns

        reader = ReadOptions(config.key_file, source.encryption)
        # fail fast on a bad key, before any task: one sentence naming a shard and the columns
        paths = ctx.input_shard_paths()
        if paths:
            reader.open(paths[0])
        else:
            decryption_properties(config.key_file, {**source.encryption, "key_material": None})
        # every column is read: a partial key file stops here, naming a column it cannot open
        names = source.schema.names
        with use("decrypt", config.key_file, ctx.input_root, source.encryption, names, ok=False):
            readable_columns(source.encryption, config.key_file, names).require(None)  # audited
        options = _options(ctx, config.codec, config.level, None, reader)
        return _map(ctx, "decrypt", reader, options, None)


def _map(
    ctx: StageContext[Any],
    phase: str,
    reader: ReadOptions,
    options: WriteOptions,
    encryption: dict[str, Any] | None,
) -> StageResult:
    source = ctx.require_input()
    tasks = ctx.shard_tasks(phase, lambda s: RecodeJob(reader, options, s.xxh3_128, s.partition))
    results = ctx.map(recode_task, tasks)
    shards = [s for r in results for s in r.shards]
    report = {
        "rows_in": source.rows,
        "bytes_in": source.bytes,
        "codec": options.compression,
        "level": options.compression_level,
    }
    if encryption is not None:
        keyed = encryption["column_keys"].values()
        report["encrypted_columns"] = [c for cols in keyed for c in cols]
        report["plaintext_columns"] = encryption["plaintext_columns"]
    return StageResult(shards, source.schema, report, encryption)


def recode_task(task: Task[Any, RecodeJob]) -> TaskResult[None]:
    """Copy one shard row group by row group, decrypting and/or encrypting on the way; the
    whole shard is read, so its manifest checksum is checked first (see `compress_task`)."""
    reader, options = task.payload.reader, task.payload.options
    path = task.inputs[0]
    source = reader.open(path, task.payload.checksum)
    part = task.payload.partition
    target = task.out / shard_name(task.index, part)
    rows = 0
    with ShardWriter(target, source.schema_arrow, options, partition=part) as writer:
        for table in reader.row_groups(path):
            writer.write(table)
            rows += table.num_rows
            tick(rows=table.num_rows)
    return TaskResult([writer.entry], {"rows": rows}, source.schema_arrow)


def _options(
    ctx: StageContext[Any],
    codec: str | None,
    level: int | None,
    encryption: EncryptionSpec | None,
    reader: ReadOptions,
) -> WriteOptions:
    """Keep the input's encoding unless told otherwise; row groups are copied one to one."""
    source = ctx.require_input()
    base = ctx.write_options
    in_codec, in_level, dictionary = base.compression, base.compression_level, True
    if source.shards:
        meta = reader.open(ctx.input_shard_paths()[0]).metadata
        if meta.num_row_groups and meta.num_columns:
            name = meta.row_group(0).column(0).compression
            in_codec = _PARQUET_CODECS.get(name, name.lower())
            in_level = _lineage_level(source.lineage, in_codec, base.compression_level)
            dictionary = any(
                "DICTIONARY" in " ".join(meta.row_group(0).column(i).encodings)
                for i in range(meta.num_columns)
            )
    biggest = max((n for s in source.shards for n in s.row_groups), default=1)
    chosen = codec or in_codec
    problem = level_problem(chosen, level)
    if problem:
        raise DataprepError(f"--level {level}: {problem}")
    if codec is not None and level is None:
        in_level = None
    return WriteOptions(
        compression=chosen,
        compression_level=level if level is not None else in_level,
        row_group_rows=max(biggest, 1),
        use_dictionary=dictionary,
        encryption=encryption,
    )


def _lineage_level(lineage: list[dict[str, Any]], codec: str, default: int | None) -> int | None:
    """The level the input was written with, if a compress stage set it (else the default)."""
    for entry in reversed(lineage):
        config = entry.get("config") or {}
        if config.get("codec") == codec and config.get("level") is not None:
            if entry.get("stage") in ("compress", "encrypt", "decrypt"):
                return config.get("level")
        if entry.get("stage") not in ("encrypt", "decrypt"):
            break
    return default if codec in ("zstd", "gzip", "brotli") else None
