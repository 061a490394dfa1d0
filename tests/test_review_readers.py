"""Review (H7) of the shard stage's JSONL fast path (readers_jsonl._arrow_block): Arrow parses
a whole block, and the block's rows are numbered line by line when their count equals its
count of lines; a blank line (no row in Arrow's parse) is what that count guards against.

A line holding two objects (`cat a.jsonl b.jsonl` where a.jsonl has no final newline) gives
Arrow two rows: beside a blank line in the same block the counts agree again, so every row
from there to the blank line gets the number (and the generated id SOURCE:LINE) of the next
line; in a block without a blank line the same line is quarantined. The output then depends
on where blocks happen to end (block_bytes, the file's size through its ranges).

Oracle: Python's json.loads line by line (the slow path here, and what a JSONL reader such as
datatrove does): a line is one object or it is not a row; a blank line is no row.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import cli, column

from dataprep import runner
from dataprep.executors.local import LocalExecutor

LICENSE = Path("/usr/share/common-licenses/Apache-2.0")


def _shard(raw: Path, out: Path, **config: object) -> list[tuple[str, str]]:
    runner.run_stage("shard", config, out, inputs=[str(raw)], executor=LocalExecutor(1))
    return list(zip(column(out, "id"), column(out, "text"), strict=True))


def test_a_line_with_two_objects_is_read_the_same_whatever_the_blocks(tmp_path: Path) -> None:
    lines = [s for s in LICENSE.read_text().splitlines() if s.strip()][:40]
    first = json.dumps({"text": lines[0]})
    glued = json.dumps({"text": lines[1]}) + json.dumps({"text": lines[2]})  # no newline
    body = [first, glued, *[json.dumps({"text": s}) for s in lines[3:20]], ""]
    body += [json.dumps({"text": s}) for s in lines[20:]]
    raw = tmp_path / "cat.jsonl"
    raw.write_text("\n".join(body) + "\n")
    blank = body.index("") + 1  # line number of the blank line
    # the oracle: each line on its own
    want = []
    for number, line in enumerate(body, start=1):
        try:
            row = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            row = None  # "Extra data": not one object, quarantined
        if isinstance(row, dict):
            want.append((f"cat.jsonl:{number}", row["text"]))
    whole = _shard(raw, tmp_path / "one-block")  # default 8 MiB blocks: one block
    assert f"cat.jsonl:{blank}" not in [i for i, _ in whole], "a row got the blank line's id"
    small = _shard(raw, tmp_path / "small-blocks", block_bytes=len(first) + len(glued) + 2)
    assert whole == small
    assert whole == want


def test_csv_ids_after_a_malformed_row_are_their_own_row_numbers(tmp_path: Path) -> None:
    import csv
    import io

    lines = [s.strip() for s in LICENSE.read_text().splitlines() if s.strip()][:30]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["text", "n"])
    for i, line in enumerate(lines):
        writer.writerow([line, i] + (["extra"] if i == 4 else []))  # row 5: one field too many
    raw = tmp_path / "rows.csv"
    raw.write_text(buffer.getvalue())
    # the oracle: Python's csv module numbers data records 1, 2, ... after the header
    records = list(csv.reader(io.StringIO(buffer.getvalue())))[1:]
    want = [(f"rows.csv:{n}", r[0]) for n, r in enumerate(records, start=1) if len(r) == 2]
    assert _shard(raw, tmp_path / "out") == want


@pytest.mark.parametrize("where", ["first line", "a block's first line"])
def test_a_null_line_is_quarantined_not_a_crash(tmp_path: Path, where: str) -> None:
    lines = [s.strip() for s in LICENSE.read_text().splitlines() if s.strip()][:30]
    rows = [json.dumps({"text": s}) for s in lines]
    at = 0 if where == "first line" else 10
    body = rows[:at] + ["null"] + rows[at:]  # a writer's record for a missing object
    raw = tmp_path / "nulls.jsonl"
    raw.write_text("\n".join(body) + "\n")
    block = sum(len(r) + 1 for r in rows[:at]) or 1 << 20  # a block ends just before `null`
    # a fresh process: a segfault must fail this test, not the test run
    run = cli("shard", raw, "-o", tmp_path / "out", "-w", "1", "--block-bytes", block, check=False)
    assert run.returncode == 0, f"exit {run.returncode}: {run.stderr[-500:]}"
    assert column(tmp_path / "out", "text") == lines
    quarantine = (tmp_path / "out" / ".quarantine.jsonl").read_text().splitlines()
    assert [json.loads(q)["line"] for q in quarantine] == [at + 1]


def test_a_byte_order_mark_never_costs_the_first_record(tmp_path: Path) -> None:
    lines = [s.strip() for s in LICENSE.read_text().splitlines() if s.strip()][:5]
    records = [json.dumps({"text": s}) for s in lines]
    # as Windows tools write it (PowerShell's utf8, Notepad): BOM, CRLF, a last empty line
    raw = tmp_path / "windows.jsonl"
    raw.write_bytes(b"\xef\xbb\xbf" + ("\r\n".join(records) + "\r\n\r\n").encode())
    # the oracle: Python reads the file as utf-8-sig, one object per non-blank line
    want = [json.loads(s)["text"] for s in raw.read_text("utf-8-sig").splitlines() if s.strip()]
    assert [t for _, t in _shard(raw, tmp_path / "out")] == want


def test_a_csv_record_longer_than_two_blocks_is_read(tmp_path: Path) -> None:
    import csv

    book = LICENSE.read_text()  # ~11 KB: three 4 KiB blocks, as 18 MB are at 8 MiB
    raw = tmp_path / "books.csv"
    with raw.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerows([["id", "text"], ["a", "a short one"], ["book", book], ["b", "after"]])
    run = cli("shard", raw, "-o", tmp_path / "out", "-w", "1", "--block-bytes", 4096, check=False)
    assert run.returncode == 0, run.stderr[-300:]
    assert column(tmp_path / "out", "text") == ["a short one", book, "after"]


def test_a_bom_csv_with_a_malformed_row_keeps_its_good_rows(tmp_path: Path) -> None:
    import csv
    import io

    lines = [s.strip() for s in LICENSE.read_text().splitlines() if s.strip()][:12]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_NONNUMERIC)
    writer.writerow(["text", "n"])
    for i, line in enumerate(lines):
        writer.writerow([line, i] + (["extra"] if i == 6 else []))
    raw = tmp_path / "r.csv"
    raw.write_bytes(b"\xef\xbb\xbf" + buffer.getvalue().encode())
    # the oracle: Python's csv module over the file read as utf-8-sig
    records = list(csv.reader(io.StringIO(raw.read_text("utf-8-sig"), newline="")))[1:]
    want = [(f"r.csv:{n}", r[0]) for n, r in enumerate(records, start=1) if len(r) == 2]
    assert _shard(raw, tmp_path / "out") == want


def test_a_parquet_large_binary_text_column_is_read(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    lines = [s.strip() for s in LICENSE.read_text().splitlines() if s.strip()][:20]
    raw = tmp_path / "bytes.parquet"
    text = pa.array([s.encode() for s in lines], pa.large_binary())
    pq.write_table(pa.table({"text": text}), raw)
    run = cli("shard", raw, "-o", tmp_path / "out", "-w", "1", check=False)
    assert run.returncode == 0, run.stderr[-300:]
    assert column(tmp_path / "out", "text") == lines  # as the binary (not large) column is
