"""Review (H7) of the shard stage's schema sample: it is taken from the FIRST input file only.

An empty JSONL file (0 bytes, or blank lines: an empty split, a crashed writer's part file)
that sorts first makes the whole run stop with "input a.jsonl has no column 'text' (columns:
none); pass --text-column", although every other file has that column; the same empty file
sorting last is read as no rows and the run succeeds. The outcome depends on file names only.

Oracle: json.loads over every input line (an empty file holds no row).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import cli, column

TEXTS = [ln.strip() for ln in Path("/usr/share/common-licenses/GPL-3").read_text().splitlines()]
TEXTS = [t for t in TEXTS if t][:20]


@pytest.mark.parametrize("empty", [b"", b"\n\n  \n"], ids=["zero-bytes", "blank-lines"])
def test_an_empty_first_file_does_not_stop_the_run(tmp_path: Path, empty: bytes) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jsonl").write_bytes(empty)
    (folder / "b.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    out = tmp_path / "out"
    proc = cli("shard", folder, "-o", out, "-q", "-w", "1", check=False)
    assert proc.returncode == 0, proc.stderr
    assert column(out, "text") == TEXTS


def test_an_empty_last_file_is_no_rows(tmp_path: Path) -> None:
    """The same files the other way round: what the first test expects, today."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    (folder / "b.jsonl").write_bytes(b"")
    out = tmp_path / "out"
    cli("shard", folder, "-o", out, "-q", "-w", "1")
    assert column(out, "text") == TEXTS
