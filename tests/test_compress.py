"""compress: same rows out as in, the encoding asked for, and a report that adds up.

Oracles: the input read with plain pyarrow (rows), the output files' own Parquet footers
(codec, row groups, per-column sizes) and the file sizes on disk (bytes before/after).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from helpers import cli, column_chunks, partition_pairs

from dataprep import crypto, dataset
from dataprep.dataset import ReadOptions
from dataprep.errors import DataprepError
from dataprep.executors import make_executor
from dataprep.runner import run_stage
from dataprep.stages.compress import CompressConfig
from dataprep.stages.shard import ShardConfig

INLINE = make_executor("local", workers=1)
PARQUET_NAME = {"zstd": "ZSTD", "lz4": "LZ4", "snappy": "SNAPPY", "gzip": "GZIP"}


@pytest.fixture(scope="module")
def shards(corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("compress") / "shards"
    run_stage("shard", ShardConfig(shard_rows=400), out, inputs=[str(corpus_dir)], executor=INLINE)
    return out


def _footer_sizes(root: Path) -> dict[str, list[int]]:
    sizes: dict[str, list[int]] = {}
    for chunk in column_chunks(root, "part-*.parquet"):
        acc = sizes.setdefault(chunk.path_in_schema.split(".")[0], [0, 0])
        acc[0] += chunk.total_compressed_size
        acc[1] += chunk.total_uncompressed_size
    return sizes


@pytest.mark.parametrize(
    "codec,level", [("zstd", 9), ("zstd", 1), ("lz4", None), ("snappy", None), ("gzip", 6)]
)
def test_codecs_keep_rows_and_report_adds_up(shards: Path, codec: str, level) -> None:
    out = shards.parent / f"{codec}-{level}"
    run = run_stage(
        "compress", {"codec": codec, "level": level}, out, input_path=shards, executor=INLINE
    )
    assert dataset.read_rows(out).equals(dataset.read_rows(shards))
    dataset.verify_dataset(out)
    for path in out.glob("part-*.parquet"):
        meta = pq.ParquetFile(path).metadata
        codecs = {meta.row_group(0).column(i).compression for i in range(meta.num_columns)}
        assert codecs == {PARQUET_NAME[codec]}
    report = run.report
    before = sum(p.stat().st_size for p in shards.glob("part-*.parquet"))
    after = sum(p.stat().st_size for p in out.glob("part-*.parquet"))
    assert report["bytes_before"] == before and report["bytes_after"] == after
    footer = _footer_sizes(out)
    before_cols = _footer_sizes(shards)
    assert set(report["columns"]) == set(footer)
    for name, col in report["columns"].items():
        assert col["after"] == footer[name][0] and col["uncompressed"] == footer[name][1]
        assert col["before"] == before_cols[name][0]
        assert col["ratio"] == pytest.approx(footer[name][1] / footer[name][0], rel=1e-2)
    assert report["mb_per_s"] > 0


def test_none_codec_is_uncompressed_and_higher_levels_are_not_bigger(shards: Path) -> None:
    sizes = {}
    for codec, level, page in [
        ("none", None, "1MiB"),
        ("zstd", 1, "1MiB"),
        ("zstd", 19, "1MiB"),
        ("zstd", 19, "16MB"),
    ]:
        out = shards.parent / f"lvl-{codec}-{level}-{page}"
        config = {"codec": codec, "level": level, "page_bytes": page}
        run = run_stage("compress", config, out, input_path=shards, executor=INLINE)
        sizes[(codec, level, page)] = run.report["columns"]["text"]["after"]
        assert dataset.read_rows(out).equals(dataset.read_rows(shards))
    assert sizes[("zstd", 19, "1MiB")] <= sizes[("zstd", 1, "1MiB")] < sizes[("none", None, "1MiB")]
    assert sizes[("zstd", 19, "16MB")] <= sizes[("zstd", 19, "1MiB")]  # longer matches


def test_row_groups_dictionary_and_sort(shards: Path) -> None:
    out = shards.parent / "sorted"
    config = {"row_group_rows": 64, "dictionary": False, "sort_by": ["label", "source"]}
    run_stage("compress", config, out, input_path=shards, executor=INLINE)
    manifest = dataset.read_manifest(out)
    source = dataset.read_manifest(shards)
    for shard, original in zip(manifest.shards, source.shards, strict=True):
        file = pq.ParquetFile(out / shard.path)
        groups = [file.metadata.row_group(i).num_rows for i in range(file.metadata.num_row_groups)]
        assert groups == shard.row_groups and max(groups) <= 64 and sum(groups) == original.rows
        encodings = {
            e
            for i in range(file.metadata.num_columns)
            for e in file.metadata.row_group(0).column(i).encodings
        }
        assert "RLE_DICTIONARY" not in encodings and "PLAIN_DICTIONARY" not in encodings
        table = file.read()
        keys = list(zip(table["label"].to_pylist(), table["source"].to_pylist(), strict=True))
        assert keys == sorted(keys)  # brute-force check of the per-shard order
        plain = pq.read_table(shards / original.path)
        assert Counter(table["id"].to_pylist()) == Counter(plain["id"].to_pylist())
        joined = plain.join(table, "id", right_suffix="_new")
        assert pc.all(pc.equal(joined["text"], joined["text_new"])).as_py()


def test_bad_options_are_clear(shards: Path) -> None:
    with pytest.raises(DataprepError, match="levels run from"):
        CompressConfig.parse({"codec": "zstd", "level": 40})
    with pytest.raises(DataprepError, match="takes no level"):
        CompressConfig.parse({"codec": "snappy", "level": 3})
    with pytest.raises(DataprepError, match="unknown"):
        CompressConfig.parse({"codec": "zstd", "colour": 3})
    with pytest.raises(DataprepError, match="--sort-by 'nope' is not a column"):
        run_stage("compress", {"sort_by": ["nope"]}, shards.parent / "x", input_path=shards)


def test_encrypted_input_stays_encrypted(shards: Path, tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    crypto.generate_key_file(keys)
    enc = tmp_path / "enc"
    config = {"key_file": str(keys), "columns": ["text", "id"]}
    run_stage("encrypt", config, enc, input_path=shards, executor=INLINE)
    out = tmp_path / "packed"
    with pytest.raises(DataprepError, match="is encrypted.*--key-file"):
        run_stage("compress", {"level": 12}, out, input_path=enc, executor=INLINE)
    run = run_stage(
        "compress", {"level": 12}, out, input_path=enc, executor=INLINE, key_file=str(keys)
    )
    manifest = dataset.read_manifest(out)
    assert manifest.encryption == dataset.read_manifest(enc).encryption
    reader = ReadOptions(str(keys), manifest.encryption)
    got = pa.concat_tables(reader.open(out / s.path).read() for s in manifest.shards)
    assert got.equals(dataset.read_rows(shards))
    assert run.report["columns"]["text"]["after"] > 0


@pytest.mark.parametrize("sort", [False, True], ids=["stream", "sorted"])
def test_a_partitioned_dataset_keeps_its_partitions(
    shards: Path, tmp_path: Path, sort: bool
) -> None:
    """`compress` after `partition` keeps each shard's partition tag and its pNNNNN- file
    name, so the report's rows per partition and a glob of one partition still hold (they
    were dropped: every shard untagged, named part-NNNNN); the rows of each shard are the
    input shard's (as a multiset when sorted)."""
    part = tmp_path / "part"
    cli("partition", shards, "-o", part, "--key", "id", "--partitions", "3")
    args = ["--sort-by", "id"] if sort else []
    cli("compress", part, "-o", tmp_path / "c", "--codec", "zstd", "--level", "9", *args)
    before, after = dataset.read_manifest(part), dataset.read_manifest(tmp_path / "c")
    assert [s.rows for s in after.shards] == [s.rows for s in before.shards]
    for want, table in partition_pairs(part, tmp_path / "c"):
        got = table.column("id").to_pylist()
        assert (sorted(got) == sorted(want) == got) if sort else got == want
