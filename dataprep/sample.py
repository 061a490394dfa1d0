"""Deterministic synthetic corpus with known ground truth for every pipeline stage.

Real corpora are large, licensed and carry no ground truth, so stages cannot be
scored on them. This module writes a small corpus whose defects are known by
construction:

* skewed source sizes (``web`` 55% ... ``news`` 3%) so resampling has work to do;
* a rare label (~1% ``rare`` vs ``common``) so stratified partitioning can be checked;
* exact duplicates (~8%) and near duplicates (~12%, 5-word-shingle Jaccard ~0.75-0.95
  with their original) tagged with a ``cluster`` id so dedup precision/recall can be scored;
* a handful of malformed lines (broken JSON, missing ``text``, non-string ``text``,
  invalid UTF-8) so ingestion must be robust.

Everything is drawn from one ``numpy.random.default_rng(seed)``, and the files are
compressed in one shot without timestamps, so one seed always yields byte-identical files.

Row index convention (what ``cluster`` refers to): good rows are numbered from 0 in the
order met when reading the files in ``summary["files"]`` order (alphabetical), line by
line, skipping malformed lines. A row's ``cluster`` is the index of its cluster's
original document; an original (or unique) document has ``cluster`` equal to its own index.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zstandard

from dataprep.errors import DataprepError

# Alphabetical, because the row index convention follows file-name order.
SOURCE_SHARES: tuple[tuple[str, float], ...] = (
    ("books", 0.25),
    ("code", 0.10),
    ("forum", 0.07),
    ("news", 0.03),
    ("web", 0.55),
)
# Beta(a, b) per source: gives quality filters a source-dependent signal.
QUALITY_BETA: dict[str, tuple[float, float]] = {
    "books": (8.0, 2.0),
    "code": (5.0, 3.0),
    "forum": (2.5, 3.5),
    "news": (6.0, 2.0),
    "web": (3.0, 3.0),
}
EXACT_SHARE = 0.08
NEAR_SHARE = 0.12
RARE_SHARE = 0.01
MIN_WORDS, MAX_WORDS = 80, 400
MAX_CLUSTER = 5
NEAR_JACCARD = (0.77, 0.93)
SHINGLE = 5
ZSTD_LEVEL = 10
MALFORMED_KINDS = ("broken_json", "missing_text", "nonstring_text", "invalid_utf8")

# Real high-frequency words head the Zipf ranking so the prose reads English-ish.
FUNCTION_WORDS: tuple[str, ...] = (
    "the of and to a in is that for it as was with be by on not he this are or his from at "
    "which but have an they you were her she there one all we their been has would when "
    "will more if no out so said what up its about into than them can only other new some "
    "could time these two may then do first any my now such like our over man me even most "
    "made after also did many before must through back years where much your way well down "
    "should because each just those people how too little state good very make world still "
    "own see men work long get here between both life being under never day same another "
    "know while last might us great old year off come since against go came right used take"
).split()
SYLLABLES: tuple[str, ...] = tuple(
    c + v
    for c in (
        "b",
        "c",
        "d",
        "f",
        "g",
        "h",
        "k",
        "l",
        "m",
        "n",
        "p",
        "r",
        "s",
        "t",
        "v",
        "z",
        "br",
        "ch",
        "st",
        "tr",
        "pl",
        "gr",
        "sh",
        "th",
    )
    for v in ("a", "e", "i", "o", "u", "ai", "ea", "ou")
)
CODAS: tuple[str, ...] = ("", "", "", "n", "r", "s", "t", "l", "nd", "st", "ck", "m")


@dataclass
class _Doc:
    """One good row before placement; ``origin`` is the generation index of its original."""

    text: str
    origin: int
    label: str


def _build_vocab(rng: np.random.Generator, size: int = 5000) -> tuple[list[str], np.ndarray]:
    """Return words and their Zipf CDF; a large tail keeps unrelated docs' shingles disjoint."""
    words = list(FUNCTION_WORDS)
    seen = set(words)
    while len(words) < size:
        n_syl = int(rng.integers(1, 4))
        parts = [SYLLABLES[i] for i in rng.integers(0, len(SYLLABLES), n_syl)]
        word = "".join(parts) + CODAS[int(rng.integers(0, len(CODAS)))]
        if word not in seen:
            seen.add(word)
            words.append(word)
    weights = 1.0 / np.arange(1, size + 1, dtype=np.float64) ** 1.05
    cdf = np.cumsum(weights)
    return words, cdf / cdf[-1]


def _draw_word_ids(rng: np.random.Generator, cdf: np.ndarray, n: int) -> np.ndarray:
    """Sample ``n`` vocabulary ids from the Zipf distribution in one vectorised call."""
    return np.minimum(np.searchsorted(cdf, rng.random(n)), len(cdf) - 1)


def _to_prose(rng: np.random.Generator, words: list[str]) -> str:
    """Shape bare words into sentences (capitals, commas, full stops) for realistic-looking text."""
    out: list[str] = []
    i = 0
    while i < len(words):
        length = min(int(rng.integers(6, 23)), len(words) - i)
        sentence = words[i : i + length]
        sentence[0] = sentence[0].capitalize()
        for j in set(rng.integers(1, max(2, length - 1), size=length // 9).tolist()):
            if j < length - 1:
                sentence[j] += ","
        sentence[-1] += "."
        out.extend(sentence)
        i += length
    return " ".join(out)


def _unique_docs(rng: np.random.Generator, vocab: list[str], cdf: np.ndarray, n: int) -> list[_Doc]:
    """Generate ``n`` independent documents, each its own cluster."""
    lengths = rng.integers(MIN_WORDS, MAX_WORDS + 1, size=n)
    ids = _draw_word_ids(rng, cdf, int(lengths.sum()))
    bounds = np.concatenate(([0], np.cumsum(lengths)))
    docs = []
    for k in range(n):
        words = [vocab[w] for w in ids[bounds[k] : bounds[k + 1]].tolist()]
        docs.append(_Doc(text=_to_prose(rng, words), origin=k, label="common"))
    n_rare = max(1, round(RARE_SHARE * n)) if n else 0
    for k in rng.choice(n, size=n_rare, replace=False).tolist():
        docs[k].label = "rare"
    return docs


def _edit_count(n_words: int, target: float) -> int:
    """Edits needed for a target Jaccard: each spaced edit swaps ~SHINGLE shingles.

    With S shingles and k isolated edits, J ~= (S - 5k) / (S + 5k); solve for k.
    """
    shingles = max(1, n_words - SHINGLE + 1)
    return max(1, round(shingles * (1.0 - target) / (SHINGLE * (1.0 + target))))


def _near_duplicate(rng: np.random.Generator, text: str, vocab: list[str], cdf: np.ndarray) -> str:
    """Derive a near copy by substituting/inserting/deleting a few well-separated words.

    Edits are at least ``SHINGLE + 1`` words apart so each one breaks a predictable number
    of shingles, which keeps the Jaccard with the original inside ``NEAR_JACCARD``.
    """
    tokens = text.split(" ")
    target = float(rng.uniform(*NEAR_JACCARD))
    slots = np.arange(1, len(tokens) - 1, SHINGLE + 1)
    k = min(_edit_count(len(tokens), target), len(slots))
    positions = sorted(rng.choice(slots, size=k, replace=False).tolist(), reverse=True)
    for pos in positions:  # right to left so earlier positions stay valid
        op = rng.random()
        new = vocab[int(_draw_word_ids(rng, cdf, 1)[0])]
        if op < 0.6:
            if new.lower() == tokens[pos].lower().rstrip(".,"):
                new = new + "s"
            tokens[pos] = new + tokens[pos][len(tokens[pos].rstrip(".,")) :]
        elif op < 0.8:
            tokens.insert(pos, new)
        else:
            del tokens[pos]
    return " ".join(tokens)


def _add_near_duplicates(
    rng: np.random.Generator, docs: list[_Doc], n: int, vocab: list[str], cdf: np.ndarray
) -> None:
    """Append ``n`` near duplicates in clusters of 2-5 members around distinct originals."""
    originals = rng.permutation(len(docs)).tolist()
    made = 0
    while made < n and originals:
        base = docs[originals.pop()]
        for _ in range(min(int(rng.integers(1, MAX_CLUSTER)), n - made)):
            text = _near_duplicate(rng, base.text, vocab, cdf)
            docs.append(_Doc(text=text, origin=base.origin, label=base.label))
            made += 1


def _add_exact_duplicates(rng: np.random.Generator, docs: list[_Doc], n: int) -> None:
    """Append ``n`` byte-identical copies of earlier docs, keeping clusters at most 5 members."""
    sizes: dict[int, int] = {}
    for doc in docs:
        sizes[doc.origin] = sizes.get(doc.origin, 0) + 1
    pool = [i for i, doc in enumerate(docs) if sizes[doc.origin] < MAX_CLUSTER]
    for _ in range(n):
        if not pool:  # only reachable for tiny corpora; then allow bigger clusters
            pool = list(range(len(docs)))
        src = docs[pool[int(rng.integers(0, len(pool)))]]
        docs.append(_Doc(text=src.text, origin=src.origin, label=src.label))
        sizes[src.origin] += 1
        if sizes[src.origin] >= MAX_CLUSTER:
            pool = [i for i in pool if docs[i].origin != src.origin]


def _spread(rng: np.random.Generator, docs: list[_Doc]) -> list[int]:
    """Shuffle, then break up neighbours of one cluster so dups never sit next to each other."""
    order = rng.permutation(len(docs)).tolist()
    for _ in range(10):
        clashes = [
            i for i in range(len(order) - 1) if docs[order[i]].origin == docs[order[i + 1]].origin
        ]
        if not clashes:
            break
        for i in clashes:
            j = int(rng.integers(0, len(order)))
            order[i + 1], order[j] = order[j], order[i + 1]
    return order


def _source_counts(n: int) -> dict[str, int]:
    """Split ``n`` rows by the source shares (largest remainder, so the total is exact)."""
    raw = {name: n * share for name, share in SOURCE_SHARES}
    counts = {name: int(v) for name, v in raw.items()}
    by_remainder = sorted(raw, key=lambda name: (counts[name] - raw[name], name))
    for name in by_remainder[: n - sum(counts.values())]:
        counts[name] += 1
    return counts


def _row_json(doc: _Doc, source: str, quality: float, cluster: int) -> bytes:
    """Serialise one good row with a fixed key order (part of the byte-identical guarantee)."""
    row = {
        "text": doc.text,
        "source": source,
        "label": doc.label,
        "quality": quality,
        "cluster": cluster,
    }
    return json.dumps(row, ensure_ascii=False).encode("utf-8")


def _malformed_line(kind: str, source: str, text: str) -> bytes:
    """Build one bad line of the given kind; each must trip a different ingestion check."""
    tail = {"source": source, "label": "common", "quality": 0.5}
    if kind == "broken_json":
        full = json.dumps({"text": text, **tail})
        return full[: len(full) // 2].encode("utf-8")
    if kind == "missing_text":
        return json.dumps({"body": text, **tail}).encode("utf-8")
    if kind == "nonstring_text":
        return json.dumps({"text": len(text), **tail}).encode("utf-8")
    half = len(text) // 2
    head = json.dumps({"text": text[:half] + "\ue000" + text[half:], **tail}, ensure_ascii=True)
    return head.encode("ascii").replace(b"\\ue000", b"\xff\xfe")


def _plan_malformed(
    rng: np.random.Generator, n: int, counts: dict[str, int], vocab: list[str]
) -> dict[str, list[tuple[int, bytes]]]:
    """Place ``n`` bad lines round-robin over kinds and sources at random line positions."""
    names = [name for name, _ in SOURCE_SHARES]
    plan: dict[str, list[tuple[int, bytes]]] = {name: [] for name in names}
    for k in range(n):
        kind = MALFORMED_KINDS[k % len(MALFORMED_KINDS)]
        source = names[k % len(names)]
        text = " ".join(vocab[int(i)] for i in rng.integers(0, 200, size=12))
        pos = int(rng.integers(0, counts[source] + 1))
        plan[source].append((pos, _malformed_line(kind, source, text)))
    return plan


def _write_source(path: Path, good: list[bytes], bad: list[tuple[int, bytes]]) -> None:
    """Interleave bad lines at their positions and write one zstd frame (no timestamps)."""
    lines: list[bytes] = []
    bad_sorted = sorted(bad, key=lambda item: item[0])
    b = 0
    for i, line in enumerate(good):
        while b < len(bad_sorted) and bad_sorted[b][0] <= i:
            lines.append(bad_sorted[b][1])
            b += 1
        lines.append(line)
    lines.extend(line for _, line in bad_sorted[b:])
    payload = b"".join(line + b"\n" for line in lines)
    path.write_bytes(zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(payload))


def generate_corpus(
    out_dir: str | Path, docs: int = 6000, seed: int = 0, malformed: int = 12
) -> dict:
    """Write sources as JSONL.zst files into out_dir and return a summary dict.

    The summary (also written to ``out_dir/corpus.json``) is the ground truth that tests
    score later stages against. See the module docstring for the ``cluster`` convention.
    """
    if docs < 1:
        raise DataprepError(f"--docs must be 1 or more (got {docs})")
    if malformed < 0:
        raise DataprepError(f"--malformed must be 0 or more (got {malformed})")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    vocab, cdf = _build_vocab(rng)

    n_exact = round(EXACT_SHARE * docs)
    n_near = round(NEAR_SHARE * docs)
    pool = _unique_docs(rng, vocab, cdf, docs - n_exact - n_near)
    _add_near_duplicates(rng, pool, n_near, vocab, cdf)
    _add_exact_duplicates(rng, pool, n_exact)

    order = _spread(rng, pool)
    position = {gen: pos for pos, gen in enumerate(order)}  # generation index -> row index
    counts = _source_counts(len(pool))
    bad = _plan_malformed(rng, malformed, counts, vocab)

    files: list[str] = []
    labels: dict[str, int] = {}
    start = 0
    for source, _ in SOURCE_SHARES:
        a, b = QUALITY_BETA[source]
        chunk = order[start : start + counts[source]]
        qualities = np.round(rng.beta(a, b, size=len(chunk)), 4).tolist()
        good = []
        for gen, quality in zip(chunk, qualities, strict=True):
            doc = pool[gen]
            good.append(_row_json(doc, source, quality, position[doc.origin]))
            labels[doc.label] = labels.get(doc.label, 0) + 1
        name = f"{source}.jsonl.zst"
        _write_source(out / name, good, bad[source])
        files.append(name)
        start += len(chunk)

    summary = {
        "docs": len(pool),
        "malformed": malformed,
        "sources": counts,
        "exact_duplicates": n_exact,
        "near_duplicates": len(pool) - n_exact - (docs - n_exact - n_near),
        "clusters": len({doc.origin for doc in pool}),
        "labels": dict(sorted(labels.items())),
        "files": files,
        "seed": seed,
    }
    (out / "corpus.json").write_text(json.dumps(summary, sort_keys=True, indent=2) + "\n")
    return summary
