"""Format readers for the shard stage: blocks of raw input to Arrow tables.

The fast path hands a whole block to Arrow's C++ parsers; only a block that Arrow rejects is
re-read line by line in Python, so one bad line costs one block's worth of slow parsing and
goes to quarantine with its line number instead of failing the run.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.json as pjson
import pyarrow.parquet as pq

from dataprep.errors import DataprepError
from dataprep.sources import SourceFile, TruncatedInput, open_source
from dataprep.stage import Quarantine
from dataprep.storage import parquet_source

LINE = "__line"
PARSE_CHUNK = 2 << 20


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
        yield whole, line
        line += whole.count(b"\n")
    if carry:
        yield carry, line


def quarantine_cut(q: Quarantine, src: SourceFile, line: int | None, tail: bytes) -> None:
    """The record a cut input leaves with `on_truncated: quarantine`: where the cut is."""
    q.add(src.name, line, "truncated", tail.decode("utf-8", errors="replace"))


def jsonl_schema(src: SourceFile, sample_bytes: int) -> pa.Schema:
    """Infer field types from the good rows in the first `sample_bytes` of a JSONL source."""
    with open_source(src) as stream:
        try:
            data = stream.read(sample_bytes)
            if len(data) < sample_bytes and b"\n" not in data:
                stream.read(1)  # a cut stream raises here: say that, not "no column 'text'"
        except TruncatedInput:
            raise _cut_before_first_row(src) from None
    if len(data) == sample_bytes:
        data = data[: data.rfind(b"\n") + 1] or data
    rows = []
    for raw in data.splitlines():
        try:
            row = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(row, dict):
            rows.append(row)
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    fields = []
    for name in names:
        values = [row.get(name) for row in rows]
        try:
            fields.append(pa.field(name, pa.array(values).type))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            fields.append(pa.field(name, pa.string()))  # mixed types: odd rows go to quarantine
    return pa.schema(fields)


def parse_jsonl_block(
    data: bytes, first_line: int, src: SourceFile, schema: pa.Schema, q: Quarantine
) -> pa.Table:
    """Arrow's parser on the whole block; Python per line only if Arrow rejects it."""
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    options = pjson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    try:
        table = pjson.read_json(
            io.BytesIO(data),
            read_options=pjson.ReadOptions(block_size=PARSE_CHUNK),  # chunks parse in parallel
            parse_options=options,
        )
        if table.num_rows == lines:  # no blank lines: row i is line first_line + i
            numbers = pa.array(np.arange(first_line, first_line + lines, dtype=np.int64))
            return drop_invalid_utf8(table.append_column(LINE, numbers), src, q)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        pass
    return _parse_lines_slowly(data, first_line, src, schema, q)


def _parse_lines_slowly(
    data: bytes, first_line: int, src: SourceFile, schema: pa.Schema, q: Quarantine
) -> pa.Table:
    rows: list[dict[str, Any]] = []
    numbers: list[int] = []
    for offset, raw in enumerate(data.split(b"\n")):
        line = first_line + offset
        if not raw.strip():
            continue
        reason = None
        try:
            row = json.loads(raw.decode("utf-8"))
            if not isinstance(row, dict):
                reason = "line is not a JSON object"
            else:
                row = {f.name: row.get(f.name) for f in schema}
                pa.Table.from_pylist([row], schema=schema)  # does every field fit its type?
        except UnicodeDecodeError:
            reason = "invalid UTF-8"
        except json.JSONDecodeError as exc:
            reason = f"invalid JSON: {exc.msg}"
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            reason = f"field type mismatch: {_first_line(str(exc))}"
        if reason:
            q.add(src.name, line, reason, raw.decode("utf-8", errors="replace"))
            continue
        rows.append(row)
        numbers.append(line)
    table = pa.Table.from_pylist(rows, schema=schema)
    return table.append_column(LINE, pa.array(numbers, pa.int64()))


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def csv_schema(src: SourceFile, tolerate_cut: bool = False) -> pa.Schema:
    with open_source(src) as raw:
        stream = WholeRecords(raw) if tolerate_cut else raw
        try:
            reader = pcsv.open_csv(
                stream,
                read_options=pcsv.ReadOptions(block_size=1 << 20),
                parse_options=pcsv.ParseOptions(
                    invalid_row_handler=lambda row: "skip", newlines_in_values=True
                ),
                convert_options=pcsv.ConvertOptions(check_utf8=False),  # see drop_invalid_utf8
            )
        except pa.ArrowInvalid as exc:
            if isinstance(stream, WholeRecords) and stream.tail is not None:
                raise _cut_before_first_row(src) from None
            raise DataprepError(
                f"input {src.path} has no CSV header ({_first_line(str(exc))}); "
                "restore it or leave it out"
            ) from None
        return reader.schema


def _cut_before_first_row(src: SourceFile) -> DataprepError:
    return TruncatedInput(
        f"input {src.path} is truncated before its first whole row, so its columns cannot "
        "be read; restore the file"
    )


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
) -> Iterator[pa.Table]:
    """Columns are read as text, then cast: a value that does not cast quarantines its row."""
    bad_rows: list[Any] = []
    tolerate_cut = config.on_truncated == "quarantine"
    records = WholeRecords(stream) if tolerate_cut else stream

    def on_invalid(row: Any) -> str:
        bad_rows.append(row)
        return "skip"

    reader = pcsv.open_csv(
        records,
        read_options=pcsv.ReadOptions(block_size=block),
        parse_options=pcsv.ParseOptions(invalid_row_handler=on_invalid, newlines_in_values=True),
        convert_options=pcsv.ConvertOptions(
            column_types={name: pa.string() for name in reader_names(src, tolerate_cut)},
            strings_can_be_null=True,
            check_utf8=False,  # a bad value quarantines its row, not the run
        ),
    )
    row = 1  # data rows, 1-based, after the header
    for batch in reader:
        for bad in bad_rows:
            q.add(
                src.name,
                bad.number,
                f"malformed CSV row: {bad.expected_columns} columns "
                f"expected, {bad.actual_columns} found",
                bad.text,
            )
        bad_rows.clear()
        table = pa.Table.from_batches([batch])
        numbers = pa.array(np.arange(row, row + table.num_rows, dtype=np.int64))
        row += table.num_rows
        table = drop_invalid_utf8(table.append_column(LINE, numbers), src, q)
        yield _cast_columns(table, schema, src, q)
    if isinstance(records, WholeRecords) and records.tail is not None:
        quarantine_cut(q, src, row, records.tail)


def reader_names(src: SourceFile, tolerate_cut: bool = False) -> list[str]:
    return csv_schema(src, tolerate_cut).names


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
    return table.filter(pa.array(keep))


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
                    q.add(src.name, line, f"column {field.name!r}: {value!r} is not {field.type}")
        columns[field.name] = pa.array(values, field.type)
    columns[LINE] = table.column(LINE)
    result = pa.table(columns)
    return result if keep.all() else result.filter(pa.array(keep))


def open_parquet(src: SourceFile) -> pq.ParquetFile:
    """The Parquet file of an input, or one sentence if it is not one (cut, damaged, other)."""
    try:
        return pq.ParquetFile(parquet_source(src.path))
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataprepError(
            f"input {src.path} is not a valid Parquet file ({_first_line(str(exc))}); "
            "restore it or leave it out"
        ) from None


def read_parquet(
    src: SourceFile, schema: pa.Schema, block: int, q: Quarantine
) -> Iterator[pa.Table]:
    parquet = open_parquet(src)
    names = [f.name for f in schema if f.name in parquet.schema_arrow.names]
    batch_rows = max(1024, min(65536, block // 1024))
    row = 0
    for batch in parquet.iter_batches(batch_size=batch_rows, columns=names):
        table = pa.Table.from_batches([batch])
        numbers = pa.array(np.arange(row, row + table.num_rows, dtype=np.int64))
        row += table.num_rows
        table = drop_invalid_utf8(table.append_column(LINE, numbers), src, q)
        columns = {
            f.name: table.column(f.name).cast(f.type)
            if f.name in table.column_names
            else pa.nulls(table.num_rows, f.type)
            for f in schema
        }
        columns[LINE] = table.column(LINE)
        yield pa.table(columns)


def read_text_document(
    stream: BinaryIO, src: SourceFile, config: Any, q: Quarantine
) -> Iterator[pa.Table]:
    """A whole file is one document, and its id is the file name; a cut one is not kept."""
    try:
        data = stream.read()
    except TruncatedInput:
        if config.on_truncated != "quarantine":
            raise
        quarantine_cut(q, src, None, b"")
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        q.add(src.name, None, "invalid UTF-8", data[:2000].decode("utf-8", errors="replace"))
        return
    yield pa.table(
        {config.id_column: [src.name], config.text_column: [text], LINE: pa.array([0], pa.int64())}
    )


def read_text_lines(
    blocks: Iterator[tuple[bytes, int]], src: SourceFile, config: Any, q: Quarantine
) -> Iterator[pa.Table]:
    """One document per non-empty line."""
    for data, first_line in blocks:
        texts, numbers = [], []
        for offset, raw in enumerate(data.split(b"\n")):
            if not raw.strip():
                continue
            try:
                texts.append(raw.decode("utf-8").rstrip("\r"))
                numbers.append(first_line + offset)
            except UnicodeDecodeError:
                q.add(
                    src.name, first_line + offset, "invalid UTF-8", raw.decode("utf-8", "replace")
                )
        yield pa.table(
            {config.text_column: pa.array(texts, pa.string()), LINE: pa.array(numbers, pa.int64())}
        )
