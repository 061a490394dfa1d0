"""Review (H7) of the shard stage's CSV reader: a long FIRST data record.

A record longer than two read blocks goes to the Python csv path since ca79e28, but only once
Arrow's reader is open: Arrow opens a CSV by reading its first block(s) to infer the columns,
so a first record longer than two blocks fails there. With the defaults (the schema sample reads
1 MiB blocks) a CSV whose first document is over ~2 MiB (a book) is refused whole as "has no CSV
header (straddling object ...)"; with a small --block-bytes the read itself stops with Arrow's
"straddling object" traceback. The same record second in the file is read fine.

Oracle: Python's csv module.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

from helpers import cli, column

LINES = [ln.strip() for ln in Path("/usr/share/common-licenses/GPL-3").read_text().splitlines()]
LONG = " ".join(ln for ln in LINES if ln)  # ~30 KB of real text
csv.field_size_limit(sys.maxsize)  # the oracle reads multi-MB fields


def _write(path: Path, texts: list[str]) -> list[tuple[str, str]]:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["id", "text"])
    writer.writerows([f"r{i}", t] for i, t in enumerate(texts))
    path.write_text(text.getvalue())
    return [(r[0], r[1]) for r in list(csv.reader(io.StringIO(text.getvalue())))[1:]]


def test_a_first_record_over_two_sample_blocks_is_read(tmp_path: Path) -> None:
    big = (LONG + "\n") * (-(-(2 << 20) // len(LONG)) + 4)  # > 2 MiB, with newlines inside
    want = _write(tmp_path / "book.csv", [big, "a short row", "another row"])
    out = tmp_path / "out"
    proc = cli("shard", tmp_path / "book.csv", "-o", out, "-q", "-w", "1", check=False)
    assert proc.returncode == 0, proc.stderr[-400:]
    assert list(zip(column(out, "id"), column(out, "text"), strict=True)) == want


def test_a_first_record_over_two_read_blocks_is_read(tmp_path: Path) -> None:
    want = _write(tmp_path / "rows.csv", [LONG[:3500], "a short row", "another row"])
    out = tmp_path / "out"
    proc = cli(
        "shard", tmp_path / "rows.csv", "-o", out, "-q", "-w", "1", "--block-bytes", "1000",
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-400:]
    assert list(zip(column(out, "id"), column(out, "text"), strict=True)) == want


def test_the_same_record_second_is_read(tmp_path: Path) -> None:
    """What the two tests above expect, as it works today when the long record is second."""
    want = _write(tmp_path / "rows.csv", ["a short row", LONG[:3500], "another row"])
    out = tmp_path / "out"
    cli("shard", tmp_path / "rows.csv", "-o", out, "-q", "-w", "1", "--block-bytes", "1000")
    assert list(zip(column(out, "id"), column(out, "text"), strict=True)) == want
