"""Review (H7) of the input sizing that picks in-process runs (executors/sizing.local_bytes,
used by the CLI before the command and by the runner, commits 70379f9 / 3b42faa).

Sizing is a hint: it must never fail a run the stage itself accepts. Oracle: the same
command at 90c2c3a (before sizing), which shards a folder holding a dangling hidden link
(an editor's lock file, e.g. Emacs' `.#name -> user@host.pid`) and gives one row.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import cli, column


@pytest.mark.parametrize("workers", [None, "1", "2"])
def test_a_dangling_hidden_link_the_readers_skip_does_not_fail_the_run(
    tmp_path: Path, workers: str | None
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jsonl").write_text('{"text": "hello world"}\n')
    os.symlink("root@host.4242:1700000000", folder / ".#a.jsonl")  # Emacs' lock file
    args = ["shard", str(folder), "-o", str(tmp_path / "out")]
    run = cli(*args, *(["-w", workers] if workers else []), check=False)
    assert run.returncode == 0, run.stderr
    assert column(tmp_path / "out", "text") == ["hello world"]
