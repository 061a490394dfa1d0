"""Published rule sets as named thresholds over the signal columns.

Each rule keeps a row when `column op threshold` holds; a preset is an ordered list of rules
(the order decides which rule a dropped row is charged to, as in datatrove). Thresholds are the
papers' as datatrove's filters ship them (datatrove 0.10: GopherRepetitionFilter,
GopherQualityFilter, C4QualityFilter, FineWebQualityFilter):

- gopher: Rae et al. 2021, "Scaling Language Models" (Gopher), table A1 and section A.1.1;
- c4: Raffel et al. 2020 (T5/C4), section 2.2, the page-level rules (lorem ipsum, curly
  bracket, at least 5 sentences), each over the lines C4 keeps, as C4's code applies them.
  C4's line removals change text and are `clean`'s business; its bad-words list would have to
  be downloaded, so it is left out;
- fineweb: Penedo et al. 2024: Gopher's rules, C4's lorem-ipsum and curly-bracket rules, and
  FineWeb's own four (terminal-punctuation lines, short lines, duplicated line characters,
  newlines per word).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from dataprep.errors import DataprepError
from dataprep.quality import repetition

Threshold = float | int | bool


@dataclass(frozen=True)
class Rule:
    name: str
    column: str
    op: str  # ">=", "<=" or "=="
    threshold: Threshold

    @property
    def text(self) -> str:
        value = repr(self.threshold).lower() if isinstance(self.threshold, bool) else self.threshold
        return f"{self.column} {self.op} {value}"


DUP_LIMITS = (0.15, 0.14, 0.13, 0.12, 0.11, 0.10)  # n = 5..10
GOPHER_REPETITION = [
    Rule("max_dup_para_fraction", "dup_para_fraction", "<=", 0.3),
    Rule("max_dup_para_char_fraction", "dup_para_char_fraction", "<=", 0.2),
    Rule("max_dup_line_fraction", "dup_line_fraction", "<=", 0.3),
    Rule("max_dup_line_char_fraction", "dup_line_char_fraction", "<=", 0.2),
    *[
        Rule(f"max_top_{n}_gram_char_fraction", f"top_{n}_gram_char_fraction", "<=", limit)
        for n, limit in zip(repetition.TOP_NGRAMS, (0.2, 0.18, 0.16), strict=True)
    ],
    *[
        Rule(f"max_dup_{n}_gram_char_fraction", f"dup_{n}_gram_char_fraction", "<=", limit)
        for n, limit in zip(
            repetition.DUP_NGRAMS, (0.15, 0.14, 0.13, 0.12, 0.11, 0.10), strict=True
        )
    ],
]
GOPHER_QUALITY = [
    Rule("min_words", "word_count", ">=", 50),
    Rule("max_words", "word_count", "<=", 100_000),
    Rule("min_mean_word_length", "mean_word_length", ">=", 3),
    Rule("max_mean_word_length", "mean_word_length", "<=", 10),
    Rule("max_symbol_to_word_ratio", "symbol_to_word_ratio", "<=", 0.1),
    Rule("max_bullet_line_fraction", "bullet_line_fraction", "<=", 0.9),
    Rule("max_ellipsis_line_fraction", "ellipsis_line_fraction", "<=", 0.3),
    Rule("min_alpha_fraction", "alpha_fraction", ">=", 0.8),
    Rule("min_stop_words", "stop_word_count", ">=", 2),
]
# C4's page rules look at the lines its code keeps (tfds c4_utils, datatrove C4QualityFilter);
# FineWeb runs that filter without the terminal-punctuation rule, so more lines are looked at
C4_PAGE = [
    Rule("no_lorem_ipsum", "c4_lorem_ipsum_line", "==", False),
    Rule("no_curly_bracket", "c4_curly_bracket_line", "==", False),
]
FINEWEB_C4_PAGE = [
    Rule("no_lorem_ipsum", "fineweb_lorem_ipsum_line", "==", False),
    Rule("no_curly_bracket", "fineweb_curly_bracket_line", "==", False),
]
FINEWEB_OWN = [
    Rule("min_punct_line_fraction", "punct_line_fraction", ">=", 0.12),
    Rule("max_short_line_fraction", "short_line_fraction", "<=", 0.67),
    Rule("max_dup_line_chars_fineweb", "fineweb_dup_line_char_fraction", "<=", 0.01),
    Rule("max_newline_to_word_ratio", "newline_to_word_ratio", "<=", 0.3),
]
PRESETS: dict[str, list[Rule]] = {
    "gopher": GOPHER_REPETITION + GOPHER_QUALITY,
    "c4": [*C4_PAGE, Rule("min_sentences", "c4_sentence_count", ">=", 5)],
    "fineweb": GOPHER_REPETITION + GOPHER_QUALITY + FINEWEB_C4_PAGE + FINEWEB_OWN,
}


def columns(preset: str) -> list[str]:
    """The signal columns a preset reads, in rule order."""
    return list(dict.fromkeys(rule.column for rule in PRESETS[preset]))


def rules(preset: str, overrides: Mapping[str, Threshold | None], option: str) -> list[Rule]:
    """The preset's rules with thresholds overridden one by one; None turns a rule off."""
    chosen = PRESETS[preset]
    names = {rule.name for rule in chosen}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise DataprepError(
            f"{option} {unknown[0]!r} is not a rule of preset {preset!r} "
            f"(rules: {', '.join(rule.name for rule in chosen)})"
        )
    out = []
    for rule in chosen:
        if rule.name not in overrides:
            out.append(rule)
            continue
        value = overrides[rule.name]
        if value is None:
            continue
        if isinstance(rule.threshold, bool) != isinstance(value, bool):
            kind = "true or false" if isinstance(rule.threshold, bool) else "a number"
            raise DataprepError(f"{option} {rule.name}={value!r}: the threshold must be {kind}")
        out.append(replace(rule, threshold=value))
    return out


def markdown_table() -> str:
    """The presets table of docs/quality-signals.md (a test keeps the two equal)."""
    rows = ["| rule | keeps a row if | gopher | c4 | fineweb |", "|---|---|---|---|---|"]
    seen: dict[tuple[str, str], Rule] = {}  # one rule name may read another column per preset
    for chosen in PRESETS.values():
        for rule in chosen:
            seen.setdefault((rule.name, rule.text), rule)
    for (name, _), rule in seen.items():
        marks = ["x" if rule in PRESETS[p] else "" for p in ("gopher", "c4", "fineweb")]
        rows.append(f"| `{name}` | `{rule.text}` | " + " | ".join(marks) + " |")
    return "\n".join(rows) + "\n"
