"""Every stage command runs with only its required options, as a newcomer would type it.

Catches defaults that the stage's config rejects (a CLI passing None where the config wants
its own default), which tests calling `run_stage` with full configs cannot see.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import cli, manifest

COMMANDS = {
    "dedup": [],
    "partition": ["--key", "id", "--partitions", "3"],
    "rebalance": ["--shards", "2"],
    "resample": ["--label", "label", "--strategy", "oversample"],
    "compress": [],
    "tokenize": ["--seq-len", "64"],
}


@pytest.fixture(scope="module")
def shards(corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "shards"
    cli("shard", corpus_dir, "-o", out, "-q")
    return out


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_stage_command_with_defaults(command: str, shards: Path, tmp_path: Path) -> None:
    out = tmp_path / command
    cli(command, shards, "-o", out, *COMMANDS[command], "-q")
    assert manifest(out)["totals"]["rows"] > 0
    assert "--executor" in cli(command, "--help").stdout


def test_encrypt_decrypt_and_export_with_defaults(shards: Path, tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    cli("keygen", "-o", keys)
    cli("encrypt", shards, "-o", tmp_path / "enc", "--key-file", keys, "-q")
    cli("decrypt", tmp_path / "enc", "-o", tmp_path / "dec", "--key-file", keys, "-q")
    rows = manifest(shards)["totals"]["rows"]
    assert manifest(tmp_path / "dec")["totals"]["rows"] == rows
    cli("export", tmp_path / "dec", "-o", tmp_path / "rows.jsonl")
    assert len((tmp_path / "rows.jsonl").read_text().splitlines()) == rows
