"""numpy arrays in scratch space (dedup's signatures, band runs, keep flags), local or remote.

Locally they are memory-mapped. A remote file (or the part of it asked for, by a ranged read) is
first copied to an unlinked local spool file and mapped from there, so a task's memory is the
same wherever the scratch space lives: mapped pages, not a copy.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import IO, Any

import numpy as np

from dataprep.errors import DataprepError
from dataprep.storage import BLOCK, StoragePath, spool_file


def save_array(location: StoragePath, array: np.ndarray) -> None:
    """`np.save`, atomically, to a local or remote path."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    location.write_atomic(buffer.getvalue())


def _header(f: IO[bytes], location: StoragePath) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran order, dtype) of an open .npy file, leaving it at the first element."""
    readers = {
        (1, 0): np.lib.format.read_array_header_1_0,
        (2, 0): np.lib.format.read_array_header_2_0,
    }
    version = np.lib.format.read_magic(f)
    if version not in readers:
        raise DataprepError(f"{location}: unsupported .npy version {version}")
    return readers[version](f)


def load_array(location: StoragePath, mmap: bool = True, row: int | None = None) -> np.ndarray:
    """`np.load(path, mmap_mode="r")[row]` for local and remote files alike."""
    local = location.local()
    if local is not None:
        array = np.load(local, mmap_mode="r" if mmap or row is not None else None)
        return array if row is None else array[row]
    with location.open_input() as f:
        shape, fortran, dtype = _header(f, location)
        if row is not None:
            if fortran:
                raise DataprepError(f"{location}: expected a C-ordered array")
            row_items = int(np.prod(shape[1:], dtype=np.int64))
            f.seek(f.tell() + row * row_items * dtype.itemsize)
            shape = tuple(shape[1:])
            data = f.read(row_items * dtype.itemsize)
        else:
            data = f.read()
    array = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    if not mmap:
        return array
    spool = spool_file(location.name)
    try:
        np.save(spool, array)
        return np.load(f"{spool}.npy", mmap_mode="r")
    finally:  # the mapping keeps the data; the name is gone, so nothing is left behind
        spool.unlink(missing_ok=True)
        Path(f"{spool}.npy").unlink(missing_ok=True)


def load_array_slice(location: StoragePath, row: int | None, start: int, end: int) -> np.ndarray:
    """Elements [start, end) of a 1-d .npy (`row=None`) or of one row of a C-ordered 2-d one,
    clipped to its length, reading only those bytes: a memory-map locally, one ranged read
    remotely."""
    local = location.local()
    if local is not None:
        array = np.load(local, mmap_mode="r")
        return np.array((array if row is None else array[row])[start:end])
    with location.open_input() as f:
        shape, fortran, dtype = _header(f, location)
        if fortran or len(shape) != (1 if row is None else 2):
            raise DataprepError(f"{location}: expected a C-ordered array")
        length = shape[-1]
        start, end = max(0, min(start, length)), max(0, min(end, length))
        f.seek(f.tell() + ((row or 0) * length + start) * dtype.itemsize)
        data = f.read((end - start) * dtype.itemsize)
    return np.frombuffer(data, dtype=dtype).copy()


def map_file(location: StoragePath, dtype: Any) -> np.ndarray:
    """A flat binary file as a read-only memory-mapped array (a remote one via a spool file)."""
    if location.size() == 0:
        return np.zeros(0, dtype=dtype)
    local = location.local()
    if local is not None:
        return np.memmap(local, dtype=dtype, mode="r")
    spool = spool_file(location.name)
    try:
        with location.open_stream() as src, open(spool, "wb") as dst:
            shutil.copyfileobj(src, dst, BLOCK)
        return np.memmap(spool, dtype=dtype, mode="r")
    finally:
        spool.unlink(missing_ok=True)
