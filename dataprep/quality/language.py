"""Language identification: which language each document is written in, and how sure.

The model is py3langid's (a maintained fork of langid.py: a naive Bayes classifier over byte
n-grams, 97 languages). It ships inside the package's wheel, so nothing is downloaded at run
time, and the package is pure Python over numpy, so it is a core dependency. docs/language-id.md
says why this library (measured against lingua, langdetect, fastText's lid.176, CLD2, CLD3).

Only the first `max_chars` characters of a document are read: the language of a document is
settled long before its end, and this bounds the cost of very long documents (the accuracy
against N is measured in docs/language-id.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

import pyarrow as pa

from dataprep.errors import DataprepError

# Characters read per document; see docs/language-id.md for accuracy against this number.
DEFAULT_MAX_CHARS = 2000

# The library's codes that are not ISO 639-1, mapped to the ISO 639-1 code of their
# macrolanguage (yue/wuu are Chinese, arz/ary Arabic, ...); `None`: no language (zxx is
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


@cache
def _identifier() -> Any:
    """py3langid's identifier with normalised probabilities, loaded once per process (the
    model is ~30 MB of float16 weights; loading takes about a second)."""
    try:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier
    except ImportError as e:
        raise DataprepError(
            "language identification needs the py3langid package, a dependency of dataprep: "
            "pip install 'py3langid>=0.3' (or reinstall dataprep)"
        ) from e
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def normalise_language(code: str) -> str:
    """The code `identify` reports for a language code a user typed (`--languages nb,en`):
    lower-cased, region dropped (pt-BR -> pt), aliases resolved (nb -> no, iw -> he)."""
    base = code.strip().lower().replace("_", "-").split("-")[0]
    base = _ALIASES.get(base, base)
    mapped = _TO_ISO_639_1.get(base, base)
    return mapped or base


def supported_languages() -> list[str]:
    """Every code `identify` can return, sorted (to check a user's `--languages`)."""
    codes = {_TO_ISO_639_1.get(c, c) for c in _identifier().labels}
    return sorted(c for c in codes if c)


def identify(
    texts: pa.Array | pa.ChunkedArray | Sequence[str | None], *, max_chars: int = DEFAULT_MAX_CHARS
) -> tuple[pa.Array, pa.Array]:
    """The language of each text and the model's confidence in it.

    Returns two arrays as long as `texts`: `language` (string: an ISO 639-1 code such as
    "en", "de", "zh", or the model's ISO 639-3 code for the few languages without one) and
    `language_score` (float32 in [0, 1], the posterior probability of that language). An
    empty, whitespace-only or null text, or one with no linguistic content, gets a null
    language and score 0. Deterministic: the same text always gets the same answer.
    """
    if max_chars < 1:
        raise DataprepError(f"max_chars must be at least 1, got {max_chars}")
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    values = texts.to_pylist() if isinstance(texts, pa.Array) else list(texts)
    ident = _identifier() if values else None
    languages: list[str | None] = []
    scores: list[float] = []
    for text in values:
        head = text[:max_chars] if text else ""
        if not head or head.isspace():
            languages.append(None)
            scores.append(0.0)
            continue
        code, score = ident.classify(head)
        code = _TO_ISO_639_1.get(code, code)
        languages.append(code)
        scores.append(min(max(float(score), 0.0), 1.0) if code else 0.0)
    return pa.array(languages, pa.string()), pa.array(scores, pa.float32())
