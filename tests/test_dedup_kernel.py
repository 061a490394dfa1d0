"""The compiled signature pass (dedup/kernel.py) against the numpy path it replaces.

Oracle: `minhash.numpy_signatures` over `normalise()`d text, the whole-array implementation
the fast mode used before the kernel; equality is bit for bit, on real text from this machine
(licences, copyright files, English and translated man pages incl. Japanese, Russian,
Korean) and on the edge cases a byte loop can get wrong.
"""

from __future__ import annotations

import glob
import gzip
import itertools
import json

import numpy as np
import pyarrow as pa
import pytest

from dataprep.stages.dedup import minhash
from dataprep.stages.dedup.normalise import normalise, token_steps

kernel = pytest.importorskip("dataprep.stages.dedup.kernel")

EDGES = [
    "",
    "one",
    "two words",
    "a b c d",
    " lead and trail \n",
    "x  y\tz\nq r s\r\nt\x0bu\x0cv",
    "file\x1csep\x1dgroup\x1erecord\x1funit end of ascii",  # whitespace only on the Unicode path
    "nbsp\u00a0nel\u0085ogham\u1680en\u2002thin\u2009line\u2028para\u2029nnbsp\u202fmath\u205fideo\u3000x",
    "zero\u200bwidth is not space\u2060nor joiner",
    "日本語のテキストです。これは重複検出のテストです",
    "中文 文本 测试 重复 检测 中文 文本",
    "Straße ÉCOLE naïve ﬁne Ǆ İstanbul ΣΊΣΥΦΟΣ ß ǅ",
    "e\u0301 combining a\u0308 ﬀ ㎏ ① Ⅻ ｆｕｌｌｗｉｄｔｈ",
    "cafe\u0301 e\n\u0301mark after a newline \u1100\n\u1161 jamo \u1100\u1161 \ufb01\n\u00b4\n",
    "emoji 😀 🎉 four byte 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 chars",
    "Hello, World!!! -- (quoted) [x] {y} <z> a+b=c; 100% $5 ~tilde `tick` ^caret |pipe|",
    "«guillemets» „quotes“ — dash – en…ellipsis ¿qué? ¡sí! ©®™ €£¥ §¶",
    "UPPER lower MiXeD 123 ABC-def_GHI",
    "\t\n ",
    "!!!",
    "x",
]


def _files(pattern: str, limit: int, lo: int = 200, hi: int = 30000) -> list[str]:
    out = []
    for path in sorted(glob.glob(pattern))[: limit * 4]:
        try:
            raw = gzip.open(path).read() if path.endswith(".gz") else open(path, "rb").read()
        except OSError:
            continue
        if lo <= len(raw) <= hi:
            out.append(raw.decode("utf-8", "replace"))
        if len(out) >= limit:
            break
    return out


@pytest.fixture(scope="module")
def real() -> list[str]:
    docs = (
        _files("/usr/share/common-licenses/*", 10)
        + _files("/usr/share/doc/*/copyright", 60)
        + _files("/usr/share/man/man1/*.gz", 30)
        + _files("/usr/share/man/ja/man*/*.gz", 8)
        + _files("/usr/share/man/ru/man*/*.gz", 8)
        + _files("/usr/share/man/ko/man*/*.gz", 4)
        + _files("/usr/share/man/de/man*/*.gz", 8)
    )
    if len(docs) < 50:
        pytest.skip("no real text on this machine (/usr/share/doc, /usr/share/man)")
    return docs


def _reference(text: pa.Array, steps: list[str], num_perm, seed, ngram, char_ngram):
    norm = pa.compute.fill_null(normalise(text, steps), "")
    return minhash.numpy_signatures(norm, num_perm, seed, ngram, char_ngram)


def _same(got, want) -> None:
    sig, counts = got
    ref_sig, ref_counts = want
    assert np.array_equal(counts, ref_counts)
    bad = np.flatnonzero((sig != ref_sig).any(axis=1))
    assert bad.size == 0, f"{bad.size} rows differ, first {bad[:5].tolist()}"
    assert sig.dtype == ref_sig.dtype == np.uint32


STEPS = [
    [],
    ["nfkc"],
    ["nfkc", "lowercase"],
    ["lowercase", "punctuation"],
    ["nfkc", "lowercase", "punctuation"],
]
SHAPES = [
    (128, 1, 5, None),
    (64, 7, 1, None),
    (256, 3, 2, None),
    (128, 1, 5, 5),
    (32, 9, 1, 1),
    (128, 2, 5, 3),
]


@pytest.mark.parametrize(("steps", "shape"), list(itertools.product(STEPS, SHAPES)))
def test_sign_text_equals_numpy_path_on_real_text(real, steps, shape) -> None:
    num_perm, seed, ngram, char_ngram = shape
    docs = real + EDGES + [None, "after a null"]
    text = pa.array(docs)
    want = _reference(text, steps, num_perm, seed, ngram, char_ngram)
    _same(kernel.sign_text(text, steps, num_perm, seed, ngram, char_ngram), want)
    # normalised text through the plain entry point (what minhash.fast_signatures runs)
    norm = pa.compute.fill_null(normalise(text, steps), "")
    _same(kernel.signatures(norm, num_perm, seed, ngram, char_ngram), want)


@pytest.mark.parametrize("steps", [[], ["nfkc", "lowercase"], ["lowercase", "punctuation"]])
@pytest.mark.parametrize("char_ngram", [None, 4])
def test_all_ascii_batch_keeps_the_ascii_split(real, steps, char_ngram) -> None:
    """A batch that is all ASCII after normalising splits on ASCII whitespace only (\\x1c..\\x1f
    stay inside tokens); the kernel follows the numpy path in both kinds of batch."""
    ascii_docs = [d for d in real + EDGES if d.isascii()]
    ascii_docs += ["A\x1cB c d e f", "A B c d e f"]
    for docs in (ascii_docs, ascii_docs + ["ﬁne ÉCOLE"]):
        text = pa.array(docs)
        want = _reference(text, steps, 128, 1, 5, char_ngram)
        _same(kernel.sign_text(text, steps, 128, 1, 5, char_ngram), want)


def test_short_docs_and_token_counts() -> None:
    """1..n-1 tokens: one shingle of all tokens; no tokens: no shingle, all-sentinel row."""
    docs = ["", " ", "a", "a b", "a b c", "a b c d", "a b c d e", "a b c d e f", "日本", "日"]
    for char_ngram in (None, 3):
        text = pa.array(docs)
        got = kernel.sign_text(text, ["lowercase"], 64, 1, 5, char_ngram)
        _same(got, _reference(text, ["lowercase"], 64, 1, 5, char_ngram))
    sig, counts = kernel.sign_text(pa.array(docs), [], 64, 1, 5, None)
    assert counts.tolist() == [0, 0, 1, 1, 1, 1, 1, 2, 1, 1]
    assert np.all(sig[:2] == minhash.SENTINEL)


def test_sliced_chunked_and_large_string_inputs(real) -> None:
    docs = real[:40] + EDGES
    steps = ["nfkc", "lowercase"]
    base = pa.array(docs)
    for text in (
        base.slice(5, 30),
        pa.chunked_array([base.slice(0, 20), base.slice(20)]),
        base.cast(pa.large_string()),
    ):
        flat = text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text
        want = _reference(flat, steps, 128, 1, 5, None)
        _same(kernel.sign_text(text, steps, 128, 1, 5, None), want)


def test_whitespace_step_goes_through_arrow(real) -> None:
    text = pa.array(real[:30] + EDGES)
    steps = ["nfkc", "lowercase", "whitespace"]
    for char_ngram in (None, 5):
        want = _reference(text, steps, 128, 1, 5, char_ngram)
        _same(kernel.sign_text(text, steps, 128, 1, 5, char_ngram), want)


def test_densification_fallback_with_few_shingles() -> None:
    """Docs with 1-3 shingles leave most of 1024 bins empty: every one is filled from the
    same fallback bins as the numpy path (or the doc's minimum)."""
    docs = ["a", "a b c d e f", "x y z w v u t", "one two three four five six seven"]
    text = pa.array(docs)
    for seed in (1, 5):
        _same(
            kernel.sign_text(text, [], 1024, seed, 5, None),
            _reference(text, [], 1024, seed, 5, None),
        )


def test_token_steps_of_the_stage_default() -> None:
    """The stage passes token_steps(config.normalize): whitespace is dropped."""
    assert token_steps(["nfkc", "lowercase", "whitespace"]) == ["nfkc", "lowercase"]


def test_fast_signatures_uses_the_kernel_and_equals_numpy(real, monkeypatch) -> None:
    monkeypatch.setenv("DATAPREP_DEDUP_KERNEL", "numba")
    text = pa.array(real[:50] + EDGES)
    norm = pa.compute.fill_null(normalise(text, ["nfkc", "lowercase"]), "")
    _same(
        minhash.fast_signatures(norm, 128, 1, 5, None),
        minhash.numpy_signatures(norm, 128, 1, 5, None),
    )
    assert minhash.kernel_module() is kernel


def test_densification_last_resort_is_the_docs_minimum(monkeypatch) -> None:
    """When every fallback bin is empty too, a bin takes the document's smallest value: a
    fallback table that always points at empty bins forces that branch in both paths."""
    num_perm, seed = 64, 99
    docs = pa.array(["a b c d e f g", "x", "", "p q r s t u v w x y z"])
    _, counts = minhash.numpy_signatures(docs, num_perm, seed, 5, None)
    assert counts.tolist() == [3, 1, 0, 7]
    table = np.tile(np.arange(num_perm), (2, 1))  # bin j falls back on itself: empty
    monkeypatch.setitem(minhash._DENSIFY, (num_perm, seed), table)
    want = minhash.numpy_signatures(docs, num_perm, seed, 5, None)
    _same(kernel.signatures(docs, num_perm, seed, 5, None), want)
    row = want[0][0]
    assert len(set(row.tolist())) <= 3 and row.min() in row  # filled from its 3 values


def test_numpy_path_when_the_kernel_is_switched_off(monkeypatch) -> None:
    monkeypatch.setattr(minhash, "_KERNEL", False)
    monkeypatch.setenv("DATAPREP_DEDUP_KERNEL", "numpy")
    assert minhash.kernel_module() is None
    text = pa.array(["Straße und ﬁne Dinge hier", "a b c d e f g", ""])
    got = minhash.sign_text(text, ["nfkc", "lowercase"], "fast", 64, 1, 5, None)
    monkeypatch.setattr(minhash, "_KERNEL", kernel)
    _same(got, minhash.sign_text(text, ["nfkc", "lowercase"], "fast", 64, 1, 5, None))


def test_help_does_not_import_numba() -> None:
    import subprocess
    import sys

    code = "import sys, runpy; sys.argv = ['dataprep', '--help']\n"
    code += "try:\n    runpy.run_module('dataprep', run_name='__main__')\n"
    code += "except SystemExit:\n    pass\n"
    code += "print('NUMBA' if 'numba' in sys.modules else 'CLEAN')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().endswith("CLEAN"), out.stdout[-300:] + out.stderr[-300:]


def test_cut_utf8_at_the_end_of_a_document_is_not_read_past() -> None:
    """Invalid UTF-8 (a sequence cut by the end of the buffer) must not read other memory:
    char n-grams of such a document are defined (each stray byte a token) and stable."""
    raw = "日本".encode()[:-1]  # the last character cut after its first two bytes
    text = pa.Array.from_buffers(
        pa.string(), 1, [None, pa.py_buffer(np.array([0, len(raw)], np.int32)), pa.py_buffer(raw)]
    )
    sig, counts = kernel.signatures(text, 64, 1, 5, 2)
    again, _ = kernel.signatures(text, 64, 1, 5, 2)
    assert counts.tolist() == [2] and np.array_equal(sig, again)  # 日, then two stray bytes


def test_kernel_is_chosen_by_input_size_per_worker(monkeypatch) -> None:
    """Once built, the kernel pays from KERNEL_BUILT_MIN_... of text per worker; a run that
    would have to build it first takes it only from KERNEL_MIN_... (no compiler on small runs)."""
    limit, built = (
        minhash.KERNEL_MIN_TEXT_BYTES_PER_WORKER,
        minhash.KERNEL_BUILT_MIN_TEXT_BYTES_PER_WORKER,
    )
    assert built < limit
    for has_build in (True, False):
        monkeypatch.setattr(kernel, "is_built", lambda has_build=has_build: has_build)
        assert minhash.kernel_pays(limit) and not minhash.kernel_pays(built - 1)
        assert minhash.kernel_pays(built) == has_build == minhash.kernel_pays(limit - 1)


def test_sign_text_loads_the_kernel_only_when_told(monkeypatch) -> None:
    """Auto mode: the numpy path unless the driver chose the kernel; the same values."""
    monkeypatch.delenv("DATAPREP_DEDUP_KERNEL", raising=False)
    monkeypatch.setattr(minhash, "_KERNEL", False)
    text = pa.array(["Straße und ﬁne Dinge hier", "a b c d e f g h i j", ""] * 20)
    steps = ["nfkc", "lowercase"]
    plain = minhash.sign_text(text, steps, "fast", 64, 1, 5, None)
    assert minhash._KERNEL is False  # numba never loaded
    _same(minhash.sign_text(text, steps, "fast", 64, 1, 5, None, compiled=True), plain)
    assert minhash._KERNEL is kernel


def test_the_stage_signs_with_the_kernel_only_on_large_inputs(tmp_path, monkeypatch) -> None:
    """The dedup stage's driver decides from its input's bytes per worker; same output."""
    import json

    from dataprep.dataset import read_manifest
    from dataprep.executors import make_executor
    from dataprep.runner import run_stage

    monkeypatch.delenv("DATAPREP_DEDUP_KERNEL", raising=False)
    inline = make_executor("local", workers=1)
    raw = tmp_path / "raw"
    raw.mkdir()
    docs = [f"document {i % 40} with some shared words and a tail {i % 7}" for i in range(400)]
    (raw / "d.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in docs))
    src = tmp_path / "src"
    run_stage("shard", {"shard_rows": 100}, src, inputs=[str(raw)], executor=inline)
    shards = {}
    for name, limit in (("numpy", 1 << 50), ("kernel", 1)):
        monkeypatch.setattr(minhash, "KERNEL_MIN_TEXT_BYTES_PER_WORKER", limit)
        monkeypatch.setattr(minhash, "_KERNEL", False)
        run = run_stage("dedup", {"method": "minhash"}, tmp_path / name, input_path=src,
                        executor=inline)  # fmt: skip
        assert (minhash._KERNEL is kernel) == (name == "kernel"), name
        assert 0 < run.report["rows_out"] < 400
        shards[name] = [s.xxh3_128 for s in read_manifest(str(tmp_path / name)).shards]
    assert shards["numpy"] == shards["kernel"]


def test_the_driver_judges_the_text_not_the_compressed_file(tmp_path, monkeypatch) -> None:
    """Text that compresses well: the limit set between the shards' file bytes and the
    text's UTF-8 bytes (the oracle, counted here) picks the kernel; the estimate lies
    within the text bytes and 10% above (Parquet's length prefixes and page headers)."""
    from dataprep.dataset import read_manifest
    from dataprep.executors import make_executor
    from dataprep.runner import run_stage
    from dataprep.stages.dedup import stage

    monkeypatch.delenv("DATAPREP_DEDUP_KERNEL", raising=False)
    inline = make_executor("local", workers=1)
    raw = tmp_path / "raw"
    raw.mkdir()
    lines = _files("/usr/share/common-licenses/*", 10)
    docs = [lines[i % len(lines)] + f" copy {i}" for i in range(200)] if lines else []
    if not docs:
        pytest.skip("no real text on this machine")
    (raw / "d.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in docs))
    src = tmp_path / "src"
    run_stage("shard", {"shard_rows": 1000}, src, inputs=[str(raw)], executor=inline)
    text_bytes = sum(len(t.encode()) for t in docs)
    file_bytes = sum(s.bytes for s in read_manifest(str(src)).shards)
    assert file_bytes * 3 < text_bytes
    calls = []
    real_ratio = stage._text_ratio
    monkeypatch.setattr(stage, "_text_ratio", lambda *a: calls.append(real_ratio(*a)) or calls[-1])
    monkeypatch.setattr(minhash, "KERNEL_MIN_TEXT_BYTES_PER_WORKER", (file_bytes + text_bytes) // 2)
    monkeypatch.setattr(minhash, "_KERNEL", False)
    run_stage("dedup", {"method": "minhash"}, tmp_path / "out", input_path=src, executor=inline)
    assert minhash._KERNEL is kernel
    assert text_bytes <= calls[0] * file_bytes <= 1.1 * text_bytes


def test_band_keys_from_the_kernel_equal_the_numpy_ones(monkeypatch) -> None:
    """Once this process has the kernel loaded, minhash.band_keys folds the bands in it; the
    numpy loop (the reference) gives the same keys, also for sliced (non-contiguous) input."""
    rng = np.random.default_rng(3)
    sig = rng.integers(0, 1 << 32, (700, 128), dtype=np.uint64).astype(np.uint32)
    for bands, rows, seed in ((13, 7, 1), (16, 8, 42), (1, 1, 0)):
        monkeypatch.setattr(minhash, "_KERNEL", None)
        want = minhash.band_keys(sig[::2], bands, rows, seed)
        monkeypatch.setattr(minhash, "_KERNEL", kernel)
        got = minhash.band_keys(sig[::2], bands, rows, seed)
        assert got.dtype == want.dtype == np.uint64 and np.array_equal(got, want)
