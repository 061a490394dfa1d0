"""spaCy's English tokenizer rules (spaCy 3.8, `spacy.blank("en")`) as lookup tables.

WHY: datatrove's Gopher filters split words with that tokenizer by default, and its words are
not whitespace words (it peels punctuation off, splits "don't" into "do" "n't"), so Gopher's
word counts, alpha fraction, stop words and n-grams differ. `kernels_spacy` replays spaCy's
algorithm (spacy/tokenizer.pyx `_split_affixes`, `_attach_tokens`) over code points with
these tables instead of regexes, so no spaCy is needed. The character sets are those of
spacy/lang/char_classes.py and lang/punctuation.py, letters and icons included (spaCy lists
scripts by hand, so they are not Python's `str.isalpha()`). The special cases
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
# spaCy's ALPHA, ALPHA_LOWER, ALPHA_UPPER and LIST_ICONS (lang/char_classes.py) below
# U+20000 as code-point ranges, dumped once: spaCy lists scripts by hand, so Python's
# str.isalpha() is not the same set ("ﬁ" is no letter to spaCy, "。" is one).
_ALPHA_RANGES = (
    "0041-005A 0061-007A 00C0-00D6 00D8-00F6 00F8-01BF 01C4-02AF 0386 0388-038A 038C 038E-038F "
    "0391-03A9 03AC-03AF 03B1-03C9 03CC-03CE 0400-0401 0403-040A 040C-040D 0410-0451 0453-045A "
    "045C-045D 0490-0491 0496-0497 04A2-04A3 04AE-04AF 04BA-04BB 04D8-04D9 04E8-04E9 0591-05F4 "
    "0620-064A 066E-06D5 06E5-06FF 0750-077F 08A0-08BD 0900-09FF 0B80-0CFF 0D80-0DFF 1100-137F "
    "1D00-1D25 1D6B-1D77 1D79-1D9A 1E00-1EFF 2C60-2C7B 2C7E-2C7F 2E80-2FDF 2FF0-30FF 31C0-31EF "
    "3200-4DBF 4E00-9FFF A722-A76F A771-A787 A78B-A78E A790-A7B9 A7FA AB30-AB5A AB60-AB64 "
    "AC00-D7AF F900-FAFF FB1D-FBB1 FBD3-FD3D FD50-FDC7 FDF0-FDFB FE30-FE4F FE70-FEFC FF21-FF3A "
    "FF41-FF5A 1EE00-1EEBB 1F200-1F2FF"
)
_LOWER_RANGES = (
    "0061-007A 00DF-00F6 00F8-00FF 0101 0103 0105 0107 0109 010B 010D 010F 0111 0113 0115 0117 "
    "0119 011B 011D 011F 0121 0123 0125 0127 0129 012B 012D 012F 0131 0133 0135 0137-0138 013A "
    "013C 013E 0140 0142 0144 0146 0148-0149 014B 014D 014F 0151 0153 0155 0157 0159 015B 015D "
    "015F 0161 0163 0165 0167 0169 016B 016D 016F 0171 0173 0175 0177 017A 017C 017E-0180 0183 "
    "0185 0188 018C-018D 0192 0195 0199-019B 019E 01A1 01A3 01A5 01A8 01AA-01AB 01AD 01B0 01B4 "
    "01B6 01B9-01BA 01BD-01BF 01C6 01C9 01CC 01CE 01D0 01D2 01D4 01D6 01D8 01DA 01DC-01DD 01DF "
    "01E1 01E3 01E5 01E7 01E9 01EB 01ED 01EF-01F0 01F3 01F5 01F9 01FB 01FD 01FF 0201 0203 0205 "
    "0207 0209 020B 020D 020F 0211 0213 0215 0217 0219 021B 021D 021F 0221 0223 0225 0227 0229 "
    "022B 022D 022F 0231 0233-0239 023C 023F-0240 0242 0247 0249 024B 024D 024F-02AF 03AC-03AF "
    "03B1-03C9 03CC-03CE 0430-0451 0453-045A 045C-045D 0491 0497 04A3 04AF 04BB 04D9 04E9 "
    "0591-05F4 0620-064A 066E-06D5 06E5-06FF 0750-077F 08A0-08BD 0900-09FF 0B80-0CFF 0D80-0DFF "
    "1100-137F 1D00-1D25 1D6B-1D77 1D79-1D9A 1E01 1E03 1E05 1E07 1E09 1E0B 1E0D 1E0F 1E11 1E13 "
    "1E15 1E17 1E19 1E1B 1E1D 1E1F 1E21 1E23 1E25 1E27 1E29 1E2B 1E2D 1E2F 1E31 1E33 1E35 1E37 "
    "1E39 1E3B 1E3D 1E3F 1E41 1E43 1E45 1E47 1E49 1E4B 1E4D 1E4F 1E51 1E53 1E55 1E57 1E59 1E5B "
    "1E5D 1E5F 1E61 1E63 1E65 1E67 1E69 1E6B 1E6D 1E6F 1E71 1E73 1E75 1E77 1E79 1E7B 1E7D 1E7F "
    "1E81 1E83 1E85 1E87 1E89 1E8B 1E8D 1E8F 1E91 1E93 1E95-1E9D 1E9F 1EA1 1EA3 1EA5 1EA7 1EA9 "
    "1EAB 1EAD 1EAF 1EB1 1EB3 1EB5 1EB7 1EB9 1EBB 1EBD 1EBF 1EC1 1EC3 1EC5 1EC7 1EC9 1ECB 1ECD "
    "1ECF 1ED1 1ED3 1ED5 1ED7 1ED9 1EDB 1EDD 1EDF 1EE1 1EE3 1EE5 1EE7 1EE9 1EEB 1EED 1EEF 1EF1 "
    "1EF3 1EF5 1EF7 1EF9 1EFB 1EFD 1EFF 2C61 2C65-2C66 2C68 2C6A 2C6C 2C71 2C73-2C74 2C76-2C7B "
    "2E80-2FDF 2FF0-30FF 31C0-31EF 3200-4DBF 4E00-9FFF A723 A725 A727 A729 A72B A72D A72F-A731 "
    "A733 A735 A737 A739 A73B A73D A73F A741 A743 A745 A747 A749 A74B A74D A74F A751 A753 A755 "
    "A757 A759 A75B A75D A75F A761 A763 A765 A767 A769 A76B A76D A76F A771-A778 A77A A77C A77F "
    "A781 A783 A785 A787 A78C A78E A791 A793-A795 A797 A799 A79B A79D A79F A7A1 A7A3 A7A5 A7A7 "
    "A7A9 A7AF A7B5 A7B7 A7B9 A7FA AB30-AB5A AB60-AB64 AC00-D7AF F900-FAFF FB1D-FBB1 FBD3-FD3D "
    "FD50-FDC7 FDF0-FDFB FE30-FE4F FE70-FEFC FF41-FF5A 1EE00-1EEBB 1F200-1F2FF"
)
_UPPER_RANGES = (
    "0041-005A 00C0-00D6 00D8-00DE 0100 0102 0104 0106 0108 010A 010C 010E 0110 0112 0114 0116 "
    "0118 011A 011C 011E 0120 0122 0124 0126 0128 012A 012C 012E 0130 0132 0134 0136 0139 013B "
    "013D 013F 0141 0143 0145 0147 014A 014C 014E 0150 0152 0154 0156 0158 015A 015C 015E 0160 "
    "0162 0164 0166 0168 016A 016C 016E 0170 0172 0174 0176 0178-0179 017B 017D 0181-0182 0184 "
    "0186-0187 0189-018B 018E-0191 0193-0194 0196-0198 019C-019D 019F-01A0 01A2 01A4 01A6-01A7 "
    "01A9 01AC 01AE-01AF 01B1-01B3 01B5 01B7-01B8 01BC 01C4 01C7 01CA 01CD 01CF 01D1 01D3 01D5 "
    "01D7 01D9 01DB 01DE 01E0 01E2 01E4 01E6 01E8 01EA 01EC 01EE 01F1 01F4 01F6-01F8 01FA 01FC "
    "01FE 0200 0202 0204 0206 0208 020A 020C 020E 0210 0212 0214 0216 0218 021A 021C 021E 0220 "
    "0222 0224 0226 0228 022A 022C 022E 0230 0232 023A-023B 023D-023E 0241 0243-0246 0248 024A "
    "024C 024E 0386 0388-038A 038C 038E-038F 0391-03A9 0400-0401 0403-040A 040C-040D 0410-042F "
    "0490 0496 04A2 04AE 04BA 04D8 04E8 0591-05F4 0620-064A 066E-06D5 06E5-06FF 0750-077F "
    "08A0-08BD 0900-09FF 0B80-0CFF 0D80-0DFF 1100-137F 1E00 1E02 1E04 1E06 1E08 1E0A 1E0C 1E0E "
    "1E10 1E12 1E14 1E16 1E18 1E1A 1E1C 1E1E 1E20 1E22 1E24 1E26 1E28 1E2A 1E2C 1E2E 1E30 1E32 "
    "1E34 1E36 1E38 1E3A 1E3C 1E3E 1E40 1E42 1E44 1E46 1E48 1E4A 1E4C 1E4E 1E50 1E52 1E54 1E56 "
    "1E58 1E5A 1E5C 1E5E 1E60 1E62 1E64 1E66 1E68 1E6A 1E6C 1E6E 1E70 1E72 1E74 1E76 1E78 1E7A "
    "1E7C 1E7E 1E80 1E82 1E84 1E86 1E88 1E8A 1E8C 1E8E 1E90 1E92 1E94 1E9E 1EA0 1EA2 1EA4 1EA6 "
    "1EA8 1EAA 1EAC 1EAE 1EB0 1EB2 1EB4 1EB6 1EB8 1EBA 1EBC 1EBE 1EC0 1EC2 1EC4 1EC6 1EC8 1ECA "
    "1ECC 1ECE 1ED0 1ED2 1ED4 1ED6 1ED8 1EDA 1EDC 1EDE 1EE0 1EE2 1EE4 1EE6 1EE8 1EEA 1EEC 1EEE "
    "1EF0 1EF2 1EF4 1EF6 1EF8 1EFA 1EFC 1EFE 2C60 2C62-2C64 2C67 2C69 2C6B 2C6D-2C70 2C72 2C75 "
    "2C7E-2C7F 2E80-2FDF 2FF0-30FF 31C0-31EF 3200-4DBF 4E00-9FFF A722 A724 A726 A728 A72A A72C "
    "A72E A732 A734 A736 A738 A73A A73C A73E A740 A742 A744 A746 A748 A74A A74C A74E A750 A752 "
    "A754 A756 A758 A75A A75C A75E A760 A762 A764 A766 A768 A76A A76C A76E A779 A77B A77D-A77E "
    "A780 A782 A784 A786 A78B A78D A790 A792 A796 A798 A79A A79C A79E A7A0 A7A2 A7A4 A7A6 A7A8 "
    "A7AA-A7AE A7B0-A7B4 A7B6 A7B8 AC00-D7AF F900-FAFF FB1D-FBB1 FBD3-FD3D FD50-FDC7 FDF0-FDFB "
    "FE30-FE4F FE70-FEFC FF21-FF3A 1EE00-1EEBB 1F200-1F2FF"
)
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
ALPHA_ABOVE = ((0x20000, 0x2A6DF), (0x2A700, 0x2EBEF), (0x2F800, 0x2FA1F))  # CJK ext. B-F...
TABLE_SIZE = 0x2FA20  # spaCy names nothing above (CJK extension G is no letter to it)


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
    for spec, bit in ((_ALPHA_RANGES, ALPHA), (_LOWER_RANGES, LOWER), (_UPPER_RANGES, UPPER)):
        cls[_ranges(spec)] |= bit
    for lo, hi in ALPHA_ABOVE:
        cls[lo : hi + 1] |= ALPHA | LOWER | UPPER
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
