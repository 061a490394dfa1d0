"""tokenize: text to fixed-length blocks of token ids for the trainer.

`pack` (the default, for language modelling) concatenates documents with an end-of-text id and
cuts the stream into blocks of `seq_len + 1` ids (inputs plus the next-token target), so no
padding is wasted; each shard's last partial block is dropped and counted. `truncate` keeps one
row per document (cut or padded to `seq_len`) with its other columns, for classification.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import Field

from dataprep.dataset import ShardWriter
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
from dataprep.tokenizer import BYTE_SPEC, TokenizerSpec, encode_documents, encode_stream, train_bpe

TOKENS = "tokens"


class TokenizeConfig(StageConfig):
    seq_len: int = Field(1024, gt=1, description="tokens of context per training block")
    tokenizer: Literal["byte", "bpe"] = "byte"
    vocab_size: int = Field(8192, ge=300, description="BPE vocabulary size")
    text_column: str = "text"
    mode: Literal["pack", "truncate"] = "pack"
    bpe_train_docs: int = Field(200_000, gt=0, description="documents the BPE is trained on")


class TokenizeStage(Stage):
    name = "tokenize"
    Config = TokenizeConfig
    help = "Turn text into packed fixed-length blocks of token ids."

    def run(self, ctx: StageContext) -> StageResult:
        config = ctx.config
        assert isinstance(config, TokenizeConfig) and ctx.input is not None
        require_column(ctx.input.schema, config.text_column, "--text-column")
        if config.tokenizer == "bpe":
            texts = _texts(ctx, config.text_column, config.bpe_train_docs)
            spec = train_bpe(texts, config.vocab_size, ctx.out / "tokenizer.json")
        else:
            spec = BYTE_SPEC
        result = map_shards(ctx, tokenize_task, extra=spec)
        if config.mode == "pack":
            width = config.seq_len + 1
            result.schema = pa.schema([pa.field(TOKENS, pa.list_(pa.int32(), width))])
        result.metadata = {
            "tokenizer": spec.to_json(),
            "seq_len": config.seq_len,
            "mode": config.mode,
        }
        return result


def _texts(ctx: StageContext, column: str, limit: int):
    seen = 0
    for path in ctx.input_shard_paths():
        for batch in ctx.read_options.iter_batches(path, [column], batch_size=4096):
            for text in batch.column(0).drop_null().to_pylist():
                yield text
                seen += 1
                if seen >= limit:
                    return


def tokenize_task(task: Task) -> TaskResult:
    config: TokenizeConfig = task.config
    spec: TokenizerSpec = task.extra
    table = task.read_options.read_table(task.inputs[0])
    texts = table.column(config.text_column).combine_chunks()
    out = task.out / f"part-{task.index:05d}.parquet"
    if config.mode == "pack":
        width = config.seq_len + 1
        stream = encode_stream(spec, texts, task.out)
        blocks = len(stream) // width
        values = pa.array(stream[: blocks * width], pa.int32())
        result = pa.table({TOKENS: pa.FixedSizeListArray.from_arrays(values, width)})
        counts = {"tokens": int(len(stream)), "tokens_dropped": int(len(stream) - blocks * width)}
    else:
        docs = encode_documents(spec, texts, task.out)
        result = _truncate(table.filter(texts.is_valid()), docs, config.seq_len, spec.pad_id)
        counts = {"tokens": int(sum(min(len(d), config.seq_len) for d in docs))}
    writer = ShardWriter(out, result.schema, task.write_options)
    writer.write(result)
    tick(rows=table.num_rows)
    counts.update(rows_in=table.num_rows, docs=len(texts) - texts.null_count)
    return TaskResult([writer.close()], counts, result.schema)


def _truncate(table: pa.Table, docs: list[np.ndarray], seq_len: int, pad_id: int) -> pa.Table:
    ids = np.full((len(docs), seq_len), pad_id, np.int32)
    lengths = np.zeros(len(docs), np.int32)
    for i, doc in enumerate(docs):
        n = min(len(doc), seq_len)
        ids[i, :n] = doc[:n]
        lengths[i] = n
    tokens = pa.FixedSizeListArray.from_arrays(pa.array(ids.reshape(-1)), seq_len)
    return table.append_column(TOKENS, tokens).append_column("length", pa.array(lengths))
