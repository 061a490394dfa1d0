"""What the CLI prints, as a script or a CI log sees it: `export -o -` streams pure JSONL on
stdout (and a reader that stops early ends it quietly); with stdout and stderr piped (not a
terminal) tables are not cut to 80 columns, progress bars leave no blank lines, and every stage
says its one-line details after the summary table."""

from __future__ import annotations

import json
import os
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


@pytest.mark.parametrize(
    "args",
    [["export", "-o", "-"], ["head", "-n", "300", "--max-chars", "1000"]],
    ids=["export", "head-table"],
)
def test_a_reader_that_stops_early_ends_it_quietly(texts: Path, args: list[str]) -> None:
    """`dataprep export DIR -o - | head -1`: the closed pipe is not an error (nor for the
    rich table of `head`, which rich alone would end with exit 1)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dataprep", args[0], str(texts), *args[1:]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # the reader is gone; the command has megabytes left to write
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, stderr
    assert "Traceback" not in stderr and "Error" not in stderr and "error" not in stderr
    if args[0] == "export":
        assert json.loads(first) == shard_rows(texts)[0]


def test_export_json_summary_and_stdout_conflict(texts: Path) -> None:
    proc = cli("export", texts, "-o", "-", "--json", check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "--json" in proc.stderr


STAGES = [
    {"id": "shards", "op": "shard", "params": {"shard_rows": 400}},
    {"id": "exact", "op": "dedup", "params": {"method": "exact"}},
    {"id": "kept", "op": "filter", "params": {"where": "label != 'rare' or id > 'm'"}},
    {"id": "balanced", "op": "resample", "params": {"label": "label", "strategy": "oversample"}},
    {"id": "even", "op": "rebalance", "params": {"shards": 3}},
    {"id": "parts", "op": "partition", "params": {"key": "id", "partitions": 4}},
    {"id": "packed", "op": "compress", "params": {"level": 9}},
]


@pytest.fixture(scope="module")
def piped_run(corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """A recipe run as a CI job runs it: stdout and stderr are pipes, no COLUMNS set; its
    outputs live under a path far wider than 80 columns."""
    import yaml

    root = tmp_path_factory.mktemp("piped") / ("a-directory-name-that-is-long-" * 4).strip("-")
    recipe = {
        "version": 1,
        "name": "piped",
        "vars": {"root": str(root)},
        "input": {"path": str(corpus_dir), "text_column": "text"},
        "executor": {"kind": "local", "workers": 2},
        "stages": STAGES,
    }
    path = root.parent / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.run(
        [sys.executable, "-m", "dataprep", "run", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    return proc, root


def test_piped_output_has_no_blank_lines_and_uncut_tables(piped_run: tuple) -> None:
    proc, root = piped_run
    for stream in (proc.stdout, proc.stderr):
        assert "" not in [line.strip() for line in stream.splitlines()], stream
        assert "\x1b" not in stream  # no cursor moves or colours in a log
    for stage in STAGES:  # each row of the summary is one line, its output path whole
        out = f"{root}/{stage['id']}"
        assert len(out) > 100
        assert [line for line in proc.stdout.splitlines() if out in line and "│" in line]


def _details(stdout: str, stage_id: str) -> str:
    found = [line for line in stdout.splitlines() if line.startswith(f"{stage_id}: ")]
    assert len(found) == 1, stdout
    return found[0]


def test_every_stage_says_its_details(piped_run: tuple) -> None:
    """The detail lines agree with the outputs, read back with pyarrow."""
    import pyarrow.parquet as pq
    from helpers import manifest

    proc, root = piped_run

    def shards(stage: str) -> list[dict]:
        return manifest(root / stage)["shards"]

    def column(stage: str, name: str) -> list:
        return [
            v
            for s in shards(stage)
            for v in pq.read_table(root / stage / s["path"], columns=[name])
            .column(name)
            .to_pylist()
        ]

    line = _details(proc.stdout, "shards")
    rows = [s["rows"] for s in shards("shards")]
    assert f"{len(rows)} shards of {min(rows):,}-{max(rows):,} rows" in line

    line = _details(proc.stdout, "exact")
    removed = sum(s["rows"] for s in shards("shards")) - sum(s["rows"] for s in shards("exact"))
    assert line.startswith(f"exact: removed {removed:,} rows") and removed > 0

    kept = sum(s["rows"] for s in shards("kept"))
    dropped = sum(s["rows"] for s in shards("exact")) - kept
    assert f"kept {kept:,}, dropped {dropped:,}" in _details(proc.stdout, "kept") and dropped

    line = _details(proc.stdout, "balanced")
    before, after = column("kept", "label"), column("balanced", "label")
    for label in set(before):
        assert f"{label} {before.count(label):,} -> {after.count(label):,}" in line

    rows = [s["rows"] for s in shards("even")]
    assert f"-> 3 shards of {min(rows):,}-{max(rows):,} rows" in _details(proc.stdout, "even")

    line = _details(proc.stdout, "parts")
    per = {}
    for s in shards("parts"):
        per[s["partition"]] = per.get(s["partition"], 0) + s["rows"]
    assert "rows per partition: " + ", ".join(f"{p} {n:,}" for p, n in sorted(per.items())) in line

    assert " bytes (x" in _details(proc.stdout, "packed")


def test_progress_bar_on_a_terminal_shows_an_eta() -> None:
    import io
    import re
    import time

    from rich.console import Console

    from dataprep.progress import Reporter

    screen = io.StringIO()
    reporter = Reporter(console=Console(file=screen, force_terminal=True, width=200))
    reporter.start("dedup sign", 4)
    for _ in range(2):
        time.sleep(0.05)
        reporter.on_tick({"rows": 1000})
        reporter.task_done()
    reporter._progress.refresh()
    reporter.stop()
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue())
    assert "dedup sign" in shown and "2/4" in shown and "2,000 rows" in shown
    assert re.search(r"ETA \d+:\d\d:\d\d", shown), shown


def test_progress_in_a_log_is_plain_lines_with_an_eta() -> None:
    import io

    from rich.console import Console

    from dataprep.progress import Reporter

    log = io.StringIO()
    reporter = Reporter(interval=0, console=Console(file=log))  # a file: not a terminal
    reporter.start("filter map", 3)
    for _ in range(3):
        reporter.on_tick({"rows": 500})
        reporter.task_done()
    reporter.stop()
    lines = log.getvalue().splitlines()
    assert lines and all(line.startswith("filter map: ") and "ETA" in line for line in lines)
    assert "\x1b" not in log.getvalue() and lines[-1].startswith(
        "filter map: 3/3 tasks, 1,500 rows"
    )
    quiet = io.StringIO()
    slow = Reporter(interval=3600, console=Console(file=quiet))  # at most one line an hour
    slow.start("x", 2)
    slow.task_done()
    slow.stop()
    assert quiet.getvalue() == ""


def test_columns_still_sets_the_width(texts: Path) -> None:
    """COLUMNS wins over the uncut width of a pipe: the head table fits in 60 columns."""
    out = cli("head", texts, "-n", "2", env={"COLUMNS": "60"}).stdout
    lines = out.splitlines()
    assert lines and max(len(line) for line in lines) <= 60
    wide = subprocess.run(  # no COLUMNS: not cut
        [sys.executable, "-m", "dataprep", "head", str(texts), "-n", "2", "--max-chars", "150"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")},
        check=True,
    ).stdout
    assert max(len(line) for line in wide.splitlines()) > 150
