"""Fast-mode MinHash signatures as one compiled pass (numba) over Arrow string buffers.

WHY: the numpy path (`minhash.numpy_signatures`) makes ~20 whole-array passes per batch
(token masks, dictionary encoding, shifted shingle sums, a scatter-min); on long documents it
is memory-bound. Here one loop per document tokenises, hashes tokens, combines shingles and
fills the one-permutation bins while the document is in cache. numba compiles it from wheels
(no C compiler) and keeps the machine code on disk (`cache=True`), so a process pays only
numba's import and a cache load. The values are bit-identical to the numpy path, which stays
as the reference and the fallback (tests/test_dedup_kernel.py); so are its quirks: a batch
whose normalised text is all ASCII splits on ASCII whitespace only, any other batch on
Unicode whitespace (which adds \\x1c-\\x1f, U+0085, U+00A0, U+1680, U+2000-U+200A, ...).

`sign_text` also normalises: NFKC, lower-casing and punctuation of an ASCII document are byte
maps (NFKC leaves ASCII as it is), done in the loop; only non-ASCII documents go through
Arrow's Unicode normalisation first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from dataprep.utf8_space import unicode_space as _unicode_space

from . import params
from .normalise import normalise
from .numba_start import load_arraymath

load_arraymath()  # before the first call loads numba's registries: skips its scipy import

_C1 = np.uint64(0xFF51AFD7ED558CCD)
_C2 = np.uint64(0xC4CEB9FE1A85EC53)
_S32 = np.uint64(32)
_S33 = np.uint64(33)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_POLY = params._POLY
_LOW32 = np.uint64(0xFFFFFFFF)
_EMPTY = np.uint64(1 << 32)
_ZERO = np.uint64(0)
_ONE = np.uint64(1)

# byte classes: 1 ASCII whitespace (both paths), 2 whitespace on the Unicode path only,
# 4 ASCII punctuation or symbol (RE2's [\p{P}\p{S}] restricted to ASCII)
_CLASS = np.zeros(256, np.uint8)
_CLASS[[9, 10, 11, 12, 13, 32]] = 1
_CLASS[[28, 29, 30, 31]] = 2
_CLASS[[c for c in range(33, 127) if not chr(c).isalnum()]] = 4


@njit(cache=True, inline="always")
def _fmix(h):
    h ^= h >> _S33
    h *= _C1
    h ^= h >> _S33
    h *= _C2
    return h ^ (h >> _S33)


@njit(cache=True, inline="always")
def _word_tokens(data, start, end, sep, lower, unicode_ws, toks):
    """Whitespace-separated tokens' polynomial hashes (minhash.hash_strings) into toks."""
    ntok = 0
    h = _ZERO
    pw = _ONE
    length = 0
    i = start
    while i < end:
        b = data[i]
        width = 0
        if b < 0x80:
            if sep[b]:
                width = 1
        elif unicode_ws:
            width = _unicode_space(data, i, end)
        if width:
            if length:
                toks[ntok] = _fmix(h ^ (np.uint64(length) * _GOLDEN))
                ntok += 1
                h = _ZERO
                pw = _ONE
                length = 0
            i += width
            continue
        if lower and 65 <= b <= 90:
            b += 32
        h += np.uint64(b) * pw
        pw *= _POLY
        length += 1
        i += 1
    if length:
        toks[ntok] = _fmix(h ^ (np.uint64(length) * _GOLDEN))
        ntok += 1
    return ntok


@njit(cache=True, inline="always")
def _char_tokens(data, start, end, lower, punct, toks):
    """Code points' hashes (minhash.char_tokens); a punctuation run counts as one space."""
    ntok = 0
    in_punct = False
    i = start
    while i < end:
        b = data[i]
        if b < 0x80:
            i += 1
            if punct and _CLASS[b] == 4:
                if not in_punct:
                    toks[ntok] = _fmix(np.uint64(32) + _GOLDEN)
                    ntok += 1
                in_punct = True
                continue
            if lower and 65 <= b <= 90:
                b += 32
            cp = np.uint64(b)
        elif i + (2 if b < 0xE0 else 3 if b < 0xF0 else 4) > end:  # cut UTF-8: never read past
            cp = np.uint64(b)
            i += 1
        elif b < 0xE0:
            cp = (np.uint64(b & 0x1F) << np.uint64(6)) | np.uint64(data[i + 1] & 0x3F)
            i += 2
        elif b < 0xF0:
            cp = (
                (np.uint64(b & 0x0F) << np.uint64(12))
                | (np.uint64(data[i + 1] & 0x3F) << np.uint64(6))
                | np.uint64(data[i + 2] & 0x3F)
            )
            i += 3
        else:
            cp = (
                (np.uint64(b & 0x07) << np.uint64(18))
                | (np.uint64(data[i + 1] & 0x3F) << np.uint64(12))
                | (np.uint64(data[i + 2] & 0x3F) << np.uint64(6))
                | np.uint64(data[i + 3] & 0x3F)
            )
            i += 4
        in_punct = False
        toks[ntok] = _fmix(cp + _GOLDEN)
        ntok += 1
    return ntok


@njit(cache=True, nogil=True)
def sign_rows(
    data, starts, ends, rows, lower, punct, unicode_ws, char_mode, n, mix, position, table, sig,
    counts,
):  # fmt: skip
    """Signatures of documents data[starts[d]:ends[d]] into sig[rows[d]] (uint32 rows,
    pre-filled with 0xFFFFFFFF) and their shingle counts into counts[rows[d]]."""
    num_perm = sig.shape[1]
    k = np.uint64(num_perm)
    sep = np.zeros(128, np.bool_)
    for c in range(128):
        cls = _CLASS[c]
        sep[c] = cls == 1 or (cls == 2 and unicode_ws) or (cls == 4 and punct)
    longest = 1
    for d in range(len(rows)):
        longest = max(longest, ends[d] - starts[d])
    toks = np.empty(longest, np.uint64)
    vals = np.empty(num_perm, np.uint64)
    for d in range(len(rows)):
        if char_mode:
            ntok = _char_tokens(data, starts[d], ends[d], lower, punct, toks)
        else:
            ntok = _word_tokens(data, starts[d], ends[d], sep, lower, unicode_ws, toks)
        if ntok == 0:
            continue
        vals[:] = _EMPTY
        shingles = ntok - n + 1 if ntok >= n else 1
        width = n if ntok >= n else ntok
        for s in range(shingles):
            acc = _ZERO
            for j in range(width):
                acc += toks[s + j] * position[j]
            x = _fmix(acc ^ mix)
            slot = ((x >> _S32) * k) >> _S32
            v = x & _LOW32
            if v < vals[slot]:
                vals[slot] = v
        row = rows[d]
        counts[row] = shingles
        smallest = _EMPTY
        for j in range(num_perm):
            smallest = min(smallest, vals[j])
        for j in range(num_perm):  # optimal densification, as minhash.oph_signatures
            v = vals[j]
            if v == _EMPTY:
                v = smallest
                for t in range(table.shape[0]):
                    w = vals[table[t, j]]
                    if w != _EMPTY:
                        v = w
                        break
            sig[row, j] = np.uint32(v)


@njit(cache=True, nogil=True)
def band_keys(sig, rows, starts):
    """minhash.band_keys in one pass: keys[b, d] folds sig[d, b*rows:(b+1)*rows] into
    starts[b] (fmix of (key * golden) ^ value, slot by slot)."""
    bands, docs = len(starts), sig.shape[0]
    keys = np.empty((bands, docs), np.uint64)
    for d in range(docs):
        for band in range(bands):
            key = starts[band]
            for j in range(band * rows, (band + 1) * rows):
                key = _fmix((key * _GOLDEN) ^ np.uint64(sig[d, j]))
            keys[band, d] = key
    return keys


def _spans(text: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(data, starts, ends) of a StringArray's buffers; a null row is an empty span."""
    offsets, data = params._string_buffers(text)
    starts, ends = offsets[:-1].copy(), offsets[1:].copy()
    if text.null_count:
        null = ~pc.is_valid(text).to_numpy(zero_copy_only=False)
        ends[null] = starts[null]
    return data, starts, ends


def _run(
    parts: list[tuple[pa.Array, np.ndarray | None, np.ndarray, bool, bool]],
    docs: int,
    unicode_ws: bool,
    num_perm: int,
    seed: int,
    ngram: int,
    char_ngram: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    sig = np.full((docs, num_perm), params.SENTINEL, dtype=np.uint32)
    counts = np.zeros(docs, dtype=np.int64)
    n = char_ngram or ngram
    mix = params.seed_mix(seed)
    table = params._densify_table(num_perm, seed)
    for text, pick, rows, lower, punct in parts:
        if len(rows) == 0:
            continue
        data, starts, ends = _spans(text)
        if pick is not None:
            starts, ends = starts[pick], ends[pick]
        sign_rows(
            data, starts, ends, rows, lower, punct, unicode_ws, bool(char_ngram), n, mix,
            params._POSITION, table, sig, counts,
        )  # fmt: skip
    return sig, counts


def _plain(text: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    if pa.types.is_large_string(text.type):
        text = text.cast(pa.string())
    return text


def _all_ascii(text: pa.Array) -> bool:
    return text.null_count == 0 and pc.all(pc.string_is_ascii(text)).as_py() is not False


def _normalise_lines(text: pa.Array, steps: Sequence[str]) -> pa.Array:
    """normalise() line by line, rejoined: the same text (NFKC never composes across an
    ASCII character, lower-casing is per code point, punctuation runs stop at "\n"), but
    Arrow's per-string ASCII shortcut now skips the ASCII lines of a non-ASCII document
    (its Unicode NFKC runs at ~90 MB/s)."""
    lines = pc.split_pattern(text, "\n")
    flat = normalise(pc.list_flatten(lines), steps)
    return pc.binary_join(pa.ListArray.from_arrays(lines.offsets, flat), "\n")


def signatures(
    text: pa.Array, num_perm: int, seed: int, ngram: int, char_ngram: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Equal to minhash.numpy_signatures(text, ...) for already normalised text."""
    text = _plain(text)
    rows = np.arange(len(text), dtype=np.int64)
    unicode_ws = not _all_ascii(text)
    return _run(
        [(text, None, rows, False, False)], len(text), unicode_ws, num_perm, seed, ngram, char_ngram
    )


def sign_text(
    text: pa.Array | pa.ChunkedArray,
    steps: Sequence[str],
    num_perm: int,
    seed: int,
    ngram: int,
    char_ngram: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Equal to minhash.numpy_signatures(fill_null(normalise(text, steps), ""), ...):
    ASCII documents are normalised inside the kernel, the others by Arrow first."""
    text = _plain(text)
    if "whitespace" in steps:  # changes char n-grams; not a byte map: Arrow does it all
        norm = pc.fill_null(normalise(text, steps), "")
        return signatures(norm, num_perm, seed, ngram, char_ngram)
    ascii_rows = pc.fill_null(pc.string_is_ascii(text), False).to_numpy(zero_copy_only=False)
    valid = pc.is_valid(text).to_numpy(zero_copy_only=False)
    others = np.flatnonzero(valid & ~ascii_rows)
    rest = _normalise_lines(text.take(pa.array(others)), steps)
    ascii_index = np.flatnonzero(ascii_rows)
    parts = [
        (text, ascii_index, ascii_index, "lowercase" in steps, "punctuation" in steps),
        (rest, None, others, False, False),
    ]
    unicode_ws = not _all_ascii(rest)
    return _run(parts, len(text), unicode_ws, num_perm, seed, ngram, char_ngram)
