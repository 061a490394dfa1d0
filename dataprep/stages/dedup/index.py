"""A persistent, checksummed band index of kept rows, for incremental dedup.

Layout of an index directory (written to a temporary sibling, renamed into place, and
`index.json` checksums every file, so a half-written or edited index is refused):

    index.json        format, params that must match, rows, per-file bytes + xxh3-128
    band-NNN.keys     sorted uint64 band keys     band-NNN.ids   int64 index row per key
    exact.keys        sorted 16-byte fingerprints exact.ids      int64 index row per key
    sig.u32           (rows, num_perm) uint32 signatures, for --verify against the index
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dataprep.arrays import map_file
from dataprep.dataset import file_checksum
from dataprep.errors import DataprepError
from dataprep.storage import StoragePath, copy_file

from .buckets import EXACT_DTYPE

FORMAT = "dataprep.dedup-index"
VERSION = 1
INDEX_FILE = "index.json"
MATCHING = ("num_perm", "bands", "rows", "seed", "ngram", "char_ngram", "signature", "normalize")


def index_params(config: Any, bands: int, rows: int) -> dict[str, Any]:
    return {
        "method": config.method,
        "num_perm": config.num_perm,
        "bands": bands,
        "rows": rows,
        "seed": config.seed,
        "ngram": config.ngram,
        "char_ngram": config.char_ngram,
        "signature": config.signature,
        "normalize": list(config.normalize),
        "columns": config.fingerprint_columns,
    }


def band_name(band: int) -> str:
    return "exact" if band < 0 else f"band-{band:03d}"


@dataclass
class SavedIndex:
    path: StoragePath
    meta: dict[str, Any]

    @property
    def rows(self) -> int:
        return int(self.meta["rows"])

    @property
    def params(self) -> dict[str, Any]:
        return self.meta["params"]

    def has(self, band: int) -> bool:
        return f"{band_name(band)}.keys" in self.meta["files"]

    def keys(self, band: int) -> np.ndarray:
        dtype = EXACT_DTYPE if band < 0 else np.uint64
        return map_file(self.path / f"{band_name(band)}.keys", dtype)

    def ids(self, band: int) -> np.ndarray:
        return map_file(self.path / f"{band_name(band)}.ids", np.int64)

    def signatures(self) -> np.ndarray | None:
        if "sig.u32" not in self.meta["files"]:
            return None
        flat = map_file(self.path / "sig.u32", np.uint32)
        return flat.reshape(-1, int(self.params["num_perm"]))


def open_index(path: str | Path | StoragePath, check: bool = True) -> SavedIndex:
    """Read and (by default) checksum an index; one clear error if it is not usable."""
    root = StoragePath(path)
    try:
        meta = json.loads((root / INDEX_FILE).read_text())
    except (FileNotFoundError, NotADirectoryError):
        expects = f"it expects the directory a dedup --index-out wrote (holding {INDEX_FILE})"
        if root.is_file():
            raise DataprepError(f"--against {root} is a file; {expects}") from None
        if not root.exists():
            raise DataprepError(f"--against {root} does not exist; {expects}") from None
        raise DataprepError(
            f"--against {root} is not a dedup index (no {INDEX_FILE}); create one with --index-out"
        ) from None
    except json.JSONDecodeError:
        raise DataprepError(f"{root}/{INDEX_FILE} is corrupt; rebuild the index") from None
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise DataprepError(f"{root} is not a version-{VERSION} dedup index")
    if check:
        for name, info in meta["files"].items():
            file = root / name
            if not file.is_file() or file.size() != info["bytes"]:
                raise DataprepError(f"dedup index {root}: {name} is missing or truncated")
            if file_checksum(file) != info["xxh3_128"]:
                raise DataprepError(f"dedup index {root}: {name} fails its checksum")
    return SavedIndex(root, meta)


def check_compatible(index: SavedIndex, params: dict[str, Any]) -> None:
    """The new run must hash exactly as the index did, or its keys mean nothing."""
    saved = index.params
    wants_minhash = params["method"] in ("minhash", "both")
    wants_exact = params["method"] in ("exact", "both")
    if wants_exact and not index.has(-1):
        raise DataprepError(
            f"dedup index {index.path} has no exact fingerprints; "
            "use --method minhash or rebuild the index with exact"
        )
    if wants_exact and saved["normalize"] != params["normalize"]:
        raise DataprepError(
            f"dedup index {index.path} was built with --normalize "
            f"{','.join(saved['normalize']) or 'raw'}; use the same"
        )
    if wants_exact and saved["columns"] != params["columns"]:
        raise DataprepError(
            f"dedup index {index.path} fingerprints columns "
            f"{','.join(saved['columns'])}; use the same --columns"
        )
    if wants_minhash:
        if not index.has(0):
            raise DataprepError(
                f"dedup index {index.path} has no MinHash bands; "
                "use --method exact or rebuild the index with minhash"
            )
        for key in MATCHING:
            if saved.get(key) != params.get(key):
                raise DataprepError(
                    f"dedup index {index.path} was built with {key}={saved.get(key)!r}, "
                    f"this run has {params.get(key)!r}; use the same settings"
                )


def staging_dir(work: StoragePath) -> StoragePath:
    """Where index tasks write: inside the stage's work dir, so a resumed run finds the
    files of the index tasks it skips."""
    staging = work / "index"
    staging.mkdir()
    return staging


def finish(
    staging: StoragePath, target: str | StoragePath, params: dict[str, Any], rows: int
) -> None:
    """Checksum every file, write index.json, and move the index into place.

    Locally the staged directory is renamed over the target. On an object store, where
    directories cannot be renamed, index.json is the commit marker: the old one is deleted
    first, the files are copied, and the new index.json is written last.
    """
    target = StoragePath(target)
    staged = [  # not the tasks' checksum lists (`scratch.seal`)
        p
        for p in staging.iterdir()
        if p.is_file() and p.name != INDEX_FILE and not p.name.endswith(".sums")
    ]
    files = {p.name: {"bytes": p.size(), "xxh3_128": file_checksum(p)} for p in staged}
    for seal in staging.iterdir():  # checked before the tasks were trusted: not index files
        if seal.name.endswith(".sums"):
            seal.unlink()
    meta = {"format": FORMAT, "version": VERSION, "params": params, "rows": rows, "files": files}
    check_target(target)
    local, staged_local = target.local(), staging.local()
    if local is None or staged_local is None:
        (target / INDEX_FILE).unlink()
        for old in target.iterdir():
            old.unlink()
        for file in staged:
            copy_file(file, target / file.name)
        (target / INDEX_FILE).write_atomic(json.dumps(meta, indent=2))
        return
    (staging / INDEX_FILE).write_atomic(json.dumps(meta, indent=2))
    local.parent.mkdir(parents=True, exist_ok=True)
    tmp = local.with_name(f".{local.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.move(str(staged_local), str(tmp))  # a copy across filesystems, a rename within one
    if local.exists():
        shutil.rmtree(local)
    os.replace(tmp, local)


def check_target(target: str | Path | StoragePath) -> None:
    """Refuse to replace a directory that is not a dedup index (checked before any work)."""
    target = StoragePath(target)
    if target.exists() and not (target / INDEX_FILE).is_file():
        if target.is_dir() and not target.iterdir():
            return
        raise DataprepError(
            f"--index-out {target} exists and is not a dedup index; choose a new path"
        )
