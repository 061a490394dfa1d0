"""Review (H7) of shard's output schema for a Parquet input with string_view columns.

Since d569f91 a string_view TEXT column is read and cast to string; the other columns keep
their input type, so a kept `src: string_view` column (a pyarrow or polars table written as
it is) becomes part of the output dataset's schema. The next stage then fails on it: dedup's
write filters and takes rows, and Arrow has no `array_filter` / `array_take` kernel for
string_view ("ArrowNotImplementedError: Function 'array_filter' has no kernel matching input
types (string_view, bool)"): exit 1 with a traceback, for MinHash and exact dedup alike.

Oracle: the same input written with plain string columns dedups fine; the kept rows must match.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import cli, column

LINES = [ln.strip() for ln in Path("/usr/share/common-licenses/GPL-3").read_text().splitlines()]
TEXTS = [t for t in LINES if len(t) > 40][:10] * 2  # each document twice


def _dedup(tmp_path: Path, kind: pa.DataType, method: str) -> list[str]:
    src = tmp_path / f"in-{kind}"
    src.mkdir()
    table = pa.table(
        {
            "text": pa.array(TEXTS, kind),
            "src": pa.array(["a", "b"] * (len(TEXTS) // 2), kind),
        }
    )
    pq.write_table(table, src / "a.parquet")
    shards = tmp_path / f"shards-{kind}"
    cli("shard", src, "-o", shards, "-q", "-w", "1")
    out = tmp_path / f"out-{kind}-{method}"
    proc = cli("dedup", shards, "-o", out, "-q", "-w", "1", "--method", method, check=False)
    assert proc.returncode == 0, proc.stderr[-300:]
    return column(out, "text")


@pytest.mark.parametrize("method", ["minhash", "exact"])
def test_a_string_view_input_column_does_not_break_dedup(tmp_path: Path, method: str) -> None:
    want = _dedup(tmp_path, pa.string(), method)
    assert len(want) == len(TEXTS) // 2  # the oracle run removed every second copy
    assert _dedup(tmp_path, pa.string_view(), method) == want
