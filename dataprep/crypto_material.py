"""External key material: each shard's wrapped data keys, kept beside the data, not in it.

PME wraps every file's data keys with key-encryption keys (KEKs) that the master keys wrap.
With internal key material those wrapped keys sit in the footer, so changing a master key
means rewriting every file. With external key material (Parquet's `_KEY_MATERIAL_FOR_*.json`
files, the format Spark and parquet-mr use) they live in small JSON files, and rotating a
master key rewrites only those: the data pages, and so the manifest checksums, stay as they are.

A dataset keeps them in `DIR/.keys/<generation>/_KEY_MATERIAL_FOR_<shard>.json`; the manifest's
`encryption.key_material.dir` names the live generation. Rotation writes a new generation
beside the old one and switches the manifest (one atomic write), so a kill at any moment leaves
either the old or the new keys opening every shard. pyarrow derives a key material file's
name from the Parquet file's path, so the path given to it is an *anchor* inside the generation
folder (`DIR/.keys/<gen>/<shard>`): only the key material is ever opened through it.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow.fs as pafs

from dataprep.crypto_keys import KmsClient
from dataprep.errors import DataprepError
from dataprep.storage import StoragePath, as_path, resolve

MATERIAL_ROOT = ".keys"
PREFIX = "_KEY_MATERIAL_FOR_"


def material_dir(encryption: dict[str, Any] | None) -> str | None:
    """The live generation folder (relative to the dataset), or None for keys in footers."""
    info = (encryption or {}).get("key_material") or {}
    return info.get("dir") if info.get("storage") == "external" else None


def generation_dir(generation: int) -> str:
    return f"{MATERIAL_ROOT}/{generation}"


def folder(root: str | StoragePath, relative: str) -> StoragePath:
    path = as_path(root)
    for part in relative.split("/"):
        path = path / part
    return path


def anchor(shard: str | StoragePath, relative: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem and the path pyarrow derives `shard`'s key material file from."""
    shard = as_path(shard)
    return resolve(str(folder(shard.parent, relative) / shard.name))


def material_file(root: str | StoragePath, relative: str, shard_name: str) -> StoragePath:
    return folder(root, relative) / f"{PREFIX}{shard_name}.json"


def read_material(path: StoragePath) -> dict[str, str]:
    """One shard's key material: key id in file -> key material (a JSON string)."""
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise DataprepError(
            f"key material {path.name} is missing from {path.parent}: without it shard "
            f"{path.name[len(PREFIX) : -5]} cannot be decrypted by any key"
        ) from None
    except (OSError, ValueError):
        raise DataprepError(f"key material {path} is not readable JSON") from None
    if not isinstance(doc, dict) or not all(isinstance(v, str) for v in doc.values()):
        raise DataprepError(f"key material {path} is damaged (not a map of key material)")
    return doc


def master_ids(material: dict[str, str], where: str) -> set[str]:
    """The master key ids one shard's key material names (no key needed)."""
    ids = set()
    for value in material.values():
        try:
            ids.add(str(json.loads(value)["masterKeyID"]))
        except (ValueError, KeyError, TypeError):
            raise DataprepError(
                f"key material {where} is damaged (an entry names no key)"
            ) from None
    return ids


def rewrap(
    material: dict[str, str],
    old: KmsClient,
    new: KmsClient,
    new_ids: dict[str, str],
) -> dict[str, str]:
    """The same data keys under new master keys: the KEK (double wrapping) or the data key
    (single wrapping) is unwrapped with the old master key and wrapped with its successor.
    The data keys, and with them every data page, are unchanged."""
    out = {}
    for key_id_in_file, text in material.items():
        entry = json.loads(text)
        master = entry["masterKeyID"]
        field = "wrappedKEK" if entry.get("doubleWrapping") else "wrappedDEK"
        key = old.unwrap_key(entry[field], master)
        entry[field] = new.wrap_key(key, new_ids[master])
        entry["masterKeyID"] = new_ids[master]
        out[key_id_in_file] = json.dumps(entry, separators=(",", ":"))
    return out


def check_material(
    root: str | StoragePath, encryption: dict[str, Any], shards: list[str]
) -> str | None:
    """What is wrong with a dataset's key material, checked without any key (for `verify`):
    every shard's file is there, parses, and names only the manifest's master key ids."""
    relative = material_dir(encryption)
    if relative is None:
        return None
    known = {encryption.get("footer_key_id"), *(encryption.get("column_keys") or {})}
    for name in shards:
        path = material_file(root, relative, name)
        try:
            ids = master_ids(read_material(path), str(path))
        except DataprepError as exc:
            return str(exc)
        stray = sorted(ids - known)
        if stray:
            return (
                f"key material of shard {name} names key {stray[0]!r}, which the manifest does "
                "not (a rotation was interrupted or the file was replaced)"
            )
    return None


def missing_material(shard: str | StoragePath, encryption: dict[str, Any]) -> DataprepError | None:
    """Why `shard` cannot be opened when its key material file is gone (else None): asked only
    after an open failed, so a healthy read pays nothing."""
    relative = material_dir(encryption)
    if relative is None:
        return None
    shard = as_path(shard)
    path = material_file(shard.parent, relative, shard.name)
    if path.exists():
        return None
    return DataprepError(
        f"shard {shard.name} cannot be decrypted: its wrapped data keys "
        f"({relative}/{path.name}) are missing; copy a dataset with its .keys/ folder"
    )
