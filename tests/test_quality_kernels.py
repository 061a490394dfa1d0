"""The compiled word pass's bookkeeping: reference-free views (kernels_views) and the rows of
non-ASCII tokens, which `scan` now collects per document instead of per token.

Oracle: the vectorised path (`DATAPREP_QUALITY_KERNEL=numpy`, Arrow's regexes over Arrow's
split), as in tests/test_score.py, on text built so that the rows outgrow their first
allocation several times, within one document and across many.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from numba import njit

from dataprep.quality import signals
from dataprep.quality.kernels_views import borrowed


@njit
def _write_through(owner, rows):
    view = borrowed(owner)
    for i in range(view.shape[0]):
        for j in range(view.shape[1]):
            view[i, j] = rows * i + j
    return view.shape[0] * view.shape[1], view.strides[0]


def test_borrowed_view_is_the_owners_memory() -> None:
    owner = np.zeros((5, 3), np.int64)
    size, stride = _write_through(owner, 10)
    assert (size, stride) == (15, 24)
    assert owner.tolist() == [[10 * i + j for j in range(3)] for i in range(5)]


@pytest.mark.parametrize("words", signals.WORDS)
def test_non_ascii_rows_across_documents_equal_the_vectorised_path(
    monkeypatch: pytest.MonkeyPatch, words: str
) -> None:
    mixed = "über, naïve (café) 数字 — ascii words «déjà-vu» x²+y² émigré. "
    texts = [mixed * k for k in (1, 40, 0, 3, 200)]  # 16 rows first, then grown in one doc
    texts += ["plain ascii text only"] * 3 + [mixed[:20]] * 30 + ["ÿ" * 3 + " ü"]
    names = ["word_count", "mean_word_length", "alpha_fraction", "stop_word_count"]
    names += ["symbol_to_word_ratio", "top_2_gram_char_fraction", "dup_5_gram_char_fraction"]
    monkeypatch.setenv("DATAPREP_QUALITY_KERNEL", "numba")
    assert signals.kernel_module() is not None
    compiled = signals.compute(pa.array(texts), names, words)
    monkeypatch.setattr(signals, "_KERNEL", False)
    monkeypatch.setenv("DATAPREP_QUALITY_KERNEL", "numpy")
    assert signals.kernel_module() is None
    vectorised = signals.compute(pa.array(texts), names, words)
    for name in names:
        assert compiled[name].equals(vectorised[name]), name
    assert sum(not w.isascii() for w in texts[4].split()) > 1000  # rows grown many times


def test_signals_do_not_import_pandas() -> None:
    """pyarrow imports pandas (~0.2 s of CPU) the first time pa.array or pa.scalar is given
    Python or numpy values, or to_numpy converts; `score --signals gopher --words spacy`
    runs once per worker process and needs none of it."""
    code = (
        "import sys, numpy as np, pyarrow as pa\n"
        "from dataprep.quality import presets, signals\n"
        "raw = 'a b. c'.encode() + 'x \\u00e9t\\u00e9 y'.encode()\n"
        "offsets = pa.py_buffer(np.array([0, 6, 6, len(raw)], np.int32))\n"
        "valid = pa.py_buffer(np.packbits([1, 0, 1], bitorder='little'))\n"
        "texts = pa.StringArray.from_buffers(3, offsets, pa.py_buffer(raw), valid)\n"
        "assert 'pandas' not in sys.modules\n"
        "names = presets.columns('gopher')\n"
        "out = signals.compute(texts, names, 'spacy')\n"
        "print('pandas' in sys.modules, out['word_count'].to_pylist())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "[3,", "0,", "3]"], done.stdout
