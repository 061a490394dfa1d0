"""Review (H7) of the shard stage's CSV ids: the id column's type is inferred like any other.

CSV values are text; Arrow's inference on the schema sample makes an id column of digits int64,
so "007" and "7" are both written as the id 7, and "0042" as 42: the ids no longer name the
rows the source names, and distinct rows share an id (dedup examples, lineage and joins back
to the source go wrong). The same ids in JSONL ({"id": "007"}) stay the text they were.

Oracle: Python's csv module (an id is the text in its cell).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from helpers import cli, column


def test_csv_ids_are_the_text_in_their_cells(tmp_path: Path) -> None:
    rows = [["id", "text"], ["007", "first"], ["7", "second"], ["0042", "third"], ["10", "x"]]
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    src = tmp_path / "rows.csv"
    src.write_text(text.getvalue())
    out = tmp_path / "out"
    cli("shard", src, "-o", out, "-q", "-w", "1")
    want = [r[0] for r in list(csv.reader(io.StringIO(text.getvalue())))[1:]]
    assert column(out, "id") == want
