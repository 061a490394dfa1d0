"""Which columns a key file opens: the one check every reader makes before reading.

With per-column master keys a key file may hold only some of a dataset's keys (a labelling
team's file opens `id` and `label`, never `text`). pyarrow aborts the whole process when a
column key fails to unwrap inside its metadata code, so readers decide from the manifest,
before touching a file, which columns they may read (`readable_columns`), and a read of any
other column stops with one sentence naming the column and the key id it needs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dataprep.crypto_keys import KeyRing, KmsClient, check_keys, load_key_file
from dataprep.errors import DataprepError

SCHEME = "parquet-modular-encryption"


@dataclass(frozen=True)
class ColumnAccess:
    """Which columns of an encrypted dataset a key file opens (all, for plaintext data)."""

    readable: list[str]  # in schema order
    missing: dict[str, str]  # column -> the master key id the key file lacks
    key_file: str | None = None

    def require(self, columns: Sequence[str] | None) -> list[str]:
        """`columns` (None: every column) if all are readable, else one sentence naming the
        first column whose key is missing."""
        wanted = list(columns) if columns is not None else [*self.readable, *self.missing]
        for column in wanted:
            if column in self.missing:
                raise missing_key_error(column, self.missing[column], self.key_file, self.readable)
        return wanted


def missing_key_error(
    column: str, key_id: str, key_file: str | os.PathLike[str] | None, readable: Sequence[str]
) -> DataprepError:
    can = f"; this key file reads {', '.join(readable)}" if readable else ""
    return DataprepError(
        f"column {column} is encrypted with key {key_id!r}, which key file {key_file} does not "
        f"hold{can}"
    )


def readable_columns(
    encryption: dict[str, Any] | None,
    key_file: str | os.PathLike[str] | None,
    names: Sequence[str],
) -> ColumnAccess:
    """The columns of a dataset (`names`, in schema order) that `key_file` can read, and for
    each other column the key id it lacks. The one place that decides this: stages, export,
    `head` and the loader ask it before reading, so a partial key file reads what it may and
    a column it may not is one sentence, never a pyarrow abort (pyarrow aborts the process
    when a column key fails inside its metadata code). Raises `DataprepError` when nothing
    is readable: no key file, or one without the footer key every reader needs."""
    if encryption is None:
        return ColumnAccess(list(names), {}, None)
    if key_file is None:
        raise DataprepError(
            f"this data is encrypted (key set {encryption.get('key_set')}); "
            "pass --key-file with a key file for it"
        )
    ring = ring_for(key_file, encryption)
    missing = {
        column: key_id
        for key_id, columns in encryption.get("column_keys", {}).items()
        if key_id not in ring.keys
        for column in columns
    }
    readable = [c for c in names if c not in missing]
    return ColumnAccess(readable, {c: missing[c] for c in names if c in missing}, str(key_file))


def ring_for(key_file: str | os.PathLike[str], encryption: dict[str, Any]) -> KeyRing:
    """The key file, checked against the manifest: footer key present, key check values equal."""
    if encryption.get("scheme") != SCHEME:
        raise DataprepError(f"unsupported encryption scheme {encryption.get('scheme')!r}")
    ring = load_key_file(key_file)
    footer = encryption["footer_key_id"]
    if footer not in ring.keys:
        raise DataprepError(
            f"key file {key_file} (key set {ring.key_set}) has no key {footer!r}, the footer "
            f"key every reader needs; this data was encrypted with key set "
            f"{encryption.get('key_set')}"
        )
    check_keys(ring, encryption)
    return ring


class ColumnKms:
    """A KMS client that, asked for a master key the key file lacks, names the columns that
    key protects (a read of such a column that slipped past `readable_columns`)."""

    def __init__(self, client: KmsClient, ring: KeyRing, encryption: dict[str, Any]):
        self._client, self._ring, self._encryption = client, ring, encryption

    def wrap_key(self, key: bytes, master_key_id: str) -> str:
        return self._client.wrap_key(key, master_key_id)

    def unwrap_key(self, wrapped: str, master_key_id: str) -> bytes:
        if master_key_id not in self._ring.keys:
            columns = self._encryption.get("column_keys", {}).get(master_key_id) or ["?"]
            keyed = self._encryption.get("column_keys", {}).values()
            names = [
                *self._encryption.get("plaintext_columns", []),
                *(c for cs in keyed for c in cs),
            ]
            access = readable_columns(self._encryption, self._ring.path, names)
            raise missing_key_error(columns[0], master_key_id, self._ring.path, access.readable)
        return self._client.unwrap_key(wrapped, master_key_id)
