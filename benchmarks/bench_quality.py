"""score + filter --preset gopher against datatrove's Gopher quality + repetition filters.

Same documents for both: real text from this machine (licences, Debian copyright files,
changelogs, man page sources), about 200 MB by default. One run each, CPU seconds measured
inside the process doing the work (the machine is shared, so wall time is noisy), and:

- ours: `score --signals gopher --words W` then `filter --preset gopher` on the sharded
  corpus, one worker, in this process, once with W=whitespace and once with W=spacy;
- datatrove (a separate interpreter, e.g. a venv with `pip install datatrove orjson`):
  GopherRepetitionFilter then GopherQualityFilter on every document, as FineWeb runs them,
  (a) with a whitespace word tokenizer, against ours with --words whitespace, on the whole
  corpus, and (b) with datatrove's default English tokenizer (spaCy), against ours with
  --words spacy, on the first --spacy-mb of it.

It prints MB/s per core for each, the ratio ours/theirs, and how often the keep/drop decisions
agree, with every disagreement class counted and explained.

    python benchmarks/bench_quality.py --mb 200 --spacy-mb 10 --datatrove-python /tmp/dt/bin/python

`--paired N` times only our signals (no Parquet, no datatrove), the two word modes
alternating for N rounds: the steadier figure for the cost of spaCy's words.
`--against REV [--paired N]` times the line + paragraph pass and the word + n-gram pass of git
revision REV and of this tree alternating in one process: the before/after figure of a change
to the kernels.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import importlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

SOURCES = [
    ("licence", "/usr/share/common-licenses/*"),
    ("copyright", "/usr/share/doc/*/copyright"),
    ("changelog", "/usr/share/doc/*/changelog*.gz"),
    ("man", "/usr/share/man/**/*.gz"),
]


def build_corpus(path: Path, mb: float) -> tuple[int, int]:
    """One document per file until `mb` megabytes of UTF-8 text."""
    ids, sources, texts, total = [], [], [], 0
    for source, pattern in SOURCES:
        for name in sorted(glob.glob(pattern, recursive=True)):
            if total >= mb * 1e6:
                break
            if os.path.isdir(name):
                continue
            try:
                raw = gzip.open(name).read() if name.endswith(".gz") else Path(name).read_bytes()
            except (OSError, EOFError):
                continue
            text = raw.decode("utf-8", "replace")
            ids.append(name)
            sources.append(source)
            texts.append(text)
            total += len(text.encode())
    pq.write_table(pa.table({"id": ids, "source": sources, "text": texts}), path)
    return len(texts), total


# --- datatrove side: runs under --datatrove-python, imports nothing of dataprep -------------
def datatrove_worker(corpus: str, out: str, tokenizer: str, limit_mb: float) -> None:
    from datatrove.data import Document
    from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter
    from datatrove.utils.word_tokenizers import WordTokenizer

    class Whitespace(WordTokenizer):
        def word_tokenize(self, text: str) -> list[str]:
            return text.split()

        def sent_tokenize(self, text: str) -> list[str]:
            return [text]

        def span_tokenize(self, text: str) -> list[tuple[int, int]]:
            return [(0, len(text))]

    language = Whitespace() if tokenizer == "whitespace" else "en"
    repetition = GopherRepetitionFilter(language=language)
    quality = GopherQualityFilter(language=language)
    table = pq.read_table(corpus, columns=["id", "text"])
    ids, texts = table.column("id").to_pylist(), table.column("text").to_pylist()
    reasons, size = {}, 0
    quality.filter(Document(text="warm up the tokenizer", id="warm-up"))  # loads spaCy
    t0 = time.process_time()
    for doc_id, text in zip(ids, texts, strict=True):
        if limit_mb and size >= limit_mb * 1e6:
            break
        size += len(text.encode())
        doc = Document(text=text, id=doc_id)
        verdict = repetition.filter(doc)
        if verdict is True:
            verdict = quality.filter(doc)
        reasons[doc_id] = None if verdict is True else verdict[1]
    cpu = time.process_time() - t0
    Path(out).write_text(json.dumps({"cpu_s": cpu, "bytes": size, "reasons": reasons}))


def run_datatrove(python: str, corpus: Path, tokenizer: str, limit_mb: float) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
        out = tmp.name
    args = [python, __file__, "--worker", str(corpus), out, tokenizer, str(limit_mb)]
    subprocess.run(args, check=True, env={**os.environ, "PYTHONPATH": ""})
    result = json.loads(Path(out).read_text())
    os.unlink(out)
    return result


# --- our side -----------------------------------------------------------------------------
def run_ours(corpus: Path, work: Path, words: str) -> dict:
    from dataprep import dataset
    from dataprep.executors import make_executor
    from dataprep.runner import run_stage

    inline = make_executor("local", workers=1)
    shards = work / "shards"
    if not shards.exists():
        run_stage(
            "shard",
            {"format": "parquet", "shard_bytes": "64MB", "keep": ["source"]},
            shards,
            inputs=[str(corpus)],
            executor=inline,
        )
    work = work / words
    shutil.rmtree(work, ignore_errors=True)  # a kept output would be "up to date": 0 s
    t0, w0 = time.process_time(), time.perf_counter()
    score = {"signals": ["gopher"], "words": words}
    run_stage("score", score, work / "scored", input_path=shards, executor=inline)
    t1 = time.process_time()
    run_stage(
        "filter", {"preset": "gopher"}, work / "kept", input_path=work / "scored", executor=inline
    )
    cpu_score, cpu_filter = t1 - t0, time.process_time() - t1
    wall = time.perf_counter() - w0
    marked = work / "marked"
    run_stage(
        "filter",
        {"preset": "gopher", "mark_only": True},
        marked,
        input_path=work / "scored",
        executor=inline,
    )
    rows = dataset.read_rows(marked).select(["id", "filter_reason"]).to_pylist()
    return {
        "cpu_kernels_s": kernels_only(corpus, words),
        "cpu_score_s": cpu_score,
        "cpu_filter_s": cpu_filter,
        "wall_s": wall,
        "reasons": {r["id"]: r["filter_reason"] for r in rows},
    }


def forget_words() -> None:
    """Empty the spaCy words cache this thread kept from an earlier pass over the same text:
    each timed pass starts cold, as a `score` run over new text does."""
    from dataprep.quality import kernels

    _forget(getattr(getattr(kernels, "_LOCAL", None), "cache", None))


def _forget(cache: Any) -> None:
    """Zero a words cache: one array (now) or a tuple of them (revisions before 2026-11-30)."""
    for part in cache if isinstance(cache, tuple) else () if cache is None else (cache,):
        part[:] = 0


def kernels_only(corpus: Path, words: str) -> float:
    """CPU seconds of the signals and the rules alone (no Parquet reading or writing)."""
    from dataprep.quality import expr, presets, signals

    table = pq.read_table(corpus, columns=["text"])
    forget_words()
    t0 = time.process_time()
    names = presets.columns("gopher")
    scored = pa.table(signals.compute(table.column("text"), names, words))
    rules = presets.rules("gopher", {}, "rules")
    types = {n: scored.schema.field(n).type for n in names}
    checks = [expr.parse(rule.text, types, rule.name).expression for rule in rules]
    expr.evaluate(scored, checks)
    return time.process_time() - t0


def paired(corpus: Path, rounds: int) -> None:
    """The signals alone (no Parquet), --words whitespace and spacy alternating for `rounds`
    rounds in this process: on a shared machine the per-round ratio is steadier than one
    run's MB/s. Prints medians."""
    from dataprep.quality import presets, signals

    texts = pq.read_table(corpus, columns=["text"]).column("text")
    mb = sum(b.size for c in texts.chunks for b in c.buffers()[2:] if b) / 1e6
    names = presets.columns("gopher")
    times: dict[str, list[float]] = {"whitespace": [], "spacy": []}
    for words in times:  # compile / warm up
        signals.compute(texts.slice(0, 50), names, words)
    for _ in range(rounds):
        for words, spent in times.items():
            forget_words()
            t0 = time.process_time()
            signals.compute(texts, names, words)
            spent.append(time.process_time() - t0)
    ws, sp = (sorted(times[w])[rounds // 2] for w in times)
    ratios = sorted(b / a for a, b in zip(times["whitespace"], times["spacy"], strict=True))
    print(f"signals only, {mb:.1f} MB, median of {rounds} paired rounds (CPU s per core):")
    print(f"  --words whitespace {ws:.2f} s ({mb / ws:.1f} MB/s), spacy {sp:.2f} s ({mb / sp:.1f})")
    print(f"  spacy / whitespace: {ratios[rounds // 2]:.2f}x (per-round median)")


def kernels_at(rev: str) -> Any:
    """The compiled word pass as of git revision `rev`, importable beside today's: that
    revision's dataprep/ is unpacked to a temporary folder as the package `dataprep_at_rev`."""
    root = Path(tempfile.mkdtemp(prefix="bench-quality-rev-"))
    repo = Path(__file__).resolve().parent.parent
    tar = subprocess.run(["git", "archive", rev, "dataprep"], cwd=repo, capture_output=True)
    if tar.returncode:
        sys.exit(f"git archive {rev} failed: {tar.stderr.decode().strip()}")
    tarfile.open(fileobj=io.BytesIO(tar.stdout)).extractall(root, filter="data")
    (root / "dataprep").rename(root / "dataprep_at_rev")
    for path in (root / "dataprep_at_rev").rglob("*.py"):
        text = re.sub(r"\b(from|import) dataprep\b", r"\1 dataprep_at_rev", path.read_text())
        path.write_text(text)
    sys.path.insert(0, str(root))
    return importlib.import_module("dataprep_at_rev.quality.kernels")


def against(corpus: Path, rev: str, rounds: int) -> None:
    """The word + n-gram pass of `rev` and of this tree alternating in this process (every
    4th document, 1 MiB batches, words cache emptied before each pass; the order flips each
    round): old/new per round, medians, for each word mode."""
    from dataprep.quality import kernels as new

    old = kernels_at(rev)
    texts = pq.read_table(corpus, columns=["text"]).column("text").combine_chunks()
    texts = texts.take(pa.array(range(0, len(texts), 4)))
    sizes = pc.binary_length(texts).to_pylist()
    batches, start, size = [], 0, 0
    for i, n in enumerate(sizes):
        size += n
        if size > 1 << 20 or i == len(sizes) - 1:
            batches.append(texts.slice(start, i + 1 - start))
            start, size = i + 1, 0
    mb = sum(sizes) / 1e6
    old_lines = importlib.import_module("dataprep_at_rev.quality.kernels_lines")
    from dataprep.quality import kernels_lines as new_lines

    for module in (old_lines, new_lines):
        module.line_signals(texts.slice(0, 20))  # compile or load
    passes = {"old": old_lines, "new": new_lines}

    def lines_pass(module) -> None:
        for batch in batches:
            module.line_signals(batch)

    spent = _paired(passes, rounds, lines_pass)
    _print_paired(spent, f"lines + paragraphs pass, {mb:.1f} MB", rounds, mb, rev)
    for words in ("whitespace", "spacy"):
        passes = {"old": old, "new": new}
        for kernels in passes.values():
            kernels.word_signals(texts.slice(0, 20), True, words)  # compile or load

        def word_pass(kernels, words=words) -> None:
            for batch in batches:
                kernels.word_signals(batch, True, words)

        spent = _paired(passes, rounds, word_pass, untimed=_forget_cache)
        _print_paired(spent, f"--words {words}, {mb:.1f} MB, word + n-gram pass", rounds, mb, rev)


def _forget_cache(kernels) -> None:
    _forget(getattr(kernels._LOCAL, "cache", None))


def _paired(passes: dict, rounds: int, run, untimed=None) -> dict[str, list[float]]:
    """CPU seconds of `run(pass)` for each pass, alternating, the order flipped each round;
    `untimed(pass)` runs first, outside the clock (e.g. emptying a cache)."""
    spent: dict[str, list[float]] = {name: [] for name in passes}
    for r in range(rounds):
        for name in sorted(passes, reverse=r % 2 == 1):
            if untimed is not None:
                untimed(passes[name])
            t0 = time.process_time()
            run(passes[name])
            spent[name].append(time.process_time() - t0)
    return spent


def _print_paired(spent: dict[str, list[float]], what: str, rounds: int, mb: float, rev: str):
    o, n = (sorted(spent[k])[rounds // 2] for k in ("old", "new"))
    ratios = sorted(a / b for a, b in zip(spent["old"], spent["new"], strict=True))
    print(
        f"{what}, {rounds} paired rounds: {rev} {o:.2f} s ({mb / o:.1f} MB/s), now {n:.2f} s "
        f"({mb / n:.1f} MB/s), {rev}/now per-round median {ratios[rounds // 2]:.2f}x "
        f"(range {ratios[0]:.2f}-{ratios[-1]:.2f})"
    )


WHY = {
    "whitespace": "same words on both sides: a disagreement would be a bug in either (the known "
    "corner cases: datatrove joins a repeated n-gram's words without spaces before comparing, "
    "and its symbol-only words use a fixed punctuation list, score's Unicode categories P/S/C)",
    "spacy": "score --words spacy replays spaCy's English tokenizer; what remains are the "
    "tokens it splits differently (benchmarks/spacy_words_agreement.py lists them) and the "
    "whitespace corner cases above",
}


def agreement(ours: dict, theirs: dict) -> tuple[float, Counter]:
    classes: Counter = Counter()
    same = 0
    for doc_id, reason in theirs.items():
        mine = ours[doc_id]
        if (mine is None) == (reason is None):
            same += 1
        else:
            classes[f"ours={mine or 'keep'} datatrove={reason or 'keep'}"] += 1
    return same / max(len(theirs), 1), classes


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        datatrove_worker(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=200.0, help="corpus size")
    parser.add_argument("--spacy-mb", type=float, default=10.0, help="datatrove+spaCy subset")
    parser.add_argument("--datatrove-python", default=sys.executable)
    parser.add_argument("--work", default=None, help="folder for the corpus and outputs")
    parser.add_argument(
        "--paired", type=int, default=0, help="only time the signals, N paired rounds"
    )
    parser.add_argument(
        "--against", default=None, help="git revision: its word pass and ours alternating"
    )
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-quality-"))
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "corpus.parquet"
    if not corpus.exists():
        docs, size = build_corpus(corpus, args.mb)
    else:
        table = pq.read_table(corpus, columns=["text"])
        docs, size = table.num_rows, sum(len(t.encode()) for t in table.column(0).to_pylist())
    mb = size / 1e6
    print(f"corpus: {docs} documents, {mb:.1f} MB ({work})", flush=True)
    if args.against:
        against(corpus, args.against, args.paired or 5)
        return
    if args.paired:
        paired(corpus, args.paired)
        return
    mine = {}
    for words in ("whitespace", "spacy"):
        ours = mine[words] = run_ours(corpus, work, words)
        ours["cpu_s"] = ours["cpu_score_s"] + ours["cpu_filter_s"]
        print(
            f"ours --words {words}: score {ours['cpu_score_s']:.1f} s + filter "
            f"{ours['cpu_filter_s']:.1f} s CPU (wall {ours['wall_s']:.1f} s); signals + rules "
            f"only {ours['cpu_kernels_s']:.1f} s ({mb / ours['cpu_kernels_s']:.2f} MB/s/core)",
            flush=True,
        )
    ws = run_datatrove(args.datatrove_python, corpus, "whitespace", 0)
    spacy = run_datatrove(args.datatrove_python, corpus, "spacy", args.spacy_mb)
    rows = []
    for label, theirs, words in (
        ("datatrove, whitespace words", ws, "whitespace"),
        ("datatrove, spaCy (default)", spacy, "spacy"),
    ):
        their_rate = theirs["bytes"] / 1e6 / theirs["cpu_s"]
        our_rate = mb / mine[words]["cpu_s"]
        agree, classes = agreement(mine[words]["reasons"], theirs["reasons"])
        kernels = mb / mine[words]["cpu_kernels_s"]
        rows.append((label, theirs, their_rate, our_rate, agree, classes, kernels, words))
    print(f"\n{'':32} {'MB':>7} {'MB/s/core':>10} {'ours/theirs':>12} {'agree':>8}")
    for words in ("whitespace", "spacy"):
        rate = mb / mine[words]["cpu_s"]
        print(f"{'dataprep --words ' + words:32} {mb:7.1f} {rate:10.2f}")
        kernels = mb / mine[words]["cpu_kernels_s"]
        print(f"{'  signals+rules only, no I/O':32} {mb:7.1f} {kernels:10.2f}")
    for label, theirs, their_rate, our_rate, agree, _, kernels, words in rows:
        print(
            f"{label:32} {theirs['bytes'] / 1e6:7.1f} {their_rate:10.2f} "
            f"{our_rate / their_rate:11.1f}x {agree:8.2%}  (vs --words {words}; "
            f"no I/O: {kernels / their_rate:.1f}x)"
        )
    # not like for like (different words): each tool's default, as a user would run them
    default_rate = mb / mine["whitespace"]["cpu_s"]
    default_agree, _ = agreement(mine["whitespace"]["reasons"], spacy["reasons"])
    print(
        f"{'defaults: ours whitespace words':32} {'':7} {default_rate:10.2f} "
        f"{default_rate / rows[1][2]:11.1f}x {default_agree:8.2%}  (vs datatrove's default, spaCy "
        "words: NOT the same rules, see the spaCy row for like for like)"
    )
    for label, theirs, _, _, _, classes, _, _ in rows:
        print(f"\ndisagreements with {label} ({len(theirs['reasons'])} docs):")
        for name, count in classes.most_common(12):
            print(f"  {count:6d}  {name}")
        print(f"  why: {WHY['whitespace' if 'whitespace' in label else 'spacy']}")
    summary = {
        "docs": docs,
        "mb": mb,
        "ours": {
            w: {
                "cpu_s": o["cpu_s"],
                "mb_per_s_per_core": mb / o["cpu_s"],
                "kernels_mb_per_s_per_core": mb / o["cpu_kernels_s"],
            }
            for w, o in mine.items()
        },
        "datatrove": {
            label: {
                "mb": t["bytes"] / 1e6,
                "mb_per_s_per_core": r,
                "ratio": o / r,
                "agreement": a,
                "classes": dict(c),
            }
            for label, t, r, o, a, c, _, _ in rows
        },
    }
    (work / "summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
