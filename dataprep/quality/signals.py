"""Quality signals: one column per signal, computed for a whole batch of documents at once.

Words are whitespace-separated tokens (Python's `str.split()`; Arrow splits on the same
characters), as datatrove's filters see text with a whitespace word tokenizer, or with
words="spacy" spaCy's English tokens (`kernels_spacy`), as datatrove's default tokenizer.
Each group of
signals splits the batch once with an Arrow string kernel (words, lines, paragraphs), works
on the flat array of pieces plus each piece's document number, and folds back per document
with `bincount`; nothing loops over documents in Python. The definitions follow the Gopher
paper (Rae et al. 2021, table A1) as datatrove implements them, so thresholds from the papers
mean the same thing here; `docs/quality-signals.md` has the table.
The word, n-gram, line and paragraph groups run as compiled passes (`kernels.py`,
`kernels_lines.py`) where numba works; the groups here are their reference and fallback.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataprep.quality import repetition
from dataprep.quality.catalog import SIGNALS, Signal

__all__ = ["SIGNALS", "Signal", "WORDS", "compute", "names_for", "words"]

WORDS = ("whitespace", "spacy")  # how the word and n-gram signals split words

STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")  # Gopher's list
# Python's str.splitlines() boundaries, in RE2 syntax
LINE_BREAK = r"\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x{85}\x{2028}\x{2029}]"
# Sentence-final marks of the common scripts (FineWeb counts lines ending in one)
TERMINAL = r".!?\x{3002}\x{FF01}\x{FF1F}\x{FF61}\x{589}\x{61F}\x{6D4}\x{964}\x{965}\x{1362}"
TERMINAL += r"\x{166E}\x{1803}\x{1809}\x{203C}\x{203D}\x{2047}\x{2048}\x{2049}\x{FF0E}"
C4_END = r"[.?!\"']$"  # C4 keeps lines ending in one of these (and not in "...")
SENTENCE_END = r"[.?!]+[\"']?(?:[ \t]|$)"
BATCH_BYTES = 1 << 20


_GROUPS: dict[str, Callable[[pa.Array, int], dict[str, np.ndarray]]] = {}


def _group(name: str) -> Callable:
    def register(fn: Callable) -> Callable:
        _GROUPS[name] = fn
        return fn

    return register


def names_for(columns: Iterable[str]) -> list[str]:
    """The signals among `columns`, in table order."""
    return [c for c in SIGNALS if c in set(columns)]


def compute(
    texts: pa.Array | pa.ChunkedArray, names: Iterable[str], words: str = "whitespace"
) -> dict[str, pa.Array]:
    """The named signals for every document in `texts` (null text counts as empty); `words`
    is one of WORDS."""
    if words not in WORDS:
        raise ValueError(f"words must be one of {', '.join(WORDS)}, not {words!r}")
    wanted = list(dict.fromkeys(names))
    unknown = [n for n in wanted if n not in SIGNALS]
    if unknown:
        raise KeyError(unknown[0])
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks else pa.array([], pa.string())
    if pa.types.is_large_string(texts.type) or pa.types.is_string_view(texts.type):
        texts = texts.cast(pa.string())
    if texts.null_count:
        texts = texts.fill_null(_EMPTY[0])
    groups = list(dict.fromkeys(SIGNALS[n].group for n in wanted))
    # spaCy words have no fast vectorised form: the compiled pass from the first byte
    pick = kernel_module if words == "spacy" else lambda: _kernel_for(texts)
    kernel = pick() if set(_COMPILED).intersection(groups) else None
    parts: dict[str, list[np.ndarray]] = {n: [] for n in wanted}
    for start, stop in _batches(texts):
        batch = texts.slice(start, stop - start)
        values: dict[str, np.ndarray] = {}
        done: set[str] = set()
        for group in groups:
            if kernel is not None and group in _COMPILED:
                if _COMPILED[group] not in done:  # one pass gives all its groups
                    done.add(_COMPILED[group])
                    values.update(kernel[_COMPILED[group]](batch, groups, words))
                continue
            if group in ("words", "ngrams"):
                values.update(_GROUPS[group](batch, stop - start, words))
            else:
                values.update(_GROUPS[group](batch, stop - start))
        for n in wanted:
            parts[n].append(values[n])
    return {n: _arrow(parts[n], SIGNALS[n].type) for n in wanted}


# WHY without pa.array / pa.scalar: given Python or numpy values, pyarrow imports pandas to
# check what it was given (~0.2 s of CPU, once in every `score` worker process)
_EMPTY = pa.StringArray.from_buffers(1, pa.py_buffer(np.zeros(2, np.int32)), pa.py_buffer(b""))
_NUMPY = {pa.int64(): np.int64, pa.float64(): np.float64, pa.float32(): np.float32}


def _arrow(parts: list[np.ndarray], type_: pa.DataType) -> pa.Array:
    """One signal's batches as one Arrow array of `type_`."""
    values = np.concatenate(parts) if parts else np.zeros(0, np.float64)
    if pa.types.is_boolean(type_) and values.dtype != object:
        bits = np.packbits(values.astype(np.bool_), bitorder="little")
        return pa.Array.from_buffers(type_, len(values), [None, pa.py_buffer(bits)])
    if type_ in _NUMPY and values.dtype != object:
        flat = np.ascontiguousarray(values, dtype=_NUMPY[type_])
        return pa.Array.from_buffers(type_, len(flat), [None, pa.py_buffer(flat)])
    return pa.array(values, type=type_)


# groups computed by a compiled pass (quality/kernels*.py), and which pass
_COMPILED = {"words": "words", "ngrams": "words", "lines": "lines", "dup_lines": "lines"}
_COMPILED["dup_paras"] = "lines"
_KERNEL: Any = False


def kernel_module() -> dict[str, Callable[..., dict[str, np.ndarray]]] | None:
    """The compiled passes (numba, imported on first use: never on `dataprep --help`), or None
    where numba is missing or cannot cache (RuntimeError) or DATAPREP_QUALITY_KERNEL=numpy:
    then the vectorised groups below run, with the same values."""
    global _KERNEL
    if _KERNEL is False:
        _KERNEL = None
        if os.environ.get("DATAPREP_QUALITY_KERNEL", "auto") != "numpy":
            try:
                from dataprep.quality import kernels, kernels_lines
            except (ImportError, RuntimeError):
                pass
            else:
                _KERNEL = {
                    "words": lambda t, groups, w: kernels.word_signals(t, "ngrams" in groups, w),
                    "lines": lambda t, groups, w: kernels_lines.line_signals(t),
                }
    return _KERNEL


# Loading numba and the cached passes costs a process ~1 s of CPU: the vectorised path (same
# values, ~5x slower per byte) is cheaper until a process has scored about this much text, so
# small runs stay as fast as before and large ones get the compiled passes.
# DATAPREP_QUALITY_KERNEL=numba uses them from the first byte, =numpy never.
KERNEL_AFTER_BYTES = 16 << 20
_vectorised_bytes = 0


def _kernel_for(texts: pa.Array) -> Any:
    """The compiled passes once they pay for their start-up in this process, else None."""
    global _vectorised_bytes
    if _KERNEL is False and os.environ.get("DATAPREP_QUALITY_KERNEL", "auto") == "auto":
        if _vectorised_bytes + texts.nbytes < KERNEL_AFTER_BYTES:
            _vectorised_bytes += texts.nbytes
            return None
    return kernel_module()


def _batches(texts: pa.Array) -> list[tuple[int, int]]:
    """Row ranges of about BATCH_BYTES of text: the hash tables of one batch then stay in the
    CPU cache (1 MiB batches ran the n-gram signals twice as fast as 64 MiB ones)."""
    _, off, _ = texts.buffers()  # (not to_numpy: see _arrow)
    offsets = np.frombuffer(off, np.int32, len(texts) + 1, texts.offset * 4).astype(np.int64)
    sizes = offsets[1:] - offsets[0]
    bounds, start = [], 0
    while start < len(texts):
        base = sizes[start - 1] if start else 0
        stop = int(np.searchsorted(sizes, base + BATCH_BYTES, side="left")) + 1
        bounds.append((start, min(max(stop, start + 1), len(texts))))
        start = bounds[-1][1]
    return bounds


def _pieces(lists: pa.ListArray, drop_empty: bool = False) -> tuple[pa.Array, np.ndarray]:
    """The flat pieces of a split and the document each came from."""
    flat = lists.flatten()
    doc = pc.list_parent_indices(lists).to_numpy().astype(np.int64)
    if drop_empty and len(flat):
        keep = pc.greater(pc.binary_length(flat), 0)
        flat, doc = flat.filter(keep), doc[keep.to_numpy(zero_copy_only=False)]
    return flat, doc


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros(len(num), dtype=np.float64), where=den > 0)


def _per_doc(doc: np.ndarray, mask: pa.Array | np.ndarray, n_docs: int) -> np.ndarray:
    if isinstance(mask, pa.Array):
        mask = mask.to_numpy(zero_copy_only=False)
    return np.bincount(doc[mask], minlength=n_docs)


def _lengths(values: pa.Array) -> np.ndarray:
    return pc.utf8_length(values).to_numpy().astype(np.int64)


def _count(texts: pa.Array, pattern: str) -> np.ndarray:
    return pc.count_substring(texts, pattern).to_numpy().astype(np.int64)


@_group("text")
def _text(texts: pa.Array, n_docs: int) -> dict[str, np.ndarray]:
    return {"char_count": _lengths(texts)}


def words(texts: pa.Array, mode: str = "whitespace") -> tuple[pa.Array, np.ndarray]:
    """The words of every document and the document of each: whitespace-separated tokens,
    or spaCy's tokens (a loop per document: the reference and fallback, not the fast path)."""
    if mode == "spacy":
        from dataprep.quality.kernels_spacy import tokens

        lists = pa.array([tokens(t) for t in texts.to_pylist()], pa.list_(pa.string()))
        return _pieces(lists, drop_empty=True)
    # trimmed first: pyarrow's split reads past the end of the array's last string when it
    # ends in whitespace, and the byte there (padding) may glue the "\n" to its last word
    return _pieces(pc.utf8_split_whitespace(pc.utf8_rtrim_whitespace(texts)), drop_empty=True)


@_group("words")
def _words(texts: pa.Array, n_docs: int, mode: str = "whitespace") -> dict[str, np.ndarray]:
    tokens, doc = words(texts, mode)
    n_tokens = np.bincount(doc, minlength=n_docs)
    lengths = _lengths(tokens)
    real = pc.match_substring_regex(tokens, r"[^\pP\pS\pC]").to_numpy(zero_copy_only=False)
    n_real = np.bincount(doc[real], minlength=n_docs)
    alpha = _per_doc(doc, pc.match_substring_regex(tokens, r"\pL"), n_docs)
    stop = pc.index_in(tokens, value_set=pa.array(STOP_WORDS)).to_numpy(zero_copy_only=False)
    found = ~np.isnan(stop)
    pairs = np.unique(doc[found] * len(STOP_WORDS) + stop[found].astype(np.int64))
    hashes = _count(texts, "#")
    ellipses = _count(texts, "...") + _count(texts, "\u2026")
    return {
        "word_count": n_real,
        "mean_word_length": _ratio(np.bincount(doc[real], lengths[real], n_docs), n_real),
        "alpha_fraction": _ratio(alpha, n_tokens),
        "symbol_to_word_ratio": np.maximum(_ratio(hashes, n_tokens), _ratio(ellipses, n_tokens)),
        "stop_word_count": np.bincount(pairs // len(STOP_WORDS), minlength=n_docs),
        "newline_to_word_ratio": _ratio(_count(texts, "\n"), n_tokens),
    }


@_group("lines")
def _lines(texts: pa.Array, n_docs: int) -> dict[str, np.ndarray]:
    lines, doc = _pieces(pc.split_pattern_regex(texts, LINE_BREAK))
    # splitlines() has no empty last line after a final break, and no line in ""
    n_lines = np.bincount(doc, minlength=n_docs)
    ends = pc.match_substring_regex(texts, f"(?:{LINE_BREAK})$").to_numpy(zero_copy_only=False)
    n_lines = n_lines - (ends | (_lengths(texts) == 0))
    head = pc.utf8_ltrim_whitespace(lines)
    bullet = pc.or_(pc.starts_with(head, "\u2022"), pc.starts_with(head, "-"))
    tail = pc.utf8_rtrim_whitespace(lines)
    ellipsis = pc.or_(pc.ends_with(tail, "..."), pc.ends_with(tail, "\u2026"))
    return {
        "bullet_line_fraction": _ratio(_per_doc(doc, bullet, n_docs), n_lines),
        "ellipsis_line_fraction": _ratio(_per_doc(doc, ellipsis, n_docs), n_lines),
    }


@_group("fineweb_lines")
def _fineweb_lines(texts: pa.Array, n_docs: int) -> dict[str, np.ndarray]:
    lines, doc = _pieces(pc.split_pattern(texts, "\n"))
    blank = pc.equal(pc.binary_length(pc.utf8_trim_whitespace(lines)), 0)
    keep = pc.invert(blank)
    lines, doc = lines.filter(keep), doc[keep.to_numpy(zero_copy_only=False)]
    n_lines = np.bincount(doc, minlength=n_docs)
    punct = pc.match_substring_regex(lines, f"[{TERMINAL}]$")
    short = pc.less_equal(pc.utf8_length(lines), 30)
    _, dup_chars = repetition.duplicates(lines, doc, _lengths(lines), n_docs)
    return {
        "punct_line_fraction": _ratio(_per_doc(doc, punct, n_docs), n_lines),
        "short_line_fraction": _ratio(_per_doc(doc, short, n_docs), n_lines),
        "fineweb_dup_line_char_fraction": _ratio(dup_chars, _lengths(texts) - _count(texts, "\n")),
    }


def _dup_fractions(
    pieces: pa.ListArray, chars: np.ndarray, n_docs: int, kind: str
) -> dict[str, np.ndarray]:
    flat, doc = _pieces(pieces)
    count, dup_chars = repetition.duplicates(flat, doc, _lengths(flat), n_docs)
    return {
        f"dup_{kind}_fraction": _ratio(count, np.bincount(doc, minlength=n_docs)),
        f"dup_{kind}_char_fraction": _ratio(dup_chars, chars),
    }


@_group("dup_lines")
def _dup_lines(texts: pa.Array, n_docs: int) -> dict[str, np.ndarray]:
    return _dup_fractions(pc.split_pattern_regex(texts, r"\n+"), _lengths(texts), n_docs, "line")


@_group("dup_paras")
def _dup_paras(texts: pa.Array, n_docs: int) -> dict[str, np.ndarray]:
    paras = pc.split_pattern_regex(pc.utf8_trim_whitespace(texts), r"\n\n+")
    return _dup_fractions(paras, _lengths(texts), n_docs, "para")


@_group("ngrams")
def _ngrams(texts: pa.Array, n_docs: int, mode: str = "whitespace") -> dict[str, np.ndarray]:
    tokens, doc = words(texts, mode)
    return repetition.ngram_signals(tokens, doc, _lengths(tokens), n_docs, _lengths(texts))


def _bools(values: pa.Array) -> np.ndarray:
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=bool)


@_group("c4")
def _c4(texts: pa.Array, n_docs: int) -> dict[str, np.ndarray]:
    lines, doc = _pieces(pc.split_pattern_regex(texts, LINE_BREAK))
    lines = pc.utf8_trim_whitespace(lines)
    tokens = pc.utf8_split_whitespace(lines)
    token_doc = pc.list_parent_indices(tokens).to_numpy()
    too_long = _lengths(tokens.flatten()) > 1000
    long_line = np.bincount(token_doc[too_long], minlength=len(lines)) > 0
    lower = pc.utf8_lower(lines)
    words_ok = _bools(pc.greater_equal(pc.list_value_length(tokens), 3)) & ~long_line
    punct = _bools(pc.match_substring_regex(lines, C4_END)) & ~_bools(pc.ends_with(lines, "..."))
    no_js = ~_bools(pc.match_substring(lower, "javascript"))
    lorem = _bools(pc.match_substring(lower, "lorem ipsum"))
    curly = _bools(pc.match_substring(lines, "{"))
    mask = punct & words_ok & no_js
    ends = pc.count_substring_regex(lines, SENTENCE_END).to_numpy().astype(np.int64)

    def any_line(hit: np.ndarray) -> np.ndarray:  # C4 checks lorem before javascript, `{` after
        return np.bincount(doc[hit], minlength=n_docs) > 0

    return {
        "has_lorem_ipsum": pc.match_substring(texts, "lorem ipsum", ignore_case=True).to_numpy(
            zero_copy_only=False
        ),
        "has_curly_bracket": pc.match_substring(texts, "{").to_numpy(zero_copy_only=False),
        "c4_sentence_count": np.bincount(doc[mask], ends[mask], n_docs).astype(np.int64),
        "c4_lorem_ipsum_line": any_line(lorem & punct & words_ok),
        "c4_curly_bracket_line": any_line(curly & mask),
        "fineweb_lorem_ipsum_line": any_line(lorem & words_ok),
        "fineweb_curly_bracket_line": any_line(curly & words_ok & no_js),
    }


@_group("language")
def _language(texts: pa.Array, n_docs: int) -> dict[str, np.ndarray]:
    from dataprep.quality.language import identify  # loads a 30 MB model: only when asked

    language, score = identify(texts)
    return {
        "language": language.to_numpy(zero_copy_only=False),
        "language_score": score.to_numpy(zero_copy_only=False),
    }
