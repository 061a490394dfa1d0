"""A user error raised in a rank, passed to the launcher as a file instead of a traceback.

The rank that raises a `DataprepError` writes its sentence into a folder the launcher made for
this launch and exits with `USER_ERROR_EXIT`; the launcher, once the ranks are gone, raises it
again as the one sentence the user sees. A peer whose collective broke because that rank left
exits the same way, quietly. Such an error fails the same way on every try, so it is not
retried.
"""

from __future__ import annotations

import os
from pathlib import Path

from dataprep.errors import DataprepError

USER_ERROR_EXIT = 86  # a rank stopped on a user error (written to the launch's folder)


class RunRefused(DataprepError):
    """Raised on every rank at once, after a collective decision: the worker returns the
    message instead of crashing, and the launcher stops with it as one sentence."""


def report(folder: Path, rank: int, message: str) -> None:
    """Write `message` for `rank` atomically: the launcher never reads half a sentence."""
    tmp = folder / f".rank{rank}.tmp"
    tmp.write_text(message)
    os.replace(tmp, folder / f"rank{rank}.txt")


def reported(folder: Path | None) -> str | None:
    """The lowest rank's sentence, or None when no rank reported a user error."""
    if folder is None:
        return None
    found = sorted(folder.glob("rank*.txt"), key=lambda p: int(p.stem.removeprefix("rank")))
    return found[0].read_text() if found else None
