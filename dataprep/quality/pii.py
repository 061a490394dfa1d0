"""Find personal data and secrets in text, and redact, hash or only count them.

Detection is a pattern per kind plus a check where a pattern alone would guess: card numbers
must pass Luhn and start with a card network's prefix, IBANs must pass their country's length
and mod-97 check (python-stdnum), IPv6 candidates must parse, generic `api_key=...` values must
look random (Shannon entropy). Kinds are tried in a fixed order (secrets, e-mail, IBAN, card,
IP, phone) and a later kind never claims text an earlier one did, so the digits of a card are
not also a phone number.

Text is only scanned in Python for documents a vectorised RE2 pre-check (`prefilter`) says
may hold a kind; everything else is left to Arrow. Values found never leave this module except
as placeholders or keyed hashes (`pii_redact`): the stage's report carries counts only.
"""

from __future__ import annotations

import bisect
import ipaddress
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from stdnum import iban as _iban
from stdnum import luhn as _luhn

from dataprep.quality.pii_patterns import (
    _ASSIGNED_SECRET,
    _CARD,
    _DATE_LIKE,
    _IBAN,
    _IPV4,
    _IPV6,
    _PHONE,
    _PROVIDER_PREFILTER,
    _SECRET_PATTERNS,
)

Kind = Literal["secret", "email", "iban", "credit_card", "ip", "phone"]
Mode = Literal["redact", "hash", "count", "off"]
KINDS: tuple[Kind, ...] = ("secret", "email", "iban", "credit_card", "ip", "phone")


@dataclass(frozen=True)
class Span:
    kind: str
    start: int
    end: int


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    counts = Counter(value)
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


_CARD_PREFIX = re.compile(r"^(?:4|5[1-5]|2[2-7]|3[47]|3[068]|35|6011|64[4-9]|65|62)")


def valid_card(digits: str) -> bool:
    """13-19 digits of a known network prefix passing Luhn (a random 16-digit number passes
    Luhn one time in ten; the prefix rules out most of the rest)."""
    return 13 <= len(digits) <= 19 and bool(_CARD_PREFIX.match(digits)) and _luhn.is_valid(digits)


def card_layout(sizes: list[int]) -> bool:
    """How cards are written: one run of digits, groups of four (the last may be shorter),
    or Amex/Diners 4-6-5 / 4-6-4; other groupings are tables of numbers."""
    if len(sizes) == 1:  # 17-19 digit cards are written in groups; long ids are not cards
        return sizes[0] <= 16
    if sizes[:2] == [4, 6] and len(sizes) == 3 and sizes[2] in (4, 5):
        return True
    return len(sizes) >= 3 and all(n == 4 for n in sizes[:-1]) and 1 <= sizes[-1] <= 4


def valid_iban(value: str) -> bool:
    return _iban.is_valid(value)


def valid_ipv6(value: str) -> bool:
    """Parses as IPv6 and holds a digit (C++ scopes like `a::b` parse too); six or more
    groups of exactly two hex digits are a MAC address or a hex dump (`f9:2a:c2:77:...`)."""
    if value.count(":") < 2 or value == "::":
        return False
    groups = value.split(":")
    if len(groups) >= 6 and all(len(g) == 2 for g in groups):
        return False
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return any(c.isdigit() for c in value)


def valid_phone(value: str) -> bool:
    digits = sum(c.isdigit() for c in value)
    if not 7 <= digits <= 15 or _DATE_LIKE.match(value):
        return False
    return not (value.count(".") >= 2 and not value.startswith("+") and digits < 10)


def _assigned_secrets(text: str) -> Iterable[Span]:
    for m in _ASSIGNED_SECRET.finditer(text):
        value = m.group(1)
        if looks_random(value):
            yield Span("secret", m.start(1), m.end(1))


def looks_random(value: str) -> bool:
    """>= 3.5 bits/character, a digit, and not a lower-case resource path
    (`--secret=projects/p/secrets/s/versions/2` names a secret, it is not one)."""
    if value.count("/") >= 2 and value == value.lower():
        return False
    return entropy(value) >= 3.5 and any(c.isdigit() for c in value)


def _simple(kind: str, pattern: re.Pattern[str], check: Callable[[str], bool] | None = None):
    def spans(text: str, pos: int = 0, endpos: int | None = None) -> Iterable[Span]:
        for m in pattern.finditer(text, pos, len(text) if endpos is None else endpos):
            if check is None or check(m.group()):
                yield Span(kind, m.start(), m.end())

    return spans


_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_%+-.")
# Letters and digits of any script (IDN domains, RFC 6531 local parts), but CJK: written
# without spaces, an address runs straight into the text around it (`联系a@example.com谢谢`)
_CJK = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
_ALNUM = rf"[^\W_{_CJK}]"
_DOMAIN = re.compile(
    rf"(?:{_ALNUM}(?:(?:{_ALNUM}|-){{0,61}}{_ALNUM})?\.)+"
    rf"(?:xn--[a-z0-9-]{{1,59}}|[^\W\d_{_CJK}]{{2,24}})(?!{_ALNUM}|[-_])"
)
_CJK_CHARS = re.compile(rf"[{_CJK}]")


def _local_char(c: str) -> bool:
    return c in _LOCAL_CHARS or (c > "\x7f" and c.isalnum() and not _CJK_CHARS.match(c))


def _emails(text: str) -> Iterable[Span]:
    """From each `@`: the domain forwards by regex, the local part backwards by hand (a regex
    starting with a character class would be tried at every letter of the text)."""
    at = text.find("@")
    while at != -1:
        domain = _DOMAIN.match(text, at + 1)
        if domain:
            start = at
            while start > 0 and at - start < 64 and _local_char(text[start - 1]):
                start -= 1
            while start < at and text[start] == ".":
                start += 1
            local = text[start:at]
            if local and not local.endswith(".") and ".." not in local:
                yield Span("email", start, domain.end())
        at = text.find("@", at + 1)


# Spelled out against harvesting (`ann (at) example (dot) org`, `vt at altlinux.org`): a bare
# ` at ` before a dotted domain is prose after some words (`the project at salsa.debian.org`).
_AT = r"(?:\s?[(\[{<]\s?at\s?[)\]}>]\s?|\s+(?:at|AT)\s+)"
_DOT = r"(?:\s?[(\[{<]\s?dot\s?[)\]}>]\s?|\s+(?:dot|DOT)\s+|\.)"
_SPELLED = re.compile(
    r"[A-Za-z0-9](?<![\w.+%-][A-Za-z0-9])[A-Za-z0-9._%+-]*"
    + _AT
    + r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:"
    + _DOT
    + r"[A-Za-z0-9-]{1,63})*"
    + _DOT
    + r"(?:[a-z]{2,24}|[A-Z]{2,24})(?![\w-]|\.\w)",
    re.ASCII,
)
_STRONG = re.compile(r"[(\[{<]\s?at\s?[)\]}>]|\sAT\s|[(\[{<]\s?dot\s?[)\]}>]|\s(?:dot|DOT)\s")
_PROSE_BEFORE_AT = frozenset(  # words before " at domain.tld" that make it prose, not an address
    "project projects available found hosted online located contacted here there site website web "
    "home page repository archive archived kept stored maintained developed reached visit see look "
    "looking initiative foundation mirrored downloaded obtained accessible access copyright "
    "licensed published released team group us them him her it this that work directory server "
    "servers file files code source sources".split()
)


def _spelled_emails(text: str, pos: int = 0, endpos: int | None = None) -> Iterable[Span]:
    for m in _SPELLED.finditer(text, pos, len(text) if endpos is None else endpos):
        value = m.group()
        local = re.split(r"\s|[(\[{<]", value, maxsplit=1)[0]
        if _STRONG.search(value) or local.lower() not in _PROSE_BEFORE_AT:
            yield Span("email", m.start(), m.end())


def _cards(text: str, pos: int = 0, endpos: int | None = None) -> Iterable[Span]:
    """A run of digit groups may hold a card next to other numbers (`version 2 4111 ...`,
    `... 1111 08/01`): of the runs of whole groups that are valid cards, a card's usual
    length (16, or 15 for Amex) wins, then the longest."""
    for m in _CARD.finditer(text, pos, len(text) if endpos is None else endpos):
        groups = [(g.start(), g.end()) for g in re.finditer(r"\d+", m.group())]
        best: tuple[tuple[bool, int], int, int] | None = None
        for i in range(len(groups)):
            for j in range(i + 1, len(groups) + 1):
                digits = digits_of(m.group()[groups[i][0] : groups[j - 1][1]])
                sizes = [end - start for start, end in groups[i:j]]
                if card_layout(sizes) and valid_card(digits):
                    usual = len(digits) == 16 or (len(digits) == 15 and digits[:2] in ("34", "37"))
                    rank = (usual, len(digits))
                    if best is None or rank > best[0]:
                        best = (rank, groups[i][0], groups[j - 1][1])
        if best is not None:
            yield Span("credit_card", m.start() + best[1], m.start() + best[2])


def _ibans(text: str, pos: int = 0, endpos: int | None = None) -> Iterable[Span]:
    """An IBAN written in groups may be followed by a capitalised word (`... 8285 MPL`):
    without a check passing, the last group is dropped and the rest tried again."""
    for m in _IBAN.finditer(text, pos, len(text) if endpos is None else endpos):
        value = m.group()
        while True:
            if valid_iban(value):
                yield Span("iban", m.start(), m.start() + len(value))
                break
            if " " not in value:
                break
            value = value.rsplit(" ", 1)[0]


# A dotted quad soon after these words is a version or section number (`Git versions prior
# to 1.5.1.2`, `sections of SP800-56Ar3: 5.5.1.1`), not an address.
_VERSION_BEFORE = re.compile(
    r"(?i)(?:\b(?:versions?|releases?|sections?|clauses?)(?:\s+(?:prior to|before|after|since"
    r"|from|of [\w-]+:?))?|§|\bv)\s*$"
)


def _ipv4(text: str, pos: int = 0, endpos: int | None = None) -> Iterable[Span]:
    for m in _IPV4.finditer(text, pos, len(text) if endpos is None else endpos):
        if any(int(octet) > 255 for octet in m.group().split(".")):
            continue
        if not _VERSION_BEFORE.search(text, max(0, m.start() - 40), m.start()):
            yield Span("ip", m.start(), m.end())


@dataclass(frozen=True)
class Detector:
    """One way a kind is found: an RE2 pre-check that pyarrow runs over whole columns (a
    document it does not match cannot hold a finding) and the Python finder for the rest.

    A `windowed` finder (short findings: numbers, addresses) is only run on text around the
    pre-check's matches (`find(..., hits=...)`): Python's re scans digit-led patterns at
    ~20 MB/s, so scanning a whole long document for one match would dominate the run."""

    kind: str
    prefilter: str
    find: Callable[..., Iterable[Span]]
    windowed: bool = False


# Order matters: an earlier detector's span is never claimed by a later one.
DETECTORS: list[Detector] = [
    Detector("secret", r"PRIVATE KEY", _simple("secret", _SECRET_PATTERNS[0])),
    Detector(
        "secret", r"(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}", _simple("secret", _SECRET_PATTERNS[1])
    ),
    Detector(
        "secret", r"gh[pousr]_[A-Za-z0-9]{36}|github_pat_", _simple("secret", _SECRET_PATTERNS[2])
    ),
    Detector("secret", r"xox[abposr]-", _simple("secret", _SECRET_PATTERNS[3])),
    Detector("secret", r"eyJ[A-Za-z0-9_-]{8,}\.eyJ", _simple("secret", _SECRET_PATTERNS[4])),
    Detector("secret", _PROVIDER_PREFILTER, _simple("secret", _SECRET_PATTERNS[5])),
    Detector(
        "secret",
        r"(?i:key|secret|token|passw(?:or)?d)[A-Za-z0-9_-]{0,41}[\"']?\s*[:=]\s*[\"']?"
        r"[A-Za-z0-9_\-+/=.]{16}",
        _assigned_secrets,
    ),
    Detector("email", r"[\pL\pN]@[\pL\pN]", _emails),
    Detector(
        "email",
        r"[A-Za-z0-9](?:\s?[(\[{<]\s?at\s?[)\]}>]\s?|\s+(?:at|AT)\s+)[A-Za-z0-9][A-Za-z0-9-]*"
        r"(?:\s?[(\[{<]\s?dot\s?[)\]}>]\s?|\s+(?:dot|DOT)\s+|\.)[A-Za-z]",
        _spelled_emails,
        True,
    ),
    Detector("iban", r"[A-Z]{2}\d{2} ?[A-Z0-9]{4} ?[A-Z0-9]{4}", _ibans, True),
    Detector(
        "credit_card",
        r"\d(?:[ -]?\d){12}",  # the pattern's shortest card
        _cards,
        True,
    ),
    # IPv6 first: `::ffff:1.2.3.4` is one address
    Detector(
        "ip",
        r"(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}"
        r"|(?:^|[^\w:])(?:[0-9A-Fa-f]{1,4}:){1,6}:(?:[0-9A-Fa-f]{1,4}|$|[^\w:])"
        r"|(?:^|[^\w:])::[0-9A-Fa-f]{1,4}",
        _simple("ip", _IPV6, valid_ipv6),
        True,
    ),
    Detector("ip", r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}", _ipv4, True),
    Detector(
        "phone",
        r"\+\d{1,3}[ .-]?(?:\(0?\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}"
        r"|\(\d{2,5}\)[ .-]?\d{3,4}[ .-]?\d{3,4}|\d{3}-\d{3}-\d{4}|\d{3}\.\d{3}\.\d{4}"
        r"|0\d{1,4}[ /-]\d{3,4}[ -]?\d{2,4}|0[1-9][ .]\d\d[ .]\d\d[ .]\d\d[ .]\d\d"
        r"|1-\d{3}-\d{3}-\d{4}|0\d{2,4}/\d{4}|00[1-9]\d{0,2}[ .-]",
        _simple("phone", _PHONE, valid_phone),
        True,
    ),
]


def digits_of(value: str) -> str:
    return "".join(c for c in value if c.isdigit())


WINDOW = 64  # characters around a pre-check match that a windowed finder sees (each side)


def find(
    text: str,
    detectors: Iterable[int] | None = None,
    hits: dict[int, list[tuple[int, int]]] | None = None,
) -> list[Span]:
    """Non-overlapping findings in text order, from the detectors with these indices (all by
    default); an earlier detector wins an overlap. `hits` (detector -> its pre-check's match
    spans) limits windowed detectors to the text around them."""
    chosen = range(len(DETECTORS)) if detectors is None else sorted(detectors)
    taken: list[Span] = []
    starts: list[int] = []  # of `taken`, kept sorted, for the overlap check
    for index in chosen:
        detector = DETECTORS[index]
        if hits is not None and detector.windowed and index in hits:
            found = _windowed(detector, text, hits[index])
        else:
            found = detector.find(text)
        for span in found:
            at = bisect.bisect_left(starts, span.start)
            if at > 0 and taken[at - 1].end > span.start:
                continue
            if at < len(taken) and taken[at].start < span.end:
                continue
            starts.insert(at, span.start)
            taken.insert(at, span)
    return taken


def _windowed(detector: Detector, text: str, hits: list[tuple[int, int]]) -> Iterable[Span]:
    """The finder over merged windows of WINDOW characters around each hit; a finding that
    reaches a window's cut end (not the text's) is not trusted and not kept."""
    windows: list[list[int]] = []
    for start, end in hits:
        lo, hi = max(0, start - WINDOW), min(len(text), end + WINDOW)
        if windows and lo <= windows[-1][1]:
            windows[-1][1] = max(windows[-1][1], hi)
        else:
            windows.append([lo, hi])
    for lo, hi in windows:
        for span in detector.find(text, lo, hi):
            if span.end < hi or hi == len(text):
                yield span


def prefilter_hits(marked: str) -> list[tuple[int, int]]:
    """Spans of the pre-check matches in a text that RE2 marked as `\x00match\x00`."""
    spans, pos = [], 0
    for i, piece in enumerate(marked.split("\x00")):
        if i % 2:
            spans.append((pos, pos + len(piece)))
        pos += len(piece)
    return spans


def detectors_for(kinds: Iterable[str]) -> list[int]:
    wanted = set(kinds)
    return [i for i, d in enumerate(DETECTORS) if d.kind in wanted]
