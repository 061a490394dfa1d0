"""Tests for dataprep.sample: the synthetic corpus is ground truth, so verify it independently.

Every check re-reads the written files (zstandard + json) and recomputes the facts by brute
force instead of trusting the generator's summary.
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import zstandard

from dataprep.sample import generate_corpus

DOCS = 1500
FIELDS = {"text", "source", "label", "quality", "cluster"}


def _read_lines(path: Path) -> list[bytes]:
    """Decompress one source file and split it into raw lines."""
    with path.open("rb") as fh, zstandard.ZstdDecompressor().stream_reader(fh) as reader:
        data = reader.read()
    assert data.endswith(b"\n")
    return data[:-1].split(b"\n")


def _classify(line: bytes) -> tuple[str, dict | None]:
    """Independently decide what kind of line this is: good or one of four defects."""
    try:
        decoded = line.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid_utf8", None
    try:
        obj = json.loads(decoded)
    except json.JSONDecodeError:
        return "broken_json", None
    if "text" not in obj:
        return "missing_text", None
    if not isinstance(obj["text"], str):
        return "nonstring_text", None
    return "good", obj


def _load(out_dir: Path, summary: dict) -> tuple[list[dict], list[tuple[str, str]]]:
    """Good rows in index order, and (kind, source) for every bad line."""
    rows: list[dict] = []
    bad: list[tuple[str, str]] = []
    for name in summary["files"]:
        for line in _read_lines(out_dir / name):
            kind, obj = _classify(line)
            if obj is None:
                bad.append((kind, name))
            else:
                rows.append(obj)
    return rows, bad


def _shingles(text: str, k: int = 5) -> set[tuple[str, ...]]:
    words = text.lower().split()
    return {tuple(words[i : i + k]) for i in range(len(words) - k + 1)}


def _jaccard(a: str, b: str) -> float:
    sa, sb = _shingles(a), _shingles(b)
    return len(sa & sb) / len(sa | sb)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, list[dict], list]:
    out = tmp_path_factory.mktemp("corpus")
    summary = generate_corpus(out, docs=DOCS, seed=7, malformed=12)
    rows, bad = _load(out, summary)
    return out, summary, rows, bad


def _file_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def test_deterministic_per_seed(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate_corpus(a, docs=300, seed=1)
    generate_corpus(b, docs=300, seed=1)
    generate_corpus(c, docs=300, seed=2)
    files_a, files_b, files_c = _file_bytes(a), _file_bytes(b), _file_bytes(c)
    assert files_a == files_b
    assert files_a.keys() == files_c.keys()
    assert all(files_a[n] != files_c[n] for n in files_a if n.endswith(".zst"))


def test_files_and_summary_on_disk(corpus) -> None:
    out, summary, _, _ = corpus
    on_disk = sorted(p.name for p in out.glob("*.jsonl.zst"))
    assert summary["files"] == on_disk
    assert on_disk == [f"{s}.jsonl.zst" for s in ("books", "code", "forum", "news", "web")]
    assert json.loads((out / "corpus.json").read_text()) == summary
    assert summary["seed"] == 7


def test_summary_matches_recount(corpus) -> None:
    _, summary, rows, bad = corpus
    assert summary["docs"] == DOCS == len(rows)
    assert summary["malformed"] == len(bad) == 12
    assert summary["sources"] == dict(Counter(r["source"] for r in rows))
    assert summary["labels"] == dict(Counter(r["label"] for r in rows))
    assert summary["clusters"] == len({r["cluster"] for r in rows})
    # Exact duplicates: rows whose text already appeared.
    assert summary["exact_duplicates"] == len(rows) - len({r["text"] for r in rows})
    # Near duplicates: extra distinct texts inside a cluster.
    texts = defaultdict(set)
    for r in rows:
        texts[r["cluster"]].add(r["text"])
    assert summary["near_duplicates"] == sum(len(t) - 1 for t in texts.values())
    assert summary["exact_duplicates"] == round(0.08 * DOCS)
    assert summary["near_duplicates"] == round(0.12 * DOCS)


def test_row_schema_and_source(corpus) -> None:
    out, summary, _, _ = corpus
    for name in summary["files"]:
        for line in _read_lines(out / name):
            kind, row = _classify(line)
            if row is None:
                continue
            assert set(row) == FIELDS
            assert row["source"] == name.removesuffix(".jsonl.zst")
            assert isinstance(row["quality"], float) and 0.0 <= row["quality"] <= 1.0
            assert round(row["quality"], 4) == row["quality"]
            assert isinstance(row["cluster"], int) and row["label"] in {"rare", "common"}
            assert 70 <= len(row["text"].split()) <= 420


def test_source_sizes_are_skewed(corpus) -> None:
    _, summary, _, _ = corpus
    shares = {k: v / DOCS for k, v in summary["sources"].items()}
    assert shares["web"] == pytest.approx(0.55, abs=0.01)
    assert shares["news"] == pytest.approx(0.03, abs=0.01)
    assert sorted(shares, key=shares.get) == ["news", "forum", "code", "books", "web"]


def test_cluster_ids_point_at_originals(corpus) -> None:
    _, _, rows, _ = corpus
    members = defaultdict(list)
    for i, r in enumerate(rows):
        members[r["cluster"]].append(i)
    for cluster, idx in members.items():
        assert rows[cluster]["cluster"] == cluster, "the original carries its own index"
        assert len(idx) <= 5
        assert len({rows[i]["label"] for i in idx}) == 1, "duplicates keep their label"
    sizes = Counter(len(v) for v in members.values())
    assert set(sizes) - {1} <= {2, 3, 4, 5} and sizes[1] > 0.7 * len(members)


def test_duplicates_spread_and_not_adjacent(corpus) -> None:
    _, _, rows, _ = corpus
    dup_sources = {r["source"] for i, r in enumerate(rows) if r["cluster"] != i}
    assert dup_sources == {"books", "code", "forum", "news", "web"}
    for i in range(len(rows) - 1):
        assert rows[i]["cluster"] != rows[i + 1]["cluster"]


def test_malformed_kinds(corpus) -> None:
    _, _, _, bad = corpus
    kinds = Counter(kind for kind, _ in bad)
    assert kinds == {"broken_json": 3, "missing_text": 3, "nonstring_text": 3, "invalid_utf8": 3}
    assert len({source for _, source in bad}) >= 4


def test_malformed_zero(tmp_path: Path) -> None:
    summary = generate_corpus(tmp_path, docs=200, seed=0, malformed=0)
    rows, bad = _load(tmp_path, summary)
    assert bad == [] and len(rows) == 200 == summary["docs"]


def test_label_skew(corpus) -> None:
    _, summary, rows, _ = corpus
    rare = sum(r["label"] == "rare" for r in rows)
    assert 0.005 <= rare / len(rows) <= 0.03
    assert set(summary["labels"]) == {"rare", "common"}


def test_near_duplicate_jaccard(corpus) -> None:
    _, _, rows, _ = corpus
    scores = [
        _jaccard(r["text"], rows[r["cluster"]]["text"])
        for r in rows
        if r["text"] != rows[r["cluster"]]["text"]
    ]
    assert len(scores) >= 0.1 * DOCS
    in_band = sum(0.7 <= s <= 0.97 for s in scores)
    assert in_band >= 0.8 * len(scores)
    assert max(scores) < 1.0


def test_unrelated_pairs_are_far(corpus) -> None:
    _, _, rows, _ = corpus
    rnd = random.Random(0)
    for _ in range(300):
        a, b = rnd.sample(rows, 2)
        if a["cluster"] != b["cluster"]:
            assert _jaccard(a["text"], b["text"]) < 0.1
