"""Forget the quality kernels' cached machine code when any of their sources changed.

WHY: numba's on-disk cache (`cache=True`) keys a function by the bytes of its own file only.
`kernels.scan` compiles in code from kernels_ngrams.py, kernels_spacy.py (with spaCy's tables
from spacy_en.py and its JSON frozen in as constants) and dataprep/utf8_space.py: after an
edit or an upgrade that changes one of those and not kernels.py, numba would load the old
machine code, and the signals would silently be the old ones. Each kernel module calls
`forget_stale` on import: it flushes the module's cached functions when the digest of all
these sources differs from the one written beside the cache the last time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
SOURCES = (
    _HERE / "kernels.py",
    _HERE / "kernels_lines.py",
    _HERE / "kernels_memo.py",
    _HERE / "kernels_ngrams.py",
    _HERE / "kernels_spacy.py",
    _HERE / "kernels_views.py",
    _HERE / "spacy_en.py",
    _HERE / "spacy_en_exceptions.json",
    _HERE.parent / "utf8_space.py",
)


def digest(sources: Sequence[Path] = SOURCES) -> str:
    """The sha256 of every source the compiled kernels are built from."""
    h = hashlib.sha256()
    for path in sources:
        h.update(path.name.encode() + b"\0")
        try:
            h.update(path.read_bytes())
        except OSError:
            h.update(b"missing")
    return h.hexdigest()


def forget_stale(*namespaces: dict[str, Any], sources: Sequence[Path] = SOURCES) -> int:
    """Flush the on-disk cache of the compiled functions defined in the modules whose globals
    are `namespaces` when the sources changed since it was written; returns how many were
    flushed (0 when up to date, or when numba keeps no cache it can say where)."""
    cached = []
    for namespace in namespaces:
        for value in namespace.values():
            cache = getattr(value, "_cache", None)
            func = getattr(value, "py_func", None)
            if func is None or func.__module__ != namespace["__name__"]:
                continue
            if hasattr(cache, "_cache_path"):
                cached.append(cache)
    if not cached:
        return 0
    name = namespaces[0]["__name__"].rsplit(".", 1)[-1]
    stamp = Path(cached[0]._cache_path) / f"{name}.sources"
    want = digest(sources)
    try:
        if stamp.read_text() == want:
            return 0
    except OSError:
        pass
    try:
        for cache in cached:
            cache.flush()
        stamp.write_text(want)
    except OSError:
        pass  # no writable cache: numba compiles in memory anyway
    return len(cached)
