"""CSV cells (read as text) to the schema's types: Arrow's null spellings are null only where
a column is not text, and a cell a number type would change quarantines its row instead: an
integer written with a leading zero (`00501`, a ZIP code, became 501), in hexadecimal (`0x1F`,
a part number, became 31) or with more digits than a double holds (`12345678901234567890`, an
account number, became 1.2345678901234567e19)."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

from dataprep.sources import SourceFile
from dataprep.stage import Quarantine
from dataprep.stages.readers_common import LINE, _cast_columns

ZERO_LED = r"^\s*[+-]?0[0-9]+\s*$"  # "0" itself and decimals ("0.5") are numbers
HEX = r"^0[xX][0-9a-fA-F]+$"  # Arrow's integer cast takes it: "0x1F" (a part number) became 31
CHANGED = r"^(\s*[+-]?0[0-9]+\s*|0[xX][0-9a-fA-F]+)$"  # ZERO_LED or HEX, in one pass
LONG_INT = r"^\s*[+-]?[0-9]{16,}\s*$"  # 2**53 has 16 digits: a double may not hold it


def cast_csv(table: pa.Table, schema: pa.Schema, src: SourceFile, q: Quarantine) -> pa.Table:
    """`_cast_columns`, after the spellings Arrow takes for null ("NA", "null", "N/A", ...)
    are made null in the columns cast to other types than text: read so everywhere, a
    document "NA", an id "NA" or a country "NA" became null (a row without text or id)."""
    import pyarrow.compute as pc

    spellings = None
    for i, name in enumerate(table.column_names):
        if name in schema.names and not pa.types.is_string(schema.field(name).type):
            values = table.column(i)
            if pa.types.is_string(values.type):
                spellings = _null_spellings() if spellings is None else spellings
                spelled = pc.is_in(values, value_set=spellings)
                table = table.set_column(i, name, pc.if_else(spelled, None, values))
    return _cast_columns(_zero_led_rows(table, schema, src, q), schema, src, q)


def is_number(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind)


def changed(values: pa.ChunkedArray | pa.Array, kind: pa.DataType) -> list[tuple[int, str]]:
    """The cells of a text column that casting to the number type `kind` would change, each
    with why; a regex over the column first, Python only for its hits."""
    import pyarrow.compute as pc

    hits = pc.match_substring_regex(values, CHANGED)
    if pa.types.is_floating(kind):
        hits = pc.or_(hits, pc.match_substring_regex(values, LONG_INT))
    if not pc.any(hits).as_py():
        return []
    found = []
    for i in np.flatnonzero(pc.fill_null(hits, False).to_numpy(zero_copy_only=False)):
        text = str(values[int(i)].as_py())
        if re.match(ZERO_LED, text):
            found.append((int(i), f"{text!r} has a leading zero that {kind} would drop"))
        elif re.match(HEX, text):
            found.append((int(i), f"{text!r} is hexadecimal, which {kind} would read as a number"))
        elif not _exact(text):
            found.append((int(i), f"{text!r} has more digits than {kind} holds"))
    return found


def _exact(text: str) -> bool:
    """Whether a double holds the integer `text` exactly."""
    try:
        return int(text) == int(float(text))
    except OverflowError:  # past a double's range: inf
        return False


def _zero_led_rows(table: pa.Table, schema: pa.Schema, src: SourceFile, q: Quarantine) -> pa.Table:
    """The rows without a cell its number column's type would change (`changed`); those go to
    the quarantine: the schema sample typed the column as a number from values without such a
    cell (a sample holding one types it text: `readers_csv_zeros`), and the cast would change
    the value unsaid."""
    keep = None
    for name in table.column_names:
        if name not in schema.names or not is_number(kind := schema.field(name).type):
            continue
        values = table.column(name)
        if not pa.types.is_string(values.type):
            continue
        for i, why in changed(values, kind):
            keep = np.ones(table.num_rows, dtype=bool) if keep is None else keep
            if keep[i]:
                keep[i] = False
                q.add(
                    src.name,
                    table.column(LINE)[i].as_py(),
                    f"field {name!r}: {why} (the schema sample typed the column from values "
                    f"without such a cell; --keep {name}:string, beside the other fields to "
                    "keep, keeps the column as text)",
                )
    return table if keep is None else table.filter(pa.array(keep))


def _null_spellings() -> pa.Array:
    """Arrow's null spellings as a string array, from buffers (`pa.array` imports pandas)."""
    words = [w.encode() for w in pcsv.ConvertOptions().null_values]
    offsets = np.cumsum([0, *map(len, words)]).astype(np.int32)
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(words))]
    return pa.Array.from_buffers(pa.string(), len(words), buffers)
