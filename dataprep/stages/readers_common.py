"""What every input format shares: line blocks, quarantine records, UTF-8 checks and casts.

Split from `dataprep.stages.readers` (which re-exports the names the shard stage uses), so each
format's reader holds only its own parsing.
"""

from __future__ import annotations

import contextlib
import mmap
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, NamedTuple

import numpy as np
import pyarrow as pa

from dataprep.errors import DataprepError
from dataprep.sources import SourceFile, TruncatedInput
from dataprep.stage import Quarantine

LINE = "__line"
SMALL_BUFFER = 1 << 20
LINE_ROOM = 1 << 20  # a reused block buffer's room for a cut line carried to the next block


# `pa.array` and `pa.scalar` import pandas the first time they run (pyarrow checks for pandas
# objects): ~0.3 s of CPU in every worker, more than parsing 30 MB. The shard fast path builds
# its few arrays from buffers instead, so a worker that meets no bad row never imports it.
def int64_range(start: int, count: int) -> pa.Array:
    """start, start + 1, ... (`count` values) as an Arrow int64 array."""
    values = np.arange(start, start + count, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), count, [None, pa.py_buffer(values)])


def int64s(values: list[int]) -> pa.Array:
    """Python ints as an Arrow int64 array."""
    array = np.array(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(array), [None, pa.py_buffer(array)])


def mask(keep: np.ndarray) -> pa.Array:
    """A numpy bool array as an Arrow boolean array (for `Table.filter`)."""
    bits = np.packbits(keep, bitorder="little")
    return pa.Array.from_buffers(pa.bool_(), len(keep), [None, pa.py_buffer(bits)])


POWERS = 10 ** np.arange(1, 19, dtype=np.int64)


def numbered_ids(prefix: str, numbers: pa.ChunkedArray | pa.Array, shift: int = 0) -> pa.Array:
    """`prefix` + each number + `shift` in decimal (`SOURCE:LINE` ids), as an Arrow string
    array written with numpy: `pyarrow.compute` (cast, join) costs ~25 ms of CPU to import in
    every process, more than a shard task of a few MB spends on its ids."""
    chunks = numbers.chunks if isinstance(numbers, pa.ChunkedArray) else [numbers]
    parts = [np.frombuffer(c.buffers()[1], np.int64, len(c), 8 * c.offset) for c in chunks]
    values = np.concatenate(parts or [np.empty(0, np.int64)]) + shift  # to_numpy: pandas
    head = np.frombuffer(prefix.encode(), np.uint8)
    digits = 1 + np.searchsorted(POWERS, values, side="right")  # values are never negative
    offsets = np.zeros(len(values) + 1, np.int64)
    np.cumsum(len(head) + digits, out=offsets[1:])
    if offsets[-1] >= 2**31:
        raise ValueError("ids longer than a string array holds")
    data = np.empty(int(offsets[-1]), np.uint8)
    data[(offsets[:-1, None] + np.arange(len(head))).ravel()] = np.tile(head, len(values))
    ends, rest = offsets[1:] - 1, values
    for place in range(int(digits.max(initial=0))):  # the last digit first
        have = digits > place
        data[ends[have] - place] = 48 + rest[have] % 10
        rest = rest // 10
    buffers = [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)]
    return pa.Array.from_buffers(pa.string(), len(values), buffers)


def schema_columns(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """The columns of `table` that `schema` names, each name's first: a CSV header may repeat
    a name (a spreadsheet's trailing empty cells: `id,text,,`), which Arrow keeps and
    selecting by name refuses."""
    names = table.column_names
    wanted = set(schema.names)
    firsts = [i for i, name in enumerate(names) if name in wanted and names.index(name) == i]
    return table if len(firsts) == len(names) else table.select(firsts)


def line_blocks(
    stream: BinaryIO,
    limit: int | None,
    first_line: int,
    block: int,
    on_cut: Callable[[int, bytes], None] | None = None,
) -> Iterator[tuple[bytes, int]]:
    """Yield (bytes of whole lines, number of the first line), reading at most `limit` bytes
    (None: to the end of the stream).

    A cut compressed stream raises `TruncatedInput`, or, given `on_cut`, ends after the last
    whole line and hands the cut line (its number and bytes, maybe none) to `on_cut`.
    """
    for data, line, _ in counted_blocks(stream, limit, first_line, block, on_cut):
        yield data, line


def counted_blocks(
    stream: BinaryIO,
    limit: int | None,
    first_line: int,
    block: int,
    on_cut: Callable[[int, bytes], None] | None = None,
) -> Iterator[tuple[bytes, int, int]]:
    """`line_blocks` with each block's count of newlines, which numbering the lines needs
    anyway: a parser that would count them again (a pass over the block) takes it from here."""
    carry = b""
    line = first_line
    remaining = limit if limit is not None else float("inf")
    while remaining > 0:
        try:
            data = stream.read(int(min(block, remaining)))
        except TruncatedInput:
            if on_cut is None:
                raise
            on_cut(line, carry)
            return
        if not data:
            break
        remaining -= len(data)
        data = carry + data
        cut = data.rfind(b"\n")
        if cut < 0:
            carry = data
            continue
        whole, carry = data[: cut + 1], data[cut + 1 :]
        newlines = whole.count(b"\n")
        yield whole, line, newlines
        line += newlines
    if carry:
        yield carry, line, 0


def _buffer(size: int) -> bytearray | mmap.mmap:
    """`size` writable bytes; a big buffer's pages are allocated as they are first written
    (a small one is a bytearray: an mmap costs ~25 us, a file of 2 KB half that in all).

    The mmap is private and asks for huge pages: Python's default, a shared mapping, is
    shmem, whose every 4 KiB page cost a fault through the page cache on first write (~2,300
    faults per 9 MiB buffer, ~40 ms of system time per 200 MB shard run); a 2 MiB page is one
    fault (`transparent_hugepage` set to `madvise`, as on most distributions)."""
    if size <= SMALL_BUFFER:
        return bytearray(size)
    buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE)
    if hasattr(mmap, "MADV_HUGEPAGE"):  # Linux; elsewhere 4 KiB pages as before
        with contextlib.suppress(OSError):
            buf.madvise(mmap.MADV_HUGEPAGE)
    return buf


class NewlineCounter:
    """Counts b"\\n" in a buffer with numpy, a MiB at a time into one scratch array:
    ~8x faster than bytearray.count (0.7 vs 4.5 ms per 8 MiB), which was ~7% of a shard
    worker's CPU."""

    STEP = 1 << 20

    def __init__(self, buf: bytearray | mmap.mmap):
        self.buf = buf
        self.values = np.frombuffer(buf, np.uint8)
        self.hits = np.empty(min(self.STEP, len(buf)), np.bool_)

    def __call__(self, lo: int, hi: int) -> int:
        if hi - lo < 1 << 16:  # numpy's per-call cost is more than counting a few KB
            return self.buf[lo:hi].count(b"\n")
        n, step = 0, len(self.hits)
        for a in range(lo, hi, step):
            b = min(hi, a + step)
            n += int(np.count_nonzero(np.equal(self.values[a:b], 10, out=self.hits[: b - a])))
        return n

    def lines(self, lo: int, hi: int, lead: int) -> LineCount:
        """The newlines in [lo, hi), and how many of the lines after them (before `hi`) do
        not start with the byte `lead`. One compare per MiB finds the newlines; the byte after
        each is then looked up where it is (lines are long next to a MiB: a few thousand
        look-ups per 8 MiB, where a second compare and two logical passes over every byte
        cost ~1 ms)."""
        if hi - lo < 1 << 16:  # numpy's per-call cost is more than counting a few KB
            values = self.values[lo:hi]
            unled = np.count_nonzero((values[:-1] == 10) & (values[1:] != lead))
            return LineCount(int(np.count_nonzero(values == 10)), int(unled))
        n = unled = 0
        step = len(self.hits)
        for a in range(lo, hi, step):
            b = min(hi, a + step)
            at = np.flatnonzero(np.equal(self.values[a:b], 10, out=self.hits[: b - a]))
            n += len(at)
            if len(at) and a + int(at[-1]) + 1 >= hi:  # a newline at hi - 1 starts no line here
                at = at[:-1]
            unled += int(np.count_nonzero(self.values[at + (a + 1)] != lead))
        return LineCount(n, unled)


class LineCount(NamedTuple):
    """A block's newlines, and its lines after the first that do not start with a given byte."""

    newlines: int
    unled: int


def view_blocks(
    stream: BinaryIO,
    limit: int | None,
    first_line: int,
    block: int,
    on_cut: Callable[[int, bytes], None] | None = None,
    lead: int = ord("{"),
) -> Iterator[tuple[memoryview, int, LineCount]]:
    """`counted_blocks` with each block's count of lines that do not start with `lead` (the
    JSONL reader checks where lines start), and without a copy per block: each block is read
    into one reused buffer, after the cut line the previous block left, and handed out as a view
    of it that is valid only until the next step (the caller parses it at once; Arrow's JSON
    parser copies what it keeps). A fresh 8 MiB `bytes` per block, joined to that cut line and
    sliced to whole lines, was three copies and ~6,000 page faults per block: ~0.1 s of CPU
    per 100 MB.

    The buffer is an anonymous mmap: its pages cost only once touched, so a small file read
    with big blocks (or a compressed one, whose size is not known) pays for its own bytes, not
    for `block` (a bytearray is zeroed whole: 40 small files at 512 MB blocks took 636 MB)."""
    # room for the cut line a block leaves before the next one (LINE_ROOM): at `block`
    # exactly, the second block made a buffer of twice the size (more pages to fault)
    room = block + min(LINE_ROOM, block)
    buf = _buffer(room if limit is None else min(room, limit))
    count = NewlineCounter(buf)
    held = 0  # bytes of a cut line at the front of `buf`
    line = first_line
    remaining = limit if limit is not None else float("inf")
    while remaining > 0:
        want = int(min(block, remaining))
        if held + want > len(buf):  # a line longer than a block: a new, bigger buffer
            bigger = _buffer(max(2 * len(buf), held + want))
            bigger[:held] = buf[:held]
            buf, count = bigger, NewlineCounter(bigger)  # views handed out keep the old one
        try:
            with memoryview(buf) as view:
                got = stream.readinto(view[held : held + want])
        except TruncatedInput:
            if on_cut is None:
                raise
            on_cut(line, bytes(buf[:held]))
            return
        if not got:
            break
        remaining -= got
        end = held + got
        cut = buf.rfind(b"\n", held, end)
        if cut < 0:
            held = end
            continue
        counted = count.lines(0, cut + 1, lead)
        yield memoryview(buf)[: cut + 1], line, counted
        line += counted.newlines
        tail = end - cut - 1
        buf[:tail] = buf[cut + 1 : end]  # the cut line moves to the front (a copy of it first)
        held = tail
    if held:
        yield memoryview(buf)[:held], line, LineCount(0, 0)


def quarantine_cut(q: Quarantine, src: SourceFile, line: int | None, tail: bytes) -> None:
    """The record a cut input leaves with `on_truncated: quarantine`: where the cut is."""
    q.add(src.name, line, "truncated", tail.decode("utf-8", errors="replace"))


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def _cut_before_first_row(src: SourceFile) -> DataprepError:
    return TruncatedInput(
        f"input {src.path} is truncated before its first whole row, so its columns cannot "
        "be read; restore the file"
    )


def drop_invalid_utf8(table: pa.Table, src: SourceFile, q: Quarantine) -> pa.Table:
    """Rows with a string that is not UTF-8 go to quarantine, the field named; the rest stay.

    Arrow's JSON and CSV parsers (with check_utf8 off) and Parquet files can hand over such
    strings, and every later stage assumes UTF-8. One full validation per table is the cheap
    check; only a table that fails it is searched for its bad rows.
    """
    try:
        table.validate(full=True)
        return table
    except pa.ArrowInvalid:
        pass
    bad: dict[int, str] = {}
    for name in table.column_names:
        values = table.column(name)
        try:
            values.validate(full=True)
            continue
        except pa.ArrowInvalid:
            pass
        for i in range(len(values)):
            try:
                values.slice(i, 1).validate(full=True)
            except pa.ArrowInvalid:
                bad.setdefault(i, name)
    lines = table.column(LINE)
    for i in sorted(bad):
        value = table.column(bad[i])[i]
        raw = None
        if pa.types.is_string(value.type) or pa.types.is_large_string(value.type):
            raw = value.cast(pa.binary()).as_py().decode("utf-8", errors="replace")
        q.add(src.name, lines[i].as_py(), f"invalid UTF-8 in field {bad[i]!r}", raw)
    keep = np.ones(table.num_rows, dtype=bool)
    keep[list(bad)] = False
    return table.filter(mask(keep))


def _cast_columns(table: pa.Table, schema: pa.Schema, src: SourceFile, q: Quarantine) -> pa.Table:
    keep = np.ones(table.num_rows, dtype=bool)
    columns = {}
    for field in schema:
        if field.name not in table.column_names:
            columns[field.name] = pa.nulls(table.num_rows, field.type)
            continue
        column = table.column(field.name)
        try:
            columns[field.name] = column.cast(field.type)
            continue
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        values = []
        for i, value in enumerate(column.to_pylist()):
            try:
                values.append(pa.scalar(value).cast(field.type).as_py())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                values.append(None)
                if keep[i]:
                    keep[i] = False
                    line = table.column(LINE)[i].as_py()
                    q.add(
                        src.name, line, f"field {field.name!r}: {_short(value)} is not {field.type}"
                    )
        columns[field.name] = pa.array(values, field.type)
    columns[LINE] = table.column(LINE)
    result = pa.table(columns)
    return result if keep.all() else result.filter(pa.array(keep))
