"""Review (H7) of the shard stage's CSV reader: a malformed row (wrong number of fields) that
also holds a byte that is not UTF-8.

pyarrow hands a malformed row to `invalid_row_handler` as a Python str, decoded strictly: on a
byte that is not UTF-8 the decode raises inside pyarrow ("Exception ignored in ... frombytes"),
the handler never runs and the parse error stands. In the schema sample (the first MiB) that
reads as "has no CSV header" and the whole file is refused; further on it is an ArrowInvalid
traceback. Each is one bad row that should go to the quarantine as the other bad rows do.

Oracle: Python's csv module over the text decoded with surrogateescape (the row with too many
fields is not a row; the others are).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from helpers import cli, column


def _oracle(raw: bytes, name: str) -> tuple[list[tuple[str, str]], list[int]]:
    records = list(csv.reader(io.StringIO(raw.decode("utf-8", "surrogateescape"))))
    rows, bad = [], []
    for number, record in enumerate(records[1:], start=1):
        if len(record) != 2 or any("\udcff" in v for v in record):
            bad.append(number)
        else:
            rows.append((record[0] or f"{name}:{number}", record[1]))
    return rows, bad


def _check(tmp_path: Path, raw: bytes) -> None:
    src = tmp_path / "rows.csv"
    src.write_bytes(raw)
    out = tmp_path / "out"
    proc = cli("shard", src, "-o", out, "-q", "-w", "1", check=False)
    assert proc.returncode == 0, proc.stderr[-600:]
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
    want, bad = _oracle(raw, src.name)
    assert list(zip(column(out, "id"), column(out, "text"), strict=True)) == want
    records = [json.loads(x) for x in (out / ".quarantine.jsonl").read_text().splitlines()]
    assert sorted(r["line"] for r in records) == bad


def test_a_malformed_row_with_a_bad_byte_in_the_sample_is_quarantined(tmp_path: Path) -> None:
    raw = b"id,text\nr1,hello\nr2,caf\xff,extra\nr3,world\n"
    _check(tmp_path, raw)


def test_a_malformed_row_with_a_bad_byte_later_is_quarantined(tmp_path: Path) -> None:
    lines = [ln.strip() for ln in Path("/usr/share/common-licenses/GPL-3").read_text().splitlines()]
    text = [ln.replace(",", " ").replace('"', "") for ln in lines if ln.strip()]
    rows = [f"r{i},{text[i % len(text)]}" for i in range(60000)]  # ~4 MB: past the sample
    head = ("id,text\n" + "\n".join(rows[:55000]) + "\n").encode()
    tail = ("\n".join(rows[55000:]) + "\n").encode()
    _check(tmp_path, head + b"bad,caf\xff,extra\n" + tail)
