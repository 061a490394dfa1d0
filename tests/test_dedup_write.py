"""dedup's write phase: a shard that keeps every row is copied byte for byte when its input
was provably written with the output's encoding, and rewritten otherwise; either way the
rows are those of the rewrite and `dataprep verify` accepts the output."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import partition_pairs

from dataprep import dataset
from dataprep.dataset import WriteOptions
from dataprep.executors import make_executor
from dataprep.runner import config_digest, run_stage, validate_config
from dataprep.stages.dedup import DedupConfig
from dataprep.stages.dedup.stage import same_writer

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron".split()


def _doc(i: int) -> str:
    """A document of 60 words that shares few 5-word shingles with any other."""
    return " ".join(f"{WORDS[(i * 7 + k * (i % 5 + 1)) % len(WORDS)]}{i}-{k}" for k in range(60))


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three shards of 40 rows through `shard`: the middle one holds two copies of a row of
    the first (so it loses them), the others hold only unique rows."""
    root = tmp_path_factory.mktemp("dedup-write")
    rows = [{"id": f"r{i}", "text": _doc(i), "source": "abc"[i % 3]} for i in range(120)]
    rows[45]["text"] = rows[3]["text"]
    rows[61]["text"] = rows[3]["text"] + " tail"
    raw = root / "raw.jsonl"
    raw.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = root / "shards"
    run_stage(
        "shard", {"shard_rows": 40}, out, inputs=[str(raw)], executor=make_executor("local", 1)
    )
    return out


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the shards dedup's write tasks re-encode (open a `ShardWriter` for)."""
    from dataprep.stages.dedup import writing

    names: list[str] = []

    class Spy(writing.ShardWriter):  # type: ignore[misc, valid-type]
        def __init__(self, path, *args, **kwargs):  # type: ignore[no-untyped-def]
            names.append(Path(str(path)).name)
            super().__init__(path, *args, **kwargs)

    monkeypatch.setattr(writing, "ShardWriter", Spy)
    return names


def _dedup(src: Path, out: Path, options: WriteOptions = WriteOptions(), **params: object):
    return run_stage(
        "dedup",
        DedupConfig.parse({"method": "both", **params}),
        out,
        input_path=src,
        executor=make_executor("local", workers=1),
        write_options=options,
    )


def _files(root: Path) -> list[bytes]:
    return [(root / s.path).read_bytes() for s in dataset.read_manifest(root).shards]


def _ids(root: Path) -> list[str]:
    return dataset.read_rows(root, ["id"]).column("id").to_pylist()


def test_untouched_shards_are_copied_and_the_rows_are_the_rewrites(
    sharded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, opened: list[str]
) -> None:
    from dataprep.stages.dedup import stage

    run = _dedup(sharded, tmp_path / "out")
    assert opened == ["part-00001.parquet"]  # only the shard that loses rows is re-encoded
    # the oracle: the same run rewriting every shard (as before copies): same files, entries
    monkeypatch.setattr(stage, "same_writer", lambda *a: False)
    _dedup(sharded, tmp_path / "rewritten")
    assert len(opened) == 4
    assert _files(tmp_path / "out") == _files(tmp_path / "rewritten")
    rewritten = dataset.read_manifest(tmp_path / "rewritten").shards
    assert dataset.read_manifest(tmp_path / "out").shards == rewritten
    inputs, outputs = _files(sharded), _files(tmp_path / "out")
    assert outputs[0] == inputs[0] and outputs[2] == inputs[2] and outputs[1] != inputs[1]
    want = [f"r{i}" for i in range(120) if i not in (45, 61)]  # all but the two copies
    assert _ids(tmp_path / "out") == want
    assert dataset.verify_dataset(tmp_path / "out").rows == 118
    out_entries = dataset.read_manifest(tmp_path / "out").shards
    in_entries = dataset.read_manifest(sharded).shards
    for i in (0, 2):  # recorded as the file is: size, checksum, row groups; no partition
        footer = pq.ParquetFile(sharded / in_entries[i].path).metadata
        groups = [footer.row_group(g).num_rows for g in range(footer.num_row_groups)]
        assert out_entries[i].xxh3_128 == in_entries[i].xxh3_128
        assert out_entries[i].bytes == in_entries[i].bytes
        assert out_entries[i].row_groups == groups and out_entries[i].partition is None
    # rows 45 and 61 (sources a and b) are the removed copies; every row counts once
    by_source = {k: (v["rows"], v["removed"]) for k, v in run.report["by_source"].items()}
    assert by_source == {"a": (40, 1), "b": (40, 1), "c": (40, 0)}
    # the kept row of each example lies in a copied shard: its text is still fetched
    assert {e["kept_id"] for e in run.report["examples"]} == {"r3"}
    assert {e["kept_text"] for e in run.report["examples"]} == {_doc(3)[:160]}


def test_other_encoding_or_marks_mean_a_rewrite(
    sharded: Path, tmp_path: Path, opened: list[str]
) -> None:
    """A level the input was not written with, and --mark-only, rewrite every shard: the
    rows are the same, the bytes are the new encoding's."""
    inputs = _files(sharded)
    _dedup(sharded, tmp_path / "level", WriteOptions(compression_level=1))
    assert all(a != b for a, b in zip(_files(tmp_path / "level"), inputs, strict=True))
    assert _ids(tmp_path / "level") == [f"r{i}" for i in range(120) if i not in (45, 61)]
    _dedup(sharded, tmp_path / "mark", mark_only=True)
    assert all(a != b for a, b in zip(_files(tmp_path / "mark"), inputs, strict=True))
    assert dataset.read_manifest(tmp_path / "mark").rows == 120
    assert len(opened) == 6  # three shards, twice


def test_same_writer_is_the_runners_digest(sharded: Path) -> None:
    """The copy's evidence, the input's last lineage entry, is judged by the runner's own
    config digest: the same options match, any other option does not."""
    manifest = dataset.read_manifest(sharded)
    last = manifest.lineage[-1]
    config = validate_config(last.stage, last.config)
    assert config_digest(config, WriteOptions()) == last.config_digest
    assert same_writer(manifest.lineage, WriteOptions())
    for other in (
        WriteOptions(compression_level=1),
        WriteOptions(row_group_rows=1000),
        WriteOptions(page_checksums=False),
        WriteOptions(compression="snappy"),
    ):
        assert not same_writer(manifest.lineage, other)
    assert not same_writer([], WriteOptions())


def test_copies_from_and_to_s3_equal_the_local_ones(
    sharded: Path, tmp_path: Path, s3_bucket: str, opened: list[str]
) -> None:
    """Input and output on an object store: the copy streams through a spool file and is
    uploaded whole; the files equal the local run's, and `verify` accepts them."""
    from dataprep.storage import StoragePath

    remote = f"{s3_bucket}/shards"
    raw = str(sharded.parent / "raw.jsonl")
    run_stage("shard", {"shard_rows": 40}, remote, inputs=[raw], executor=make_executor("local", 1))
    _dedup(remote, f"{s3_bucket}/out")  # type: ignore[arg-type]
    assert opened == ["part-00001.parquet"]
    _dedup(sharded, tmp_path / "out")
    names = [s.path for s in dataset.read_manifest(f"{s3_bucket}/out").shards]
    got = [(StoragePath(f"{s3_bucket}/out") / name).read_bytes() for name in names]
    assert got == _files(tmp_path / "out")
    assert dataset.verify_dataset(f"{s3_bucket}/out").rows == 118


def test_a_shard_unlike_its_manifest_entry_is_not_copied(sharded: Path, tmp_path: Path) -> None:
    """The copy is checked against the input manifest's checksum: bytes that differ from it
    stop the run with one sentence naming the shard, and leave no output."""
    import dataclasses
    import shutil

    from dataprep.errors import DataprepError

    src = tmp_path / "in"
    shutil.copytree(sharded, src)
    manifest = dataset.read_manifest(src)
    wrong = dataclasses.replace(manifest.shards[2], xxh3_128="0" * 32)
    dataset.write_manifest(src, dataclasses.replace(manifest, shards=[*manifest.shards[:2], wrong]))
    name = manifest.shards[2].path.replace(".", r"\.")
    with pytest.raises(DataprepError, match=f"shard {name} is corrupt"):
        _dedup(src, tmp_path / "out")
    assert not (tmp_path / "out" / "part-00002.parquet").exists()


def test_kept_rows_equal_arrows_filter() -> None:
    """Oracle: `Table.filter`. Runs at both ends, none kept, all kept, nulls, a sliced batch
    (non-zero offsets) and nested, large and dictionary columns."""
    import numpy as np
    import pyarrow as pa

    from dataprep.stages.dedup.writing import _kept_rows

    rng = np.random.default_rng(3)
    n = 3000
    texts = [None if i % 97 == 0 else "x" * int(rng.integers(0, 50)) for i in range(n + 10)]
    table = pa.table(
        {
            "text": pa.array(texts, pa.string()),
            "big": pa.array(texts, pa.large_string()),
            "tags": pa.array([[i, i + 1] if i % 5 else None for i in range(n + 10)]),
            "source": pa.array(["a", "b", None] * ((n + 10) // 3) + ["a"]).dictionary_encode(),
            "score": pa.array(rng.random(n + 10)),
        }
    )
    batch = table.combine_chunks().to_batches()[0].slice(7, n)
    masks = [
        rng.random(n) > 0.25,
        rng.random(n) > 0.9,
        np.zeros(n, bool),
        np.ones(n, bool),
        np.r_[np.ones(5, bool), np.zeros(n - 10, bool), np.ones(5, bool)],
    ]
    for mask in masks:
        got = _kept_rows(batch, mask)
        want = pa.Table.from_batches([batch]).filter(pa.array(mask))
        assert got.equals(want) and got.schema.equals(want.schema, check_metadata=True)
        assert all(column.num_chunks <= 1 for column in got.columns)  # contiguous, as written


def test_a_one_worker_run_never_imports_pandas(sharded: Path, tmp_path: Path) -> None:
    """pyarrow imports pandas (~0.15-0.35 s CPU) at the first bool->numpy or list->array
    conversion or group_by; the default dedup path (sign with the kernel, bucket, verify,
    cluster, write, copy, report with examples and sources) makes none, driver or task."""
    import os
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from dataprep.executors import make_executor\n"
        "from dataprep.runner import run_stage\n"
        "from dataprep.stages.dedup import minhash\n"
        f"run = run_stage('dedup', {{'method': 'both'}}, {str(tmp_path / 'out')!r},\n"
        f"    input_path={str(sharded)!r}, executor=make_executor('local', workers=1))\n"
        "assert run.report['examples'] and run.report['by_source'], run.report\n"
        "print(minhash.kernel_module() is not None, 'pandas' in sys.modules)\n"
    )
    env = {**os.environ, "DATAPREP_DEDUP_KERNEL": "numba"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    kernel, pandas = proc.stdout.split()
    if kernel != "True":
        pytest.skip("the signature kernel cannot load here (its numpy path converts via pandas)")
    assert pandas == "False"


def test_per_source_counts_equal_a_python_count() -> None:
    """Oracle: a plain-Python tally; null sources count as "None", a source whose rows are
    all invalid is still listed (with 0 rows), dictionary and chunked sources alike."""
    import numpy as np
    import pyarrow as pa

    from dataprep.stages.dedup.writing import _count_sources

    rng = np.random.default_rng(8)
    names = ["web", "books", None, "code"]
    values = [names[i] for i in rng.integers(0, 4, 500)] + ["only-invalid"]
    valid = rng.random(501) > 0.1
    valid[-1] = False
    removed = valid & (rng.random(501) > 0.7)
    plain = pa.array(values)
    for source in (plain, plain.dictionary_encode(), pa.chunked_array([plain[:200], plain[200:]])):
        totals: dict[str, list[int]] = {"web": [3, 1]}  # carried over from an earlier batch
        _count_sources(totals, source, valid, removed)
        want: dict[str, list[int]] = {"web": [3, 1]}
        for name, v, r in zip(values, valid.tolist(), removed.tolist(), strict=True):
            entry = want.setdefault(str(name), [0, 0])
            entry[0] += v
            entry[1] += r
        assert totals == want and totals["only-invalid"] == [0, 0]


@pytest.mark.parametrize("mark_only", [False, True])
@pytest.mark.parametrize("dictionary", [False, True])
def test_rewrites_equal_a_whole_window_rewrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mark_only: bool, dictionary: bool
) -> None:
    """Oracle: each input window of `row_group_rows` rows read at once, filtered with Arrow
    and written by a plain `ShardWriter` (the write phase before it read small batches).
    Windows cross input row groups and small batches (7 rows: a window ends mid-batch), rows
    with null text are dropped; a dictionary column takes the whole-window reads."""
    import numpy as np
    import pyarrow as pa

    from dataprep.stages.dedup import writing

    monkeypatch.setattr(writing, "BATCH_ROWS", 7)
    rng = np.random.default_rng(5)
    texts: list[str | None] = [_doc(i) for i in range(300)]
    for i in rng.choice(np.arange(10, 300), 60, replace=False).tolist():
        texts[i] = texts[int(rng.integers(0, 10))]  # copies of the first ten rows
    for i in (5, 77, 78, 200):
        texts[i] = None
    source = pa.array(["web", "books", "code"] * 100)
    table = pa.table(
        {
            "id": [f"r{i}" for i in range(300)],
            "text": pa.array(texts, pa.string()),
            "source": source.dictionary_encode() if dictionary else source,
        }
    )
    src = tmp_path / "in"
    src.mkdir()
    entries = []
    for k, start in enumerate((0, 130)):
        writer = dataset.ShardWriter(
            src / f"part-{k:05d}.parquet", table.schema, WriteOptions(row_group_rows=40)
        )
        writer.write(table.slice(start, 170 if k == 0 else 130))
        entries.append(writer.close())
    dataset.write_manifest(src, dataset.Manifest(table.schema, entries))
    options = WriteOptions(row_group_rows=50, compression_level=1)
    out = tmp_path / "out"
    _dedup(src, out, options, mark_only=mark_only)
    shards = dataset.read_manifest(out).shards
    rows = dataset.read_manifest(out).rows
    assert len(shards) == 2 and (rows == 296 if mark_only else rows <= 236)  # valid / kept
    for k, entry in enumerate(shards):
        written = pq.read_table(out / entry.path)
        ids = written.column("id").to_pylist()
        kept = set(ids)
        marks = {
            name: dict(zip(ids, written.column(name).to_pylist(), strict=True))
            for name in ("dup_cluster", "dup_keep")
            if mark_only
        }
        oracle = tmp_path / f"oracle-{k}.parquet"
        with dataset.ShardWriter(oracle, written.schema, options) as writer:
            for batch in pq.ParquetFile(src / f"part-{k:05d}.parquet").iter_batches(50):
                window = pa.Table.from_batches([batch])
                names = window.column("id").to_pylist()
                for name, by_id in marks.items():
                    values = [by_id.get(i) for i in names]
                    kind = pa.int64() if name == "dup_cluster" else pa.bool_()
                    window = window.append_column(name, pa.array(values, kind))
                window = window.filter(pa.array([i in kept for i in names]))
                writer.write(window.cast(written.schema))
        assert (out / entry.path).read_bytes() == oracle.read_bytes()


def test_gathered_windows_equal_arrows_filter() -> None:
    """Oracle: `Table.filter` of each batch, concatenated. Several batches a window (sliced,
    so non-zero offsets), string/binary/large columns with nulls and empty values, an
    all-null batch, capacities too small (the buffer grows) and none at all, other columns."""
    import numpy as np
    import pyarrow as pa

    from dataprep.stages.dedup.gather import KeptRows

    rng = np.random.default_rng(11)
    n = 2000
    texts = [None if i % 53 == 0 else "é" * int(rng.integers(0, 40)) for i in range(n)]
    texts[100:140] = [None] * 40
    table = pa.table(
        {
            "text": pa.array(texts, pa.string()),
            "raw": pa.array([t.encode() if t else b"" for t in texts], pa.binary()),
            "big": pa.array(texts, pa.large_string()),
            "tags": pa.array([[i] if i % 3 else None for i in range(n)]),
            "score": pa.array(rng.random(n)),
        }
    )
    whole = table.combine_chunks().to_batches()[0]
    empty = pa.RecordBatch.from_pylist([], schema=whole.schema)
    assert not KeptRows(whole.schema, {}).add(empty, np.zeros(0, bool))  # no buffers at all
    cuts = [0, 3, 3, 100, 140, 900, 901, 1500, n]  # [100, 140) is all null, [3, 3) empty
    for capacity in ({}, {"text": 10, "raw": 1, "big": 10**6}):
        for kept in (rng.random(n) > 0.25, np.zeros(n, bool), np.ones(n, bool)):
            gathered = KeptRows(whole.schema, capacity)
            want = []
            for a, b in zip(cuts, cuts[1:], strict=False):
                batch = whole.slice(a, b - a)
                assert gathered.add(batch, kept[a:b]) == kept[a:b].sum()
                want.append(pa.Table.from_batches([batch]).filter(pa.array(kept[a:b])))
            got = gathered.table()
            assert got.equals(pa.concat_tables(want)) and got.schema.equals(whole.schema)
            assert all(column.num_chunks == 1 for column in got.columns)  # contiguous


def test_a_partitioned_dataset_keeps_its_partitions(
    sharded: Path, tmp_path: Path, opened: list[str]
) -> None:
    """dedup after `partition` keeps each shard's partition tag and its pNNNNN- file name,
    rewritten or copied (both were dropped: every shard untagged, named part-NNNNN); each
    output shard holds its input shard's rows less the removed copies."""
    part = tmp_path / "part"
    run_stage(
        "partition",
        {"key": "id", "partitions": 3},
        part,
        input_path=sharded,
        executor=make_executor("local", 1),
    )
    _dedup(part, tmp_path / "out")
    pairs = partition_pairs(part, tmp_path / "out")
    assert opened and len(opened) < len(pairs)  # some rewritten, some copied
    removed = {"r45", "r61"}
    for want, got in pairs:
        assert got.column("id").to_pylist() == [i for i in want if i not in removed]
    assert dataset.verify_dataset(tmp_path / "out").rows == 118
