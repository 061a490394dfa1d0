"""Review (H7): WriteOptions gained `split_columns` (ea32c43, tokenize's BYTE_STREAM_SPLIT
ids), and `runner.config_digest` hashes `WriteOptions.__dict__`, so every stage's config
digest changed although no run sets the field: after the upgrade a finished dataset is
recomputed instead of "up to date", an interrupted run's staged tasks are not resumed, and
dedup's byte copies (passthrough.same_writer) never match an older input.

Oracle: the digest 90c2c3a recorded is the same algorithm over the options it knew (checked
by hand: `shard {}` -> b3fb0f05... at 90c2c3a equals today's algorithm without the new field);
the first run here records that digest, as the old version did, and the same command must
then be up to date.
"""

from __future__ import annotations

import json
from pathlib import Path

import xxhash

from dataprep import runner
from dataprep.executors.local import LocalExecutor


def _digest_before_split_columns(config, write_options) -> str:  # noqa: ANN001
    write = {k: v for k, v in write_options.__dict__.items() if k != "split_columns"}
    payload = {"config": config.model_dump(mode="json"), "write": write}
    return xxhash.xxh3_128(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def test_a_dataset_from_before_split_columns_is_up_to_date(tmp_path: Path, monkeypatch) -> None:
    raw = tmp_path / "in.jsonl"
    raw.write_text("".join(json.dumps({"text": f"doc {i}"}) + "\n" for i in range(50)))
    out = tmp_path / "out"
    with monkeypatch.context() as old:  # the run as 90c2c3a recorded it
        old.setattr(runner, "config_digest", _digest_before_split_columns)
        first = runner.run_stage("shard", {}, out, inputs=[str(raw)], executor=LocalExecutor(1))
    assert first.status == "ran"
    again = runner.run_stage("shard", {}, out, inputs=[str(raw)], executor=LocalExecutor(1))
    assert again.status == "cached"
