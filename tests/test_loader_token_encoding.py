"""How token blocks are encoded on disk, and that the reader gives the same batches either way.

`tokenize` writes its ids BYTE_STREAM_SPLIT without a dictionary (cheaper to decode); datasets
written before, dictionary-encoded, must keep reading to the very same batches. Oracles: the
ids written, and the encodings Parquet records in each column chunk's metadata.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import column_chunks

torch = pytest.importorskip("torch")

from dataprep.dataset import Manifest, RollingShardWriter, WriteOptions, write_manifest  # noqa: E402
from dataprep.loader import ShardDataset, make_dataloader  # noqa: E402
from dataprep.stages.tokenize import (  # noqa: E402
    FAST_ZSTD_LEVEL,
    block_array,
    block_field,
    block_write_options,
)

WIDTH, ROWS = 64, 700


def _ids() -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.zipf(1.3, ROWS * WIDTH).clip(0, 50_000).astype(np.int32)


def _write(out: Path, options: WriteOptions) -> Path:
    """A dataset directory of `ROWS` blocks plus an id and a text column, in 3 shards."""
    schema = pa.schema(
        [("id", pa.int64()), ("text", pa.string()), block_field(WIDTH).with_name("value")]
    )
    out.mkdir()
    writer = RollingShardWriter(out, "part", schema, shard_rows=250, options=options)
    ids = np.arange(ROWS, dtype=np.int64)
    text = pa.array([f"doc {i % 13}" for i in range(ROWS)], pa.string())
    writer.write(
        pa.Table.from_arrays([pa.array(ids), text, block_array(_ids(), WIDTH)], schema=schema)
    )
    write_manifest(out, Manifest(schema, writer.close()))
    return out


def _encodings(folder: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for chunk in column_chunks(folder):
        found.setdefault(chunk.path_in_schema, set()).update(chunk.encodings)
    return found


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("encodings")
    before = WriteOptions(row_group_rows=100)  # how tokenize wrote blocks before: dictionary
    now = block_write_options(WriteOptions(row_group_rows=100), WIDTH, column="value")
    return _write(root / "dictionary", before), _write(root / "split", now)


def test_block_ids_are_byte_stream_split_and_other_columns_keep_the_dictionary(
    datasets: tuple[Path, Path],
) -> None:
    old, new = _encodings(datasets[0]), _encodings(datasets[1])
    assert "RLE_DICTIONARY" in old["value.list.element"]
    assert "BYTE_STREAM_SPLIT" in new["value.list.element"]
    assert "RLE_DICTIONARY" not in new["value.list.element"]
    for column in ("id", "text"):  # only the ids change encoding
        assert "RLE_DICTIONARY" in new[column]
    table = pq.read_table(datasets[1])
    assert np.array_equal(table.column("value").combine_chunks().values.to_numpy(), _ids())


def test_write_options_without_a_dictionary_stay_without_one(tmp_path: Path) -> None:
    options = block_write_options(WriteOptions(use_dictionary=False, compression="none"), WIDTH)
    kwargs = options.writer_kwargs(pa.schema([("id", pa.int64()), block_field(WIDTH)]))
    assert kwargs["use_dictionary"] is False
    assert kwargs["use_byte_stream_split"] == ["tokens.list.element"]
    assert block_write_options(options, WIDTH).split_columns == ("tokens",)  # not twice


@pytest.mark.parametrize("shuffle,workers", [(False, 0), (True, 0), (True, 2)])
def test_old_and_new_encodings_read_to_the_same_batches(
    datasets: tuple[Path, Path], shuffle: bool, workers: int
) -> None:
    got = []
    for folder in datasets:
        ds = ShardDataset(folder, columns=["id", "value"], batch_size=32, shuffle=shuffle, seed=4)
        got.append(list(make_dataloader(ds, num_workers=workers)))
    assert len(got[0]) == len(got[1]) == -(-ROWS // 32)
    for a, b in zip(*got, strict=True):
        assert torch.equal(a["id"], b["id"]) and torch.equal(a["value"], b["value"])
    ids = torch.cat([b["id"] for b in got[1]]).numpy()
    values = torch.cat([b["value"] for b in got[1]]).numpy()
    assert sorted(ids) == list(range(ROWS))
    assert np.array_equal(values, _ids().reshape(ROWS, WIDTH)[ids])  # each row's own ids


def _token_bytes(folder: Path) -> int:
    chunks = column_chunks(folder)
    return sum(c.total_compressed_size for c in chunks if "value" in c.path_in_schema)


def test_default_codec_writes_blocks_at_zstds_fast_level_and_keeps_a_chosen_level(
    tmp_path: Path,
) -> None:
    """The recipe's default (zstd 3) becomes zstd's fast level for blocks: still zstd, literals
    stored raw (more bytes than Huffman-coded level 1); a level or codec the user set is kept."""
    fast = block_write_options(WriteOptions(row_group_rows=100), WIDTH, column="value")
    assert (fast.compression, fast.compression_level) == ("zstd", FAST_ZSTD_LEVEL)
    chosen = WriteOptions(row_group_rows=100, compression_level=1)
    assert block_write_options(chosen, WIDTH).compression_level == 1
    lz4 = WriteOptions(compression="lz4")
    assert block_write_options(lz4, WIDTH).compression_level == lz4.compression_level
    kept = block_write_options(WriteOptions(), WIDTH, fast=False)  # truncate: text kept too
    assert kept.compression_level == WriteOptions().compression_level
    level1 = block_write_options(chosen, WIDTH, column="value")
    a, b = _write(tmp_path / "fast", fast), _write(tmp_path / "level1", level1)
    assert {c.compression for c in column_chunks(a)} == {"ZSTD"}
    assert _token_bytes(a) > _token_bytes(b)  # Huffman off: the only way the bytes grow
    for folder in (a, b):
        values = pq.read_table(folder).column("value").combine_chunks().values.to_numpy()
        assert np.array_equal(values, _ids())
