"""Review (H7) of the shard stage's readers: an input with two columns of the same name.

A spreadsheet export often ends every line with empty cells: a header `id,text,,` has two
columns named "". Any repeated name (`a,a,text`, or a Parquet file with two `n` columns) stops
shard with a KeyError traceback (`Field "" exists 2 times in schema`, from readers_common's
_cast_columns / the Parquet reader), exit 1, even where the repeated column is not the text or
id and is not kept. Expected: the rows read (the repeated column dropped, renamed or refused by
--keep), or at least one sentence, never a traceback.

Oracle: Python's csv module for the id and text columns.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from helpers import cli, column

LINES = [ln.strip() for ln in Path("/usr/share/common-licenses/BSD").read_text().splitlines()]
TEXTS = [t for t in LINES if t][:10]


def _check(src: Path, out: Path, want: list[tuple[str, str]]) -> None:
    proc = cli("shard", src, "-o", out, "-q", "-w", "1", check=False)
    assert "Traceback" not in proc.stderr, proc.stderr[-300:]
    assert proc.returncode in (0, 2), proc.stderr[-300:]
    if proc.returncode == 2:  # refused: in one sentence
        assert len(proc.stderr.strip().splitlines()) <= 2, proc.stderr
        return
    assert list(zip(column(out, "id"), column(out, "text"), strict=True)) == want


def _csv(path: Path, header: list[str], rows: list[list[str]]) -> list[tuple[str, str]]:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([header, *rows])
    path.write_text(text.getvalue())
    records = list(csv.reader(io.StringIO(text.getvalue())))
    at_id, at_text = records[0].index("id"), records[0].index("text")
    return [(r[at_id], r[at_text]) for r in records[1:]]


def test_trailing_empty_header_cells_are_no_traceback(tmp_path: Path) -> None:
    rows = [[f"r{i}", t, "", ""] for i, t in enumerate(TEXTS)]
    want = _csv(tmp_path / "export.csv", ["id", "text", "", ""], rows)
    _check(tmp_path / "export.csv", tmp_path / "out", want)


def test_a_repeated_csv_column_is_no_traceback(tmp_path: Path) -> None:
    rows = [["1", "2", f"r{i}", t] for i, t in enumerate(TEXTS)]
    want = _csv(tmp_path / "dup.csv", ["a", "a", "id", "text"], rows)
    _check(tmp_path / "dup.csv", tmp_path / "out", want)


def test_a_repeated_parquet_column_is_no_traceback(tmp_path: Path) -> None:
    ids = [f"r{i}" for i in range(len(TEXTS))]
    n = pa.array(range(len(TEXTS)))
    table = pa.Table.from_arrays([pa.array(ids), pa.array(TEXTS), n, n], ["id", "text", "n", "n"])
    pq.write_table(table, tmp_path / "dup.parquet")
    _check(tmp_path / "dup.parquet", tmp_path / "out", list(zip(ids, TEXTS, strict=True)))


def test_id_column_equal_to_text_column_is_one_sentence(tmp_path: Path) -> None:
    src = tmp_path / "rows.jsonl"
    src.write_text("".join(f'{{"text": "{t}"}}\n' for t in ("alpha", "beta")))
    proc = cli("shard", src, "-o", tmp_path / "out", "-q", "-w", "1", "--id-column", "text",
               check=False)  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr[-300:]
    assert proc.returncode in (0, 2), proc.stderr[-300:]
