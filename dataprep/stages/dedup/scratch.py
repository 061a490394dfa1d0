"""dedup's scratch arrays: written without an fsync each, sealed by a checksum list per task.

WHY: a finished task's record says its scratch files are done, so after a crash of the
machine (not of the process: a SIGKILL loses nothing the kernel already holds) a resumed run
must not trust a file whose bytes never reached the disk. An fsync per file (~60 per 200k-doc
run, ~0.5 s of wall time) bought that before. Now each task writes its files (temporary name,
then rename, so a reader never sees a part), then one small `.sums` list of their sizes and
xxh3-128 digests; a resumed run checks the list (`intact`) before it trusts a task's record,
and reruns the task when a file is short, changed or missing. Checking costs a read of the
files, only on resume; writing costs a hash of bytes already in cache (~2 ms per 30 MB).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import xxhash

from dataprep.storage import BLOCK, StoragePath

Sum = tuple[int, str]  # (bytes, xxh3-128 hex) of one file


def save(location: StoragePath, array: np.ndarray) -> Sum:
    """`np.save` to `location` (local: a temporary name renamed into place, no fsync; remote:
    one upload) and the file's size and digest. Local files are written straight from the
    array's memory (no in-memory copy of the file)."""
    array = np.ascontiguousarray(array)
    header = _header(array)
    data = array.reshape(-1).view(np.uint8)  # its bytes, no copy
    digest = xxhash.xxh3_128(header)
    digest.update(data)
    size = len(header) + array.nbytes
    local = location.local()
    if local is None:
        location.write_atomic(header + array.tobytes())
        return size, digest.hexdigest()
    target = Path(local)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(header)
        f.write(data)
    os.replace(tmp, target)
    return size, digest.hexdigest()


def _header(array: np.ndarray) -> bytes:
    """The bytes `np.save` writes before the data (magic, version, header dict)."""
    return _header_of(np.lib.format.header_data_from_array_1_0(array))


def _header_of(fields: dict[str, object]) -> bytes:
    from io import BytesIO

    out = BytesIO()
    np.lib.format.write_array_header_1_0(out, fields)
    return out.getvalue()


class RowWriter:
    """A C-ordered (rows, width) array written block by block, as `save` would write the
    whole: a shard's signatures go to disk batch by batch instead of being held, joined and
    then copied out (~25 MB per 50k rows, and the page faults of both copies). `rows` is
    the expected count (the shard's manifest entry): the header goes first so the digest is
    taken in one pass; another count rewrites the header (its length does not depend on the
    count: numpy pads it) and hashes the file again."""

    def __init__(self, location: StoragePath, dtype: np.dtype, width: int, rows: int):
        self.location, self.dtype, self.width = location, np.dtype(dtype), width
        self.expected, self.rows = rows, 0
        self.header = self._header(rows)
        self.digest = xxhash.xxh3_128(self.header)
        local = location.local()
        self.blocks: list[bytes] | None = None if local is not None else []
        self.tmp: Path | None = None
        if local is not None:
            target = Path(local)
            target.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
            self.file = open(self.tmp, "wb", buffering=8 << 20)  # noqa: SIM115 (closed below)
            self.file.write(self.header)

    def _header(self, rows: int) -> bytes:
        descr = np.lib.format.dtype_to_descr(self.dtype)
        return _header_of({"descr": descr, "fortran_order": False, "shape": (rows, self.width)})

    def write(self, block: np.ndarray) -> None:
        if block.dtype != self.dtype or block.ndim != 2 or block.shape[1] != self.width:
            raise ValueError(f"{self.location}: a block of {block.dtype} {block.shape}")
        data = np.ascontiguousarray(block).reshape(-1).view(np.uint8)
        self.digest.update(data)
        if self.blocks is not None:
            self.blocks.append(data.tobytes())
        else:
            self.file.write(data)
        self.rows += len(block)

    def close(self) -> Sum:
        size = len(self.header) + self.rows * self.width * self.dtype.itemsize
        if self.blocks is not None:
            data = self._header(self.rows) + b"".join(self.blocks)
            self.location.write_atomic(data)
            return size, xxhash.xxh3_128(data).hexdigest()
        assert self.tmp is not None
        if self.rows != self.expected:
            header = self._header(self.rows)
            if len(header) != len(self.header):
                raise ValueError(f"{self.location}: the .npy header changed length")
            self.file.seek(0)
            self.file.write(header)
        self.file.close()
        os.replace(self.tmp, self.location.local())  # type: ignore[arg-type]
        if self.rows != self.expected:
            return size, _digest(self.location)
        return size, self.digest.hexdigest()

    def abort(self) -> None:
        """Drop the partial file (a failed task)."""
        if self.tmp is not None:
            self.file.close()
            self.tmp.unlink(missing_ok=True)


def seal(location: StoragePath, sums: Mapping[str, Sum]) -> None:
    """Write the list of a task's files (names relative to the list's folder) and their sums;
    written last, so a list that is there and matches means every file is whole."""
    payload = {name: [size, digest] for name, (size, digest) in sums.items()}
    data = json.dumps(payload, sort_keys=True).encode()
    local = location.local()
    if local is None:
        location.write_atomic(data)
        return
    tmp = Path(local).with_name(f".{Path(local).name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, local)


def intact(location: StoragePath) -> bool:
    """Whether the list at `location` is readable and every file it names has its size and
    digest (False for a missing or garbled list)."""
    try:
        listed = json.loads(location.read_bytes())
        folder = location.parent
        for name, (size, digest) in listed.items():
            if (folder / name).size() != size or _digest(folder / name) != digest:
                return False
    except (OSError, ValueError, TypeError, AttributeError):
        return False
    return isinstance(listed, dict)


class SummedOutput:
    """`location.open_output()` that also takes the size and digest of what goes through it
    (`sum`, once closed), for a `seal`."""

    def __init__(self, location: StoragePath):
        self.location = location
        self.size = 0
        self.hasher = xxhash.xxh3_128()
        self.sum: Sum = (0, "")

    def __enter__(self) -> SummedOutput:
        self.stream = self.location.open_output()
        return self

    def write(self, data: bytes) -> None:
        self.hasher.update(data)
        self.size += len(data)
        self.stream.write(data)

    def __exit__(self, *exc: object) -> None:
        self.stream.close()
        self.sum = (self.size, self.hasher.hexdigest())


def _digest(location: StoragePath) -> str:
    hasher = xxhash.xxh3_128()
    with location.open_stream() as stream:
        while block := stream.read(BLOCK):
            hasher.update(block)
    return hasher.hexdigest()
