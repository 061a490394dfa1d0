"""Shard I/O: how one Parquet shard is encoded, written (temp name + rename) and read back.

Split from `dataprep.dataset`, which re-exports these names; kept apart so the dataset-directory
contract (manifest, verify, lineage) reads on its own.
"""

from __future__ import annotations

import json
import mmap
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from dataprep.errors import DataprepError, checksum_mismatch, shard_errors
from dataprep.manifest import ShardEntry
from dataprep.storage import StoragePath, as_path, spool_file
from dataprep.storage import file_checksum as file_checksum  # re-exported: one checksum

if TYPE_CHECKING:
    from dataprep.crypto import EncryptionSpec

DEFAULT_COMPRESSION = "zstd"
DEFAULT_COMPRESSION_LEVEL = 3


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
    # columns of fixed-width numbers (token ids) written with BYTE_STREAM_SPLIT and no
    # dictionary: decoding a 50k-id dictionary costs readers more CPU than the ~10% of bytes it
    # saves (bench_token_encoding.py); every other column keeps `use_dictionary`
    split_columns: tuple[str, ...] = ()

    def writer_kwargs(self, schema: pa.Schema | None = None) -> dict[str, Any]:
        level = self.compression_level if self.compression not in ("snappy", "none") else None
        kwargs = {
            "compression": self.compression,
            "compression_level": level,
            "use_dictionary": self.use_dictionary,
            "write_page_checksum": self.page_checksums,
        }
        if self.split_columns and schema is not None:
            kwargs.update(_split_kwargs(schema, self.split_columns, self.use_dictionary))
        if self.page_bytes is not None:
            kwargs["data_page_size"] = self.page_bytes
        return kwargs

    def config_digest(self, config: dict[str, Any]) -> str:
        """The digest a stage run records for `config` (its JSON dump) written with these
        options: the runner's "up to date" test, and dedup's proof that an input shard was
        encoded as its output would be. A field added after digests were first recorded is
        left out while it holds its default, so a new release does not turn every finished
        dataset stale or every interrupted run unresumable."""
        write = _without_defaults(self.__dict__, _FIELDS_ADDED_LATER)
        config = _without_defaults(config, _CONFIG_FIELDS_ADDED_LATER)
        payload = json.dumps({"config": config, "write": write}, sort_keys=True, default=str)
        return xxhash.xxh3_128(payload.encode()).hexdigest()


# WriteOptions fields newer than the first recorded digests, with their defaults (see
# `config_digest`); a field added from now on belongs here too
_FIELDS_ADDED_LATER: dict[str, Any] = {"split_columns": ()}
# the same for stage options, by name in any stage's config (score's and pii's replace_columns)
_CONFIG_FIELDS_ADDED_LATER: dict[str, Any] = {"replace_columns": False}


def _without_defaults(fields: dict[str, Any], added_later: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if not (k in added_later and v == added_later[k])}


def _split_kwargs(schema: pa.Schema, split: tuple[str, ...], dictionary: bool) -> dict[str, Any]:
    """Per-leaf encodings: pyarrow names nested leaves by their Parquet path (`tokens` is
    `tokens.list.element`), so the paths are read off the schema Parquet would write."""
    sink = pa.BufferOutputStream()
    pq.write_table(schema.empty_table(), sink)
    leaves = pq.ParquetFile(pa.BufferReader(sink.getvalue())).schema
    paths = [leaves.column(i).path for i in range(len(leaves))]
    chosen = [p for p in paths if p.split(".")[0] in split]
    rest = [p for p in paths if p not in chosen]
    return {"use_byte_stream_split": chosen, "use_dictionary": rest if dictionary else False}


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
    # the columns the caller reads, for the key-use audit record (None: all the key opens)
    columns: tuple[str, ...] | None = None

    def open(self, path: str | Path | StoragePath, checksum: str | None = None) -> pq.ParquetFile:
        """Open a shard, decrypting if needed; a bad key or a corrupt file names the shard."""
        from dataprep.crypto import open_parquet

        if checksum is not None:
            check_file(path, checksum)
        if self.encryption is None:
            return open_parquet(path, None, None, verify_pages=self.verify_pages)
        from dataprep.audit_use import use

        with use("decrypt", self.key_file, as_path(path).parent, self.encryption, self.columns):
            return open_parquet(
                path, self.key_file, self.encryption, verify_pages=self.verify_pages
            )

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
        raise checksum_mismatch(name)


class ShardWriter:
    """Write one Parquet shard under a temporary name; `close()` renames it into place.

    Row groups are written as tables arrive (capped at `row_group_rows`), so memory stays at
    one batch, and `bytes_written` lets callers roll over to a new shard by size. A remote shard
    is built in a local spool file and uploaded whole on `close()`.

    Used as a context manager it closes on success and aborts (removes the temporary file) on
    any exception, so a failed or interrupted task never leaves a half-written shard behind;
    `entry` is the closed shard's manifest entry:

        with ShardWriter(path, schema, options) as writer:
            writer.write(table)
        return TaskResult([writer.entry])
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
        kwargs = options.writer_kwargs(schema)
        if options.encryption is not None:
            from dataprep.audit_use import encrypting

            with encrypting(options.encryption, self.path, schema):  # one audit record a use
                kwargs["encryption_properties"] = options.encryption.properties(schema, self.path)
        self._sink = pa.OSFile(str(self._tmp), "wb")
        self._writer = pq.ParquetWriter(self._sink, schema, **kwargs)
        self.rows = 0
        self.row_groups: list[int] = []
        self._entry: ShardEntry | None = None
        self._done = False  # closed or aborted: the temporary file is gone either way

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None and not self._done:
            try:
                self.close()
            except BaseException:  # a failed upload or checksum: no temporary file left
                self.abort()
                raise
        self.abort()  # a no-op once closed

    @property
    def entry(self) -> ShardEntry:
        """The manifest entry of the shard `close()` wrote."""
        if self._entry is None:
            raise RuntimeError(f"shard {self.path.name} was not closed")
        return self._entry

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
        if self._entry is not None:
            return self._entry
        self._writer.close()
        self._sink.close()
        # durable before its name (and the task record, then the manifest, that trust it)
        # exist: after a power loss a committed dataset never lists a shard cut short
        checksum, size = _mapped_checksum(self._tmp, sync=self.path.local() is not None)
        self.path.upload_from(self._tmp)
        self._entry = ShardEntry(
            path=self.path.name,
            rows=self.rows,
            bytes=size,
            xxh3_128=checksum,
            row_groups=self.row_groups,
            partition=self.partition,
        )
        self._done = True
        return self._entry

    def abort(self) -> None:
        """Drop the shard being written (also to discard an empty one); no-op once closed."""
        if self._done:
            return
        self._done = True
        try:
            self._writer.close()
            self._sink.close()
        finally:
            self._tmp.unlink(missing_ok=True)


def _mapped_checksum(path: Path, sync: bool = False) -> tuple[str, int]:
    """A local file's `file_checksum` and size, hashed where the page cache holds it (an mmap):
    reading it back copied every byte just written, ~4x the CPU of the hash. `sync` also
    fsyncs it (a shard in its final place; not a spool file an upload reads next)."""
    with open(path, "rb") as f:
        if sync:
            os.fsync(f.fileno())
        size = os.fstat(f.fileno()).st_size
        if not size:
            return file_checksum(f), 0
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return xxhash.xxh3_128(data).hexdigest(), size


class RollingShardWriter:
    """Split a stream of tables into shards of at most `shard_rows` rows or ~`shard_bytes`.

    A context manager like `ShardWriter`: closes on success (`entries` are then the shards),
    aborts the shard in progress on an exception.
    """

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

    def __enter__(self) -> RollingShardWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            try:
                self.close()
            except BaseException:
                self.abort()
                raise
        self.abort()  # a no-op once closed

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
        self._current = None
