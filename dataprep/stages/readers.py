"""Format readers for the shard stage: blocks of raw input to Arrow tables.

The fast path hands a whole block to Arrow's C++ parsers; only a block that Arrow rejects is
re-read line by line in Python, so one bad line costs one block's worth of slow parsing and
goes to quarantine with its line number instead of failing the run.

Each format lives in its own module (`readers_jsonl`, `readers_csv`, `readers_parquet`,
`readers_text`, with what they share in `readers_common`); this one gathers their names, so the
shard stage reads `readers.X` whatever the format.
"""

from __future__ import annotations

from dataprep.stages.readers_common import (
    LINE,
    counted_blocks,
    drop_invalid_utf8,
    line_blocks,
    numbered_ids,
    quarantine_cut,
    view_blocks,
)
from dataprep.stages.readers_csv import WholeRecords, csv_schema, read_csv, reader_names
from dataprep.stages.readers_jsonl import MAGIC, PARSE_CHUNK, jsonl_schema, parse_jsonl_block
from dataprep.stages.readers_lines import LazyLines, line_cuts, line_ranges
from dataprep.stages.readers_parquet import check_text_type, open_parquet, read_parquet
from dataprep.stages.readers_text import read_text_documents, read_text_lines

__all__ = [
    "LINE",
    "LazyLines",
    "MAGIC",
    "PARSE_CHUNK",
    "WholeRecords",
    "check_text_type",
    "counted_blocks",
    "csv_schema",
    "drop_invalid_utf8",
    "jsonl_schema",
    "line_blocks",
    "line_cuts",
    "line_ranges",
    "numbered_ids",
    "open_parquet",
    "parse_jsonl_block",
    "quarantine_cut",
    "read_csv",
    "read_parquet",
    "read_text_documents",
    "read_text_lines",
    "reader_names",
    "view_blocks",
]
