"""Replacing what `pii` found: a typed placeholder, or a keyed hash that links equal values
without revealing them. The key never leaves this module but as its fingerprint."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re

from dataprep.quality.pii import Span, digits_of

PLACEHOLDER: dict[str, str] = {
    "secret": "SECRET",
    "email": "EMAIL",
    "iban": "IBAN",
    "credit_card": "CREDIT_CARD",
    "ip": "IP_ADDRESS",
    "phone": "PHONE",
}


def canonical(kind: str, value: str) -> str:
    """The form that is hashed, so spellings of one value link: e-mails lower-cased, numbers
    as their digits (IBANs upper-case without spaces)."""
    if kind == "email":  # `Ann (at) example (dot) org` links with ann@example.org
        value = re.sub(r"\s?[(\[{<]\s?at\s?[)\]}>]\s?|\s+(?:at|AT)\s+", "@", value)
        return re.sub(r"\s?[(\[{<]\s?dot\s?[)\]}>]\s?|\s+(?:dot|DOT)\s+", ".", value).lower()
    if kind in ("credit_card", "phone"):
        return digits_of(value)
    if kind == "iban":
        return value.replace(" ", "").upper()
    if kind == "ip":
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            return value
    return value


def keyed_hash(key: bytes, kind: str, value: str) -> str:
    """HMAC-SHA256 of the canonical value, 16 hex digits: equal values give equal tokens,
    and without the key a token cannot be checked against a guess."""
    message = f"{kind}\0{canonical(kind, value)}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:16]


def key_fingerprint(key: bytes) -> str:
    """Names a key in config digests (so another key reruns the stage) without revealing it."""
    return hmac.new(key, b"dataprep-pii-key-fingerprint", hashlib.sha256).hexdigest()[:16]


def rewrite(text: str, spans: list[Span], modes: dict[str, str], key: bytes | None) -> str:
    """`text` with each span replaced as its kind's mode says (`count` leaves it)."""
    parts: list[str] = []
    last = 0
    for span in spans:
        mode = modes.get(span.kind, "off")
        if mode not in ("redact", "hash"):
            continue
        parts.append(text[last : span.start])
        label = PLACEHOLDER[span.kind]
        if mode == "redact":
            parts.append(f"<{label}>")
        else:
            assert key is not None
            parts.append(f"<{label}:{keyed_hash(key, span.kind, text[span.start : span.end])}>")
        last = span.end
    if not parts:
        return text
    parts.append(text[last:])
    return "".join(parts)
