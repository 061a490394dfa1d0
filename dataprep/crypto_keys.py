"""Key files, KMS clients and key check values: everything that touches key material.

Split from `dataprep.crypto` (which re-exports these names and builds pyarrow's encryption and
decryption properties from them), so the code that holds keys is small enough to review alone.
Errors name key files and key *ids*, never keys.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyarrow.parquet.encryption as pe

from dataprep.errors import DataprepError

KEY_FILE_FORMAT = "dataprep.keys"
KEY_BYTES = 32  # AES-256 master keys
_NONCE = 12


# --- key files -----------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyRing:
    """The keys of one key file. `repr` never shows key material.

    `column_key` is the default key for columns named without one; a partial key file (see
    `export_subset`) may lack it (None). Every key file holds the footer key: PME encrypts the
    footer (schema, row groups) with it, so no column is readable without it."""

    path: str
    key_set: str
    footer_key: str
    column_key: str | None
    keys: dict[str, bytes] = field(repr=False)

    def get(self, key_id: str) -> bytes:
        if key_id not in self.keys:
            raise DataprepError(
                f"key file {self.path} (key set {self.key_set}) has no key {key_id!r}; "
                "use the key file this data was encrypted with"
            )
        return self.keys[key_id]

    def resolve(self, ref: str) -> str:
        """A key id from `ref`: the id itself, or a key name (the id without its `-hex`
        suffix: `label` for `label-1a2b3c4d`) that names exactly one key in this file."""
        if ref in self.keys:
            return ref
        found = [k for k in self.keys if key_name(k) == ref]
        if len(found) == 1:
            return found[0]
        raise DataprepError(
            f"key file {self.path} (key set {self.key_set}) has no key {ref!r} "
            f"(keys: {', '.join(sorted(self.keys))})"
        )


_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,47}$")


def key_name(key_id: str) -> str:
    """A key's name: its id without the random suffix keygen adds (`text-1a2b3c4d` -> `text`).
    Rotation maps old ids to new ones by name, so `text` stays `text` across key files."""
    stem, _, suffix = key_id.rpartition("-")
    return stem if stem and re.fullmatch(r"[0-9a-f]{8}", suffix) else key_id


def generate_key_file(path: str | os.PathLike[str], names: Sequence[str] = ()) -> KeyRing:
    """Write a new key file (mode 0600) with a footer key and column master keys; never
    overwrite. `names` (default: one key named `column`) become ids `NAME-<8 hex>`; the first
    is the default column key."""
    names = list(names) or ["column"]
    bad = [n for n in names if not _ID.match(n) or n == "footer"]
    if bad or len(set(names)) != len(names):
        raise DataprepError(
            f"--keys {','.join(names)}: key names are distinct words of letters, digits, "
            "'.' and '_' (up to 48), and 'footer' is taken"
        )
    ids = [f"{n}-{secrets.token_hex(4)}" for n in ["footer", *names]]
    ring = KeyRing(
        str(path),
        "ks-" + secrets.token_hex(8),
        ids[0],
        ids[1],
        {k: secrets.token_bytes(KEY_BYTES) for k in ids},
    )
    write_key_file(path, ring)
    return ring


def export_subset(
    source: str | os.PathLike[str], refs: Sequence[str], out: str | os.PathLike[str]
) -> KeyRing:
    """A partial key file: the footer key (every reader needs it) and the named column keys,
    same ids and key set, so it opens exactly the columns under those keys."""
    ring = load_key_file(source)
    chosen = [ring.resolve(r) for r in refs]
    if ring.footer_key in chosen:
        raise DataprepError(
            f"{ring.footer_key} is the footer key, which a partial key file always holds; "
            "name column keys"
        )
    ids = [ring.footer_key, *dict.fromkeys(chosen)]
    default = ring.column_key if ring.column_key in ids else None
    subset = KeyRing(
        str(out), ring.key_set, ring.footer_key, default, {k: ring.keys[k] for k in ids}
    )
    write_key_file(out, subset)
    return subset


def write_key_file(path: str | os.PathLike[str], ring: KeyRing) -> None:
    """Create `path` (mode 0600) with `ring`'s keys; refuses an existing file."""
    target = Path(path)
    doc = {
        "format": KEY_FILE_FORMAT,
        "version": 1,
        "kms": "local",
        "key_set": ring.key_set,
        "footer_key": ring.footer_key,
        "column_key": ring.column_key,
        "keys": {k: base64.b64encode(v).decode() for k, v in ring.keys.items()},
    }
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise DataprepError(
            f"{target} already exists; keygen never overwrites keys (data encrypted with them "
            "would become unreadable): choose another path"
        ) from None
    except OSError as exc:
        raise DataprepError(f"cannot create key file {target}: {exc.strerror}") from None
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        json.dump(doc, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


def load_key_file(path: str | os.PathLike[str]) -> KeyRing:
    """Read and check a key file; errors name the file and what is wrong, never a key."""
    target = Path(path)
    if not target.is_file():
        raise DataprepError(
            f"key file {target} does not exist; create one with `dataprep keygen -o {target}`"
        )
    try:
        doc = json.loads(target.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise DataprepError(f"key file {target} is not a readable JSON key file") from None
    if not isinstance(doc, dict) or doc.get("format") != KEY_FILE_FORMAT:
        raise DataprepError(f"{target} is not a dataprep key file (made by `dataprep keygen`)")
    try:
        keys = {str(k): base64.b64decode(v, validate=True) for k, v in doc["keys"].items()}
        column = doc.get("column_key")
        ring = KeyRing(str(target), str(doc["key_set"]), doc["footer_key"], column, keys)
    except (KeyError, TypeError, AttributeError, ValueError):
        raise DataprepError(f"key file {target} is damaged (missing or malformed fields)") from None
    bad = [k for k, v in keys.items() if len(v) not in (16, 24, 32)]
    if bad or ring.footer_key not in keys or (column is not None and column not in keys):
        raise DataprepError(f"key file {target} is damaged (a key is missing or has a bad size)")
    return ring


# --- KMS clients ---------------------------------------------------------------------------


class KmsClient(Protocol):
    """Wraps and unwraps PME data keys with a master key that never leaves the KMS."""

    def wrap_key(self, key: bytes, master_key_id: str) -> str: ...

    def unwrap_key(self, wrapped: str, master_key_id: str) -> bytes: ...


class LocalKeyFileKms:
    """Master keys from a local key file; wrapping is AES-GCM with the key id as AAD."""

    def __init__(self, ring: KeyRing):
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._ring = ring
        self._aead = AESGCM

    def wrap_key(self, key: bytes, master_key_id: str) -> str:
        nonce = os.urandom(_NONCE)
        sealed = self._aead(self._ring.get(master_key_id)).encrypt(
            nonce, key, master_key_id.encode()
        )
        return base64.b64encode(nonce + sealed).decode()

    def unwrap_key(self, wrapped: str, master_key_id: str) -> bytes:
        from cryptography.exceptions import InvalidTag

        master = self._ring.get(master_key_id)
        raw = base64.b64decode(wrapped)
        try:
            return self._aead(master).decrypt(raw[:_NONCE], raw[_NONCE:], master_key_id.encode())
        except InvalidTag:
            raise DataprepError(
                f"key {master_key_id!r} in {self._ring.path} does not unwrap this data's keys "
                "(wrong key file, or the file was changed)"
            ) from None


KMS_CLIENTS: dict[str, Callable[[str], KmsClient]] = {
    "local": lambda key_file: LocalKeyFileKms(load_key_file(key_file)),
}


def kms_client(kind: str, key_file: str) -> KmsClient:
    if kind not in KMS_CLIENTS:
        raise DataprepError(f"unknown KMS {kind!r}; known: {', '.join(sorted(KMS_CLIENTS))}")
    return KMS_CLIENTS[kind](key_file)


class _PyarrowKms(pe.KmsClient):
    """Adapter: pyarrow calls this; it delegates to one of our `KmsClient`s."""

    def __init__(self, client: KmsClient):
        pe.KmsClient.__init__(self)
        self._client = client

    def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> str:
        return self._client.wrap_key(key_bytes, master_key_identifier)

    def unwrap_key(self, wrapped_key: str, master_key_identifier: str) -> bytes:
        return self._client.unwrap_key(wrapped_key, master_key_identifier)


def _factory(client: KmsClient) -> pe.CryptoFactory:
    """A fresh factory per call: its key caches never outlive the key file that filled them."""
    return pe.CryptoFactory(lambda _config: _PyarrowKms(client))


# --- key checks ----------------------------------------------------------------------------

_CHECK_LABEL = b"dataprep key check v1\0"


def key_check(key: bytes, key_id: str) -> str:
    """A key check value: HMAC-SHA256 of a constant under the master key, first 128 bits.

    Recorded in the manifest at encrypt time, it tells a wrong key from the right one before
    pyarrow unwraps anything (a wrong column key found inside pyarrow's metadata code aborts
    the process). A MAC output reveals nothing usable about the key."""
    return hmac.new(key, _CHECK_LABEL + key_id.encode(), hashlib.sha256).hexdigest()[:32]


def check_keys(ring: KeyRing, encryption: dict[str, Any]) -> None:
    """Compare each key the manifest names with its recorded check value (when it has one)."""
    checks = encryption.get("key_checks") or {}
    roles = {encryption["footer_key_id"]: "the footer and schema"}
    for key_id, columns in encryption.get("column_keys", {}).items():
        roles[key_id] = f"columns {', '.join(columns)}" if columns else "no column"
    for key_id, role in roles.items():
        expected = checks.get(key_id)
        if expected is not None and key_id in ring.keys:
            if not hmac.compare_digest(key_check(ring.keys[key_id], key_id), str(expected)):
                raise DataprepError(
                    f"key {key_id!r} ({role}) in {ring.path} does not unwrap this data's keys: "
                    "it is not the key the data was encrypted with (its check value differs); "
                    "use the key file the data was encrypted with"
                )
