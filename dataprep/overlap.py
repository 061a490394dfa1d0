"""A stage never writes where it reads: refuse an output that is, holds or sits in its input.

Checked on canonical locations (symlinks, `~`, `..`, `file://` and URI spellings resolved)
before anything is touched, by `run_stage` and by recipe validation.
"""

from __future__ import annotations

import fnmatch
import glob
import os
from collections.abc import Sequence

from dataprep.errors import DataprepError
from dataprep.storage import StoragePath, canonical, is_remote, within

# files a stage writes at the top of its output: would a raw-input glob pick them up?
_PROBES = ("part-00000.parquet", ".manifest.json", ".report.json", ".quarantine.jsonl")


def relation(out: str, other: str) -> str | None:
    """How output `out` sits relative to `other`: "is", "lies inside", "contains" or None."""
    a, b = canonical(out), canonical(other)
    if a == b:
        return "is"
    if within(a, b):
        return "lies inside"
    if within(b, a):
        return "contains"
    return None


def check_output(
    out: str | StoragePath,
    *,
    dataset: str | StoragePath | None = None,
    raw: Sequence[str] = (),
    where: str = "",
) -> None:
    """Raise unless `out` is apart from the input dataset and from every raw input pattern."""
    prefix = f"{where}: " if where else ""
    if dataset is not None:
        rel = relation(str(out), str(dataset))
        if rel is not None:
            raise DataprepError(
                f"{prefix}output {out} {rel} the input dataset {dataset}; write to a directory "
                "outside it (a stage never writes into its own input)"
            )
    for pattern in raw:
        rel = _raw_relation(str(out), pattern)
        if rel is not None:
            raise DataprepError(
                f"{prefix}output {out} {rel} raw input {pattern}; write to a directory outside "
                "the inputs (a stage never writes into what it reads)"
            )


def _raw_relation(out: str, pattern: str) -> str | None:
    """A file or directory input overlaps like a dataset; a glob overlaps if `out` holds its
    matches or its matches could include the files the stage writes into `out`."""
    if not glob.has_magic(pattern):
        return relation(out, pattern)
    base, remainder = _split_glob(pattern)
    rel = relation(out, base)
    if rel in ("is", "contains"):
        return f"{rel} the folder of"
    if rel is None:
        return None
    target = canonical(out)
    full = canonical(base).rstrip("/") + "/" + remainder
    if any(_glob_match(full, f"{target}/{probe}", is_remote(pattern)) for probe in _PROBES):
        return "would be matched by"
    if not is_remote(pattern):
        for match in glob.glob(pattern, recursive=True):
            if within(canonical(match), target):
                return "contains files of"
    return None


def _split_glob(pattern: str) -> tuple[str, str]:
    """(folder before the first wildcard, the rest): `raw/*/x.jsonl` -> (`raw`, `*/x.jsonl`)."""
    cut = min(pattern.find(c) for c in "*?[" if c in pattern)
    slash = pattern.rfind("/", 0, cut)
    if slash < 0:
        return ".", pattern
    return pattern[:slash] or "/", pattern[slash + 1 :]


def _glob_match(pattern: str, path: str, remote: bool) -> bool:
    """Local globs match name by name (`**` spans folders); remote ones as `fnmatch`, as the
    input resolver does."""
    if remote:
        return fnmatch.fnmatchcase(path, pattern)
    return _match_parts(pattern.split(os.sep), path.split(os.sep))


def _match_parts(pattern: list[str], path: list[str]) -> bool:
    if not pattern:
        return not path
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_match_parts(rest, path[i:]) for i in range(len(path) + 1))
    return bool(path) and fnmatch.fnmatchcase(path[0], head) and _match_parts(rest, path[1:])
