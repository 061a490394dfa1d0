"""Review (H7) of the score stage's vectorised word signals (quality/signals.py `words`), the
path a process takes until it has scored KERNEL_AFTER_BYTES (16 MB) of text.

pyarrow 26's utf8_split_whitespace reads past the end of an array's last string: when that
string ends in whitespace and the byte after it (buffer padding, which `fill_null` and other
compute kernels leave uninitialised) starts no complete UTF-8 sequence, the final "\\n" stays
on the last word. The last document of a batch then gets a longer last word (mean_word_length)
and a missed stop word, by whatever byte follows it in memory: found by comparing the compiled
and vectorised passes on license texts, where the same batch scored twice in one process gave
stop_word_count 4 and 5.

Oracle: Python's str.split() on the document, and the compiled pass (kernels.py), which agree.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import string_array_with_padding

from dataprep.quality import signals

LICENSE = Path("/usr/share/common-licenses/BSD")


def test_the_last_documents_word_signals_do_not_depend_on_the_bytes_after_it(monkeypatch) -> None:
    monkeypatch.setattr(signals, "_KERNEL", None)  # the vectorised path, as small runs take it
    text = LICENSE.read_text()
    doc = text[text.index("THIS SOFTWARE IS PROVIDED") :]  # ends with its newline
    words = doc.split()
    want = sum(len(w) for w in words) / len(words)
    for garbage in (b"", b"\xc3", b"\x80", b"\xff"):
        got = signals.compute(
            string_array_with_padding(["first", doc], garbage), ["mean_word_length"]
        )
        assert got["mean_word_length"][1].as_py() == pytest.approx(want), garbage
