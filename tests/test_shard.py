"""The shard stage: every input format, sizing, ids, quarantine and clear errors.

The oracle is a plain-Python read of the same input files (json.loads per line).
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from helpers import cli, column, manifest

from dataprep.executors.local import LocalExecutor
from dataprep.runner import run_stage


def _words(i: int) -> str:
    """Poorly compressible text, so byte-sized shards really fill up."""
    return " ".join(f"{(i * 7919 + k * 104729) % 99991:x}" for k in range(i % 23))


def _docs(n: int, start: int = 0) -> list[dict]:
    return [
        {"text": f"document number {i} " + _words(i), "score": i % 5}
        for i in range(start, start + n)
    ]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    if path.suffix == ".zst":
        data = zstandard.ZstdCompressor().compress(data)
    elif path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def _shard(inputs: list, out: Path, workers: int = 1, **config) -> dict:
    run = run_stage(
        "shard", config, out, inputs=[str(p) for p in inputs], executor=LocalExecutor(workers)
    )
    return run.report


def _good_lines(path: Path, text: str = "text") -> dict[str, str]:
    """Oracle: id -> text for every line json.loads accepts and that has a string text."""
    raw = path.read_bytes()
    if path.suffix == ".zst":
        raw = zstandard.ZstdDecompressor().stream_reader(raw).read()
    expected = {}
    for number, line in enumerate(raw.split(b"\n"), start=1):
        try:
            row = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(row, dict) and isinstance(row.get(text), str):
            expected[f"{path.name}:{number}"] = row[text]
    return expected


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.zst", ".jsonl.gz"])
def test_jsonl_variants_keep_every_row_with_stable_ids(tmp_path: Path, suffix: str) -> None:
    src = _write_jsonl(tmp_path / f"in{suffix}", _docs(2500))
    report = _shard([src], tmp_path / "out", shard_rows=1000)
    texts = column(tmp_path / "out", "text")
    ids = column(tmp_path / "out", "id")
    assert report["rows_out"] == 2500 and report["quarantined"] == 0
    assert texts == [d["text"] for d in _docs(2500)]
    assert ids == [f"in{suffix}:{n}" for n in range(1, 2501)]
    assert [s["rows"] for s in manifest(tmp_path / "out")["shards"]] == [1000, 1000, 500]
    assert column(tmp_path / "out", "score") == [d["score"] for d in _docs(2500)]


def test_sample_corpus_quarantine_matches_oracle(corpus_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = _shard([corpus_dir], out, workers=2, shard_rows=400)
    truth = json.loads((corpus_dir / "corpus.json").read_text())
    expected: dict[str, str] = {}
    for name in truth["files"]:
        expected.update(_good_lines(corpus_dir / name))
    got = dict(zip(column(out, "id"), column(out, "text"), strict=True))
    assert got == expected
    assert report["rows_out"] == truth["docs"]
    assert report["quarantined"] == truth["malformed"]
    assert report["rows_in"] == truth["docs"] + truth["malformed"]
    quarantined = [json.loads(x) for x in (out / ".quarantine.jsonl").read_text().splitlines()]
    assert len(quarantined) == truth["malformed"]
    reasons = {q["reason"].split(":")[0] for q in quarantined}
    assert {"invalid JSON", "invalid UTF-8", "missing field 'text'"} <= reasons
    for q in quarantined:  # each points at a real line that the oracle rejects
        assert q["source"] in truth["files"] and f"{q['source']}:{q['line']}" not in expected


def test_big_file_split_into_ranges_matches_unsplit(tmp_path: Path) -> None:
    rows = _docs(6000)
    rows[1234] = {"score": 1}  # missing text, in the middle of some range
    src = _write_jsonl(tmp_path / "big.jsonl", rows)
    with open(src, "ab") as f:
        f.write(b'{"text": "broken\n{"text": "last one"}\n')
    split = _shard([src], tmp_path / "split", workers=2, shard_rows=700, chunk_bytes=40_000)
    whole = _shard([src], tmp_path / "whole", shard_rows=700)
    assert split["tasks"] > 5 and whole["tasks"] == 1
    assert column(tmp_path / "split", "id") == column(tmp_path / "whole", "id")
    assert dict(
        zip(column(tmp_path / "split", "id"), column(tmp_path / "split", "text"), strict=True)
    ) == _good_lines(src)
    lines = [json.loads(x)["line"] for x in (tmp_path / "split/.quarantine.jsonl").open()]
    assert sorted(lines) == [1235, 6001]


def test_small_blocks_reuse_one_buffer_and_keep_every_row(tmp_path: Path) -> None:
    """Each JSONL block is read into the buffer the previous one was parsed from (while the
    writer still holds earlier tables): rows must not share its bytes. Oracle: json.loads per
    line, over ~300 blocks of 4 KiB with escapes, non-ASCII text and a few bad lines."""
    rows = [dict(d, text=d["text"] + ' "q" \\ é 中') for d in _docs(3000)]
    lines = [json.dumps(r, ensure_ascii=i % 2 == 0) for i, r in enumerate(rows)]
    lines[1500] = '{"text": "cut'
    lines[2500] = '{"score": 2}'
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = _shard([src], tmp_path / "out", workers=2, block_bytes=4096, chunk_bytes=200_000)
    got = dict(zip(column(tmp_path / "out", "id"), column(tmp_path / "out", "text"), strict=True))
    assert got == _good_lines(src) and len(got) == 2998
    assert report["quarantined"] == 2 and report["tasks"] > 1


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_a_big_block_size_costs_no_memory_on_small_files(tmp_path: Path, suffix: str) -> None:
    """`block_bytes` is the most read at once, not memory every file pays: 40 small files
    (plain, and compressed, whose size is not known ahead) with 512 MB blocks keep the
    process's peak RSS where 1 MiB blocks keep it."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(40):
        _write_jsonl(inputs / f"in{i}{suffix}", _docs(20, start=i * 20))
    code = (
        "import resource, sys; from dataprep.runner import run_stage; "
        "from dataprep.executors.local import LocalExecutor; "
        "run_stage('shard', {'block_bytes': int(sys.argv[2])}, sys.argv[1], "
        f"inputs=[{str(inputs)!r}], executor=LocalExecutor(1)); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    peak = {}
    for block in (1 << 20, 512 << 20):
        out = tmp_path / f"out{block}"
        run = subprocess.run(
            [sys.executable, "-c", code, str(out), str(block)],
            capture_output=True,
            text=True,
            check=True,
        )
        peak[block] = int(run.stdout.split()[-1]) * 1024
        assert len(column(out, "text")) == 800
    assert peak[512 << 20] < peak[1 << 20] + (64 << 20), peak


def test_big_file_on_s3_split_into_ranges_matches_local(tmp_path: Path, s3_bucket: str) -> None:
    """The ranges of a remote file are planned by reading it as a stream, as a local one's:
    same rows, ids (SOURCE:LINE) and quarantined line as the unsplit local read."""
    from dataprep.storage import StoragePath

    rows = _docs(3000)
    rows[2000] = {"score": 1}  # missing text: quarantined with its line
    src = _write_jsonl(tmp_path / "big.jsonl", rows)
    remote = f"{s3_bucket}/in/big.jsonl"
    copy = tmp_path / "upload.jsonl"
    copy.write_bytes(src.read_bytes())
    StoragePath(remote).upload_from(copy)  # moves it
    split = _shard([remote], tmp_path / "split", workers=2, chunk_bytes=30_000)
    whole = _shard([src], tmp_path / "whole")
    assert split["tasks"] > 5 and whole["tasks"] == 1
    assert column(tmp_path / "split", "id") == column(tmp_path / "whole", "id")
    assert column(tmp_path / "split", "text") == column(tmp_path / "whole", "text")
    lines = [json.loads(x)["line"] for x in (tmp_path / "split/.quarantine.jsonl").open()]
    assert lines == [2001]


def test_big_file_with_ids_on_s3_is_cut_and_numbered_as_local(
    tmp_path: Path, s3_bucket: str
) -> None:
    """Ranges of a remote file whose rows have ids are cut by seeking (a few KB read at each
    cut) and a range counts the lines before it only for a row that needs its number: the
    same rows, ids (given and SOURCE:LINE) and quarantined line as the unsplit local read."""
    from dataprep.storage import StoragePath

    rows = [dict(d, id=f"d{i}") for i, d in enumerate(_docs(3000))]
    rows[2000] = {"id": "no text", "score": 1}  # quarantined with its line
    rows[2500] = {"text": "no id"}  # gets SOURCE:LINE
    src = _write_jsonl(tmp_path / "big.jsonl", rows)
    copy = tmp_path / "upload.jsonl"
    copy.write_bytes(src.read_bytes())
    remote = f"{s3_bucket}/in/big.jsonl"
    StoragePath(remote).upload_from(copy)  # moves it
    split = _shard([remote], tmp_path / "split", workers=2, chunk_bytes=30_000)
    whole = _shard([src], tmp_path / "whole")
    assert split["tasks"] > 5 and whole["tasks"] == 1
    ids = column(tmp_path / "split", "id")
    assert ids == column(tmp_path / "whole", "id") and "big.jsonl:2501" in ids
    lines = [json.loads(x)["line"] for x in (tmp_path / "split/.quarantine.jsonl").open()]
    assert lines == [2001]


def test_csv_parquet_and_text_inputs(tmp_path: Path) -> None:
    rows = {  # the first file fixes the schema (score: int64); the second breaks it
        "a.csv": [["text", "score"], ["hello, world", "1"], ["multi\nline", "2"]],
        "b.csv": [
            ["text", "score"],
            ["bad score", "notanumber"],
            ["too", "many", "x"],
            ["ok", "3"],
        ],
    }
    for name, lines in rows.items():
        with open(tmp_path / name, "w", newline="") as f:
            csv.writer(f).writerows(lines)
    _shard([tmp_path / "a.csv", tmp_path / "b.csv"], tmp_path / "csv")
    assert column(tmp_path / "csv", "text") == ["hello, world", "multi\nline", "ok"]
    assert column(tmp_path / "csv", "score") == [1, 2, 3]
    bad = [json.loads(x) for x in (tmp_path / "csv/.quarantine.jsonl").open()]
    assert sorted(q["source"] for q in bad) == ["b.csv", "b.csv"]

    table = pa.table({"text": ["x", None, "z"], "lang": ["en", "de", "fr"], "id": [7, 8, 9]})
    pq.write_table(table, tmp_path / "p.parquet")
    _shard([tmp_path / "p.parquet"], tmp_path / "pq")
    assert column(tmp_path / "pq", "id") == [7, 9]
    assert column(tmp_path / "pq", "lang") == ["en", "fr"]

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "one.txt").write_text("first document\nspans lines")
    (docs / "two.txt").write_bytes(b"bad \xff utf8")
    (docs / "lines.txt").write_text("a\n\nb\n")
    _shard([docs], tmp_path / "txt")
    assert dict(
        zip(column(tmp_path / "txt", "id"), column(tmp_path / "txt", "text"), strict=True)
    ) == {"lines.txt": "a\n\nb\n", "one.txt": "first document\nspans lines"}
    _shard([docs / "lines.txt"], tmp_path / "lines", lines=True)
    assert column(tmp_path / "lines", "id") == ["lines.txt:1", "lines.txt:3"]


def test_globs_keep_and_shard_bytes(tmp_path: Path) -> None:
    for i in range(3):
        _write_jsonl(tmp_path / f"part{i}.jsonl", _docs(800, start=i * 800))
    out = tmp_path / "out"
    _shard([str(tmp_path / "part*.jsonl")], out, shard_bytes="20KB", keep=[])
    shards = manifest(out)["shards"]
    assert len(shards) >= 4  # the ~31 KB files share one task: full shards, then one tail
    assert all(s["bytes"] < 20_000 * 1.5 for s in shards)
    assert all(s["bytes"] > 20_000 * 0.5 for s in shards[:-1])
    assert manifest(out)["schema"]["fields"] == [
        {"name": "id", "type": "string"},
        {"name": "text", "type": "string"},
    ]
    assert sorted(column(out, "text")) == sorted(d["text"] for d in _docs(2400))


def test_bad_paths_and_columns_stop_with_exit_2(tmp_path: Path) -> None:
    missing = cli("shard", tmp_path / "nope.jsonl", "-o", tmp_path / "o", check=False)
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr and "Traceback" not in missing.stderr
    src = _write_jsonl(tmp_path / "in.jsonl", _docs(10))
    wrong = cli("shard", src, "-o", tmp_path / "o", "--text-column", "body", check=False)
    assert wrong.returncode == 2 and "--text-column" in wrong.stderr
    assert not (tmp_path / "o" / ".manifest.json").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = cli("shard", empty, "-o", tmp_path / "o3", check=False)
    assert nothing.returncode == 2 and "no readable input files" in nothing.stderr


JSON_VALUES = [None, "a", "\ud800", True, 0, -5, 2**53, 2**53 + 1, 2**63 - 1, 2**63, 2**64]
JSON_VALUES += [-(2**63), -(2**63) - 1, 1.5, float("nan"), [1], {"a": 1}]


def test_schema_inference_types_are_arrows() -> None:
    """The sample's column types are told without `pa.array` for flat values (it imports
    pandas); oracle: `pa.array(values).type`, a value Arrow cannot take making the column text."""
    from dataprep.stages.readers_jsonl import value_type

    unfit = (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeEncodeError, OverflowError)

    def typed(fn, values):
        try:
            return fn(values)
        except unfit:
            return pa.string()

    for k in range(4):
        for values in itertools.product(JSON_VALUES, repeat=k):
            expected = typed(lambda v: pa.array(v).type, list(values))
            assert typed(value_type, list(values)) == expected, values


def test_integer_too_big_for_arrow_in_the_sample_is_no_traceback(tmp_path: Path) -> None:
    src = tmp_path / "big.jsonl"
    src.write_text('{"text": "a", "n": 18446744073709551616}\n{"text": "b", "n": "x"}\n')
    report = _shard([src], tmp_path / "out")
    assert manifest(tmp_path / "out")["schema"]["fields"][2] == {"name": "n", "type": "string"}
    assert report["rows_in"] == 2 and report["quarantined"] == 0
    assert column(tmp_path / "out", "text") == ["a", "b"]  # 2**64 in a string field: its text
    assert column(tmp_path / "out", "n") == ["18446744073709551616", "x"]


@pytest.mark.parametrize("module", ["pandas", "pyarrow.compute"])
def test_clean_jsonl_never_imports_pandas(tmp_path: Path, module: str) -> None:
    """pyarrow imports pandas on its first `pa.array`/`pa.scalar` (~0.3 s of CPU per process),
    and `pyarrow.compute` costs ~25 ms to import (the pyarrow peer never loads it): the shard
    path of clean JSONL, ids present or generated (a range's too), builds its arrays without
    them."""
    rows = [{"id": f"d{i}", "text": f"doc {i}", "score": i / 3} for i in range(500)]
    with_ids = _write_jsonl(tmp_path / "ids.jsonl", rows)
    no_ids = _write_jsonl(tmp_path / "noids.jsonl", [{"text": r["text"]} for r in rows])
    runs = ((with_ids, tmp_path / "a"), (no_ids, tmp_path / "b"))
    assert not _shard_imports_pandas(*runs, module=module, config="{'chunk_bytes': 4000}")
    assert column(tmp_path / "a", "id") == [r["id"] for r in rows]
    assert column(tmp_path / "b", "id") == [f"noids.jsonl:{n}" for n in range(1, 501)]


def test_generated_ids_are_the_source_and_line() -> None:
    """`numbered_ids` writes SOURCE:LINE with numpy (no pyarrow.compute): every digit count,
    a shift, chunks, a non-ASCII prefix, none. Oracle: Python's f-string."""
    from dataprep.stages.readers_common import int64s, numbered_ids

    numbers = [0, 1, 9, 10, 11, 99, 100, 101, 12345, 10**17, 10**18 - 1, 2**62, 7]
    got = numbered_ids("données.jsonl:", int64s(numbers))
    got.validate(full=True)
    assert got.to_pylist() == [f"données.jsonl:{n}" for n in numbers]
    chunked = pa.chunked_array([int64s([1, 2]), int64s([]), int64s([30])])
    assert numbered_ids("a:", chunked, 9).to_pylist() == ["a:10", "a:11", "a:39"]
    assert numbered_ids("a:", pa.chunked_array([], pa.int64())).to_pylist() == []


def _shard_imports_pandas(
    *runs: tuple[Path, Path], module: str = "pandas", config: str = "{}"
) -> bool:
    """Shard each (input, output) with one in-process worker in a fresh interpreter: whether
    `module` (pandas) got imported on the way."""
    calls = "".join(
        f"run_stage('shard', {config}, {str(out)!r}, inputs=[{str(src)!r}], "
        "executor=LocalExecutor(1)); "
        for src, out in runs
    )
    code = (
        "import sys; from dataprep.runner import run_stage; "
        "from dataprep.executors.local import LocalExecutor; "
        f"{calls}print({module!r} in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip() != "False"


def test_bad_lines_never_import_pandas(tmp_path: Path) -> None:
    """A worker that meets a cut line, a misfit value, invalid UTF-8 or a missing text reads
    that piece in Python; its rows go back to Arrow without `pa.array` (whose first call
    imports pandas: ~0.35 s of CPU in each such worker). Oracle: json.loads per line."""
    rows = [
        {"id": f"d{i}", "text": f"doc {i} é " + _words(i) * 9, "score": i / 3} for i in range(3000)
    ]
    lines = [json.dumps(r).encode() for r in rows]
    assert sum(map(len, lines[:2000])) > 1 << 20  # the bad lines come after the schema sample
    bad = {
        2100: b'{"id": "cut", "text": "a line cut in the mid',
        2400: b'{"id": "m", "score": "x"}',
    }
    bad |= {2700: b'{"id": "u", "text": "bad \xff utf8"}', 2900: b'{"id": "n", "score": 2.5}'}
    for i, line in bad.items():
        lines[i] = line
    src = tmp_path / "bad.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    assert not _shard_imports_pandas((src, tmp_path / "out"))
    kept = [r for i, r in enumerate(rows) if i not in bad]
    assert column(tmp_path / "out", "text") == [r["text"] for r in kept]
    assert column(tmp_path / "out", "score") == [r["score"] for r in kept]
    quarantined = [json.loads(x) for x in (tmp_path / "out/.quarantine.jsonl").open()]
    assert sorted(q["line"] for q in quarantined) == [i + 1 for i in bad]


def test_mixed_types_in_the_schema_sample_are_text_without_pandas() -> None:
    """A field whose sampled values mix text with numbers or booleans is a string column, as
    `pa.array` (which fails on them) said, without its first call importing pandas."""
    code = (
        "import sys; from dataprep.stages.readers_jsonl import value_type; "
        "print([str(value_type(v)) for v in (['a', 1.5], [2, 'b', None], [True, 'c'])], "
        "'pandas' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['string', 'string', 'string'] False"


def test_rows_read_in_python_equal_pyarrows_from_pylist(tmp_path: Path) -> None:
    """The Python path's good rows (escapes, non-ASCII, NaN and huge floats, int64 limits,
    numeric ids kept as text, nulls, nested values) make the table `pa.Table.from_pylist` made
    of the same rows."""
    from dataprep.sources import resolve
    from dataprep.stages import readers_jsonl as rj

    schema = pa.schema(
        [
            ("id", pa.string()),
            ("text", pa.string()),
            ("score", pa.float64()),
            ("n", pa.int64()),
            ("ok", pa.bool_()),
            ("tags", pa.list_(pa.string())),
            ("meta", pa.struct([("a", pa.int64())])),
        ]
    )
    lines = [
        b'{"id": 7, "text": "tab\\t \\"q\\" \\\\ \\u00e9 \xc3\xa9 \xe4\xb8\xad", "score": 1e308, '
        b'"n": 9223372036854775807, "ok": true, "tags": ["x", "y"], "meta": {"a": -3}}',
        b'{"id": "b", "text": "", "score": NaN, "n": -9223372036854775808, "ok": false}',
        b'{"id": 1.5, "text": "line\\nbreak", "score": 3, "n": 0, "tags": [], "meta": null}',
        b'{"id": null, "text": "x", "score": -0.0, "n": null, "ok": null, "tags": null}',
        b"not json",
        b'{"id": "s", "text": "x", "n": "abc"}',
    ]
    src = resolve([str(_write_jsonl(tmp_path / "in.jsonl", []))], "auto")[0]
    records = _Records()
    table = rj._parse_lines_slowly(b"\n".join(lines), 1, src, schema, records, "id")
    rows = []
    for raw in lines[:4]:
        row = json.loads(raw)
        row = {f.name: row.get(f.name) for f in schema}
        if isinstance(row["id"], int | float):
            row["id"] = json.dumps(row["id"])
        rows.append(row)
    want = pa.Table.from_pylist(rows, schema=schema)
    got = table.drop_columns(["__line"])
    assert got.schema == want.schema
    assert repr(got.to_pylist()) == repr(want.to_pylist())  # repr: NaN == NaN
    assert table.column("__line").to_pylist() == [1, 2, 3, 4]
    assert [r[1] for r in records.records] == [5, 6]


def test_misfit_reasons_are_pyarrows() -> None:
    """`_misfit` tells most values from their Python type (no `pa.array`, no pandas); oracle:
    what `pa.array([value], type)` says, for text, numbers, booleans, lists, objects, int64
    and double limits and a lone surrogate, against every simple column type; except where
    `pa.array` coerces what Arrow's JSON reader (the fast path) refuses: a float into int64
    (1.5 became 1, silently) and a boolean into a number (true became 1.0)."""
    from dataprep.stages.readers_common import _short
    from dataprep.stages.readers_fit import misfit

    values = ["x", "1", "", "\ud800", 1, -(2**63), 2**63, 2**53 + 1, 1.5, 2.0, True, [1], {"a": 1}]
    for kind in (pa.string(), pa.float64(), pa.int64(), pa.bool_()):
        schema = pa.schema([("f", kind)])
        for value in values:
            try:
                pa.array([value], kind)
                want = None
            except UnicodeEncodeError:
                want = "field 'f': has a lone surrogate, which is not valid Unicode"
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                want = f"field 'f': {_short(value)} is not {kind}"
            refused = (type(value) is float and kind == pa.int64()) or (
                type(value) is bool and kind in (pa.int64(), pa.float64())
            )
            if refused:
                want = f"field 'f': {_short(value)} is not {kind}"
            assert misfit({"f": value}, schema) == want, (kind, value)
            if refused:  # what the fast path says too
                data = json.dumps({"f": value}).encode() + b"\n"
                with pytest.raises(pa.ArrowInvalid):
                    pjson_read(data, schema)


def pjson_read(data: bytes, schema: pa.Schema) -> pa.Table:
    import pyarrow.json as pjson

    options = pjson.ParseOptions(explicit_schema=schema)
    return pjson.read_json(pa.BufferReader(data), parse_options=options)


def test_big_file_ranges_are_of_equal_size(tmp_path: Path) -> None:
    """201 MB at 64 MiB a task used to be 3 tasks and a 50 KB one: 2 workers then read 128 and
    64 MiB. Ranges are now ceil(size / chunk_bytes) of equal size, cut at line ends."""
    from dataprep.sources import resolve
    from dataprep.stages.shard import ShardConfig, plan_tasks

    src = _write_jsonl(tmp_path / "big.jsonl", _docs(3000))
    size = src.stat().st_size
    config = ShardConfig(chunk_bytes=size // 3 - 100)  # 3 full ranges and a sliver, before
    parts = [p for task in plan_tasks(resolve([str(src)], "auto"), config) for p in task]
    sizes = [p.end - p.start for p in parts]
    assert len(parts) == 4 and sum(sizes) == size and max(sizes) <= config.chunk_bytes + 200
    assert min(sizes) > 0.9 * max(sizes)
    data = src.read_bytes()
    lines = [data[: p.start].count(b"\n") + 1 for p in parts]
    assert [p.first_line for p in parts] == lines
    assert all(p.start == 0 or data[p.start - 1 : p.start] == b"\n" for p in parts)


@pytest.mark.parametrize(
    ("name", "empty"), [("a.csv", b"\n"), ("a.jsonl.gz", gzip.compress(b"\n \n")), ("a.csv", b"")]
)
def test_a_blank_first_input_is_not_the_schema_sample(
    tmp_path: Path, name: str, empty: bytes
) -> None:
    """The schema comes from the first input that holds a row: a blank CSV or compressed
    JSONL sorting first used to stop the run ('has no CSV header', 'has no column text')."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / name).write_bytes(empty)
    rows = [{"id": f"r{i}", "text": f"row {i}"} for i in range(30)]
    _write_jsonl(folder / "b.jsonl", rows)
    _shard([folder], tmp_path / "out")
    assert column(tmp_path / "out", "id") == [r["id"] for r in rows]


def test_csv_null_spellings_are_text_in_text_and_null_in_numbers(tmp_path: Path) -> None:
    """A CSV cell "NA" (or "null", "N/A") is text in a text column, an id or a kept string,
    and still null in a column the sample typed as numbers (as Arrow's inference took it);
    an empty cell is null everywhere (an empty id is generated)."""
    src = tmp_path / "na.csv"
    src.write_text("id,text,country,score\nr1,NA,NA,1\nNA,null,US,NA\n,N/A,,3\n")
    _shard([src], tmp_path / "out", keep=["country", "score"])
    out = tmp_path / "out"
    assert column(out, "id") == ["r1", "NA", "na.csv:3"]
    assert column(out, "text") == ["NA", "null", "N/A"]
    assert column(out, "country") == ["NA", "US", None]
    assert column(out, "score") == [1, None, 3]


def test_a_shards_checksum_and_size_are_its_bytes(tmp_path: Path) -> None:
    """The manifest's xxh3-128 and size of a shard, hashed from the page cache (mmap) as it
    closes. Oracle: xxhash and len over the file's bytes read back."""
    import xxhash

    from dataprep.shardio import ShardWriter, file_checksum

    table = pa.table({"text": [f"row {i} " + _words(i) for i in range(5000)]})
    for rows in (1, 5000):
        path = tmp_path / f"s{rows}.parquet"
        with ShardWriter(path, table.schema) as writer:
            writer.write(table.slice(0, rows))
        data = path.read_bytes()
        assert writer.entry.xxh3_128 == xxhash.xxh3_128(data).hexdigest() == file_checksum(path)
        assert writer.entry.bytes == len(data) and writer.entry.rows == rows


class _CountedReads:
    """A file whose reads are counted (what the planner reads of an input)."""

    def __init__(self, raw: Any, counts: list[int]):
        self.raw, self.counts = raw, counts

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)

    def __enter__(self) -> _CountedReads:
        return self

    def __exit__(self, *exc: object) -> None:
        self.raw.close()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.counts.append(len(data))
        return data

    def readinto(self, buf: Any) -> int:
        got = self.raw.readinto(buf)
        self.counts.append(got)
        return got


def test_ranges_of_a_file_with_ids_are_cut_without_reading_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows with ids need their line number only when quarantined or without an id, so the
    planner no longer reads a file up to its last cut to number every range: a few KB a cut
    (it read 3/4 of a file in 4 ranges, before any task started). Without ids (every id is
    SOURCE:LINE) it still counts them ahead."""
    from dataprep.sources import resolve
    from dataprep.stages.shard import ShardConfig, plan_tasks
    from dataprep.storage import StoragePath

    rows = [dict(d, id=f"d{i}") for i, d in enumerate(_docs(20000))]
    src = _write_jsonl(tmp_path / "big.jsonl", rows)
    size = src.stat().st_size
    counts: list[int] = []
    for name in ("open_input", "open_stream"):
        opener = getattr(StoragePath, name)
        monkeypatch.setattr(
            StoragePath, name, lambda self, opener=opener: _CountedReads(opener(self), counts)
        )
    config = ShardConfig(chunk_bytes=size // 8)
    lazy = [p for task in plan_tasks(resolve([str(src)], "auto"), config, True) for p in task]
    read_lazy, counts[:] = sum(counts), []
    counted = [p for task in plan_tasks(resolve([str(src)], "auto"), config) for p in task]
    assert len(lazy) == 8 and [(p.start, p.end) for p in lazy] == [
        (p.start, p.end) for p in counted
    ]
    assert [p.first_line for p in lazy] == [1] + [None] * 7
    assert read_lazy <= 7 * (64 << 10) < size // 2 and sum(counts) >= size * 7 // 8


def test_ranges_with_ids_number_lines_as_counted_ranges_do(tmp_path: Path) -> None:
    """Ranges cut without counting lines (the rows have ids) still give rows without an id
    SOURCE:LINE and quarantine records their lines, counted from the file's start, in every
    range; a byte order mark is allowed at the file's start only. Oracle: json.loads line by
    line; the same rows, ids and records as one unsplit task."""
    rows = [json.dumps(dict(d, id=f"d{i}")).encode() for i, d in enumerate(_docs(3000))]
    for at in range(150, 3000, 290):  # in every range: odd rows, each its own way
        rows[at] = json.dumps({"text": f"no id {at}"}).encode()
        rows[at + 1] = json.dumps({"id": None, "text": f"null id {at}"}).encode()
        rows[at + 2] = b'{"id": "cut", "text": "half'
        rows[at + 3] = b'{"id": "b", "text": "bad \xff byte"}'
        rows[at + 4] = json.dumps({"id": f"x{at}", "score": 1}).encode()
        rows[at + 5] = b"\xef\xbb\xbf" + json.dumps({"id": f"bom{at}", "text": "t"}).encode()
    raw = b"\n".join(rows) + b"\n"
    src = tmp_path / "ids.jsonl"
    src.write_bytes(raw)
    want, bad = _oracle_lines(raw, src.name)
    for chunk, workers in ((20_000, 2), (30_000, 1), (1 << 30, 1)):
        out = tmp_path / f"out{chunk}"
        report = _shard([src], out, workers=workers, chunk_bytes=chunk, block_bytes=8192)
        assert (report["tasks"] > 8) == (chunk < len(raw))
        assert list(zip(column(out, "id"), column(out, "text"), strict=True)) == want
        records = [json.loads(x) for x in (out / ".quarantine.jsonl").read_text().splitlines()]
        assert sorted(r["line"] for r in records) == bad and len(bad) == 40


BAD_LINES = [
    b'{"id": "x", "text": "broken',
    b"not json at all",
    b"[1, 2, 3]",
    b'{"id": "u", "text": "bad \xff utf8"}',
    b"",
    b"   ",
    b'{"id": "n", "score": 1.5}',
    b'{"id": 17, "text": "numeric id"}',
    b'{"id": "t", "text": 5}',
    b'{"id": "s", "text": "x", "score": "high"}',
    b'{"id": "d", "text": "a", "text": "b"}',
    b'{"id": null, "text": "null id"}',
    b'{"id": "e", "text": "\\ud800 lone"}',
    b'{"id": "f", "text": "ok", "extra": {"a": [1, 2]}}',
]


class _Records:
    """A quarantine that keeps its records."""

    def __init__(self) -> None:
        self.records: list[tuple] = []

    def add(self, *record: object) -> None:
        self.records.append(record)


@pytest.mark.parametrize("bad_share", [0.0, 0.02, 1.0])
def test_rejected_block_keeps_arrows_rows_and_pythons_quarantine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad_share: float
) -> None:
    """A block with bad lines is halved until Arrow takes the pieces; only pieces of at most
    SLOW_BYTES go through Python where bad lines are few, and Arrow's retries stay within
    RETRY_SHARE times the block where they are many. Oracle: Python line by line over the
    whole block (what such a block got before): the same rows, line numbers and quarantine
    records, in order."""
    import random

    from dataprep.sources import resolve
    from dataprep.stages import readers_jsonl as rj

    rng = random.Random(3)
    lines = []
    for i in range(4000):
        if i in (1000, 3000):
            lines.append(BAD_LINES[0])  # two bad lines far apart: sparse
        elif i > 50 and rng.random() < bad_share:
            lines.append(rng.choice(BAD_LINES))
        doc = {"id": f"d{i}", "text": _words(i) * 3, "score": i / 7}
        lines.append(json.dumps(doc).encode())
    data = b"\n".join(lines) + b"\n"
    assert len(data) > 8 * rj.SLOW_BYTES
    src = resolve([str(_write_jsonl(tmp_path / "in.jsonl", []))], "auto")[0]
    schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("score", pa.float64())])
    expected = _Records()
    want = rj._parse_lines_slowly(data, 101, src, schema, expected, "id")
    slow_sizes: list[int] = []
    arrow_sizes: list[int] = []
    slowly, arrow = rj._parse_lines_slowly, rj._arrow_block

    def slow_spy(piece: bytes, *args: object) -> pa.Table:
        slow_sizes.append(len(piece))
        return slowly(piece, *args)

    def arrow_spy(piece: bytes, *args: object) -> pa.Table | None:
        arrow_sizes.append(len(piece))
        return arrow(piece, *args)

    monkeypatch.setattr(rj, "_parse_lines_slowly", slow_spy)
    monkeypatch.setattr(rj, "_arrow_block", arrow_spy)
    got = _Records()
    table = rj.parse_jsonl_block(data, 101, src, schema, got, "id")
    assert table.to_pylist() == want.to_pylist()
    assert got.records == expected.records and got.records
    assert sum(arrow_sizes) <= (1 + rj.RETRY_SHARE) * len(data)
    if not bad_share:
        assert slow_sizes and max(slow_sizes) <= rj.SLOW_BYTES < len(data) / 8


LICENSE = Path("/usr/share/common-licenses/Apache-2.0")


def _oracle_lines(raw: bytes, name: str) -> tuple[list[tuple[str, str]], list[int]]:
    """json.loads line by line: (id, text) of each line that is one object with a text (id
    SOURCE:LINE where it has none), and the numbers of the lines that are not; blank lines
    are neither."""
    rows, bad = [], []
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            row = None
        if isinstance(row, dict) and isinstance(row.get("text"), str):
            rows.append((row.get("id") or f"{name}:{number}", row["text"]))
        else:
            bad.append(number)
    return rows, bad


@pytest.mark.parametrize("block", [None, 64, 700, 5000])
def test_rows_are_lines_whatever_the_blocks(tmp_path: Path, block: int | None) -> None:
    """Arrow reads a stream of objects, so its rows are the lines only where each line opens
    one object: a line of two objects, an object across two lines, blank and whitespace-only
    lines (also CRLF), lines led by spaces, bad UTF-8 and a line longer than the block, mixed,
    must give the same rows, generated ids and quarantined lines for any block size.
    Oracle: json.loads line by line."""
    lines = [s.strip() for s in Path(LICENSE).read_text().splitlines() if s.strip()][:60]
    obj = [json.dumps({"text": s}).encode() for s in lines]
    body = [json.dumps({"id": "first", "text": lines[0]}).encode(), *obj[1:8]]
    body += [obj[8] + obj[9], *obj[10:14], b"", *obj[14:18]]  # two objects, then a blank line
    body += [b'{"text": "spans",', b'"id": "two lines"}', *obj[18:22], b"   \t"]
    body += [b"  " + obj[22], obj[23] + b"\r", b"\r", *obj[24:30]]  # CRLF lines, a blank one
    body += [b'{"text": "bad \xff byte"}', json.dumps({"text": "x" * 20000}).encode()]
    body += [obj[30] + obj[31], obj[32] + obj[33], obj[34] + obj[35], *obj[36:]]
    # 4 lines of two objects, 4 lines of no row of their own: in one block Arrow's rows are
    # as many as the lines, so only the line-start check tells them apart
    raw = b"\n".join(body) + b"\n"
    src = tmp_path / "mixed.jsonl"
    src.write_bytes(raw)
    config = {} if block is None else {"block_bytes": block}
    out = tmp_path / "out"
    _shard([src], out, **config)
    want, bad = _oracle_lines(raw, src.name)
    assert list(zip(column(out, "id"), column(out, "text"), strict=True)) == want
    records = [json.loads(x) for x in (out / ".quarantine.jsonl").read_text().splitlines()]
    assert sorted(r["line"] for r in records) == bad


@pytest.mark.parametrize("block", [None, 64])
def test_a_byte_order_mark_at_the_start_keeps_the_first_row(
    tmp_path: Path, block: int | None
) -> None:
    """Arrow takes a UTF-8 byte order mark before the first line (as `utf-8-sig` reads it);
    the line-start check lets it pass there, with big and small blocks."""
    rows = [{"id": f"r{i}", "text": f"row {i}"} for i in range(50)]
    src = tmp_path / "bom.jsonl"
    src.write_bytes(b"\xef\xbb\xbf" + "".join(json.dumps(r) + "\n" for r in rows).encode())
    out = tmp_path / "out"
    _shard([src], out, **({} if block is None else {"block_bytes": block}))
    assert column(out, "id") == [r["id"] for r in rows]
    assert not (out / ".quarantine.jsonl").exists() or not (out / ".quarantine.jsonl").read_text()


@pytest.mark.parametrize("block", [None, 300])
def test_csv_rows_after_a_malformed_row_keep_their_numbers(tmp_path: Path, block: int) -> None:
    """A row with too many fields is quarantined with its data-row number and the rows after
    it keep theirs (ids SOURCE:ROW), also where the fast path has read earlier blocks; values
    convert as on the fast path (empty -> null id, then generated; quoted newlines; bad UTF-8
    quarantined). Oracle: Python's csv module, data records numbered from 1 after the header."""
    lines = [s.strip() for s in Path(LICENSE).read_text().splitlines() if s.strip()][:40]
    records = [["id", "text", "n"]]
    for i, line in enumerate(lines):
        row = ["" if i % 7 == 0 else f"r{i}", line + ("\nsecond line" if i % 5 == 0 else ""), i]
        records.append(row + (["extra"] if i in (12, 30) else []))
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(records)
    raw = text.getvalue().encode().replace(b"r25,", b"r25,\xff")
    src = tmp_path / "rows.csv"
    src.write_bytes(raw)
    want, bad = [], []
    parsed = list(csv.reader(io.StringIO(raw.decode("utf-8", "surrogateescape"))))
    for number, record in enumerate(parsed[1:], start=1):
        if len(record) != 3 or "\udcff" in record[1]:
            bad.append(number)
        else:
            want.append((record[0] or f"rows.csv:{number}", record[1]))
    out = tmp_path / "out"
    _shard([src], out, **({} if block is None else {"block_bytes": block}))
    assert list(zip(column(out, "id"), column(out, "text"), strict=True)) == want
    quarantined = [json.loads(x) for x in (out / ".quarantine.jsonl").read_text().splitlines()]
    assert sorted(q["line"] for q in quarantined) == bad


@pytest.mark.parametrize("suffix", [".csv.gz", ".csv.zst"])
def test_compressed_csv_with_a_malformed_row_keeps_numbers(tmp_path: Path, suffix: str) -> None:
    """The Python path reads a compressed CSV too (the decoder as a text stream); oracle: the
    csv module over the decompressed text."""
    lines = [f"row {i}, with a comma" for i in range(200)]
    text = io.StringIO()
    rows = [["text", "n"]] + [[s, i] + (["extra"] if i == 150 else []) for i, s in enumerate(lines)]
    csv.writer(text, lineterminator="\n").writerows(rows)
    data = text.getvalue().encode()
    src = tmp_path / f"rows{suffix}"
    src.write_bytes(gzip.compress(data) if suffix.endswith("gz") else zstandard.compress(data))
    out = tmp_path / "out"
    _shard([src], out, block_bytes=1000)
    want = [(f"{src.name}:{i + 1}", s) for i, s in enumerate(lines) if i != 150]
    assert list(zip(column(out, "id"), column(out, "text"), strict=True)) == want
    quarantined = [json.loads(x) for x in (out / ".quarantine.jsonl").read_text().splitlines()]
    assert [q["line"] for q in quarantined] == [151]


@pytest.mark.parametrize("kind", [pa.binary(), pa.large_binary()])
def test_parquet_bytes_text_is_checked_as_utf8(tmp_path: Path, kind: pa.DataType) -> None:
    """A Parquet text column of bytes (binary, or large_binary as polars writes it): read as
    text, a value that is not UTF-8 quarantined with its row number, the rest kept. Oracle:
    Python's decode of each value."""
    values = [f"row {i}".encode() for i in range(20)]
    values[7] = b"bad \xff byte"
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": pa.array(values, kind)}), src)
    out = tmp_path / "out"
    _shard([src], out)
    assert column(out, "text") == [v.decode() for i, v in enumerate(values) if i != 7]
    quarantined = [json.loads(x) for x in (out / ".quarantine.jsonl").read_text().splitlines()]
    assert [q["line"] for q in quarantined] == [7]


def test_parquet_string_view_text_is_read(tmp_path: Path) -> None:
    """A text column typed string_view (a pyarrow table written as it is) is text: read and
    cast to string, not refused as 'not text'."""
    values = [f"row {i}" for i in range(10)]
    src = tmp_path / "view.parquet"
    pq.write_table(pa.table({"text": pa.array(values, pa.string_view())}), src)
    out = tmp_path / "out"
    _shard([src], out)
    assert column(out, "text") == values
