"""Start-up (issue 19.2): `dataprep --help` loads no data library, and pool workers are forks
of one preloaded fork server instead of fresh interpreters that each import pyarrow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dataprep.executors import forkserver
from dataprep.executors.local import LocalExecutor

HEAVY = ("pyarrow", "numpy", "pandas", "pydantic", "numba", "torch", "ray", "spacy")


def _modules_after(*args: str) -> set[str]:
    """Top-level modules loaded by `dataprep ARGS` (run in a fresh interpreter)."""
    code = (
        "import sys\n"
        f"sys.argv = ['dataprep', *{list(args)!r}]\n"
        "from dataprep.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "sys.stderr.write('\\nMODULES ' + ' '.join(sorted(sys.modules)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "Usage" in proc.stdout or "dataprep" in proc.stdout
    line = proc.stderr.rsplit("MODULES ", 1)[1]
    return {name.split(".")[0] for name in line.split()}


@pytest.mark.parametrize("args", [("--help",), ("--version",)])
def test_help_loads_no_data_library(args: tuple[str, ...]) -> None:
    loaded = _modules_after(*args)
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_a_stage_help_loads_no_data_library() -> None:
    """A stage's options come from the catalog (JSON), not from importing the stage."""
    loaded = _modules_after("dedup", "--help")
    assert not loaded & (set(HEAVY) - {"pydantic"}), sorted(loaded & set(HEAVY))


def _probe(_: int) -> tuple[int, int, bool, str]:
    """A pool task: who am I, who forked me, and were the data libraries there already?"""
    preloaded = all(m in sys.modules for m in ("pyarrow.parquet", "dataprep.task"))
    return os.getpid(), os.getppid(), preloaded, os.environ.get("DATAPREP_TEST_STARTUP", "")


needs_forkserver = pytest.mark.skipif(not forkserver.available(), reason="no fork server here")


@needs_forkserver
def test_pool_workers_are_forks_of_one_preloaded_server() -> None:
    """Each worker starts with pyarrow loaded (the server imported it once), and
    a second pool forks from the same server instead of starting interpreters again."""
    with LocalExecutor(workers=2) as pool:
        first = pool.run(_probe, list(range(6)))
    with LocalExecutor(workers=2) as pool:
        second = pool.run(_probe, list(range(6)))
    parents = {parent for _, parent, _, _ in first + second}
    assert len(parents) == 1 and os.getpid() not in parents  # all forked by one server
    assert all(preloaded for _, _, preloaded, _ in first + second)
    assert len({pid for pid, _, _, _ in first}) == 2  # both workers ran tasks


def _has_wave(_: int) -> bool:
    return "wave" in sys.modules


@needs_forkserver
def test_a_loaded_module_names_what_workers_preload(monkeypatch: pytest.MonkeyPatch) -> None:
    """A dataprep module's WORKER_PRELOAD (the stage hook) is imported once by the server, so
    no worker imports it itself; nothing else is preloaded on its behalf."""
    import types

    assert "wave" not in sys.modules  # a module nothing here loads
    hooked = types.ModuleType("dataprep.hooked_for_test")
    hooked.WORKER_PRELOAD = ("wave",)  # type: ignore[attr-defined]
    monkeypatch.setenv("DATAPREP_TEST_STARTUP", "hook")  # a new server, with this preload
    with LocalExecutor(workers=2) as pool:
        before = pool.run(_has_wave, [0, 1])
    monkeypatch.setitem(sys.modules, hooked.__name__, hooked)
    monkeypatch.setenv("DATAPREP_TEST_STARTUP", "hook2")
    with LocalExecutor(workers=2) as pool:
        after = pool.run(_has_wave, [0, 1])
    assert before == [False, False] and after == [True, True]


@needs_forkserver
def test_workers_see_the_driver_environment_of_the_moment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As a spawned worker did: a server started under another environment is retired."""
    monkeypatch.setenv("DATAPREP_TEST_STARTUP", "one")
    with LocalExecutor(workers=2) as pool:
        before = pool.run(_probe, [0, 1])
    monkeypatch.setenv("DATAPREP_TEST_STARTUP", "two")
    with LocalExecutor(workers=2) as pool:
        after = pool.run(_probe, [0, 1])
    assert {env for *_, env in before} == {"one"} and {env for *_, env in after} == {"two"}
    assert {p for _, p, _, _ in before}.isdisjoint({p for _, p, _, _ in after})


def test_spawn_is_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where there is no fork server, workers are spawned as before: same results."""
    monkeypatch.setattr(forkserver, "available", lambda: False)
    with LocalExecutor(workers=2) as pool:
        results = pool.run(_probe, list(range(4)))
    assert all(parent == os.getpid() for _, parent, _, _ in results)
    assert len(results) == 4


@needs_forkserver
@pytest.mark.slow
def test_ctrl_c_while_the_pool_starts_is_one_line(tmp_path: Path) -> None:
    """SIGINT to the process group (a terminal's Ctrl-C) while the fork server imports or forks
    the workers: the driver's one line, no traceback from the server or a half-born worker,
    and no process left behind."""
    raw = tmp_path / "raw.jsonl"
    line = '{{"id": "{}", "text": "' + "alpha beta gamma delta " * 40 + '"}}\n'
    raw.write_text("".join(line.format(i) for i in range(20_000)))
    for delay in (0.6, 0.9, 1.2, 1.6, 2.0):
        out = tmp_path / f"out-{delay}"
        args = [sys.executable, "-m", "dataprep", "shard", str(raw), "-o", str(out), "-q"]
        args += ["--chunk-bytes", "1MB", "--workers", "2"]
        proc = subprocess.Popen(args, start_new_session=True, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
        assert "Traceback" not in stderr, stderr[-3000:]
        # -SIGINT: a Ctrl-C in the interpreter's first half second, a race of the CLI's own
        # start-up handler seen before the fork server too (still the one line, no traceback)
        assert proc.returncode in (0, 130, -signal.SIGINT), stderr
        if proc.returncode != 0:
            assert stderr.strip().splitlines() == ["interrupted; rerun the same command to resume"]
        deadline = time.monotonic() + 5
        while _session_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _session_alive(proc.pid), "a process outlived the interrupted command"


def _session_alive(sid: int) -> list[int]:
    """Live (not zombie) processes of session `sid`."""
    alive = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] not in ("Z", "X"):
                alive.append(int(entry.name))
    return alive


@pytest.mark.parametrize(
    ("args", "started", "can_fork"),
    [
        (["shard", "in.jsonl", "-o", "out", "-w", "2"], True, False),
        (["dedup", "in", "-o", "out", "--workers=3"], True, False),
        (["dedup", "in", "-w4", "-o", "out", "--executor", "local"], True, True),
        (["shard", "in.jsonl", "-o", "out"], True, True),  # default count: a fork is cheap
        (["shard", "in.jsonl", "-o", "out"], False, False),  # ...a new interpreter is not
        (["shard", "in.jsonl", "-o", "out", "-w", "1"], False, True),
        (["shard", "in.jsonl", "-o", "out", "-w", "2", "--executor", "ray"], False, True),
        (["shard", "--help", "-w", "2"], False, True),
        (["verify", "ds", "-w", "2"], False, True),  # not a stage
    ],
)
def test_the_server_starts_with_a_stage_command(
    monkeypatch: pytest.MonkeyPatch, args: list[str], started: bool, can_fork: bool
) -> None:
    """A stage command starts the fork server before the stage runs, with the stage's module
    in its preload: as a fork of the command where it can be, else (asked for workers only)
    a new interpreter whose imports overlap the command's."""
    from dataprep import cli
    from dataprep.executors import local

    calls: list[tuple[tuple[str, ...], bool]] = []
    monkeypatch.setattr(forkserver, "can_fork", lambda: can_fork)
    monkeypatch.setattr(local, "default_workers", lambda: 2)
    monkeypatch.setattr(
        forkserver, "start", lambda extra=(), fork=False: calls.append((tuple(extra), fork))
    )
    cli._warm_workers(args)
    assert calls == ([((f"dataprep.stages.{args[0]}",), True)] if started else [])


@pytest.mark.parametrize(
    ("size", "workers", "started"),
    [(1000, [], False), (1000, ["-w", "2"], True), (5 << 20, [], True)],
)
def test_a_small_local_input_starts_no_server_unless_asked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, size: int, workers: list[str], started: bool
) -> None:
    """With the default worker count a small input runs in-process (see LocalExecutor), so
    the command does not fork a server for it: the fork would cost the copy of the pages the
    command then writes (~0.1 s of CPU), for nothing."""
    from dataprep import cli
    from dataprep.executors import local

    raw = tmp_path / "in.jsonl"
    raw.write_bytes(b"x" * size)
    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr(forkserver, "can_fork", lambda: True)
    monkeypatch.setattr(local, "default_workers", lambda: 2)
    monkeypatch.setattr(forkserver, "start", lambda extra=(), fork=False: calls.append(extra))
    cli._warm_workers(["shard", str(raw), "-o", str(tmp_path / "out"), *workers])
    assert bool(calls) == started


@needs_forkserver
def test_the_command_forks_its_server_from_itself(tmp_path: Path) -> None:
    """The CLI's server is a fork of the command once it has imported the stage: pyarrow
    and the stage are imported once in all (the driver), not again by a server
    interpreter (~0.5 s of CPU), and the workers run the tasks with the same result."""
    raw = tmp_path / "raw.jsonl"
    raw.write_text("".join(f'{{"id": "{i}", "text": "word {i} " }}\n' for i in range(4000)))
    args = [sys.executable, "-m", "dataprep", "shard", str(raw), "-o", str(tmp_path / "out")]
    args += ["--json", "-w", "2", "--chunk-bytes", "20KB", "--shard-rows", "1000"]
    env = dict(os.environ, PYTHONPROFILEIMPORTTIME="1")
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _imports_of(proc.stderr, "pyarrow.parquet") == 1
    assert _imports_of(proc.stderr, "dataprep.stages.readers") == 1  # what the stage imports
    # one interpreter started in all: the resource tracker is a fork of the command too
    assert _imports_of(proc.stderr, "encodings") == 1
    report = json.loads(proc.stdout)[0]["report"]
    assert report["rows_out"] == 4000 and report["shards"] >= 4


def _imports_of(stderr: str, module: str) -> int:
    """How many processes imported `module` (one `-X importtime` line each)."""
    return sum(1 for line in stderr.splitlines() if line.rsplit("|", 1)[-1].strip() == module)


@needs_forkserver
def test_workers_of_the_command_do_not_import_the_cli(tmp_path: Path) -> None:
    """Each pool worker used to rerun the `dataprep` console script as `__mp_main__` (as
    multiprocessing does for a script), importing the CLI (Typer, rich, every command
    module: ~0.3 s of CPU per worker) to run no command. Only the driver imports it now."""
    script = Path(sys.executable).with_name("dataprep")
    if not script.exists():
        pytest.skip("no dataprep console script next to this Python")
    raw = tmp_path / "raw.jsonl"
    raw.write_text("".join(f'{{"id": "{i}", "text": "word {i} " }}\n' for i in range(4000)))
    args = [str(script), "shard", str(raw), "-o", str(tmp_path / "out"), "-q", "-w", "2"]
    args += ["--chunk-bytes", "20KB"]
    env = dict(os.environ, PYTHONPROFILEIMPORTTIME="1")
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _imports_of(proc.stderr, "dataprep.cli") == 1
    assert _imports_of(proc.stderr, "typer") == 1


def _where(_: int) -> int:
    return os.getpid()


many_cores = pytest.mark.skipif(LocalExecutor().workers < 2, reason="one core: always inline")


@many_cores
@pytest.mark.parametrize(
    ("workers", "input_bytes", "in_process"),
    [
        (None, 1000, True),  # default count, tiny input: a pool would cost more than the work
        (None, None, False),  # size unknown (no inputs, remote ones): a pool, as before
        (None, 10**9, False),  # big input
        (2, 1000, False),  # `-w 2` asks for workers: a pool however small the input
    ],
)
def test_a_tiny_stage_with_the_default_worker_count_runs_in_process(
    workers: int | None, input_bytes: int | None, in_process: bool
) -> None:
    with LocalExecutor(workers=workers) as executor:
        executor.expect_input(input_bytes)
        pids = set(executor.run(_where, list(range(6))))
    assert (pids == {os.getpid()}) == in_process, pids


@many_cores
def test_one_shard_dedup_with_default_flags_starts_no_worker(tmp_path: Path) -> None:
    """A one-shard `dedup` is one sign task, a dozen tiny bucket tasks and one write task: with
    the default worker count it runs them in-process instead of starting a fork server and a
    pool for the bucket tasks (~0.5 s of CPU and 1-2 s of wall on a busy 2-core box)."""
    raw = tmp_path / "raw.jsonl"
    raw.write_text("".join(f'{{"id": "{i}", "text": "doc {i % 50} words"}}\n' for i in range(500)))
    base = [sys.executable, "-m", "dataprep"]
    subprocess.run([*base, "shard", str(raw), "-o", str(tmp_path / "one"), "-q"], check=True)
    args = [*base, "dedup", str(tmp_path / "one"), "-o", str(tmp_path / "out"), "--json"]
    env = dict(os.environ, PYTHONPROFILEIMPORTTIME="1")
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _imports_of(proc.stderr, "pyarrow.parquet") == 1  # the driver only: no fork server
    report = json.loads(proc.stdout)[0]["report"]
    assert report["bucket_tasks"] > 1 and report["rows_out"] == 50


def test_the_command_collects_garbage_again_after_start_up() -> None:
    """Cyclic GC is off while the command imports its modules (they live to the end), then
    what they allocated is frozen (shared with a forked server untouched) and GC is on again:
    a stage that makes cycles must not grow without bound."""
    code = (
        "import gc, sys\n"
        "sys.argv = ['dataprep', '--version']\n"
        "from dataprep.cli import main\n"
        "off = not gc.isenabled()\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(off, gc.isenabled(), gc.get_freeze_count())\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    off, on, frozen = proc.stdout.split()[-3:]
    assert (off, on) == ("True", "True") and int(frozen) > 10_000
