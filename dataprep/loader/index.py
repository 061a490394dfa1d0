"""Where the rows are: the (shard, row group) units of a dataset, with prefix-summed row counts.

A dataset directory's manifest already lists every shard's row groups, so opening one costs a
single small read. Plain Parquet (a file, a directory, a glob; local or any `pyarrow.fs` URI
such as `s3://`) is indexed from the footers, read in parallel because remote footers are
latency-bound. Row groups are never assumed to be equal: every unit carries its own count.
"""

from __future__ import annotations

import json
import posixpath
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from dataprep.dataset import MANIFEST, MANIFEST_NAMES, WORK_DIR, Manifest
from dataprep.errors import DataprepError, short_error
from dataprep.storage import StoragePath, glob_files, resolve
from dataprep.uri import is_glob

_FOOTER_THREADS = 16


@dataclass(frozen=True)
class ShardFile:
    """One Parquet file: where it is, its row groups, and (from a manifest) its checksum."""

    path: str  # path inside `filesystem`
    name: str  # what errors call it
    row_groups: tuple[int, ...]
    checksum: str | None = None
    size: int | None = None  # manifest: file bytes; footer: uncompressed row-group bytes


@dataclass
class DatasetIndex:
    """Units in dataset order: unit i is row group `unit_rg[i]` of file `unit_file[i]`."""

    uri: str
    filesystem: pafs.FileSystem
    files: list[ShardFile]
    schema: pa.Schema
    encryption: dict[str, Any] | None
    unit_file: np.ndarray
    unit_rg: np.ndarray
    unit_rows: np.ndarray
    unit_start: np.ndarray  # prefix sums: global row id of each unit's first row (+ total)

    @property
    def num_rows(self) -> int:
        return int(self.unit_start[-1])

    @property
    def row_bytes(self) -> float:
        """Average bytes per row (file bytes from a manifest, else footer sizes)."""
        total = sum(f.size or 0 for f in self.files)
        return total / max(1, self.num_rows)

    def read_row_bytes(self, columns: list[str]) -> float:
        """Bytes per row in memory once read: the stored size, or the decoded width of the
        fixed-width columns when larger (zstd token blocks decode to ~2.5x what they store)."""
        return max(1.0, self.row_bytes, float(self.fixed_row_bytes(columns)))

    def fixed_row_bytes(self, columns: list[str]) -> int:
        """Bytes per row of the fixed-width columns among `columns` (numbers, token blocks)."""
        return sum(_fixed_width(self.schema.field(c).type) for c in columns)

    def check_columns(self, columns: list[str] | None) -> list[str]:
        """The columns to read, or a DataprepError naming the missing ones."""
        names = list(self.schema.names)
        if columns is None:
            return names
        missing = [c for c in columns if c not in names]
        if missing:
            raise DataprepError(
                f"column(s) {', '.join(missing)} not in {self.uri} (columns: {', '.join(names)})"
            )
        return list(columns)


def _fixed_width(kind: pa.DataType) -> int:
    """Bytes per value of a fixed-width type (0 for strings, lists and other variable ones)."""
    if pa.types.is_fixed_size_list(kind):
        return kind.list_size * _fixed_width(kind.value_type)
    if pa.types.is_fixed_size_binary(kind):
        return kind.byte_width
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return kind.bit_width // 8
    return 0


def open_index(uri: str) -> DatasetIndex:
    """Index a dataset directory (manifest) or plain Parquet file(s) at a local path or URI."""
    filesystem, path = resolve(uri)
    if is_glob(uri):
        paths, none = [resolve(f)[1] for f in glob_files(uri)], f"no files match {uri}"
    else:
        info = filesystem.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            raise DataprepError(
                f"{uri} does not exist: give a dataset directory or Parquet file(s)"
            )
        if info.type == pafs.FileType.File:
            return _build(uri, filesystem, _footers(filesystem, [path]), None, None)
        for name in MANIFEST_NAMES:  # the new name first: it wins over an old leftover
            manifest_path = posixpath.join(path, name)
            if filesystem.get_file_info(manifest_path).type == pafs.FileType.File:
                return _from_manifest(uri, filesystem, path, manifest_path)
        if filesystem.get_file_info(posixpath.join(path, WORK_DIR)).type != pafs.FileType.NotFound:
            raise DataprepError(
                f"{uri} is a stage's unfinished output (a {WORK_DIR} work folder and no "
                f"{MANIFEST}): rerun the stage that writes it"
            )
        root = StoragePath(path if filesystem.type_name == "local" else uri)
        below = [f.relative_to(root) for f in root.walk_files()]
        paths = [posixpath.join(path, name) for name in below if _is_data(name)]
        none = f"{uri} has no {MANIFEST} and no .parquet files"
    if not paths:
        raise DataprepError(none)
    return _build(uri, filesystem, _footers(filesystem, paths), None, None)


def _is_parquet(path: str) -> bool:
    base = posixpath.basename(path)
    return base.endswith((".parquet", ".parq", ".pq")) and not base.startswith((".", "_"))


def _is_data(relative: str) -> bool:
    """A Parquet file not inside a hidden (`.x`, `_x`) folder, as `pyarrow.dataset` sees it."""
    *folders, _ = relative.split("/")
    return _is_parquet(relative) and not any(f.startswith((".", "_")) for f in folders)


def _footers(filesystem: pafs.FileSystem, paths: list[str]) -> list[tuple[ShardFile, pa.Schema]]:
    def read(path: str) -> tuple[ShardFile, pa.Schema]:
        name = posixpath.basename(path)
        try:
            meta = pq.read_metadata(path, filesystem=filesystem)
        except (OSError, pa.ArrowException, ValueError) as exc:
            raise DataprepError(
                f"{path} is not a readable Parquet file ({short_error(exc)})"
            ) from None
        groups = tuple(meta.row_group(i).num_rows for i in range(meta.num_row_groups))
        size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        return ShardFile(path, name, groups, size=size), meta.schema.to_arrow_schema()

    if len(paths) == 1:
        return [read(paths[0])]
    with ThreadPoolExecutor(min(_FOOTER_THREADS, len(paths))) as pool:
        return list(pool.map(read, paths))


def _from_manifest(
    uri: str, filesystem: pafs.FileSystem, root: str, manifest_path: str
) -> DatasetIndex:
    try:
        with filesystem.open_input_stream(manifest_path) as f:
            data = json.loads(f.read())
    except (ValueError, OSError) as exc:  # bad JSON, bad UTF-8, unreadable
        raise DataprepError(f"{manifest_path} is unreadable ({short_error(exc)})") from None
    manifest = Manifest.from_json(data, manifest_path)  # checks types, totals, paths
    files: list[ShardFile] = []
    for shard in manifest.shards:
        path = posixpath.join(root, shard.path)
        groups = tuple(shard.row_groups)
        if not groups and shard.rows:  # an old manifest without row groups: ask the footer
            if manifest.encryption is not None:
                raise DataprepError(f"manifest lists no row groups for encrypted {shard.path}")
            groups = _footers(filesystem, [path])[0][0].row_groups
        files.append(ShardFile(path, shard.path, groups, shard.xxh3_128, shard.bytes))
    return _build(uri, filesystem, files, manifest.schema, manifest.encryption)


def _build(
    uri: str,
    filesystem: pafs.FileSystem,
    files: list[ShardFile] | list[tuple[ShardFile, pa.Schema]],
    schema: pa.Schema | None,
    encryption: dict[str, Any] | None,
) -> DatasetIndex:
    shards: list[ShardFile] = []
    for item in files:
        if isinstance(item, tuple):
            shard, file_schema = item
            if schema is None:
                schema = file_schema
            elif file_schema.names != schema.names:
                raise DataprepError(
                    f"{shard.path} has columns {file_schema.names}, unlike the first file "
                    f"({schema.names}); point the loader at files with one schema"
                )
            shards.append(shard)
        else:
            shards.append(item)
    assert schema is not None
    unit_file, unit_rg, unit_rows = [], [], []
    for i, shard in enumerate(shards):
        for g, rows in enumerate(shard.row_groups):
            if rows:  # empty row groups / shards hold nothing to schedule
                unit_file.append(i)
                unit_rg.append(g)
                unit_rows.append(rows)
    rows_arr = np.asarray(unit_rows, dtype=np.int64)
    return DatasetIndex(
        uri=uri,
        filesystem=filesystem,
        files=shards,
        schema=schema,
        encryption=encryption,
        unit_file=np.asarray(unit_file, dtype=np.int64),
        unit_rg=np.asarray(unit_rg, dtype=np.int64),
        unit_rows=rows_arr,
        unit_start=np.concatenate([[0], np.cumsum(rows_arr)]).astype(np.int64),
    )


def check_footer(handle: pq.ParquetFile, name: str, row_groups: tuple[int, ...]) -> None:
    """The footer's row groups must be the index's: rows are addressed by those counts, so a
    file replaced by another (more rows, other cuts) would yield other rows without a word.
    Free: the footer is already parsed. (verify=True also catches a same-shaped swap.)"""
    meta = handle.metadata
    footer = tuple(meta.row_group(g).num_rows for g in range(meta.num_row_groups))
    if footer != tuple(row_groups):
        raise DataprepError(
            f"shard {name} has row groups of {list(footer)} rows where its index says "
            f"{list(row_groups)}: the file was replaced or damaged; restore it (or re-index "
            "plain Parquet)"
        )
