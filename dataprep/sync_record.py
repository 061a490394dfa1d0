"""What `sync` knows about a destination without reading its files: one listing of names,
sizes and mtimes, which names belong to a dataset, and `.sync.json`, the record of the files a
sync verified there (see `dataprep.sync`).
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import pyarrow.fs as pafs

from dataprep.layout import MANIFEST_NAMES, OLD_NAMES, WORK_DIR
from dataprep.lock import is_lock_file
from dataprep.storage import StoragePath, resolve

RECORD = ".sync.json"  # what sync verified at DST; never copied onward
_SAVE_EVERY_S = 2.0


@dataclass(frozen=True)
class Wanted:
    """One file DST must end up holding, byte for byte."""

    name: str
    bytes: int
    xxh3_128: str
    shard: bool = True


# -- listing and the record -------------------------------------------------------------------


def listing(root: StoragePath) -> dict[str, tuple[int, int]]:
    """Every file below `root` as {relative name: (size, mtime_ns)}, in one listing."""
    if root.local() is not None and not os.path.isdir(str(root)):
        return {}
    filesystem, path = resolve(str(root))
    selector = pafs.FileSelector(path, allow_not_found=True, recursive=True)
    base = path.strip("/")
    cut = len(base) + 1 if base else 0
    found = {}
    for info in filesystem.get_file_info(selector):
        if info.type == pafs.FileType.File:
            found[info.path.lstrip("/")[cut:]] = (int(info.size), int(info.mtime_ns or 0))
    return found


def is_side_file(name: str) -> bool:
    """A file beside the shards that belongs to the dataset and travels with it."""
    return not (
        name in MANIFEST_NAMES
        or name == RECORD
        or name.split("/", 1)[0] == WORK_DIR
        or is_lock_file(name.rsplit("/", 1)[-1])
        or ".tmp-" in name.rsplit("/", 1)[-1]
    )


def is_dataset_file(name: str) -> bool:
    """What `--delete` may remove: shards and the side files dataprep writes, nothing else."""
    from dataprep.tokenizer import FILE_NAME

    return "/" not in name and (
        name.endswith(".parquet") or name in {*OLD_NAMES, *OLD_NAMES.values(), FILE_NAME}
    )


def load_record(dst: StoragePath) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads((dst / RECORD).read_text())
        return {k: v for k, v in data["files"].items() if isinstance(v, dict)}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


class Record:
    """The record, updated from worker threads and saved from the main one. A copied file's
    mtime is taken from a listing of DST (as the next sync will see it: a HEAD may round it
    differently), so copies wait in `pending` until the next save lists DST."""

    def __init__(self, dst: StoragePath):
        self.dst = dst
        self.files = load_record(dst)
        self.pending: dict[str, Wanted] = {}
        self.lock = threading.Lock()
        self.saved = time.monotonic()

    def note(self, want: Wanted, stat: tuple[int, int] | None = None) -> None:
        with self.lock:
            if stat is None:
                self.pending[want.name] = want
            else:
                self.files[want.name] = _entry(want, stat)

    def matches(self, want: Wanted, stat: tuple[int, int]) -> bool:
        return self.files.get(want.name) == _entry(want, stat) and stat[0] == want.bytes

    def save(self, force: bool = False) -> None:
        if not force and time.monotonic() - self.saved < _SAVE_EVERY_S:
            return
        with self.lock:
            pending, self.pending = self.pending, {}
        if not pending and not force:
            return
        listed = listing(self.dst) if pending else {}
        with self.lock:
            for name, want in pending.items():
                if name in listed:
                    self.files[name] = _entry(want, listed[name])
            text = json.dumps({"files": self.files}, indent=1, sort_keys=True) + "\n"
        (self.dst / RECORD).write_atomic(text)
        self.saved = time.monotonic()


def _entry(want: Wanted, stat: tuple[int, int]) -> dict[str, Any]:
    return {"xxh3_128": want.xxh3_128, "bytes": stat[0], "mtime_ns": stat[1]}
