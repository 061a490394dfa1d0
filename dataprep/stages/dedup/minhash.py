"""Shingles and MinHash signatures as whole-array operations, plus LSH band keys.

Two signature modes:

* ``fast`` (default): tokens are hashed once per distinct token (vectorised polynomial hash
  over the Arrow string buffer), word n-gram hashes are built from shifted token-hash arrays,
  and the signature is a one-permutation MinHash (one 64-bit hash per shingle picks a bin and
  a value; per-bin minima; empty bins filled by optimal densification). That is O(shingles +
  num_perm) per document instead of O(shingles x num_perm), and estimates Jaccard with the
  same accuracy as classic MinHash (tested against datasketch and brute force).
* ``datasketch``: the same shingles fed to ``datasketch.MinHash`` (scheme affine32: SHA-1
  32-bit hash, MurmurHash3 fmix32, a*h+b mod 2^32) give exactly these signatures.

Shingles: the normalised text split on whitespace (or into characters with ``char_ngram``),
each run of n consecutive tokens joined by one space; a document with 1..n-1 tokens has one
shingle (all its tokens); a document without tokens has none and is never a near-duplicate.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataprep import arrow_np

from .normalise import normalise
from .params import (  # noqa: F401 (re-exported: the names tests and callers use)
    _C1,
    _C2,
    _DENSIFY,
    _GOLDEN,
    _POLY,
    _POSITION,
    _S33,
    M64,
    SENTINEL,
    U64,
    _densify_table,
    _string_buffers,
    fmix64,
    seed_mix,
)

# ---------------------------------------------------------------- tokens (fast mode)


def _is_ascii_space(raw: np.ndarray) -> np.ndarray:  # \x1c-\x1f too: as the Unicode path
    return (raw == 32) | ((raw - np.uint8(9)) <= 4) | ((raw - np.uint8(28)) <= 3)


def hash_strings(arr: pa.Array, trim_space: bool = False) -> np.ndarray:
    """One uint64 per string of a (non-null) StringArray, from its raw buffers, no Python loop.

    With `trim_space`, ASCII whitespace bytes are skipped, so "word", "word " and "word\n"
    hash alike (used for tokens cut with their trailing whitespace).
    """
    n = len(arr)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    offsets, raw = _string_buffers(arr)
    first, last = int(offsets[0]), int(offsets[-1])
    lengths = np.diff(offsets)
    nbytes = last - first
    data = raw[first:last]
    # Polynomial hash sum(byte_i * P^i) mod 2^64, one reduceat over all bytes.
    starts = offsets[:-1] - first
    pos = np.arange(nbytes, dtype=np.int64) - np.repeat(starts, lengths)
    maxlen = int(lengths.max()) if n else 0
    powers = np.empty(max(maxlen, 1), dtype=np.uint64)
    powers[0] = 1
    if maxlen > 1:
        powers[1:] = np.cumprod(np.full(maxlen - 1, _POLY, dtype=np.uint64))
    terms = np.zeros(nbytes + 1, dtype=np.uint64)
    terms[:nbytes] = data.astype(np.uint64) * powers[pos]
    if trim_space:
        space = _is_ascii_space(data)
        terms[:nbytes][space] = 0
        kept = np.zeros(nbytes + 1, dtype=np.int64)
        kept[:nbytes] = ~space
        lengths = np.add.reduceat(kept, np.minimum(starts, nbytes))
        lengths[np.diff(offsets) == 0] = 0
    sums = np.add.reduceat(terms, np.minimum(starts, nbytes))
    sums[np.diff(offsets) == 0] = 0
    return fmix64(sums ^ (lengths.astype(np.uint64) * _GOLDEN))


def _encode_tokens(tokens: pa.Array, trim_space: bool) -> np.ndarray:
    """Token hashes, hashing each distinct token once (Arrow's dictionary encoding)."""
    encoded = pc.dictionary_encode(tokens)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    distinct = hash_strings(encoded.dictionary, trim_space)
    return distinct[arrow_np.ints(encoded.indices)]


def _ascii_tokens(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """ASCII fast path: token boundaries from one byte mask, no list array.

    Each token is cut from its first byte to the next token's first byte (so it carries its
    trailing whitespace, which hashing skips); the cuts are offsets into the text's own data
    buffer, so the token array costs no copy.
    """
    offsets, raw = _string_buffers(text)
    first, last = int(offsets[0]), int(offsets[-1])
    space = _is_ascii_space(raw[first:last])
    rel = offsets - first
    before = np.empty_like(space)  # is the previous byte a space (or a document start)?
    if len(space):
        before[0] = True
        before[1:] = space[:-1]
        before[rel[:-1][rel[:-1] < len(space)]] = True
    np.greater(before, space, out=before)  # token start: not a space, after a space
    starts = np.flatnonzero(before)
    doc_offsets = np.searchsorted(starts, rel).astype(np.int64)
    if len(starts) == 0:
        return doc_offsets, np.zeros(0, dtype=np.uint64)
    cuts = np.append(starts + first, last).astype(np.int32)
    tokens = pa.StringArray.from_buffers(len(starts), pa.py_buffer(cuts), text.buffers()[2])
    return doc_offsets, _encode_tokens(tokens, trim_space=True)


def word_tokens(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets[n+1], token hashes), each distinct word hashed once (rtrim: Arrow 26's split
    reads past a last string that ends in whitespace, into the buffer's padding)."""
    if pa.types.is_large_string(text.type):
        text = text.cast(pa.string())
    if text.null_count == 0 and pc.all(pc.string_is_ascii(text)).as_py() is not False:
        return _ascii_tokens(text)
    lists = pc.utf8_split_whitespace(pc.utf8_rtrim_whitespace(text))
    flat = pc.list_flatten(lists)
    parents = arrow_np.ints(pc.list_parent_indices(lists))
    nonempty = arrow_np.ints(pc.binary_length(flat)) > 0  # "" at leading/trailing space
    if not nonempty.all():
        flat = pc.filter(flat, arrow_np.mask(nonempty))
        parents = parents[nonempty]
    lengths = np.bincount(parents, minlength=len(text))
    offsets = np.zeros(len(text) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if len(flat) == 0:
        return offsets, np.zeros(0, dtype=np.uint64)
    return offsets, _encode_tokens(flat, trim_space=False)


def char_tokens(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets[n+1], code-point hashes): characters as tokens, for CJK and code."""
    docs = [s or "" for s in text.to_pylist()]
    lengths = np.fromiter((len(s) for s in docs), dtype=np.int64, count=len(docs))
    offsets = np.zeros(len(docs) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    points = np.frombuffer("".join(docs).encode("utf-32-le"), dtype=np.uint32)
    return offsets, fmix64(points.astype(np.uint64) + _GOLDEN)


def shingle_hashes(
    offsets: np.ndarray, tokens: np.ndarray, n: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(owner doc per shingle, shingle hashes, shingle count per doc) from token hashes.

    A shingle at token i is sum_k tokens[i+k] * M_k over shifted whole arrays; starts too close
    to a document's end are masked out afterwards, and documents shorter than n tokens get
    their one all-token shingle from a small separate pass.
    """
    lengths = np.diff(offsets)
    total = len(tokens)
    docs = len(lengths)
    counts = np.where(lengths >= n, lengths - n + 1, (lengths > 0).astype(np.int64))
    mix = seed_mix(seed)
    long_docs = np.flatnonzero(lengths >= n)
    acc = tokens * _POSITION[0]
    scratch = np.empty_like(acc)
    for k in range(1, min(n, total)):
        part = scratch[: total - k]
        np.multiply(tokens[k:], _POSITION[k], out=part)
        np.add(acc[: total - k], part, out=acc[: total - k])
    # Valid starts: all tokens but each long doc's last n-1 and every short doc's tokens.
    valid = np.ones(total, dtype=bool)
    tails = offsets[1:][long_docs][:, None] - np.arange(1, n)[None, :]
    valid[tails.ravel()] = False
    short_tokens = lengths < n
    if short_tokens.any():
        valid[np.repeat(short_tokens, lengths)] = False
    owner_long = np.repeat(np.arange(docs, dtype=np.int64)[long_docs], counts[long_docs])
    hashes = acc[valid]
    short = np.flatnonzero((lengths > 0) & (lengths < n))
    if len(short) == 0:
        return owner_long, fmix64(hashes ^ mix), counts
    short_acc = np.zeros(len(short), dtype=np.uint64)
    starts, short_len = offsets[short], lengths[short]
    for k in range(n - 1):
        inside = short_len > k
        short_acc[inside] += tokens[starts[inside] + k] * _POSITION[k]
    owner = np.concatenate([owner_long, short])
    return owner, fmix64(np.concatenate([hashes, short_acc]) ^ mix), counts


def oph_signatures(
    owner: np.ndarray, hashes: np.ndarray, docs: int, num_perm: int, seed: int
) -> np.ndarray:
    """One-permutation MinHash with optimal densification: (docs, num_perm) uint32."""
    k = U64(num_perm)
    bins = (((hashes >> U64(32)) * k) >> U64(32)).astype(np.int64)
    values = hashes & U64(0xFFFFFFFF)
    flat = np.full(docs * num_perm, 1 << 32, dtype=np.uint64)
    np.minimum.at(flat, owner * num_perm + bins, values)
    sig = flat.reshape(docs, num_perm)
    empty = sig == U64(1 << 32)
    has_any = ~empty.all(axis=1)
    rows, cols = np.nonzero(empty & has_any[:, None])
    if rows.size:
        original = sig.copy()
        table = _densify_table(num_perm, seed)
        for attempt in range(table.shape[0]):
            values_from = original[rows, table[attempt, cols]]
            ok = values_from != U64(1 << 32)
            sig[rows[ok], cols[ok]] = values_from[ok]
            rows, cols = rows[~ok], cols[~ok]
            if rows.size == 0:
                break
        if rows.size:  # astronomically rare: take the doc's smallest value
            masked = np.where(original == U64(1 << 32), U64(M64), original)
            sig[rows, cols] = masked.min(axis=1)[rows]
    sig[~has_any] = U64(0xFFFFFFFF)
    return sig.astype(np.uint32)


def kernel_module():
    """dedup/kernel.py, its machine code mapped (on first use), or None where it cannot be
    built or loaded (NativeError) or DATAPREP_DEDUP_KERNEL=numpy: the numpy path then runs."""
    global _KERNEL
    if _KERNEL is False:
        _KERNEL = None
        if os.environ.get("DATAPREP_DEDUP_KERNEL", "auto") != "numpy":
            try:
                from . import kernel

                kernel.load()
            except (ImportError, RuntimeError):
                pass
            else:
                _KERNEL = kernel
    return _KERNEL


_KERNEL: Any = False
# The kernel signs ~5-8x faster per byte than the numpy path (same values); built once per
# machine (numba: ~5 s CPU), mapped per process in ~0.02 s (native.py). The driver decides from
# the text per worker (Parquet bytes x one footer's text/file ratio): from KERNEL_BUILT_MIN_...
# once built (cold: 0.9x the numpy path's CPU at 1 MB, 1.4x at 5 MB); a build only from
# KERNEL_MIN_... (small runs never wait for a compiler). DATAPREP_DEDUP_KERNEL=numba|numpy.
KERNEL_MIN_TEXT_BYTES_PER_WORKER = 32 << 20
KERNEL_BUILT_MIN_TEXT_BYTES_PER_WORKER = 2 << 20


def kernel_pays(text_bytes_per_worker: float) -> bool:
    """Whether signing this much text (bytes, uncompressed) per worker repays the kernel's
    start (and its build where this machine has none yet: `kernel.is_built`, a file read)."""
    if text_bytes_per_worker >= KERNEL_MIN_TEXT_BYTES_PER_WORKER:
        return True
    if text_bytes_per_worker < KERNEL_BUILT_MIN_TEXT_BYTES_PER_WORKER:
        return False
    from . import kernel  # no numba, no llvmlite at import

    return os.environ.get("DATAPREP_DEDUP_KERNEL") != "numpy" and kernel.is_built()


def _kernel_for(compiled: bool) -> Any:
    """The kernel when the driver chose it (or DATAPREP_DEDUP_KERNEL=numba), else None."""
    choice = os.environ.get("DATAPREP_DEDUP_KERNEL", "auto")
    return kernel_module() if compiled or choice == "numba" else None


def fast_signatures(
    text: pa.Array, num_perm: int, seed: int, ngram: int, char_ngram: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """(signatures (docs, num_perm) uint32, shingle counts) of normalised text: kernel or numpy."""
    kernel = kernel_module()
    if kernel is not None:
        return kernel.signatures(text, num_perm, seed, ngram, char_ngram)
    return numpy_signatures(text, num_perm, seed, ngram, char_ngram)


def sign_text(
    text: pa.Array | pa.ChunkedArray,
    steps: Sequence[str],
    signature: str,
    num_perm: int,
    seed: int,
    ngram: int,
    char_ngram: int | None,
    compiled: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Normalise (`steps`, nulls as "") and sign one batch: fast mode with the kernel
    (`compiled`, see `kernel_pays`) normalises ASCII documents inside its pass, every other
    way goes through `normalise`; both give the same values."""
    kernel = _kernel_for(compiled) if signature == "fast" else None
    if kernel is not None:
        return kernel.sign_text(text, steps, num_perm, seed, ngram, char_ngram)
    signer = numpy_signatures if signature == "fast" else datasketch_signatures
    norm = pc.fill_null(normalise(text, steps), arrow_np.string(""))  # a str: pandas import
    return signer(norm, num_perm, seed, ngram, char_ngram)


def numpy_signatures(
    text: pa.Array, num_perm: int, seed: int, ngram: int, char_ngram: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """The whole-array implementation: the reference for the kernel, and its fallback."""
    if char_ngram:
        offsets, tokens = char_tokens(text)
        n = char_ngram
    else:
        offsets, tokens = word_tokens(text)
        n = ngram
    owner, hashes, counts = shingle_hashes(offsets, tokens, n, seed)
    return oph_signatures(owner, hashes, len(counts), num_perm, seed), counts


# ---------------------------------------------------------------- datasketch-equal mode

_FMIX32 = (np.uint32(16), np.uint32(0x85EBCA6B), np.uint32(13), np.uint32(0xC2B2AE35))


def datasketch_permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch 2.x affine32 parameters: the same RandomState draws, in the same order."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def shingle_strings(text: str, n: int, char_ngram: int | None) -> list[bytes]:
    """The shingles of one normalised document, as datasketch would be fed them."""
    if char_ngram:
        k = char_ngram
        if not text:
            return []
        if len(text) < k:
            return [text.encode()]
        return [text[i : i + k].encode() for i in range(len(text) - k + 1)]
    words = text.split()
    if not words:
        return []
    if len(words) < n:
        return [" ".join(words).encode()]
    return [" ".join(words[i : i + n]).encode() for i in range(len(words) - n + 1)]


def datasketch_signatures(
    text: pa.Array, num_perm: int, seed: int, ngram: int, char_ngram: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Signatures equal to datasketch.MinHash(num_perm, seed).update_batch(shingles)."""
    a, b = datasketch_permutations(num_perm, seed)
    docs = text.to_pylist()
    sig = np.full((len(docs), num_perm), SENTINEL, dtype=np.uint32)
    counts = np.zeros(len(docs), dtype=np.int64)
    s1, m1, s2, m2 = _FMIX32
    sha1 = hashlib.sha1
    for i, doc in enumerate(docs):
        shingles = shingle_strings(doc or "", ngram, char_ngram)
        counts[i] = len(shingles)
        if not shingles:
            continue
        digests = b"".join(sha1(s).digest()[:4] for s in shingles)
        hv = np.frombuffer(digests, dtype="<u4").astype(np.uint32)
        hv = hv ^ (hv >> s1)
        hv = hv * m1
        hv = hv ^ (hv >> s2)
        hv = hv * m2
        hv = hv ^ (hv >> s1)
        sig[i] = (hv[:, None] * a + b).min(axis=0)
    return sig, counts


# ---------------------------------------------------------------- bands and estimates


def band_keys(sig: np.ndarray, bands: int, rows: int, seed: int) -> np.ndarray:
    """(bands, docs) uint64: each band's r values folded into one 64-bit bucket key."""
    docs = sig.shape[0]
    starts = [fmix64(np.array([seed_mix(seed) + U64(band + 1)]))[0] for band in range(bands)]
    if _KERNEL:  # loaded by this process's signing already: the same keys, no start cost
        return _KERNEL.band_keys(sig, rows, np.array(starts, dtype=np.uint64))
    keys = np.empty((bands, docs), dtype=np.uint64)
    wide = sig.astype(np.uint64)
    for band in range(bands):
        key = np.full(docs, starts[band])
        for j in range(band * rows, (band + 1) * rows):
            key = fmix64((key * _GOLDEN) ^ wide[:, j])
        keys[band] = key
    return keys


def estimate(sig_a: np.ndarray, sig_b: np.ndarray) -> np.ndarray:
    """Estimated Jaccard: the fraction of equal signature slots (row-wise for 2-D inputs)."""
    return (sig_a == sig_b).mean(axis=-1)
