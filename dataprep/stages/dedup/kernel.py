"""Fast-mode MinHash signatures as one compiled pass over Arrow string buffers.

WHY: the numpy path (`minhash.numpy_signatures`) makes ~20 whole-array passes per batch
(token masks, dictionary encoding, shifted shingle sums, a scatter-min); on long documents it
is memory-bound. Here one loop per document (`kernel_source.py`, compiled by numba) tokenises,
hashes tokens, combines shingles and fills the one-permutation bins while the document is in
cache. Its machine code is built once per machine and then loaded with llvmlite alone
(`dataprep/native.py`): a process pays ~0.02 s, not numba's ~0.35 s start. The values are
bit-identical to the numpy path, which stays as the reference and the fallback
(tests/test_dedup_kernel.py).

`sign_text` also normalises: NFKC, lower-casing and punctuation of an ASCII document are byte
maps (NFKC leaves ASCII as it is), done in the loop; only non-ASCII documents go through
Arrow's Unicode normalisation first. `collapse_rows` does the same byte maps and the whitespace
step for exact fingerprints (`exact.py`).
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataprep import arrow_np, native

from . import params
from .normalise import normalise

_HERE = Path(__file__).resolve().parent  # the compiled sources (utf8_space imports numba)
_SOURCES = (_HERE / "kernel_source.py", _HERE.parents[1] / "utf8_space.py", _HERE / "params.py")
_P, _I, _U = ctypes.c_void_p, ctypes.c_int64, ctypes.c_uint64
_ARGS = {
    "sign_rows": (_P, _P, _P, _P, _I, _I, _I, _I, _I, _I, _U, _P, _P, _I, _P, _I, _P, _P, _P, _P),
    "band_keys": (_P, _I, _I, _I, _P, _I, _P),
    "collapse_rows": (_P, _P, _P, _P, _I, _I, _P, _P, _P),
}


def cache_path() -> Path:
    """Where this machine's build of the kernels is (or will be) kept."""
    return native.cache_file("dedup-kernel", native.key(_SOURCES), _SOURCES[0])


def is_built() -> bool:
    """Whether this machine has a build of the kernels (so loading them is a file read, not a
    numba compilation): a file name check, so the driver imports neither numba nor llvmlite."""
    try:
        return native.has_build("dedup-kernel", native.code_key(_SOURCES), _SOURCES[0])
    except (native.NativeError, OSError):
        return False


def load() -> None:
    """Map the kernels into this process: from this machine's build, built first if missing
    (numba compiles, ~5 s of CPU once); NativeError where neither can be done (callers then
    use the numpy path)."""
    if _FUNCS:
        return
    path = cache_path()
    saved = native.read(path)
    if saved is None:
        from . import kernel_source  # numba: imported only to build

        saved = kernel_source.build()
        try:
            native.save(path, *saved)
        except OSError:  # read-only or full disk: this process still uses its build
            pass
    addresses = native.load(*saved)
    _FUNCS.update({name: native.function(addresses[name], _ARGS[name]) for name in _ARGS})


_FUNCS: dict[str, ctypes._CFuncPtr] = {}
_STATUS_OK = (0, -2)  # numba's native convention: 0 ok, -2 returned None


def _check(ok: bool) -> None:
    if not ok:
        raise ValueError("dedup kernel called with inconsistent arrays")


def _ptr(array: np.ndarray) -> int:
    return array.ctypes.data


def _call(name: str, *args: object) -> None:
    load()
    scratch = np.zeros(2, np.uint64)  # numba's return slot and exception slot: unused here
    status = _FUNCS[name](_ptr(scratch), _ptr(scratch[1:]), *args)
    if status not in _STATUS_OK:
        raise RuntimeError(f"dedup kernel {name} failed (status {status})")


def sign_rows(
    data: np.ndarray, starts: np.ndarray, ends: np.ndarray, rows: np.ndarray, lower: bool,
    punct: bool, unicode_ws: bool, char_mode: bool, n: int, mix: np.uint64,
    table: np.ndarray, sig: np.ndarray, counts: np.ndarray,
) -> None:  # fmt: skip
    """Signatures of documents data[starts[d]:ends[d]] into sig[rows[d]] (uint32 rows,
    pre-filled with 0xFFFFFFFF) and their shingle counts into counts[rows[d]]."""
    starts = np.ascontiguousarray(starts, np.int64)
    ends = np.ascontiguousarray(ends, np.int64)
    rows = np.ascontiguousarray(rows, np.int64)
    table = np.ascontiguousarray(table, np.int64)
    position = np.ascontiguousarray(params._POSITION, np.uint64)
    data = np.ascontiguousarray(data, np.uint8)
    docs, num_perm = len(rows), sig.shape[1]
    longest = int((ends - starts).max()) if docs else 0
    _check(  # raw pointers, no bounds checks inside: every index is checked here
        sig.flags.c_contiguous and sig.dtype == np.uint32 and counts.shape == (len(sig),)
        and counts.dtype == np.int64 and counts.flags.c_contiguous
        and len(starts) == len(ends) == docs and table.ndim == 2 and table.shape[1] == num_perm
        and 1 <= n <= len(position) and num_perm >= 1
        and (docs == 0 or (starts.min() >= 0 and longest >= 0 and ends.max() <= len(data)
                           and rows.min() >= 0 and rows.max() < len(sig)))
        and _table_fits(table, num_perm)
    )  # fmt: skip
    toks = np.empty(max(longest, 1), np.uint64)
    vals = np.empty(num_perm, np.uint64)
    tab = np.empty(256, np.uint16)
    _call(
        "sign_rows", _ptr(data), _ptr(starts), _ptr(ends), _ptr(rows), docs, int(lower),
        int(punct), int(unicode_ws), int(char_mode), n, int(mix), _ptr(position), _ptr(table),
        table.shape[0], _ptr(sig), num_perm, _ptr(counts), _ptr(toks), _ptr(vals), _ptr(tab),
    )  # fmt: skip


_FITTING: dict[tuple[int, int], np.ndarray] = {}  # (id, num_perm) -> a read-only table checked


def _table_fits(table: np.ndarray, num_perm: int) -> bool:
    """Whether every densify-table entry is a bin in [0, num_perm); a read-only table (the
    cached one, `params._densify_table`, made read-only by `_run`) is scanned once per
    process, not once per batch (2 MB twice per 2,048 documents: ~0.5% of the stage)."""
    key = (id(table), num_perm)
    if _FITTING.get(key) is table:
        return True
    fits = table.size == 0 or bool(table.min() >= 0 and table.max() < num_perm)
    if fits and not table.flags.writeable:
        _FITTING[key] = table
    return fits


def band_keys(sig: np.ndarray, rows: int, starts: np.ndarray) -> np.ndarray:
    """minhash.band_keys in one pass: keys[b, d] folds sig[d, b*rows:(b+1)*rows] into
    starts[b] (fmix of (key * golden) ^ value, slot by slot)."""
    sig = np.ascontiguousarray(sig, np.uint32)
    starts = np.ascontiguousarray(starts, np.uint64)
    bands, (docs, num_perm) = len(starts), sig.shape
    _check(rows >= 0 and bands * rows <= num_perm)
    keys = np.empty((bands, docs), np.uint64)
    _call("band_keys", _ptr(sig), docs, num_perm, rows, _ptr(starts), bands, _ptr(keys))
    return keys


def collapse_rows(
    data: np.ndarray, starts: np.ndarray, ends: np.ndarray, flags: np.ndarray, collapse: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(bytes, offsets (spans + 1) int64) of kernel_source.collapse_rows over the spans."""
    starts = np.ascontiguousarray(starts, np.int64)
    ends = np.ascontiguousarray(ends, np.int64)
    flags = np.ascontiguousarray(flags, np.int64)
    data = np.ascontiguousarray(data, np.uint8)
    spans = len(starts)
    _check(
        len(ends) == len(flags) == spans
        and (spans == 0 or (starts.min() >= 0 and (ends >= starts).all()
                            and ends.max() <= len(data)))
    )  # fmt: skip
    out = np.empty(int((ends - starts).sum()) + 2 * spans + 1, np.uint8)
    offsets = np.empty(spans + 1, np.int64)
    tab = np.empty(1024, np.uint16)
    _call(
        "collapse_rows", _ptr(data), _ptr(starts), _ptr(ends), _ptr(flags), spans,
        int(collapse), _ptr(out), _ptr(offsets), _ptr(tab),
    )  # fmt: skip
    return out, offsets


def _spans(text: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(data, starts, ends) of a StringArray's buffers; a null row is an empty span."""
    offsets, data = params._string_buffers(text)
    starts, ends = offsets[:-1].copy(), offsets[1:].copy()
    if text.null_count:
        null = ~arrow_np.valid(text)
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
    table.flags.writeable = False  # the cached table, shared by every batch: checked once
    for text, pick, rows, lower, punct in parts:
        if len(rows) == 0:
            continue
        data, starts, ends = _spans(text)
        if pick is not None:
            starts, ends = starts[pick], ends[pick]
        sign_rows(
            data, starts, ends, rows, lower, punct, unicode_ws, bool(char_ngram), n, mix, table,
            sig, counts,
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
    return pc.binary_join(pa.ListArray.from_arrays(lines.offsets, flat), arrow_np.string("\n"))


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
        norm = pc.fill_null(normalise(text, steps), arrow_np.string(""))
        return signatures(norm, num_perm, seed, ngram, char_ngram)
    ascii_rows = arrow_np.bools(pc.string_is_ascii(text), null=False)
    others = np.flatnonzero(arrow_np.valid(text) & ~ascii_rows)
    rest = _normalise_lines(text.take(arrow_np.int64s(others)), steps)
    ascii_index = np.flatnonzero(ascii_rows)
    parts = [
        (text, ascii_index, ascii_index, "lowercase" in steps, "punctuation" in steps),
        (rest, None, others, False, False),
    ]
    unicode_ws = not _all_ascii(rest)
    return _run(parts, len(text), unicode_ws, num_perm, seed, ngram, char_ngram)
