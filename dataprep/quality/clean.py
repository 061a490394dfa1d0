"""Text repair and normalisation steps, each a function from an Arrow string array to another.

Steps are vectorised with pyarrow.compute (RE2 regexes, Unicode normalisation) and touch only
the documents a cheap pre-check selects: ftfy (mojibake repair) runs in Python, so it is only
called on documents with a typical mojibake sequence; roff rules only apply to documents that
have a man page's title or section macro, HTML rules only to documents with an HTML tag or
entity, so prose that merely starts a line with a dot or mentions `<b>` once stays as it was.

`repeated_lines` needs counts over many documents: `count_lines` tallies, per group (a source)
and trimmed line, how many distinct documents hold it; `drop_lines` removes the lines at or
over a threshold. Documents with identical text count once, so exact duplicates (dedup's job)
never make their own lines look like boilerplate.
"""

from __future__ import annotations

import html
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

Step = Callable[[pa.Array], pa.Array]

# UTF-8 read as cp1252/latin-1: a lead byte (Â..ô) followed by what a continuation byte
# (0x80-0xBF) becomes in cp1252 or latin-1; or U+FFFD. Good text rarely has these pairs.
MOJIBAKE = (
    r"[\x{c2}-\x{f4}][\x{80}-\x{bf}\x{152}\x{153}\x{160}\x{161}\x{178}\x{17d}\x{17e}\x{192}"
    r"\x{2c6}\x{2dc}\x{2013}\x{2014}\x{2018}-\x{201e}\x{2020}-\x{2022}\x{2026}\x{2030}"
    r"\x{2039}\x{203a}\x{20ac}\x{2122}]"
)
# C0/C1 controls but TAB and LF (CR is turned into LF first), and the invisible format
# characters ftfy's remove_control_chars drops: byte-order mark, deprecated U+206A-206F,
# interlinear annotation and object replacement U+FFF9-FFFC
# VT, FF, FS, GS, RS and NEL: line breaks to str.splitlines
LINE_CONTROLS = r"[\x{0b}\x{0c}\x{1c}-\x{1e}\x{85}]"
CONTROL = (
    r"[\x{00}-\x{08}\x{0b}\x{0c}\x{0e}-\x{1f}\x{7f}-\x{9f}"
    r"\x{206a}-\x{206f}\x{feff}\x{fff9}-\x{fffc}]"
)

ROFF_DOC = r"(?m)^\.(?:TH|SH|Dd|Dt|Sh)(?:[ \t]|$)"
# man(7) macros whose arguments are the page's text (headings, fonts, list tags)
# (mdoc's are kept roughly: `.It Fl v` keeps `Fl v`, its inner macro names stay)
_TEXT_MACROS = (
    r"(?:SH|SS|B|I|BI|BR|IB|IR|RB|RI|SM|SB|UR|MT|Nm|Nd|Ar|Fl|Op|Xr|Pa|Sh|Ss|It|Ev|Cm|Dv|Va|Ic"
    r"|Li|Em|Sy|Ql|Dq|Sq|Pq|Fn|Fa|Ft|Cd|Vt|Tn|Er|Dl|D1)"
)
_ROFF_LINES = [
    (r"(?ms)^\.(?:de1?|am1?|ig)\b.*?^\.\.[ \t]*(?:\n|\z)", ""),  # macro definitions, ignored blocks
    (r'\\".*', ""),  # comments
    (r"(?m)^\." + _TEXT_MACROS + r'[ \t]+"([^"\n]*)"[ \t]*$', r"\1"),  # .SH "NAME"
    (r"(?m)^\." + _TEXT_MACROS + r"[ \t]+", ""),
    # asciidoctor's link macros: .URL "target" "text" "after"
    (
        r'(?m)^\.(?:URL|MTO)[ \t]+"([^"\n]*)"(?:[ \t]+"([^"\n]*)")?(?:[ \t]+"([^"\n]*)")?.*$',
        r"\1 \2\3",
    ),
    (r'(?m)^\.IP[ \t]+"([^"\n]*)".*$', r"\1"),  # .IP "tag" 4
    (r"(?m)^\.IP[ \t]+(\S+).*$", r"\1"),
    (r"(?m)^[.'].*(?:\n|$)", ""),  # every other control line, by roff's own rule
]
_ROFF_ESCAPES = [
    ("\\-", "-"),
    ("\\(aq", "'"),
    ("\\(at", "@"),
    ("\\(dq", '"'),
    ("\\(em", "\u2014"),
    ("\\(en", "\u2013"),
    ("\\(bu", "\u2022"),
    ("\\(co", "\u00a9"),
    ("\\(lq", "\u201c"),
    ("\\(rq", "\u201d"),
    ("\\*(lq", "\u201c"),
    ("\\*(rq", "\u201d"),
    ("\\*(Aq", "'"),  # pod2man's apostrophe string
    ("\\(oq", "\u2018"),
    ("\\(cq", "\u2019"),
    ("\\(hy", "-"),
    ("\\(mi", "-"),
    ("\\(ti", "~"),
    ("\\(ha", "^"),
    ("\\(rs", "\\e"),
    ("\\(tm", "\u2122"),
    ("\\(rg", "\u00ae"),
    ("\\ ", " "),
    ("\\~", " "),
    ("\\0", " "),
]
# font switches, size changes, other named glyphs/strings, zero-width escapes
_ROFF_DROP = (
    r"\\f(?:\[[^\]\n]*\]|\([A-Za-z0-9]{2}|[A-Za-z0-9])|\\s[-+]?\d+|\\\(..|\\\[[^\]\n]*\]"
    r"|\\[hvwlLoxXbDNRSZ]'[^'\n]*'|\\[mM](?:\[[^\]\n]*\]|\(..|.)|\\[du]"
    r"|\\\*(?:\[[^\]\n]*\]|\(..|.)|\\n(?:\[[^\]\n]*\]|\(..|.)|\\[{}]\\?|\\[&|^:c%]"
)
_HTML_TAGS = (
    r"(?:html|head|body|title|meta|link|script|style|div|span|p|br|hr|a|b|i|u|em|strong|"
    r"small|big|sub|sup|font|center|img|table|thead|tbody|tr|td|th|ul|ol|li|dl|dt|dd|"
    r"h[1-6]|pre|code|tt|blockquote|section|article|header|footer|nav|form|input|label)"
)
HTML_TAG = r"(?i:</?" + _HTML_TAGS + r"(?:\s[^<>\n]*)?/?>|<!--[^\n]*?-->|<!doctype[^<>\n]*>)"
HTML_ENTITY = r"&(?:#\d{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z][a-zA-Z0-9]{1,31});"
# what makes a document HTML-ish: a closing tag, <br>, a link, or an entity (`<script>` or
# `<file>` alone is how man pages and usage texts name an argument)
HTML_DOC = r"(?i:</" + _HTML_TAGS + r">|<br\s*/?>|<a\s+href=)|" + HTML_ENTITY


def subset(texts: pa.Array, pattern: str, step: Step) -> pa.Array:
    """Apply `step` only to the documents matching RE2 `pattern` (others stay as they are)."""
    mask = pc.fill_null(pc.match_substring_regex(texts, pattern), False)
    if not pc.any(mask).as_py():
        return texts
    changed = step(texts.filter(mask))
    return pc.replace_with_mask(texts, mask, changed.cast(texts.type))


def python_map(fn: Callable[[str], str]) -> Step:
    def step(texts: pa.Array) -> pa.Array:
        return pa.array([None if t is None else fn(t) for t in texts.to_pylist()], texts.type)

    return step


def fix_mojibake(texts: pa.Array) -> pa.Array:
    import ftfy

    return subset(texts, MOJIBAKE, python_map(ftfy.fix_encoding))


def normalize(form: str) -> Step:
    return lambda texts: pc.utf8_normalize(texts, form)


def strip_control(texts: pa.Array) -> pa.Array:
    """CR LF, lone CR and the other line and page breaks (VT, FF, FS, GS, RS, NEL) become LF,
    the unit separator a space; other C0/C1 controls but TAB go, and the byte-order mark and
    the other invisible characters ftfy removes."""

    def step(part: pa.Array) -> pa.Array:
        part = pc.replace_substring_regex(part, r"\r\n?", "\n")
        # controls that separate words (Python's whitespace) are not just deleted, which would
        # glue `page\fNext`: the line and page breaks become LF, the unit separator a space
        part = pc.replace_substring_regex(part, LINE_CONTROLS, "\n")
        part = pc.replace_substring(part, "\x1f", " ")
        return pc.replace_substring_regex(part, CONTROL, "")

    return subset(texts, CONTROL + r"|\r", step)


def strip_roff(texts: pa.Array) -> pa.Array:
    """In man pages: text macros keep their arguments, every other control line (a line
    starting with `.` or `'`, by roff's own rule) goes, and inline escapes are resolved."""

    def step(part: pa.Array) -> pa.Array:
        for pattern, rewrite in _ROFF_LINES:
            part = pc.replace_substring_regex(part, pattern, rewrite)
        for old, new in _ROFF_ESCAPES:
            part = pc.replace_substring(part, old, new)
        part = pc.replace_substring_regex(part, _ROFF_DROP, "")
        return pc.replace_substring(part, "\\e", "\\")

    return subset(texts, ROFF_DOC, step)


def strip_html(texts: pa.Array) -> pa.Array:
    """Lines of nothing but tags go, other tags are removed, entities are decoded."""

    def step(part: pa.Array) -> pa.Array:
        part = pc.replace_substring_regex(
            part, r"(?m)^[ \t]*(?:" + HTML_TAG + r"[ \t]*)+(?:\n|$)", ""
        )
        part = pc.replace_substring_regex(part, HTML_TAG, "")
        return subset(part, HTML_ENTITY, python_map(html.unescape))

    return subset(texts, HTML_DOC, step)


def check_pattern(pattern: str) -> None:
    """ValueError in one sentence unless `pattern` is an RE2 regex (what Arrow runs)."""
    try:
        pc.match_substring_regex(pa.array([""]), f"(?:{pattern})")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        why = str(exc).split(":", 1)[-1].strip()
        raise ValueError(
            f"{pattern!r} is not an RE2 pattern ({why}; RE2 has no lookaround or backreferences)"
        ) from None


def drop_matching_lines(pattern: str) -> Step:
    """Lines that `pattern` (RE2) matches in full go, with their newline. Each line is matched
    on its own, so `\\s` in the pattern never reaches into the next line."""

    def step(part: pa.Array) -> pa.Array:
        lines = pc.split_pattern(part, "\n")
        flat = pc.list_flatten(lines)
        hit = pc.fill_null(pc.match_substring_regex(flat, rf"^(?:{pattern})$"), False)
        return _rejoin(part, lines, pc.list_parent_indices(lines), pc.invert(hit))

    # a line matched in full is matched by the multi-line form too: it picks the documents
    return lambda texts: subset(texts, rf"(?m)^(?:{pattern})$", step)


def collapse_whitespace(texts: pa.Array) -> pa.Array:
    """Trailing blanks go, runs of spaces inside a line become one (indentation stays), at
    most one empty line in a row, none at the start or end."""
    texts = pc.replace_substring_regex(texts, r"(?m)[ \t]+$", "")
    texts = pc.replace_substring_regex(texts, r"([^\s])  +", r"\1 ")
    texts = pc.replace_substring_regex(texts, r"\n{3,}", "\n\n")
    return pc.utf8_trim(texts, " \t\n")


# -- lines repeated across documents ---------------------------------------------------------


def _line_keys(texts: pa.Array, groups: pa.Array) -> tuple[pa.ListArray, pa.Array, pa.Array]:
    """(lines per document, group+NUL+trimmed line per line, row of each line)."""
    lines = pc.split_pattern(texts, "\n")
    rows = pc.list_parent_indices(lines)
    flat = pc.list_flatten(lines)
    key = pc.binary_join_element_wise(
        groups.take(rows), pc.utf8_trim_whitespace(flat), pa.scalar("\x00", flat.type)
    )
    return lines, key, rows


def count_lines(texts: pa.Array, groups: pa.Array, min_chars: int) -> pa.Table:
    """Per (group, trimmed line of >= min_chars characters): distinct documents holding it,
    plus per group its distinct documents. Identical texts are one document."""
    docs = pc.dictionary_encode(texts).indices
    lines, key, rows = _line_keys(texts, groups)
    trimmed = pc.utf8_trim_whitespace(pc.list_flatten(lines))
    pairs = pa.table({"key": key, "doc": docs.take(rows), "group": groups.take(rows)})
    pairs = pairs.filter(pc.greater_equal(pc.utf8_length(trimmed), min_chars))
    unique = pairs.group_by(["group", "key", "doc"]).aggregate([])
    per_line = unique.group_by(["group", "key"]).aggregate([("doc", "count")])
    per_group = (
        pa.table({"group": groups, "doc": docs})
        .group_by("group")
        .aggregate([("doc", "count_distinct")])
    )
    return per_line.join(per_group, "group")


def repeated_keys(counts: pa.Table, min_docs: int, fraction: float) -> pa.Array:
    """Keys of lines held by at least max(min_docs, ceil(fraction * group's documents))."""
    if counts.num_rows == 0:
        return pa.array([], pa.string())
    group_docs = counts.column("doc_count_distinct").to_numpy()
    need = np.maximum(min_docs, np.ceil(fraction * group_docs - 1e-9)).astype(np.int64)
    hit = counts.column("doc_count").to_numpy() >= need
    return counts.column("key").filter(pa.array(hit))


def drop_lines(texts: pa.Array, groups: pa.Array, repeated: pa.Array) -> pa.Array:
    """Documents without the lines whose (group, trimmed line) key is in `repeated`."""
    if len(repeated) == 0:
        return texts
    lines, key, rows = _line_keys(texts, groups)
    return _rejoin(texts, lines, rows, pc.invert(pc.is_in(key, value_set=repeated)))


def _rejoin(texts: pa.Array, lines: pa.ListArray, rows: pa.Array, keep: pa.Array) -> pa.Array:
    """Each document's `lines` where `keep` holds, joined by newlines again (nulls stay)."""
    kept = pc.list_flatten(lines).filter(keep)
    per_doc = np.bincount(
        rows.to_numpy()[keep.to_numpy(zero_copy_only=False)], minlength=len(texts)
    )
    offsets = np.zeros(len(texts) + 1, np.int32)
    np.cumsum(per_doc, out=offsets[1:])
    joined = pa.ListArray.from_arrays(pa.array(offsets), kept)
    rebuilt = pc.binary_join(joined, pa.scalar("\n", kept.type))
    return pc.if_else(texts.is_null(), pa.scalar(None, texts.type), rebuilt.cast(texts.type))


def group_column(table: pa.Table, source_column: str | None) -> pa.Array:
    """The grouping a document's lines are counted in: its source, or the shard as one."""
    if source_column is None:
        return pa.array([""] * table.num_rows, pa.string())
    values = table.column(source_column).combine_chunks()
    return pc.fill_null(values.cast(pa.string()), "")


def chars(texts: pa.Array) -> int:
    return int(pc.sum(pc.utf8_length(texts)).as_py() or 0)


def snippet(before: str, after: str, width: int = 60) -> tuple[str, str]:
    """Short excerpts of both around the first difference (reports stay small)."""
    start = next((i for i, (a, b) in enumerate(zip(before, after, strict=False)) if a != b), None)
    if start is None:
        start = min(len(before), len(after))
    lo = max(0, start - width // 3)
    return before[lo : lo + width], after[lo : lo + width]
