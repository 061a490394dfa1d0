"""Local paths and remote URIs (s3://, gs://, hdfs://, any fsspec protocol) behind one small API.

Dataset code speaks `StoragePath`, which offers the few pathlib operations it needs. Local paths
go straight to the OS (fast, and renames are atomic); remote ones go through `pyarrow.fs`. On an
object store a single upload only becomes visible once complete, so "write, then publish" holds
there without a rename: `write_atomic` and `ShardWriter` upload the finished bytes in one go.
"""

from __future__ import annotations

import fnmatch
import functools
import glob
import os
import posixpath
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.fs as pafs
import xxhash

from dataprep.errors import DataprepError, short_error
from dataprep.uri import canonical as canonical  # re-exported: callers compare places
from dataprep.uri import glob_base, glob_match, split_query, strip_file_scheme
from dataprep.uri import is_remote as is_remote
from dataprep.uri import within as within

BLOCK = 8 << 20  # bytes per read when streaming a file
_OBJECT_STORES = ("s3", "gcs")  # no directories: nothing to create, and listing is by prefix


@functools.cache
def _filesystem(root: str) -> pafs.FileSystem:
    """One filesystem object per scheme://bucket, so S3 clients and region lookups are reused."""
    try:
        return pafs.FileSystem.from_uri(root)[0]
    except pa.ArrowInvalid as exc:
        if "Unrecognized filesystem type" not in str(exc):
            raise DataprepError(f"cannot open {root}: {short_error(exc)}") from None
    try:
        import fsspec
    except ImportError:
        raise DataprepError(f"{root}: unknown URI scheme (install fsspec for it)") from None
    try:
        filesystem = fsspec.filesystem(root.split("://", 1)[0])
    except (ImportError, ValueError) as exc:  # an unknown protocol, or its package is missing
        raise DataprepError(f"cannot open {root}: {short_error(exc)}") from None
    return pafs.PyFileSystem(pafs.FSSpecHandler(filesystem))


def resolve(location: str | os.PathLike[str]) -> tuple[pafs.FileSystem, str]:
    """A `pyarrow.fs` filesystem and the path inside it; local paths become absolute."""
    text = strip_file_scheme(str(location))
    if not is_remote(text):
        return pafs.LocalFileSystem(), posixpath.normpath(os.path.abspath(os.path.expanduser(text)))
    text, query = split_query(text)
    scheme, rest = text.split("://", 1)
    bucket = rest.split("/", 1)[0]
    return _filesystem(f"{scheme}://{bucket}{query}"), rest.rstrip("/")


class StoragePath:
    """A file or directory, local or remote, with the subset of pathlib that dataset code uses.

    Picklable as its string, so tasks can carry it to any worker or Ray node.
    """

    __slots__ = ("_text",)

    def __init__(self, location: str | os.PathLike[str] | StoragePath):
        text = location._text if isinstance(location, StoragePath) else str(location)
        text = strip_file_scheme(text)
        if is_remote(text):
            base, query = split_query(text)
            text = base.rstrip("/") + query
        self._text = text

    # -- naming -------------------------------------------------------------------------------
    @property
    def remote(self) -> bool:
        return is_remote(self._text)

    @property
    def name(self) -> str:
        if self.remote:
            return posixpath.basename(split_query(self._text)[0])
        return Path(self._text).name

    @property
    def parent(self) -> StoragePath:
        if self.remote:
            base, query = split_query(self._text)
            return StoragePath(posixpath.dirname(base) + query)
        return StoragePath(Path(self._text).parent)

    def __truediv__(self, name: str) -> StoragePath:
        if self.remote:
            base, query = split_query(self._text)
            return StoragePath(f"{base}/{name}{query}")
        return StoragePath(Path(self._text) / name)

    def local(self) -> Path | None:
        """The local `Path`, or None for a remote location."""
        return None if self.remote else Path(self._text)

    def __str__(self) -> str:
        return self._text

    def __fspath__(self) -> str:
        """Local paths work wherever `os.PathLike` does; a remote one has no OS path."""
        if self.remote:
            raise TypeError(f"{self._text} is remote: open it through dataprep.storage")
        return self._text

    def __repr__(self) -> str:
        return f"StoragePath({self._text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StoragePath) and other._text == self._text

    def __hash__(self) -> int:
        return hash(self._text)

    def __reduce__(self) -> tuple[Any, ...]:
        return (StoragePath, (self._text,))

    @property
    def _fs(self) -> tuple[pafs.FileSystem, str]:
        return resolve(self._text)

    # -- queries ------------------------------------------------------------------------------
    def _info(self) -> pafs.FileInfo:
        filesystem, path = self._fs
        return filesystem.get_file_info(path)

    def exists(self) -> bool:
        if not self.remote:
            return Path(self._text).exists()
        # an object store has no directory entries: a prefix exists if something is below it
        return self._info().type != pafs.FileType.NotFound or bool(self._children())

    def is_file(self) -> bool:
        if not self.remote:
            return Path(self._text).is_file()
        return self._info().type == pafs.FileType.File

    def is_dir(self) -> bool:
        if not self.remote:
            return Path(self._text).is_dir()
        if self._info().type == pafs.FileType.Directory:
            return True
        return bool(self._children())

    def size(self) -> int:
        return self.stat()[0]

    def stat(self) -> tuple[int, int]:
        """(size in bytes, modification time in ns) of a file."""
        if not self.remote:
            st = Path(self._text).stat()
            return st.st_size, st.st_mtime_ns
        info = self._info()
        if info.type != pafs.FileType.File:
            raise FileNotFoundError(self._text)
        return int(info.size), int(info.mtime_ns or 0)

    def iterdir(self) -> list[StoragePath]:
        """Direct children in name order (an absent directory has none)."""
        if not self.remote:
            folder = Path(self._text)
            return [StoragePath(p) for p in sorted(folder.iterdir())] if folder.is_dir() else []
        return [self / name for name in self._children()]

    def _children(self) -> list[str]:
        filesystem, path = self._fs
        selector = pafs.FileSelector(path, allow_not_found=True, recursive=False)
        return sorted(posixpath.basename(info.path) for info in filesystem.get_file_info(selector))

    def glob(self, pattern: str) -> list[StoragePath]:
        """Children whose name matches `pattern` (one level, like `Path.glob("*.x")`)."""
        return [p for p in self.iterdir() if fnmatch.fnmatchcase(p.name, pattern)]

    def walk_files(self) -> list[StoragePath]:
        """Every file below this directory, in path order, spelled as this path is spelled."""
        if not self.remote and not os.path.isdir(self._text):
            return []
        filesystem, path = self._fs
        selector = pafs.FileSelector(path, allow_not_found=True, recursive=True)
        infos = filesystem.get_file_info(selector)
        root = path.strip("/")  # fsspec may list `/bkt/x/a` for `memory://bkt/x`
        cut = len(root) + 1 if root else 0
        below = [i.path.lstrip("/")[cut:] for i in infos if i.type == pafs.FileType.File]
        if self.remote:
            return [self / name for name in sorted(below)]
        prefix = str(self / "_")[:-1]  # as `/` spells a child, without a Path per file
        return [StoragePath(prefix + name) for name in sorted(below)]

    def relative_to(self, folder: StoragePath) -> str:
        """This path below `folder` ("a/b.x"), as both are spelled (a `?query` left out)."""
        inner, outer = self._text, folder._text
        if self.remote:
            inner, outer = split_query(inner)[0], split_query(outer)[0]
        if inner.startswith(outer.rstrip("/") + "/"):
            return inner[len(outer.rstrip("/")) + 1 :]
        if not self.remote:  # spelled differently: `./x` and `x/a`
            return Path(self._text).relative_to(folder._text).as_posix()
        raise ValueError(f"{self._text} is not below {folder._text}")

    # -- changes ------------------------------------------------------------------------------
    def mkdir(self) -> None:
        """Create the directory and its parents (object stores have none to create)."""
        if not self.remote:
            Path(self._text).mkdir(parents=True, exist_ok=True)
            return
        filesystem, path = self._fs
        if filesystem.type_name not in _OBJECT_STORES:
            filesystem.create_dir(path, recursive=True)

    def unlink(self) -> None:
        """Delete a file if it exists."""
        if not self.remote:
            Path(self._text).unlink(missing_ok=True)
            return
        filesystem, path = self._fs
        try:
            filesystem.delete_file(path)
        except FileNotFoundError:
            pass

    def rmtree(self) -> None:
        """Delete a directory and everything below it, if it exists."""
        if not self.remote:
            shutil.rmtree(self._text, ignore_errors=True)
            return
        filesystem, path = self._fs
        try:
            filesystem.delete_dir(path)
        except FileNotFoundError:
            pass

    # -- bytes --------------------------------------------------------------------------------
    def read_bytes(self) -> bytes:
        if not self.remote:
            return Path(self._text).read_bytes()
        filesystem, path = self._fs
        with filesystem.open_input_stream(path) as stream:
            return stream.read()

    def read_text(self) -> str:
        return self.read_bytes().decode()

    def write_atomic(self, data: bytes | str) -> None:
        """Readers see the old file or the whole new one, never a part (temp + rename locally;
        one upload on an object store)."""
        payload = data.encode() if isinstance(data, str) else data
        if self.remote:
            filesystem, path = self._fs
            with filesystem.open_output_stream(path) as stream:
                stream.write(payload)
            return
        target = Path(self._text)
        target.parent.mkdir(parents=True, exist_ok=True)  # as on an object store: no mkdir first
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        with open(tmp, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)

    def open_input(self) -> IO[bytes]:
        """A seekable reader (for Parquet footers and ranged reads)."""
        if not self.remote:
            return open(self._text, "rb")
        filesystem, path = self._fs
        return filesystem.open_input_file(path)

    def open_stream(self) -> IO[bytes]:
        """A sequential binary reader: a plain file locally, a buffered stream remotely."""
        if not self.remote:
            return open(self._text, "rb")
        filesystem, path = self._fs
        return filesystem.open_input_stream(path, buffer_size=8 << 20)

    def open_output(self) -> IO[bytes]:
        """A binary writer; on an object store the object appears when it is closed."""
        if not self.remote:
            Path(self._text).parent.mkdir(parents=True, exist_ok=True)
            return open(self._text, "wb")
        filesystem, path = self._fs
        return filesystem.open_output_stream(path)

    def upload_from(self, local: Path) -> None:
        """Publish a finished local file here (a rename when this is local)."""
        if not self.remote:
            os.replace(local, self._text)
            return
        filesystem, path = self._fs
        with open(local, "rb") as src, filesystem.open_output_stream(path) as dst:
            shutil.copyfileobj(src, dst, BLOCK)
        local.unlink()


def as_path(location: str | os.PathLike[str] | StoragePath) -> StoragePath:
    return location if isinstance(location, StoragePath) else StoragePath(location)


def parquet_source(location: str | os.PathLike[str] | StoragePath) -> str | pa.NativeFile:
    """What `pq.ParquetFile` should open: the path locally (memory-mappable), else a reader."""
    path = as_path(location)
    return str(path) if path.local() is not None else path.open_input()


def file_checksum(
    source: str | os.PathLike[str] | StoragePath | IO[bytes], sync: bool = False
) -> str:
    """xxh3-128 of a file's bytes, streamed: what a manifest records for each shard and verify,
    the loader and checkpoint lists check. `source` is a path, a URI or an open binary file;
    `sync` also fsyncs a local file (a checkpoint is hashed just before it is published)."""
    if not isinstance(source, (str, os.PathLike, StoragePath)):
        return _digest(source)
    path = as_path(source)
    with path.open_stream() as stream:
        digest = _digest(stream)
        if sync and not path.remote:
            os.fsync(stream.fileno())
    return digest


def _digest(stream: IO[bytes]) -> str:
    hasher = xxhash.xxh3_128()
    while block := stream.read(BLOCK):
        hasher.update(block)
    return hasher.hexdigest()


def glob_files(pattern: str) -> list[StoragePath]:
    """The files a glob matches, in path order, by `glob.glob`'s rules (`**` spans folders,
    hidden names are left out) for a local path and a URI alike."""
    if not is_remote(pattern):
        matches = sorted(glob.glob(os.path.expanduser(pattern), recursive=True))
        return [StoragePath(m) for m in matches if os.path.isfile(m)]
    base, query = split_query(pattern)
    files = StoragePath(glob_base(pattern) + query).walk_files()
    return [f for f in files if glob_match(base, split_query(str(f))[0])]


def spool_file(name: str) -> Path:
    """A local temp file to build a remote object in before uploading it whole."""
    fd, path = tempfile.mkstemp(prefix=f".{name}.", dir=os.environ.get("DATAPREP_SPOOL"))
    os.close(fd)
    return Path(path)


def copy_file(source: StoragePath, target: StoragePath) -> None:
    """Stream one file to another place, local or remote (no whole-file buffer)."""
    with source.open_stream() as src, target.open_output() as dst:
        shutil.copyfileobj(src, dst, BLOCK)


def remove(path: StoragePath) -> None:
    """Delete a file or a whole directory (an object or every object below a prefix)."""
    if path.is_file():
        path.unlink()
    else:
        path.rmtree()


def move(source: StoragePath, target: StoragePath) -> None:
    """Move a file or directory into place, replacing what is there.

    Locally one rename; on a store, object by object (a server-side copy, then a delete).
    """
    local = source.local()
    if local is not None and target.local() is not None:
        if target.is_dir() and not local.is_dir():
            target.rmtree()
        elif local.is_dir():
            remove(target)
        os.replace(local, str(target))
        return
    if source.is_file():
        _move_file(source, target)
        return
    for file in source.walk_files():
        _move_file(file, target / file.relative_to(source))


def _move_file(source: StoragePath, target: StoragePath) -> None:
    if source.remote and target.remote:
        filesystem, path = source._fs
        target_fs, target_path = target._fs
        if filesystem is target_fs:
            filesystem.move(path, target_path)
            return
    copy_file(source, target)
    source.unlink()
