"""The catalogue of quality signals: name, Arrow type, group, definition and range.

`signals` computes them; this table is what `docs/quality-signals.md` shows (a test keeps
the two equal) and what `filter` checks expressions against before any task runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from dataprep.quality import repetition


@dataclass(frozen=True)
class Signal:
    name: str
    type: pa.DataType
    group: str
    definition: str
    range: str


F64, I64, BOOL = pa.float64(), pa.int64(), pa.bool_()
SIGNALS: dict[str, Signal] = {
    s.name: s
    for s in [
        Signal("char_count", I64, "text", "characters (code points) in the text", "0.."),
        Signal(
            "word_count",
            I64,
            "words",
            "words with at least one character that is not "
            "punctuation, symbol or control (Unicode P*, S*, C*)",
            "0..",
        ),
        Signal(
            "mean_word_length",
            F64,
            "words",
            "mean length in characters of the words counted by word_count (0 without words)",
            "0..",
        ),
        Signal(
            "alpha_fraction",
            F64,
            "words",
            "fraction of all whitespace-separated tokens with at least one letter (Unicode L*)",
            "0..1",
        ),
        Signal(
            "symbol_to_word_ratio",
            F64,
            "words",
            "the larger of: `#` per token, and (`...` + `…`) per token",
            "0..",
        ),
        Signal(
            "stop_word_count",
            I64,
            "words",
            "how many of Gopher's stop words (the, be, to, "
            "of, and, that, have, with) occur as whole tokens (distinct, case-sensitive)",
            "0..8",
        ),
        Signal(
            "newline_to_word_ratio",
            F64,
            "words",
            "`\\n` characters per token (FineWeb's list ratio)",
            "0..",
        ),
        Signal(
            "bullet_line_fraction",
            F64,
            "lines",
            "fraction of lines (as `str.splitlines`) "
            "starting with `•` or `-` after leading whitespace",
            "0..1",
        ),
        Signal(
            "ellipsis_line_fraction",
            F64,
            "lines",
            "fraction of lines ending with `...` or `…` before trailing whitespace",
            "0..1",
        ),
        Signal(
            "punct_line_fraction",
            F64,
            "fineweb_lines",
            "fraction of non-blank lines (split "
            "on `\\n`) ending in sentence-final punctuation (`.`, `!`, `?`, `。`, ...)",
            "0..1",
        ),
        Signal(
            "short_line_fraction",
            F64,
            "fineweb_lines",
            "fraction of non-blank lines (split on `\\n`) of at most 30 characters",
            "0..1",
        ),
        Signal(
            "fineweb_dup_line_char_fraction",
            F64,
            "fineweb_lines",
            "characters in non-blank lines (split on `\\n`) equal to an earlier such line, "
            "over the characters that are not `\\n` (FineWeb's duplicated-line ratio)",
            "0..1",
        ),
        Signal(
            "dup_line_fraction",
            F64,
            "dup_lines",
            "fraction of lines (split on runs of `\\n`) equal to an earlier line of the document",
            "0..1",
        ),
        Signal(
            "dup_line_char_fraction",
            F64,
            "dup_lines",
            "characters in those repeated lines over char_count",
            "0..1",
        ),
        Signal(
            "dup_para_fraction",
            F64,
            "dup_paras",
            "fraction of paragraphs (stripped text split "
            "on 2+ `\\n`) equal to an earlier paragraph",
            "0..1",
        ),
        Signal(
            "dup_para_char_fraction",
            F64,
            "dup_paras",
            "characters in those repeated paragraphs over char_count",
            "0..1",
        ),
        *[
            Signal(
                f"top_{n}_gram_char_fraction",
                F64,
                "ngrams",
                f"characters of the most "
                f"frequent word {n}-gram (words joined by spaces) times its count, over "
                "char_count",
                "0..",
            )
            for n in repetition.TOP_NGRAMS
        ],
        *[
            Signal(
                f"dup_{n}_gram_char_fraction",
                F64,
                "ngrams",
                f"characters (without spaces) of "
                f"repeated word {n}-grams met by a left-to-right scan that skips {n} words "
                "after each, over char_count",
                "0..1",
            )
            for n in repetition.DUP_NGRAMS
        ],
        Signal("has_lorem_ipsum", BOOL, "c4", "text contains `lorem ipsum` (any case)", "bool"),
        Signal("has_curly_bracket", BOOL, "c4", "text contains `{`", "bool"),
        Signal(
            "c4_sentence_count",
            I64,
            "c4",
            "sentence ends (`.`, `?`, `!` then space or line "
            "end) in the lines C4 keeps: ending in `. ? ! \" '` but not `...`, with 3+ "
            "tokens, no token over 1000 characters, no `javascript`",
            "0..",
        ),
        *[
            Signal(
                f"{variant}_{name}_line",
                BOOL,
                "c4",
                f"a line {who} keeps before its page rules ({rule}3+ tokens, no token over 1000 "
                f"characters{js}) contains {what}: C4's code checks the lines it keeps",
                "bool",
            )
            for variant, who, rule in (
                ("c4", "C4", "ending in `. ? ! \" '` but not `...`, "),
                ("fineweb", "FineWeb's C4 filter", ""),
            )
            for name, what, js in (
                ("lorem_ipsum", "`lorem ipsum` (any case)", ""),
                ("curly_bracket", "`{`", ", no `javascript`"),
            )
        ],
        Signal(
            "language",
            pa.string(),
            "language",
            "ISO 639-1 code of the language "
            "(dataprep.quality.language: py3langid on the first 2000 characters); null for "
            "empty text",
            "code or null",
        ),
        Signal(
            "language_score",
            pa.float32(),
            "language",
            "the model's probability of that language",
            "0..1",
        ),
    ]
}


def markdown_table() -> str:
    """The table of docs/quality-signals.md (a test keeps the two equal)."""
    rows = ["| column | type | definition | range |", "|---|---|---|---|"]
    rows += [f"| `{s.name}` | {s.type} | {s.definition} | {s.range} |" for s in SIGNALS.values()]
    return "\n".join(rows) + "\n"
