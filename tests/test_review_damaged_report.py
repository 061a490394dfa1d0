"""Review (H4): a finished output's `.report.json` damaged or edited (not an object, a count
that is not a number, a stage detail of the wrong type) made every cached rerun of the same
command end in a traceback (AttributeError / ValueError, exit 1), though the dataset itself
was fine. Now the report is treated as missing: the rerun is a cache hit, exit 0, and prints
no detail line rather than a wrong one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import cli

from dataprep.runner import run_stage

DOCS = sorted(Path("/usr/share/doc").glob("*/copyright"))[:10]


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report")
    raw = root / "raw.jsonl"
    raw.write_text(
        "".join(
            json.dumps({"id": f"d{i}", "text": d.read_text(errors="replace")}) + "\n"
            for i, d in enumerate(DOCS)
        )
    )
    run_stage("shard", {"shard_rows": 4}, root / "shards", inputs=[str(raw)])
    run_stage(
        "partition", {"key": "id", "partitions": 2}, root / "part", input_path=root / "shards"
    )
    return root


@pytest.mark.parametrize(
    "text",
    ["[1, 2]", '"x"', "not json", '{"rows_out": "many"}', '{"partition_rows": "ab", "balance": 5}'],
)
@pytest.mark.parametrize("json_out", [False, True])
def test_a_damaged_report_does_not_break_a_cached_rerun(
    done: Path, text: str, json_out: bool
) -> None:
    (done / "part" / ".report.json").write_text(text)
    args = ["partition", done / "shards", "-o", done / "part", "--key", "id", "--partitions", "2"]
    proc = cli(*args, *(["--json"] if json_out else []), check=False)
    assert proc.returncode == 0, proc.stderr[-400:]
    assert "Traceback" not in proc.stderr
    if json_out:
        assert json.loads(proc.stdout)[0]["status"] == "cached"
    else:
        assert "up to date" in proc.stdout and "0 shards, 0 bytes" not in proc.stdout
