"""Review (H7) of the fork server forked from the CLI process (cd0da18, f87ea4b).

The CLI turns cyclic GC off while it imports and turns it back on (after gc.freeze) once the
fork server is started; but the server is forked *inside* that window, so it and every
worker forked from it would run with the collector off: reference cycles a task makes
(exceptions with their frames, pandas objects, closures) would never be freed.

Oracle: the driver itself (gc on after start-up) and any Python process (gc on by default),
which is what a worker spawned before cd0da18 was.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# The CLI's own `main` as `python -m dataprep shard IN -o OUT -w 2` runs it, with `app` (the
# command) replaced by a pool of the same executor asking each worker whether gc is on.
CHILD = """
import json, sys
sys.argv = [sys.argv[1], "shard", sys.argv[2], "-o", sys.argv[3], "-w", "2"]
import dataprep.cli as cli
from dataprep.executors.local import LocalExecutor

def app():
    import gc, probe
    with LocalExecutor(workers=2) as executor:
        seen = executor.run(probe.gc_state, list(range(4)))
    print(json.dumps({"driver": gc.isenabled(), "workers": seen}))
    sys.exit(0)

cli.app = app
cli.main()
"""

PROBE = """
import gc, os
def gc_state(_):
    return [os.getpid(), gc.isenabled()]
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the forked server is Linux's")
def test_pool_workers_of_the_cli_collect_cycles(tmp_path: Path) -> None:
    (tmp_path / "probe.py").write_text(PROBE)
    raw = tmp_path / "in.jsonl"
    raw.write_text('{"text": "a"}\n')
    main = str(Path(__file__).resolve().parents[1] / "dataprep" / "__main__.py")
    path = os.pathsep.join([str(tmp_path), str(Path(__file__).resolve().parents[1])])
    out = subprocess.run(
        [sys.executable, "-c", CHILD, main, str(raw), str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": path},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["driver"] is True
    assert [on for _, on in got["workers"]] == [True] * 4, got
