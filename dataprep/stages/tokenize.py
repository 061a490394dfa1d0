"""tokenize: text to fixed-length blocks of token ids for the trainer.

`pack` (the default, for language modelling) concatenates documents with an end-of-text id and
cuts the stream into blocks of `seq_len + 1` ids (inputs plus the next-token target), so no
padding is wasted; each shard's last partial block is dropped and counted. `truncate` keeps one
row per document (cut or padded to `seq_len`) with its other columns, for classification.

Blocks are stored as a non-nullable `fixed_size_list<int32 not null>`: Parquet then writes no
definition levels for them, which makes them ~25% cheaper to decode at the same size (measured
in `benchmarks/bench_token_encoding.py`). The codec stays the output's (zstd by default), but the
ids are written BYTE_STREAM_SPLIT, without a dictionary: with zstd that is ~11% more bytes than
the dictionary (3.64 vs 3.28 KiB per 2048-id block of BPE-like ids) and ~20% less CPU to decode
(8.6 vs 11.3 us), and decoding is what every epoch of training pays. Files written with the
dictionary (before this change) read the same. With the default codec (zstd at level 3) the
blocks are compressed at zstd's fast level `FAST_ZSTD_LEVEL` instead: it stores literals raw
rather than Huffman-coded, and the ids' low bytes are near random, so Huffman saved ~9% of the
bytes (4.01 vs 3.64 KiB a block) for ~30% of the read CPU (4.5 vs 6.8 us a block); the files
are still plain zstd Parquet. Another codec or level set in the recipe is kept (a level of 3
set explicitly reads as the default), and so is the level in `truncate` mode, whose rows keep
their text columns. Row groups of blocks are capped at ~`BLOCK_GROUP_BYTES` so the loader can
shuffle and split them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, PrivateAttr, model_serializer, model_validator

from dataprep.dataset import (
    DEFAULT_COMPRESSION,
    DEFAULT_COMPRESSION_LEVEL,
    ShardWriter,
    WriteOptions,
)
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
    map_shards,
    require_column,
)
from dataprep.tokenizer import (
    BUILTIN,
    BYTE_SPEC,
    FILE_NAME,
    TokenizerSpec,
    encode_documents,
    encode_stream,
    load_tokenizer_file,
    train_bpe,
)

TOKENS = "tokens"
LENGTH = "length"  # truncate mode: the real tokens in each row
BLOCK_GROUP_BYTES = 64 << 20  # raw bytes of blocks per row group (8192 rows of 2048 ids)
FAST_ZSTD_LEVEL = -1  # negative levels store literals raw (see the module docstring)


def block_field(width: int) -> pa.Field:
    """The `tokens` column: never null, nor any id in it (no Parquet definition levels)."""
    item = pa.field("item", pa.int32(), nullable=False)
    return pa.field(TOKENS, pa.list_(item, width), nullable=False)


def block_array(ids: np.ndarray, width: int) -> pa.FixedSizeListArray:
    """Rows of `width` ids from a flat int32 array (its length a multiple of `width`)."""
    return pa.FixedSizeListArray.from_arrays(
        pa.array(ids, pa.int32()), type=block_field(width).type
    )


def block_write_options(
    options: WriteOptions, width: int, column: str = TOKENS, fast: bool = True
) -> WriteOptions:
    """The output's options with row groups of at most ~BLOCK_GROUP_BYTES of blocks (the
    default 65536 rows would be 0.5 GB of 2048-id blocks, one unit too coarse to shuffle) and
    the ids BYTE_STREAM_SPLIT without a dictionary, at zstd's fast level when the codec is
    the default and `fast` (files of blocks only: it would apply to every column)."""
    rows = max(1, BLOCK_GROUP_BYTES // (4 * width))
    split = tuple(dict.fromkeys((*options.split_columns, column)))
    level = options.compression_level
    if fast and (options.compression, level) == (DEFAULT_COMPRESSION, DEFAULT_COMPRESSION_LEVEL):
        level = FAST_ZSTD_LEVEL
    return replace(
        options,
        row_group_rows=min(options.row_group_rows, rows),
        split_columns=split,
        compression_level=level,
    )


class TokenizeConfig(StageConfig):
    seq_len: int = Field(1024, gt=1, description="tokens of context per training block")
    tokenizer: str = Field(
        "byte",
        description="byte (no download), bpe (trained on the data) or the path of a Hugging "
        "Face tokenizer.json",
    )
    vocab_size: int = Field(8192, ge=300, description="BPE vocabulary size")
    text_column: str = Field("text", description="column holding the text")
    mode: Literal["pack", "truncate"] = Field(
        "pack", description="pack (LM blocks) or truncate (one row per document)"
    )
    bpe_train_docs: int = Field(200_000, gt=0, description="documents the BPE is trained on")
    _file: TokenizerSpec | None = PrivateAttr(None)  # a tokenizer file's facts, read once

    @model_validator(mode="after")
    def _read_tokenizer_file(self) -> TokenizeConfig:
        """A tokenizer path is checked when the config is, before any data is read."""
        if self.tokenizer not in BUILTIN:
            self._file = load_tokenizer_file(self.tokenizer)[1]
        return self

    @model_serializer(mode="wrap")
    def _with_file_digest(self, handler: Any) -> dict[str, Any]:
        """The file's content digest is part of the config (and so of the cache key): the same
        path with other content reruns the stage."""
        data = handler(self)
        if self._file is not None:
            data["tokenizer_digest"] = self._file.digest
        return data


class TokenizeStage(Stage[TokenizeConfig]):
    """Documents are joined with an end-of-text id and cut into blocks of seq_len + 1 ids, so
    no padding is wasted."""

    name = "tokenize"
    help = "Turn text into packed fixed-length blocks of token ids."

    def details(self, report: dict[str, Any]) -> list[str]:
        dropped = report.get("tokens_dropped")
        tail = f" ({dropped:,} tokens left over at the end)" if dropped else ""
        return [
            f"{report.get('docs', report.get('rows_in', 0)):,} documents, "
            f"{report.get('tokens', 0):,} tokens -> {report.get('rows_out', 0):,} rows{tail}"
        ]

    def column_params(self, config: TokenizeConfig) -> dict[str, list[str]]:
        return {"text_column": [config.text_column]}

    def output_schema(
        self, config: TokenizeConfig, schema: pa.Schema | None, inputs: Sequence[str] = ()
    ) -> pa.Schema | None:
        """pack: blocks only; truncate: the input's columns plus tokens and length."""
        if config.mode == "pack":
            return pa.schema([block_field(config.seq_len + 1)])
        if schema is None:
            return None
        refuse_taken_names(schema)
        return schema.append(block_field(config.seq_len)).append(pa.field(LENGTH, pa.int32()))

    def run(self, ctx: StageContext[TokenizeConfig]) -> StageResult:
        config = ctx.config
        require_text_column(ctx.require_input().schema, config.text_column)
        if config.mode == "truncate":
            refuse_taken_names(ctx.require_input().schema)
        if config.tokenizer == "bpe":
            texts = _texts(ctx, config.text_column, config.bpe_train_docs)
            spec = train_bpe(texts, config.vocab_size, ctx.out / FILE_NAME)
        elif config.tokenizer == "byte":
            spec = BYTE_SPEC
        else:
            spec = _copy_tokenizer_file(config, ctx)
        result = _tokenize_shards(ctx, spec)
        if config.mode == "pack":
            width = config.seq_len + 1
            result.schema = pa.schema([block_field(width)])
        result.metadata = {
            "tokenizer": spec.to_json(),
            "seq_len": config.seq_len,
            "mode": config.mode,
        }
        return result


def require_text_column(schema: pa.Schema, name: str) -> None:
    """The text column exists and holds strings (a number column would fail deep in a task)."""
    require_column(schema, name, "--text-column")
    kind = schema.field(name).type
    if not _is_text(kind):
        texts = [f.name for f in schema if _is_text(f.type)]
        raise DataprepError(
            f"--text-column {name!r} holds {kind}, not text; name a string column "
            f"(string columns: {', '.join(texts) or 'none'})"
        )


def refuse_taken_names(schema: pa.Schema) -> None:
    """truncate adds `tokens` and `length` beside the input's columns: an input column of
    either name would be written twice (a dataset no reader opens) or lost if replaced, so
    the user chooses (a user's `length` is often metadata: words, bytes, seconds)."""
    taken = [name for name in (TOKENS, LENGTH) if name in schema.names]
    if taken:
        raise DataprepError(
            f"--mode truncate adds the columns {TOKENS!r} and {LENGTH!r}, but the input "
            f"already has {' and '.join(repr(n) for n in taken)}: rename or drop it before "
            "tokenize (e.g. shard with --keep naming the other columns)"
        )


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _copy_tokenizer_file(
    config: TokenizeConfig, ctx: StageContext[TokenizeConfig]
) -> TokenizerSpec:
    """Keep the tokenizer beside the shards, so the output says (and holds) what its ids mean;
    the bytes copied must be the ones the config's digest (the cache key) was taken from."""
    data, spec = load_tokenizer_file(config.tokenizer)
    if config._file is None or spec.digest != config._file.digest:
        raise DataprepError(
            f"tokenizer file {config.tokenizer} changed while the stage started; rerun it"
        )
    (ctx.out / FILE_NAME).write_atomic(data)
    return spec


# BPE training is quadratic in the length of a pre-token (a run of letters without a space):
# one 3 MB run (a DNA read, "xxxx...") kept the trainer busy for over 15 minutes. Runs this
# long learn no useful merge, so the trainer sees them cut into pieces; encoding (not
# quadratic) reads the text as it is.
_RUN = 1000
_LONG_RUN = re.compile(rf"\S{{{_RUN}}}")


def _texts(ctx: StageContext[TokenizeConfig], column: str, limit: int) -> Iterator[str]:
    seen = 0
    for path in ctx.input_shard_paths():
        for batch in ctx.read_options.iter_batches(path, [column], batch_size=4096):
            for text in batch.column(0).drop_null().to_pylist():
                yield _LONG_RUN.sub(r"\g<0> ", text) if len(text) > _RUN else text
                seen += 1
                if seen >= limit:
                    return


@dataclass(frozen=True)
class TokenizeJob:
    """A tokenize task: the tokenizer, and its shard's manifest checksum (the shard is read
    whole, so a file swapped for another with as many rows is refused, not tokenized)."""

    spec: TokenizerSpec
    checksum: str | None = None
    partition: int | None = None  # the input shard's tag, kept (with its pNNNNN- name)


def _tokenize_shards(ctx: StageContext[TokenizeConfig], spec: TokenizerSpec) -> StageResult:
    """`map_shards`, with each task's own checksum and partition tag in its payload."""
    return map_shards(
        ctx, tokenize_task, "map", payload_of=lambda s: TokenizeJob(spec, s.xxh3_128, s.partition)
    )


def tokenize_task(task: Task[TokenizeConfig, TokenizeJob]) -> TaskResult[None]:
    """Tokenize one shard with the stage's tokenizer (the payload), into blocks or rows."""
    config, spec = task.config, task.payload.spec
    table = task.read_options.read_table(task.inputs[0], checksum=task.payload.checksum)
    texts = table.column(config.text_column).combine_chunks()
    part = task.payload.partition
    out = task.out / shard_name(task.index, part)
    if config.mode == "pack":
        width = config.seq_len + 1
        stream = encode_stream(spec, texts, task.out)
        blocks = len(stream) // width
        blocks_array = block_array(np.asarray(stream[: blocks * width]), width)
        result = pa.Table.from_arrays([blocks_array], schema=pa.schema([block_field(width)]))
        counts = {"tokens": int(len(stream)), "tokens_dropped": int(len(stream) - blocks * width)}
    else:
        docs = encode_documents(spec, texts, task.out)
        result = _truncate(table.filter(texts.is_valid()), docs, config.seq_len, spec.pad_id)
        counts = {"tokens": int(sum(min(len(d), config.seq_len) for d in docs))}
    width = result.schema.field(TOKENS).type.list_size
    options = block_write_options(task.write_options, width, fast=config.mode == "pack")
    with ShardWriter(out, result.schema, options, partition=part) as writer:
        writer.write(result)
    tick(rows=table.num_rows)
    counts.update(rows_in=table.num_rows, docs=len(texts) - texts.null_count)
    return TaskResult([writer.entry], counts, result.schema)


def _truncate(table: pa.Table, docs: list[np.ndarray], seq_len: int, pad_id: int) -> pa.Table:
    ids = np.full((len(docs), seq_len), pad_id, np.int32)
    lengths = np.zeros(len(docs), np.int32)
    for i, doc in enumerate(docs):
        n = min(len(doc), seq_len)
        ids[i, :n] = doc[:n]
        lengths[i] = n
    tokens = block_array(ids.reshape(-1), seq_len)
    return table.append_column(block_field(seq_len), tokens).append_column(
        LENGTH, pa.array(lengths)
    )
