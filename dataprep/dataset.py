"""The dataset directory contract: Parquet shards plus a manifest written last.

A directory is a dataset only once `.manifest.json` exists; every writer here goes through a
temporary name and a rename, so a killed process never leaves something that looks finished.
Everything beside the shards is named `.x`: pyarrow.dataset skips `_x` and `.x`, but Hugging Face
`datasets` (`load_dataset("parquet", data_dir=DIR)`) skips only `.x`, so a dataset directory
opens as-is in both, and in duckdb and polars through `DIR/*.parquet`. Directories written before
this naming (`manifest.json`, `report.json`) still read; the new name wins when both exist.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dataprep import __version__
from dataprep.errors import DataprepError, VerifyError
from dataprep.manifest import FORMAT as FORMAT
from dataprep.manifest import FORMAT_VERSION as FORMAT_VERSION
from dataprep.manifest import Manifest as Manifest
from dataprep.manifest import ManifestError as ManifestError
from dataprep.manifest import ShardEntry as ShardEntry
from dataprep.manifest import footer_problem, is_plain_name
from dataprep.shardio import DEFAULT_COMPRESSION as DEFAULT_COMPRESSION
from dataprep.shardio import DEFAULT_COMPRESSION_LEVEL as DEFAULT_COMPRESSION_LEVEL
from dataprep.shardio import ReadOptions as ReadOptions
from dataprep.shardio import RollingShardWriter as RollingShardWriter
from dataprep.shardio import ShardWriter as ShardWriter
from dataprep.shardio import WriteOptions as WriteOptions
from dataprep.shardio import check_file as check_file
from dataprep.shardio import file_checksum as file_checksum
from dataprep.storage import StoragePath, as_path, parquet_source

MANIFEST = ".manifest.json"
REPORT = ".report.json"
QUARANTINE = ".quarantine.jsonl"
# what older versions wrote; read (and replaced) but never written
OLD_NAMES = {MANIFEST: "manifest.json", REPORT: "report.json", QUARANTINE: "quarantine.jsonl"}
MANIFEST_NAMES = (MANIFEST, OLD_NAMES[MANIFEST])
WORK_DIR = ".dataprep"  # resume state and scratch; removed once the manifest is written


def existing_file(root: str | Path | StoragePath, name: str) -> StoragePath:
    """`root/name`, or the same file under its old name when only that exists (`name` itself
    when neither does): how every reader finds a manifest, report or quarantine file."""
    target = as_path(root) / name
    old = OLD_NAMES.get(name)
    if old is None or target.is_file():
        return target
    legacy = as_path(root) / old
    return legacy if legacy.is_file() else target


def manifest_file(root: str | Path | StoragePath) -> StoragePath:
    return existing_file(root, MANIFEST)


def remove_manifest(root: str | Path | StoragePath) -> None:
    """Unmark a dataset (under either name) before its files change: nothing trusts it after."""
    for name in MANIFEST_NAMES:
        (as_path(root) / name).unlink()


def is_dataset(path: str | Path | StoragePath) -> bool:
    return manifest_file(path).is_file()


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


def write_json_atomic(path: str | Path | StoragePath, data: Any) -> None:
    """Write JSON so readers never see half a file (temp + rename; one upload remotely)."""
    text = json.dumps(data, indent=2, sort_keys=False, default=str) + "\n"
    as_path(path).write_atomic(text)


def write_manifest(root: str | Path | StoragePath, manifest: Manifest) -> None:
    write_json_atomic(as_path(root) / MANIFEST, manifest.to_json())


def iter_shard_paths(
    root: str | Path | StoragePath, manifest: Manifest
) -> Iterator[tuple[ShardEntry, StoragePath]]:
    for shard in manifest.shards:
        if not is_plain_name(shard.path):  # a loaded manifest never has one; a built one might
            raise ManifestError(f"shard path {shard.path!r} is not a plain file name")
        yield shard, as_path(root) / shard.path


@dataclass
class VerifyResult:
    shards: int
    rows: int
    skipped: str | None = None  # what could not be checked, and why


def verify_dataset(root: str | Path | StoragePath) -> VerifyResult:
    """Check the manifest, then every shard: size, xxh3-128, and its footer (rows, row groups,
    schema) against the manifest; raise `VerifyError` at the first bad one.

    Encrypted footers need the key, so an encrypted dataset's shards are checked by size and
    checksum only (which still catches any changed byte), and the result says what was skipped.
    """
    try:
        manifest = read_manifest(root)
    except ManifestError as exc:
        raise VerifyError(str(exc)) from None
    rows = 0
    for shard, path in iter_shard_paths(root, manifest):
        if not path.is_file():
            raise VerifyError(f"shard {shard.path} is missing")
        size = path.size()
        if size != shard.bytes:
            raise VerifyError(f"shard {shard.path}: size {size} != manifest {shard.bytes}")
        checksum = file_checksum(path)
        if checksum != shard.xxh3_128:
            raise VerifyError(f"shard {shard.path}: checksum mismatch (file changed or corrupt)")
        if manifest.encryption is None:
            try:
                with pq.ParquetFile(parquet_source(path)) as file:
                    problem = footer_problem(file, shard, manifest.schema)
            except (OSError, pa.ArrowException) as exc:
                first = (str(exc).splitlines() or [type(exc).__name__])[0]
                raise VerifyError(f"shard {shard.path}: unreadable Parquet ({first})") from None
            if problem:
                raise VerifyError(f"shard {shard.path}: {problem}")
        rows += shard.rows
    skipped = None
    if manifest.encryption is not None and manifest.shards:
        skipped = (
            f"rows, row groups and schema of {len(manifest.shards)} encrypted shards not "
            "checked (their footers need the key); sizes and checksums were"
        )
    return VerifyResult(shards=len(manifest.shards), rows=rows, skipped=skipped)


def lineage_entry(
    op: str,
    stage_id: str,
    config: dict[str, Any],
    input_digest: str,
    config_digest: str,
    started: float,
) -> dict[str, Any]:
    return {
        "stage": op,
        "id": stage_id,
        "config": config,
        "input_digest": input_digest,
        "config_digest": config_digest,
        "version": __version__,
        "started": _iso(started),
        "finished": _iso(time.time()),
    }


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def read_rows(
    root: str | Path | StoragePath,
    columns: Iterable[str] | None = None,
    key_file: str | None = None,
) -> pa.Table:
    """Whole dataset as one table (decrypted with `key_file` if encrypted): for tests and small
    data, never for stage code."""
    manifest = read_manifest(root)
    cols = list(columns) if columns is not None else None
    reader = ReadOptions(key_file, manifest.encryption)
    tables = [reader.read_table(p, cols) for _, p in iter_shard_paths(root, manifest)]
    if not tables:
        return manifest.schema.empty_table() if cols is None else pa.table({c: [] for c in cols})
    return pa.concat_tables(tables)
