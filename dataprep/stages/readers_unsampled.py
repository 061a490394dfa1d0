"""Top-level fields the schema sample lacks, counted as they are read: the output schema is
fixed from the first input, so such a field (a later file's `url`) is not in it unless
`--keep url:string` declares it, and it was dropped with nothing said. Its rows are fine
(text and kept fields): they are not quarantined, but the rows holding a value of each such
field are counted, with the types of those values, for the report and the summary, which
names them and the `--keep` that keeps them (`report`, `note`).

Counted from what the readers have anyway (a CSV block's header columns, a Parquet file's
footer) or, for JSONL, only in a block Arrow's "error" mode stops at an unexpected field: a
block without one is parsed exactly once, as before. Such a block is read with Arrow's infer
mode where no line nests deep (infer recurses once per level: ~15k levels crashed it), else
with "ignore" and its keys counted line by line, depth-safe."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Container
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

LINE = "__line"
PREFIX = "unsampled:"  # a task's count of rows holding a field the schema lacks
LISTED = 100  # fields named in the report; the rest are counted
SHOWN = 5  # fields named in the summary line
UNREAD = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError)

Unsampled = dict[str, int]  # field name -> rows holding a value of it; "NAME\tTYPE" -> of type
NESTED = "nested"  # an object or list: no `--keep NAME:TYPE` declares it


def unexpected(exc: Exception) -> bool:
    """Whether Arrow's JSON reader stopped at a field its explicit schema lacks."""
    return isinstance(exc, pa.ArrowInvalid) and "unexpected field" in str(exc)


def read_counting(
    data: bytes | memoryview,
    names: list[str],
    read: Callable[[str], pa.Table],
    shallow: bool,
    into: Unsampled,
) -> pa.Table | None:
    """A block that holds a field not in `names`, read by `read(mode)`; its rows per such field
    added to `into`. Infer mode (one C++ pass) where every line is `shallow`; else, or where an
    unknown field's values mix types (infer refuses them), "ignore" and Python counts."""
    if shallow:
        try:
            table = read("infer")
        except UNREAD:
            table = None
        if table is not None and not _wide_ints(table, names):
            count_columns(table, names, into)
            return table.select(names)
    try:
        table = read("ignore")
    except UNREAD:
        return None
    count_lines(data, set(names), into)
    return table


def _wide_ints(table: pa.Table, names: list[str]) -> bool:
    """Whether infer mode typed an unknown field double and one of its values is 2**53 or past,
    where it may have been an integer a double does not hold (12345678901234567890 beside 5:
    --keep n:double would round it): Python counts such a block, and types such an integer
    as the schema sample would (`count_keys`). A look at the column, not at the bytes."""
    known = set(names)
    for name, kind in zip(table.column_names, table.schema.types, strict=True):
        if name not in known and pa.types.is_floating(kind):
            values = np.abs(table.column(name).to_numpy())
            if len(values) and np.nanmax(values, initial=0) >= 2**53:
                return True
    return False


def deeper_than(data: bytes | memoryview, limit: int) -> bool:
    """Whether some line holds more than `limit` of `[` and `{` (which bounds its depth from
    above; brackets in strings count too, so such a line is read slowly, never wrongly): true
    where the opening bracket `limit` places after another is on the same line. One pass of
    compares and the brackets' line numbers: ~4 ms per 8 MiB where a cumulative sum over every
    byte took ~17."""
    raw = np.frombuffer(data, np.uint8)
    opens = np.flatnonzero((raw == ord("[")) | (raw == ord("{")))
    if len(opens) <= limit:
        return False
    line = np.searchsorted(np.flatnonzero(raw == ord("\n")), opens)
    return bool((line[limit:] == line[:-limit]).any())


def count_columns(table: pa.Table, known: Container[str], into: Unsampled | None) -> None:
    """Add the non-null values of `table`'s columns that `known` lacks."""
    if into is None:
        return
    for i, name in enumerate(table.column_names):
        if name not in known and name != LINE:
            rows = table.num_rows - table.column(i).null_count
            if rows:  # a JSON string Arrow took for a time: the sample types it string
                kind = table.schema.field(i).type
                _add(into, name, "string" if pa.types.is_temporal(kind) else alias(kind), rows)


def count_keys(row: dict[str, Any], known: Container[str], into: Unsampled | None) -> None:
    """Add one JSON row's keys that `known` lacks and whose value is not null."""
    if into is None:
        return
    for name, value in row.items():
        if value is not None and name not in known:
            kind = PYTHON_TYPES.get(type(value), NESTED)
            if kind == "int64" and not -(2**53) <= value <= 2**53:
                kind = WIDE if -(2**63) <= value < 2**63 else "string"  # its JSON text
            _add(into, name, kind, 1)


PYTHON_TYPES = {str: "string", bool: "bool", int: "int64", float: "double"}
WIDE = "int64 past a double"  # int64 holds it, a double does not


def alias(kind: pa.DataType) -> str:
    """The `pa.type_for_alias` name of a field's type, to suggest `--keep NAME:TYPE`."""
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "string"
    if pa.types.is_integer(kind):
        return "int64"
    if pa.types.is_floating(kind):
        return "double"
    if pa.types.is_nested(kind) or pa.types.is_dictionary(kind):
        return NESTED
    try:
        return str(kind) if pa.type_for_alias(str(kind)) == kind else "string"
    except ValueError:
        return "string"


def _add(into: Unsampled, name: str, kind: str, rows: int) -> None:
    into[name] = into.get(name, 0) + rows
    into[f"{name}\t{kind}"] = into.get(f"{name}\t{kind}", 0) + rows


def count_lines(data: bytes | memoryview, known: Container[str], into: Unsampled) -> None:
    """`count_keys` over each line that is a JSON object; a line nested past Python's
    recursion limit has its top-level keys read by `top_keys`, which keeps no stack."""
    for raw in bytes(data).split(b"\n"):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except RecursionError:
            row = top_keys(raw)
        except ValueError:
            continue  # a line Arrow did not take either: quarantined there
        if isinstance(row, dict):
            count_keys(row, known, into)


TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}\[\]:,]|[^\s"{}\[\]:,]+')


def top_keys(raw: bytes) -> dict[str, Any]:
    """A JSON object's top-level keys, each with its value where that is a scalar and `[]`
    for an object or list, whatever their depth (tokens and a depth count, no recursion)."""
    keys: dict[str, Any] = {}
    depth, key, after_colon = 0, None, False
    for match in TOKEN.finditer(raw):
        token = match.group()
        if token in (b"{", b"["):
            if depth == 1 and after_colon and key is not None:
                keys[key], after_colon = [], False
            depth += 1
        elif token in (b"}", b"]"):
            depth -= 1
        elif depth != 1:
            continue
        elif token == b":":
            after_colon = True
        elif token == b",":
            key, after_colon = None, False
        elif after_colon and key is not None:
            keys[key], after_colon = _scalar(token), False
        elif token.startswith(b'"'):
            key = json.loads(token)
    return keys


def _scalar(token: bytes) -> Any:
    try:
        return json.loads(token)
    except ValueError:
        return ""  # not JSON: Arrow took the line, so this is not reached


def count_parquet(parquet: pq.ParquetFile, known: Container[str], into: Unsampled | None) -> None:
    """Add a Parquet file's columns that `known` lacks, from its metadata alone: its rows less
    the nulls its statistics give (all its rows where they give none, or for a nested one)."""
    if into is None:
        return
    meta = parquet.metadata
    leaves = {meta.schema.column(j).path: j for j in range(meta.num_columns)}
    for field in parquet.schema_arrow:  # by position: a file may repeat a name
        name = field.name
        if name in known:
            continue
        rows = meta.num_rows
        j = leaves.get(name)
        if j is not None:
            for g in range(meta.num_row_groups):
                stats = meta.row_group(g).column(j).statistics
                if stats is not None and stats.has_null_count:
                    rows -= stats.null_count
        if rows:
            _add(into, name, alias(field.type), rows)


def add(into: Unsampled | None, counted: Unsampled) -> None:
    """Counts of a block once it is taken (a rejected block's pieces count their own)."""
    if into is not None:
        for name, rows in counted.items():
            into[name] = into.get(name, 0) + rows


def task_counts(unsampled: Unsampled | None) -> dict[str, int]:
    return {PREFIX + k: v for k, v in (unsampled or {}).items()}


FILLED = "filled:"  # a task's count of rows holding a value of a field --keep declared


def declared(keep: list[str] | None, names: list[str]) -> list[str]:
    """The schema's fields a `--keep NAME:TYPE` declared (`readers_schema._declared`)."""
    typed = {k.rpartition(":")[0] for k in keep or () if ":" in k}
    return [name for name in names if name in typed]


def count_filled(table: pa.Table, names: list[str], into: dict[str, int]) -> None:
    """Add `table`'s values of the fields `names` (null counts Arrow keeps: no pass)."""
    for name in names:
        filled = table.num_rows - table.column(name).null_count
        into[FILLED + name] = into.get(FILLED + name, 0) + filled


def empty_declared(counts: dict[str, int], sampled: list[str]) -> dict[str, object]:
    """`declared_fields_empty`: fields a `--keep NAME:TYPE` declared that the schema sample
    lacked and no row held (a typo is a column of nulls otherwise, exit 0 and nothing said)."""
    empty = [
        key[len(FILLED) :]
        for key, rows in counts.items()
        if key.startswith(FILLED) and not rows and key[len(FILLED) :] not in sampled
    ]
    return {"declared_fields_empty": empty} if empty else {}


def report(counts: dict[str, int], sample: str, kept: list[str]) -> dict[str, object]:
    """`fields_not_in_schema`: {field: rows holding a value of it}, most rows first, the first
    LISTED; `keep_them`: the `--keep` that keeps them too (`kept`, the schema's fields besides
    id and text, then NAME:TYPE for each listed field but a nested one); nothing where every
    field was in the schema sample."""
    fields: dict[str, int] = {}
    kinds: dict[str, set[str]] = {}
    for key, rows in counts.items():
        if key.startswith(PREFIX):
            name, _, kind = key[len(PREFIX) :].partition("\t")
            if kind:
                kinds.setdefault(name, set()).add(kind)
            else:
                fields[name] = rows
    if not fields:
        return {}
    ranked = sorted(fields.items(), key=lambda kv: (-kv[1], kv[0]))[:LISTED]
    out: dict[str, object] = {"fields_not_in_schema": dict(ranked), "schema_sample": sample}
    if len(fields) > LISTED:
        out["fields_not_in_schema_not_listed"] = len(fields) - LISTED
    declared = {name: _one_type(kinds.get(name, set())) for name, _ in ranked}
    typed = [f"{name}:{kind}" for name, kind in declared.items() if kind != NESTED]
    if typed:
        out["keep_them"] = "--keep " + ",".join([*kept, *typed])
    nested = [name for name, kind in declared.items() if kind == NESTED]
    if nested:
        out["fields_not_in_schema_nested"] = nested
    return out


def _one_type(kinds: set[str]) -> str:
    """The type that holds every value seen: ints beside doubles are doubles (but for an int
    a double does not hold), other mixes text (a number kept as text is its JSON text)."""
    if NESTED in kinds:
        return NESTED
    if kinds in ({WIDE}, {WIDE, "int64"}):
        return "int64"
    if kinds == {"int64", "double"}:
        return "double"
    return next(iter(kinds)) if len(kinds) == 1 else "string"


def note(report: dict[str, Any]) -> list[str]:
    """The summary's lines naming the fields left out and how to keep them, and the fields a
    `--keep NAME:TYPE` declared that no row held."""
    empty = report.get("declared_fields_empty") or []
    lines = [
        f"--keep declared {', '.join(empty)}, which no row held (the schema sample lacks "
        f"{'them' if len(empty) > 1 else 'it'} too): a misspelt name?"
    ] if empty else []  # fmt: skip
    fields = report.get("fields_not_in_schema") or {}
    if not fields:
        return lines
    more = len(fields) - SHOWN + report.get("fields_not_in_schema_not_listed", 0)
    shown = ", ".join(f"{k} ({v:,} row{'s' * (v != 1)})" for k, v in list(fields.items())[:SHOWN])
    shown += f" and {more:,} more (see .report.json)" if more > 0 else ""
    how = [f"rerun with {report['keep_them']}"] if report.get("keep_them") else []
    nested = report.get("fields_not_in_schema_nested") or []
    if nested:
        how.append(
            f"{', '.join(nested)} nested: name first an input whose first rows hold "
            f"{'them' if len(nested) > 1 else 'it'} (`shard THAT.jsonl DIR`)"
        )
    return [
        *lines,
        f"left out fields the schema sample ({report.get('schema_sample')}) lacks: {shown}; "
        f"to keep them, {'; '.join(how)}",
    ]
