"""What the CLI prints, as a script or a CI log sees it: `export -o -` streams pure JSONL on
stdout (and a reader that stops early ends it quietly); with stdout and stderr piped (not a
terminal) tables are not cut to 80 columns, progress bars leave no blank lines, and every stage
says its one-line details after the summary table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import cli, shard_rows, text_dataset


@pytest.fixture(scope="module")
def texts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return text_dataset(tmp_path_factory.mktemp("output") / "texts")


def test_export_to_stdout_is_pure_jsonl(texts: Path) -> None:
    proc = cli("export", texts, "-o", "-")
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert rows == shard_rows(texts)  # the oracle: pyarrow reading the shards directly
    assert "rows" in proc.stderr  # the summary went to stderr, not into the JSONL


def test_export_to_stdout_some_columns(texts: Path) -> None:
    proc = cli("export", texts, "-o", "-", "--columns", "id")
    assert [json.loads(line) for line in proc.stdout.splitlines()] == shard_rows(texts, ["id"])


def test_export_to_a_reader_that_stops_early_ends_quietly(texts: Path) -> None:
    """`dataprep export DIR -o - | head -1`: the closed pipe is not an error."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dataprep", "export", str(texts), "-o", "-"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = json.loads(proc.stdout.readline())
    proc.stdout.close()  # the reader is gone; the export has megabytes left to write
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, stderr
    assert "Traceback" not in stderr and "Error" not in stderr and "error" not in stderr
    assert first == shard_rows(texts)[0]


def test_export_json_summary_and_stdout_conflict(texts: Path) -> None:
    proc = cli("export", texts, "-o", "-", "--json", check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "--json" in proc.stderr
