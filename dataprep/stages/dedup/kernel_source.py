"""The dedup kernels' numba source, compiled to C-ABI functions over raw pointers.

WHY pointers: the compiled object then needs nothing from numba at run time (no NRT, no
environment, no Python API), so `kernel.py` can load it with llvmlite alone (~0.02 s) instead of
importing numba and loading its registries (~0.6 s of CPU per process). This module is imported
only to build that object, once per source/CPU/toolchain (see `dataprep/native.py`).

The values are those of the numpy path (`minhash.numpy_signatures`), including its quirk: a
batch whose normalised text is all ASCII splits on ASCII whitespace only (with \\x1c-\\x1f), any
other batch on Unicode whitespace too (U+0085, U+00A0, U+1680, U+2000-U+200A, ...).
"""

from __future__ import annotations

import numpy as np
from numba import njit, types

from dataprep import native
from dataprep.utf8_space import unicode_space as _unicode_space

from . import params

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
_ZERO16 = np.uint16(0)

# byte classes (constant in the machine code): 1 ASCII whitespace (both paths; \x1c-\x1f too, as
# Arrow's Unicode split and str.split), 4 ASCII punctuation or symbol (RE2's [\p{P}\p{S}] in ASCII)
_CLASS = np.zeros(256, np.uint8)
_CLASS[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = 1
_CLASS[[c for c in range(33, 127) if not chr(c).isalnum()]] = 4

_U8P = types.CPointer(types.uint8)
_U32P = types.CPointer(types.uint32)
_I64P = types.CPointer(types.int64)
_U64P = types.CPointer(types.uint64)
_I64 = types.int64

# void sign_rows(data, starts, ends, rows, docs, lower, punct, unicode_ws, char_mode, n, mix,
#                position, table, table_rows, sig, num_perm, counts, toks, vals, tab)
SIGN_ROWS = types.void(
    _U8P, _I64P, _I64P, _I64P, _I64, _I64, _I64, _I64, _I64, _I64, types.uint64,
    _U64P, _I64P, _I64, _U32P, _I64, _I64P, _U64P, _U64P, types.CPointer(types.uint16),
)  # fmt: skip
# void band_keys(sig, docs, num_perm, rows, starts, bands, keys)
BAND_KEYS = types.void(_U32P, _I64, _I64, _I64, _U64P, _I64, _U64P)
# void collapse_rows(data, starts, ends, flags, spans, collapse, out, offsets, tab)
COLLAPSE_ROWS = types.void(
    _U8P, _I64P, _I64P, _I64P, _I64, _I64, _U8P, _I64P, types.CPointer(types.uint16)
)
# collapse_rows flags per span: lower-case ASCII, ASCII punctuation runs as one space, a null
# (written as one NUL byte), a further column of the previous row (a \x1f written first)
LOWER, PUNCT, NULL, JOIN = 1, 2, 4, 8


@njit(inline="always")
def _fmix(h):
    h ^= h >> _S33
    h *= _C1
    h ^= h >> _S33
    h *= _C2
    return h ^ (h >> _S33)


@njit(inline="always")
def _bin(vals, x, k):
    """One-permutation MinHash: the high half of x picks the bin, the low half is the value
    (a branch-free minimum: which shingle lowers a bin is unpredictable)."""
    slot = ((x >> _S32) * k) >> _S32
    vals[slot] = min(vals[slot], x & _LOW32)


_SEP = np.uint16(0x100)  # in `tab`: the byte separates tokens
_UNI = np.uint16(0x200)  # in `tab`: the byte may start a multi-byte Unicode space


@njit(inline="always")
def _word_tokens(data, start, end, tab, toks):
    """Whitespace-separated tokens' polynomial hashes (minhash.hash_strings) into toks.
    tab[byte]: the byte as hashed (lower-cased where asked) | _SEP | _UNI, so an ordinary
    byte costs one table load and one well-predicted branch."""
    ntok = 0
    h = _ZERO
    pw = _ONE
    word = start  # where the current token starts: its length is i - word
    i = start
    while i < end:
        t = tab[data[i]]
        if t >= _SEP:
            width = 1 if t & _SEP else _unicode_space(data, i, end)
            if width:
                if i > word:
                    toks[ntok] = _fmix(h ^ (np.uint64(i - word) * _GOLDEN))
                    ntok += 1
                    h = _ZERO
                    pw = _ONE
                i += width
                word = i
                continue
        h += np.uint64(t & 0xFF) * pw
        pw *= _POLY
        i += 1
    if i > word:
        toks[ntok] = _fmix(h ^ (np.uint64(i - word) * _GOLDEN))
        ntok += 1
    return ntok


@njit(inline="always")
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


def sign_rows(
    data, starts, ends, rows, docs, lower, punct, unicode_ws, char_mode, n, mix, position,
    table, table_rows, sig, num_perm, counts, toks, vals, tab,
):  # fmt: skip
    """Signatures of documents data[starts[d]:ends[d]] into row rows[d] of sig (uint32,
    num_perm wide, pre-filled with 0xFFFFFFFF) and their shingle counts into counts[rows[d]].
    Scratch: toks (longest document's bytes), vals (num_perm), tab (256)."""
    k = np.uint64(num_perm)
    for c in range(256):
        kind = _CLASS[c]
        split = kind == 1 or (kind == 4 and punct != 0)
        low = c + 32 if lower and 65 <= c <= 90 else c
        spaces = unicode_ws != 0 and (c == 0xC2 or 0xE1 <= c <= 0xE3)
        tab[c] = np.uint16(low) | (_SEP if split else _ZERO16) | (_UNI if spaces else _ZERO16)
    for d in range(docs):
        if char_mode:
            ntok = _char_tokens(data, starts[d], ends[d], lower, punct, toks)
        else:
            ntok = _word_tokens(data, starts[d], ends[d], tab, toks)
        if ntok == 0:
            continue
        for j in range(num_perm):
            vals[j] = _EMPTY
        shingles = ntok - n + 1 if ntok >= n else 1
        width = n if ntok >= n else ntok
        if width == 5:  # the default n-gram: unrolled, the multipliers kept in registers
            p0, p1, p2, p3, p4 = position[0], position[1], position[2], position[3], position[4]
            for s in range(shingles):
                acc = toks[s] * p0 + toks[s + 1] * p1 + toks[s + 2] * p2
                acc += toks[s + 3] * p3 + toks[s + 4] * p4
                _bin(vals, _fmix(acc ^ mix), k)
        else:
            for s in range(shingles):
                acc = _ZERO
                for j in range(width):
                    acc += toks[s + j] * position[j]
                _bin(vals, _fmix(acc ^ mix), k)
        row = rows[d]
        counts[row] = shingles
        smallest = _EMPTY
        for j in range(num_perm):
            smallest = min(smallest, vals[j])
        out = row * num_perm
        for j in range(num_perm):  # optimal densification, as minhash.oph_signatures
            v = vals[j]
            if v == _EMPTY:
                v = smallest
                for t in range(table_rows):
                    w = vals[table[t * num_perm + j]]
                    if w != _EMPTY:
                        v = w
                        break
            sig[out + j] = np.uint32(v)


def band_keys(sig, docs, num_perm, rows, starts, bands, keys):
    """minhash.band_keys in one pass: keys[b, d] folds sig[d, b*rows:(b+1)*rows] into
    starts[b] (fmix of (key * golden) ^ value, slot by slot)."""
    for d in range(docs):
        for band in range(bands):
            key = starts[band]
            for j in range(band * rows, (band + 1) * rows):
                key = _fmix((key * _GOLDEN) ^ np.uint64(sig[d * num_perm + j]))
            keys[band * docs + d] = key


def collapse_rows(data, starts, ends, flags, spans, collapse, out, offsets, tab):
    """normalise()'s byte maps and whitespace step in one pass (exact fingerprints): span k,
    data[starts[k]:ends[k]], goes to out[offsets[k]:offsets[k + 1]] with, per flags[k], ASCII
    lower-cased, each ASCII punctuation run as one space, and (`collapse`) Arrow's Unicode
    whitespace runs as one space, none at either end (split + join + trim). out needs the
    spans' bytes plus 2 per span (a NUL for a null, a \x1f for a joined column).
    Scratch: tab (1024), one byte table per lower/punct combination (as sign_rows')."""
    for f in range(4):
        for c in range(256):
            kind = _CLASS[c]
            split = (collapse != 0 and kind == 1) or (kind == 4 and (f & 2) != 0)
            low = c + 32 if (f & 1) != 0 and 65 <= c <= 90 else c
            spaces = collapse != 0 and (c == 0xC2 or 0xE1 <= c <= 0xE3)
            tab[f * 256 + c] = (
                np.uint16(low) | (_SEP if split else _ZERO16) | (_UNI if spaces else _ZERO16)
            )
    o = 0
    offsets[0] = 0
    for k in range(spans):
        f = flags[k]
        if f & 8:
            out[o] = 31
            o += 1
        if f & 4:
            out[o] = 0
            offsets[k + 1] = o + 1
            o += 1
            continue
        base = (f & 3) * 256
        i = starts[k]
        end = ends[k]
        if collapse:  # a space written is always a separator's: collapse on the last byte
            first = o
            while i < end:
                t = tab[base + data[i]]
                if t >= _SEP:
                    width = 1 if t & _SEP else _unicode_space(data, i, end)
                    if width:
                        if o > first and out[o - 1] != 32:
                            out[o] = 32
                            o += 1
                        i += width
                        continue
                out[o] = np.uint8(t & 0xFF)
                o += 1
                i += 1
            if o > first and out[o - 1] == 32:  # no space at the end (trim)
                o -= 1
        else:
            in_punct = False
            while i < end:
                t = tab[base + data[i]]
                if t & _SEP:  # punctuation (whitespace is no separator here)
                    if not in_punct:
                        out[o] = 32
                        o += 1
                    in_punct = True
                else:
                    in_punct = False
                    out[o] = np.uint8(t & 0xFF)
                    o += 1
                i += 1
        offsets[k + 1] = o


# numba's own calling convention, no Python or C wrappers, no reference counting: the machine
# code then references nothing but LLVM intrinsics (native.check_ir refuses anything else).
_NATIVE = {"no_cpython_wrapper": True, "no_cfunc_wrapper": True, "_nrt": False, "nogil": True}
KERNELS = (
    ("sign_rows", sign_rows, SIGN_ROWS),
    ("band_keys", band_keys, BAND_KEYS),
    ("collapse_rows", collapse_rows, COLLAPSE_ROWS),
)


def build() -> tuple[dict[str, str], list[bytes]]:
    """({name: symbol}, object codes) of every kernel, compiled by numba for this machine
    (seconds of CPU: once per native.key)."""
    symbols, objects = {}, []
    for name, func, sig in KERNELS:
        dispatcher = njit(sig, **_NATIVE)(func)
        result = dispatcher.overloads[sig.args]
        native.check_ir(result.library.get_llvm_str())
        symbols[name] = result.fndesc.llvm_func_name
        objects.append(result.library.serialize_using_object_code()[2][0])
    return symbols, objects
