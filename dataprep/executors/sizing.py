"""How many bytes a run's local inputs hold, from the file system alone (no data library), so
the executor can run a small stage in-process (`LocalExecutor.expect_input`) and the CLI can
leave the fork server unstarted for it."""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence


def local_bytes(paths: Sequence[str], enough: int = 1 << 30) -> int | None:
    """Total size of the files at `paths` (files, folders walked, glob patterns); None when
    unknown: no path, a remote one, or one that is not there. A walk stops once it found
    `enough` bytes: callers only ask "small or not"."""
    total = 0
    for given in paths:
        if "://" in given:
            return None
        found = glob.glob(given, recursive=True) if glob.has_magic(given) else [given]
        for path in found:
            if os.path.isfile(path):
                total += os.path.getsize(path)
            elif not os.path.isdir(path):
                return None  # not there, or a broken link: the run says what is wrong
            for root, _, names in os.walk(path):
                total += sum(_size(os.path.join(root, n)) for n in names)
                if total >= enough:
                    return total
    return total if paths else None


def _size(path: str) -> int:
    """0 for what cannot be sized (a dangling link such as an editor's `.#x` lock file, a file
    gone meanwhile): readers skip or report those, a size hint must not fail the run."""
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
