"""A dedup benchmark corpus of short documents cut from real text, with planted duplicates.

Each original document is 1-4 KB of lines drawn at random from the unique lines (>= 20
characters) of this machine's licences, `/usr/share/doc/*/copyright` files and man pages
(roff source), so its words, lengths and punctuation are real; two originals share a 5-word
shingle only where they happen to draw the same line. Then, as in `bench_dedup.generate`:
~10% exact copies of an earlier document and ~15% near copies whose 5-shingle Jaccard with
the copied document is 0.82-0.98 (random words replaced by words of the pool). Every document
is tagged with its cluster (the index of its original), which scores precision and recall.
"""

from __future__ import annotations

import glob
import gzip
from pathlib import Path

import numpy as np

SOURCES = (
    "/usr/share/common-licenses/*",
    "/usr/share/doc/*/copyright",
    "/usr/share/man/man*/*.gz",
)


def real_lines() -> list[str]:
    """The unique stripped lines of >= 20 characters of the machine's real text, sorted."""
    lines: set[str] = set()
    for pattern in SOURCES:
        for path in sorted(glob.glob(pattern)):
            try:
                raw = gzip.open(path).read() if path.endswith(".gz") else Path(path).read_bytes()
            except OSError:
                continue
            for line in raw.decode("utf-8", "replace").splitlines():
                line = line.strip()
                if len(line) >= 20:
                    lines.add(line)
    return sorted(lines)


def fragments(
    n_docs: int, seed: int, doc_bytes: tuple[int, int] = (1000, 4000)
) -> tuple[list[str], list[int]]:
    """(texts, cluster id per text) as described in the module docstring."""
    rng = np.random.default_rng(seed)
    pool = np.array(real_lines(), dtype=object)
    if len(pool) < 1000:
        raise SystemExit("too little real text on this machine (/usr/share/doc, /usr/share/man)")
    sizes = np.fromiter((len(s) + 1 for s in pool), dtype=np.int64, count=len(pool))
    words = np.array(" ".join(pool[rng.integers(len(pool), size=20000)]).split(), dtype=object)
    texts: list[str] = []
    clusters: list[int] = []
    for i in range(n_docs):
        kind = rng.random()
        if i > 10 and kind < 0.10:  # exact copy
            j = int(rng.integers(len(texts)))
            texts.append(texts[j])
            clusters.append(clusters[j])
        elif i > 10 and kind < 0.25:  # near copy at J in [0.82, 0.98]
            j = int(rng.integers(len(texts)))
            toks = texts[j].split()
            target = rng.uniform(0.82, 0.98)
            edits = max(1, int(round((1 - target) / (1 + target) * (len(toks) - 4) / 5)))
            for pos, new in zip(
                rng.choice(len(toks), min(edits, len(toks)), replace=False),
                words[rng.integers(len(words), size=edits)],
                strict=False,
            ):
                toks[pos] = new
            texts.append(" ".join(toks))
            clusters.append(clusters[j])
        else:
            target = int(rng.integers(*doc_bytes))
            picks = rng.integers(len(pool), size=128)
            count = int(np.searchsorted(np.cumsum(sizes[picks]), target)) + 1
            texts.append("\n".join(pool[picks[:count]]))
            clusters.append(i)
    return texts, clusters
