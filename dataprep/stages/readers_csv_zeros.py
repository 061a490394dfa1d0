"""CSV columns whose sampled cells a number type would change: an integer written with a
leading zero (`00501`, a ZIP code, a part number; Arrow's inference typed it int64 and it became
501) or with more digits than a double holds (a 20-digit account number, typed double). Such a
column is kept as text instead, byte for byte. "0" itself and decimals (`0.5`) are numbers."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv

from dataprep.sources import SourceFile, open_source
from dataprep.stages.readers_csv import SAMPLE_BLOCKS, WholeRecords, _open_csv
from dataprep.stages.readers_csv_cast import changed


def zero_led(
    src: SourceFile, kinds: dict[str, pa.DataType], tolerate_cut: bool = False
) -> set[str]:
    """Those of `kinds` (columns typed as numbers) whose cells in the first block, the sample
    Arrow typed them from, hold a value their type would change (`readers_csv_cast.changed`)."""
    names = list(kinds)
    if not names:
        return set()

    def skip(row: Any) -> str:
        return "skip"

    as_text = pcsv.ConvertOptions(
        column_types={name: pa.string() for name in names}, include_columns=names, check_utf8=False
    )
    with open_source(src) as raw:
        stream = WholeRecords(raw) if tolerate_cut else raw
        try:
            batch = _open_csv(stream, SAMPLE_BLOCKS[0], skip, as_text).read_next_batch()
        except (pa.ArrowException, StopIteration, UnicodeDecodeError):
            return set()  # no sample Arrow reads: each such cell quarantines (`readers_csv_cast`)
    return {name for name in names if changed(batch.column(name), kinds[name])}
