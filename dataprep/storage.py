"""Local paths and remote URIs (s3://, gs://, hdfs://, any fsspec protocol) behind one small API.

Dataset code speaks `StoragePath`, which offers the few pathlib operations it needs. Local paths
go straight to the OS (fast, and renames are atomic); remote ones go through `pyarrow.fs`. On an
object store a single upload only becomes visible once complete, so "write, then publish" holds
there without a rename: `write_atomic` and `ShardWriter` upload the finished bytes in one go.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import posixpath
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.fs as pafs

from dataprep.errors import DataprepError

BLOCK = 8 << 20  # bytes per read when streaming a file
_OBJECT_STORES = ("s3", "gcs")  # no directories: nothing to create, and listing is by prefix


def is_remote(location: str | os.PathLike[str]) -> bool:
    return "://" in str(location) and not str(location).startswith("file://")


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
    scheme = root.split("://", 1)[0]
    return pafs.PyFileSystem(pafs.FSSpecHandler(fsspec.filesystem(scheme)))


def resolve(location: str | os.PathLike[str]) -> tuple[pafs.FileSystem, str]:
    """A `pyarrow.fs` filesystem and the path inside it; local paths become absolute."""
    text = str(location)
    if text.startswith("file://"):
        text = text[len("file://") :]
    if not is_remote(text):
        return pafs.LocalFileSystem(), posixpath.normpath(os.path.abspath(os.path.expanduser(text)))
    text, query = _split_query(text)
    scheme, rest = text.split("://", 1)
    bucket = rest.split("/", 1)[0]
    return _filesystem(f"{scheme}://{bucket}{query}"), rest.rstrip("/")


def _split_query(uri: str) -> tuple[str, str]:
    """`s3://b/p?endpoint_override=...` -> ("s3://b/p", "?endpoint_override=...")."""
    base, sep, query = uri.partition("?")
    return base, sep + query


def short_error(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__


class StoragePath:
    """A file or directory, local or remote, with the subset of pathlib that dataset code uses.

    Picklable as its string, so tasks can carry it to any worker or Ray node.
    """

    __slots__ = ("_text",)

    def __init__(self, location: str | os.PathLike[str] | StoragePath):
        text = location._text if isinstance(location, StoragePath) else str(location)
        if text.startswith("file://"):
            text = text[len("file://") :]
        if is_remote(text):
            base, query = _split_query(text)
            text = base.rstrip("/") + query
        self._text = text

    # -- naming -------------------------------------------------------------------------------
    @property
    def remote(self) -> bool:
        return is_remote(self._text)

    @property
    def name(self) -> str:
        if self.remote:
            return posixpath.basename(_split_query(self._text)[0])
        return Path(self._text).name

    @property
    def parent(self) -> StoragePath:
        if self.remote:
            base, query = _split_query(self._text)
            return StoragePath(posixpath.dirname(base) + query)
        return StoragePath(Path(self._text).parent)

    def __truediv__(self, name: str) -> StoragePath:
        if self.remote:
            base, query = _split_query(self._text)
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
        """Every file below this directory, in path order."""
        if not self.remote:
            root = Path(self._text)
            return [StoragePath(p) for p in sorted(root.rglob("*")) if p.is_file()]
        filesystem, path = self._fs
        selector = pafs.FileSelector(path, allow_not_found=True, recursive=True)
        infos = filesystem.get_file_info(selector)
        base, query = _split_query(self._text)
        scheme = base.split("://", 1)[0]
        files = [i.path for i in infos if i.type == pafs.FileType.File]
        return [StoragePath(f"{scheme}://{p}{query}") for p in sorted(files)]

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


def spool_file(name: str) -> Path:
    """A local temp file to build a remote object in before uploading it whole."""
    fd, path = tempfile.mkstemp(prefix=f".{name}.", dir=os.environ.get("DATAPREP_SPOOL"))
    os.close(fd)
    return Path(path)


def copy_file(source: StoragePath, target: StoragePath) -> None:
    """Stream one file to another place, local or remote (no whole-file buffer)."""
    with source.open_stream() as src, target.open_output() as dst:
        shutil.copyfileobj(src, dst, BLOCK)


_SCHEME_ALIASES = {"s3a": "s3", "s3n": "s3", "gs": "gcs"}


def canonical(location: str | os.PathLike[str] | StoragePath) -> str:
    """One spelling per place, to tell whether two locations are the same or nested.

    Local: `~`, `file://`, relative parts and symlinks resolved. Remote: scheme aliases
    (s3a -> s3), repeated or trailing slashes, `.`/`..` and the `?query` dropped.
    """
    text = str(location)
    if text.startswith("file://"):
        text = text[len("file://") :]
    if not is_remote(text):
        return os.path.realpath(os.path.expanduser(text))
    scheme, rest = _split_query(text)[0].split("://", 1)
    scheme = _SCHEME_ALIASES.get(scheme.lower(), scheme.lower())
    bucket, _, key = rest.partition("/")
    key = posixpath.normpath("/" + key).lstrip("/")
    return f"{scheme}://{bucket}/{key}".rstrip("/")


def within(inner: str, outer: str) -> bool:
    """Whether canonical location `inner` is `outer` or lies below it."""
    return inner == outer or inner.startswith(outer.rstrip("/") + "/")


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
    base = str(source)
    for file in source.walk_files():
        _move_file(file, target / str(file)[len(base) + 1 :])


def _move_file(source: StoragePath, target: StoragePath) -> None:
    if source.remote and target.remote:
        filesystem, path = source._fs
        target_fs, target_path = target._fs
        if filesystem is target_fs:
            filesystem.move(path, target_path)
            return
    copy_file(source, target)
    source.unlink()
