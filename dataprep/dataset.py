"""The dataset directory contract in one import: Parquet shards plus a manifest written last.

A facade: the manifest document is `manifest`, the directory's file names and manifest file
`layout`, shard reading and writing `shardio`, the byte-for-byte check `verify`. Stages, the
CLI and users import these names from here, so the parts can move without touching them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa

from dataprep.layout import MANIFEST as MANIFEST
from dataprep.layout import MANIFEST_NAMES as MANIFEST_NAMES
from dataprep.layout import OLD_NAMES as OLD_NAMES
from dataprep.layout import QUARANTINE as QUARANTINE
from dataprep.layout import REPORT as REPORT
from dataprep.layout import WORK_DIR as WORK_DIR
from dataprep.layout import existing_file as existing_file
from dataprep.layout import is_dataset as is_dataset
from dataprep.layout import iter_shard_paths as iter_shard_paths
from dataprep.layout import manifest_file as manifest_file
from dataprep.layout import read_manifest as read_manifest
from dataprep.layout import remove_manifest as remove_manifest
from dataprep.layout import write_json_atomic as write_json_atomic
from dataprep.layout import write_manifest as write_manifest
from dataprep.manifest import FORMAT as FORMAT
from dataprep.manifest import FORMAT_VERSION as FORMAT_VERSION
from dataprep.manifest import LineageEntry as LineageEntry
from dataprep.manifest import Manifest as Manifest
from dataprep.manifest import ManifestError as ManifestError
from dataprep.manifest import ShardEntry as ShardEntry
from dataprep.manifest import lineage_entry as lineage_entry
from dataprep.shardio import DEFAULT_COMPRESSION as DEFAULT_COMPRESSION
from dataprep.shardio import DEFAULT_COMPRESSION_LEVEL as DEFAULT_COMPRESSION_LEVEL
from dataprep.shardio import ReadOptions as ReadOptions
from dataprep.shardio import RollingShardWriter as RollingShardWriter
from dataprep.shardio import ShardWriter as ShardWriter
from dataprep.shardio import WriteOptions as WriteOptions
from dataprep.shardio import check_file as check_file
from dataprep.shardio import file_checksum as file_checksum
from dataprep.storage import StoragePath
from dataprep.verify import VerifyResult as VerifyResult
from dataprep.verify import verify_dataset as verify_dataset


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
