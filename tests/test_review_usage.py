"""Review (H4) of wrong usage: conflicting flags, a full disk.

`encrypt --columns text:text,text:label` named one column under two master keys; the command
exited 0 and silently used the last one, so a key file meant to open `text` (the `text` key)
did not. Now it is one sentence (exit 2) before anything is written. A full disk (simulated
with RLIMIT_FSIZE: this machine has no small tmpfs for a test) stops a rerun with one line, the
finished dataset it was replacing still verifies, and the same command resumes once there is
room.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import cli

from dataprep.runner import run_stage

DOCS = sorted(Path("/usr/share/doc").glob("*/copyright"))[:40]


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("usage")
    raw = root / "raw.jsonl"
    with raw.open("w") as out:
        for i, doc in enumerate(DOCS):
            text = doc.read_bytes().decode("utf-8", "replace")
            out.write(json.dumps({"id": f"d{i}", "text": text, "label": "ab"[i % 2]}) + "\n")
    run_stage("shard", {"shard_rows": 8}, root / "shards", inputs=[str(raw)])
    cli("keygen", "-o", root / "team.keys", "--keys", "text,label")
    return root / "shards"


@pytest.mark.parametrize("columns", ["text:text,text:label", "text:label,text"])
def test_a_column_named_twice_with_different_keys_is_refused(
    shards: Path, tmp_path: Path, columns: str
) -> None:
    keys = shards.parent / "team.keys"
    proc = cli(
        "encrypt", shards, "-o", tmp_path / "enc", "-k", keys, "--columns", columns, check=False
    )
    assert proc.returncode == 2, proc.stderr[-300:]
    assert "column text is named twice with different keys" in proc.stderr
    assert not (tmp_path / "enc").exists()


def test_the_same_key_twice_is_fine(shards: Path, tmp_path: Path) -> None:
    keys = shards.parent / "team.keys"
    cli("encrypt", shards, "-o", tmp_path / "enc", "-k", keys, "--columns", "text,text:text", "-q")
    doc = json.loads((tmp_path / "enc" / ".manifest.json").read_text())
    assert [cols for cols in doc["encryption"]["column_keys"].values()] == [["text"]]


def _limited(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_a_full_disk_keeps_the_finished_dataset_and_the_rerun_resumes(
    shards: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    cli("rebalance", shards, "-o", out, "--shards", "4", "-q")
    before = (out / ".manifest.json").read_bytes()
    args = [sys.executable, "-m", "dataprep", "rebalance", shards, "-o", out, "--shards", "1"]
    proc = subprocess.run(
        [*map(str, args), "-q", "-w", "1"],
        preexec_fn=lambda: _limited(64 << 10),  # one output shard is bigger than this
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr[-300:]
    assert "File too large" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert (out / ".manifest.json").read_bytes() == before  # the old dataset is untouched
    assert cli("verify", out, check=False).returncode == 0
    cli("rebalance", shards, "-o", out, "--shards", "1", "-q")
    assert json.loads((out / ".manifest.json").read_text())["totals"]["shards"] == 1


def test_repair_from_the_dataset_itself_is_one_sentence(shards: Path, tmp_path: Path) -> None:
    """`verify DIR --repair-from ./DIR/` (the same directory twice) used to report every bad
    shard as 'refused: the backup copy does not match', as if a backup had been tried."""
    copy = tmp_path / "ds"
    shutil.copytree(shards, copy)
    proc = cli("verify", copy, "--repair-from", f"{copy}/../ds/", check=False)
    assert proc.returncode == 2, proc.stderr[-300:]
    assert "is the dataset itself" in proc.stderr and "Traceback" not in proc.stderr


def test_a_tokenizer_folder_is_called_a_folder(shards: Path, tmp_path: Path) -> None:
    """`--tokenizer ./model/` (a Hugging Face model folder, not its tokenizer.json) said the
    path 'does not exist', which it plainly does."""
    (tmp_path / "model").mkdir()
    proc = cli(
        "tokenize",
        shards,
        "-o",
        tmp_path / "t",
        "--seq-len",
        "8",
        "--tokenizer",
        tmp_path / "model",
        check=False,
    )
    assert proc.returncode == 2, proc.stderr[-300:]
    assert (
        "is a folder (give byte, bpe or the path of a Hugging Face tokenizer.json)" in proc.stderr
    )
