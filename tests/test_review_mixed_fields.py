"""Review (H7) of the shard stage's schema sample for kept JSONL fields (`--keep`): a field
whose values mix numbers and text ("score": 3 in most rows, "score": "high" in one).

The schema sample makes such a field a string column (`readers_jsonl.value_type`: mixed text
and numbers are text, test_shard's test_mixed_types_in_the_schema_sample_are_text_without_pandas).
The rows are then read against that schema and every row whose value is a number is sent to
the quarantine ("field 'score': 0 is not string"): the one column widened to hold both kinds
keeps only the text ones. 99 of 100 rows are lost, and the command exits 0.

Oracle: json.loads per line; each row is kept, its value as the text it was written as (as a
numeric id already is).
"""

from __future__ import annotations

import json
from pathlib import Path

from helpers import cli, column

LINES = [ln.strip() for ln in Path("/usr/share/common-licenses/GPL-2").read_text().splitlines()]
TEXTS = [t for t in LINES if t][:100]


def test_a_field_of_numbers_and_text_keeps_every_row(tmp_path: Path) -> None:
    rows = [{"text": t, "score": i} for i, t in enumerate(TEXTS)]
    rows[50]["score"] = "high"
    src = tmp_path / "mixed.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    cli("shard", src, "-o", out, "-q", "-w", "1", "--keep", "score")
    assert column(out, "text") == TEXTS
    assert column(out, "score") == [str(r["score"]) for r in rows]


def test_floats_after_an_integer_sample_are_not_truncated(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    first = [{"text": t, "score": i % 2} for i, t in enumerate(TEXTS[:10])]
    second = [{"text": t, "score": 0.25 * i} for i, t in enumerate(TEXTS[10:20])]
    for name, rows in (("a.jsonl", first), ("b.jsonl", second)):
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    cli("shard", folder, "-o", out, "-q", "-w", "1", "--keep", "score")
    quarantine = out / ".quarantine.jsonl"
    lost = len(quarantine.read_text().splitlines()) if quarantine.exists() else 0
    kept = dict(zip(column(out, "text"), column(out, "score"), strict=True))
    # each row either kept with its value as json.loads reads it, or quarantined: never changed
    assert all(kept[r["text"]] == r["score"] for r in first + second if r["text"] in kept)
    assert len(kept) + lost == 20


def test_parquet_dictionary_text_column_is_text(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = TEXTS[:30] + TEXTS[:10]  # repeated values: what a category column holds
    src = tmp_path / "category.parquet"
    pq.write_table(pa.table({"text": pa.array(texts).dictionary_encode()}), src)
    assert pa.types.is_dictionary(pq.read_schema(src).field("text").type)
    out = tmp_path / "out"
    proc = cli("shard", src, "-o", out, "-q", "-w", "1", check=False)
    assert proc.returncode == 0, proc.stderr
    assert column(out, "text") == texts


def test_a_list_field_empty_in_the_sample_keeps_later_values(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    first = [{"text": t, "tags": []} for t in TEXTS[:5]]
    second = [{"text": t, "tags": ["licence", str(i)]} for i, t in enumerate(TEXTS[5:10])]
    for name, rows in (("a.jsonl", first), ("b.jsonl", second)):
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    cli("shard", folder, "-o", out, "-q", "-w", "1", "--keep", "tags")
    assert column(out, "text") == TEXTS[:10]
    assert column(out, "tags") == [r["tags"] for r in first + second]


def test_an_integer_past_int64_keeps_its_field_and_rows(tmp_path: Path) -> None:
    rows = [{"text": t, "n": i} for i, t in enumerate(TEXTS[:20])]
    rows[0]["n"] = 2**70
    src = tmp_path / "big.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    cli("shard", src, "-o", out, "-q", "-w", "1", "--keep", "n")
    assert column(out, "text") == TEXTS[:20]
    assert column(out, "n") == [str(r["n"]) for r in rows]


def test_nested_floats_after_an_integer_sample_are_not_truncated(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    first = [{"text": t, "meta": {"score": i}, "v": [i, i + 1]} for i, t in enumerate(TEXTS[:5])]
    second = [
        {"text": t, "meta": {"score": 0.5 + i}, "v": [0.25 + i, 7]}
        for i, t in enumerate(TEXTS[5:8])
    ]
    for name, rows in (("a.jsonl", first), ("b.jsonl", second)):
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    cli("shard", folder, "-o", out, "-q", "-w", "1", "--keep", "meta,v")
    kept = {
        t: (m, v)
        for t, m, v in zip(column(out, "text"), column(out, "meta"), column(out, "v"), strict=True)
    }
    # each row kept exactly as json.loads reads it, or quarantined: never changed
    for row in first + second:
        if row["text"] in kept:
            assert kept[row["text"]] == (row["meta"], row["v"]), row
