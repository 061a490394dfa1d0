"""Helpers for the partition / rebalance / resample tests: small real datasets on disk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from dataprep import dataset
from dataprep.dataset import WriteOptions
from dataprep.executors import make_executor
from dataprep.runner import StageRun, run_stage

# Small row groups so stages that read row ranges have to cross row-group boundaries.
SMALL_GROUPS = WriteOptions(row_group_rows=40)


def run(
    op: str,
    params: dict[str, Any],
    input_path: Path,
    out: Path,
    workers: int = 1,
    write_options: WriteOptions = SMALL_GROUPS,
) -> StageRun:
    return run_stage(
        op,
        params,
        out,
        input_path=input_path,
        executor=make_executor("local", workers=workers),
        write_options=write_options,
    )


def make_sharded(corpus_dir: Path, out: Path, shard_rows: int = 150) -> Path:
    """The sample corpus as uneven shards (each source file ends in a short shard: with 1 MiB
    chunks, files of 16 KiB or more keep a task of their own instead of sharing one)."""
    run_stage(
        "shard",
        {"shard_rows": shard_rows, "chunk_bytes": 1 << 20},
        out,
        inputs=[str(corpus_dir)],
        executor=make_executor("local", workers=1),
        write_options=SMALL_GROUPS,
    )
    return out


def shard_tables(root: Path) -> list[tuple[dataset.ShardEntry, Any]]:
    """(manifest entry, table) per shard, in manifest order."""
    manifest = dataset.read_manifest(root)
    return [(s, pq.read_table(root / s.path)) for s in manifest.shards]


def column(root: Path, name: str) -> list[Any]:
    return dataset.read_rows(root, [name]).column(name).to_pylist()


def report(root: Path) -> dict[str, Any]:
    return json.loads((root / dataset.REPORT).read_text())


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
