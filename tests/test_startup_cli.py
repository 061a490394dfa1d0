"""Start-up of a stage command: what `dataprep STAGE ...` does before its first task (only the
stage's click command, no written command's module, no plugin scan for a built-in name), and
`--audit-log` reaching the workers of the command's forked server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dataprep.executors import forkserver

needs_forkserver = pytest.mark.skipif(not forkserver.available(), reason="no fork server here")


def test_a_stage_command_builds_only_its_own_command(tmp_path: Path) -> None:
    """`dataprep shard IN -o OUT` makes only shard's click command (Typer built every written
    command's, ~0.05 s of CPU before the first task), lists no entry points (a built-in
    name needs no plugin scan) and imports no written command's module; the run and its
    output are as before."""
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "a"}\n{"text": "b"}\n')
    code = (
        "import sys, importlib.metadata, typer.main\n"
        "built = []\n"
        "make = typer.main.get_command_from_info\n"
        "def spy(command_info, **kw):\n"
        "    built.append(command_info.callback.__name__)\n"
        "    return make(command_info=command_info, **kw)\n"
        "typer.main.get_command_from_info = spy\n"
        "scans = []\n"
        "scan = importlib.metadata.entry_points\n"
        "importlib.metadata.entry_points = lambda **kw: scans.append(kw) or scan(**kw)\n"
        f"sys.argv = ['dataprep', 'shard', {str(src)!r}, '-o', {str(tmp_path / 'out')!r}]\n"
        "from dataprep.cli import main\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    code = exit.code\n"
        "from dataprep.cli import COMMAND_MODULES\n"
        "loaded = [m for m in COMMAND_MODULES if f'dataprep.cli.{m}' in sys.modules]\n"
        "sys.stderr.write(f'\\nBUILT {built} SCANS {len(scans)} CODE {code} LOADED {loaded}')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    tail = proc.stderr.rsplit("\nBUILT ", 1)[1]
    assert tail == "['run'] SCANS 0 CODE 0 LOADED []", proc.stderr  # run: the stage command
    assert (tmp_path / "out" / ".manifest.json").exists()


@needs_forkserver
def test_audit_log_option_keeps_the_forked_server(tmp_path: Path) -> None:
    """`--audit-log` with `-w 2`: the workers are forks of the command's forked server (the
    option used to change the environment after that fork, so the server was retired and a
    fresh interpreter started), and they still write the log the option names."""
    from dataprep.crypto import generate_key_file
    from dataprep.runner import run_stage

    rows = [json.dumps({"text": f"row {i} " + "word " * 40}) for i in range(400)]
    (tmp_path / "in.jsonl").write_text("\n".join(rows) + "\n")
    shards, enc, keys = tmp_path / "shards", tmp_path / "enc", tmp_path / "keys.json"
    run_stage("shard", {"shard_rows": 50}, shards, inputs=[str(tmp_path / "in.jsonl")])
    generate_key_file(keys)
    run_stage("encrypt", {"key_file": str(keys)}, enc, input_path=shards)
    args = ["decrypt", str(enc), "-o", "dec", "--key-file", str(keys), "-w", "2", "-q"]
    code = (
        "import os, sys\n"
        "from dataprep.executors import forkserver\n"
        "retired = []\n"
        "retire = forkserver._retire\n"
        "forkserver._retire = lambda server: retired.append(1) or retire(server)\n"
        f"sys.argv = ['dataprep', *{args!r}, '--audit-log', 'logs/a.jsonl']\n"
        "from dataprep.cli import main\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    code = exit.code\n"
        "sys.stderr.write(f'\\nRETIRED {len(retired)} CODE {code} PID {os.getpid()}')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path
    )
    tail = proc.stderr.rsplit("\nRETIRED ", 1)[1].split()
    assert tail[:3] == ["0", "CODE", "0"], proc.stderr
    found = [json.loads(line) for line in (tmp_path / "logs" / "a.jsonl").read_text().splitlines()]
    assert found and all(r["outcome"] == "ok" and r["action"] == "decrypt" for r in found)
    assert {r["pid"] for r in found} - {int(tail[-1])}, "no worker wrote the log"
    beside = Path(str(keys) + ".audit.jsonl").read_text()  # the setup's encrypt only
    assert '"decrypt"' not in beside


def test_no_written_command_has_a_builtin_stage_name() -> None:
    """What lets `dataprep STAGE` skip the written commands' modules: none of them is STAGE."""
    import typer.main

    from dataprep import cli
    from dataprep.stages import BUILTIN

    for module in cli.COMMAND_MODULES:
        __import__(f"dataprep.cli.{module}")
    written = {g.name for g in cli.app.registered_groups} | {
        c.name or typer.main.get_command_name(c.callback.__name__)
        for c in cli.app.registered_commands
        if c.callback is not None
    }
    assert len(written) > 5 and not written & set(BUILTIN), sorted(written & set(BUILTIN))


_BLAS_IDLE = """
import os, sys, time
sys.argv = ["dataprep", "--version"]  # as the `dataprep` command starts
import dataprep.cli
import numpy
started = time.process_time()
time.sleep(0.3)  # numpy's BLAS threads, if spinning, burn CPU now; this thread does not
print(os.environ.get("OPENBLAS_THREAD_TIMEOUT"), time.process_time() - started)
"""


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="OpenBLAS starts no thread on one core")
def test_command_start_does_not_spin_blas_threads() -> None:
    """pyarrow imports numpy, whose OpenBLAS threads spin ~0.05-0.1 s of CPU waiting for work
    at start; the command has them sleep at once. A user's own OPENBLAS_THREAD_TIMEOUT wins."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    run = [sys.executable, "-c", _BLAS_IDLE]
    ours = subprocess.run(run, capture_output=True, text=True, timeout=60, env=env, check=True)
    value, cpu = ours.stdout.split()
    assert value == "4" and float(cpu) < 0.02, ours.stdout  # spinning: 0.05-0.1 s
    env["OPENBLAS_THREAD_TIMEOUT"] = "20"
    theirs = subprocess.run(run, capture_output=True, text=True, timeout=60, env=env, check=True)
    assert theirs.stdout.split()[0] == "20"


# Loaded by what a stage command's driver never uses on a plain run: Typer's rich help and
# error formatting (rich_utils renders markdown), rich itself when nothing is printed through
# it (-q, --json), and OpenSSL's hashes (catalog.py's digests are blake2b, built into CPython).
_NEVER = ("typer.rich_utils", "rich.markdown", "_hashlib", "hashlib")
_NOT_QUIET = ("rich", "rich.console")


@pytest.mark.parametrize("mode", ["-q", "--json", None])
def test_a_plain_stage_run_loads_no_help_rich_or_openssl(tmp_path: Path, mode: str | None) -> None:
    """A stage command's driver runs before its first task and after its last: what it imports
    and never uses is start-up CPU that a peer tool does not pay (issue 19.2/19.3). The run's
    output is as before (the summary table, the --json report)."""
    src = tmp_path / "in.jsonl"
    src.write_text("".join(f'{{"id": "{i}", "text": "word {i}"}}\n' for i in range(50)))
    args = ["shard", str(src), "-o", str(tmp_path / "out"), *([mode] if mode else [])]
    code = (
        "import sys\n"
        f"sys.argv = ['dataprep', *{args!r}]\n"
        "from dataprep.cli import main\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    code = exit.code\n"
        "sys.stderr.write(f'\\nCODE {code} MODULES ' + ' '.join(sorted(sys.modules)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    tail = proc.stderr.rsplit("\nCODE ", 1)[1].split()
    assert tail[:2] == ["0", "MODULES"], proc.stderr
    loaded = set(tail[2:])
    unused = _NEVER + (_NOT_QUIET if mode else ())
    assert not loaded & set(unused), sorted(loaded & set(unused))
    if mode == "--json":
        assert json.loads(proc.stdout)[0]["report"]["rows_out"] == 50
    elif mode is None:
        assert "rows out" in proc.stdout and "50" in proc.stdout
