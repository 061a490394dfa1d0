"""Raw input discovery: files, directories and globs to a list of typed source files.

Missing or unreadable paths stop here, before any work starts, with one sentence each.
"""

from __future__ import annotations

import io
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

import zstandard

from dataprep.errors import DataprepError
from dataprep.storage import StoragePath, glob_files, is_remote
from dataprep.uri import glob_base, is_glob

FORMATS = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",  # JSON Lines as C4 ships it (.json.gz); one JSON array: a sentence
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
    name = path.rstrip("/").rsplit("/", 1)[-1].lstrip(".").lower()
    suffixes = ["." + s for s in name.split(".")[1:]]  # as Path.suffixes, without its cost
    compression = COMPRESSIONS.get(suffixes[-1]) if suffixes else None
    if compression:
        suffixes = suffixes[:-1]
    fmt = FORMATS.get(suffixes[-1]) if suffixes else None
    return fmt, compression


def resolve(
    patterns: list[str], fmt: str = "auto", links: dict[str, str] | None = None
) -> list[SourceFile]:
    """Expand each argument (file, directory — recursively — or glob) in a stable order.

    A file reached by several paths (a symlink beside its target, a file given twice) is read
    once, under the path that is not a link when there is one: the same bytes twice would be
    duplicate documents. Each path left out is put in `links` as {its name: the name kept}.
    """
    if not patterns:
        raise DataprepError("no input given; pass one or more files, directories or globs")
    found: list[SourceFile] = []
    by_file: dict[object, int] = {}  # the file (device and inode; a URI) -> index in `found`
    direct: set[object] = set()  # files whose kept path is not a symlink
    unnamed = 0  # files a directory or glob held whose name says no format
    for pattern in patterns:
        remote = is_remote(pattern)
        expand = _expand_glob if is_glob(pattern) else _expand_remote if remote else _expand
        for path, base in expand(pattern):
            name = _name(path, base)
            detected, compression = detect(path)
            kind = detected if fmt == "auto" else fmt
            if fmt == "auto" and _folder_metadata(path, pattern, compression):
                kind = None
            if kind is None:
                if path != pattern:
                    unnamed += 1
                    continue  # directories and globs pick out the files we can read
                raise DataprepError(
                    f"cannot tell the format of {path}; name it .jsonl/.csv/.parquet/.txt "
                    "(optionally .zst/.gz) or pass --format"
                )
            if kind == "parquet" and compression:
                raise DataprepError(
                    f"input {path} is a compressed Parquet file; Parquet compresses its own "
                    "pages, so decompress the file first"
                )
            stat = None if remote else _stat(path)
            real: object = path if stat is None else (stat.st_dev, stat.st_ino)
            linked = not remote and os.path.islink(path)
            if real in by_file:
                kept = found[by_file[real]]
                same_kind = (kept.format, kept.compression) == (kind, compression)
                if real not in direct and not linked and same_kind:  # the file replaces its link
                    direct.add(real)
                    found[by_file[real]] = replace(kept, path=path, name=name)
                    name, kept = kept.name, found[by_file[real]]
                if links is not None and name != kept.name:
                    links[name] = kept.name
                continue
            if not is_remote(path) and not os.access(path, os.R_OK):
                raise DataprepError(f"input {path} is not readable (check its permissions)")
            if not linked:
                direct.add(real)
            by_file[real] = len(found)
            size, mtime_ns = (stat.st_size, stat.st_mtime_ns) if stat else StoragePath(path).stat()
            found.append(SourceFile(path, name, kind, compression, size, mtime_ns))
    if not found:
        hint = (
            f" ({unnamed} files without a .jsonl/.csv/.parquet/.txt name, or plain .json, which "
            "a folder's walk leaves out as metadata: name them, or a glob such as DIR/*.json; "
            "pass --format text to read each as one document)"
            if unnamed
            else ""
        )
        raise DataprepError(f"no readable input files found in {' '.join(patterns)}{hint}")
    return found


def _folder_metadata(path: str, pattern: str, compression: str | None) -> bool:
    """A plain `.json` a folder's walk found: metadata (`dataprep sample`'s corpus.json,
    Hugging Face's dataset_info.json) more often than rows; named or globbed, or compressed
    (C4's `.json.gz`), it is JSON Lines."""
    plain = compression is None and path.lower().endswith(".json")
    return plain and path != pattern and not is_glob(pattern)


def _stat(path: str) -> os.stat_result:
    try:
        return os.stat(path)
    except OSError as exc:
        what = "is a broken link" if os.path.islink(path) else f"cannot be read ({exc.strerror})"
        raise DataprepError(f"input {path} {what}") from None


def _name(path: str, base: str) -> str:
    """The short name used in ids: the path below the directory or glob prefix given."""
    if base == path:
        return os.path.basename(path)
    prefix = base.rstrip(os.sep) + os.sep
    return path[len(prefix) :] if path.startswith(prefix) else os.path.relpath(path, base)


def _expand_glob(pattern: str) -> list[tuple[str, str]]:
    pattern = pattern if is_remote(pattern) else os.path.expanduser(pattern)
    matches = [str(p) for p in glob_files(pattern)]
    if not matches:
        raise DataprepError(f"input pattern {pattern!r} matches no files")
    return [(m, glob_base(pattern)) for m in matches]


def _expand(pattern: str) -> list[tuple[str, str]]:
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
    """The same rules for a URI: a directory (every file below it), or one object."""
    location = StoragePath(pattern)
    if location.is_file():
        return [(str(location), str(location))]
    files = [str(p) for p in location.walk_files()]
    files = [f for f in files if not any(part.startswith(".") for part in f.split("/"))]
    if not files:
        raise DataprepError(f"input {pattern} does not exist")
    return [(f, str(location)) for f in files]


class TruncatedInput(DataprepError):
    """A compressed input ends inside its last zstd frame or gzip member: the file was cut."""


def open_source(source: SourceFile) -> BinaryIO:
    """A binary stream of the decompressed bytes, read incrementally.

    A compressed stream that is cut raises `TruncatedInput` (after every byte decoded before
    the cut has been read), and one that is not valid zstd/gzip raises `DataprepError`: a
    decoder that just stops would make a cut file look like a shorter, complete one.
    """
    location = StoragePath(source.path)
    # uncompressed: seekable, so byte ranges of one file can be read by parallel tasks
    raw = location.open_stream() if source.compression else location.open_input()
    if source.compression == "zstd":
        return _Decompressed(raw, source, lambda: zstandard.ZstdDecompressor().decompressobj())
    if source.compression == "gzip":
        return _Decompressed(raw, source, lambda: zlib.decompressobj(31))
    return raw


class _Decompressed(io.RawIOBase):
    """Frames (zstd) or members (gzip) one after another, as `cat a.gz b.gz` and pzstd write
    them; the stream is complete only where the last one ends."""

    CHUNK = 1 << 16  # compressed bytes per decoder call: bounds the output held at once

    def __init__(self, raw: Any, source: SourceFile, decoder: Callable[[], Any]):
        super().__init__()
        self._raw = raw
        self._source = source
        self._new_decoder = decoder
        self._decoder = decoder()
        self._started = False  # bytes went into the current frame or member
        self._pending = b""  # compressed bytes after the frame that just ended
        self._rest = b""  # decoded bytes not yet handed out
        self._done = False
        self._cut = False

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        """`size` bytes (fewer only at the end); at a cut, what came before it, then raise."""
        size = -1 if size is None else size
        parts, have = [self._rest], len(self._rest)
        while (size < 0 or have < size) and not self._done:
            data = self._decode_next()
            parts.append(data)
            have += len(data)
        if size >= 0 and have > size:
            last = parts[-1]
            keep = len(last) - (have - size)
            parts[-1], self._rest = last[:keep], last[keep:]
        else:
            self._rest = b""
        data = b"".join(parts)
        if self._cut and (size < 0 or not data):
            raise self._truncated()
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _decode_next(self) -> bytes:
        chunk, self._pending = self._pending or self._raw.read(self.CHUNK), b""
        if not chunk:
            self._done = True
            self._cut = self._started
            return b""
        if not self._started and chunk[0] == 0 and chunk.count(0) == len(chunk):
            return b""  # zero padding after the last gzip member, as gzip(1) allows
        try:
            data = self._decoder.decompress(chunk)
        except (zstandard.ZstdError, zlib.error) as exc:
            suffix = Path(self._source.path).suffix
            raise DataprepError(
                f"input {self._source.path} is not a valid {suffix} file ({exc}); check that "
                f"it was compressed as its name says and is not damaged"
            ) from None
        self._started = True
        if self._decoder.eof:  # a frame or member ended: the next one may follow
            self._pending = self._decoder.unused_data
            self._decoder = self._new_decoder()
            self._started = False
        return data

    def _truncated(self) -> TruncatedInput:
        unit = "frame" if self._source.compression == "zstd" else "member"
        return TruncatedInput(
            f"input {self._source.path} is truncated or corrupt (the "
            f"{self._source.compression} stream ends before its last {unit} is complete); "
            "restore the file, or pass --on-truncated quarantine (on_truncated: quarantine in "
            "a recipe) to keep the rows before the cut"
        )

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()
