"""Whether a JSON value (json.loads') fits an Arrow column as Arrow's JSON reader would take
it, and if not, the one-line reason its row is quarantined with."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from dataprep.stages.readers_common import _short

SIMPLE_KINDS = (pa.string(), pa.bool_(), pa.int64(), pa.float64())


def _plain_fit(value: Any, kind: pa.DataType) -> bool | None:
    """Whether `value` fits a column of a simple `kind` as `pa.array` would say (True: fits,
    False: does not), told from the Python type; None where only `pa.array` can tell (its
    first call imports pandas, ~0.35 s in every worker that meets a bad line)."""
    if kind not in SIMPLE_KINDS:
        return None
    if isinstance(value, list | dict):
        return False
    if pa.types.is_string(kind):
        if type(value) is not str:
            return False
        try:
            value.encode()
        except UnicodeEncodeError:
            return None  # pa.array's error names the lone surrogate
        return True
    if type(value) is str:
        return False
    if pa.types.is_boolean(kind):
        return type(value) is bool if type(value) in (bool, int, float) else None
    if type(value) is bool:
        return False  # pa.array takes true as 1 or 1.0; Arrow's JSON reader refuses it
    if pa.types.is_int64(kind):
        if type(value) is float:
            return False  # pa.array truncates 1.5 to 1 silently; Arrow's reader refuses 2.0
        return True if type(value) is int and -(2**63) <= value < 2**63 else None
    return True if type(value) is float or (type(value) is int and abs(value) <= 2**53) else None


def misfit(row: dict[str, Any], schema: pa.Schema) -> str | None:
    """The first field whose value does not fit its column, said as `field 'n': 'abc' is not
    int64` (an encrypted run's quarantine keeps only what comes before ': ')."""
    for field in schema:
        value = row[field.name]
        fit = None if value is None else _plain_fit(value, field.type)
        if value is None or fit:
            continue
        if (unsampled := unsampled_key(value, field.type)) is not None:
            return unsampled_reason(field.name, unsampled)
        if fit is False or _coerced(value, field.type):
            return f"field {field.name!r}: {_short(value)} is not {field.type}"
        if type(value) is str and pa.types.is_timestamp(field.type):
            if _json_time(value, field.type):
                continue  # `pa.array` refuses every string: Arrow's JSON reader takes ISO times
            return f"field {field.name!r}: {_short(value)} is not {field.type}"
        try:
            pa.array([value], field.type)
        except UnicodeEncodeError:
            return f"field {field.name!r}: has a lone surrogate, which is not valid Unicode"
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
            return f"field {field.name!r}: {_short(value)} is not {field.type}"
    return None


def _json_time(value: str, kind: pa.DataType) -> bool:
    """Whether Arrow's JSON reader, which reads the fast path's rows, takes `value` as `kind`
    (its parser is not the string cast's: it takes `Z` and `+02:00` where the cast refuses)."""
    import json

    import pyarrow.json as pjson

    line = json.dumps({"t": value}).encode() + b"\n"
    schema = pa.schema([pa.field("t", kind)])
    try:
        pjson.read_json(
            pa.BufferReader(line), parse_options=pjson.ParseOptions(explicit_schema=schema)
        )
        return True
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return False


def unsampled_reason(name: str, key: str) -> str:
    return (
        f"field {name!r}: key {key!r} is not in the schema sampled from the first input, so it "
        "would be dropped"
    )


def unsampled_key(value: Any, kind: pa.DataType) -> str | None:
    """The path (`extra.depth`) of a struct key, at any depth and in lists too, that `kind`
    lacks and whose value is not null (a null loses nothing): Arrow's reader drops such a key
    silently. None if there is none."""
    if (pa.types.is_list(kind) or pa.types.is_large_list(kind)) and isinstance(value, list):
        paths = (unsampled_key(item, kind.value_type) for item in value)
        return next((p for p in paths if p is not None), None)
    if not (pa.types.is_struct(kind) and isinstance(value, dict)):
        return None
    names = {f.name for f in kind}
    for key, item in value.items():
        if key not in names and item is not None:
            return key
    for f in kind:
        if (inner := unsampled_key(value.get(f.name), f.type)) is not None:
            return f"{f.name}.{inner}"
    return None


def _coerced(value: Any, kind: pa.DataType) -> bool:
    """Whether `pa.array` would change a value nested in `kind` where Arrow's JSON reader
    refuses it: a float in an int64 (0.5 -> 0) or a boolean in a number, at any depth."""
    if value is None:
        return False
    if (pa.types.is_list(kind) or pa.types.is_large_list(kind)) and isinstance(value, list):
        return any(_coerced(v, kind.value_type) for v in value)
    if pa.types.is_struct(kind) and isinstance(value, dict):
        return any(_coerced(value.get(f.name), f.type) for f in kind)
    if pa.types.is_integer(kind):
        return type(value) in (float, bool)
    return pa.types.is_floating(kind) and type(value) is bool


def has_struct(schema: pa.Schema | pa.DataType) -> bool:
    """Whether a struct is in `schema` at any depth: Arrow's reader drops a key of one that
    the schema lacks, so a block of such a schema is read inferring them, to notice one."""
    if isinstance(schema, pa.Schema):
        return any(has_struct(f.type) for f in schema)
    if pa.types.is_struct(schema):
        return True
    if pa.types.is_list(schema) or pa.types.is_large_list(schema):
        return has_struct(schema.value_type)
    return False


def rounded(table: pa.Table, data: bytes | memoryview) -> list[tuple[int, str]]:
    """The rows (of a block Arrow read one row a line) whose double column got an integer a
    double does not hold (12345678901234567890 became 1.2345678901234567e19), each with why:
    the line-by-line path quarantines such a value (`misfit`), and so does a CSV cell. A look
    at each double column (a value 2**53 or past); Python reads only those rows' lines."""
    import json

    found: list[tuple[int, str]] = []
    lines: list[bytes] | None = None
    for name, kind in zip(table.column_names, table.schema.types, strict=True):
        if not pa.types.is_floating(kind):
            continue
        for i in _big(table.column(name)):
            lines = bytes(data).split(b"\n") if lines is None else lines
            try:
                value = json.loads(lines[i].removeprefix(b"\xef\xbb\xbf")).get(name)
                exact = type(value) is not int or float(value) == value
            except OverflowError:
                exact = False
            except (ValueError, RecursionError, AttributeError):
                continue  # Arrow's row, not Python's: left as Arrow read it
            if not exact:
                found.append((i, f"field {name!r}: {value} has more digits than {kind} holds"))
    return found


def _big(column: pa.ChunkedArray) -> list[int]:
    """Rows of a float column whose value is 2**53 or past (a null's slot may count: it is
    then read and left). From the buffers: `to_numpy` of a chunked array imports pandas."""
    rows: list[int] = []
    start = 0
    for chunk in column.chunks:
        width = chunk.type.bit_width // 8
        data = chunk.buffers()[1]
        if data is not None and len(chunk):
            kind = np.dtype(f"f{width}")
            values = np.frombuffer(data, kind, len(chunk), chunk.offset * width)
            rows += (np.flatnonzero(np.abs(values) >= 2**53) + start).tolist()
        start += len(chunk)
    return rows
