"""Review (H7) of tokenize's truncate mode: it appends `tokens` and `length` to the input's
columns without looking at them.

An input that already has a `length` column (a metadata field kept by shard: a document's
length in words, a file size) gets a second column named `length`: the command exits 0 and
writes shards whose schema repeats the name, which pyarrow cannot read as a dataset ("Can't
unify schema with duplicate field names") and the manifest lists twice. An input with a
`tokens` column stops with a KeyError traceback instead.

Expected: one sentence (exit 2, "the input already has a column named length"), or a dataset
whose column names are unique; never a traceback or an unreadable output.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import cli

LINES = [ln.strip() for ln in Path("/usr/share/common-licenses/GPL-3").read_text().splitlines()]
TEXTS = [t for t in LINES if t][:12]


@pytest.mark.parametrize("name", ["length", "tokens"])
def test_truncate_mode_with_a_column_of_its_own_names(tmp_path: Path, name: str) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": t, name: i}) + "\n" for i, t in enumerate(TEXTS)))
    shards = tmp_path / "shards"
    cli("shard", src, "-o", shards, "-q", "-w", "1")
    out = tmp_path / "out"
    proc = cli(
        "tokenize", shards, "-o", out, "-q", "-w", "1", "--seq-len", "16", "--mode", "truncate",
        check=False,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr[-300:]
    assert proc.returncode in (0, 2), proc.stderr[-300:]
    if proc.returncode == 2:  # refused in one sentence, naming the column, before any output
        assert f"already has '{name}'" in proc.stderr, proc.stderr[-300:]
        assert not list(out.glob("*.parquet"))
        return
    names = pq.read_schema(next(out.glob("*.parquet"))).names
    assert len(names) == len(set(names)), names
    assert pq.read_table(out).num_rows == len(TEXTS)  # readable as one dataset


def test_a_recipe_stops_before_any_stage_runs(tmp_path: Path) -> None:
    """The recipe check knows shard's output schema, so the clash stops the run at plan time."""
    src = tmp_path / "in.jsonl"
    rows = [json.dumps({"text": t, "length": i}) + "\n" for i, t in enumerate(TEXTS)]
    src.write_text("".join(rows))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "version: 1\nname: t\n"
        f"vars: {{root: {tmp_path / 'work'}}}\n"
        f"input: {{path: {src}, text_column: text}}\n"
        "stages:\n"
        "  - {id: shards, op: shard, params: {keep: [length]}}\n"
        "  - {id: tok, op: tokenize, params: {mode: truncate, seq_len: 16}}\n"
    )
    proc = cli("run", recipe, check=False)
    assert proc.returncode == 2, proc.stderr[-300:]
    assert "Traceback" not in proc.stderr
    assert "already has 'length'" in proc.stderr
    assert not (tmp_path / "work").exists()  # nothing ran
