"""Format readers for the shard stage: blocks of raw input to Arrow tables.

The fast path hands a whole block to Arrow's C++ parsers; only a block that Arrow rejects is
re-read line by line in Python, so one bad line costs one block's worth of slow parsing and
goes to quarantine with its line number instead of failing the run.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.json as pjson
import pyarrow.parquet as pq

from dataprep.sources import SourceFile, open_source
from dataprep.stage import Quarantine
from dataprep.storage import parquet_source

LINE = "__line"
PARSE_CHUNK = 2 << 20


def line_blocks(
    stream: BinaryIO, limit: int | None, first_line: int, block: int
) -> Iterator[tuple[bytes, int]]:
    """Yield (bytes of whole lines, number of the first line), reading at most `limit` bytes
    (None: to the end of the stream)."""
    carry = b""
    line = first_line
    remaining = limit if limit is not None else float("inf")
    while remaining > 0:
        data = stream.read(int(min(block, remaining)))
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


def jsonl_schema(src: SourceFile, sample_bytes: int) -> pa.Schema:
    """Infer field types from the good rows in the first `sample_bytes` of a JSONL source."""
    with open_source(src) as stream:
        data = stream.read(sample_bytes)
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
            return table.append_column(LINE, numbers)
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


def csv_schema(src: SourceFile) -> pa.Schema:
    with open_source(src) as stream:
        reader = pcsv.open_csv(
            stream,
            read_options=pcsv.ReadOptions(block_size=1 << 20),
            parse_options=pcsv.ParseOptions(
                invalid_row_handler=lambda row: "skip", newlines_in_values=True
            ),
        )
        return reader.schema


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

    def on_invalid(row: Any) -> str:
        bad_rows.append(row)
        return "skip"

    reader = pcsv.open_csv(
        stream,
        read_options=pcsv.ReadOptions(block_size=block),
        parse_options=pcsv.ParseOptions(invalid_row_handler=on_invalid, newlines_in_values=True),
        convert_options=pcsv.ConvertOptions(
            column_types={name: pa.string() for name in reader_names(src)},
            strings_can_be_null=True,
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
        table = table.append_column(LINE, numbers)
        yield _cast_columns(table, schema, src, q)


def reader_names(src: SourceFile) -> list[str]:
    return csv_schema(src).names


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


def read_parquet(src: SourceFile, schema: pa.Schema, block: int) -> Iterator[pa.Table]:
    parquet = pq.ParquetFile(parquet_source(src.path))
    names = [f.name for f in schema if f.name in parquet.schema_arrow.names]
    batch_rows = max(1024, min(65536, block // 1024))
    row = 0
    for batch in parquet.iter_batches(batch_size=batch_rows, columns=names):
        table = pa.Table.from_batches([batch])
        numbers = pa.array(np.arange(row, row + table.num_rows, dtype=np.int64))
        row += table.num_rows
        columns = {
            f.name: table.column(f.name).cast(f.type)
            if f.name in table.column_names
            else pa.nulls(table.num_rows, f.type)
            for f in schema
        }
        columns[LINE] = numbers
        yield pa.table(columns)


def read_text_document(
    stream: BinaryIO, src: SourceFile, config: Any, q: Quarantine
) -> Iterator[pa.Table]:
    """A whole file is one document, and its id is the file name."""
    data = stream.read()
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
