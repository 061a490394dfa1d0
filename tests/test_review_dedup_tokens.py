"""Review (H7) of MinHash word splitting (minhash.word_tokens, the compiled kernel's byte
classes in kernel_source._CLASS).

A batch whose documents are all ASCII is split on ASCII whitespace only (space, \\t \\n \\v \\f
\\r: `_ascii_tokens`, the kernel with unicode_ws off); a batch holding one non-ASCII document
goes through Arrow's utf8_split_whitespace, which also splits at the separators \\x1c-\\x1f.
So one document's words, and its signature, depend on the other documents in its batch
(2,048 rows of a row group): two identical copies are missed as duplicates when one shares a
batch with a curly quote or an accented name and the other does not.

Oracles: Python's str.split() and Arrow's utf8_split_whitespace, which agree that \\x1c-\\x1f
are whitespace; and MinHash itself: identical documents have identical signatures, so LSH
always pairs them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from helpers import column, string_array_with_padding

from dataprep import runner
from dataprep.executors.local import LocalExecutor
from dataprep.stages.dedup import minhash

LICENSE = Path("/usr/share/common-licenses/GPL-3")


def _lines() -> list[str]:
    lines = [s.strip() for s in LICENSE.read_text().splitlines()]
    return [s for s in lines if s and s.isascii()]


# a record whose fields are joined by the ASCII unit separator (as MARC / RS-separated exports
# write them): text from this machine, one field per license line
RECORD = "\x1f".join(_lines()[:12])


@pytest.mark.parametrize("compiled", [False, True], ids=["numpy", "kernel"])
def test_a_documents_signature_does_not_depend_on_its_batch(compiled: bool) -> None:
    if compiled:
        pytest.importorskip("numba")
    steps = ["nfkc", "lowercase"]
    alone, _ = minhash.sign_text(pa.array([RECORD]), steps, "fast", 64, 1, 5, None, compiled)
    beside, _ = minhash.sign_text(
        pa.array([RECORD, "Café “quoted”"]), steps, "fast", 64, 1, 5, None, compiled
    )
    assert np.array_equal(alone[0], beside[0])


def test_identical_documents_in_differently_mixed_batches_are_duplicates(tmp_path: Path) -> None:
    assert RECORD.split() == RECORD.replace("\x1f", " ").split()  # Python: \x1f is whitespace
    filler = _lines()[12:]
    rows = [RECORD] + [f"{i} {filler[i % len(filler)]}" for i in range(2100)]
    rows[2060] = RECORD  # the second batch (rows 2048-) also holds a non-ASCII document
    rows[2070] = "Ünïcödé résumé of the license"
    raw = tmp_path / "in.jsonl"
    raw.write_text("".join(json.dumps({"text": t}) + "\n" for t in rows))
    ds, out = tmp_path / "ds", tmp_path / "out"
    runner.run_stage("shard", {}, ds, inputs=[str(raw)], executor=LocalExecutor(1))
    config = {"method": "minhash", "examples": 0}
    runner.run_stage("dedup", config, out, input_path=ds, executor=LocalExecutor(1))
    assert column(out, "text").count(RECORD) == 1


# Arrow's utf8_split_whitespace (pyarrow 26) reads past the end of an array's last string: when
# that string ends in whitespace and the byte after it (buffer padding, which Arrow's compute
# kernels such as utf8_lower leave uninitialised) starts no complete UTF-8 sequence, the final
# "\n" is kept on the last word. The numpy path's `word_tokens` hashes that word as it is, so
# the last document of a batch signs by whatever byte follows it: the same run twice can keep
# other rows (measured: ~1 in 1,000 random batches of `sign_text(..., ["lowercase"])` changed
# between two calls in one process).
HEADER = next(s for s in LICENSE.read_text().splitlines() if "Copyright (C) 2007" in s).strip()
QUOTED = "“Free software” is a matter of liberty, not price."  # non-ASCII: Arrow's split


def test_bytes_after_the_last_document_do_not_change_its_signature() -> None:
    docs = [QUOTED, HEADER + "\n"]  # a one-line document ends with its newline
    clean, _ = minhash.sign_text(string_array_with_padding(docs, b""), [], "fast", 64, 1, 5, None)
    for garbage in (b"\xc3", b"\x80", b"\xff"):
        padded, _ = minhash.sign_text(
            string_array_with_padding(docs, garbage), [], "fast", 64, 1, 5, None
        )
        assert np.array_equal(padded[1], clean[1]), garbage
