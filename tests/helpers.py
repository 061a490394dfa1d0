"""Small helpers shared by tests: run the real CLI in a subprocess, read datasets back."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow.parquet as pq


@contextlib.contextmanager
def restored_env(keys: Iterable[str]) -> Iterator[None]:
    """Environment variables `keys` are put back as they were (or removed) on exit."""
    saved = {k: os.environ.get(k) for k in keys}
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def cli(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run `python -m dataprep ARGS` as a user would; returns the finished process."""
    proc = subprocess.run(
        [sys.executable, "-m", "dataprep", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"dataprep {' '.join(map(str, args))} failed:\n{proc.stderr}")
    return proc


def manifest(path: Path) -> dict:
    return json.loads((Path(path) / ".manifest.json").read_text())


def column(path: Path, name: str) -> list:
    """One column of a dataset in manifest order, read with plain pyarrow."""
    values: list = []
    for shard in manifest(path)["shards"]:
        values += pq.read_table(Path(path) / shard["path"], columns=[name]).column(name).to_pylist()
    return values


def leftovers(out: Path) -> list[str]:
    """Hidden names in a dataset directory other than its side files (manifest, report,
    quarantine): temp files and resume state a finished stage must not leave behind."""
    from dataprep import dataset

    side = {dataset.MANIFEST, dataset.REPORT, dataset.QUARANTINE}
    return sorted(p.name for p in Path(out).glob(".*") if p.name not in side)
