"""Top-level fields the schema sample (the first input that holds a row) lacks, and CSV values
whose leading zeros a number type would lose.

The output schema is fixed once from the sample, so a field first seen later (a JSONL key, a
CSV or Parquet column) cannot be written; it used to be dropped with exit 0 and nothing said.
Its rows are not quarantined (the row's text and kept fields are fine): the report counts them
per field name (`fields_not_in_schema`) and the summary says which fields and how to keep them.

Oracle: json.loads / csv.reader over the inputs, counting the rows where the field holds a
value (a null loses nothing), whatever the workers and block sizes.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import cli, column

LINES = [ln.strip() for ln in Path("/usr/share/common-licenses/GPL-2").read_text().splitlines()]
TEXTS = [t for t in LINES if t][:300]


def _report(out: Path) -> dict:
    return json.loads((out / ".report.json").read_text())


def _jsonl_inputs(folder: Path) -> dict[str, int]:
    """a.jsonl with {id, text, lang}; b.jsonl adds `url` (some null) and `score`; returns the
    oracle's rows per unsampled field."""
    folder.mkdir()
    expected: dict[str, int] = {}
    for name in ("a", "b"):
        with (folder / f"{name}.jsonl").open("w") as f:
            for i, text in enumerate(TEXTS[:150] if name == "a" else TEXTS[150:]):
                row: dict = {"id": f"{name}{i}", "text": text, "lang": "en"}
                if name == "b":
                    row["url"] = None if i % 5 == 0 else f"http://example.org/{i}"
                    if i % 3 == 0:
                        row["score"] = i / 7
                f.write(json.dumps(row) + "\n")
    for line in (folder / "b.jsonl").read_text().splitlines():
        for key, value in json.loads(line).items():
            if key not in {"id", "text", "lang"} and value is not None:
                expected[key] = expected.get(key, 0) + 1
    return expected


@pytest.mark.parametrize(
    "args",
    [(), ("-w", "2", "--block-bytes", "2KB"), ("-w", "2", "--chunk-bytes", "6KB")],
    ids=["one", "small", "ranges"],
)
def test_a_jsonl_field_first_seen_after_the_sample_is_counted(tmp_path: Path, args) -> None:
    expected = _jsonl_inputs(tmp_path / "in")
    out = tmp_path / "out"
    proc = cli("shard", tmp_path / "in", "-o", out, *args)
    assert _report(out)["fields_not_in_schema"] == expected
    said = " ".join(proc.stdout.split())
    assert (
        f"url ({expected['url']:,} rows)" in said and "score" in said and "to keep them" in said
    ), said
    assert pq.read_schema(next(out.glob("*.parquet"))).names == ["id", "text", "lang"]
    assert not (out / ".quarantine.jsonl").exists()  # nothing is wrong with those rows
    quiet = cli("shard", tmp_path / "in", "-o", tmp_path / "q", "-q", *args)
    assert "url" not in quiet.stdout + quiet.stderr
    shown = json.loads(cli("shard", tmp_path / "in", "-o", tmp_path / "j", "--json").stdout)
    assert shown[0]["report"]["fields_not_in_schema"] == expected
    flag = "--keep lang,url:string,score:double"  # what the summary says to rerun with
    assert _report(out)["keep_them"] == flag and flag in said, said
    kept = tmp_path / "kept"
    cli("shard", tmp_path / "in", "-o", kept, "-q", *args, *flag.split())
    rows = [json.loads(x) for n in "ab" for x in (tmp_path / "in" / f"{n}.jsonl").open()]
    for name in ("url", "score"):
        assert column(kept, name) == [r.get(name) for r in rows]
    assert not (kept / ".quarantine.jsonl").exists()
    assert "fields_not_in_schema" not in _report(kept)


def test_a_jsonl_line_read_slowly_counts_its_unsampled_field(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jsonl").write_text("".join(json.dumps({"text": t, "n": 1}) + "\n" for t in TEXTS))
    rows = [{"text": t, "n": i} for i, t in enumerate(TEXTS[:50])]
    rows += [{"text": t, "n": "high", "url": "u"} for t in TEXTS[50:52]]  # n misfits: slow
    (folder / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    cli("shard", folder, "-o", out, "-q")
    assert _report(out)["quarantined"] == 2
    assert "fields_not_in_schema" not in _report(out)  # its rows were quarantined
    rows[10]["url"] = "kept row"
    (folder / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cli("shard", folder, "-o", out, "-q")
    assert _report(out)["fields_not_in_schema"] == {"url": 1}


def test_a_mixed_type_unsampled_field_does_not_change_the_output(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS[:40]))
    rows = [{"text": t, "x": 1 if i % 2 else "one"} for i, t in enumerate(TEXTS[40:80])]
    (folder / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    cli("shard", folder, "-o", out, "-q")
    assert column(out, "text") == TEXTS[:80]
    assert _report(out)["fields_not_in_schema"] == {"x": 40}


def test_fields_a_keep_leaves_out_are_not_counted(tmp_path: Path) -> None:
    _jsonl_inputs(tmp_path / "in")
    out = tmp_path / "out"
    cli("shard", tmp_path / "in", "-o", out, "-q", "--keep", "lang")
    assert "fields_not_in_schema" not in _report(out)


def test_a_keep_name_first_seen_later_says_so(tmp_path: Path) -> None:
    """A plain NAME the sample lacks is one sentence (a typo is no column of nulls) saying
    to give its type; NAME:TYPE keeps it; so does naming first a file whose first rows hold
    it. A type Arrow does not know is one sentence too."""
    _jsonl_inputs(tmp_path / "in")
    proc = cli("shard", tmp_path / "in", "-o", tmp_path / "out", "--keep", "url", check=False)
    assert proc.returncode == 2
    said = " ".join(proc.stderr.split())
    assert "later" in said and "--keep url:string" in said and "Traceback" not in said, said
    typed = tmp_path / "typed"
    cli("shard", tmp_path / "in", "-o", typed, "-q", "--keep", "url:string")
    lines = (tmp_path / "in" / "b.jsonl").read_text().splitlines()
    assert column(typed, "url") == [None] * 150 + [json.loads(line)["url"] for line in lines]
    assert pq.read_schema(next(typed.glob("*.parquet"))).names == ["id", "text", "url"]
    bad = cli("shard", tmp_path / "in", "-o", tmp_path / "b", "--keep", "url:strng", check=False)
    assert bad.returncode == 2 and "'strng' is not an Arrow type name" in bad.stderr, bad.stderr
    out = tmp_path / "named"  # the other way: name first a file whose first rows hold it
    cli("shard", tmp_path / "in" / "b.jsonl", tmp_path / "in", "-o", out, "-q", "--keep", "url")
    lines = (tmp_path / "in" / "b.jsonl").read_text().splitlines()
    urls = [json.loads(line)["url"] for line in lines]
    assert sorted(column(out, "url"), key=str) == sorted(urls + [None] * 150, key=str)


def test_a_csv_column_first_seen_in_a_later_file_is_counted(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name, header in (("a", ["text", "lang"]), ("b", ["text", "lang", "url"])):
        with (folder / f"{name}.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            for i, t in enumerate(TEXTS[:60]):
                w.writerow([t, "en", "" if i % 4 == 0 else f"u{i}"][: len(header)])
    out = tmp_path / "out"
    cli("shard", folder, "-o", out, "-q")
    with (folder / "b.csv").open(newline="") as f:
        expected = sum(1 for r in csv.DictReader(f) if r["url"])
    assert _report(out)["fields_not_in_schema"] == {"url": expected}


def test_a_parquet_column_first_seen_in_a_later_file_is_counted(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    pq.write_table(pa.table({"text": TEXTS[:30]}), folder / "a.parquet")
    urls = [None if i % 3 == 0 else f"u{i}" for i in range(30)]
    ns = list(range(30))
    pq.write_table(pa.table({"text": TEXTS[30:60], "url": urls, "n": ns}), folder / "b.parquet")
    out = tmp_path / "out"
    cli("shard", folder, "-o", out, "-q")
    assert _report(out)["fields_not_in_schema"] == {
        "n": 30,
        "url": sum(u is not None for u in urls),
    }
    assert _report(out)["keep_them"] == "--keep n:int64,url:string"
    cli("shard", folder, "-o", tmp_path / "kept", "-q", "--keep", "n:int64,url:string")
    assert column(tmp_path / "kept", "n") == [None] * 30 + ns
    assert column(tmp_path / "kept", "url") == [None] * 30 + urls


def test_a_clean_run_reports_no_unsampled_field(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    out = tmp_path / "out"
    cli("shard", folder, "-o", out, "-q")
    assert "fields_not_in_schema" not in _report(out)


def test_a_csv_column_with_leading_zeros_stays_text(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    rows = [("a", "00501", "12", "0.5", "0"), ("b", "02134", "7", "1.25", "3")]
    rows += [(t, str(10000 + i), str(i), "2.0", str(i)) for i, t in enumerate(TEXTS[:20])]
    with (folder / "a.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "zip", "count", "ratio", "n"])
        w.writerows(rows)
    out = tmp_path / "out"
    cli("shard", folder, "-o", out, "-q")
    schema = pq.read_schema(next(out.glob("*.parquet")))
    assert schema.field("zip").type == pa.string()
    assert column(out, "zip") == [r[1] for r in rows]  # byte for byte
    assert schema.field("count").type == pa.int64()  # no leading zero: a number as before
    assert schema.field("ratio").type == pa.float64()  # 0.5 is a decimal, not a zero-led int
    assert schema.field("n").type == pa.int64()  # "0" itself is a plain number


def test_a_deeply_nested_field_first_seen_later_is_counted_without_a_crash(
    tmp_path: Path,
) -> None:
    """The unknown field is 50,000 levels deep: Arrow's infer mode crashed the command (exit
    -11) on it, so its block is read ignoring it and its keys counted without recursion."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS[:40]))
    deep = b'{"text": "deep one", "deep": ' + b"[" * 50_000 + b"]" * 50_000 + b', "n": null}\n'
    rows = "".join(json.dumps({"text": t, "url": "u"}) + "\n" for t in TEXTS[40:80])
    (folder / "b.jsonl").write_bytes(rows.encode() + deep)
    out = tmp_path / "out"
    proc = cli("shard", folder, "-o", out, "-q", check=False)
    assert proc.returncode == 0, proc.stderr
    assert column(out, "text") == [*TEXTS[:80], "deep one"]
    assert _report(out)["fields_not_in_schema"] == {"url": 40, "deep": 1}


def test_a_field_holding_objects_first_seen_later_is_counted(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS[:40]))
    rows = [{"text": t, "meta": {"lang": "en", "tags": [i]} if i % 4 else None} for i, t in
            enumerate(TEXTS[40:80])]  # fmt: skip
    (folder / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    proc = cli("shard", folder, "-o", out)
    assert column(out, "text") == TEXTS[:80]
    assert _report(out)["fields_not_in_schema"] == {"meta": 30}
    assert _report(out)["fields_not_in_schema_nested"] == ["meta"]
    assert "keep_them" not in _report(out)  # --keep NAME:TYPE declares no struct
    said = " ".join(proc.stdout.split())
    assert "meta nested: name first an input whose first rows hold it" in said, said


def test_a_kept_struct_and_a_field_first_seen_later(tmp_path: Path) -> None:
    """A schema with a struct is read with Arrow's infer mode already: its extra columns are
    counted, and a struct key the sample lacked still quarantines its row."""
    folder = tmp_path / "in"
    folder.mkdir()
    first = [{"text": t, "meta": {"lang": "en"}} for t in TEXTS[:30]]
    (folder / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in first))
    later = [
        {"text": t, "meta": {"lang": "de"}, "url": f"u{i}"} for i, t in enumerate(TEXTS[30:60])
    ]
    (folder / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in later))
    out = tmp_path / "out"
    cli("shard", folder, "-o", out, "-q")
    assert column(out, "text") == TEXTS[:60]
    assert _report(out)["fields_not_in_schema"] == {"url": 30}


@pytest.mark.parametrize(
    "row",
    [
        {"a": 1, "b": None, "c": {"d": None}, "e": [None, {"f": 1}], "g": 'x, "y": null'},
        {'k\\"ey': None, "plain": "}", "n": [], "o": {}},
        {"x": True, "y": False, "z": -1.5e3, "w": "\u00e9\u4e2d"},
    ],
)
def test_top_keys_reads_a_rows_top_level_keys_as_json_loads_does(row: dict) -> None:
    from dataprep.stages.readers_unsampled import top_keys

    raw = json.dumps(row).encode()
    assert top_keys(raw) == {k: [] if isinstance(v, dict | list) else v for k, v in row.items()}


@pytest.mark.parametrize("args", [(), ("--block-bytes", "1KB")], ids=["fast", "small"])
def test_a_zero_led_value_after_the_sample_is_quarantined_not_changed(tmp_path: Path, args) -> None:
    """A column typed int64 from a first file of plain numbers: a later file's `00501` would
    become 501; its row goes to the quarantine with the value and why, every other row stays."""
    folder = tmp_path / "in"
    folder.mkdir()
    first = [(t, str(10000 + i)) for i, t in enumerate(TEXTS[:30])]
    later = [(t, "00501" if i % 7 == 3 else str(20000 + i)) for i, t in enumerate(TEXTS[30:60])]
    later.insert(1, ("a", "malformed", "row"))  # read by Python from here: checked there too
    later.append(("bad row", "oops"))  # not a number: quarantined as before
    for name, rows in (("a", first), ("b", later)):
        with (folder / f"{name}.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["text", "zip"])
            w.writerows(rows)
    out = tmp_path / "out"
    cli("shard", folder, "-o", out, "-q", *args)
    assert pq.read_schema(next(out.glob("*.parquet"))).field("zip").type == pa.int64()
    zero_led = [i + 1 for i, r in enumerate(later) if r[1].startswith("0")]
    kept = [r for r in first + later if r[1][0] in "12"]
    assert column(out, "zip") == [int(r[1]) for r in kept]
    lines = [json.loads(x) for x in (out / ".quarantine.jsonl").read_text().splitlines()]
    zeros = [x for x in lines if "leading zero" in x["reason"]]
    assert [x["line"] for x in zeros] == zero_led
    assert all("'00501'" in x["reason"] and x["source"].endswith("b.csv") for x in zeros)


def test_deeper_than_agrees_with_counting_brackets_per_line() -> None:
    import random

    from dataprep.stages.readers_unsampled import deeper_than

    rng = random.Random(7)
    for _ in range(300):
        lines = [
            "".join(rng.choice('[{}]"a,: ') for _ in range(rng.randrange(0, 60)))
            for _ in range(rng.randrange(1, 8))
        ]
        data = "\n".join(lines).encode() + (b"\n" if rng.random() < 0.5 else b"")
        limit = rng.randrange(1, 12)
        most = max(line.count("[") + line.count("{") for line in lines)
        assert deeper_than(data, limit) == (most > limit), (data, limit)


def test_a_csv_integer_past_a_doubles_digits_stays_text_or_is_quarantined(tmp_path: Path) -> None:
    """Arrow types a column of 20-digit integers (account numbers) double: 12345678901234567890
    became 1.2345678901234567e19. Sampled, the column stays text; after a sample of decimals,
    such a cell quarantines its row, and a 16-digit integer a double holds exactly is kept."""
    folder = tmp_path / "in"
    folder.mkdir()
    with (folder / "a.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "account", "ratio"])
        w.writerows(
            [(t, str(12345678901234567890 + i), f"{i}.5") for i, t in enumerate(TEXTS[:20])]
        )
    later = [(t, "1", str(1.5 + i)) for i, t in enumerate(TEXTS[20:40])]
    later[3] = (TEXTS[23], "2", "98765432109876543210")
    later[5] = (TEXTS[25], "3", "1" + "0" * 400)  # past a double's range
    later[7] = (TEXTS[27], "4", "1000000000000000")  # 16 digits, exact in a double: a number
    with (folder / "b.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "account", "ratio"])
        w.writerows(later)
    out = tmp_path / "out"
    cli("shard", folder, "-o", out, "-q")
    schema = pq.read_schema(next(out.glob("*.parquet")))
    assert schema.field("account").type == pa.string()
    assert schema.field("ratio").type == pa.float64()
    assert column(out, "account")[:20] == [str(12345678901234567890 + i) for i in range(20)]
    assert 1e15 in column(out, "ratio")
    lines = [json.loads(x) for x in (out / ".quarantine.jsonl").read_text().splitlines()]
    assert [x["line"] for x in lines] == [4, 6]
    assert "'98765432109876543210' has more digits" in lines[0]["reason"]


def test_a_later_timestamp_field_is_suggested_as_the_sample_would_type_it(tmp_path: Path) -> None:
    """C4's `timestamp` is an ISO string: Arrow's infer mode takes it for timestamp[s], the
    schema sample (Python's values) for a string; the suggested rerun keeps the text."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS[:20]))
    stamps = [f"2019-04-{1 + i:02d}T12:00:00Z" for i in range(20)]
    rows = [{"text": t, "timestamp": s} for t, s in zip(TEXTS[20:40], stamps, strict=True)]
    (folder / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    cli("shard", folder, "-o", out, "-q")
    assert _report(out)["keep_them"] == "--keep timestamp:string"
    cli("shard", folder, "-o", tmp_path / "kept", "-q", "--keep", "timestamp:string")
    assert column(tmp_path / "kept", "timestamp") == [None] * 20 + stamps


def test_the_quarantined_zero_led_cells_say_how_to_keep_them_and_that_keeps_them(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    rows = {"a": [(t, str(501 + i)) for i, t in enumerate(TEXTS[:20])]}
    rows["b"] = [(t, f"{i:05d}") for i, t in enumerate(TEXTS[20:40])]
    for name, body in rows.items():
        with (folder / f"{name}.csv").open("w", newline="") as f:
            csv.writer(f).writerows([("text", "zip"), *body])
    out = tmp_path / "out"
    cli("shard", folder, "-o", out, "-q")
    reasons = [
        json.loads(x)["reason"] for x in (out / ".quarantine.jsonl").read_text().splitlines()
    ]
    assert len(reasons) == 20 and all("--keep zip:string" in r for r in reasons)  # 00000 too
    cli("shard", folder, "-o", tmp_path / "kept", "-q", "--keep", "zip:string")
    assert column(tmp_path / "kept", "zip") == [r[1] for r in rows["a"] + rows["b"]]
    assert not (tmp_path / "kept" / ".quarantine.jsonl").exists()


def test_a_declared_field_no_row_holds_is_named_as_a_likely_typo(tmp_path: Path) -> None:
    """`--keep utl:string` (url misspelt) wrote a column of nulls with exit 0 and nothing said;
    the summary and report now name it. A declared field some row holds is not named."""
    _jsonl_inputs(tmp_path / "in")
    out = tmp_path / "out"
    proc = cli("shard", tmp_path / "in", "-o", out, "-w", "2", "--keep", "lang,utl:string")
    assert _report(out)["declared_fields_empty"] == ["utl"]
    said = " ".join(proc.stdout.split())
    assert "--keep declared utl, which no row held" in said, said
    fine = tmp_path / "fine"
    cli("shard", tmp_path / "in", "-o", fine, "-q", "--keep", "url:string,lang:string")
    assert "declared_fields_empty" not in _report(fine)
