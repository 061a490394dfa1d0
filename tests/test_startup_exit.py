"""The fixed cost around a stage's work. The end of a `dataprep` command: once its run is
over it leaves without tearing the interpreter down (freeing every module, a last garbage
collection over everything start-up allocated, each freed page first copied from the fork
server that still shares it), but with everything an exit owes: atexit handlers, flushed
output, the same exit status. What the worker server preloads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dataprep.executors import forkserver

# Put on PYTHONPATH as `sitecustomize`: marks what the command's own process ran at its exit
# (not its workers: forks, which call threading._shutdown when their work ends). The
# interpreter's teardown (Py_FinalizeEx) calls threading._shutdown, then the atexit handlers.
_MARKS = """
import atexit, os, threading
_where, _command = os.environ["MARKS"], os.getpid()
def _mark(name):
    if os.getpid() == _command:
        open(os.path.join(_where, name), "w").close()
atexit.register(_mark, "atexit")
_shutdown = threading._shutdown
def _teardown():
    _mark("teardown")
    _shutdown()
threading._shutdown = _teardown
"""


def _command(tmp_path: Path, *args: str, main: str = "-m") -> subprocess.CompletedProcess:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(_MARKS)
    marks = tmp_path / "marks"
    marks.mkdir(exist_ok=True)
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "MARKS": str(marks), "PYTHONPATH": os.pathsep.join([str(site), root])}
    run = [sys.executable, "-m", "dataprep"] if main == "-m" else [sys.executable, main]
    return subprocess.run([*run, *args], capture_output=True, text=True, env=env, timeout=120)


def _marks(tmp_path: Path) -> set[str]:
    return {p.name for p in (tmp_path / "marks").iterdir()}


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_stage_command_leaves_without_interpreter_teardown(tmp_path: Path, workers: str) -> None:
    """A finished run: atexit handlers ran, no teardown, exit 0, its --json summary whole on
    stdout (a pipe: block-buffered until the exit flushes it), its output committed."""
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": f"row {i}"}) + "\n" for i in range(50)))
    out = tmp_path / "out"
    proc = _command(tmp_path, "shard", str(src), "-o", str(out), "-w", workers, "--json")
    assert proc.returncode == 0, proc.stderr
    [run] = json.loads(proc.stdout)
    assert run["status"] == "ran" and run["report"]["rows_out"] == 50
    assert (out / ".manifest.json").exists()
    assert _marks(tmp_path) == {"atexit"}


def test_a_failed_command_keeps_its_sentence_and_status(tmp_path: Path) -> None:
    """A user error: the same one sentence on stderr and exit status 2, without teardown."""
    proc = _command(tmp_path, "shard", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "o"))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 2, proc.stderr  # one sentence, maybe wrapped
    assert _marks(tmp_path) == {"atexit"}


def test_help_version_and_written_commands_end_as_usual(tmp_path: Path) -> None:
    """Only a stage run skips the teardown: `--version`, `--help` and the written commands
    (train may leave its trace file for the teardown to flush) end as they always did, their
    output whole on a pipe."""
    version = _command(tmp_path, "--version")
    assert version.returncode == 0 and version.stdout.startswith("dataprep "), version
    shown = _command(tmp_path, "shard", "--help")
    assert shown.returncode == 0 and "--chunk-bytes" in shown.stdout, shown.stderr
    assert shown.stdout.rstrip().endswith("╯"), shown.stdout[-200:]  # the last panel closed
    assert _marks(tmp_path) == {"atexit", "teardown"}
    for mark in (tmp_path / "marks").iterdir():
        mark.unlink()
    written = _command(tmp_path, "lineage", str(tmp_path / "missing"))
    assert written.returncode == 2 and written.stderr.startswith("error: "), written
    assert _marks(tmp_path) == {"atexit", "teardown"}


def test_a_caller_of_main_keeps_its_interpreter(tmp_path: Path) -> None:
    """`main()` called from a caller's own script (tests, an embedding) raises SystemExit as
    before: the caller's code after it runs, and its interpreter ends as usual."""
    script = tmp_path / "caller.py"
    script.write_text(
        "import sys\nsys.argv = ['dataprep', '--version']\nfrom dataprep.cli import main\n"
        "try:\n    main()\nexcept SystemExit as done:\n    print('AFTER', done.code)\n"
    )
    proc = _command(tmp_path, main=str(script))
    assert proc.returncode == 0 and proc.stdout.splitlines()[-1] == "AFTER 0", proc
    assert _marks(tmp_path) == {"atexit", "teardown"}


_COMPUTE_IN_WORKERS = """
from dataprep.executors.local import LocalExecutor
with LocalExecutor(workers=2) as pool:
    probe = "[m in __import__('sys').modules for m in ('pyarrow.parquet', 'pyarrow.compute')]"
    print(pool.run(eval, [probe] * 4))
"""


@pytest.mark.skipif(not forkserver.available(), reason="no fork server here")
def test_workers_get_pyarrow_compute_only_from_a_module_that_needs_it() -> None:
    """The server preloads pyarrow and its Parquet module for every worker, but not
    pyarrow.compute (~25 ms of CPU: a wrapper made for each of its ~400 functions): a stage
    whose code needs it imports it; shard's common path (Arrow's JSON reader, the Parquet
    writer) never does, nor does the pyarrow peer it is measured against."""
    run = [sys.executable, "-c", _COMPUTE_IN_WORKERS]
    proc = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[-2] == str([[True, False]] * 4), proc.stdout
