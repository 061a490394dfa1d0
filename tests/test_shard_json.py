"""`.json` inputs: C4 and many HF dumps ship JSON Lines named `.json` / `.json.gz`, which
`shard DIR` read as nothing it knew ("cannot tell the format"). A `.json` is read as JSON
Lines, or, holding a single JSON array (what `json.dump(list_of_rows)` writes, Alpaca's
instruction sets), element by element; one JSON object over many lines stops with one
sentence saying how to convert it, never a traceback nor a quarantine of every line.

Oracle: gzip + json.loads over the inputs.
"""

from __future__ import annotations

import gzip
import json
import subprocess
from pathlib import Path

import pytest
from helpers import cli, column

LINES = [ln.strip() for ln in Path("/usr/share/common-licenses/GPL-3").read_text().splitlines()]
TEXTS = [t for t in LINES if t][:200]


def _c4_rows(start: int, n: int) -> list[dict]:
    """C4's fields: text, timestamp, url."""
    return [
        {"text": t, "timestamp": f"2019-04-{1 + i % 28:02d}T12:00:00Z", "url": f"https://e.org/{i}"}
        for i, t in enumerate(TEXTS[start : start + n], start)
    ]


def _one_sentence(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    return " ".join(lines[0].split())


def test_c4_style_json_gz_files_are_read_as_json_lines(tmp_path: Path) -> None:
    folder = tmp_path / "c4"
    folder.mkdir()
    expected = []
    for k in range(2):
        rows = _c4_rows(100 * k, 100)
        name = folder / f"c4-train.{k:05d}-of-01024.json.gz"
        with gzip.open(name, "wt") as f:
            f.write("".join(json.dumps(r) + "\n" for r in rows))
        with gzip.open(name, "rt") as f:
            expected += [json.loads(line) for line in f]
    out = tmp_path / "out"
    cli("shard", folder, "-o", out, "-q")
    assert column(out, "text") == [r["text"] for r in expected]
    assert column(out, "url") == [r["url"] for r in expected]
    assert column(out, "id")[:2] == [
        "c4-train.00000-of-01024.json.gz:1",
        "c4-train.00000-of-01024.json.gz:2",
    ]


def test_a_plain_json_file_of_json_lines_reads_as_its_jsonl_twin(tmp_path: Path) -> None:
    body = "".join(json.dumps(r) + "\n" for r in _c4_rows(0, 50))
    (tmp_path / "a.json").write_text(body)
    (tmp_path / "twin").mkdir()
    (tmp_path / "twin" / "a.jsonl").write_text(body)
    cli("shard", tmp_path / "a.json", "-o", tmp_path / "out", "-q")
    cli("shard", tmp_path / "twin" / "a.jsonl", "-o", tmp_path / "twin_out", "-q")
    for name in ("text", "timestamp", "url"):
        assert column(tmp_path / "out", name) == column(tmp_path / "twin_out", name)


@pytest.mark.parametrize("indent", [None, 2], ids=["one_line", "pretty"])
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("block", ["8MB", "1KB"], ids=["one_block", "small_blocks"])
def test_a_json_array_of_objects_is_read_element_by_element(
    tmp_path: Path, indent: int | None, gz: bool, block: str
) -> None:
    """Alpaca-style `json.dump(rows)`: each element a row, numbered from 1 in ids and the
    quarantine; an element that is no object is quarantined with its number, as a JSONL line.
    Its text holds newlines and brackets (escaped in JSON), which must come through as they are."""
    rows: list = [dict(r, text=r["text"] + "\n[x] {y}") for r in _c4_rows(0, 60)]
    rows[7] = 7  # not an object
    body = json.dumps(rows, indent=indent).encode()
    path = tmp_path / ("rows.json.gz" if gz else "rows.json")
    path.write_bytes(gzip.compress(body) if gz else body)
    out = tmp_path / "out"
    cli("shard", path, "-o", out, "-q", "--block-bytes", block)
    oracle = json.loads(gzip.decompress(path.read_bytes()) if gz else path.read_bytes())
    kept = [(i, r) for i, r in enumerate(oracle, 1) if isinstance(r, dict)]
    assert column(out, "text") == [r["text"] for _, r in kept]
    assert column(out, "url") == [r["url"] for _, r in kept]
    assert column(out, "id") == [f"{path.name}:{i}" for i, _ in kept]
    [bad] = [json.loads(x) for x in (out / ".quarantine.jsonl").read_text().splitlines()]
    assert bad["line"] == 8 and "not a JSON object" in bad["reason"], bad


def test_a_later_json_array_input_and_a_big_one_read_in_ranges(tmp_path: Path) -> None:
    """A later input is read in a task, past the driver's sample; a plain one bigger than
    --chunk-bytes is cut into ranges, and its elements are read once, by the first."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _c4_rows(0, 30)))
    (folder / "b.json.gz").write_bytes(gzip.compress(json.dumps(_c4_rows(30, 30)).encode()))
    (folder / "c").mkdir()
    (folder / "c" / "big.json").write_text(json.dumps(_c4_rows(60, 140), indent=2))
    out = tmp_path / "out"
    cli("shard", folder, f"{folder}/c/*.json", "-o", out, "-q", "-w", "2", "--chunk-bytes", "8KB")
    assert _report(out)["tasks"] > 3
    assert sorted(column(out, "text")) == sorted(TEXTS[:200])
    assert not (out / ".quarantine.jsonl").exists()


@pytest.mark.parametrize(
    "body, why",
    [
        (b'[{"text": "a"}, {"text": "b"} {"text": "c"}]', "',' or ']' expected"),
        (b'[{"text": "a"}, {"text": "b"', "element 2"),
        (b'[{"text": "a"}] trailing', "text after the array"),
    ],
    ids=["no_comma", "cut", "trailing"],
)
def test_a_broken_json_array_is_one_sentence(tmp_path: Path, body: bytes, why: str) -> None:
    (tmp_path / "rows.json").write_bytes(body)
    said = _one_sentence(cli("shard", tmp_path / "rows.json", "-o", tmp_path / "o", check=False))
    assert "rows.json" in said and why in said, said


def _report(out: Path) -> dict:
    return json.loads((out / ".report.json").read_text())


def test_a_folders_plain_json_metadata_is_not_read_but_a_glob_reads_json_lines(
    tmp_path: Path,
) -> None:
    """A folder's walk leaves plain `.json` files out (where metadata lives: `dataprep sample`'s
    corpus.json, Hugging Face's dataset_info.json); `.json.gz` there, or `.json` named or
    globbed, are read as JSON Lines."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _c4_rows(0, 20)))
    (folder / "dataset_info.json").write_text(json.dumps({"features": {"text": 1}}, indent=2))
    with gzip.open(folder / "b.json.gz", "wt") as f:
        f.write("".join(json.dumps(r) + "\n" for r in _c4_rows(20, 20)))
    out = tmp_path / "out"
    cli("shard", folder, "-o", out, "-q")
    assert column(out, "text") == TEXTS[:40]
    assert not (out / ".quarantine.jsonl").exists()
    lines = tmp_path / "lines"
    lines.mkdir()
    (lines / "x.json").write_text("".join(json.dumps(r) + "\n" for r in _c4_rows(0, 10)))
    said = _one_sentence(cli("shard", lines, "-o", tmp_path / "o2", check=False))
    assert "*.json" in said, said
    cli("shard", f"{lines}/*.json", "-o", tmp_path / "o3", "-q")
    assert column(tmp_path / "o3", "text") == TEXTS[:10]


def test_a_json_object_over_many_lines_is_one_sentence_saying_how_to_convert_it(
    tmp_path: Path,
) -> None:
    """SQuAD-style `{"version": ..., "data": [...]}`, pretty-printed: not JSON Lines."""
    doc = {"version": "1.1", "data": _c4_rows(0, 10)}
    (tmp_path / "squad.json").write_text(json.dumps(doc, indent=2))
    said = _one_sentence(cli("shard", tmp_path / "squad.json", "-o", tmp_path / "o", check=False))
    assert "object over many lines" in said and "jq -c '.data[]'" in said, said
    folder = tmp_path / "in"  # a later input: read in a task
    folder.mkdir()
    (folder / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _c4_rows(0, 10)))
    (folder / "b.json.gz").write_bytes(gzip.compress(json.dumps(doc, indent=1).encode()))
    said = _one_sentence(cli("shard", folder, "-o", tmp_path / "o2", check=False))
    assert "b.json.gz" in said and "object over many lines" in said, said
