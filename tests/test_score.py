"""score: every signal against a brute-force reference written here, one document at a time.

The reference follows the Gopher rules as datatrove implements them (GopherQualityFilter,
GopherRepetitionFilter) over whitespace words, in plain Python loops; the stage computes the
same numbers vectorised over whole batches. Real text: the licences and the copyright files
installed on this machine, plus hand-made edge cases (empty, CRLF, bullets, repeats).
"""

from __future__ import annotations

import gzip
import json
import math
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from helpers import cli, column, encrypted_copy, killed_run, manifest

from dataprep import dataset
from dataprep.dataset import ReadOptions
from dataprep.errors import DataprepError
from dataprep.executors import make_executor
from dataprep.quality import kernels_spacy, signals
from dataprep.runner import run_stage

INLINE = make_executor("local", workers=1)
STOP = {"the", "be", "to", "of", "and", "that", "have", "with"}
LICENCES = sorted(p for p in Path("/usr/share/common-licenses").iterdir() if p.is_file())
COPYRIGHTS = sorted(Path("/usr/share/doc").glob("*/copyright"))
EDGES = [
    "",
    "   \n\n  ",
    "one",
    "a\r\nb\r\n- c\r\n",
    "• x\n• y\n- z...\n  w…  \n",
    "### heading ... #tag\n\n### heading ... #tag\n\nbody",
    "word " * 40,
    "the cat sat on the mat " * 9 + "and then the dog came with a bone",
    "x y z w v x y z w v x y z w v q x y z w v x y z w v",
    "Ünïcödé wörds, 数字 123 — «quotes» © 2024\u2028next\x85line",
    "lorem ipsum {dolor}. It is. Really! \"Yes.\" 'No.'\nThree words here.",
]


def real_texts(limit: int = 120) -> list[str]:
    paths = (LICENCES + COPYRIGHTS)[:limit]
    return [p.read_bytes().decode("utf-8", "replace") for p in paths]


def _real(word: str) -> bool:
    return any(unicodedata.category(c)[0] not in "PSC" for c in word)


def _dups(pieces: list[str]) -> tuple[int, int]:
    seen: set[str] = set()
    count = chars = 0
    for piece in pieces:
        if piece in seen:
            count, chars = count + 1, chars + len(piece)
        seen.add(piece)
    return count, chars


def _greedy(words: list[str], n: int) -> int:
    seen: set[tuple[str, ...]] = set()
    i = chars = 0
    while i < len(words) - n + 1:
        gram = tuple(words[i : i + n])
        if gram in seen:
            chars, i = chars + sum(map(len, gram)), i + n
        else:
            seen.add(gram)
            i += 1
    return chars


def reference(text: str, split: Callable[[str], list[str]] = str.split) -> dict[str, float]:
    """Every non-language signal of one document, the slow obvious way, with words `split`."""
    words = split(text)
    real = [w for w in words if _real(w)]
    size = len(text)
    lines = text.splitlines()
    per_word = len(words) or math.inf
    out: dict[str, float] = {
        "char_count": size,
        "word_count": len(real),
        "mean_word_length": sum(map(len, real)) / len(real) if real else 0.0,
        "alpha_fraction": sum(any(c.isalpha() for c in w) for w in words) / per_word,
        "symbol_to_word_ratio": max(text.count("#"), text.count("...") + text.count("…"))
        / per_word,
        "stop_word_count": len(STOP & set(words)),
        "newline_to_word_ratio": text.count("\n") / per_word,
        "bullet_line_fraction": sum(s.lstrip().startswith(("•", "-")) for s in lines)
        / (len(lines) or math.inf),
        "ellipsis_line_fraction": sum(s.rstrip().endswith(("...", "…")) for s in lines)
        / (len(lines) or math.inf),
    }
    nonblank = [line for line in text.split("\n") if line.strip()]
    ends = tuple(".!?。！？｡։؟۔।॥።᙮᠃᠉‼‽⁇⁈⁉．")
    out["punct_line_fraction"] = sum(line.endswith(ends) for line in nonblank) / (
        len(nonblank) or math.inf
    )
    out["short_line_fraction"] = sum(len(line) <= 30 for line in nonblank) / (
        len(nonblank) or math.inf
    )
    out["fineweb_dup_line_char_fraction"] = _dups(nonblank)[1] / (
        (size - text.count("\n")) or math.inf
    )
    for kind, pieces in (
        ("para", re.split(r"\n{2,}", text.strip())),
        ("line", re.split("\n+", text)),
    ):
        count, chars = _dups(pieces)
        out[f"dup_{kind}_fraction"] = count / len(pieces)
        out[f"dup_{kind}_char_fraction"] = chars / (size or math.inf)
    for n in (2, 3, 4):
        grams = [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
        top = Counter(grams).most_common(1)
        out[f"top_{n}_gram_char_fraction"] = len(top[0][0]) * top[0][1] / size if top else 0.0
    for n in range(5, 11):
        out[f"dup_{n}_gram_char_fraction"] = _greedy(words, n) / (size or math.inf)
    sentences = 0
    for line in (line.strip() for line in lines):
        tokens = line.split()
        if (
            line.endswith((".", "?", "!", '"', "'"))
            and not line.endswith("...")
            and len(tokens) >= 3
            and "javascript" not in line.lower()
            and all(len(t) <= 1000 for t in tokens)
        ):
            sentences += len(re.findall(r"[.?!]+[\"']?(?:[ \t]|$)", line))
    out["c4_sentence_count"] = sentences
    for variant, punct in (("c4", True), ("fineweb", False)):
        lorem = curly = False
        for line in (line.strip() for line in lines):
            tokens = line.split()
            if len(tokens) < 3 or any(len(t) > 1000 for t in tokens):
                continue
            if punct and (not line.endswith((".", "?", "!", '"', "'")) or line.endswith("...")):
                continue
            lorem = lorem or "lorem ipsum" in line.lower()
            curly = curly or ("javascript" not in line.lower() and "{" in line)
        out[f"{variant}_lorem_ipsum_line"], out[f"{variant}_curly_bracket_line"] = lorem, curly
    out["has_lorem_ipsum"] = "lorem ipsum" in text.lower()
    out["has_curly_bracket"] = "{" in text
    return out


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


@pytest.mark.parametrize("which", ["edges", "real", "spacy"])
def test_signals_equal_the_brute_force_reference(which: str) -> None:
    """With words="spacy" the words are kernels_spacy's (test_words_spacy checks them
    against spaCy); this checks every signal computed from them."""
    texts = real_texts(40) + EDGES if which == "spacy" else EDGES if which == "edges" else []
    texts = texts or real_texts()
    words = "spacy" if which == "spacy" else "whitespace"
    split = kernels_spacy.tokens if which == "spacy" else str.split
    names = [n for n in signals.SIGNALS if n not in ("language", "language_score")]
    ours = {k: v.to_pylist() for k, v in signals.compute(pa.array(texts), names, words).items()}
    checked = 0
    for i, text in enumerate(texts):
        for name, want in reference(text, split).items():
            assert _close(ours[name][i], want), (name, i, text[:80], ours[name][i], want)
            checked += 1
    assert checked >= len(texts) * 25


def test_batches_do_not_change_the_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = pa.array(real_texts(40) + EDGES)
    whole = signals.compute(texts, signals.names_for(signals.SIGNALS)[:-2])
    monkeypatch.setattr(signals, "BATCH_BYTES", 3000)  # many tiny batches
    assert signals.compute(texts, whole) == whole


@pytest.mark.parametrize("size", [4, 1 << 17])
def test_spacy_words_cache_fills_empties_and_replays(
    monkeypatch: pytest.MonkeyPatch, size: int
) -> None:
    """The compiled pass remembers how each punctuated word splits for as long as the thread
    lives, a newer word pushing out an older one of its set: a tiny cache (2 sets, every
    word pushes one out) and a warm one (the second pass replays every word) give the
    reference's numbers, also for words too long for a slot (8+ tokens, a 256+ byte token)."""
    from dataprep.quality import kernels

    odd = ["(((a)))))),.", "x" * 300 + ").", "(" + "y" * 260 + ")", "a.b,c;d:e!f?g(h)i"]
    texts = pa.array(real_texts(30) + EDGES + ["e.g. (a) don't, U.S. section 2.1."] * 3 + odd * 2)
    names = [n for n in signals.SIGNALS if signals.SIGNALS[n].group in ("words", "ngrams")]
    monkeypatch.setenv("DATAPREP_QUALITY_KERNEL", "numba")
    monkeypatch.setattr(signals, "_KERNEL", False)
    monkeypatch.setattr(kernels, "_LOCAL", threading.local())
    monkeypatch.setattr(kernels, "CACHE_WORDS", size)
    first = signals.compute(texts, names, "spacy")
    assert signals.compute(texts, names, "spacy") == first
    remembered = np.count_nonzero(kernels._LOCAL.cache[::2])
    assert 0 < remembered <= size if size == 4 else remembered > 1000
    for i, text in enumerate(texts.to_pylist()):
        for name, want in reference(text, kernels_spacy.tokens).items():
            if name in names:
                assert _close(first[name][i].as_py(), want), (name, i, text[:80])


@pytest.mark.parametrize("words", signals.WORDS)
def test_kernel_scratch_kept_between_batches(monkeypatch: pytest.MonkeyPatch, words: str) -> None:
    """The compiled pass keeps its scratch between batches (grown when short, stale values
    left in it); batches of every size, and scratch too big to keep, give the same numbers."""
    from dataprep.quality import kernels_scratch

    texts = pa.array(EDGES + real_texts(40) + EDGES)
    names = [n for n in signals.SIGNALS if signals.SIGNALS[n].group in ("words", "ngrams")]
    monkeypatch.setenv("DATAPREP_QUALITY_KERNEL", "numba")
    monkeypatch.setattr(signals, "_KERNEL", False)
    monkeypatch.setattr(kernels_scratch, "_LOCAL", threading.local())
    whole = signals.compute(texts, names, words)
    kept = kernels_scratch._LOCAL.scratch
    monkeypatch.setattr(signals, "BATCH_BYTES", 3000)
    assert signals.compute(texts, names, words) == whole
    assert kernels_scratch._LOCAL.scratch is kept  # smaller batches: the same arena
    monkeypatch.setattr(kernels_scratch, "_LOCAL", threading.local())
    assert signals.compute(texts, names, words) == whole  # small first, then grown
    assert kernels_scratch._LOCAL.scratch[2] >= kept[2]
    monkeypatch.setattr(kernels_scratch, "SCRATCH_KEPT", 1000)
    assert signals.compute(texts, names, words) == whole


NGRAM_EDGES = [
    "solo",
    "two words",
    "same " * 30,
    "a b c d e f g h i",  # 9 words: no 10-gram
    "a b c d e f g h i j",  # exactly one 10-gram
    "abcdefg abcdefgh abcdefg abcdefgh abcdefgi abcdefgh abcdefg abcdefgh abcdefgi x",
    "abcdefg abcdefh abcdefg abcdefh abcdefx abcdefh abcdefg abcdefh abcdefx abcdefh",
    "verylongword1 verylongword2 verylongword1 verylongword2 verylongword1 verylongword2 q",
    "x, y. (z) x, y. (z) x, y. (z) don't, don't. e.g. e.g. U.S. U.S. 3.14 3.14",
]


def long_texts(budget: int = 600_000) -> list[str]:
    """Changelogs and man page sources: long documents that repeat their own lines (the
    n-gram pass's big tables), decoded as they come, about `budget` bytes in all."""
    paths = sorted(Path("/usr/share/doc").glob("*/changelog*.gz"))[::7]
    paths += sorted(Path("/usr/share/man").glob("**/*.gz"))[::97]
    texts, size = [], 0
    for path in paths:
        try:
            text = gzip.open(path).read()[:120_000].decode("utf-8", "replace")
        except (OSError, EOFError):
            continue
        texts.append(text)
        size += len(text)
        if size > budget:
            break
    return texts


@pytest.mark.parametrize("words", signals.WORDS)
def test_compiled_ngrams_equal_the_brute_force_on_long_text(
    monkeypatch: pytest.MonkeyPatch, words: str
) -> None:
    """The compiled word numbering and n-gram pass against the obvious Python (Counter for
    the top n-grams, datatrove's greedy scan for the duplicates) on long repetitive
    documents, and on edge cases: one word, the same word over and over, fewer words than n,
    words of 7 and 8 bytes that share a prefix (short words are keyed by their bytes, long
    ones by hash and bytes)."""
    texts = long_texts() + NGRAM_EDGES + EDGES
    assert sum(len(t) > 50_000 for t in texts) >= 3
    names = [n for n in signals.SIGNALS if signals.SIGNALS[n].group in ("words", "ngrams")]
    monkeypatch.setenv("DATAPREP_QUALITY_KERNEL", "numba")
    monkeypatch.setattr(signals, "_KERNEL", False)
    ours = {k: v.to_pylist() for k, v in signals.compute(pa.array(texts), names, words).items()}
    split = kernels_spacy.tokens if words == "spacy" else str.split
    repeated = 0
    for i, text in enumerate(texts):
        for name, want in reference(text, split).items():
            if name in names:
                assert _close(ours[name][i], want), (name, i, text[:80], ours[name][i], want)
        repeated += ours["dup_10_gram_char_fraction"][i] > 0
    assert repeated >= 5


@pytest.mark.parametrize("words", signals.WORDS)
def test_short_word_keys_ignore_the_bytes_after_the_word(
    monkeypatch: pytest.MonkeyPatch, words: str
) -> None:
    """A word of up to 7 bytes is keyed by one 8-byte read masked to its length: equal words
    followed by different text stay equal, words that are prefixes of each other stay apart,
    and the words in the buffer's last 7 bytes (the byte-by-byte path) number the same way."""
    stems = ["a", "ab", "abc", "abcd", "abcde", "abcdef", "abcdefg"]
    texts = []
    for k, stem in enumerate(stems):
        tail = " ".join(stems[: k + 1])
        texts.append(" ".join(f"{stem} {other}" for other in stems) + f" {stem}\t{stem}x " + tail)
    texts.append("ab. ab, ab! (ab) ab; ab ab: ab")  # spaCy: "ab" then marks, many times
    texts.append(" ".join(["ab abc"] * 12) + " ab")  # the buffer ends with a short word
    names = [n for n in signals.SIGNALS if signals.SIGNALS[n].group in ("words", "ngrams")]
    monkeypatch.setenv("DATAPREP_QUALITY_KERNEL", "numba")
    monkeypatch.setattr(signals, "_KERNEL", False)
    ours = {k: v.to_pylist() for k, v in signals.compute(pa.array(texts), names, words).items()}
    split = kernels_spacy.tokens if words == "spacy" else str.split
    for i, text in enumerate(texts):
        for name, want in reference(text, split).items():
            if name in names:
                assert _close(ours[name][i], want), (name, i, text[:80], ours[name][i], want)
    assert sum(ours["top_2_gram_char_fraction"][i] > 0 for i in range(len(texts))) == len(texts)


def test_cached_kernels_follow_the_sources_they_call(tmp_path: Path) -> None:
    """numba keys cached machine code by the bytes of the function's own file: a function
    that calls one from another file keeps the old code after that file changes (as
    kernels.scan calls kernels_ngrams, kernels_spacy and utf8_space). forget_stale flushes
    it when any listed source changed, so the edit shows."""
    import subprocess
    import sys

    (tmp_path / "helper.py").write_text(
        "from numba import njit\n@njit(cache=True)\ndef f(x):\n    return x + 1\n"
    )
    main = "from numba import njit\nfrom helper import f\n@njit(cache=True)\ndef g(x):\n"
    main += "    return f(x)\n"
    guard = "from dataprep.quality.kernels_cache import forget_stale\n"
    guard += "from pathlib import Path\nforget_stale(globals(), sources=[Path('helper.py')])\n"

    def run(module: str) -> int:
        code = f"import {module}; print({module}.g(1))"
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
        )
        return int(out.stdout)

    (tmp_path / "plain.py").write_text(main)
    (tmp_path / "guarded.py").write_text(main + guard)
    assert run("plain") == run("guarded") == 2
    (tmp_path / "helper.py").write_text(
        "from numba import njit\n@njit(cache=True)\ndef f(x):\n    return x + 2\n"
    )
    assert run("plain") == 2  # numba's own cache: stale
    assert run("guarded") == 3
    assert run("guarded") == 3  # and cached again from then on
    assert (tmp_path / "__pycache__" / "guarded.sources").is_file()


def translations(limit: int = 150) -> list[str]:
    """Non-ASCII real text: the translation catalogues installed here, decoded as they come."""
    paths = sorted(Path("/usr/share/locale").glob("*/LC_MESSAGES/*.mo"))[::20][:limit]
    return [p.read_bytes().decode("utf-8", "replace") for p in paths]


@pytest.mark.parametrize("words", signals.WORDS)
def test_compiled_kernel_equals_the_vectorised_path(
    monkeypatch: pytest.MonkeyPatch, words: str
) -> None:
    spaces = ["a\u3000b\u2003a\u00a0b a b…", " • x\u2003\r\n\n\n- y…\u3000\x1c\n\n"]
    spaces += ["x.... ..... ......y #a# …… ..…. .\u2003..", "...\n#\n\n…"]
    # line breaks and newline runs the fused walk must split as the three regex splits do
    spaces += ["\r\n\r\na\n\r\nb\r\r\n\nc\n\n\n", "\n\n  \n\nx\u2028\n\n\x85y\n\n", "\n", "\n\n"]
    spaces += ["a\n\nb\n\nb\n\n\na\r\n\r\nb", " \n\n-x\n\n-x \n\n\n \u3000"]
    texts = pa.array(EDGES + real_texts(80) + translations() + spaces)
    assert sum(not t.isascii() for t in texts.to_pylist()) > 100
    names = [n for n in signals.SIGNALS if signals.SIGNALS[n].group in signals._COMPILED]
    monkeypatch.setenv("DATAPREP_QUALITY_KERNEL", "numba")
    assert signals.kernel_module() is not None
    compiled = signals.compute(texts, names, words)
    monkeypatch.setattr(signals, "_KERNEL", False)
    monkeypatch.setenv("DATAPREP_QUALITY_KERNEL", "numpy")
    assert signals.kernel_module() is None
    vectorised = signals.compute(texts, names, words)
    for name in names:  # exactly equal, not close
        assert compiled[name].equals(vectorised[name]), name
    assert len(names) == 21


def test_compiled_passes_start_after_enough_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small runs do not pay numba's start-up; the first text goes the vectorised way."""
    monkeypatch.setattr(signals, "_KERNEL", False)
    monkeypatch.setattr(signals, "_vectorised_bytes", 0)
    monkeypatch.setattr(signals, "KERNEL_AFTER_BYTES", 10_000)
    monkeypatch.delenv("DATAPREP_QUALITY_KERNEL", raising=False)
    small = pa.array(["the cat sat on the mat " * 50])
    assert signals._kernel_for(small) is None and signals._KERNEL is False
    big = pa.array(real_texts(40))
    assert big.nbytes > 10_000
    assert signals._kernel_for(big) is not None
    assert signals._kernel_for(small) is not None


def test_null_text_scores_as_empty() -> None:
    got = signals.compute(pa.array([None, ""], pa.string()), ["word_count", "char_count"])
    assert got["word_count"].to_pylist() == [0, 0] and got["char_count"].to_pylist() == [0, 0]


def _dataset(tmp: Path, texts: list[str], name: str = "ds", shard_rows: int = 50) -> Path:
    raw = tmp / f"{name}-raw"
    raw.mkdir()
    rows = [
        {"id": f"d{i}", "source": "lic" if i % 2 else "cr", "text": t} for i, t in enumerate(texts)
    ]
    (raw / "docs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp / name
    run_stage("shard", {"shard_rows": shard_rows}, out, inputs=[str(raw)], executor=INLINE)
    return out


def test_score_adds_columns_and_keeps_every_row(tmp_path: Path) -> None:
    texts = real_texts(60)
    src = _dataset(tmp_path, texts, shard_rows=25)
    run = run_stage("score", {}, tmp_path / "sc", input_path=src, executor=INLINE)
    names = dataset.read_manifest(tmp_path / "sc").schema.names
    assert run.report["rows_in"] == run.report["rows_out"] == 60
    assert column(tmp_path / "sc", "text") == texts
    assert column(tmp_path / "sc", "word_count") == [reference(t)["word_count"] for t in texts]
    assert names[-len(signals.SIGNALS) :] == list(signals.SIGNALS)
    assert {"id", "source", "text"} <= set(names)
    languages = column(tmp_path / "sc", "language")
    assert Counter(languages).most_common(1)[0][0] == "en"
    # rescoring replaces the columns instead of adding a second copy
    again = tmp_path / "again"
    run_stage("score", {"signals": ["gopher"]}, again, input_path=tmp_path / "sc", executor=INLINE)
    assert column(again, "word_count") == column(tmp_path / "sc", "word_count")


def test_words_spacy_from_the_command_line(tmp_path: Path) -> None:
    """`score --words spacy` counts spaCy's tokens; `filter --preset gopher --words spacy`
    computes the same when the columns are missing; a wrong choice is one sentence."""
    texts = real_texts(12) + ["The end. (See section 2, e.g. the notes.) Don't."]
    src = _dataset(tmp_path, texts, shard_rows=5)
    cli("score", src, "-o", tmp_path / "sc", "--signals", "gopher", "--words", "spacy")
    want = [reference(t, kernels_spacy.tokens) for t in texts]
    assert column(tmp_path / "sc", "word_count") == [w["word_count"] for w in want]
    alpha = column(tmp_path / "sc", "alpha_fraction")
    assert all(_close(a, w["alpha_fraction"]) for a, w in zip(alpha, want, strict=True))
    assert alpha[-1] < reference(texts[-1])["alpha_fraction"]  # "." "(" ")" "," are words
    cli("filter", src, "-o", tmp_path / "f1", "--preset", "gopher", "--words", "spacy")
    cli("filter", tmp_path / "sc", "-o", tmp_path / "f2", "--preset", "gopher")
    kept = column(tmp_path / "f1", "text")
    assert 0 < len(kept) < len(texts) and kept == column(tmp_path / "f2", "text")
    bad = cli("score", src, "-o", tmp_path / "x", "--words", "nltk", check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_missing_or_non_text_column_is_one_sentence(tmp_path: Path) -> None:
    src = _dataset(tmp_path, ["some text here"])
    with pytest.raises(DataprepError, match="--text-column 'body' is not a column") as err:
        run_stage("score", {"text_column": "body"}, tmp_path / "o", input_path=src)
    assert "\n" not in str(err.value)
    with pytest.raises(DataprepError, match="'nope' is neither a signal nor a preset"):
        run_stage("score", {"signals": ["nope"]}, tmp_path / "o", input_path=src)
    proc = cli("score", src, "-o", tmp_path / "o2", "--text-column", "body", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "'body' is not a column" in proc.stderr


def test_encrypted_input_stays_encrypted(tmp_path: Path) -> None:
    texts = real_texts(20)
    src = _dataset(tmp_path, texts)
    enc, keys = encrypted_copy(src, tmp_path)
    out = tmp_path / "out"
    run_stage("score", {"signals": ["word_count"]}, out, input_path=enc, key_file=str(keys))
    meta = dataset.read_manifest(out)
    assert meta.encryption is not None
    reader = ReadOptions(str(keys), meta.encryption)
    got = pa.concat_tables(reader.read_table(out / s.path) for s in meta.shards)
    assert got.column("word_count").to_pylist() == [reference(t)["word_count"] for t in texts]
    with pytest.raises(Exception):  # noqa: B017 - without the key the shards do not open
        ReadOptions().read_table(out / meta.shards[0].path)


def test_s3_in_and_out(s3_bucket: str, tmp_path: Path) -> None:
    texts = real_texts(10)
    src = _dataset(tmp_path, texts)
    run_stage("compress", {}, f"{s3_bucket}/in", input_path=src, executor=INLINE)
    run_stage("score", {"signals": ["gopher"]}, f"{s3_bucket}/sc", input_path=f"{s3_bucket}/in")
    got = dataset.read_rows(f"{s3_bucket}/sc")
    assert got.column("word_count").to_pylist() == [reference(t)["word_count"] for t in texts]


def test_resume_after_sigkill_is_identical(tmp_path: Path) -> None:
    texts = real_texts(400)
    src = _dataset(tmp_path, texts, shard_rows=4)
    reference_out = tmp_path / "reference"
    run_stage("score", {"signals": ["gopher"]}, reference_out, input_path=src, executor=INLINE)
    out = tmp_path / "out"
    finished = killed_run("score", {"signals": ["gopher"]}, src, out)
    assert 5 <= finished < 100 and not (out / dataset.MANIFEST).exists()
    run = run_stage("score", {"signals": ["gopher"]}, out, input_path=src, executor=INLINE)
    assert run.status == "ran"
    ours, theirs = manifest(out), manifest(reference_out)
    assert [s["xxh3_128"] for s in ours["shards"]] == [s["xxh3_128"] for s in theirs["shards"]]


@pytest.mark.slow
def test_ray_executor_gives_the_same_shards(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    src = _dataset(tmp_path, real_texts(30), shard_rows=10)
    cli("score", src, "-o", tmp_path / "local", "--signals", "gopher", "-q")
    cli("score", src, "-o", tmp_path / "ray", "--signals", "gopher", "--executor", "ray", "-q")
    ours, theirs = manifest(tmp_path / "ray"), manifest(tmp_path / "local")
    assert [s["xxh3_128"] for s in ours["shards"]] == [s["xxh3_128"] for s in theirs["shards"]]


def test_docs_table_is_the_catalogue() -> None:
    from dataprep.quality import catalog, presets

    doc = (Path(__file__).resolve().parents[1] / "docs" / "quality-signals.md").read_text()
    assert catalog.markdown_table() in doc
    assert presets.markdown_table() in doc


def _raw_with_language(tmp: Path) -> Path:
    """Raw JSONL whose own `language` column (a user's label) is named like a signal."""
    raw = tmp / "raw"
    raw.mkdir()
    rows = [
        {"id": f"d{i}", "text": t, "language": lab}
        for i, (t, lab) in enumerate(zip(real_texts(6), ["x-mine", "y-mine"] * 3, strict=True))
    ]
    (raw / "docs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return raw


def test_a_user_column_named_like_a_signal_is_not_overwritten(tmp_path: Path) -> None:
    """A user's own `language` column stops `score` with one sentence naming it (before any
    output exists); leaving the signal out keeps it; --replace-columns overwrites on request;
    a column an earlier `score` wrote is still replaced (rescoring stays idempotent)."""
    cli("shard", _raw_with_language(tmp_path), "-o", tmp_path / "ds")
    mine = column(tmp_path / "ds", "language")
    proc = cli("score", tmp_path / "ds", "-o", tmp_path / "sc", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "'language'" in proc.stderr and "--replace-columns" in proc.stderr
    assert not (tmp_path / "sc" / ".manifest.json").exists()
    cli("score", tmp_path / "ds", "-o", tmp_path / "g", "--signals", "gopher")
    assert column(tmp_path / "g", "language") == mine
    cli("score", tmp_path / "ds", "-o", tmp_path / "r", "--replace-columns")
    assert set(column(tmp_path / "r", "language")).isdisjoint(mine)
    cli("score", tmp_path / "r", "-o", tmp_path / "again")  # the columns are score's own now
    assert column(tmp_path / "again", "language") == column(tmp_path / "r", "language")
    cli("filter", tmp_path / "g", "-o", tmp_path / "f", "--where", "word_count > 0")
    cli("score", tmp_path / "f", "-o", tmp_path / "f2", "--signals", "gopher")  # via filter
    proc = cli("score", tmp_path / "f", "-o", tmp_path / "f3", check=False)
    assert proc.returncode == 2 and "'language'" in proc.stderr  # still the user's column


def test_a_recipe_stops_at_plan_time_on_a_clashing_column(tmp_path: Path) -> None:
    """In a recipe the clash is known from the schema before the first stage runs."""
    import yaml

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "name": "t",
                "input": {"path": str(_raw_with_language(tmp_path))},
                "vars": {"root": str(tmp_path / "work")},
                "executor": {"kind": "local", "workers": 1},
                "stages": [
                    {"id": "shards", "op": "shard"},
                    {"id": "first", "op": "score", "params": {"signals": ["gopher"]}},
                    {"id": "again", "op": "score", "params": {"signals": ["gopher"]}},
                    {"id": "all", "op": "score"},
                ],
            }
        )
    )
    proc = cli("run", recipe, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "stages[3]" in proc.stderr and "'language'" in proc.stderr
    assert "replace_columns" in proc.stderr
    assert not (tmp_path / "work" / "shards").exists()
