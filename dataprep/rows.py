"""A few rows of a dataset, read without reading the rest of it (`dataprep head`).

The manifest lists every shard's row groups with their row counts, so the row groups that hold
the wanted rows are known before any shard is opened: `head` opens only those shards (their
footer) and reads only those row groups, with only the columns asked for (plus the ones a
`--where` reads). Encrypted shards are read with the key file through the same `ReadOptions`
every stage uses, local or on an object store.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dataprep.audit_use import use
from dataprep.crypto import readable_columns
from dataprep.dataset import Manifest, ReadOptions, iter_shard_paths, read_manifest
from dataprep.errors import DataprepError, shard_errors
from dataprep.storage import StoragePath

if TYPE_CHECKING:  # imported when a --where is given
    from dataprep.quality import expr


@dataclass(frozen=True)
class Head:
    """The rows, in the order to show them, and what reading them cost."""

    table: pa.Table
    rows_total: int  # rows in the dataset (manifest)
    shards_opened: int
    row_groups_read: int
    sample: str  # how the rows were chosen, in words
    left_out: dict[str, str]  # column -> key id: encrypted under a key the key file lacks


@dataclass(frozen=True)
class _Unit:
    """One row group of one shard (`group` None: the whole shard, for manifests that do not
    list row groups)."""

    shard: int
    group: int | None
    rows: int


def head(
    src: str | os.PathLike[str],
    n: int = 10,
    *,
    columns: Sequence[str] | None = None,
    where: str | None = None,
    shuffle: bool = False,
    seed: int = 0,
    key_file: str | os.PathLike[str] | None = None,
) -> Head:
    """The first `n` rows of `src` (in manifest order), or a seeded random sample of them.

    - plain: row groups in order until `n` rows; `n` rows cost about one row group.
    - `where`: the same, keeping rows where the `filter` stage's expression holds, so a rare
      condition may read the whole dataset.
    - `shuffle`: `n` rows drawn uniformly without replacement from all rows (seeded global row
      numbers mapped to row groups through the manifest): at most `n` row groups are read.
    - `shuffle` and `where`: row groups in a seeded random order, matches shuffled within each,
      until `n` match. Rows of one row group come together, so this is a random sample of
      row groups, not a uniform sample of matching rows when matches cluster.
    """
    if n < 0:
        raise DataprepError(f"-n must be 0 or more, not {n}")
    manifest = read_manifest(src)
    wanted = _check_columns(columns, manifest, src)
    test = None
    if where:
        from dataprep.quality import expr

        test = expr.parse(where, manifest.schema, "--where", "a column of the dataset")
    # a partial key file reads the columns under the keys it holds: without --columns those
    # are shown (the rest listed); a named or --where column it cannot read is one sentence
    # (no key file: the first shard opened says which one to pass, naming the shard)
    left_out: dict[str, str] = {}
    if key_file is not None:
        asked = [*(wanted if columns else []), *(test.columns if test is not None else [])]
        # a refused key is recorded in the key-use audit log (the reads record themselves)
        with use("decrypt", key_file, src, manifest.encryption, asked or None, ok=False):
            access = readable_columns(manifest.encryption, key_file, manifest.schema.names)
            if columns:
                access.require(wanted)
            else:
                wanted, left_out = access.readable, access.missing
            if test is not None:
                access.require(test.columns)
    read = wanted if test is None else list(dict.fromkeys([*wanted, *test.columns]))
    reader = _Reader(src, manifest, read, key_file)
    units = _units(manifest)
    if shuffle and test is None:
        table, how = _uniform(reader, units, n, seed), f"uniform random sample, seed {seed}"
    else:
        order = range(len(units))
        if shuffle:
            order = np.random.default_rng(seed).permutation(len(units))
        rng = np.random.default_rng(seed) if shuffle else None
        table = _scan(reader, (units[i] for i in order), n, test, rng)
        how = "first rows" if not shuffle else f"random row groups, seed {seed}"
        if test is not None:
            how += f", where {where}"
    return Head(
        table.select(wanted),
        manifest.rows,
        len(reader.files),
        reader.groups_read,
        how,
        left_out,
    )


def _check_columns(
    columns: Sequence[str] | None, manifest: Manifest, src: str | os.PathLike[str]
) -> list[str]:
    names = manifest.schema.names
    if not columns:
        return list(names)
    missing = [c for c in columns if c not in names]
    if missing:
        raise DataprepError(
            f"--columns names {', '.join(missing)}, which {src} does not have "
            f"(columns: {', '.join(names)})"
        )
    return list(dict.fromkeys(columns))


def _units(manifest: Manifest) -> list[_Unit]:
    units = []
    for i, shard in enumerate(manifest.shards):
        if shard.row_groups:
            units += [_Unit(i, g, rows) for g, rows in enumerate(shard.row_groups) if rows]
        elif shard.rows:
            units.append(_Unit(i, None, shard.rows))
    return units


class _Reader:
    """Opens each shard once (footer only) and reads single row groups of some columns."""

    def __init__(
        self,
        src: str | os.PathLike[str],
        manifest: Manifest,
        columns: list[str],
        key_file: str | os.PathLike[str] | None,
    ):
        self.paths: list[StoragePath] = [p for _, p in iter_shard_paths(src, manifest)]
        key = str(key_file) if key_file else None
        self.options = ReadOptions(key, manifest.encryption, columns=tuple(columns))
        self.columns = columns
        self.schema = pa.schema([manifest.schema.field(c) for c in columns])
        self.files: dict[int, pq.ParquetFile] = {}
        self.groups_read = 0

    def _open(self, shard: int) -> pq.ParquetFile:
        if shard not in self.files:
            self.files[shard] = self.options.open(self.paths[shard])
        return self.files[shard]

    def read(self, unit: _Unit, columns: list[str] | None = None) -> pa.Table:
        """A whole row group (of `columns`, default the reader's)."""
        file = self._open(unit.shard)
        cols = self.columns if columns is None else columns
        with shard_errors(self.paths[unit.shard].name, self.options.encryption is not None):
            if unit.group is None:
                return file.read(columns=cols)
            return file.read_row_group(unit.group, columns=cols)

    def first(self, unit: _Unit, rows: int) -> pa.Table:
        """A row group's first `rows` rows, decoded only that far: ten rows of a 65,536-row
        group cost their pages, not the group."""
        file = self._open(unit.shard)
        groups = None if unit.group is None else [unit.group]
        with shard_errors(self.paths[unit.shard].name, self.options.encryption is not None):
            stream = file.iter_batches(batch_size=rows, row_groups=groups, columns=self.columns)
            batch = next(stream, None)
        return self.schema.empty_table() if batch is None else pa.Table.from_batches([batch])


def _scan(
    reader: _Reader,
    units: Iterator[_Unit],
    n: int,
    test: expr.Where | None,
    rng: np.random.Generator | None,
) -> pa.Table:
    """Row groups in the given order until `n` rows are kept. A --where is first evaluated on
    its own columns only, so a group without a match never has its other columns (the text)
    read; in order, only the rows up to the last one needed are decoded; shuffled, matches
    are drawn from the whole group."""
    parts: list[pa.Table] = []
    kept = 0
    for unit in units:
        if kept >= n:
            break
        reader.groups_read += 1
        rows = np.arange(unit.rows)
        probe = None
        if test is not None:
            from dataprep.quality import expr

            probe = reader.read(unit, list(test.columns))
            (mask,) = expr.evaluate(probe, [test])
            rows = np.flatnonzero(mask)
            if not len(rows):
                continue
        if rng is not None:
            rows = rng.permutation(rows)
        rows = rows[: n - kept]
        if probe is not None and set(reader.columns) <= set(test.columns):  # type: ignore[union-attr]
            table = probe.select(reader.columns)
        elif rng is not None:
            table = reader.read(unit)
        else:
            table = reader.first(unit, int(rows.max()) + 1)
        parts.append(table.take(pa.array(rows, type=pa.int64())))
        kept += len(rows)
    return _concat(parts, reader)


def _uniform(reader: _Reader, units: list[_Unit], n: int, seed: int) -> pa.Table:
    """`n` distinct global row numbers, drawn with `seed`, read from their row groups only
    (each decoded up to the last row drawn from it), in the order drawn."""
    sizes = np.array([u.rows for u in units], dtype=np.int64)
    total = int(sizes.sum())
    picks = np.random.default_rng(seed).choice(total, size=min(n, total), replace=False)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    where = np.searchsorted(starts, picks, side="right") - 1
    offsets = picks - starts[where]
    parts: list[pa.Table] = []
    order = np.argsort(where, kind="stable")  # drawn rows grouped by row group
    for u in np.unique(where):
        mine = order[where[order] == u]
        reader.groups_read += 1
        table = reader.first(units[int(u)], int(offsets[mine].max()) + 1)
        parts.append(table.take(pa.array(offsets[mine], type=pa.int64())))
    table = _concat(parts, reader)
    back = np.empty(len(picks), dtype=np.int64)  # row i of `table` is draw order[i]
    back[order] = np.arange(len(picks))
    return table.take(pa.array(back, type=pa.int64()))


def _concat(parts: list[pa.Table], reader: _Reader) -> pa.Table:
    return pa.concat_tables(parts) if parts else reader.schema.empty_table()


def cell(value: Any, max_chars: int = 80) -> str:
    """One value as table text: long strings and lists are cut, saying their full size."""
    if isinstance(value, str):  # the first max_chars characters, line breaks shown as \n
        cut = bool(max_chars) and len(value) > max_chars
        shown = value[:max_chars] if cut else value
        shown = shown.replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")
        return f"{shown}… ({len(value):,} chars)" if cut else shown
    if isinstance(value, bytes):
        return f"<{len(value):,} bytes>"
    if isinstance(value, list):
        text = ", ".join(map(str, value))
        if max_chars and len(text) > max_chars:
            return f"[{text[:max_chars].rstrip(', ')}, …] ({len(value):,} items)"
        return f"[{text}]"
    return "null" if value is None else str(value)
