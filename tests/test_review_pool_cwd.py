"""Review (H7) of the warm pool that a LocalExecutor keeps between runs (executors/local.py:
"a stage's phases and a recipe's stages reuse the same warm workers").

A worker takes its working directory once, when it starts (multiprocessing sends the driver's
cwd with the process, not with each task). A Python caller that changes directory between two
runs on one executor (a notebook's `%cd`, a script looping over folders) has its relative
paths resolved by the workers in the old directory: the second run reads the FIRST folder's
input and writes its shards there, while the driver digests and commits the new folder's
output: a manifest listing shards that are not beside it, and another dataset's folder
written into.

Oracle: the same two runs with a fresh executor each (what a spawned worker of 90c2c3a did),
and `workers=1` (in-process), which resolve paths where the caller stands.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import column

from dataprep import runner
from dataprep.executors.local import LocalExecutor

LICENSE = Path("/usr/share/common-licenses/GPL-3")


def _input(folder: Path, tag: str) -> None:
    folder.mkdir()
    lines = [s.strip() for s in LICENSE.read_text().splitlines() if s.strip()]
    rows = [json.dumps({"text": f"{tag} {line}"}) for line in lines * 3]
    (folder / "in.jsonl").write_text("\n".join(rows) + "\n")  # ~110 KB: several ranges


def test_a_run_after_chdir_reads_and_writes_where_the_caller_stands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _input(tmp_path / "first", "alpha")
    _input(tmp_path / "second", "beta")
    config = {"chunk_bytes": 16 << 10}  # several tasks: the pool runs them
    with LocalExecutor(workers=2) as executor:
        monkeypatch.chdir(tmp_path / "first")
        runner.run_stage("shard", config, "out", inputs=["in.jsonl"], executor=executor)
        monkeypatch.chdir(tmp_path / "second")
        runner.run_stage("shard", config, "out", inputs=["in.jsonl"], executor=executor)
    second = tmp_path / "second" / "out"
    manifest = json.loads((second / ".manifest.json").read_text())
    missing = [s["path"] for s in manifest["shards"] if not (second / s["path"]).is_file()]
    assert not missing, f"the manifest lists shards written elsewhere: {missing[:3]}"
    assert {t.split()[0] for t in column(second, "text")} == {"beta"}
    assert not os.path.exists(tmp_path / "first" / "out" / ".dataprep")


def _env(_: int) -> str | None:
    return os.environ.get("DATAPREP_AUDIT_LOG")


def test_a_run_after_an_environment_change_sees_the_new_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATAPREP_AUDIT_LOG", str(tmp_path / "first.audit.jsonl"))
    with LocalExecutor(workers=2) as executor:
        before = executor.run(_env, [0, 1, 2, 3])
        monkeypatch.setenv("DATAPREP_AUDIT_LOG", str(tmp_path / "second.audit.jsonl"))
        after = executor.run(_env, [0, 1, 2, 3])
    assert set(before) == {str(tmp_path / "first.audit.jsonl")}
    assert set(after) == {str(tmp_path / "second.audit.jsonl")}  # as a fresh executor sees it
