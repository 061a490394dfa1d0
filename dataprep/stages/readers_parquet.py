"""Parquet input: a damaged file is one sentence, bytes columns become strings checked as UTF-8,
and a value that does not cast quarantines its row."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dataprep.errors import DataprepError
from dataprep.sources import SourceFile
from dataprep.stage import Quarantine
from dataprep.stages.readers_common import (
    LINE,
    _cast_columns,
    _first_line,
    drop_invalid_utf8,
    int64_range,
)
from dataprep.stages.readers_fit import has_struct, unsampled_key, unsampled_reason
from dataprep.stages.readers_unsampled import Unsampled, count_parquet
from dataprep.storage import parquet_source


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
    """A Parquet text column must hold strings (or bytes, checked as UTF-8 row by row), maybe
    dictionary-encoded (pandas' category dtype), which are cast to plain strings."""
    t = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
    text = pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)
    if not (text or _is_binary(t)):
        raise DataprepError(
            f"input {src.path} column {field.name!r} is {field.type}, not text; pass --text-column "
            "naming a string column"
        )


def _is_binary(t: pa.DataType) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t)


def read_parquet(
    src: SourceFile,
    schema: pa.Schema,
    block: int,
    q: Quarantine,
    unsampled: Unsampled | None = None,
) -> Iterator[pa.Table]:
    """Columns cast to the schema: bytes to strings checked as UTF-8, and a value that does not
    cast quarantines its row; a file damaged past its footer is one sentence. `unsampled`
    (None: not counted) gets the values of columns the schema lacks, from the footer. Rows are
    numbered from 0 (`f.parquet:0`, as Parquet tools count rows; JSONL and CSV lines from 1):
    such ids are in datasets already written, so the numbering stays."""
    parquet = open_parquet(src)
    count_parquet(parquet, set(schema.names), unsampled)
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
        numbers = int64_range(row, table.num_rows)
        row += table.num_rows
        for i, name in enumerate(table.column_names):
            target = schema.field(name).type
            given = table.schema.field(name).type
            if _is_binary(given) and pa.types.is_string(target):
                # same layout: binary as string, large_binary as large_string (cast later)
                as_text = pa.large_string() if pa.types.is_large_binary(given) else pa.string()
                text = pa.chunked_array(
                    [c.view(as_text) for c in table.column(i).chunks], type=as_text
                )
                table = table.set_column(i, name, text)  # the UTF-8 check is next
        table = drop_invalid_utf8(table.append_column(LINE, numbers), src, q)
        yield _cast_columns(_drop_unsampled(table, schema, src, q), schema, src, q)


def _drop_unsampled(table: pa.Table, schema: pa.Schema, src: SourceFile, q: Quarantine) -> pa.Table:
    """The rows without a struct key (at any depth) that the schema lacks, which the cast to it
    drops silently: a later file's `meta: {lang, url}` after a sample of `{lang}`. The others
    go to the quarantine, as a JSONL row does (`readers_fit.misfit`)."""
    keep = np.ones(table.num_rows, dtype=bool)
    for field in schema:
        if field.name not in table.column_names or not has_struct(field.type):
            continue
        if table.schema.field(field.name).type == field.type:
            continue
        for i, value in enumerate(table.column(field.name).to_pylist()):
            key = unsampled_key(value, field.type)
            if key is not None and keep[i]:
                keep[i] = False
                q.add(src.name, table.column(LINE)[i].as_py(), unsampled_reason(field.name, key))
    return table if keep.all() else table.filter(pa.array(keep))
