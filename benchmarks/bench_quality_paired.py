"""Paired rounds for bench_quality.py: `--paired N` (our two word modes alternating) and
`--against REV` (the kernels of git revision REV and of this tree alternating in one
process). On a shared machine a per-round ratio of CPU seconds is steadier than one run's MB/s.
"""

from __future__ import annotations

import importlib
import io
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def forget_words() -> None:
    """Empty the spaCy words cache this thread kept from an earlier pass over the same text:
    each timed pass starts cold, as a `score` run over new text does."""
    from dataprep.quality import kernels

    _forget(getattr(getattr(kernels, "_LOCAL", None), "cache", None))


def _forget(cache: Any) -> None:
    """Zero a words cache: one array (now) or a tuple of them (revisions before 2026-11-30)."""
    for part in cache if isinstance(cache, tuple) else () if cache is None else (cache,):
        part[:] = 0


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
