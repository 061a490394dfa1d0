"""The output schema of a shard run: fixed once, from a sample of its first input, so every
shard of the output has the same one (id, text, then the kept fields)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pyarrow as pa

from dataprep.errors import DataprepError
from dataprep.sources import SourceFile, TruncatedInput, open_source
from dataprep.stages import readers

SAMPLE_BYTES = 1 << 20
BLANK_PROBE = 1 << 16  # a line-based input whose first bytes are blank and all it has
ARRAY_PROBE = 4096  # bytes of a `.json` input looked at for the `[` of one JSON array


def sample_source(sources: list[SourceFile]) -> SourceFile:
    """The input whose sample fixes the schema: the first that holds a row. An empty or blank
    JSONL/CSV/text file (an empty split, a crashed writer's part) or an empty `.json` array
    sorting first stopped the run with "has no column 'text'", though it was read as no rows
    where it sorted later."""
    for src in sources:
        if src.format == "parquet" or not _blank(src):
            return src
    return sources[0]


def _blank(src: SourceFile) -> bool:
    try:
        with open_source(src) as stream:
            data = stream.read(BLANK_PROBE)
    except (OSError, DataprepError):
        return False  # the sample's own read says what is wrong
    if len(data) >= BLANK_PROBE:
        return False
    text = data.removeprefix(b"\xef\xbb\xbf").strip()  # an empty array: `json.dump([], f)`
    return not text or (
        json_named(src) and text[:1] + text[-1:] == b"[]" and not text[1:-1].strip()
    )


def sample_schema(src: SourceFile, config: Any) -> pa.Schema:
    """The fields of a sample of `src`, which must hold the text column."""
    if src.format == "text":
        sample = pa.schema([])
    elif src.format == "parquet":
        sample = readers.open_parquet(src).schema_arrow
    elif src.format == "csv":
        sample = readers.csv_schema(src, config.on_truncated == "quarantine")
    else:
        if json_named(src):
            try:
                with open_source(src) as stream:
                    head = stream.read(ARRAY_PROBE)
            except (OSError, DataprepError):
                head = b""  # the sample's own read says what is wrong
            check_not_array(src, head)
        if json_named(src) and is_array(head):
            sample = _array_schema(src, config.on_truncated == "quarantine")
        else:
            sample = readers.jsonl_schema(src, SAMPLE_BYTES)
    if config.id_column == config.text_column:
        raise DataprepError(
            f"--id-column and --text-column both name {config.text_column!r}; the id needs a "
            "column of its own (or none: ids are then SOURCE:LINE)"
        )
    sample = _unrepeated(src, sample, config)
    if src.format != "text" and config.text_column not in sample.names:
        raise DataprepError(
            f"input {src.name} has no column {config.text_column!r} (columns: "
            f"{', '.join(sample.names) or 'none'}); pass --text-column"
        )
    if src.format == "parquet":
        readers.check_text_type(src, sample.field(config.text_column))
    return sample


def infer_schema(src: SourceFile, config: Any, sample: pa.Schema | None = None) -> pa.Schema:
    """The output schema, from the first input (`sample`: its `sample_schema`): id, text,
    then the kept fields."""
    sample = sample_schema(src, config) if sample is None else sample
    fields = [f for f in sample if f.name not in (config.text_column, config.id_column)]
    declared: dict[str, pa.DataType] = {}
    if config.keep is not None:
        declared = _declared(src, sample, config.keep)
        declared = {
            k: v for k, v in declared.items() if k not in (config.text_column, config.id_column)
        }
        fields = [f for f in fields if f.name in config.keep or f.name in declared]
    id_type = sample.field(config.id_column).type if ids_given(sample, config) else None
    if src.format == "csv":
        id_type = None  # a CSV cell is text: "007" and "7" are two ids, not the number 7
        text = _zero_led(src, [f for f in fields if f.name not in declared], config)
        fields = [pa.field(f.name, pa.string()) if f.name in text else f for f in fields]
    fields = [pa.field(f.name, declared.pop(f.name, f.type)) for f in fields]
    fields += [pa.field(name, kind) for name, kind in declared.items()]  # first seen later
    id_field = pa.field(config.id_column, pa.string() if id_type is None else id_type)
    fields = [pa.field(f.name, _open(f.type)) for f in fields]
    return pa.schema([id_field, pa.field(config.text_column, pa.string()), *fields])


def _declared(src: SourceFile, sample: pa.Schema, keep: list[str]) -> dict[str, pa.DataType]:
    """`--keep`'s NAME:TYPE entries (an Arrow type name: string, int64, double, bool, ...),
    which keep a field of that type whether or not the sample has it: the schema is fixed
    from a sample of the first input, so a field first seen later is kept only so. A plain
    NAME must be in the sample (a typo is one sentence, not a column of nulls)."""
    declared: dict[str, pa.DataType] = {}
    missing = []
    for entry in keep:
        name, colon, alias = entry.rpartition(":")
        if entry in sample.names or not colon:
            missing += [] if entry in sample.names else [entry]
            continue
        try:
            kind = _open(pa.type_for_alias(alias))
        except ValueError:
            raise DataprepError(
                f"--keep {entry}: {alias!r} is not an Arrow type name; use e.g. string, int64, "
                "double, bool or timestamp[s]"
            ) from None
        if declared.setdefault(name, kind) != kind:  # the last one won, unsaid
            raise DataprepError(
                f"--keep declares {name} twice with two types ({declared[name]}, {kind}); "
                "give it one"
            )
        if src.format == "jsonl" and not json_reads(declared[name]):
            raise DataprepError(
                f"--keep {entry}: Arrow's JSON reader reads no {declared[name]} from a JSON "
                f"value (a date or time is a string there), so every row holding {name} would "
                f"be quarantined; keep it as {name}:string, or {name}:timestamp[s] for ISO "
                "dates and times"
            )
    if missing:
        raise DataprepError(
            f"--keep names {', '.join(missing)}, which {src.name} does not have (columns: "
            f"{', '.join(sample.names)}); the output schema is fixed from a sample of the first "
            f"input: to keep a field first seen later, give its type (--keep {missing[0]}:string)"
        )
    return declared


def json_reads(kind: pa.DataType) -> bool:
    """Whether Arrow's JSON reader takes JSON values (strings, numbers) as `kind`: no date or
    time from a string (date32 only from a count of days), no half float, duration, interval."""
    return not (
        pa.types.is_date(kind)
        or pa.types.is_time(kind)
        or pa.types.is_float16(kind)
        or pa.types.is_duration(kind)
        or pa.types.is_interval(kind)
    )


def _zero_led(src: SourceFile, fields: list[pa.Field], config: Any) -> set[str]:
    """The kept CSV number fields whose sample holds a value their type would change (`00501`,
    a 20-digit integer as a double): they are kept as text instead."""
    from dataprep.stages.readers_csv_cast import is_number

    numbers = {f.name: f.type for f in fields if is_number(f.type)}
    if not numbers:
        return set()
    from dataprep.stages.readers_csv_zeros import zero_led

    return zero_led(src, numbers, config.on_truncated == "quarantine")


def ids_given(sample: pa.Schema, config: Any) -> bool:
    """Whether the sample's rows hold ids: an id field typed null (every value null: pandas'
    all-None column, an empty CSV column) is none, and its ids are generated as strings."""
    names = sample.names
    return config.id_column in names and not pa.types.is_null(sample.field(config.id_column).type)


def _open(kind: pa.DataType) -> pa.DataType:
    """A sampled type with what the sample could not tell (null: no value seen, as in a field
    null throughout or an empty list) as string, so later values of text fit: `tags: []` in
    the sample made list<null>, and every later row with a tag was quarantined. View types
    (a Parquet input's string_view) become plain ones: the next stage's filter refused them."""
    if pa.types.is_null(kind) or pa.types.is_string_view(kind):
        return pa.string()  # a view type: most Arrow kernels (filter, take) refuse it
    if pa.types.is_binary_view(kind):
        return pa.binary()
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        make = pa.list_ if pa.types.is_list(kind) else pa.large_list
        return make(_open(kind.value_type))
    if pa.types.is_struct(kind):
        return pa.struct([pa.field(f.name, _open(f.type)) for f in kind])
    return kind


def _unrepeated(src: SourceFile, sample: pa.Schema, config: Any) -> pa.Schema:
    """The sample without a name it repeats (a spreadsheet's trailing empty cells make two
    columns named ""), which no reader can select; the text or id repeated is one sentence."""
    names = sample.names
    repeated = {n for n in names if names.count(n) > 1}
    clash = sorted(repeated & {config.text_column, config.id_column})
    if clash:
        name = clash[0]
        raise DataprepError(
            f"input {src.name} has {names.count(name)} columns named {name!r}; rename them "
            "so one holds the " + ("text" if name == config.text_column else "id")
        )
    return pa.schema([f for f in sample if f.name not in repeated]) if repeated else sample


def json_named(src: SourceFile) -> bool:
    """A `.json` input (C4's `.json.gz`): read as JSON Lines, unless it holds one array."""
    name = src.path.rstrip("/").lower()
    for suffix in (".gz", ".zst", ".zstd"):
        name = name.removesuffix(suffix)
    return name.endswith(".json")


def is_array(head: bytes) -> bool:
    return head.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n").startswith(b"[")


def check_not_array(src: SourceFile, head: bytes) -> None:
    """One sentence where a `.json` input is one JSON object spread over lines (its first line
    a lone `{`, as SQuAD's `{"data": [...]}`), not JSON Lines: read as lines, every line of it
    would be quarantined. (One JSON array is read element by element: `readers_json_array`.)"""
    start = head.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")
    if not json_named(src) or start.split(b"\n", 1)[0].rstrip() != b"{":
        return
    name = src.path.rstrip("/").rsplit("/", 1)[-1]
    stem = name.split(".json", 1)[0]
    raise DataprepError(
        f"input {src.path} holds one JSON object over many lines, not JSON Lines (one object "
        f"per line) or an array of objects; convert it first, e.g. `jq -c '.data[]' {name} > "
        f"{stem}.jsonl` (for .gz: `zcat {name} | jq -c '.data[]' > {stem}.jsonl`, naming the "
        "key that holds its rows), and shard that"
    )


def _array_schema(src: SourceFile, tolerate_cut: bool) -> pa.Schema:
    """`jsonl_schema` of a JSON array's first SAMPLE_BYTES of elements, as lines (those
    before a cut, with `--on-truncated quarantine`)."""
    import tempfile
    from pathlib import Path

    from dataprep.stages.readers_common import _cut_before_first_row
    from dataprep.stages.readers_json_array import array_lines

    cuts: list[int] = []
    on_cut = (lambda line, tail: cuts.append(line)) if tolerate_cut else None
    data = next(array_lines(src, SAMPLE_BYTES, on_cut), (b"", 1))[0]
    if cuts and not data:
        raise _cut_before_first_row(src)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sample.jsonl"
        path.write_bytes(data)
        lines = SourceFile(str(path), src.name, "jsonl", None, len(data), 0)
        try:
            return readers.jsonl_schema(lines, SAMPLE_BYTES)
        except DataprepError:  # it named the temporary file: say it of the input
            first = data.split(b"\n", 1)[0][:80].decode("utf-8", errors="replace")
            raise DataprepError(
                f"input {src.path} is a JSON array with no object among its first elements "
                f"(first: {first!r}); shard reads an array of objects, one row each"
            ) from None


Block = TypeVar("Block", bound=tuple)
OnCut = Callable[[int, bytes], None]


def json_blocks(
    blocks: Iterator[Block], src: SourceFile, start: int, block: int, on_cut: OnCut | None = None
) -> Iterator[Any]:
    """`blocks` (data, line, line count) of a JSONL source; for a `.json` one, its first bytes
    checked by `check_not_array` (a later input is read in a task, past the driver's sample),
    and one holding a JSON array read element by element instead (`on_cut`: a cut one's
    elements before the cut are kept), by the task reading its start (a task reading a later
    range of it reads nothing). Looked at before `blocks` reads a byte: a one-line array is
    one line, which `blocks` would read whole into memory (745 MB for 152 MB)."""
    if not json_named(src):
        yield from blocks
        return
    try:
        with open_source(src) as stream:
            head = stream.read(ARRAY_PROBE)
    except TruncatedInput:
        head = b""  # cut in its first bytes: `blocks` says so (an error, or `on_cut`)
    if not start:
        check_not_array(src, head)
    if not is_array(head):
        yield from blocks
    elif not start:
        from dataprep.stages.readers_json_array import array_lines

        lines = array_lines(src, max(block, 1 << 20), on_cut)
        yield from ((data, line, None) for data, line in lines)
