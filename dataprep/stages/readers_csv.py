"""CSV input: the header's schema, columns read as text then cast, and whole records only, so a
cut stream ends after its last whole row."""

from __future__ import annotations

import contextlib
import csv
import io
import sys
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.csv as pcsv

from dataprep.errors import DataprepError
from dataprep.sources import SourceFile, TruncatedInput, open_source
from dataprep.stage import Quarantine
from dataprep.stages.readers_common import (
    LINE,
    _cut_before_first_row,
    _first_line,
    drop_invalid_utf8,
    int64_range,
    int64s,
    quarantine_cut,
    schema_columns,
)
from dataprep.stages.readers_csv_cast import cast_csv
from dataprep.stages.readers_unsampled import Unsampled, count_columns

SAMPLE_BLOCKS = (1 << 20, 8 << 20, 64 << 20)  # Arrow infers types from its first block(s)


def csv_schema(src: SourceFile, tolerate_cut: bool = False) -> pa.Schema:
    """The columns Arrow infers from the first block(s); where the first record is longer
    than two of the biggest blocks (a book in one cell), the header's names as text."""
    for block in SAMPLE_BLOCKS:
        try:
            return _arrow_schema(src, tolerate_cut, block)
        except _Straddled:
            continue
    return pa.schema([pa.field(name, pa.string()) for name in _header(src, tolerate_cut)])


@contextlib.contextmanager
def _undecodable(handler: Callable[[Any], str], seen: list[Any]) -> Iterator[None]:
    """Around an Arrow CSV call: pyarrow decodes a malformed row strictly before it hands it
    to `handler`, so one with a byte that is not UTF-8 never reaches it ("Exception ignored
    in ..." on stderr) and the parse error stands. Such a row is noted in `seen` instead of
    printed; the caller then reads the file with Python's csv module, which quarantines it."""
    previous = sys.unraisablehook

    def hook(event: Any) -> None:
        if event.object is handler and isinstance(event.exc_value, UnicodeDecodeError):
            seen.append(event.exc_value)
        else:
            previous(event)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous


def _python_schema(src: SourceFile, tolerate_cut: bool) -> pa.Schema:
    """Arrow's inference over the first MiB of records as Python's csv module reads them,
    those of the header's width only: where a malformed row Arrow cannot decode is there."""
    with open_source(src) as raw:
        records = WholeRecords(raw) if tolerate_cut else raw
        text = io.TextIOWrapper(
            io.BufferedReader(_Raw(records)), "utf-8-sig", "surrogateescape", newline=""
        )
        rows = csv.reader(text)
        header = next(rows, [])
        out, size = io.StringIO(), 0
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        for record in rows:
            if size >= SAMPLE_BLOCKS[0]:
                break
            if len(record) == len(header):
                writer.writerow(record)
                size += sum(len(v) for v in record)
    data = out.getvalue().encode("utf-8", "surrogateescape")
    return pcsv.read_csv(
        pa.BufferReader(data),
        read_options=pcsv.ReadOptions(block_size=len(data) + 1, use_threads=False),
        parse_options=pcsv.ParseOptions(newlines_in_values=True),
        convert_options=pcsv.ConvertOptions(check_utf8=False),
    ).schema


class _Straddled(Exception):
    """A record longer than two blocks: Arrow's reader cannot open the file with them."""


def _header(src: SourceFile, tolerate_cut: bool) -> list[str]:
    with open_source(src) as raw:
        records = WholeRecords(raw) if tolerate_cut else raw
        text = io.TextIOWrapper(
            io.BufferedReader(_Raw(records)), "utf-8-sig", "surrogateescape", newline=""
        )
        return next(csv.reader(text), [])


def _open_csv(
    stream: Any, block: int, on_invalid: Callable[[Any], str], convert: pcsv.ConvertOptions
) -> pcsv.CSVStreamingReader:
    """Arrow's CSV reader as both passes use it: quoted newlines allowed, a malformed row
    handed to `on_invalid` (the schema pass skips it, the read pass quarantines it)."""
    return pcsv.open_csv(
        stream,
        read_options=pcsv.ReadOptions(block_size=block),
        parse_options=pcsv.ParseOptions(invalid_row_handler=on_invalid, newlines_in_values=True),
        convert_options=convert,
    )


def _arrow_schema(src: SourceFile, tolerate_cut: bool, block: int) -> pa.Schema:
    def skip(row: Any) -> str:
        return "skip"

    undecodable: list[Any] = []
    with open_source(src) as raw:
        stream = WholeRecords(raw) if tolerate_cut else raw
        try:
            with _undecodable(skip, undecodable):
                # check_utf8=False: drop_invalid_utf8 sorts the values out afterwards
                reader = _open_csv(stream, block, skip, pcsv.ConvertOptions(check_utf8=False))
        except pa.ArrowInvalid as exc:
            if isinstance(stream, WholeRecords) and stream.tail is not None:
                raise _cut_before_first_row(src) from None
            if undecodable:
                return _python_schema(src, tolerate_cut)
            if "straddl" in str(exc):
                raise _Straddled() from None
            if "Empty CSV file" in str(exc):  # no header, no row: blank lines at most
                return pa.schema([])
            raise DataprepError(
                f"input {src.path} has no CSV header ({_first_line(str(exc))}); "
                "restore it or leave it out"
            ) from None
        return reader.schema


class WholeRecords(io.RawIOBase):
    """Hands a CSV parser whole records only, so a cut stream ends after its last whole row
    instead of with half a row that parses (Arrow takes an unclosed quote at the end as a
    value). A newline ends a record only outside quotes: after an even number of `"`.

    At a cut, `tail` holds the bytes of the cut record; elsewhere it is None.
    """

    LIMIT = 64 << 20  # a record this long means the quote count misleads: trust newlines

    def __init__(self, stream: BinaryIO):
        super().__init__()
        self._stream = stream
        self._carry = b""
        self._odd = 0  # quotes handed out so far, modulo 2
        self.tail: bytes | None = None

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        while self.tail is None:
            try:
                data = self._stream.read(-1 if size is None else size)
            except TruncatedInput:
                self.tail, self._carry = self._carry, b""
                return b""
            if not data:
                data, self._carry = self._carry, b""
                return data
            data = self._carry + data
            end = self._record_end(data)
            trust_newlines = end < 0 and len(data) > self.LIMIT
            if trust_newlines:
                end = data.rfind(b"\n") + 1
            if end <= 0:
                self._carry = data
                continue
            data, self._carry = data[:end], data[end:]
            self._odd = 0 if trust_newlines else self._odd ^ (data.count(b'"') & 1)
            return data
        return b""

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _record_end(self, data: bytes) -> int:
        """Offset after the last newline outside quotes, or -1."""
        odd = (self._odd + data.count(b'"')) & 1
        end = len(data)
        while (newline := data.rfind(b"\n", 0, end)) >= 0:
            odd ^= data.count(b'"', newline, end) & 1  # quotes before this newline
            if not odd:
                return newline + 1
            end = newline
        return -1


def read_csv(
    stream: BinaryIO,
    src: SourceFile,
    schema: pa.Schema,
    config: Any,
    q: Quarantine,
    block: int,
    unsampled: Unsampled | None = None,
) -> Iterator[pa.Table]:
    """Columns are read as text, then cast: a value that does not cast quarantines its row
    (`unsampled`, unless None, gets the non-empty cells of columns the schema lacks)."""
    bad_rows: list[Any] = []
    tolerate_cut = config.on_truncated == "quarantine"
    names = reader_names(src, tolerate_cut)
    if not names:
        return  # an empty file: no rows, as an empty JSONL file
    records = WholeRecords(stream) if tolerate_cut else stream

    def on_invalid(row: Any) -> str:
        bad_rows.append(row)
        return "skip"

    undecodable: list[Any] = []
    try:
        with _undecodable(on_invalid, undecodable):
            as_text = pcsv.ConvertOptions(
                column_types={name: pa.string() for name in names},
                strings_can_be_null=True,
                null_values=[""],  # "NA" is a text, an id; nulls in numbers: cast_csv
                check_utf8=False,  # a bad value quarantines its row, not the run
            )
            reader = _open_csv(records, block, on_invalid, as_text)
    except pa.ArrowInvalid as exc:  # a first record longer than two blocks, or undecodable
        if "straddl" not in str(exc) and not undecodable:
            raise
        yield from _read_csv_slowly(src, schema, config, q, block, 1, unsampled)
        return
    row = 1  # data rows, 1-based, after the header
    while True:
        try:
            with _undecodable(on_invalid, undecodable):
                batch = reader.read_next_batch()
        except StopIteration:
            break
        except pa.ArrowInvalid as exc:  # a record longer than two blocks "straddles" them
            if "straddl" not in str(exc) and not undecodable:
                raise
            yield from _read_csv_slowly(src, schema, config, q, block, row, unsampled)
            return
        if bad_rows:  # Arrow skipped a row in this batch (or one it parsed ahead): from here on
            # Python reads the records, so rows after it keep their own numbers
            yield from _read_csv_slowly(src, schema, config, q, block, row, unsampled)
            return
        count_columns(table := pa.Table.from_batches([batch]), schema.names, unsampled)
        table = schema_columns(table, schema)
        numbers = int64_range(row, table.num_rows)
        row += table.num_rows
        table = drop_invalid_utf8(table.append_column(LINE, numbers), src, q)
        yield cast_csv(table, schema, src, q)
    if isinstance(records, WholeRecords) and records.tail is not None:
        quarantine_cut(q, src, row, records.tail)


def reader_names(src: SourceFile, tolerate_cut: bool = False) -> list[str]:
    return csv_schema(src, tolerate_cut).names


def _read_csv_slowly(
    src: SourceFile, schema: pa.Schema, config: Any, q: Quarantine, block: int, first: int,
    unsampled: Unsampled | None = None,
) -> Iterator[pa.Table]:  # fmt: skip
    """Data rows `first` on, numbered by Python's csv module, which counts a malformed row
    (wrong number of fields: quarantined with its number) where Arrow's reader skips it
    unnumbered, and reads a record of any length (Arrow's streaming reader stops at one longer
    than two blocks). The good records go back through Arrow's CSV reader in blocks, written out
    again, so their values convert exactly as on the fast path."""
    tolerate_cut = config.on_truncated == "quarantine"
    csv.field_size_limit(max(csv.field_size_limit(), sys.maxsize))  # a book in one cell
    with open_source(src) as raw:
        records = WholeRecords(raw) if tolerate_cut else raw
        text = io.TextIOWrapper(
            io.BufferedReader(_Raw(records)),  # any stream: a local file, S3's, a decoder
            encoding="utf-8-sig",  # a byte order mark before the header, as Arrow skips it
            errors="surrogateescape",  # bytes as they are: a bad value quarantines its row
            newline="",
        )
        rows = csv.reader(text)
        header = next(rows, [])
        out, numbers, size, number = io.StringIO(), [], 0, 0
        writer = csv.writer(out, lineterminator="\n")
        for record in rows:
            if not record:
                continue  # an empty line: Arrow's reader skips it too, unnumbered
            number += 1
            if number < first:
                continue
            if len(record) != len(header):
                out_line = io.StringIO()
                csv.writer(out_line, lineterminator="").writerow(record)
                q.add(
                    src.name,
                    number,
                    f"malformed CSV row: {len(header)} columns expected, {len(record)} found",
                    out_line.getvalue()
                    .encode("utf-8", "surrogateescape")
                    .decode("utf-8", "replace"),
                )
                continue
            writer.writerow(record)
            numbers.append(number)
            size += sum(len(v) for v in record)
            if size >= block:
                yield _reparsed(header, out, numbers, src, schema, q, unsampled)
                out, numbers, size = io.StringIO(), [], 0
                writer = csv.writer(out, lineterminator="\n")
        if numbers:
            yield _reparsed(header, out, numbers, src, schema, q, unsampled)
        if isinstance(records, WholeRecords) and records.tail is not None:
            quarantine_cut(q, src, number + 1, records.tail)


def _reparsed(
    header: list[str],
    body: io.StringIO,
    numbers: list[int],
    src: SourceFile,
    schema: pa.Schema,
    q: Quarantine,
    unsampled: Unsampled | None = None,
) -> pa.Table:
    head = io.StringIO()
    csv.writer(head, lineterminator="\n").writerow(header)
    data = (head.getvalue() + body.getvalue()).encode("utf-8", "surrogateescape")
    table = pcsv.read_csv(
        pa.BufferReader(data),
        read_options=pcsv.ReadOptions(block_size=len(data) + 1, use_threads=False),
        parse_options=pcsv.ParseOptions(newlines_in_values=True),
        convert_options=pcsv.ConvertOptions(
            column_types={name: pa.string() for name in header},
            strings_can_be_null=True,
            null_values=[""],
            check_utf8=False,
        ),
    )
    count_columns(table, schema.names, unsampled)
    table = schema_columns(table, schema).append_column(LINE, int64s(numbers))
    return cast_csv(drop_invalid_utf8(table, src, q), schema, src, q)


class _Raw(io.RawIOBase):
    """Any stream with `read(n)` as a raw stream, so `io.TextIOWrapper` can decode it (one
    that hands out more than asked, as `WholeRecords` does, keeps the rest for the next call)."""

    def __init__(self, stream: Any):
        super().__init__()
        self._stream = stream
        self._rest = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        with memoryview(buffer) as view, view.cast("B") as target:
            data = self._rest or self._stream.read(len(target))
            n = min(len(data), len(target))
            target[:n] = data[:n]
            self._rest = data[n:]
        return n
