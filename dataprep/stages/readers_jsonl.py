"""JSONL input: schema inference from a sample, Arrow's parser per block, Python per line on a
rejected block, so one bad line quarantines itself instead of failing the run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.json as pjson

from dataprep.errors import DataprepError
from dataprep.sources import SourceFile, TruncatedInput, open_source
from dataprep.stage import Quarantine
from dataprep.stages.readers_common import (
    LINE,
    LineCount,
    NewlineCounter,
    _cut_before_first_row,
    drop_invalid_utf8,
    int64_range,
    int64s,
)
from dataprep.stages.readers_fit import has_struct, misfit, rounded
from dataprep.stages.readers_unsampled import (
    Unsampled,
    add,
    count_columns,
    count_keys,
    deeper_than,
    read_counting,
    unexpected,
)

# Arrow parses a block in chunks of this size: they make the table's chunks, and so where the
# Parquet writer cuts pages (the output bytes). On one thread: a worker already parses the next
# block (readahead) while it writes this one, and writing is the longer; Arrow's pool on top
# ran ~6 threads on 2 cores with 2 workers (workers' CPU 1.42 -> 1.32 s at 201 MB).
PARSE_CHUNK = 2 << 20
SLOW_BYTES = 64 << 10  # a rejected piece this small is read line by line
RETRY_SHARE = 3  # Arrow retries of a rejected block parse at most this many times its bytes


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
            fields.append(pa.field(name, value_type(values)))
        except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeEncodeError, OverflowError):
            fields.append(pa.field(name, pa.string()))  # mixed types: odd rows go to quarantine
    return pa.schema(fields)


SIMPLE = {
    frozenset({str}): pa.string(),
    frozenset({bool}): pa.bool_(),
    frozenset({int}): pa.int64(),
    frozenset({float}): pa.float64(),
    frozenset({int, float}): pa.float64(),
}


def value_type(values: list[Any]) -> pa.DataType:
    """`pa.array(values).type` for JSON values; the common flat cases are told from the Python
    types, since `pa.array` imports pandas (~0.3 s) the first time it runs."""
    kinds = frozenset(type(v) for v in values if v is not None)
    simple = SIMPLE.get(kinds)
    if int in kinds:  # Arrow takes ints as int64, and beside floats only those a double holds
        bound = 2**53 if float in kinds else 2**63
        if not all(-bound <= v < bound for v in values if type(v) is int):
            simple = None
    if simple is not None:
        return simple
    if str in kinds and kinds <= {str, bool, int, float}:
        return pa.string()  # text beside numbers or booleans: `pa.array` fails, and so string
    return pa.null() if not kinds else pa.array(values).type


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
    data: bytes | memoryview,
    first_line: int,
    src: SourceFile,
    schema: pa.Schema,
    q: Quarantine,
    id_column: str | None = None,
    newlines: LineCount | None = None,
    text_column: str | None = None,
    unsampled: Unsampled | None = None,
) -> pa.Table:
    """Arrow's parser on the whole block (`newlines`: its lines counted, if known). A
    block Arrow rejects is halved at a line end, again and again, and Arrow's parse kept for
    every piece it accepts; only a rejected piece of at most SLOW_BYTES is read line by line in
    Python (there a number in a string column is taken as its text: see `_as_text`). One bad
    line used to send its whole 8 MiB block through Python: 5 bad lines in 50 MB made the
    shard 2.2x as slow. `unsampled` (None: not counted) gets the rows per top-level field
    the schema lacks (`readers_unsampled`)."""
    table = _arrow_block(data, first_line, schema, newlines, unsampled)
    if table is not None:
        if lost := rounded(table, data):  # 12345678901234567890 in a double column
            for i, why in lost:
                q.add(
                    src.name,
                    first_line + i,
                    why,
                    bytes(data).split(b"\n")[i].decode(errors="replace"),
                )
            keep = np.ones(table.num_rows, dtype=bool)
            keep[[i for i, _ in lost]] = False
            table = table.filter(pa.array(keep))
        return drop_invalid_utf8(table, src, q)
    data = bytes(data)  # a view of a reused buffer (`view_blocks`): this path keeps pieces
    budget = [RETRY_SHARE * len(data)]
    columns = (id_column, text_column)
    pieces = _pieces(data, first_line, src, schema, q, columns, budget, unsampled)
    return pa.concat_tables(list(pieces))


def _arrow_block(
    data: bytes | memoryview,
    first_line: int,
    schema: pa.Schema,
    newlines: LineCount | None = None,
    unsampled: Unsampled | None = None,
) -> pa.Table | None:
    """The block's rows with their line numbers, or None where Arrow rejects it or its rows
    are not its lines one to one (`_one_object_per_line`). Arrow reads the bytes where they
    are (a `BufferReader`, not a Python file object that copies them)."""
    if newlines is None:
        newlines = NewlineCounter(data).lines(0, len(data), OPEN)  # type: ignore[arg-type]
    lines = newlines.newlines + (0 if len(data) and data[-1] == 10 else 1)
    plain = newlines.unled == 0 and (not len(data) or data[0] == OPEN)
    if not (plain or _one_object_per_line(data, first_line)):
        return None  # checked first: pyarrow 26 segfaults on a block that starts with `null`
    nested = has_struct(schema)
    if nested and deeper_than(data, INFER_DEPTH):
        return None  # Arrow's infer mode recurses per level: ~15k levels overflow its stack
    counted: Unsampled = {}  # counting: a flat schema's "error" mode stops at a field it lacks
    mode = "infer" if nested else "ignore" if unsampled is None else "error"
    try:
        table = _read_json(data, schema, mode)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        if not (mode == "error" and unexpected(exc)):
            return None
        read = partial(_read_json, data, schema)
        shallow = not deeper_than(data, INFER_DEPTH)
        table = read_counting(data, schema.names, read, shallow, counted)
    if table is None or table.num_rows != lines:
        return None
    if nested:
        count_columns(table, schema.names, counted if unsampled is not None else None)
    table = table.select(schema.names)
    if nested and table.schema != schema:
        return None  # a struct with a key the sample had not: its rows quarantine (`_misfit`)
    add(unsampled, counted)
    return table.append_column(LINE, int64_range(first_line, lines))


def _read_json(data: bytes | memoryview, schema: pa.Schema, mode: str) -> pa.Table:
    return pjson.read_json(
        pa.BufferReader(pa.py_buffer(data)),
        read_options=pjson.ReadOptions(block_size=PARSE_CHUNK, use_threads=False),
        parse_options=pjson.ParseOptions(explicit_schema=schema, unexpected_field_behavior=mode),
    )


INFER_DEPTH = 1000  # opening brackets in one line; Arrow's infer mode crashed at 10-20k


OPEN = ord("{")
JSON_SPACE = b" \t\r\n"
BOM = b"\xef\xbb\xbf"


def _one_object_per_line(data: bytes | memoryview, first_line: int) -> bool:
    """Whether Arrow's rows are the block's lines one to one, given that their counts agree.

    Arrow reads a stream of objects, not lines: a line with two objects (`cat` of a file
    without its final newline) gives two rows, a blank line none, an object may span lines;
    beside each other the counts agree and every row between is numbered off by one (its
    generated id too), where in another block the same line is quarantined. So every line must
    open an object: the lines whose first byte is not `{` (rare; counted with the newlines)
    are read here, and one that is blank or does not start an object sends the block to the
    line-by-line path, which reads each line on its own whatever the blocks.
    """
    values = np.frombuffer(data, np.uint8)
    newlines = np.flatnonzero(values == 10)
    starts = newlines[newlines < len(values) - 1] + 1
    odd = starts[values[starts] != OPEN].tolist()
    if len(values) and values[0] != OPEN:
        odd.insert(0, 0)
    for start in odd:
        after = int(np.searchsorted(newlines, start))
        end = int(newlines[after]) if after < len(newlines) else len(values)
        line = bytes(values[start:end])
        if start == 0 and first_line == 1 and line.startswith(BOM):
            line = line[len(BOM) :]  # Arrow takes a byte order mark at the file's start
        if not line.lstrip(JSON_SPACE).startswith(b"{"):
            return False
    return True


def _pieces(
    data: bytes,
    first_line: int,
    src: SourceFile,
    schema: pa.Schema,
    q: Quarantine,
    columns: tuple[str | None, str | None],
    budget: list[int],
    unsampled: Unsampled | None = None,
) -> Iterator[pa.Table]:
    """A rejected block's rows in order: each half Arrow takes whole (and whose text is valid
    UTF-8, so a bad line's quarantine reason stays Python's), the rest halved again while
    Arrow's retries have parsed less than `budget` bytes (where most lines are bad, retrying
    costs more than it saves)."""
    middle = data.find(b"\n", len(data) // 2)
    small = len(data) <= SLOW_BYTES or not 0 <= middle < len(data) - 1
    if small or budget[0] < len(data):
        yield _parse_lines_slowly(data, first_line, src, schema, q, *columns, unsampled)
        return
    budget[0] -= len(data)
    second = first_line + data.count(b"\n", 0, middle + 1)
    for piece, line in ((data[: middle + 1], first_line), (data[middle + 1 :], second)):
        taken: Unsampled | None = None if unsampled is None else {}
        table = _arrow_block(piece, line, schema, None, taken)
        if table is not None and _valid(table):
            add(unsampled, taken or {})
            yield table
        else:
            yield from _pieces(piece, line, src, schema, q, columns, budget, unsampled)


def _valid(table: pa.Table) -> bool:
    try:
        table.validate(full=True)
        return True
    except pa.ArrowInvalid:
        return False


def _parse_lines_slowly(
    data: bytes,
    first_line: int,
    src: SourceFile,
    schema: pa.Schema,
    q: Quarantine,
    id_column: str | None = None,
    text_column: str | None = None,
    unsampled: Unsampled | None = None,
) -> pa.Table:
    as_text = _as_text(schema, id_column, text_column)
    rows: list[dict[str, Any]] = []
    numbers: list[int] = []
    for offset, raw in enumerate(data.split(b"\n")):
        line = first_line + offset
        if line == 1 and raw.startswith(BOM):
            raw = raw[len(BOM) :]  # the file's byte order mark, which Arrow's path skips too
        if not raw.strip():
            continue
        reason = None
        try:
            row = json.loads(raw.decode("utf-8"))
            if not isinstance(row, dict):
                reason = "line is not a JSON object"
            else:
                read, row = row, {f.name: row.get(f.name) for f in schema}
                if spelled := [name for name in as_text if _is_scalar(row[name])]:
                    written = json.loads(raw, parse_int=str, parse_float=str)  # 1.50: "1.50"
                    row.update((name, _json_text(written[name])) for name in spelled)
                reason = misfit(row, schema)
        except UnicodeDecodeError:
            reason = "invalid UTF-8"
        except json.JSONDecodeError as exc:
            reason = f"invalid JSON: {exc.msg}"
        except RecursionError:
            reason = "invalid JSON: nested too deeply to read"
        if reason:
            q.add(src.name, line, reason, raw.decode("utf-8", errors="replace"))
            continue
        count_keys(read, schema.names, unsampled)
        rows.append(row)
        numbers.append(line)
    table = _rows_table(rows, schema)
    return table.append_column(LINE, int64s(numbers))


def _as_text(schema: pa.Schema, id_column: str | None, text_column: str | None) -> list[str]:
    """The string columns whose numbers and booleans are kept as their JSON text (`1.50`,
    `true`): the id, and (given the text column) every field but the text, which the schema
    sample typed string because it saw text beside numbers or booleans, or an integer past
    int64 (each such number was quarantined: 99 of 100 rows of a field with one "high" among
    numbers). Never the text column: a document must be a string."""
    return [
        f.name
        for f in schema
        if pa.types.is_string(f.type)
        and (f.name == id_column or (text_column is not None and f.name != text_column))
    ]


def _rows_table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Rows that fit `schema` as a table, through Arrow's JSON reader: `pa.Table.from_pylist`
    imports pandas on its first call (~0.35 s of CPU in every worker that meets a bad line).
    A row Arrow's reader takes otherwise than `pa.array` (a float in an int64 column, which
    `pa.array` truncates) makes the reader fail, and then `from_pylist` builds the table."""
    if not rows:
        return schema.empty_table()
    data = ("\n".join(json.dumps(row) for row in rows) + "\n").encode()
    options = pjson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    try:
        table = pjson.read_json(
            pa.BufferReader(data),
            read_options=pjson.ReadOptions(block_size=len(data) + 1, use_threads=False),
            parse_options=options,
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        table = None
    if table is None or table.num_rows != len(rows):
        return pa.Table.from_pylist(rows, schema=schema)
    return table.select(schema.names)


def _is_scalar(value: Any) -> bool:
    """A number or boolean, kept in a string column as its JSON text (`_as_text`)."""
    return isinstance(value, int | float)


def _json_text(value: Any) -> Any:
    return value if isinstance(value, str) else json.dumps(value)  # a number's came as text
