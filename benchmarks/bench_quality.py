"""score + filter --preset gopher against datatrove's Gopher quality + repetition filters.

Same documents for both: real text from this machine (licences, Debian copyright files,
changelogs, man page sources), about 200 MB by default, sharded once (untimed) into the
Parquet shards both sides read. One run each, CPU seconds measured inside the process doing
the work (the machine is shared, so wall time is noisy):

- ours: `score --signals gopher --words W` then `filter --preset gopher` on the shards, one
  worker, in this process, with W=whitespace and W=spacy on the whole corpus and with
  W=spacy on the spaCy subset (the first documents up to --spacy-mb, sharded on their own);
- datatrove (a separate interpreter, e.g. a venv with `pip install datatrove orjson`; see
  bench_quality_datatrove.py): ParquetReader -> GopherRepetitionFilter ->
  GopherQualityFilter -> ParquetWriter, as FineWeb runs them, (a) with a whitespace word
  tokenizer on the whole corpus and (b) with its default English tokenizer (spaCy) on the
  spaCy subset's shards.

For each word mode it prints both sides' documents and bytes (the same, or the run fails),
MB/s per core end to end (Parquet in and out on both sides) and without I/O (our signals +
rules on texts in memory; datatrove's filter() calls), both ratios, the same keep/drop share
with every disagreement class explained, whether both outputs kept the same ids, a TARGET
line per spaCy ratio (issue 16: >= 20x), and the ratio printed before 2026-11-30, labelled
as not like for like (ours with Parquet I/O / datatrove without).

    python benchmarks/bench_quality.py --mb 200 --spacy-mb 40 --datatrove-python /tmp/dt/bin/python

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
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_quality_datatrove as peer  # noqa: E402
import bench_quality_report as report  # noqa: E402
from bench_quality_paired import against, forget_words, paired  # noqa: E402

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


# --- the documents both sides are handed ----------------------------------------------------
def write_subset(corpus: Path, path: Path, mb: float) -> int:
    """The first documents of `corpus` up to `mb` MB, as their own corpus file: both sides
    then read the same shards, so they process exactly the same documents and bytes."""
    table = pq.read_table(corpus)
    sizes = pc.binary_length(table.column("text").cast(pa.binary())).to_pylist()
    n = report.first_documents(sizes, mb)
    pq.write_table(table.slice(0, n), path)
    return n


def shard(corpus: Path, shards: Path) -> None:
    """The corpus as the Parquet shards both `score` and datatrove's ParquetReader read."""
    from dataprep.executors import make_executor
    from dataprep.runner import run_stage

    if not shards.exists():
        options = {"format": "parquet", "shard_bytes": "64MB", "keep": ["source"]}
        run_stage(
            "shard",
            options,
            shards,
            inputs=[str(corpus)],
            executor=make_executor("local", workers=1),
        )


# --- datatrove side: its own pipeline, in its own interpreter ----------------------------------
def run_datatrove(python: str, shards: Path, out: Path, tokenizer: str) -> dict:
    """bench_quality_datatrove.py under `python`: ParquetReader -> Gopher repetition ->
    Gopher quality -> ParquetWriter, CPU seconds end to end and of the filter calls alone."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
        result = tmp.name
    script = Path(__file__).with_name("bench_quality_datatrove.py")
    args = [python, str(script), str(shards), str(out), tokenizer, result]
    subprocess.run(args, check=True, env={**os.environ, "PYTHONPATH": ""})
    theirs = json.loads(Path(result).read_text())
    os.unlink(result)
    return theirs


# --- our side -----------------------------------------------------------------------------
def run_ours(corpus: Path, shards: Path, work: Path, words: str) -> dict:
    """`score --signals gopher --words W` then `filter --preset gopher` on `shards`, one
    worker, in this process: CPU seconds (Parquet in and out), then, untimed, the verdicts
    (`--mark-only`) and the signals + rules alone on `corpus` (no Parquet I/O)."""
    from dataprep import dataset
    from dataprep.executors import make_executor
    from dataprep.runner import run_stage

    inline = make_executor("local", workers=1)
    shutil.rmtree(work, ignore_errors=True)  # a kept output would be "up to date": 0 s
    forget_words()  # start cold, as a `score` run over new text does
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
    reasons = {r["id"]: r["filter_reason"] for r in rows}
    docs, size = peer.docs_and_bytes(shards, set(reasons))
    return {
        "cpu_kernels_s": kernels_only(corpus, words),
        "cpu_score_s": cpu_score,
        "cpu_filter_s": cpu_filter,
        "cpu_s": cpu_score + cpu_filter,
        "wall_s": wall,
        "docs": docs,
        "bytes": size,
        "reasons": reasons,
        "kept": sorted(peer.kept_ids(work / "kept")),
    }


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
    checks = [expr.parse(rule.text, types, rule.name) for rule in rules]
    expr.evaluate(scored, checks)
    return time.process_time() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=200.0, help="corpus size")
    parser.add_argument("--spacy-mb", type=float, default=10.0, help="spaCy words: first MB")
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
    print(f"corpus: {docs} documents, {size / 1e6:.1f} MB ({work})", flush=True)
    if args.against:
        against(corpus, args.against, args.paired or 5)
        return
    if args.paired:
        paired(corpus, args.paired)
        return
    runs = run_all(work, corpus, args.spacy_mb, args.datatrove_python)
    lines, ok = summarise(runs)
    print("\n" + "\n".join(lines))
    (work / "summary.json").write_text(json.dumps(summary(runs), indent=1))
    if not ok:
        sys.exit("the two sides did not process the same documents: the ratios above are void")


def run_all(work: Path, corpus: Path, spacy_mb: float, python: str) -> dict[str, dict]:
    """Ours with each word mode on the whole corpus (the figures kept from before), ours with
    spaCy words on the subset, datatrove with whitespace words on the whole corpus and with
    spaCy's on the subset; the subset is its own shards, read by both sides."""
    shards = work / "shards"
    shard(corpus, shards)
    subset = work / f"corpus-first-{spacy_mb:g}MB.parquet"
    if not subset.exists():
        write_subset(corpus, subset, spacy_mb)
    subset_shards = work / f"shards-first-{spacy_mb:g}MB"
    shard(subset, subset_shards)
    runs: dict[str, dict] = {}
    for name, words, text, folder in (
        ("ours whitespace", "whitespace", corpus, shards),
        ("ours spacy", "spacy", corpus, shards),
        ("ours spacy subset", "spacy", subset, subset_shards),
    ):
        ours = runs[name] = run_ours(text, folder, work / name.replace(" ", "-"), words)
        print(
            f"{name}: {ours['docs']} docs, {ours['bytes'] / 1e6:.1f} MB: score "
            f"{ours['cpu_score_s']:.1f} s + filter {ours['cpu_filter_s']:.1f} s CPU (wall "
            f"{ours['wall_s']:.1f} s); signals + rules only {ours['cpu_kernels_s']:.1f} s",
            flush=True,
        )
    for name, words, folder in (
        ("datatrove whitespace", "whitespace", shards),
        ("datatrove spacy", "spacy", subset_shards),
    ):
        theirs = runs[name] = run_datatrove(python, folder, work / name.replace(" ", "-"), words)
        print(
            f"{name}: {theirs['docs']} docs, {theirs['bytes'] / 1e6:.1f} MB: end to end "
            f"{theirs['cpu_s']:.1f} s CPU, filter calls only {theirs['filter_cpu_s']:.1f} s",
            flush=True,
        )
    return runs


def summarise(runs: dict[str, dict]) -> tuple[list[str], bool]:
    """The table, the like-for-like ratios, the old asymmetric ratio (labelled), the TARGET
    lines; False when the two sides of a comparison saw different documents."""
    ws, sp, sub = runs["ours whitespace"], runs["ours spacy"], runs["ours spacy subset"]
    dt_ws, dt_sp = runs["datatrove whitespace"], runs["datatrove spacy"]
    lines = report.table(
        [
            ("dataprep --words whitespace", ws),
            ("dataprep --words spacy", sp),
            ("dataprep --words spacy, the spaCy subset", sub),
            ("datatrove, whitespace words", dt_ws),
            ("datatrove, spaCy words (default), the subset", dt_sp),
        ]
    )
    lines.append(
        "(end to end: Parquet read and written, ours by score + filter, datatrove by its "
        "ParquetReader/Writer; no I/O: our signals + rules on texts in memory, datatrove's "
        "filter() calls only)"
    )
    lines += [""] + report.comparison("whitespace", ws, dt_ws)
    lines += [""] + report.comparison("spacy", sub, dt_sp)
    old_ws = report.rate(ws) / report.rate(dt_ws, "filter_cpu_s")
    old_sp = report.rate(sp) / report.rate(dt_sp, "filter_cpu_s")
    lines += [
        "",
        f"OLD asymmetric ratio (as printed before 2026-11-30, NOT like for like: ours with "
        f"Parquet in and out over the whole corpus / datatrove's filter calls only, texts "
        f"already in memory, spaCy on the subset): spaCy {old_sp:.2f}x, whitespace {old_ws:.2f}x",
    ]
    default_share, _ = report.agreement(ws["reasons"], dt_sp["reasons"])
    lines.append(
        f"defaults (NOT the same rules): ours --words whitespace end to end / datatrove's "
        f"default (spaCy) end to end: {report.rate(ws) / report.rate(dt_sp):.2f}x, same "
        f"keep/drop on {default_share:.2%} of the subset"
    )
    lines += [""] + report.targets(sub, dt_sp)
    ok = report.same_documents(ws, dt_ws) is None and report.same_documents(sub, dt_sp) is None
    return lines, ok


def summary(runs: dict[str, dict]) -> dict:
    """summary.json: every run's counts and rates, and the like-for-like ratios."""
    out: dict[str, Any] = {}
    for name, run in runs.items():
        out[name] = {
            "docs": run["docs"],
            "mb": run["bytes"] / 1e6,
            "cpu_s": run["cpu_s"],
            "mb_per_s_per_core": report.rate(run),
            "no_io_mb_per_s_per_core": report.rate(run, report.no_io_key(run)),
        }
    for words, ours, theirs in (
        ("whitespace", runs["ours whitespace"], runs["datatrove whitespace"]),
        ("spacy", runs["ours spacy subset"], runs["datatrove spacy"]),
    ):
        share, classes = report.agreement(ours["reasons"], theirs["reasons"])
        out[f"ratio {words}"] = {
            "end_to_end": report.rate(ours) / report.rate(theirs),
            "no_io": report.rate(ours, "cpu_kernels_s") / report.rate(theirs, "filter_cpu_s"),
            "agreement": share,
            "classes": dict(classes),
        }
    return out


if __name__ == "__main__":
    main()
