"""Format readers for the shard stage: blocks of raw input to Arrow tables.

The fast path hands a whole block to Arrow's C++ parsers; only a block that Arrow rejects is
re-read line by line in Python, so one bad line costs one block's worth of slow parsing and
goes to quarantine with its line number instead of failing the run.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Iterator
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
    """Infer field types from the good rows in the first `sample_bytes` of a JSONL source
    (more when the first line is longer: it is read whole)."""
    with open_source(src) as stream:
        try:
            chunks = [stream.read(sample_bytes)]
            while b"\n" not in chunks[-1] and (more := stream.read(sample_bytes)):
                chunks.append(more)  # a first line longer than the sample is read whole
            data = b"".join(chunks)
            if len(data) < sample_bytes and b"\n" not in data:
                stream.read(1)  # a cut stream raises here: say that, not "no column 'text'"
        except TruncatedInput:
            raise _cut_before_first_row(src) from None
    if len(data) >= sample_bytes:
        data = data[: data.rfind(b"\n") + 1] or data
    rows = []
    for raw in data.splitlines():
        try:
            row = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            continue
        if isinstance(row, dict):
            rows.append(row)
    if not rows and data.strip():
        raise _not_jsonl(src, data)
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    fields = []
    for name in names:
        values = [row.get(name) for row in rows]
        try:
            fields.append(pa.field(name, pa.array(values).type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeEncodeError):
            fields.append(pa.field(name, pa.string()))  # mixed types: odd rows go to quarantine
    return pa.schema(fields)


MAGIC = {b"\x1f\x8b": ("gzip", ".gz"), b"\x28\xb5\x2f\xfd": ("zstd", ".zst")}


def _not_jsonl(src: SourceFile, data: bytes) -> DataprepError:
    """Why a JSONL sample holds no row: compressed under a plain name, or not JSON at all."""
    for magic, (codec, suffix) in MAGIC.items():
        if data.startswith(magic):
            return DataprepError(
                f"input {src.path} is {codec}-compressed but its name does not end in "
                f"{suffix}; rename it to {src.path}{suffix}"
            )
    first = data.split(b"\n", 1)[0][:80].decode("utf-8", errors="replace")
    return DataprepError(
        f"input {src.path} has no JSON object in its first lines (first line: {first!r}); "
        "JSONL needs one JSON object per line, or pass --format"
    )


def parse_jsonl_block(
    data: bytes,
    first_line: int,
    src: SourceFile,
    schema: pa.Schema,
    q: Quarantine,
    id_column: str | None = None,
) -> pa.Table:
    """Arrow's parser on the whole block; Python per line only if Arrow rejects it (there a
    numeric `id_column` value is taken as its text when the schema's ids are strings)."""
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
    return _parse_lines_slowly(data, first_line, src, schema, q, id_column)


def _parse_lines_slowly(
    data: bytes,
    first_line: int,
    src: SourceFile,
    schema: pa.Schema,
    q: Quarantine,
    id_column: str | None = None,
) -> pa.Table:
    text_ids = id_column in schema.names and pa.types.is_string(schema.field(id_column).type)
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
                if text_ids and _is_number(row[id_column]):
                    row[id_column] = json.dumps(row[id_column])  # 7 -> "7", as written
                reason = _misfit(row, schema)
        except UnicodeDecodeError:
            reason = "invalid UTF-8"
        except json.JSONDecodeError as exc:
            reason = f"invalid JSON: {exc.msg}"
        except RecursionError:
            reason = "invalid JSON: nested too deeply to read"
        if reason:
            q.add(src.name, line, reason, raw.decode("utf-8", errors="replace"))
            continue
        rows.append(row)
        numbers.append(line)
    table = pa.Table.from_pylist(rows, schema=schema)
    return table.append_column(LINE, pa.array(numbers, pa.int64()))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _misfit(row: dict[str, Any], schema: pa.Schema) -> str | None:
    """The first field whose value does not fit its column, said as `field 'n': 'abc' is not
    int64` (an encrypted run's quarantine keeps only what comes before ': ')."""
    for field in schema:
        value = row[field.name]
        if value is None:
            continue
        try:
            pa.array([value], field.type)
        except UnicodeEncodeError:
            return f"field {field.name!r}: has a lone surrogate, which is not valid Unicode"
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
            return f"field {field.name!r}: {_short(value)} is not {field.type}"
    return None


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
                    q.add(
                        src.name, line, f"field {field.name!r}: {_short(value)} is not {field.type}"
                    )
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


def check_text_type(src: SourceFile, field: pa.Field) -> None:
    """A Parquet text column must hold strings (or bytes, checked as UTF-8 row by row)."""
    t = field.type
    if not (pa.types.is_string(t) or pa.types.is_large_string(t) or _is_binary(t)):
        raise DataprepError(
            f"input {src.path} column {field.name!r} is {t}, not text; pass --text-column "
            "naming a string column"
        )


def _is_binary(t: pa.DataType) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t)


def read_parquet(
    src: SourceFile, schema: pa.Schema, block: int, q: Quarantine
) -> Iterator[pa.Table]:
    """Columns cast to the schema: bytes to strings checked as UTF-8, and a value that does not
    cast quarantines its row; a file damaged past its footer is one sentence."""
    parquet = open_parquet(src)
    names = [f.name for f in schema if f.name in parquet.schema_arrow.names]
    batch_rows = max(1024, min(65536, block // 1024))
    batches = parquet.iter_batches(batch_size=batch_rows, columns=names)
    row = 0
    while True:
        try:
            batch = next(batches, None)
        except (pa.ArrowException, OSError) as exc:
            raise DataprepError(
                f"input {src.path} is damaged after row {row:,} ({_first_line(str(exc))}); "
                "restore it or leave it out"
            ) from None
        if batch is None:
            return
        table = pa.Table.from_batches([batch])
        numbers = pa.array(np.arange(row, row + table.num_rows, dtype=np.int64))
        row += table.num_rows
        for i, name in enumerate(table.column_names):
            target = schema.field(name).type
            if _is_binary(table.schema.field(name).type) and pa.types.is_string(target):
                text = pa.chunked_array([c.view(pa.string()) for c in table.column(i).chunks])
                table = table.set_column(i, name, text)  # the UTF-8 check is next
        table = drop_invalid_utf8(table.append_column(LINE, numbers), src, q)
        yield _cast_columns(table, schema, src, q)


def read_text_documents(
    sources: Iterable[SourceFile], schema: pa.Schema, config: Any, q: Quarantine, block: int
) -> Iterator[pa.Table]:
    """Whole files as documents, their ids the file names, many files to a table of about
    `block` bytes, in `schema`'s columns (others null); a cut or non-UTF-8 file is not kept.

    One table per file would cost more than reading a small file does."""
    id_type = schema.field(config.id_column).type
    names: list[str] = []
    texts: list[str] = []
    size = 0
    for src in sources:
        if not (pa.types.is_string(id_type) or pa.types.is_large_string(id_type)):
            raise DataprepError(
                f"input {src.path} is a text file, whose id is its name, but the ids of the "
                f"first input are {id_type}; shard text files on their own"
            )
        with open_source(src) as stream:
            text = _document(stream, src, config, q)
        if text is None:
            continue
        names.append(src.name)
        texts.append(text)
        size += len(text)
        if size >= block or len(texts) >= 65536:
            yield _documents_table(names, texts, schema, config)
            names, texts, size = [], [], 0
    if texts:
        yield _documents_table(names, texts, schema, config)


def _document(stream: BinaryIO, src: SourceFile, config: Any, q: Quarantine) -> str | None:
    try:
        data = stream.read()
    except TruncatedInput:
        if config.on_truncated != "quarantine":
            raise
        quarantine_cut(q, src, None, b"")
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        q.add(src.name, None, "invalid UTF-8", data[:2000].decode("utf-8", errors="replace"))
        return None


def _documents_table(
    names: list[str], texts: list[str], schema: pa.Schema, config: Any
) -> pa.Table:
    given = {config.id_column: names, config.text_column: texts}
    return pa.table(
        [
            pa.array(given[f.name], f.type) if f.name in given else pa.nulls(len(texts), f.type)
            for f in schema
        ],
        schema=schema,
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
