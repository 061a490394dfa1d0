"""benchmarks/bench_quality.py compares like for like: both sides read the same Parquet shards
(the same documents and bytes, the spaCy subset included), both are timed end to end and
without I/O, and the ratio and TARGET lines say which is which. The helpers run in CI; the
datatrove pipeline runs only where datatrove is importable (CI has none)."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


report = _load("bench_quality_report")
bq = _load("bench_quality")


def _old_datatrove_limit(sizes: list[int], mb: float) -> int:
    """The loop datatrove's worker ran before: stop once the bytes read reach the limit."""
    seen, total = 0, 0
    for size in sizes:
        if mb and total >= mb * 1e6:
            break
        total += size
        seen += 1
    return seen


@pytest.mark.parametrize("mb", [0, 0.4, 0.5, 1.0, 1.2, 1.21, 50])
def test_the_subset_is_the_documents_the_old_datatrove_loop_read(mb):
    sizes = [400_000, 500_000, 300_000, 10_000]
    expected = _old_datatrove_limit(sizes, mb)
    assert report.first_documents(sizes, mb) == expected
    if mb == 1.0:
        assert expected == 3  # 0.9 MB read before the third document: it is in


def test_write_subset_keeps_the_first_documents_whole(tmp_path):
    texts = ["é" * 300_000, "a" * 500_000, "b" * 400_000, "c" * 10]  # 600,000 bytes first
    corpus = tmp_path / "corpus.parquet"
    pq.write_table(pa.table({"id": ["0", "1", "2", "3"], "text": texts}), corpus)
    n = bq.write_subset(corpus, tmp_path / "subset.parquet", 1.0)
    subset = pq.read_table(tmp_path / "subset.parquet")
    assert n == 2 == subset.num_rows
    assert subset.column("id").to_pylist() == ["0", "1"]
    assert subset.column("text").to_pylist() == texts[:2]


def _run(docs: int, size: int, cpu_s: float, no_io_s: float, ours: bool, kept=("a",)) -> dict:
    reasons = {str(i): None if str(i) in kept else "rule" for i in range(docs)}
    return {
        "docs": docs,
        "bytes": size,
        "cpu_s": cpu_s,
        ("cpu_kernels_s" if ours else "filter_cpu_s"): no_io_s,
        "reasons": reasons,
        "kept": sorted(i for i, r in reasons.items() if r is None),
    }


def test_ratio_and_target_lines_say_what_they_compare():
    assert report.ratio_line("spaCy, end to end", 30.0, 1.5) == (
        "RATIO spaCy, end to end: 30.00 / 1.50 MB/s per core = 20.00x"
    )
    assert report.target_line("e2e", 20.0).endswith("20.00x datatrove, target >= 20x: met")
    almost = report.target_line("e2e", 19.996)
    assert almost.endswith("19.99x datatrove, target >= 20x: NOT met")


def test_summarise_prints_both_ratios_the_old_one_labelled_and_a_target_per_ratio():
    mb = 1e6
    runs = {
        "ours whitespace": _run(10, 200 * mb, 5.0, 4.0, True),  # 40 MB/s, 50 no I/O
        "ours spacy": _run(10, 200 * mb, 10.0, 8.0, True),  # 20, 25
        "ours spacy subset": _run(4, 40 * mb, 2.5, 1.6, True),  # 16, 25
        "datatrove whitespace": _run(10, 200 * mb, 50.0, 40.0, False),  # 4, 5
        "datatrove spacy": _run(4, 40 * mb, 40.0, 20.0, False),  # 1, 2
    }
    lines, ok = bq.summarise(runs)
    text = "\n".join(lines)
    assert ok
    assert "= 16.00x" in text and "= 12.50x" in text  # spaCy: end to end, no I/O
    assert "= 10.00x" in text  # whitespace: both 10x
    assert "TARGET spaCy words, end to end: 16.00x datatrove, target >= 20x: NOT met" in lines
    assert "TARGET spaCy words, signals + rules only: 12.50x datatrove, target >= 20x: NOT met" in (
        lines
    )
    old = next(line for line in lines if line.startswith("OLD asymmetric"))
    assert "NOT like for like" in old and "spaCy 10.00x" in old  # 20 MB/s over all / 2 MB/s
    assert text.count("same documents on both sides: yes") == 2


def test_summarise_refuses_runs_that_saw_different_documents():
    runs = {
        "ours whitespace": _run(10, 100, 1.0, 1.0, True),
        "ours spacy": _run(10, 100, 1.0, 1.0, True),
        "ours spacy subset": _run(4, 40, 1.0, 1.0, True),
        "datatrove whitespace": _run(10, 100, 1.0, 1.0, False),
        "datatrove spacy": _run(3, 30, 1.0, 1.0, False),  # one document short
    }
    lines, ok = bq.summarise(runs)
    assert not ok
    assert any("same documents on both sides: NO: ours 4 docs / 40 bytes" in x for x in lines)


def _tiny_corpus(path: Path) -> list[str]:
    """Real licences where the machine has them, a prose-like generated page, and three
    documents Gopher drops (too short, repeated lines, symbols)."""
    rng = random.Random(7)
    vocabulary = "the of and to in is that for it as with be on not this by are or".split()
    vocabulary += [f"word{i}" for i in range(300)]
    texts = [
        path.read_text(errors="replace")
        for path in sorted(Path("/usr/share/common-licenses").glob("*"))[:6]
    ]
    texts += [
        "\n".join(" ".join(rng.choice(vocabulary) for _ in range(12)) + "." for _ in range(40)),
        "Too short to keep.",
        "\n".join(["the same line of text, over and over again"] * 60),
        " ".join(["#### ---- ****"] * 200),
    ]
    ids = [f"doc-{i}" for i in range(len(texts))]
    pq.write_table(pa.table({"id": ids, "source": ["test"] * len(ids), "text": texts}), path)
    return texts


def test_datatrove_pipeline_reads_writes_and_decides_as_its_filters_do(tmp_path):
    pytest.importorskip("datatrove")
    from datatrove.data import Document
    from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter

    corpus, shards = tmp_path / "corpus.parquet", tmp_path / "shards"
    texts = _tiny_corpus(corpus)
    bq.shard(corpus, shards)
    theirs = bq.run_datatrove(sys.executable, shards, tmp_path / "datatrove", "whitespace")
    # oracle: the two filters called one document at a time, as the benchmark's loop did
    words = bq.peer.word_tokenizer("whitespace")
    repetition, quality = (
        GopherRepetitionFilter(language=words),
        GopherQualityFilter(language=words),
    )
    expected = {}
    for i, text in enumerate(texts):
        doc = Document(text=text, id=f"doc-{i}")
        verdict = repetition.filter(doc)
        verdict = quality.filter(doc) if verdict is True else verdict
        expected[doc.id] = None if verdict is True else verdict[1]
    assert theirs["reasons"] == expected
    kept = {i for i, reason in expected.items() if reason is None}
    assert 0 < len(kept) < len(texts)  # some kept, some dropped: the check means something
    assert set(theirs["kept"]) == kept  # what its ParquetWriter wrote
    assert (theirs["docs"], theirs["bytes"]) == (len(texts), sum(len(t.encode()) for t in texts))
    assert theirs["cpu_s"] >= theirs["filter_cpu_s"] > 0

    ours = bq.run_ours(corpus, shards, tmp_path / "ours", "whitespace")
    assert report.same_documents(ours, theirs) is None
    lines = report.comparison("whitespace", ours, theirs)
    assert f"same ids kept: yes, {len(kept)} in both outputs" in "\n".join(lines)
    assert report.agreement(ours["reasons"], theirs["reasons"])[0] == 1.0
