"""A local uncompressed JSONL range read where the page cache holds it (mmap), not copied.

`view_blocks` reads each block into a buffer of its own: a copy of every input byte out of
the page cache (the kernel's `read`, ~0.05-0.09 s of system time per 201 MB) and the first
touch of the buffer's pages. Mapped, Arrow parses the cached pages in place. The blocks are
`view_blocks`' own, cut for cut (a block ends at the last newline of the bytes read so far in
steps of `block`), so the tables, and the shards written from them, are byte for byte the same.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable, Iterator
from typing import BinaryIO

from dataprep.errors import DataprepError
from dataprep.sources import SourceFile
from dataprep.stages.readers_common import LineCount, NewlineCounter, view_blocks
from dataprep.storage import StoragePath

# Map each window with its pages read ahead and mapped in one call (Linux), not a fault per
# 64 KiB as Arrow's parser and the newline count walk it.
_FLAGS = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)


def jsonl_blocks(
    src: SourceFile,
    stream: BinaryIO,
    start: int,
    limit: int | None,
    first_line: int,
    block: int,
    on_cut: Callable[[int, bytes], None] | None = None,
) -> Iterator[tuple[memoryview, int, LineCount]]:
    """`view_blocks` of `stream` (positioned at `start`); for a local uncompressed file,
    the same blocks mapped from the file itself."""
    local = StoragePath(src.path).local() if src.compression is None else None
    if local is None or limit is None or not hasattr(mmap, "MAP_SHARED"):
        return view_blocks(stream, limit, first_line, block, on_cut)
    return mapped_blocks(str(local), start, limit, first_line, block)


def mapped_blocks(
    path: str, start: int, limit: int, first_line: int, block: int, lead: int = ord("{")
) -> Iterator[tuple[memoryview, int, LineCount]]:
    """(view, first line, counts) of the bytes [start, start + limit) of a local file, as
    `view_blocks` cuts them. Each view is of a read-only mapping of its block's pages only, so
    what a task holds mapped stays at about a block; a mapping is unmapped once the caller
    lets go of its view (the caller parses each block before it asks for the next)."""
    stop = start + limit
    line = first_line
    pos = read_end = start
    hits = None  # the newline counter's scratch, shared by every block
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size < stop:  # cut since the run was planned: mapping past its end would crash
            raise DataprepError(
                f"input {path} changed while it was read (now {size:,} bytes, at least "
                f"{stop:,} expected); rerun once it is complete"
            )
        while read_end < stop:
            searched = read_end
            read_end = min(read_end + block, stop)
            base = pos - pos % mmap.ALLOCATIONGRANULARITY
            window = mmap.mmap(
                file.fileno(), read_end - base, flags=_FLAGS, prot=mmap.PROT_READ, offset=base
            )
            cut = window.rfind(b"\n", searched - base, read_end - base)
            if cut < 0:  # a line longer than the bytes read so far: read on
                window.close()
                continue
            count = NewlineCounter(window, hits)
            hits = count.hits
            counted = count.lines(pos - base, cut + 1, lead)
            del count  # its array of the window: the mapping goes with the caller's view
            yield memoryview(window)[pos - base : cut + 1], line, counted
            line += counted.newlines
            pos = base + cut + 1
        if pos < stop:
            base = pos - pos % mmap.ALLOCATIONGRANULARITY
            window = mmap.mmap(
                file.fileno(), stop - base, flags=_FLAGS, prot=mmap.PROT_READ, offset=base
            )
            yield memoryview(window)[pos - base :], line, LineCount(0, 0)
