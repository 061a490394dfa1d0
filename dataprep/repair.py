"""`verify --repair-from BACKUP`: replace a dataset's missing or corrupt shards from a backup.

DIR's own manifest is the only judge: a backup copy is used only when its bytes hash to the
checksum DIR's manifest records (the backup's manifest is not consulted, so any copy of the
files will do, an older sync included). A shard that already matches is never touched. The
copy is built beside the shard (or in a local spool for a remote DIR) and moved into place
only once checked, then re-read; finally the whole dataset is verified as `verify` does.

An encrypted dataset's key material files (`.keys/N/`, each shard's wrapped data keys) have
no checksum in the manifest: a missing or damaged one is replaced by the backup's copy at the
same place when that copy parses and names only the manifest's keys (what can be checked
without a key).
"""

from __future__ import annotations

import functools
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dataprep.errors import DataprepError, VerifyError, short_error
from dataprep.layout import iter_shard_paths, read_manifest
from dataprep.lock import OutputLock
from dataprep.manifest import Manifest, ShardEntry
from dataprep.overlap import relation
from dataprep.storage import StoragePath, as_path, file_checksum
from dataprep.sync import CopyMismatch, copy_checked
from dataprep.sync_record import Wanted
from dataprep.verify import verify_dataset


@dataclass(frozen=True)
class Repair:
    """One shard that was not as DIR's manifest says, and what became of it."""

    shard: str
    problem: str  # "missing", "size 10 != manifest 12", "checksum mismatch"
    action: str  # "replaced", "refused" (backup copy differs), "unavailable" (not in backup)
    detail: str = ""


@dataclass
class RepairResult:
    dataset: str
    backup: str
    shards: int = 0
    rows: int = 0
    repairs: list[Repair] = field(default_factory=list)
    error: str | None = None  # why the dataset still does not verify

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "dataset": self.dataset,
            "backup": self.backup,
            "shards": self.shards,
            "rows": self.rows,
            "replaced": [r.shard for r in self.repairs if r.action == "replaced"],
            "repairs": [vars(r) for r in self.repairs],
            "error": self.error,
        }


def shard_problem(shard: ShardEntry, path: StoragePath) -> str | None:
    """Why the file at `path` is not the shard its manifest entry describes, if it is not."""
    if not path.is_file():
        return "missing"
    size = path.size()
    if size != shard.bytes:
        return f"size {size} != manifest {shard.bytes}"
    if file_checksum(path) != shard.xxh3_128:
        return "checksum mismatch"
    return None


def repair_dataset(
    root: str | Path | StoragePath, backup: str | Path | StoragePath, workers: int = 4
) -> RepairResult:
    """Check every shard of `root`, replace bad ones from `backup`, then verify `root`."""
    root, backup = as_path(root), as_path(backup)
    if relation(str(backup), str(root)) == "is":
        raise DataprepError(
            f"--repair-from {backup} is the dataset itself; name a backup copy of it (such as "
            "the target of `dataprep sync`)"
        )
    manifest = read_manifest(root)  # a missing manifest is not repairable here: sync restores
    with OutputLock(root):  # no stage or sync writes DIR meanwhile
        return _repair(root, backup, manifest, workers)


def _repair(
    root: StoragePath, backup: StoragePath, manifest: Manifest, workers: int
) -> RepairResult:
    result = RepairResult(str(root), str(backup))
    pairs = list(iter_shard_paths(root, manifest))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="repair") as pool:
        found = list(pool.map(lambda pair: _fix(pair[0], pair[1], backup), pairs))
        if manifest.encryption is not None:  # each shard's wrapped data keys, beside it
            names = [s.path for s in manifest.shards]
            fix = functools.partial(_fix_material, root, backup, manifest.encryption)
            found += pool.map(fix, names)
    result.repairs = [r for r in found if r is not None]
    failed = [r for r in result.repairs if r.action != "replaced"]
    if failed:
        names = "; ".join(f"{r.shard}: {r.detail}" for r in failed[:5])
        result.error = f"{len(failed)} file(s) of {root} could not be repaired ({names})"
        return result
    try:
        verified = verify_dataset(root)
    except VerifyError as exc:
        result.error = f"{root} still fails verification after repair: {exc}"
        return result
    result.shards, result.rows = verified.shards, verified.rows
    return result


def _fix(shard: ShardEntry, path: StoragePath, backup: StoragePath) -> Repair | None:
    problem = shard_problem(shard, path)
    if problem is None:
        return None  # a good shard: never overwritten
    copy = backup / shard.path
    if not copy.is_file():
        return Repair(shard.path, problem, "unavailable", f"{backup} has no {shard.path}")
    want = Wanted(shard.path, shard.bytes, shard.xxh3_128)
    try:
        copy_checked(copy, path, want, stage_remote=True)
    except CopyMismatch:
        return Repair(
            shard.path,
            problem,
            "refused",
            f"the backup copy {copy} does not match {shard.path}'s checksum in the manifest",
        )
    except (DataprepError, OSError) as exc:
        return Repair(shard.path, problem, "unavailable", f"copy failed: {short_error(exc)}")
    return Repair(shard.path, problem, "replaced", f"from {copy}")


def _fix_material(
    root: StoragePath, backup: StoragePath, encryption: dict[str, Any], shard: str
) -> Repair | None:
    """A shard's key material file, when missing or damaged, from the backup's copy at the same
    place; the copy must parse and name only the manifest's keys (no key is needed to check)."""
    from dataprep.crypto_material import material_dir, material_file

    relative = material_dir(encryption)
    if relative is None:
        return None  # keys in the footers: the shard's checksum covers them
    known = {encryption.get("footer_key_id"), *(encryption.get("column_keys") or {})}
    path = material_file(root, relative, shard)
    name = path.relative_to(root)
    try:
        problem = _material_problem(path.read_bytes(), known)
    except FileNotFoundError:
        problem = "missing"
    if problem is None:
        return None
    copy = material_file(backup, relative, shard)
    try:
        data = copy.read_bytes()
    except OSError:
        return Repair(name, problem, "unavailable", f"{backup} has no {name}")
    refused = _material_problem(data, known)
    if refused is not None:
        return Repair(name, problem, "refused", f"the backup copy {copy} is {refused}")
    path.write_atomic(data)
    return Repair(name, problem, "replaced", f"from {copy}")


def _material_problem(data: bytes, known: set[Any]) -> str | None:
    """Why these bytes are not usable key material for this manifest, if they are not."""
    from dataprep.crypto_material import master_ids

    try:
        doc = json.loads(data)
        if not isinstance(doc, dict) or not all(isinstance(v, str) for v in doc.values()):
            return "damaged (not a map of key material)"
        stray = sorted(master_ids(doc, "key material") - known)
    except (ValueError, DataprepError):
        return "damaged (not key material JSON)"
    return f"naming key {stray[0]!r}, which the manifest does not" if stray else None
