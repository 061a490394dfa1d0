"""A dataset directory on storage: the names of the files beside its shards, how readers find
them, and reading and writing its manifest.

A directory is a dataset only once its manifest exists; every writer goes through a temporary
name and a rename, so a killed process never leaves something that looks finished.

Everything beside the shards is named `.x`: pyarrow.dataset skips `_x` and `.x`, but Hugging Face
`datasets` (`load_dataset("parquet", data_dir=DIR)`) skips only `.x`, so a dataset directory
opens as-is in both, and in duckdb and polars through `DIR/*.parquet`. Directories written before
this naming (`manifest.json`, `report.json`) still read; the new name wins when both exist.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dataprep.errors import DataprepError
from dataprep.manifest import Manifest, ManifestError, ShardEntry, is_plain_name
from dataprep.storage import StoragePath, as_path

MANIFEST = ".manifest.json"
REPORT = ".report.json"
QUARANTINE = ".quarantine.jsonl"
# what older versions wrote; read (and replaced) but never written
OLD_NAMES = {MANIFEST: "manifest.json", REPORT: "report.json", QUARANTINE: "quarantine.jsonl"}
MANIFEST_NAMES = (MANIFEST, OLD_NAMES[MANIFEST])
WORK_DIR = ".dataprep"  # resume state and scratch; removed once the manifest is written


def shard_name(index: int, partition: int | None) -> str:
    """`part-NNNNN.parquet`, or for a shard `partition` tagged `pPPPPP-part-NNNNN.parquet` (as
    `partition` names its files): a 1:1 stage keeps the partition layout, so a glob of one
    partition still finds its shards."""
    prefix = "" if partition is None else f"p{partition:05d}-"
    return f"{prefix}part-{index:05d}.parquet"


def existing_file(root: str | Path | StoragePath, name: str) -> StoragePath:
    """`root/name`, or the same file under its old name when only that exists (`name` itself
    when neither does): how every reader finds a manifest, report or quarantine file."""
    target = as_path(root) / name
    old = OLD_NAMES.get(name)
    if old is None or target.is_file():
        return target
    legacy = as_path(root) / old
    return legacy if legacy.is_file() else target


def write_json_atomic(path: str | Path | StoragePath, data: Any) -> None:
    """Write JSON so readers never see half a file (temp + rename; one upload remotely)."""
    text = json.dumps(data, indent=2, sort_keys=False, default=str) + "\n"
    as_path(path).write_atomic(text)


def manifest_file(root: str | Path | StoragePath) -> StoragePath:
    return existing_file(root, MANIFEST)


def is_dataset(path: str | Path | StoragePath) -> bool:
    """A directory is a dataset once its manifest exists: the stage that wrote it finished."""
    return manifest_file(path).is_file()


def remove_manifest(root: str | Path | StoragePath) -> None:
    """Unmark a dataset (under either name) before its files change: nothing trusts it after."""
    for name in MANIFEST_NAMES:
        (as_path(root) / name).unlink()


def read_manifest(path: str | Path | StoragePath) -> Manifest:
    """Load and check a dataset's manifest, or stop with a message that says what is wrong."""
    root = as_path(path)
    target = manifest_file(root)
    if not target.is_file():
        if not root.exists():
            raise DataprepError(f"dataset directory {root} does not exist")
        raise DataprepError(
            f"{root} has no {MANIFEST}: it is not a finished dataprep dataset "
            "(the stage that writes it did not complete)"
        )
    try:
        data = json.loads(target.read_text())
    except ValueError as exc:  # bad JSON or bad UTF-8
        raise ManifestError(
            f"{target} is not valid JSON ({exc}); rerun the stage that made it"
        ) from None
    return Manifest.from_json(data, str(target))


def write_manifest(root: str | Path | StoragePath, manifest: Manifest) -> None:
    write_json_atomic(as_path(root) / MANIFEST, manifest.to_json())


def iter_shard_paths(
    root: str | Path | StoragePath, manifest: Manifest
) -> Iterator[tuple[ShardEntry, StoragePath]]:
    for shard in manifest.shards:
        if not is_plain_name(shard.path):  # a loaded manifest never has one; a built one might
            raise ManifestError(f"shard path {shard.path!r} is not a plain file name")
        yield shard, as_path(root) / shard.path
