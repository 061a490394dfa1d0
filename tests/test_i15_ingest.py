"""Issue 15 ingestion: small files packed into shards, links said, and bad input that must end
as one sentence (exit 2) or a quarantined row naming its field, never a traceback.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from helpers import cli

from dataprep import dataset
from dataprep.executors.local import LocalExecutor
from dataprep.runner import run_stage


def _shard(inputs: list, out: Path, workers: int = 1, **config) -> dict:
    run = run_stage(
        "shard", config, out, inputs=[str(p) for p in inputs], executor=LocalExecutor(workers)
    )
    return run.report


def _one_sentence(proc: subprocess.CompletedProcess) -> str:
    """A user error: exit 2 and a single `error:` line on stderr, no traceback."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    return lines[0]


def _file(out: Path, name: str) -> Path:
    """A dataset's side file (manifest, report, quarantine) under the name this version writes,
    or the plain name older versions wrote."""
    current = {
        "manifest.json": dataset.MANIFEST,
        "report.json": dataset.REPORT,
        "quarantine.jsonl": dataset.QUARANTINE,
    }[name]
    path = out / current
    return path if path.exists() or not (out / name).exists() else out / name


def manifest(out: Path) -> dict:
    return json.loads(_file(out, "manifest.json").read_text())


def column(out: Path, name: str) -> list:
    values: list = []
    for shard in manifest(out)["shards"]:
        values += pq.read_table(out / shard["path"], columns=[name]).column(name).to_pylist()
    return values


def _quarantine(out: Path) -> list[dict]:
    path = _file(out, "quarantine.jsonl")
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


# item 2: many small files


def test_small_text_files_are_packed_into_shards_of_the_requested_size(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    for d in range(3):
        (docs / f"d{d}").mkdir(parents=True)
        for i in range(100):
            words = " ".join(f"{(i * 7919 + k * 104729 + d) % 99991:x}" for k in range(20))
            (docs / f"d{d}" / f"f{i:03d}.txt").write_text(f"document {d}/{i} {words}")
    (docs / "d1" / "f007.txt.gz").write_bytes(gzip.compress(b"compressed one"))
    report = _shard([docs], tmp_path / "rows", workers=2, shard_rows=120)
    assert report["rows_out"] == 301 and report["tasks"] == 1
    assert [s["rows"] for s in manifest(tmp_path / "rows")["shards"]] == [120, 120, 61]
    texts = dict(
        zip(column(tmp_path / "rows", "id"), column(tmp_path / "rows", "text"), strict=True)
    )
    assert texts["d2/f099.txt"].startswith("document 2/99 ")
    assert texts["d1/f007.txt.gz"] == "compressed one"
    _shard([docs], tmp_path / "bytes", shard_bytes="4KB")
    shards = manifest(tmp_path / "bytes")["shards"]
    assert sum(s["rows"] for s in shards) == 301 and 2 <= len(shards) < 20


def test_small_jsonl_files_share_shards_and_keep_their_ids(tmp_path: Path) -> None:
    for i in range(40):
        rows = [{"text": f"file {i} row {j}"} for j in range(5)]
        (tmp_path / f"p{i:02d}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    _shard([str(tmp_path / "p*.jsonl")], tmp_path / "out", shard_rows=100)
    assert [s["rows"] for s in manifest(tmp_path / "out")["shards"]] == [100, 100]
    assert column(tmp_path / "out", "id")[:6] == [f"p00.jsonl:{n}" for n in range(1, 6)] + [
        "p01.jsonl:1"
    ]


def test_a_link_to_a_file_read_once_keeps_the_real_name_and_is_reported(tmp_path: Path) -> None:
    lic = tmp_path / "licenses"
    lic.mkdir()
    (lic / "GPL-3").write_text("the GPL, version 3")
    (lic / "BSD").write_text("the BSD licence")
    os.symlink("GPL-3", lic / "GPL")
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("linked from outside")
    os.symlink(outside, lic / "Outside")
    report = _shard([lic], tmp_path / "out", format="text")
    got = dict(zip(column(tmp_path / "out", "id"), column(tmp_path / "out", "text"), strict=True))
    assert got == {
        "BSD": "the BSD licence",
        "GPL-3": "the GPL, version 3",
        "Outside": "linked from outside",
    }
    assert report["links_skipped"] == {"GPL": "GPL-3"}
    saved = json.loads(_file(tmp_path / "out", "report.json").read_text())
    assert "GPL" in json.dumps(saved)


# item 9: bad input


def test_surrogates_and_deep_nesting_in_jsonl_are_quarantined(tmp_path: Path) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_bytes(
        b'{"text": "ok 1"}\n'
        b'{"text": "lone \\ud800 escape"}\n'
        b'{"text": "raw \xed\xa0\x80 cesu bytes"}\n'
        b'{"text": "deep", "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}\n"
        b'{"text": "ok 5"}\n'
    )
    proc = cli("shard", src, "-o", tmp_path / "out", "-q", check=False)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert column(tmp_path / "out", "text") == ["ok 1", "ok 5"]
    reasons = {q["line"]: q["reason"] for q in _quarantine(tmp_path / "out")}
    assert set(reasons) == {2, 3, 4}
    assert "'text'" in reasons[2] and "surrogate" in reasons[2]
    assert "UTF-8" in reasons[3]
    assert "nest" in reasons[4]


def test_a_deeply_nested_first_row_does_not_break_schema_sampling(tmp_path: Path) -> None:
    src = tmp_path / "deep.jsonl"
    src.write_bytes(b'{"x": ' + b"[" * 50_000 + b"]" * 50_000 + b'}\n{"text": "fine"}\n')
    proc = cli("shard", src, "-o", tmp_path / "out", "-q", check=False)
    assert proc.returncode == 0, proc.stderr
    assert column(tmp_path / "out", "text") == ["fine"]


def test_parquet_text_column_of_the_wrong_type_is_one_sentence(tmp_path: Path) -> None:
    pq.write_table(pa.table({"text": [{"a": 1}, {"a": 2}]}), tmp_path / "struct.parquet")
    line = _one_sentence(
        cli("shard", tmp_path / "struct.parquet", "-o", tmp_path / "o", check=False)
    )
    assert "'text'" in line and "struct" in line and "--text-column" in line


def test_parquet_binary_text_with_invalid_utf8_quarantines_the_row(tmp_path: Path) -> None:
    text = pa.array([b"good", b"\xff\xfe bad", b"also good"], pa.binary())
    pq.write_table(pa.table({"text": text}), tmp_path / "bin.parquet")
    proc = cli("shard", tmp_path / "bin.parquet", "-o", tmp_path / "out", "-q", check=False)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert column(tmp_path / "out", "text") == ["good", "also good"]
    [bad] = _quarantine(tmp_path / "out")
    assert bad["line"] == 1 and "'text'" in bad["reason"] and "UTF-8" in bad["reason"]


def test_files_that_are_not_what_they_claim_are_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "fake.parquet").write_bytes(b"PAR1" + os.urandom(3000) + b"\x10\0\0\0PAR1")
    line = _one_sentence(
        cli("shard", tmp_path / "fake.parquet", "-o", tmp_path / "o1", check=False)
    )
    assert "not a valid Parquet file" in line
    damaged = tmp_path / "damaged.parquet"
    pq.write_table(pa.table({"text": [f"row {i} " * 50 for i in range(2000)]}), damaged)
    data = bytearray(damaged.read_bytes())
    data[200:6000] = os.urandom(5800)  # the pages, not the footer
    damaged.write_bytes(bytes(data))
    line = _one_sentence(cli("shard", damaged, "-o", tmp_path / "o2", check=False))
    assert "damaged.parquet" in line
    (tmp_path / "garbage.jsonl.zst").write_bytes(b"\x28\xb5\x2f\xfd" + b"garbage" * 100)
    line = _one_sentence(
        cli("shard", tmp_path / "garbage.jsonl.zst", "-o", tmp_path / "o3", check=False)
    )
    assert "not a valid .zst file" in line


def test_misleading_schema_errors_say_what_is_wrong(tmp_path: Path) -> None:
    gz = tmp_path / "gz.jsonl"
    gz.write_bytes(gzip.compress(b'{"text": "hi"}\n' * 10))
    line = _one_sentence(cli("shard", gz, "-o", tmp_path / "o1", check=False))
    assert "gzip" in line and "columns: none" not in line
    rows = b"".join(json.dumps({"text": f"row {i} " * 20}).encode() + b"\n" for i in range(2000))
    cut = tmp_path / "cut.jsonl.zst"
    cut.write_bytes(zstandard.ZstdCompressor().compress(rows)[:200])
    line = _one_sentence(cli("shard", cut, "-o", tmp_path / "o2", check=False))
    assert "truncated" in line
    junk = tmp_path / "junk.jsonl"
    junk.write_bytes(b"this is not json\nnor this\n")
    line = _one_sentence(cli("shard", junk, "-o", tmp_path / "o3", check=False))
    assert "JSON" in line and "columns: none" not in line


def test_a_first_line_longer_than_the_schema_sample_is_read(tmp_path: Path) -> None:
    src = tmp_path / "long.jsonl"
    long = "y" * (3 << 20)
    src.write_text(json.dumps({"text": long, "n": 1}) + "\n" + json.dumps({"text": "b"}) + "\n")
    _shard([src], tmp_path / "out")
    assert column(tmp_path / "out", "text") == [long, "b"]
    assert column(tmp_path / "out", "n") == [1, None]


@pytest.mark.parametrize(
    "args",
    [["--workers", "0"], ["--workers", "-4"], ["--shard-bytes", "0"]],
    ids=["workers0", "workers-4", "shard-bytes0"],
)
def test_out_of_range_options_are_one_sentence(tmp_path: Path, args: list[str]) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "x"}\n')
    line = _one_sentence(cli("shard", src, "-o", tmp_path / "o", *args, check=False))
    assert args[0].lstrip("-").replace("-", "_") in line.replace("-", "_")
    assert not _file(tmp_path / "o", "manifest.json").exists()


def test_sample_with_no_docs_is_one_sentence(tmp_path: Path) -> None:
    line = _one_sentence(cli("sample", "-o", tmp_path / "s", "--docs", "0", check=False))
    assert "--docs" in line


@pytest.mark.parametrize(
    ("where", "value"),
    [("shards[0].rows", "lots"), ("totals.rows", "lots"), ("lineage", "oops")],
)
def test_manifests_with_wrong_types_are_one_sentence(
    tmp_path: Path, where: str, value: str
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "x"}\n')
    ds = tmp_path / "ds"
    _shard([src], ds)
    data = json.loads(_file(ds, "manifest.json").read_text())
    if where == "shards[0].rows":
        data["shards"][0]["rows"] = value
    elif where == "totals.rows":
        data["totals"]["rows"] = value
    else:
        data["lineage"] = value
    _file(ds, "manifest.json").write_text(json.dumps(data))
    for command in (["inspect", ds], ["compress", ds, "-o", tmp_path / "c"]):
        line = _one_sentence(cli(*command, check=False))
        assert repr(value) in line


def test_disk_full_names_the_path(tmp_path: Path) -> None:
    full = tmp_path / "full"
    full.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(full)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.decode().strip()})")
    try:
        src = tmp_path / "in.jsonl"
        with src.open("w") as f:
            for _ in range(3000):
                f.write(json.dumps({"text": os.urandom(300).hex()}) + "\n")
        proc = cli("shard", src, "-o", full / "out", "-q", check=False)
        assert proc.returncode in (1, 2) and "Traceback" not in proc.stderr, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and str(full / "out") in lines[0], proc.stderr
        assert "space" in lines[0]
    finally:
        subprocess.run(["umount", str(full)], check=True)


# item 8: quarantine reasons, ids, report size, help


def test_quarantine_reasons_name_the_field_and_numeric_ids_are_converted(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(  # fixes the schema: id string, n int64
        '{"id": "a", "text": "one", "n": 1}\n'
        '{"id": 7, "text": "two", "n": 2}\n'
        '{"id": 2.5, "text": "three", "n": 3}\n'
    )
    (tmp_path / "b.jsonl").write_text(
        '{"id": "c", "n": 3}\n'
        '{"id": "d", "text": "four", "n": "abc"}\n'
        '{"id": "e", "text": 5, "n": 5}\n'
        '{"id": 10, "text": "ten", "n": 10}\n'
    )
    _shard([tmp_path / "a.jsonl", tmp_path / "b.jsonl"], tmp_path / "out")
    assert column(tmp_path / "out", "id") == ["a", "7", "2.5", "10"]
    reasons = {(q["source"], q["line"]): q["reason"] for q in _quarantine(tmp_path / "out")}
    assert reasons == {
        ("b.jsonl", 1): "missing field 'text'",
        ("b.jsonl", 2): "field 'n': 'abc' is not int64",
        ("b.jsonl", 3): "field 'text': 5 is not string",
    }


def test_csv_quarantine_reason_names_the_field(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("text,n\nhello,1\n")
    (tmp_path / "b.csv").write_text("text,n\nbad,xyz\nfine,2\n")
    _shard([tmp_path / "a.csv", tmp_path / "b.csv"], tmp_path / "out")
    [bad] = _quarantine(tmp_path / "out")
    assert bad["reason"] == "field 'n': 'xyz' is not int64"


def test_dedup_report_by_source_is_capped() -> None:
    from dataprep.stages.dedup.report import source_rates

    per_source = {f"s{i:04d}": [i + 1, i % 3] for i in range(500)}
    rates = source_rates(per_source)
    assert len(rates) == 101
    assert rates["s0499"] == {"rows": 500, "removed": 499 % 3, "dup_rate": round(1 / 500, 4)}
    other = rates["(other 400 sources)"]
    assert other["rows"] == sum(i + 1 for i in range(400))
    assert other["removed"] == sum(i % 3 for i in range(400))
    assert sum(v["rows"] for v in rates.values()) == sum(r for r, _ in per_source.values())


def test_shard_bytes_help_says_compressed() -> None:
    out = cli("shard", "--help").stdout
    assert "compressed" in " ".join(out.split()).split("--shard-bytes", 1)[1][:200].lower()


def test_a_directory_of_files_without_extensions_says_to_pass_format(tmp_path: Path) -> None:
    raw = tmp_path / "licences"
    raw.mkdir()
    for name in ("GPL-3", "Apache-2.0"):  # named like /usr/share/common-licenses
        (raw / name).write_text(f"{name} licence text\n")
    proc = cli("shard", raw, "-o", tmp_path / "out", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "2 files" in proc.stderr and "--format text" in proc.stderr
    cli("shard", raw, "-o", tmp_path / "out", "--format", "text")
    assert dataset.read_manifest(tmp_path / "out").rows == 2


def test_generated_ids_and_quarantine_lines_count_as_the_help_says(tmp_path: Path) -> None:
    """JSONL lines and CSV data rows count from 1, Parquet rows from 0 (`--id-column`'s help):
    ids already written into datasets (resume, dedup indexes) keep this numbering."""
    from helpers import column

    (tmp_path / "a.jsonl").write_text('{"text": "one"}\n{"text": 2}\n{"text": "three"}\n')
    (tmp_path / "b.csv").write_text("text\none\n\nthree\n")
    pq.write_table(pa.table({"text": ["one", None, "three"]}), tmp_path / "c.parquet")
    for name, first, bad in (("a.jsonl", 1, 2), ("b.csv", 1, None), ("c.parquet", 0, 1)):
        out = tmp_path / f"out-{name}"
        cli("shard", tmp_path / name, "-o", out, "-q")
        ids = column(out, "id")
        assert ids[0] == f"{name}:{first}", ids
        if bad is not None:
            [row] = _quarantine(out)
            assert row["line"] == bad, row
    from dataprep.stages.shard import ShardConfig  # its --help and docs/recipe-reference.md

    assert "Parquet rows from 0" in str(ShardConfig.model_fields["id_column"].description)
