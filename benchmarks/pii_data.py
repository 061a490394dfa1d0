"""A seeded set of documents with known PII spans, for precision/recall of `pii`.

Real licence text (/usr/share/common-licenses) with findings planted at word boundaries:
e-mails, phones in several national formats, IPv4/IPv6, Luhn-valid card numbers of several
networks and layouts, IBANs of several countries (check digits computed here, mod 97),
secrets (AWS, GitHub, Slack, JWT, private-key blocks, `api_key = ...`). Distractors are planted
too and must NOT be found: Luhn-invalid card numbers, IBANs with a wrong check, dates, times,
version strings, DFARS clause numbers, plain numbers.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import random
import string
from dataclasses import dataclass
from pathlib import Path

LICENCES = Path("/usr/share/common-licenses")


@dataclass(frozen=True)
class Planted:
    kind: str
    start: int
    end: int


def licence_words() -> list[str]:
    words: list[str] = []
    for path in sorted(LICENCES.glob("*")):
        if path.is_file():
            words += path.read_text(errors="replace").split()
    return words or ("the licensee may copy and distribute the program " * 50).split()


def luhn_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    return str((10 - total % 10) % 10)


def card(rng: random.Random, valid: bool = True) -> str:
    prefix, length = rng.choice(
        [("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15), ("37", 15), ("6011", 16)]
    )
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    check = luhn_digit(body)
    if not valid:
        check = str((int(check) + rng.randint(1, 9)) % 10)
    digits = body + check
    layout = rng.choice(["none", "space", "dash"])
    if layout == "none":
        return digits
    sep = " " if layout == "space" else "-"
    if length == 15:
        return sep.join([digits[:4], digits[4:10], digits[10:]])
    return sep.join(digits[i : i + 4] for i in range(0, 16, 4))


_BBAN = {  # country: (length of the BBAN, generator of one)
    "DE": lambda r: _n(r, 18),
    "GB": lambda r: _a(r, 4) + _n(r, 14),
    "NL": lambda r: _a(r, 4) + _n(r, 10),
    "FR": lambda r: _n(r, 23),
    "ES": lambda r: _n(r, 20),
    "IT": lambda r: _a(r, 1) + _n(r, 22),
    "PL": lambda r: _n(r, 24),
    "CH": lambda r: _n(r, 17),
}


def _n(rng: random.Random, k: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(k))


def _a(rng: random.Random, k: int) -> str:
    return "".join(rng.choice(string.ascii_uppercase) for _ in range(k))


def _fr_key(bban: str) -> str:
    """French RIB key: the last two digits of an FR BBAN (stdnum checks them)."""
    bank, branch, account = int(bban[:5]), int(bban[5:10]), int(bban[10:21])
    return f"{97 - (89 * bank + 15 * branch + 3 * account) % 97:02d}"


def _it_cin(bban: str) -> str:
    """Italian CIN: the check letter in front of an IT BBAN."""
    odd = [
        1,
        0,
        5,
        7,
        9,
        13,
        15,
        17,
        19,
        21,
        2,
        4,
        18,
        20,
        11,
        3,
        6,
        8,
        12,
        14,
        16,
        10,
        22,
        25,
        24,
        23,
    ]
    total = 0
    for i, ch in enumerate(bban):
        v = int(ch) if ch.isdigit() else ord(ch) - 65
        total += odd[v] if i % 2 == 0 else v
    return chr(65 + total % 26)


def _es_checks(bban: str) -> str:
    weights = [1, 2, 4, 8, 5, 10, 9, 7, 3, 6]

    def digit(part: str) -> str:
        d = 11 - sum(int(c) * w for c, w in zip(part, weights, strict=False)) % 11
        return "0" if d == 11 else "1" if d == 10 else str(d)

    bank = bban[:8]
    account = bban[10:]
    return bank + digit("00" + bank) + digit(account) + account


def iban(rng: random.Random, valid: bool = True) -> str:
    country = rng.choice(sorted(_BBAN))
    bban = _BBAN[country](rng)
    if country == "FR":
        bban = bban[:21] + _fr_key(bban)
    elif country == "IT":
        bban = _it_cin(bban[1:]) + bban[1:]
    elif country == "ES":
        bban = _es_checks(bban)
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(numeric) % 97
    if not valid:
        check = (check - 2 + rng.randint(1, 96)) % 97 + 2  # any other of 2..98
    compact = f"{country}{check:02d}{bban}"
    if rng.random() < 0.5:
        return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
    return compact


def email(rng: random.Random) -> str:
    first = rng.choice(["anna", "jose", "li", "mark", "o'neil", "r.j", "x_y", "jean-luc", "k9"])
    last = rng.choice(["smith", "müller", "garcia", "nguyen", "o", "van.dijk", "p+news", "22"])
    last = last.replace("ü", "u")
    first = first.replace("'", "")
    domain = rng.choice(
        ["example.com", "mail.example.org", "debian.org", "uni-heidelberg.de", "a.b.co.uk", "x.io"]
    )
    local = rng.choice(
        [f"{first}.{last}", f"{first}{last}", first, f"{first}_{last}{rng.randint(1, 99)}"]
    )
    value = f"{local}@{domain}"
    return value.upper() if rng.random() < 0.1 else value


def phone(rng: random.Random) -> str:
    d = lambda k: _n(rng, k)  # noqa: E731
    return rng.choice(
        [
            f"+1 ({rng.randint(201, 989)}) {d(3)}-{d(4)}",
            f"+1-{rng.randint(201, 989)}-{d(3)}-{d(4)}",
            f"({rng.randint(201, 989)}) {d(3)}-{d(4)}",
            f"{rng.randint(201, 989)}-{d(3)}-{d(4)}",
            f"{rng.randint(201, 989)}.{d(3)}.{d(4)}",
            f"+44 20 {d(4)} {d(4)}",
            f"+49 30 {d(8)}",
            f"+33 1 {d(2)} {d(2)} {d(2)} {d(2)}",
            f"+31 6 {d(8)}",
            f"030 {d(7)}",
            f"+81 3-{d(4)}-{d(4)}",
        ]
    )


def ip(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return str(ipaddress.IPv4Address(rng.getrandbits(32)))
    address = ipaddress.IPv6Address(rng.getrandbits(128))
    if rng.random() < 0.5:
        return str(ipaddress.IPv6Address(int(address) & ~((1 << 64) - 1)))  # `2001:db8:...::`
    return address.exploded if rng.random() < 0.3 else str(address)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def secret(rng: random.Random) -> tuple[str, str, str]:
    """(text before, the secret, text after): `api_key = "` is context, not the secret."""
    alnum = string.ascii_letters + string.digits
    pick = lambda k, chars=alnum: "".join(rng.choice(chars) for _ in range(k))  # noqa: E731
    kind = rng.choice(["aws", "github", "slack", "jwt", "key", "assigned"])
    if kind == "aws":
        return "", "AKIA" + pick(16, string.ascii_uppercase + string.digits), ""
    if kind == "github":
        return "", "ghp_" + pick(36), ""
    if kind == "slack":
        return "", f"xoxb-{_n(rng, 11)}-{_n(rng, 12)}-{pick(24)}", ""
    if kind == "jwt":
        head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = _b64(json.dumps({"sub": _n(rng, 8), "name": pick(8)}).encode())
        return "", f"{head}.{body}.{_b64(rng.randbytes(32))}", ""
    if kind == "key":
        lines = [pick(64, alnum + "+/") for _ in range(rng.randint(3, 8))]
        block = "\n".join(
            ["-----BEGIN RSA PRIVATE KEY-----", *lines, "-----END RSA PRIVATE KEY-----"]
        )
        return "\n", block, "\n"
    name = rng.choice(["api_key", "API_KEY", "apiKey", "secret_key", "access_token", "password"])
    quote = rng.choice(['"', "'", ""])
    value = pick(rng.randint(20, 40), alnum + "_-")
    while not any(c.isdigit() for c in value):
        value = pick(rng.randint(20, 40), alnum + "_-")
    return f"{name} = {quote}", value, quote


def distractor(rng: random.Random) -> str:
    return rng.choice(
        [
            card(rng, valid=False),
            iban(rng, valid=False),
            f"{rng.randint(1990, 2030)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/{rng.randint(1990, 2030)}",
            f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}",
            "version " + ".".join(str(rng.randint(0, 20)) for _ in range(4)),
            f"v{rng.randint(0, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 99)}",
            f"DFARS 252.227-{_n(rng, 4)}",
            f"{rng.randint(1, 99999)}",
            "std::vector<int>",
            f"ISBN 978-{_n(rng, 1)}-{_n(rng, 3)}-{_n(rng, 5)}-{_n(rng, 1)}",
            f"copyright {rng.randint(1990, 2010)}-{rng.randint(2011, 2024)}",
        ]
    )


MAKERS = {"email": email, "phone": phone, "ip": ip, "credit_card": card, "iban": iban}


def generate(docs: int = 400, seed: int = 0) -> list[tuple[str, list[Planted]]]:
    """Documents of ~60-200 licence words with 0-6 planted findings and 0-3 distractors."""
    rng = random.Random(seed)
    words = licence_words()
    out: list[tuple[str, list[Planted]]] = []
    kinds = [*MAKERS, "secret"]
    for _ in range(docs):
        start = rng.randrange(0, max(1, len(words) - 200))
        body = words[start : start + rng.randint(60, 200)]
        inserts: list[tuple[int, str | None, tuple[str, str, str]]] = []
        for _ in range(rng.randint(0, 6)):
            kind = rng.choice(kinds)
            parts = secret(rng) if kind == "secret" else ("", MAKERS[kind](rng), "")
            inserts.append((rng.randrange(len(body) + 1), kind, parts))
        for _ in range(rng.randint(0, 3)):
            inserts.append((rng.randrange(len(body) + 1), None, ("", distractor(rng), "")))
        inserts.sort(key=lambda x: x[0])
        text, planted, at = "", [], 0
        for pos, kind, (before, value, after) in inserts:
            text += " ".join(body[at:pos]) + (" " if pos > at else "")
            at = pos
            text += before
            if kind is not None:
                planted.append(Planted(kind, len(text), len(text) + len(value)))
            text += value + after + " "
        text += " ".join(body[at:])
        out.append((text, planted))
    return out
