"""spaCy's English tokenizer rules (spaCy 3.8, `spacy.blank("en")`) as lookup tables.

WHY: datatrove's Gopher filters split words with that tokenizer by default, and its words are
not whitespace words (it peels punctuation off, splits "don't" into "do" "n't"), so Gopher's
word counts, alpha fraction, stop words and n-grams differ. `kernels_spacy` replays spaCy's
algorithm (spacy/tokenizer.pyx `_split_affixes`, `_attach_tokens`) over code points with
these tables instead of regexes, so no spaCy is needed. The character sets are those of
spacy/lang/char_classes.py and lang/punctuation.py; letters are Python's `str.isalpha()`
(spaCy lists scripts by hand: the two differ only on rare scripts). The special cases
(`spacy_en_exceptions.json`) are spaCy's `nlp.tokenizer.rules`, dumped once (spaCy is MIT).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np

# class bits of a code point
ALPHA, LOWER, UPPER, DIGIT = 1, 2, 4, 8
PREFIX, SUFFIX, QUOTE, DOT_AFTER = 16, 32, 64, 128  # DOT_AFTER: a "." after it is a suffix
ICON, CURRENCY, HYPHEN, HOST = 256, 512, 1024, 2048
INFIX = 4096  # may start an infix (the scan for infixes skips everything else)

_PUNCT = "… , : ; ! ? ¿ ؟ ¡ ( ) [ ] { } < > _ # * & 。 ？ ！ ， 、 ； ： ～ · । ، ۔ ؛ ٪".split()
_QUOTES = "' \" ” “ ` ‘ ´ ’ ‚ , „ » « 「 」 『 』 （ ） 〔 〕 【 】 《 》 〈 〉 〈 〉 ⟦ ⟧".split()
_CURRENCY = "$ £ € ¥ ฿ ₽ ﷼ ₴ ₠ ₡ ₢ ₣ ₤ ₥ ₦ ₧ ₨ ₩ ₪ ₫ ₭ ₮ ₯ ₰ ₱ ₲ ₳ ₵ ₶ ₷ ₸ ₹ ₺ ₻ ₼ ₾ ₿".split()
UNITS = (
    "km km² km³ m m² m³ dm dm² dm³ cm cm² cm³ mm mm² mm³ ha µm nm yd in ft kg g mg µg t lb oz "
    "m/s km/h kmh mph hPa Pa mbar mb MB kb KB gb GB tb TB T G M K % км км² км³ м м² м³ дм дм² "
    "дм³ см см² см³ мм мм² мм³ нм кг г мг м/с км/ч кПа Па мбар Кб КБ кб Мб МБ мб Гб ГБ гб Тб "
    "ТБ тбكم كم² كم³ م م² م³ سم سم² سم³ مم مم² مم³ كم غرام جرام جم كغ ملغ كوب اكواب"
).split()
# spaCy's LIST_ICONS (lang/char_classes.py `_other_symbols`) below TABLE_SIZE, exactly: the
# emoji skin-tone modifiers U+1F3FB-1F3FF (category Sk) are not among them.
_ICON_RANGES = (
    "00A6 00A9 00AE 00B0 0482 058D-058E 060E-060F 06DE 06E9 06FD-06FE 07F6 09FA 0B70 0BF3-0BF8 "
    "0BFA 0C7F 0D4F 0D79 0F01-0F03 0F13 0F15-0F17 0F1A-0F1F 0F34 0F36 0F38 0FBE-0FC5 0FC7-0FCC "
    "0FCE-0FCF 0FD5-0FD8 109E-109F 1390-1399 1940 19DE-19FF 1B61-1B6A 1B74-1B7C 2100-2101 "
    "2103-2106 2108-2109 2114 2116-2117 211E-2123 2125 2127 2129 212E 213A-213B 214A 214C-214D "
    "214F 218A-218B 2195-2199 219C-219F 21A1-21A2 21A4-21A5 21A7-21AD 21AF-21CD 21D0-21D1 21D3 "
    "21D5-21F3 2300-2307 230C-231F 2322-2328 232B-237B 237D-239A 23B4-23DB 23E2-2426 2440-244A "
    "249C-24E9 2500-25B6 25B8-25C0 25C2-25F7 2600-266E 2670-2767 2794-27BF 2800-28FF 2B00-2B2F "
    "2B45-2B46 2B4D-2B73 2B76-2B95 2B98-2BC8 2BCA-2BFE 2CE5-2CEA 2E80-2E99 2E9B-2EF3 2F00-2FD5 "
    "2FF0-2FFB 3004 3012-3013 3020 3036-3037 303E-303F 3190-3191 3196-319F 31C0-31E3 3200-321E "
    "322A-3247 3250 3260-327F 328A-32B0 32C0-32FE 3300-33FF 4DC0-4DFF A490-A4C6 A828-A82B "
    "A836-A837 A839 AA77-AA79 FDFD FFE4 FFE8 FFED-FFEE FFFC-FFFD 10137-1013F 10179-10189 "
    "1018C-1018E 10190-1019B 101A0 101D0-101FC 10877-10878 10AC8 1173F 16B3C-16B3F 16B45 1BC9C "
    "1D000-1D0F5 1D100-1D126 1D129-1D164 1D16A-1D16C 1D183-1D184 1D18C-1D1A9 1D1AE-1D1E8 "
    "1D200-1D241 1D245 1D300-1D356 1D800-1D9FF 1DA37-1DA3A 1DA6D-1DA74 1DA76-1DA83 1DA85-1DA86 "
    "1ECAC 1F000-1F02B 1F030-1F093 1F0A0-1F0AE 1F0B1-1F0BF 1F0C1-1F0CF 1F0D1-1F0F5 1F110-1F16B "
    "1F170-1F1AC 1F1E6-1F202 1F210-1F23B 1F240-1F248 1F250-1F251 1F260-1F265 1F300-1F3FA "
    "1F400-1F6D4 1F6E0-1F6EC 1F6F0-1F6F9 1F700-1F773 1F780-1F7D8 1F800-1F80B 1F810-1F847 "
    "1F850-1F859 1F860-1F887 1F890-1F8AD 1F900-1F90B 1F910-1F93E 1F940-1F970 1F973-1F976 1F97A "
    "1F97C-1F9A2 1F9B0-1F9B9 1F9C0-1F9C2 1F9D0-1F9FF 1FA60-1FA6D"
)
TABLE_SIZE = 0x20000  # above: letters (CJK extensions) and nothing spaCy names


def _ranges(spec: str) -> list[int]:
    out: list[int] = []
    for part in spec.split():
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo, 16), int(hi or lo, 16) + 1))
    return out


@cache
def classes() -> np.ndarray:
    """Class bits (ALPHA ...) of every code point below TABLE_SIZE."""
    cls = np.zeros(TABLE_SIZE, np.uint16)
    for cp in range(TABLE_SIZE):
        ch = chr(cp)
        if ch.isalpha():
            lower, upper = ch.islower(), ch.isupper()
            uncased = not lower and not upper  # spaCy counts uncased scripts as both
            cls[cp] = (
                ALPHA | (LOWER if lower or uncased else 0) | (UPPER if upper or uncased else 0)
            )
    cls[ord("0") : ord("9") + 1] |= DIGIT
    icons = _ranges(_ICON_RANGES)
    cls[[c for c in icons if c < TABLE_SIZE]] |= ICON | PREFIX | SUFFIX
    for ch in _PUNCT + _QUOTES:
        cls[ord(ch)] |= PREFIX | SUFFIX | DOT_AFTER
    for ch in _QUOTES:
        cls[ord(ch)] |= QUOTE
    for ch in "§%=—–":  # prefixes only ("+" is one unless a digit follows: in the kernel)
        cls[ord(ch)] |= PREFIX
    for ch in "—–":
        cls[ord(ch)] |= SUFFIX
    for ch in _CURRENCY:
        cls[ord(ch)] |= PREFIX | CURRENCY
    for ch in "%²-+|(?:)":  # the "." suffix's look-behind set besides digits and lower case
        cls[ord(ch)] |= DOT_AFTER
    for ch in "-–—~":
        cls[ord(ch)] |= HYPHEN
    for ch in ".…+-*^,–—~:<>=/":
        cls[ord(ch)] |= INFIX
    cls[[c for c in icons if c < TABLE_SIZE]] |= INFIX
    host = [c for c in range(0xA1, 0x10000)] + [ord(c) for c in "0123456789"]
    host += list(range(ord("A"), ord("Z") + 1)) + list(range(ord("a"), ord("z") + 1))
    cls[host] |= HOST
    return cls


MASK = (1 << 64) - 1
FNV_OFFSET, FNV_PRIME = 0xCBF29CE484222325, 0x100000001B3


def fnv(text: str) -> int:
    """FNV-1a over code points, as `kernels_spacy._hash` computes it in uint64."""
    h = FNV_OFFSET
    for ch in text:
        h = ((h ^ ord(ch)) * FNV_PRIME) & MASK
    return h


@cache
def exceptions() -> dict[str, list[str]]:
    """spaCy's special cases: the string and the tokens it becomes."""
    path = Path(__file__).with_name("spacy_en_exceptions.json")
    return json.loads(path.read_text(encoding="utf-8"))


def hash_set(hashes: list[int]) -> np.ndarray:
    """An open-addressing set of nonzero hashes: slot (h >> 32) & (size - 1), then the next
    free one (`kernels_spacy.find` probes the same way; 0 marks a free slot)."""
    size = 16
    while size < 4 * len(hashes):
        size *= 2
    keys = np.zeros(size, np.uint64)
    for h in hashes:
        j = (h >> 32) & (size - 1)
        while keys[j]:
            j = (j + 1) & (size - 1)
        keys[j] = h
    return keys


@cache
def special_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The special cases as (hash set, offsets into the part lengths by slot, part lengths)."""
    parts = {fnv(key): [len(p) for p in value] for key, value in exceptions().items()}
    keys = hash_set(list(parts))
    sizes = [len(parts[int(k)]) if k else 0 for k in keys]
    offsets = np.zeros(len(keys) + 1, np.int64)
    offsets[1:] = np.cumsum(sizes)
    lengths = np.array([n for k in keys if k for n in parts[int(k)]], np.int64)
    return keys, offsets, lengths


@cache
def unit_table() -> tuple[np.ndarray, np.ndarray]:
    """Units and multi-character currencies (suffixes after a digit) as a hash set, and the
    longest one's length."""
    words = UNITS + _CURRENCY + ["US$", "C$", "A$"]
    keys = hash_set(sorted({fnv(w) for w in words}))
    return keys, np.array([max(len(w) for w in words)], np.int64)
