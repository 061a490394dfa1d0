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
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from dataprep import __version__
from dataprep.errors import DataprepError, VerifyError
from dataprep.manifest import FORMAT as FORMAT
from dataprep.manifest import FORMAT_VERSION as FORMAT_VERSION
from dataprep.manifest import Manifest as Manifest
from dataprep.manifest import ManifestError as ManifestError
from dataprep.manifest import ShardEntry as ShardEntry
from dataprep.manifest import footer_problem, is_plain_name
from dataprep.storage import StoragePath, as_path, parquet_source, spool_file

if TYPE_CHECKING:
    from dataprep.crypto import EncryptionSpec

MANIFEST = ".manifest.json"
REPORT = ".report.json"
QUARANTINE = ".quarantine.jsonl"
# what older versions wrote; read (and replaced) but never written
OLD_NAMES = {MANIFEST: "manifest.json", REPORT: "report.json", QUARANTINE: "quarantine.jsonl"}
MANIFEST_NAMES = (MANIFEST, OLD_NAMES[MANIFEST])
WORK_DIR = ".dataprep"  # resume state and scratch; removed once the manifest is written

DEFAULT_COMPRESSION = "zstd"
DEFAULT_COMPRESSION_LEVEL = 3


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


def file_checksum(path: str | Path | StoragePath) -> str:
    """xxh3-128 of a file's bytes, streamed in 8 MiB blocks."""
    h = xxhash.xxh3_128()
    with as_path(path).open_stream() as f:
        while block := f.read(8 << 20):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class WriteOptions:
    """How shards are encoded; a property of the output, shared by every stage's writer."""

    compression: str = DEFAULT_COMPRESSION
    compression_level: int | None = DEFAULT_COMPRESSION_LEVEL
    row_group_rows: int = 65536
    use_dictionary: bool = True
    encryption: EncryptionSpec | None = None  # picklable; pyarrow's object is built per shard
    page_bytes: int | None = None  # Parquet data page size; None = pyarrow's 1 MiB
    # a CRC-32 per page, which every reader here verifies: a flipped byte in a page is then an
    # error, not silently different rows (zstd stores incompressible pages raw, unchecked)
    page_checksums: bool = True

    def writer_kwargs(self) -> dict[str, Any]:
        level = self.compression_level if self.compression not in ("snappy", "none") else None
        kwargs = {
            "compression": self.compression,
            "compression_level": level,
            "use_dictionary": self.use_dictionary,
            "write_page_checksum": self.page_checksums,
        }
        if self.page_bytes is not None:
            kwargs["data_page_size"] = self.page_bytes
        return kwargs


@dataclass(frozen=True)
class ReadOptions:
    """How tasks open input shards: for an encrypted input, the key file (picklable).

    Page checksums are verified on every read (pages written without one are not checked).
    A caller that reads a whole shard passes its manifest `checksum` too: the file's xxh3-128
    is then checked first, which also covers the footer, page headers and shards written
    without page checksums, for one extra pass over bytes the read brings into memory anyway.
    """

    key_file: str | None = None
    encryption: dict[str, Any] | None = None  # the input manifest's `encryption`
    verify_pages: bool = True

    def open(self, path: str | Path | StoragePath, checksum: str | None = None) -> pq.ParquetFile:
        """Open a shard, decrypting if needed; a bad key or a corrupt file names the shard."""
        from dataprep.crypto import open_parquet

        if checksum is not None:
            check_file(path, checksum)
        return open_parquet(path, self.key_file, self.encryption, verify_pages=self.verify_pages)

    def row_groups(
        self,
        path: str | Path | StoragePath,
        columns: list[str] | None = None,
        checksum: str | None = None,
    ) -> Iterator[pa.Table]:
        from dataprep.crypto import iter_row_groups

        file = self.open(path, checksum)
        return iter_row_groups(file, as_path(path).name, columns, self.encryption is not None)

    def read_table(
        self,
        path: str | Path | StoragePath,
        columns: Iterable[str] | None = None,
        checksum: str | None = None,
    ) -> pa.Table:
        """A whole shard (or some of its columns): what stages use instead of `pq.read_table`."""
        from dataprep.crypto import shard_errors

        file = self.open(path, checksum)
        with shard_errors(as_path(path).name, self.encryption is not None):
            return file.read(columns=list(columns) if columns is not None else None)

    def iter_batches(
        self,
        path: str | Path | StoragePath,
        columns: Iterable[str] | None = None,
        batch_size: int = 65536,
        checksum: str | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """A shard's record batches, streamed; decryption failures name the shard."""
        from dataprep.crypto import shard_errors

        file = self.open(path, checksum)
        cols = list(columns) if columns is not None else None
        batches = file.iter_batches(batch_size=batch_size, columns=cols)
        while True:
            with shard_errors(as_path(path).name, self.encryption is not None):
                batch = next(batches, None)
            if batch is None:
                return
            yield batch

    def schema(self, path: str | Path | StoragePath) -> pa.Schema:
        """A shard's Arrow schema (an encrypted footer needs the key)."""
        return self.open(path).schema_arrow


def check_file(path: str | Path | StoragePath, checksum: str) -> None:
    """Stop with one sentence naming the shard when its bytes differ from the manifest's."""
    name = as_path(path).name
    try:
        actual = file_checksum(path)
    except OSError as exc:
        raise DataprepError(f"shard {name} cannot be read ({exc.strerror or exc})") from None
    if actual != checksum:
        raise DataprepError(
            f"shard {name} is corrupt (its bytes do not match the manifest's checksum); "
            "rerun the stage that wrote it or restore it"
        )


class ShardWriter:
    """Write one Parquet shard under a temporary name; `close()` renames it into place.

    Row groups are written as tables arrive (capped at `row_group_rows`), so memory stays at
    one batch, and `bytes_written` lets callers roll over to a new shard by size. A remote shard
    is built in a local spool file and uploaded whole on `close()`.
    """

    def __init__(
        self,
        path: str | Path | StoragePath,
        schema: pa.Schema,
        options: WriteOptions = WriteOptions(),
        partition: int | None = None,
    ):
        self.path = as_path(path)
        self.partition = partition
        self.options = options
        local = self.path.local()
        if local is not None:
            self._tmp = local.with_name(f".{local.name}.tmp-{os.getpid()}")
        else:
            self._tmp = spool_file(self.path.name)
        kwargs = options.writer_kwargs()
        if options.encryption is not None:
            kwargs["encryption_properties"] = options.encryption.properties(schema)
        self._sink = pa.OSFile(str(self._tmp), "wb")
        self._writer = pq.ParquetWriter(self._sink, schema, **kwargs)
        self.rows = 0
        self.row_groups: list[int] = []

    @property
    def bytes_written(self) -> int:
        return self._sink.tell()

    def write(self, table: pa.Table | pa.RecordBatch) -> None:
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        step = self.options.row_group_rows
        for start in range(0, table.num_rows, step):
            part = table.slice(start, step)
            self._writer.write_table(part, row_group_size=step)
            self.row_groups.append(part.num_rows)
            self.rows += part.num_rows

    def close(self) -> ShardEntry:
        self._writer.close()
        self._sink.close()
        checksum = file_checksum(self._tmp)
        size = self._tmp.stat().st_size
        self.path.upload_from(self._tmp)
        return ShardEntry(
            path=self.path.name,
            rows=self.rows,
            bytes=size,
            xxh3_128=checksum,
            row_groups=self.row_groups,
            partition=self.partition,
        )

    def abort(self) -> None:
        try:
            self._writer.close()
            self._sink.close()
        finally:
            self._tmp.unlink(missing_ok=True)


class RollingShardWriter:
    """Split a stream of tables into shards of at most `shard_rows` rows or ~`shard_bytes`."""

    def __init__(
        self,
        out_dir: str | Path | StoragePath,
        name_prefix: str,
        schema: pa.Schema,
        shard_rows: int | None = None,
        shard_bytes: int | None = None,
        options: WriteOptions = WriteOptions(),
    ):
        self.out_dir = as_path(out_dir)
        self.name_prefix = name_prefix
        self.schema = schema
        self.shard_rows = shard_rows
        self.shard_bytes = shard_bytes
        self.options = options
        self.entries: list[ShardEntry] = []
        self._current: ShardWriter | None = None

    def _open(self) -> ShardWriter:
        name = f"{self.name_prefix}-{len(self.entries):05d}.parquet"
        return ShardWriter(self.out_dir / name, self.schema, self.options)

    def write(self, table: pa.Table) -> None:
        while table.num_rows:
            if self._current is None:
                self._current = self._open()
            room = table.num_rows
            if self.shard_rows:
                room = min(room, self.shard_rows - self._current.rows)
            if self.shard_bytes:
                room = min(room, self._rows_that_fit(table))
            self._current.write(table.slice(0, room))
            table = table.slice(room)
            full_rows = self.shard_rows and self._current.rows >= self.shard_rows
            full_bytes = self.shard_bytes and self._current.bytes_written >= self.shard_bytes
            if full_rows or full_bytes:
                self.entries.append(self._current.close())
                self._current = None

    def _rows_that_fit(self, table: pa.Table) -> int:
        """Rows that fill the current shard to ~shard_bytes, judged by the compressed bytes per
        row seen so far (before the first write: the uncompressed size, an overestimate)."""
        assert self._current is not None and self.shard_bytes
        current = self._current
        if current.rows:
            per_row = current.bytes_written / current.rows
        else:
            per_row = table.nbytes / max(table.num_rows, 1)
        left = self.shard_bytes - current.bytes_written
        return max(1, int(left / max(per_row, 1e-9)) + 1)

    def close(self) -> list[ShardEntry]:
        if self._current is not None and self._current.rows:
            self.entries.append(self._current.close())
        elif self._current is not None:
            self._current.abort()
        self._current = None
        return self.entries

    def abort(self) -> None:
        if self._current is not None:
            self._current.abort()


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
