"""Kept JSONL struct fields (`--keep meta`) whose later rows hold keys the schema sample (the
first input) did not: `{"lang": "de", "url": "..."}` after a sample of `{"lang": "en"}`.

The output schema is fixed once from the sample, so every shard has the same one; Arrow's
reader then dropped `url` silently (exit 0, nothing in the report). Such a row now goes to the
quarantine with its source, line and a reason naming the field and the key, as a value that
does not fit its sampled type does; a key whose value is null loses nothing and the row is kept.

Oracle: json.loads per line. Each row is either written with its struct exactly as read (its
null-valued keys aside) or quarantined, the same rows whatever the workers and block sizes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import cli, column

LINES = [ln.strip() for ln in Path("/usr/share/common-licenses/GPL-2").read_text().splitlines()]
TEXTS = [t for t in LINES if t][:240]
SAMPLED = {"lang"}  # the keys of the first input's structs


def _rows(name: str, wide: bool, listed: bool) -> list[dict]:
    rows = []
    for i, text in enumerate(TEXTS[:120] if name == "a" else TEXTS[120:]):
        meta: dict = {"lang": "en" if name == "a" else "de"}
        if wide and i % 7 == 3:
            meta["url"] = f"http://example.org/{i}"
        if wide and i % 11 == 5:
            meta["url"] = None  # nothing to lose
        if wide and i % 13 == 8:
            meta["extra"] = {"depth": i}
        value = [meta, {"lang": "xx"}] if listed else meta
        rows.append({"id": f"{name}-{i}", "text": text, "meta": value})
    return rows


def _run(folder: Path, out: Path, *args: str) -> tuple[dict, dict]:
    cli("shard", folder, "-o", out, "-q", "--keep", "meta", *args)
    kept = dict(zip(column(out, "id"), column(out, "meta"), strict=True))
    path = out / ".quarantine.jsonl"
    quarantined = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
    return kept, {(q["source"].rsplit("/", 1)[-1], q["line"]): q["reason"] for q in quarantined}


def _structs(value: dict | list) -> list[dict]:
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("listed", [False, True], ids=["struct", "list_of_structs"])
def test_a_struct_key_missing_from_the_sample_is_never_dropped_silently(
    tmp_path: Path, listed: bool
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    written = {}
    for name, wide in (("a", False), ("b", True)):
        rows = _rows(name, wide, listed)
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        written.update({(f"{name}.jsonl", line): r for line, r in enumerate(rows, 1)})
    one = _run(folder, tmp_path / "one", "-w", "1")
    two = _run(folder, tmp_path / "two", "-w", "2", "--chunk-bytes", "3000", "--block-bytes", "700")
    assert one == two  # the same rows kept and quarantined whatever the blocks
    kept, quarantined = one
    for where, row in written.items():
        extra = {
            k
            for s in _structs(row["meta"])
            for k, v in s.items()
            if k not in SAMPLED and v is not None
        }
        if not extra:
            assert where not in quarantined
            got = _structs(kept[row["id"]])
            assert got == [{"lang": s["lang"]} for s in _structs(row["meta"])]
        else:
            assert row["id"] not in kept
            reason = quarantined[where]
            assert reason.startswith("field 'meta': ") and any(k in reason for k in extra)
    assert len(kept) + len(quarantined) == len(written)
    assert quarantined  # the test holds rows with keys the sample did not have


def test_a_later_parquet_files_struct_key_is_never_dropped_silently(tmp_path: Path) -> None:
    """The same for Parquet inputs: the cast to the first file's struct type dropped `url`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "in"
    folder.mkdir()
    first = _rows("a", False, False)
    second = _rows("b", True, False)
    pq.write_table(pa.Table.from_pylist(first), folder / "a.parquet")
    pq.write_table(pa.Table.from_pylist(second), folder / "b.parquet")
    kept, quarantined = _run(folder, tmp_path / "out", "-w", "1")
    wide = [r for r in second if r["meta"].get("url") is not None or r["meta"].get("extra")]
    assert wide and all(r["id"] not in kept for r in wide)
    assert set(kept) == {r["id"] for r in first + second} - {r["id"] for r in wide}
    assert all(
        kept[r["id"]] == {"lang": r["meta"]["lang"]} for r in first + second if r["id"] in kept
    )
    assert len(quarantined) == len(wide)
    assert all(r.startswith("field 'meta': key ") for r in quarantined.values())


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_deeply_nested_field_beside_a_kept_struct_is_no_crash(
    tmp_path: Path, workers: str
) -> None:
    """With a struct kept, blocks are read in Arrow's infer mode, which recursed once per
    nesting level of any field: 50,000 levels killed the command (SIGSEGV, exit -11). Such
    a line now takes the line-by-line path: the other rows are kept, it goes to quarantine."""
    src = tmp_path / "deep.jsonl"
    deep = b"[" * 50_000 + b"]" * 50_000
    src.write_bytes(
        b'{"text": "a", "meta": {"lang": "en"}}\n'
        b'{"text": "b", "meta": {"lang": "de"}, "x": ' + deep + b"}\n"
        b'{"text": "c", "meta": {"lang": "fr"}}\n'
    )
    kept, quarantined = _run(src, tmp_path / "out", "-w", workers)
    assert kept == {"deep.jsonl:1": {"lang": "en"}, "deep.jsonl:3": {"lang": "fr"}}
    assert list(quarantined) == [("deep.jsonl", 2)]
