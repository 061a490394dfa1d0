"""Review (H7) of the shard stage's generated ids (`--id-column`: "generated as SOURCE:LINE if
absent"): an id column that holds no value at all in the schema sample.

A JSONL export whose every row has `"id": null`, a CSV whose id column is empty, a Parquet file
whose id column is typed null (pandas writes an all-None column so) all give the id field the
type `null`. `_finish` generates ids only for a string id column; for any other type it sends
each row without an id to the quarantine, so here EVERY row is quarantined ("missing field
'id'") and the command exits 0 with an empty dataset.

Oracle: the rows as written (Python's json / csv modules, pyarrow's reader), each with the id
SOURCE:LINE the stage generates for a row without one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from helpers import cli, column

TEXTS = [ln.strip() for ln in Path("/usr/share/common-licenses/BSD").read_text().splitlines()]
TEXTS = [t.replace(",", " ").replace('"', "") for t in TEXTS if t.strip()][:12]


def _shard(tmp_path: Path, src: Path) -> Path:
    out = tmp_path / "out"
    cli("shard", src, "-o", out, "-q", "-w", "1")
    return out


def test_jsonl_null_ids_are_generated(tmp_path: Path) -> None:
    src = tmp_path / "rows.jsonl"
    src.write_text("".join(json.dumps({"id": None, "text": t}) + "\n" for t in TEXTS))
    out = _shard(tmp_path, src)
    assert column(out, "text") == TEXTS
    assert column(out, "id") == [f"rows.jsonl:{n}" for n in range(1, len(TEXTS) + 1)]


def test_csv_empty_id_column_gets_generated_ids(tmp_path: Path) -> None:
    src = tmp_path / "rows.csv"
    src.write_text("id,text\n" + "".join(f",{t}\n" for t in TEXTS))
    out = _shard(tmp_path, src)
    assert column(out, "text") == TEXTS
    assert column(out, "id") == [f"rows.csv:{n}" for n in range(1, len(TEXTS) + 1)]


def test_parquet_null_typed_id_column_gets_generated_ids(tmp_path: Path) -> None:
    src = tmp_path / "rows.parquet"
    ids = pa.nulls(len(TEXTS), pa.null())
    pq.write_table(pa.table({"id": ids, "text": pa.array(TEXTS)}), src)
    out = _shard(tmp_path, src)
    assert column(out, "text") == TEXTS
    got = column(out, "id")
    assert None not in got and len(set(got)) == len(TEXTS)
