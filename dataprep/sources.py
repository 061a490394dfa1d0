"""Raw input discovery: files, directories and globs to a list of typed source files.

Missing or unreadable paths stop here, before any work starts, with one sentence each.
"""

from __future__ import annotations

import fnmatch
import glob
import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import zstandard

from dataprep.errors import DataprepError
from dataprep.storage import StoragePath, is_remote

FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".txt": "text",
    ".text": "text",
    ".md": "text",
}
COMPRESSIONS = {".zst": "zstd", ".zstd": "zstd", ".gz": "gzip"}


@dataclass(frozen=True)
class SourceFile:
    """One input file: where it is, the short name used in ids and quarantine, its format."""

    path: str
    name: str
    format: str
    compression: str | None
    size: int
    mtime_ns: int


def detect(path: str) -> tuple[str | None, str | None]:
    suffixes = [s.lower() for s in Path(path).suffixes]
    compression = COMPRESSIONS.get(suffixes[-1]) if suffixes else None
    if compression:
        suffixes = suffixes[:-1]
    fmt = FORMATS.get(suffixes[-1]) if suffixes else None
    return fmt, compression


def resolve(patterns: list[str], fmt: str = "auto") -> list[SourceFile]:
    """Expand each argument (file, directory — recursively — or glob) in a stable order."""
    if not patterns:
        raise DataprepError("no input given; pass one or more files, directories or globs")
    found: list[SourceFile] = []
    seen: set[str] = set()
    for pattern in patterns:
        for path, base in _expand_remote(pattern) if is_remote(pattern) else _expand(pattern):
            real = path if is_remote(path) else os.path.realpath(path)
            if real in seen:
                continue
            detected, compression = detect(path)
            kind = detected if fmt == "auto" else fmt
            if kind is None:
                if path != pattern:
                    continue  # directories and globs pick out the files we can read
                raise DataprepError(
                    f"cannot tell the format of {path}; name it .jsonl/.csv/.parquet/.txt "
                    "(optionally .zst/.gz) or pass --format"
                )
            if not is_remote(path) and not os.access(path, os.R_OK):
                raise DataprepError(f"input {path} is not readable (check its permissions)")
            seen.add(real)
            size, mtime_ns = StoragePath(path).stat()
            name = os.path.relpath(path, base) if base != path else os.path.basename(path)
            found.append(SourceFile(path, name, kind, compression, size, mtime_ns))
    if not found:
        raise DataprepError(f"no readable input files found in {' '.join(patterns)}")
    return found


def _expand(pattern: str) -> list[tuple[str, str]]:
    if glob.has_magic(pattern):
        matches = sorted(glob.glob(pattern, recursive=True))
        if not matches:
            raise DataprepError(f"input pattern {pattern!r} matches no files")
        base = _static_prefix(pattern)
        return [(m, base) for m in matches if os.path.isfile(m)]
    if os.path.isdir(pattern):
        files = []
        for root, dirs, names in os.walk(pattern):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            files += [os.path.join(root, n) for n in sorted(names) if not n.startswith(".")]
        return [(f, pattern) for f in files]
    if os.path.isfile(pattern):
        return [(pattern, os.path.dirname(pattern) or ".")]
    raise DataprepError(f"input {pattern} does not exist")


def _expand_remote(pattern: str) -> list[tuple[str, str]]:
    """The same rules for a URI: a glob, a directory (every file below it), or one object."""
    location = StoragePath(pattern)
    if glob.has_magic(pattern):
        base = pattern[: min(pattern.find(c) for c in "*?[" if c in pattern)].rsplit("/", 1)[0]
        files = [str(p) for p in StoragePath(base).walk_files()]
        matches = [f for f in files if fnmatch.fnmatchcase(f, pattern)]
        if not matches:
            raise DataprepError(f"input pattern {pattern!r} matches no files")
        return [(m, base) for m in matches]
    if location.is_file():
        return [(str(location), str(location))]
    files = [str(p) for p in location.walk_files()]
    files = [f for f in files if not any(part.startswith(".") for part in f.split("/"))]
    if not files:
        raise DataprepError(f"input {pattern} does not exist")
    return [(f, str(location)) for f in files]


def _static_prefix(pattern: str) -> str:
    parts = []
    for part in Path(pattern).parts:
        if glob.has_magic(part):
            break
        parts.append(part)
    return str(Path(*parts)) if parts else "."


def open_source(source: SourceFile) -> BinaryIO:
    """A binary stream of the decompressed bytes, read incrementally."""
    location = StoragePath(source.path)
    # uncompressed: seekable, so byte ranges of one file can be read by parallel tasks
    raw = location.open_stream() if source.compression else location.open_input()
    if source.compression == "zstd":
        return zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)  # type: ignore[return-value]
    if source.compression == "gzip":
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    return raw


def splittable(source: SourceFile) -> bool:
    """Uncompressed line formats can be cut at newlines into byte ranges read in parallel."""
    return source.compression is None and source.format in ("jsonl", "text-lines")


def line_ranges(path: str, chunk_bytes: int, block: int = 16 << 20) -> list[tuple[int, int, int]]:
    """Cut a file at the first newline after every `chunk_bytes`, in one pass.

    Returns (start, end, first_line) per range, so each range knows its absolute line numbers
    without rereading the file before it.
    """
    location = StoragePath(path)
    size = location.stat()[0]
    cuts = [(0, 1)]
    line = 1
    offset = 0
    target = chunk_bytes
    with location.open_stream() as f:
        while data := f.read(block):
            pos = 0
            while target < offset + len(data) and target < size:
                cut = data.find(b"\n", max(target - offset, pos))
                if cut < 0:
                    break
                line += data.count(b"\n", pos, cut + 1)
                pos = cut + 1
                if offset + pos < size:
                    cuts.append((offset + pos, line))
                target = offset + pos + chunk_bytes
            line += data.count(b"\n", pos)
            offset += len(data)
    ranges = []
    for i, (start, first_line) in enumerate(cuts):
        end = cuts[i + 1][0] if i + 1 < len(cuts) else size
        ranges.append((start, end, first_line))
    return ranges
