"""Shard streams: peak memory stays flat however big the input is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _big_jsonl(path: Path, megabytes: int) -> int:
    """Repeat a ~1 MB block of distinct-looking lines; fast to write, real to parse."""
    block = "".join(
        json.dumps(
            {"text": f"row {i} " + " ".join(f"w{(i * 31 + k) % 9973}" for k in range(120)), "n": i}
        )
        + "\n"
        for i in range(1200)
    ).encode()
    copies = megabytes * 1_000_000 // len(block) + 1
    with open(path, "wb") as f:
        for _ in range(copies):
            f.write(block)
    return copies * 1200


@pytest.mark.slow
def test_peak_rss_of_sharding_400mb_stays_under_500mb(tmp_path: Path) -> None:
    rows = _big_jsonl(tmp_path / "big.jsonl", 400)
    args = [
        sys.executable,
        "-m",
        "dataprep",
        "shard",
        str(tmp_path / "big.jsonl"),
        "-o",
        str(tmp_path / "out"),
        "--workers",
        "2",
        "-q",
        "--json",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    assert status == 0
    assert json.loads(output)["report"]["rows_out"] == rows
    peak_mb = usage.ru_maxrss / 1024  # the largest single process: driver or a worker
    assert peak_mb < 500, f"peak RSS {peak_mb:.0f} MB"
