"""Language identification: which language each document is written in, and how sure.

The model is py3langid's (a maintained fork of langid.py: naive Bayes over byte n-grams,
140 languages). It ships inside the package's wheel, so nothing is downloaded at run time, and
the package is pure Python over numpy, so it is a core dependency. docs/language-id.md says
why this library (measured against lingua, langdetect, fastText's lid.176, CLD2 and CLD3).

py3langid scores one document at a time with a Python loop over its bytes (~1-2 MB/s). Here
the same model runs batched: the n-gram automaton steps all documents of a batch at once
(one numpy step per byte position, not per byte), features are counted per document with
one sort, and each document's naive Bayes sum is one BLAS product over its unique features.
The answers are py3langid's own (tests/test_language.py checks them against `classify`),
several times faster.

Only the first `max_chars` characters of a document are read: its language is settled long
before its end, and this bounds the cost of very long documents (accuracy against N is
measured in docs/language-id.md).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataprep.errors import DataprepError

# Characters read per document; see docs/language-id.md for accuracy against this number.
DEFAULT_MAX_CHARS = 2000
# Bytes of text stepped through the automaton together: large enough that one numpy step
# covers many documents, small enough that the feature hits stay a few MB.
_BATCH_BYTES = 1 << 20
# Below this many documents still running, the rest of their bytes go through a plain loop
# (a numpy step costs as much as ~20 bytes of Python loop).
_MIN_VECTOR_DOCS = 16

# The library's codes that are not ISO 639-1, mapped to the ISO 639-1 code of their
# macrolanguage (yue/wuu are Chinese, arz/ary Arabic, ...); None: no language (zxx is
# "no linguistic content").
_TO_ISO_639_1: dict[str, str | None] = {
    "yue": "zh",
    "wuu": "zh",
    "arz": "ar",
    "ary": "ar",
    "uzs": "uz",
    "gug": "gn",
    "sdh": "ku",
    "fuv": "ff",
    "kik": "ki",
    "zxx": None,
}
# Codes a user may type for a language the model reports under another code.
_ALIASES = {"nb": "no", "iw": "he", "in": "id", "ji": "yi", "jw": "jv", "sh": "sr"}


@dataclass(frozen=True)
class _Model:
    """py3langid's model as flat numpy arrays."""

    next_state: np.ndarray  # (rows * 256,) uint32: automaton transition table
    row_base: np.ndarray  # (states,) int32: offset of a state's row in next_state
    feature: np.ndarray  # (states,) int32: n-gram feature ending in this state, or -1
    weights: np.ndarray  # (features, classes) float32: log P(feature | class)
    prior: np.ndarray  # (classes,) float32: log P(class)
    alias_pairs: tuple[tuple[int, int], ...]  # (kept, folded) columns of one label
    codes: tuple[str | None, ...]  # ISO 639-1 code per class column (None: no language)
    # The same automaton as Python sequences, for the plain loop over a few long tails.
    next_state_seq: Sequence[int]
    row_base_seq: Sequence[int]
    feature_seq: Sequence[int]


@cache
def _model() -> _Model:
    """py3langid's model, loaded once per process (~30 MB of weights, about a second)."""
    try:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier
    except ImportError as e:
        raise DataprepError(
            "language identification needs the py3langid package, a dependency of dataprep: "
            "pip install 'py3langid>=0.3' (or reinstall dataprep)"
        ) from e
    ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    first: dict[str, int] = {}
    pairs = []
    for i, code in enumerate(ident.nb_classes):
        if code in first:
            pairs.append((first[code], i))
        else:
            first[code] = i
    return _Model(
        next_state=np.frombuffer(ident.tk_nextmove, dtype=np.uint32),  # a view: no copy
        row_base=(np.asarray(ident.tk_row, dtype=np.int64) << 8).astype(np.int32),
        feature=np.asarray(ident.tk_output, dtype=np.int32),
        weights=np.asarray(ident.nb_ptc, dtype=np.float32),
        prior=np.asarray(ident.nb_pc, dtype=np.float32),
        alias_pairs=tuple(pairs),
        codes=tuple(_TO_ISO_639_1.get(c, c) for c in ident.nb_classes),
        next_state_seq=ident.tk_nextmove,
        row_base_seq=[r << 8 for r in ident.tk_row],
        feature_seq=list(ident.tk_output),
    )


def normalise_language(code: str) -> str:
    """The code `identify` reports for a language code a user typed (`--languages nb,en`):
    lower-cased, region dropped (pt-BR -> pt), aliases resolved (nb -> no, iw -> he)."""
    base = code.strip().lower().replace("_", "-").split("-")[0]
    base = _ALIASES.get(base, base)
    return _TO_ISO_639_1.get(base, base) or base


def supported_languages() -> list[str]:
    """Every code `identify` can return, sorted (to check a user's `--languages`)."""
    return sorted({c for c in _model().codes if c})


def identify(
    texts: pa.Array | pa.ChunkedArray | Sequence[str | None], *, max_chars: int = DEFAULT_MAX_CHARS
) -> tuple[pa.Array, pa.Array]:
    """The language of each text and the model's confidence in it.

    Returns two arrays as long as `texts`: `language` (string: an ISO 639-1 code such as
    "en", "de", "zh", or the model's ISO 639-3 code for the few languages without one) and
    `language_score` (float32 in [0, 1], the posterior probability of that language). An
    empty, whitespace-only or null text, or one with no linguistic content, gets a null
    language and score 0. Deterministic, and each text's answer is independent of the
    others in the batch. Only the first `max_chars` characters are read.
    """
    if max_chars < 1:
        raise DataprepError(f"max_chars must be at least 1, got {max_chars}")
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if isinstance(texts, pa.Array):
        # Cut in Arrow first, so a long document never becomes a long Python string.
        values = pc.utf8_slice_codeunits(texts, 0, max_chars).to_pylist()
    else:
        values = [t[:max_chars] if t else t for t in texts]
    codes: list[str | None] = [None] * len(values)
    scores = np.zeros(len(values), dtype=np.float32)
    batch: list[int] = []
    encoded: list[bytes] = []
    size = 0
    for i, text in enumerate(values):
        if not text or text.isspace():
            continue
        if text.isupper():  # as py3langid: all-caps text is scored lower-cased
            text = text.lower()
        data = unicodedata.normalize("NFC", text).encode("utf-8", errors="surrogatepass")
        batch.append(i)
        encoded.append(data)
        size += len(data)
        if size >= _BATCH_BYTES:
            _classify(_model(), batch, encoded, codes, scores)
            batch, encoded, size = [], [], 0
    if batch:
        _classify(_model(), batch, encoded, codes, scores)
    return pa.array(codes, pa.string()), pa.array(scores, pa.float32())


def _classify(
    model: _Model,
    rows: list[int],
    encoded: list[bytes],
    codes: list[str | None],
    scores: np.ndarray,
) -> None:
    """Fill codes[rows[k]] and scores[rows[k]] for the UTF-8 documents `encoded`."""
    doc, feature = _feature_hits(model, encoded)
    posterior = _posterior(model, len(encoded), doc, feature, encoded)
    best = posterior.argmax(axis=1)
    has_features = np.zeros(len(encoded), dtype=bool)
    has_features[doc] = True
    for k, row in enumerate(rows):
        code = model.codes[best[k]] if has_features[k] else None
        codes[row] = code
        scores[row] = min(float(posterior[k, best[k]]), 1.0) if code else 0.0


def _feature_hits(model: _Model, encoded: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """(document, feature) for every n-gram feature the automaton reaches, documents stepped
    together: longest first, so the documents still running are always a prefix."""
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    order = np.argsort(-lengths, kind="stable")
    sorted_lengths = lengths[order]
    data = np.frombuffer(b"".join(encoded[i] for i in order), dtype=np.uint8)
    starts = np.zeros(len(encoded), dtype=np.int64)
    np.cumsum(sorted_lengths[:-1], out=starts[1:])
    # running[t]: how many documents are longer than t bytes
    running = np.searchsorted(-sorted_lengths, -np.arange(int(sorted_lengths[0])), "left")
    state = np.zeros(len(encoded), dtype=np.int32)
    docs: list[np.ndarray] = []
    feats: list[np.ndarray] = []
    step = 0
    while step < len(running) and running[step] >= _MIN_VECTOR_DOCS:
        n = running[step]
        s = model.next_state[model.row_base[state[:n]] + data[starts[:n] + step]]
        state[:n] = s
        f = model.feature[s]
        hit = np.flatnonzero(f >= 0)
        docs.append(hit)
        feats.append(f[hit])
        step += 1
    # The few longest documents finish in a plain loop from where the automaton stands.
    next_state, row_base, feature = model.next_state_seq, model.row_base_seq, model.feature_seq
    for k in range(int(running[step]) if step < len(running) else 0):
        s = int(state[k])
        tail = []
        for byte in data[starts[k] + step : starts[k] + sorted_lengths[k]].tobytes():
            s = next_state[row_base[s] + byte]
            if feature[s] >= 0:
                tail.append(feature[s])
        docs.append(np.full(len(tail), k, dtype=np.int64))
        feats.append(np.asarray(tail, dtype=np.int32))
    doc = order[np.concatenate(docs)] if docs else np.zeros(0, dtype=np.int64)
    return doc, (np.concatenate(feats) if feats else np.zeros(0, dtype=np.int32))


def _posterior(
    model: _Model, n_docs: int, doc: np.ndarray, feature: np.ndarray, encoded: list[bytes]
) -> np.ndarray:
    """P(class | document) as py3langid computes it: naive Bayes over log(1 + count) of each
    feature, tempered by sqrt(bytes) so confidence is comparable across lengths."""
    n_features, n_classes = model.weights.shape
    keys = doc.astype(np.int64) * n_features + feature
    keys.sort()
    firsts = np.flatnonzero(np.diff(keys, prepend=-1))
    counts = np.diff(firsts, append=len(keys)).astype(np.float32)
    keys = keys[firsts]
    pair_doc, pair_feature = np.divmod(keys, n_features)
    pair_weight = np.log1p(counts)
    logp = np.zeros((n_docs, n_classes), dtype=np.float32)
    bounds = np.append(np.flatnonzero(np.diff(pair_doc, prepend=-1)), len(keys)).tolist()
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        # One BLAS product per document over fresh (aligned) copies of its own rows: its
        # sum never depends on its neighbours in the batch or where it sits in memory.
        logp[pair_doc[lo]] = pair_weight[lo:hi].copy() @ model.weights[pair_feature[lo:hi]]
    logp += model.prior
    lengths = np.fromiter(map(len, encoded), dtype=np.float32, count=n_docs)
    logp *= (1.0 / np.sqrt(np.maximum(lengths, 1.0)))[:, None]
    logp -= logp.max(axis=1, keepdims=True)
    np.exp(logp, out=logp)
    logp /= logp.sum(axis=1, keepdims=True)
    for kept, folded in model.alias_pairs:
        logp[:, kept] += logp[:, folded]
        logp[:, folded] = 0.0
    return logp
