"""Shard streams: peak memory stays flat however big the input is."""

from __future__ import annotations

import json
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
    # Measure from a tiny wrapper process: a child's peak RSS counts the moments between fork and
    # exec, when it still looks like its parent, and the pytest process is large.
    wrapper = (
        "import os, subprocess, sys\n"
        "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
        "_, status, usage = os.wait4(p.pid, 0)\n"
        "print(status, usage.ru_maxrss)\n"
    )
    proc = subprocess.run([sys.executable, "-c", wrapper, *args], capture_output=True, text=True)
    status, peak_kb = map(int, proc.stdout.split())
    assert status == 0, proc.stderr
    out = json.loads((tmp_path / "out" / ".report.json").read_text())
    assert out["rows_out"] == rows
    peak_mb = peak_kb / 1024  # the largest single process: driver or a worker
    assert peak_mb < 500, f"peak RSS {peak_mb:.0f} MB"
