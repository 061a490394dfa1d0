"""Raw input discovery: files, directories and globs to a list of typed source files.

Missing or unreadable paths stop here, before any work starts, with one sentence each.
"""

from __future__ import annotations

import glob
import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import zstandard

from dataprep.errors import DataprepError

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
        for path, base in _expand(pattern):
            real = os.path.realpath(path)
            if real in seen:
                continue
            detected, compression = detect(path)
            kind = detected if fmt == "auto" else fmt
            if kind is None:
                if os.path.isdir(pattern) or glob.has_magic(pattern):
                    continue  # directories and globs pick out the files we can read
                raise DataprepError(
                    f"cannot tell the format of {path}; name it .jsonl/.csv/.parquet/.txt "
                    "(optionally .zst/.gz) or pass --format"
                )
            if not os.access(path, os.R_OK):
                raise DataprepError(f"input {path} is not readable (check its permissions)")
            seen.add(real)
            stat = os.stat(path)
            name = os.path.relpath(path, base)
            found.append(SourceFile(path, name, kind, compression, stat.st_size, stat.st_mtime_ns))
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


def _static_prefix(pattern: str) -> str:
    parts = []
    for part in Path(pattern).parts:
        if glob.has_magic(part):
            break
        parts.append(part)
    return str(Path(*parts)) if parts else "."


def open_source(source: SourceFile) -> BinaryIO:
    """A binary stream of the decompressed bytes, read incrementally."""
    raw = open(source.path, "rb")
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
    size = os.path.getsize(path)
    cuts = [(0, 1)]
    line = 1
    offset = 0
    target = chunk_bytes
    with open(path, "rb") as f:
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
