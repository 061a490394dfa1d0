"""Review (H7) of the shard stage's CSV reader: Arrow's null spellings applied to text.

The CSV columns are read as strings with `strings_can_be_null=True` and Arrow's default
`null_values` ("NA", "N/A", "NULL", "null", "nan", "NaN", "#N/A", ...), so a cell that spells
one of them is null: a document whose text is "NA" or "null" is quarantined as "missing field
'text'", the id "NA" is replaced by a generated SOURCE:ROW id, and a kept country code "NA"
(Namibia) is written as null. Python's csv module, datatrove's CSV reader and the JSONL path
({"text": "NA"}) all keep them as text.

Oracle: Python's csv module (a non-empty cell is its text).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from helpers import cli, column

SPELLED = ["NA", "null", "nan", "N/A", "NULL", "#N/A", "NaN"]


def test_cells_spelled_like_nulls_keep_their_text(tmp_path: Path) -> None:
    rows = [["id", "text", "country"]]
    rows += [[f"r{i}", word, "NA"] for i, word in enumerate(SPELLED)]
    rows += [["NA", "a document with the id NA", "US"]]
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    src = tmp_path / "rows.csv"
    src.write_text(text.getvalue())
    out = tmp_path / "out"
    cli("shard", src, "-o", out, "-q", "-w", "1")
    want = list(csv.reader(io.StringIO(text.getvalue())))[1:]
    got = list(zip(column(out, "id"), column(out, "text"), column(out, "country"), strict=True))
    assert got == [tuple(r) for r in want]
