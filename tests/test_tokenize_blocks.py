"""How `tokenize` stores token blocks: values (against a pure-Python byte tokenizer), the
non-nullable column type, and the Parquet encoding read back from each shard's metadata."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import manifest

from dataprep.dataset import WriteOptions
from dataprep.runner import run_stage
from dataprep.stages.tokenize import BLOCK_GROUP_BYTES, block_write_options

WIDTH = 32  # seq_len 31 + the next-token target
EOT = 256  # the byte tokenizer's end-of-text id: one past the 256 byte values


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tok")
    rng = np.random.default_rng(5)
    docs = [
        {"text": "".join(rng.choice(list("abcdé xyz"), size=int(rng.integers(5, 120))))}
        for _ in range(300)
    ]
    (root / "in.jsonl").write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    run_stage("shard", {"shard_rows": 100}, root / "shards", inputs=[str(root / "in.jsonl")])
    return root


def _expected_blocks(shard: Path) -> np.ndarray:
    """Pure Python: each document's UTF-8 bytes then EOT, cut into whole blocks per shard."""
    stream: list[int] = []
    for text in pq.read_table(shard, columns=["text"]).column("text").to_pylist():
        stream += list(text.encode()) + [EOT]
    blocks = len(stream) // WIDTH
    return np.asarray(stream[: blocks * WIDTH], np.int32).reshape(blocks, WIDTH)


def _pairs(shards: Path, out: Path) -> list[tuple[Path, Path]]:
    inputs = [shards / "shards" / s["path"] for s in manifest(shards / "shards")["shards"]]
    outputs = [out / s["path"] for s in manifest(out)["shards"]]
    assert len(inputs) == len(outputs) == 3
    return list(zip(inputs, outputs, strict=True))


def test_blocks_are_non_nullable_zstd_byte_stream_split_by_default(shards: Path) -> None:
    out = shards / "blocks"
    run_stage("tokenize", {"seq_len": WIDTH - 1}, out, input_path=shards / "shards")
    for source, shard in _pairs(shards, out):
        file = pq.ParquetFile(shard)
        field = file.schema_arrow.field("tokens")
        assert not field.nullable and not field.type.value_field.nullable
        assert field.type.list_size == WIDTH
        # a required list of required ids: one definition level (empty list or not), where
        # the nullable type had three
        leaf = file.schema.column(0)
        assert (leaf.max_definition_level, leaf.max_repetition_level) == (1, 1)
        for g in range(file.metadata.num_row_groups):
            chunk = file.metadata.row_group(g).column(0)
            assert chunk.compression == "ZSTD"
            # no dictionary for token ids: it costs readers more CPU than the bytes it saves
            assert "BYTE_STREAM_SPLIT" in chunk.encodings
            assert "RLE_DICTIONARY" not in chunk.encodings
        got = file.read().column("tokens").combine_chunks()
        want = _expected_blocks(source)
        assert np.array_equal(got.values.to_numpy().reshape(-1, WIDTH), want)


def test_explicit_write_options_are_kept(shards: Path) -> None:
    out = shards / "plain"
    options = WriteOptions(compression="none", use_dictionary=False, row_group_rows=7)
    run_stage(
        "tokenize",
        {"seq_len": WIDTH - 1},
        out,
        input_path=shards / "shards",
        write_options=options,
    )
    for source, shard in _pairs(shards, out):
        meta = pq.ParquetFile(shard).metadata
        groups = [meta.row_group(g) for g in range(meta.num_row_groups)]
        want = _expected_blocks(source)
        assert [g.num_rows for g in groups][:-1] == [7] * (len(groups) - 1)
        assert sum(g.num_rows for g in groups) == len(want)
        for g in groups:
            assert g.column(0).compression == "UNCOMPRESSED"
            assert "RLE_DICTIONARY" not in g.column(0).encodings
        blocks = pq.read_table(shard).column("tokens").combine_chunks()
        assert np.array_equal(blocks.values.to_numpy().reshape(-1, WIDTH), want)


@pytest.mark.parametrize("width", [2, 1025, 2049, 8193, 1 << 25])
def test_row_groups_of_blocks_are_capped_by_bytes(width: int) -> None:
    rows = block_write_options(WriteOptions(), width).row_group_rows
    assert 1 <= rows <= 65536
    assert rows == 1 or rows * 4 * width <= BLOCK_GROUP_BYTES  # at most the cap...
    assert rows == 65536 or (rows + 1) * 4 * width > BLOCK_GROUP_BYTES  # ...and no fewer
    assert block_write_options(WriteOptions(row_group_rows=100), width).row_group_rows <= 100
