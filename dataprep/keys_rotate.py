"""`dataprep keys rotate`: put a dataset's data keys under new master keys without rewriting it.

Envelope encryption makes this cheap: the data pages are encrypted with data keys, the data
keys with key-encryption keys (KEKs), and only the KEKs with the master keys. Rotation unwraps
each KEK with the old master key and wraps it with the new one, in the shards' external key
material (see `crypto_material`); the shards, their checksums and the manifest's content digest
stay exactly as they were. What it protects against: a master key that leaks or must be retired
(the old key file no longer opens anything once its wrapped copies are gone). What it does not:
a leaked *data key*, which only re-encrypting (`decrypt` + `encrypt`) replaces.

Crash safety: the new key material is written into a new generation folder
(`.keys/<n+1>/`, each file fsynced), checked by opening a shard with the new keys, and only
then does one atomic manifest write switch to it; the old folder is removed last. A kill before
the switch leaves the old keys opening every shard (the half-written folder is unreferenced and
removed by the next rotation), a kill after it the new keys.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataprep.crypto import open_parquet, ring_for
from dataprep.crypto_keys import KeyRing, key_check, key_name, kms_client, load_key_file
from dataprep.crypto_material import (
    MATERIAL_ROOT,
    folder,
    generation_dir,
    material_dir,
    material_file,
    read_material,
    rewrap,
)
from dataprep.errors import DataprepError
from dataprep.layout import MANIFEST, read_manifest, write_manifest
from dataprep.lock import OutputLock
from dataprep.manifest import Manifest
from dataprep.storage import StoragePath, as_path


@dataclass(frozen=True)
class Rotation:
    """What one rotation did: key ids old -> new, and how many bytes it wrote."""

    dataset: str
    shards: int
    keys: dict[str, str]
    key_material: str  # the new generation folder
    bytes_written: int
    dataset_bytes: int
    seconds: float


def key_map(
    ids: list[str], old: KeyRing, new: KeyRing, explicit: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Each old key id's successor in the new key file: `explicit` (`--map OLD=NEW`, ids or
    names), else the new key with the same name (`text-1a2b3c4d` -> `text-9f8e7d6c`)."""
    given = {old.resolve(k): new.resolve(v) for k, v in (explicit or {}).items()}
    out = {}
    for key_id in ids:
        if key_id in given:
            out[key_id] = given[key_id]
            continue
        same = [k for k in new.keys if key_name(k) == key_name(key_id)]
        if key_id == old.footer_key and not same:
            same = [new.footer_key]
        if len(same) != 1:
            raise DataprepError(
                f"key {key_id!r} has no successor in {new.path}: it needs one key named "
                f"{key_name(key_id)!r} (keygen --keys {key_name(key_id)}) or --map {key_id}=NEW_ID"
            )
        out[key_id] = same[0]
    if sorted(out.values()) != sorted(set(out.values())):
        raise DataprepError(f"two old keys map to one new key ({out}); give each its own")
    return out


def rotate(
    root: str | os.PathLike[str] | StoragePath,
    key_file: str | os.PathLike[str],
    new_key_file: str | os.PathLike[str],
    mapping: Mapping[str, str] | None = None,
) -> Rotation:
    """Re-wrap every shard's data keys of dataset `root` from `key_file`'s master keys to
    `new_key_file`'s; the data files are not touched. Raises `DataprepError` (nothing changed)
    when the dataset is not rotatable or a key is missing or wrong."""
    started = time.perf_counter()
    root = as_path(root)
    with OutputLock(root):
        manifest = read_manifest(root)
        old_enc = manifest.encryption
        if old_enc is None:
            raise DataprepError(f"{root} is not encrypted; there is no key to rotate")
        relative = material_dir(old_enc)
        if relative is None:
            raise DataprepError(
                f"{root} keeps its wrapped keys inside each shard's footer (internal key "
                "material), so rotating means rewriting it: `dataprep decrypt`, then `dataprep "
                "encrypt` (its default external key material can be rotated in place)"
            )
        if os.path.abspath(key_file) == os.path.abspath(new_key_file):
            raise DataprepError("--new-key-file is the old key file; make one with `keygen`")
        old = ring_for(key_file, old_enc)
        ids = list(dict.fromkeys([old_enc["footer_key_id"], *old_enc.get("column_keys", {})]))
        lacking = [k for k in ids if k not in old.keys]
        if lacking:
            raise DataprepError(
                f"key file {key_file} has no key {lacking[0]!r}; rotating needs every key of "
                "the dataset (a partial key file cannot rotate)"
            )
        new = load_key_file(new_key_file)
        keys = key_map(ids, old, new, mapping)
        new_enc = _rotated(old_enc, new, keys, relative)
        with _audited(root, key_file, new_key_file, old_enc, new_enc):
            target = folder(root, new_enc["key_material"]["dir"])
            files = (key_file, new_key_file)
            try:
                written = _write_generation(root, manifest, old_enc, new_enc, *files)
                _check_opens(root, manifest, new_enc, new_key_file)
            except BaseException:  # nothing switched: the old keys still open everything
                if target.exists():
                    target.rmtree()
                raise
            rotated = Manifest(
                manifest.schema, manifest.shards, manifest.lineage, new_enc, manifest.metadata
            )
            write_manifest(root, rotated)  # the switch: one atomic write
            written += (root / MANIFEST).size()
        _remove_other_generations(root, new_enc["key_material"]["dir"])
    return Rotation(
        str(root),
        len(manifest.shards),
        keys,
        new_enc["key_material"]["dir"],
        written,
        manifest.bytes,
        round(time.perf_counter() - started, 3),
    )


def _audited(
    root: StoragePath,
    key_file: str | os.PathLike[str],
    new_key_file: str | os.PathLike[str],
    old_enc: dict[str, Any],
    new_enc: dict[str, Any],
) -> AbstractContextManager[None]:
    """The key-use audit log's records of a rotation (when dataprep.audit is installed): the
    old key's log says it was used, the new key's log how the rotation ended."""
    try:
        from dataprep.audit_use import record, use
    except ImportError:
        return nullcontext()
    record("rotate-from", key_file, root, old_enc)
    return use("rotate", new_key_file, root, new_enc)


def _rotated(
    enc: dict[str, Any], new: KeyRing, keys: dict[str, str], relative: str
) -> dict[str, Any]:
    """The manifest's `encryption` after the rotation: new ids, checks, folder, and a record."""
    generation = int(relative.rsplit("/", 1)[-1]) + 1
    column_keys = {keys[k]: cols for k, cols in enc.get("column_keys", {}).items()}
    footer = keys[enc["footer_key_id"]]
    record = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "from_key_set": enc.get("key_set"),
        "to_key_set": new.key_set,
        "keys": keys,
    }
    return {
        **enc,
        "key_set": new.key_set,
        "footer_key_id": footer,
        "column_keys": column_keys,
        "key_checks": {k: key_check(new.get(k), k) for k in dict.fromkeys([footer, *column_keys])},
        "key_material": {**enc["key_material"], "dir": generation_dir(generation)},
        "rotations": [*enc.get("rotations", []), record],
    }


def _write_generation(
    root: StoragePath,
    manifest: Manifest,
    old_enc: dict[str, Any],
    new_enc: dict[str, Any],
    key_file: str | os.PathLike[str],
    new_key_file: str | os.PathLike[str],
) -> int:
    """Write every shard's re-wrapped key material into the new generation folder; bytes."""
    target = folder(root, new_enc["key_material"]["dir"])
    if target.exists():  # an interrupted rotation's: never referenced by the manifest
        target.rmtree()
    kms = old_enc.get("kms", "local")
    old_client, new_client = kms_client(kms, str(key_file)), kms_client(kms, str(new_key_file))
    keys = new_enc["rotations"][-1]["keys"]
    written = 0
    for shard in manifest.shards:
        material = read_material(material_file(root, old_enc["key_material"]["dir"], shard.path))
        data = json.dumps(rewrap(material, old_client, new_client, keys)).encode()
        material_file(root, new_enc["key_material"]["dir"], shard.path).write_atomic(data)
        written += len(data)
    local = target.local()
    if local is not None:  # the new names survive a power cut before the manifest names them
        _fsync_dir(local)
    return written


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_opens(
    root: StoragePath, manifest: Manifest, enc: dict[str, Any], key_file: str | os.PathLike[str]
) -> None:
    """Before switching: the new keys open a shard's footer and one value under each key."""
    shard = next((s for s in manifest.shards if s.rows), None)
    if shard is None:
        return
    file = open_parquet(root / shard.path, key_file, enc)
    for columns in enc.get("column_keys", {}).values():
        if columns:
            next(file.iter_batches(batch_size=1, columns=[columns[0]], use_threads=False), None)


def _remove_other_generations(root: StoragePath, live: str) -> None:
    """Old key material goes once the manifest names the new: with it, the old master key
    would still open the data. Only generation folders under `.keys/` are touched."""
    base = root / MATERIAL_ROOT
    for child in base.iterdir() if base.exists() else []:
        if f"{MATERIAL_ROOT}/{child.name}" != live and child.name.isdigit():
            child.rmtree()
