"""Review (H4): `tokenize --tokenizer bpe` trains on the data, and the trainer is quadratic in
the length of a word without a space. One 3 MB run of letters (a DNA read, a long identifier) among
real documents kept the stage busy for over 15 minutes (100k characters: 2.5 s, 300k: ~25 s).
Training now sees such runs cut into 1,000-character pieces; the shards are still encoded
from the text as it is, and decode back to it exactly.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from dataprep import dataset
from dataprep.runner import run_stage

pytest.importorskip("tokenizers")

DOCS = sorted(Path("/usr/share/doc").glob("*/copyright"))[:20]


def test_bpe_training_on_a_long_unbroken_run_is_quick_and_exact(tmp_path: Path) -> None:
    rng = random.Random(1)  # a DNA read: one 200k-letter word to the pre-tokenizer
    blob = "".join(rng.choice("ACGT") for _ in range(200_000))
    texts = [d.read_text(errors="replace") for d in DOCS] + [blob]
    raw = tmp_path / "raw.jsonl"
    raw.write_text(
        "".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(texts))
    )
    run_stage("shard", {"shard_rows": 8}, tmp_path / "s", inputs=[str(raw)])
    started = time.process_time()
    params = {"seq_len": 64, "tokenizer": "bpe", "vocab_size": 400, "mode": "truncate"}
    run_stage("tokenize", params, tmp_path / "t", input_path=tmp_path / "s")
    assert time.process_time() - started < 3  # was ~7 s of training for this one read

    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tmp_path / "t" / ".tokenizer.json"))
    for text in texts:  # the trained tokenizer still reads every text exactly
        assert tokenizer.decode(tokenizer.encode(text).ids) == text
    shards = dataset.read_manifest(tmp_path / "t").shards
    rows = sum(pq.read_metadata(tmp_path / "t" / s.path).num_rows for s in shards)
    assert rows == len(texts)
