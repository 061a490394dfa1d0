"""Review of this session's `shard` code (JSON arrays, `--keep NAME:TYPE`, CSV cells a number
type would change) with inputs a data engineer meets: every input row is in the output with the
values an independent reader gives, or in the quarantine with its source and line.

Oracle: Python's json and csv modules over the same files."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import cli, column

LICENSE = Path("/usr/share/common-licenses/GPL-3").read_text()
TEXTS = [t.strip() for t in LICENSE.splitlines() if t.strip()][:40]


def _quarantine(out: Path) -> list[dict]:
    path = out / ".quarantine.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def _one_sentence(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    return " ".join(lines[0].split())


@pytest.mark.parametrize("before", ["\n", " \n\t", "\ufeff\n", "\r\n\r\n"])
def test_a_json_array_after_blank_lines_is_read_element_by_element(
    tmp_path: Path, before: str
) -> None:
    """A `.json` array whose `[` follows a blank line (`echo; cat rows.json`, an editor's
    leading newline) and which ends without a newline: the driver's sample saw an array, but
    the task's first block (the blank line alone) was not one, so the array's one line was
    read as JSON Lines and quarantined whole, exit 0 and no row written."""
    rows = [{"text": t, "n": i} for i, t in enumerate(TEXTS)]
    path = tmp_path / "rows.json"
    path.write_text(before + json.dumps(rows), encoding="utf-8")
    out = tmp_path / "out"
    cli("shard", path, "-o", out, "-q")
    oracle = json.loads(path.read_text(encoding="utf-8-sig"))
    assert column(out, "text") == [r["text"] for r in oracle]
    assert column(out, "n") == [r["n"] for r in oracle]
    assert column(out, "id") == [f"rows.json:{i}" for i in range(1, len(oracle) + 1)]
    assert _quarantine(out) == []


@pytest.mark.parametrize(
    "content", ["[[1, 2], [3]]", '["a", "b"]', '[[{"text": "x"}], [{"text": "y"}]]']
)
def test_a_json_array_of_no_objects_is_a_sentence_naming_the_input(
    tmp_path: Path, content: str
) -> None:
    """An array whose elements are no objects named a temporary file of the sample
    (`/tmp/tmpXXXX/sample.jsonl has no JSON object in its first lines`), not the input."""
    path = tmp_path / "nested.json"
    path.write_text(content)
    proc = cli("shard", path, "-o", tmp_path / "out", check=False)
    sentence = _one_sentence(proc)
    assert str(path) in sentence or "nested.json" in sentence, sentence
    assert "sample.jsonl" not in sentence, sentence
    assert "array" in sentence, sentence


def _csv(path: Path, header: list[str], rows: list[list[str]]) -> list[list[str]]:
    buf = io.StringIO()
    csv.writer(buf).writerows([header, *rows])
    path.write_text(buf.getvalue())
    return list(csv.reader(io.StringIO(path.read_text())))[1:]


@pytest.mark.parametrize("later", [False, True])
def test_a_csv_hexadecimal_cell_is_never_read_as_its_number(tmp_path: Path, later: bool) -> None:
    """Arrow's CSV reader takes `0x1F` for the integer 31 (a part number, a colour, a hash
    prefix): in the sample's column it became 31, after it 31 too, exit 0 and nothing said.
    Such a cell is treated as a leading zero is: its column stays text where the sample holds
    one, and later its row is quarantined with the value and why."""
    pad = [[f"{LICENSE[:1500]} {i}", str(i)] for i in range(1000)] if later else []
    cells = ["5", "0x1F", "0X1f", "7", "0x0"]
    oracle = _csv(tmp_path / "parts.csv", ["text", "part"], pad + [["t", c] for c in cells])
    out = tmp_path / "out"
    cli("shard", tmp_path / "parts.csv", "-o", out, "-q", "--keep", "part")
    got = dict(zip(column(out, "id"), column(out, "part"), strict=True))
    lines = {q["line"]: q["reason"] for q in _quarantine(out)}
    for i, (_, cell) in enumerate(oracle, 1):
        if i in lines:
            assert "0x" in cell.lower() and repr(cell) in lines[i], (cell, lines[i])
            continue
        value = got[f"parts.csv:{i}"]
        assert str(value) == cell, (cell, value)  # text byte for byte, or the same number
    assert len(got) + len(lines) == len(oracle)


def _padded_jsonl(path: Path, tail: list[str]) -> None:
    """Lines past the schema sample (1 MiB), then `tail`."""
    pad = [json.dumps({"text": f"{LICENSE[:2000]} {i}"}) for i in range(700)]
    path.write_text("".join(line + "\n" for line in pad + tail))


def test_a_declared_timestamp_beside_a_bad_line_is_kept(tmp_path: Path) -> None:
    """`--keep ts:timestamp[s]` (the help's own example type): Arrow's reader takes an ISO
    time string, but a block holding one bad line is read line by line in Python, where
    `pa.array` refused the string, so every valid time near a bad line was quarantined."""
    tail = [
        '{"text": "a", "ts": "2020-01-02T03:04:05"}',
        '{"text": "b", "ts": "2019-04-25T12:57:54Z"}',
        '{"text": "c", "ts": "not a time"}',
        '{"text": "d", "ts": "2020-01-02 03:04:05"}',
        "{broken",
    ]
    path = tmp_path / "t.jsonl"
    _padded_jsonl(path, tail)
    out = tmp_path / "out"
    cli("shard", path, "-o", out, "-q", "--keep", "ts:timestamp[s]")
    got = dict(zip(column(out, "text"), column(out, "ts"), strict=True))
    assert str(got["a"]) == "2020-01-02 03:04:05"
    assert str(got["b"]) == "2019-04-25 12:57:54"
    assert str(got["d"]) == "2020-01-02 03:04:05"
    assert sorted(q["line"] for q in _quarantine(out)) == [703, 705]


def test_a_declared_type_json_lines_cannot_hold_is_a_sentence(tmp_path: Path) -> None:
    """`--keep d:date32`: Arrow's JSON reader reads no date32 (nor time, decimal or binary)
    from a JSON value, so every row holding `d` was quarantined ('2020-01-01' is not
    date32[day]), exit 0; the report even said no row held it. One sentence instead."""
    path = tmp_path / "d.jsonl"
    _padded_jsonl(path, ['{"text": "a", "d": "2020-01-01"}'])
    proc = cli("shard", path, "-o", tmp_path / "out", "--keep", "d:date32", check=False)
    sentence = _one_sentence(proc)
    assert "date32" in sentence and "d:string" in sentence, sentence


def test_a_number_kept_as_text_is_its_json_text_on_every_path(tmp_path: Path) -> None:
    """A field of numbers and text kept as string (what `keep_them` suggests for such a mix,
    'a number kept as text is its JSON text'): a block with a bad line is read in Python,
    which wrote json.dumps(float(...)): 1.50 became '1.5', 1e5 '100000.0', 1e400
    'Infinity'."""
    numbers = ["1.50", "1e5", "1E+2", "1e400", "-0.0", "12345678901234567890123", "7"]
    tail = [f'{{"text": "n{i}", "x": {n}}}' for i, n in enumerate(numbers)]
    tail += ['{"text": "s", "x": "word"}', "{broken"]
    path = tmp_path / "x.jsonl"
    _padded_jsonl(path, tail)
    out = tmp_path / "out"
    cli("shard", path, "-o", out, "-q", "--keep", "x:string")
    got = dict(zip(column(out, "text"), column(out, "x"), strict=True))
    assert [got[f"n{i}"] for i in range(len(numbers))] == numbers
    assert got["s"] == "word"


def test_the_keep_them_rerun_of_a_field_mixing_booleans_keeps_every_row(tmp_path: Path) -> None:
    """A later field holding 1, "one" and true: the summary's rerun is `--keep mix:string`
    ("other mixes string"), but there a JSON true was quarantined ('True is not string') while
    numbers became their text: the rerun it gave lost rows. A boolean is its JSON text too."""
    values = [1, "one", True, 2.5, False, "two"]
    tail = [json.dumps({"text": f"m{i}", "mix": v}) for i, v in enumerate(values)]
    path = tmp_path / "m.jsonl"
    _padded_jsonl(path, tail)
    out = tmp_path / "out"
    cli("shard", path, "-o", out, "-q")
    report = json.loads((out / ".report.json").read_text())
    assert report["keep_them"] == "--keep mix:string"
    cli("shard", path, "-o", out, "-q", *report["keep_them"].split())
    assert _quarantine(out) == []
    got = dict(zip(column(out, "text"), column(out, "mix"), strict=True))
    oracle = [json.loads(line) for line in tail]
    assert [got[r["text"]] for r in oracle] == ["1", "one", "true", "2.5", "false", "two"]


def _peak_rss_mb(*args: object) -> float:
    """The largest resident size (MB) of `dataprep ARGS`' processes, from the kernel."""
    code = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, sys.executable, "-m", "dataprep", *map(str, args)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return int(proc.stdout.split()[-1]) / 1024


def test_a_one_line_json_array_is_read_in_blocks_not_whole(tmp_path: Path) -> None:
    """What `json.dump(rows, f)` writes, one line: the task's line reader took the whole
    array for its first line (read whole into memory: 745 MB of RSS for a 152 MB file at 1 MB
    blocks) before the array was noticed; the same rows one element a line took 193 MB."""
    rows = [{"text": f"{LICENSE[(i * 7) % 30000 :][:1000]} {i}"} for i in range(60000)]
    one_line, pretty = tmp_path / "one.json", tmp_path / "pretty.json"
    one_line.write_text(json.dumps(rows))
    pretty.write_text("[\n" + ",\n".join(json.dumps(r) for r in rows) + "\n]\n")
    assert one_line.stat().st_size > 50 << 20
    sizes = {}
    for path in (one_line, pretty):
        out = tmp_path / f"out_{path.stem}"
        sizes[path.stem] = _peak_rss_mb(
            "shard", path, "-o", out, "-q", "-w", "1", "--block-bytes", "1MB"
        )
        assert column(out, "text") == [r["text"] for r in rows]
    assert sizes["one"] < sizes["pretty"] + 40, sizes


@pytest.mark.parametrize("first", [True, False])
def test_a_cut_json_gz_array_keeps_the_elements_before_the_cut(tmp_path: Path, first: bool) -> None:
    """`--on-truncated quarantine` on a cut `.json.gz` array: the task read the array as one
    line, so the cut quarantined it whole (0 rows, exit 0), and where the cut was in the
    schema sample the run stopped telling to pass the very flag it had. Now the elements
    before the cut are rows and the cut one is quarantined, as a cut JSONL's lines are."""
    import gzip
    import zlib

    rows = [{"text": f"{LICENSE[i * 40 :][:3000]} {i}"} for i in range(400)]
    packed = gzip.compress(json.dumps(rows).encode())
    cut = tmp_path / "rows.json.gz"
    cut.write_bytes(packed[: len(packed) * 2 // 3])
    readable = zlib.decompressobj(31).decompress(cut.read_bytes()).decode()
    whole = readable.count('"}')  # oracle: the elements whose end the cut left
    inputs = [cut]
    if not first:
        inputs.insert(0, tmp_path / "a.jsonl")
        inputs[0].write_text(json.dumps({"text": "first"}) + "\n")
    out = tmp_path / "out"
    cli("shard", *inputs, "-o", out, "-q", "--on-truncated", "quarantine")
    texts = column(out, "text")[0 if first else 1 :]
    assert texts == [r["text"] for r in rows[:whole]]
    (record,) = _quarantine(out)
    assert record["source"] == "rows.json.gz" and record["reason"] == "truncated"
    assert int(record["line"]) == whole + 1


def test_a_json_array_element_with_invalid_utf8_is_quarantined_alone(tmp_path: Path) -> None:
    """One element holding a byte that is not UTF-8 (a Latin-1 name in a scraped dump)
    stopped the whole run ('is not UTF-8'), where the same row in JSON Lines quarantines its
    line alone: the element is now quarantined with its number, the others are rows."""
    rows = [json.dumps({"text": t}).encode() for t in TEXTS[:10]]
    rows[4] = b'{"text": "Jos\xe9 (Latin-1)"}'
    path = tmp_path / "rows.json"
    path.write_bytes(b"[" + b",\n".join(rows) + b"]")
    out = tmp_path / "out"
    cli("shard", path, "-o", out, "-q")
    assert column(out, "text") == [t for i, t in enumerate(TEXTS[:10]) if i != 4]
    (record,) = _quarantine(out)
    assert int(record["line"]) == 5 and "UTF-8" in record["reason"], record


def test_a_field_declared_twice_with_two_types_is_a_sentence(tmp_path: Path) -> None:
    """`--keep x:string,...,x:int64` (a long --keep edited by hand): the last type won unsaid,
    and every row whose x was text was quarantined."""
    path = tmp_path / "x.jsonl"
    _padded_jsonl(path, ['{"text": "a", "x": "word"}'])
    proc = cli("shard", path, "-o", tmp_path / "out", "--keep", "x:string,x:int64", check=False)
    sentence = _one_sentence(proc)
    assert "x" in sentence and "string" in sentence and "int64" in sentence, sentence
    out = tmp_path / "same"
    cli("shard", path, "-o", out, "-q", "--keep", "x:string,x:string")
    assert column(out, "x")[-1] == "word"


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        (["12345678901234567890", "5"], "string"),  # past int64: Arrow's infer typed double
        (["9007199254740993", "0.5"], "string"),  # 2**53 + 1 beside a double
        (["9007199254740993", "5"], "int64"),
        (["5", "0.5"], "double"),
    ],
)
def test_the_keep_them_rerun_never_rounds_a_wide_integer(
    tmp_path: Path, values: list[str], kind: str
) -> None:
    """A later field holding 12345678901234567890 beside 5: the summary's rerun said
    `--keep n:double`, which wrote 1.2345678901234567e19, exit 0 and nothing quarantined.
    An integer a double does not hold is typed as the schema sample types it: text."""
    tail = [f'{{"text": "r{i}", "n": {v}}}' for i, v in enumerate(values)]
    path = tmp_path / "n.jsonl"
    _padded_jsonl(path, tail)
    out = tmp_path / "out"
    cli("shard", path, "-o", out, "-q")
    keep = json.loads((out / ".report.json").read_text())["keep_them"]
    assert keep == f"--keep n:{kind}"
    cli("shard", path, "-o", out, "-q", *keep.split())
    assert _quarantine(out) == []
    got = dict(zip(column(out, "text"), column(out, "n"), strict=True))
    for line in tail:  # oracle: json.loads' exact value, or its JSON text
        row = json.loads(line)
        value = got[row["text"]]
        assert (value == line.split(": ")[-1][:-1]) if kind == "string" else (value == row["n"])


def test_a_json_array_element_over_64_mib_is_a_row(tmp_path: Path) -> None:
    """An element longer than 64 MiB (a whole book, a code dump) stopped the run with 'not
    valid JSON at element 2 (Unterminated string)': the reader gave up on it (and re-decoded it
    once per MiB read, quadratic). JSON Lines takes such a line; the array now does too,
    reading as much again at each retry."""
    big = "".join(TEXTS) * ((66 << 20) // len("".join(TEXTS)) + 1)
    path = tmp_path / "book.json"
    path.write_text(json.dumps([{"text": "a"}, {"text": big}, {"text": "b"}]))
    out = tmp_path / "out"
    cli("shard", path, "-o", out, "-q")
    texts = column(out, "text")
    assert len(texts) == 3 and texts[0] == "a" and texts[2] == "b"
    assert texts[1] == json.loads(path.read_text())[1]["text"]


@pytest.mark.parametrize("empty", ["[]", "[ ]\n", "\ufeff[\n]\n"])
def test_an_empty_json_array_sorting_first_is_no_rows(tmp_path: Path, empty: str) -> None:
    """`json.dump([], f)` for an empty split, named first: the run stopped with "has no
    column 'text' (columns: none); pass --text-column", as a blank JSONL file did before it
    was passed over for the sample; it is read as no rows, as where it sorts later."""
    (tmp_path / "a_empty.json").write_text(empty, encoding="utf-8")
    (tmp_path / "b.json").write_text(json.dumps([{"text": t} for t in TEXTS[:5]]))
    out = tmp_path / "out"
    cli("shard", tmp_path / "a_empty.json", tmp_path / "b.json", "-o", out, "-q")
    assert column(out, "text") == TEXTS[:5]
    assert _quarantine(out) == []


@pytest.mark.parametrize("keep", ["score", "score:double"])
def test_an_integer_a_double_does_not_hold_is_quarantined_in_a_double_column(
    tmp_path: Path, keep: str
) -> None:
    """A double column (sampled from 0.5s, or declared) and a later 12345678901234567890:
    Arrow's reader wrote 1.2345678901234567e19, exit 0, where the same line beside a bad one
    (read in Python) was quarantined, and a CSV cell is quarantined; now always quarantined
    with the value and why. 1e300 and 2**53 itself are doubles and stay."""
    head = [json.dumps({"text": f"{LICENSE[:2000]} {i}", "score": i / 4}) for i in range(700)]
    tail = [
        '{"text": "a", "score": 12345678901234567890}',
        '{"text": "b", "score": 1e300}',
        '{"text": "c", "score": 9007199254740992}',
        '{"text": "d", "score": -9007199254740993}',
        '{"text": "e", "score": 2.5}',
    ]
    path = tmp_path / "s.jsonl"
    path.write_text("".join(line + "\n" for line in head + tail))
    out = tmp_path / "out"
    cli("shard", path, "-o", out, "-q", "--keep", keep)
    got = dict(zip(column(out, "text"), column(out, "score"), strict=True))
    assert got["b"] == 1e300 and got["c"] == 2.0**53 and got["e"] == 2.5
    lines = {q["line"]: q["reason"] for q in _quarantine(out)}
    assert sorted(lines) == [701, 704], lines
    assert "12345678901234567890" in lines[701] and "double" in lines[701]
    assert "a" not in got and "d" not in got
