"""pii and clean: precision/recall per kind, and MB/s per core, next to datatrove's PIIFormatter.

    PYTHONPATH=. python benchmarks/bench_pii.py                 # ~1 minute on 2 shared cores
    PYTHONPATH=. python benchmarks/bench_pii.py --docs 4000 --seed 1

Part 1, quality. A seeded generated set (`pii_data.generate`: real licence text with planted
findings of every kind and look-alike distractors) scored span by span (kind, start, end exact):
precision and recall per kind. On real text (the maintainers' addresses in every
/usr/share/doc/*/copyright), the e-mail addresses an independent strict pattern finds before
and after `pii` (after must be 0), and the findings per kind (values never printed).

Part 2, speed, in this one process (one core), CPU seconds: the stage's column function
(`scan`: RE2 pre-checks over the column, Python only around their matches, rewriting) on the
copyright text and on the generated set; datatrove's PIIFormatter (e-mails and IPv4 only, one
Python regex pass each per document) on the same texts, and ours restricted to those two kinds
for the like-for-like ratio. `clean` with its defaults on man pages (roff) and copyright text,
and ftfy's share: ours calls it only on documents an RE2 mojibake pre-check selects; calling
`ftfy.fix_encoding` on every document is timed for comparison.
"""

from __future__ import annotations

import argparse
import gzip
import re
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pii_data import generate  # noqa: E402

from dataprep.quality import clean, pii  # noqa: E402
from dataprep.stages.clean import CleanConfig, clean_text  # noqa: E402
from dataprep.stages.pii import PiiConfig, scan  # noqa: E402

STRICT_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")


def cpu(fn):
    t0 = time.process_time()
    result = fn()
    return result, time.process_time() - t0


def mb(texts: list[str]) -> float:
    return sum(len(t.encode()) for t in texts) / 1e6


def quality(docs: int, seed: int) -> None:
    data = generate(docs, seed)
    tp: Counter[str] = Counter()
    found_n: Counter[str] = Counter()
    planted_n: Counter[str] = Counter()
    for text, planted in data:
        found = {(s.kind, s.start, s.end) for s in pii.find(text)}
        expected = {(p.kind, p.start, p.end) for p in planted}
        tp.update(k for k, *_ in found & expected)
        found_n.update(k for k, *_ in found)
        planted_n.update(k for k, *_ in expected)
    print(f"## generated set: {docs} docs, seed {seed}, {sum(planted_n.values())} planted")
    print("| kind | planted | found | precision | recall |")
    print("|---|---:|---:|---:|---:|")
    for kind in pii.KINDS:
        p = tp[kind] / found_n[kind] if found_n[kind] else 1.0
        r = tp[kind] / planted_n[kind] if planted_n[kind] else 1.0
        print(f"| {kind} | {planted_n[kind]} | {found_n[kind]} | {p:.4f} | {r:.4f} |")


def copyright_texts() -> list[str]:
    paths = sorted(Path("/usr/share/doc").glob("*/copyright"))
    return [p.read_text(errors="replace") for p in paths]


def man_texts(limit: int) -> list[str]:
    paths = sorted(Path("/usr/share/man/man1").glob("*.gz"))[:limit]
    return [gzip.decompress(p.read_bytes()).decode("utf-8", "replace") for p in paths]


def real_text(texts: list[str]) -> None:
    before = sum(len(STRICT_EMAIL.findall(t)) for t in texts)
    out, counts = scan(pa.array(texts), PiiConfig())
    after = sum(len(STRICT_EMAIL.findall(t)) for t in out.to_pylist() if t)
    print(f"\n## real text: {len(texts)} copyright files, {mb(texts):.1f} MB")
    print(f"strict-pattern e-mails before: {before}, after pii: {after}")
    print("findings: " + ", ".join(f"{k}={int(v.sum())}" for k, v in counts.items()))


def man_findings(man: list[str]) -> None:
    arr = pa.array(man)
    cleaned, _, _ = clean_text(
        arr, CleanConfig(), clean.group_column(pa.table({"t": arr}), None), 0
    )
    _, counts = scan(cleaned, PiiConfig(mode="all=count"))
    print(f"\n## real text: {len(man)} man pages (cleaned), {mb(man):.1f} MB")
    print("findings: " + ", ".join(f"{k}={int(v.sum())}" for k, v in counts.items()))


def speed(copyright: list[str], generated: list[str], man: list[str]) -> None:
    print("\n## speed, one core (CPU seconds of this process)")
    print("| what | text | MB | s | MB/s |")
    print("|---|---|---:|---:|---:|")
    rows: dict[tuple[str, str], float] = {}

    def row(what: str, name: str, texts: list[str], fn) -> None:
        _, seconds = cpu(fn)
        rows[(what, name)] = mb(texts) / seconds
        print(f"| {what} | {name} | {mb(texts):.1f} | {seconds:.2f} | {mb(texts) / seconds:.1f} |")

    peer = None
    try:
        from datatrove.pipeline.formatters import PIIFormatter

        peer = PIIFormatter()
    except ImportError:
        print("(datatrove not installed: `pip install datatrove orjson` for the peer rows)")
    for name, texts in (("copyright", copyright), ("generated", generated)):
        arr = pa.array(texts)
        row("pii all kinds", name, texts, lambda a=arr: scan(a, PiiConfig()))
        two = PiiConfig(mode="all=off,email=redact,ip=redact")
        row("pii email+ip", name, texts, lambda a=arr, c=two: scan(a, c))
        if peer is not None:
            row("datatrove PIIFormatter", name, texts, lambda t=texts: [peer.format(x) for x in t])
            ratio = rows[("pii email+ip", name)] / rows[("datatrove PIIFormatter", name)]
            print(f"| ratio ours/datatrove (email+ip) | {name} | | | {ratio:.2f}x |")
    for name, texts in (("man pages", man), ("copyright", copyright)):
        arr = pa.array(texts)
        groups = clean.group_column(pa.table({"t": arr}), None)
        row(
            "clean defaults",
            name,
            texts,
            lambda a=arr, g=groups: clean_text(a, CleanConfig(), g, 0),
        )
        row("clean fix_unicode (gated)", name, texts, lambda a=arr: clean.fix_mojibake(a))
        import ftfy

        row(
            "ftfy.fix_encoding on all",
            name,
            texts,
            lambda t=texts: [ftfy.fix_encoding(x) for x in t],
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=2000, help="generated documents")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--man", type=int, default=1500, help="man pages for clean")
    args = parser.parse_args()
    quality(args.docs, args.seed)
    copyright = copyright_texts()
    real_text(copyright)
    generated = [t for t, _ in generate(args.docs, args.seed + 1)]
    man = man_texts(args.man)
    man_findings(man)
    speed(copyright, generated, man)


if __name__ == "__main__":
    main()
