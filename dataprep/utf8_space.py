"""Where Arrow's `utf8_split_whitespace` sees a multi-byte Unicode space, as a compiled test on
UTF-8 bytes (numba). The dedup and the quality kernels split words with it, so both split
exactly where Arrow does; imported only by those kernels (never on `dataprep --help`)."""

from __future__ import annotations

from numba import njit


@njit(cache=True, inline="always")
def unicode_space(data, i, end):
    """Bytes taken by the multi-byte Unicode whitespace starting at data[i], else 0:
    U+0085, U+00A0, U+1680, U+2000-200A, U+2028, U+2029, U+202F, U+205F, U+3000."""
    b = data[i]
    if b == 0xC2:
        if i + 1 < end and (data[i + 1] == 0x85 or data[i + 1] == 0xA0):
            return 2
        return 0
    if i + 2 >= end or b < 0xE1 or b > 0xE3:
        return 0
    b1, b2 = data[i + 1], data[i + 2]
    if b == 0xE1:
        return 3 if b1 == 0x9A and b2 == 0x80 else 0
    if b == 0xE3:
        return 3 if b1 == 0x80 and b2 == 0x80 else 0
    if b1 == 0x80 and (b2 <= 0x8A or b2 == 0xA8 or b2 == 0xA9 or b2 == 0xAF):
        return 3
    return 3 if b1 == 0x81 and b2 == 0x9F else 0
