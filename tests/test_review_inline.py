"""Review (H7): a stage whose input is under the in-process size runs its tasks in the driver
(executors/local.py INLINE_BELOW_BYTES, commits 70379f9 / 3b42faa). A task that kills its
process there takes the command with it: no one sentence, unlike the same task on a pool.

Oracle: the pool path of the same stage and task (tests/test_faults_exec.py), which ends in
one DataprepError sentence naming the task and "rerun", and resumes on the rerun.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import column

TESTS = Path(__file__).resolve().parent

# A fresh process runs the test-only flaky stage with the DEFAULT worker count (as the CLI
# does without -w) over a tiny local input; its task 2 SIGKILLs its process while `broken`.
CHILD = """
import json, sys
from dataprep import stages
from dataprep.errors import DataprepError
from dataprep.executors.local import LocalExecutor
from dataprep.runner import run_stage
stages.BUILTIN["flaky"] = "flaky_stage:FlakyStage"
marker, out, tiny = sys.argv[1:4]
config = {"mode": "kill_always", "marker_dir": marker, "tasks": 4, "fail_index": 2}
try:
    with LocalExecutor(max_retries=1) as executor:
        run = run_stage("flaky", config, out, inputs=[tiny], executor=executor)
    print(json.dumps({"status": run.status}))
except DataprepError as err:
    print(json.dumps({"error": str(err)}))
"""


def _run(marker: Path, out: Path, tiny: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS)])}
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(marker), str(out), str(tiny)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="default worker count is 1")
def test_a_task_killing_its_process_on_a_tiny_input_is_still_one_sentence(tmp_path) -> None:
    marker = tmp_path / "marker"
    marker.mkdir()
    (marker / "broken").touch()
    tiny = tmp_path / "tiny.jsonl"
    tiny.write_text('{"text": "a"}\n')
    out = tmp_path / "out"
    first = _run(marker, out, tiny)
    assert first.returncode == 0, f"the command died (rc {first.returncode}): {first.stderr}"
    message = json.loads(first.stdout.strip().splitlines()[-1])["error"]
    assert "map-00002" in message and "rerun" in message and "\n" not in message
    (marker / "broken").unlink()
    second = _run(marker, out, tiny)
    assert json.loads(second.stdout.strip().splitlines()[-1]) == {"status": "ran"}
    # the task that killed its worker ran again (tasks broken with the pool may rerun too)
    assert len(list(marker.glob("attempt-2-*"))) == 3
    assert sorted(column(out, "value")) == list(range(40))
