"""CSV columns whose sampled cells hold an integer written with a leading zero (`00501`, a ZIP
code, a part number): Arrow's inference types them as numbers and `00501` became 501, so such a
column is kept as text instead, byte for byte. "0" itself and decimals (`0.5`) are numbers."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from dataprep.sources import SourceFile, open_source
from dataprep.stages.readers_csv import SAMPLE_BLOCKS, WholeRecords

ZERO_LED = r"^\s*[+-]?0[0-9]+\s*$"


def zero_led(src: SourceFile, names: list[str], tolerate_cut: bool = False) -> set[str]:
    """Those of `names` (columns typed as numbers) whose cells in the first block, the sample
    Arrow typed them from, hold an integer with a leading zero."""
    if not names:
        return set()
    with open_source(src) as raw:
        stream = WholeRecords(raw) if tolerate_cut else raw
        try:
            reader = pcsv.open_csv(
                stream,
                read_options=pcsv.ReadOptions(block_size=SAMPLE_BLOCKS[0], use_threads=False),
                parse_options=pcsv.ParseOptions(
                    invalid_row_handler=lambda row: "skip", newlines_in_values=True
                ),
                convert_options=pcsv.ConvertOptions(
                    column_types={name: pa.string() for name in names},
                    include_columns=names,
                    check_utf8=False,
                ),
            )
            batch = reader.read_next_batch()
        except (pa.ArrowException, StopIteration, UnicodeDecodeError):
            return set()  # no sample Arrow reads: the schema's types came from elsewhere
    return {
        name
        for name in names
        if pc.any(pc.match_substring_regex(batch.column(name), ZERO_LED)).as_py()
    }
