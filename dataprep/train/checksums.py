"""A checkpoint folder's `checksums.json`: size and xxh3-128 of every other file in it.

Written (and the files fsynced) before the folder is renamed into place, checked before a
resume trusts it: a flipped bit, a truncated copy or a swapped file is found before it can
silently change the run. It guards against damage, not forgery: loading stays weights-only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from dataprep.storage import file_checksum

NAME = "checksums.json"
ALGORITHM = "xxh3_128"  # what `file_checksum` computes: the same hash as a dataset's manifest


class Mismatch(Exception):
    """A folder does not match its checksums; the message names the file and what differs."""


def write(folder: Path) -> None:
    """List every file of `folder` (fsyncing each on the way), then write the list itself."""
    files = {
        p.name: {"size": p.stat().st_size, ALGORITHM: file_checksum(p, sync=True)}
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != NAME
    }
    target = folder / NAME
    with open(target, "w") as f:
        json.dump({"algorithm": ALGORITHM, "files": files}, f, indent=1)
        f.flush()
        os.fsync(f.fileno())


def verify(folder: Path, required: tuple[str, ...]) -> bool:
    """True when `folder` matches its list; False when it has none (written by an older
    version: unverified); raises `Mismatch` otherwise. `required` files must be listed."""
    listing = folder / NAME
    if not listing.exists():
        return False
    try:
        recorded = json.loads(listing.read_text())
        files = {str(k): (int(v["size"]), str(v[ALGORITHM])) for k, v in recorded["files"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise Mismatch(f"{NAME} is unreadable ({exc.__class__.__name__})") from None
    for name in required:
        if name not in files:
            raise Mismatch(f"{name} is not listed in {NAME}")
    present = {p.name for p in folder.iterdir() if p.name != NAME}
    for name in sorted(present - files.keys()):
        raise Mismatch(f"{name} is not listed in {NAME}")
    for name, (size, digest) in sorted(files.items()):
        path = folder / name
        if name not in present or not path.is_file():
            raise Mismatch(f"{name} is missing")
        actual = path.stat().st_size
        if actual != size:
            raise Mismatch(f"{name} has {actual:,} bytes, {size:,} were written")
        if file_checksum(path) != digest:
            raise Mismatch(f"{name} checksum mismatch")
    return True
