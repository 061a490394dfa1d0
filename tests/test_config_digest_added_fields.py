"""A stage option added in a release (score's and pii's `replace_columns`) must not change the
config digest of runs that leave it at its default: otherwise, after the upgrade, every finished
dataset those stages wrote is recomputed instead of "up to date", an interrupted run's staged
tasks are not resumed, and dedup's byte copies (passthrough.same_writer) never match.

Oracle: the digest the previous release recorded is the same algorithm over the config it knew
(the model's JSON dump without the new key); a run recorded that way must then be up to date.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import xxhash

from dataprep import runner
from dataprep.executors.local import LocalExecutor


def _digest_before(new_key: str):  # noqa: ANN202
    def digest(config, write_options) -> str:  # noqa: ANN001
        dump = config.model_dump(mode="json")
        dump.pop(new_key, None)
        payload = {"config": dump, "write": dict(write_options.__dict__)}
        payload["write"].pop("split_columns", None)  # itself left out while at its default
        encoded = json.dumps(payload, sort_keys=True, default=str).encode()
        return xxhash.xxh3_128(encoded).hexdigest()

    return digest


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("digest")
    raw = root / "in.jsonl"
    rows = (
        {"text": f"Write to maintainer{i}@example.org about release {i} of this tool."}
        for i in range(40)
    )
    raw.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = root / "shards"
    runner.run_stage("shard", {}, out, inputs=[str(raw)], executor=LocalExecutor(1))
    return out


@pytest.mark.parametrize(
    ("op", "params"), [("score", {}), ("pii", {"count_columns": True})], ids=["score", "pii"]
)
def test_a_dataset_from_before_replace_columns_is_up_to_date(
    shards: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, op: str, params: dict
) -> None:
    out = tmp_path / op
    with monkeypatch.context() as old:  # the run as the previous release recorded it
        old.setattr(runner, "config_digest", _digest_before("replace_columns"))
        first = runner.run_stage(op, params, out, input_path=shards, executor=LocalExecutor(1))
    assert first.status == "ran"
    again = runner.run_stage(op, params, out, input_path=shards, executor=LocalExecutor(1))
    assert again.status == "cached"
    other = runner.run_stage(
        op, {**params, "replace_columns": True}, out, input_path=shards, executor=LocalExecutor(1)
    )
    assert other.status == "ran"  # a value other than the default is part of the digest
