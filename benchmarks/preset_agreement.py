"""`filter --preset gopher|c4|fineweb` against datatrove's own filter chains, document by document.

    PYTHONPATH=. python benchmarks/preset_agreement.py [--clean]

Real text of this machine: 400 `/usr/share/doc/*/copyright` files, the licences in
`/usr/share/common-licenses`, 300 man pages of man1 (raw roff, or after `clean` with --clean).
datatrove's chains are the ones its filters ship (FineWeb's as its example pipeline runs it:
Gopher repetition, Gopher quality, C4 without the punctuation rule, FineWeb's own). Words are
whitespace words on both sides (datatrove's default, spaCy, is not installed here; `score
--words spacy` is measured in docs/quality-signals.md) and C4 splits sentences with a regex, so
`min_sentences` differences are approximate. Prints agreement and each disagreement class as
(our first failing rule, datatrove's), so every class can be explained.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import re
from pathlib import Path

import numpy as np
import pyarrow as pa


def corpus() -> list[str]:
    docs = [
        p.read_text(errors="replace")
        for p in sorted(Path("/usr/share/doc").glob("*/copyright"))[:400]
    ]
    docs += [
        p.read_text(errors="replace")
        for p in sorted(Path("/usr/share/common-licenses").iterdir())
        if p.is_file()
    ]
    for path in sorted(Path("/usr/share/man/man1").glob("*.gz"))[:300]:
        try:
            docs.append(gzip.open(path).read().decode("utf-8"))
        except UnicodeDecodeError:
            continue
    return docs


def datatrove_chains() -> dict[str, list]:
    import datatrove.pipeline.filters.c4_filters as c4
    import datatrove.pipeline.filters.fineweb_quality_filter as fw
    import datatrove.pipeline.filters.gopher_quality_filter as gq
    import datatrove.pipeline.filters.gopher_repetition_filter as gr

    def whitespace(text: str, language: str | None = None) -> list[str]:
        return text.split()

    def sentences(line: str, language: str | None = None) -> list[str]:
        return [s for s in re.split(r"(?<=[.?!])\s+", line) if s] or [line]

    for module in (gq, gr, fw, c4):
        module.split_into_words = whitespace
    c4.split_into_sentences = sentences
    gopher = [
        ("gopher_repetition", gr.GopherRepetitionFilter()),
        ("gopher_quality", gq.GopherQualityFilter()),
    ]
    return {
        "gopher": gopher,
        "c4": [("c4", c4.C4QualityFilter())],
        "fineweb": [
            *gopher,
            ("c4", c4.C4QualityFilter(filter_no_terminal_punct=False)),
            ("fineweb", fw.FineWebQualityFilter()),
        ],
    }


def theirs(chain: list, text: str) -> str | None:
    from datatrove.data import Document

    for name, step in chain:
        kept = step.filter(Document(text=text, id="x"))
        if not (kept if isinstance(kept, bool) else kept[0]):
            return name
    return None


def ours(preset: str, texts: list[str]) -> list[str | None]:
    from dataprep.quality import expr
    from dataprep.stages.filter import FilterConfig, plan
    from dataprep.stages.score import add_signals

    table = pa.table({"text": texts})
    names, checked, missing = plan(FilterConfig(preset=preset, mark_only=True), table.schema)
    passed = expr.evaluate(add_signals(table, "text", missing), list(checked))
    fails = ~np.vstack(passed)
    return [
        names[int(np.argmax(fails[:, i]))] if fails[:, i].any() else None for i in range(len(texts))
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", action="store_true", help="clean (defaults) the text first")
    args = parser.parse_args()
    texts = corpus()
    if args.clean:
        from dataprep.quality import clean
        from dataprep.stages.clean import CleanConfig, clean_text

        arr = pa.array(texts)
        arr, _, _ = clean_text(
            arr, CleanConfig(), clean.group_column(pa.table({"t": arr}), None), 0
        )
        texts = [t for t in arr.to_pylist() if t]
    print(f"{len(texts)} documents{' after clean' if args.clean else ''}")
    for preset, chain in datatrove_chains().items():
        mine = ours(preset, texts)
        other = [theirs(chain, t) for t in texts]
        same = sum((a is None) == (b is None) for a, b in zip(mine, other, strict=True))
        classes = collections.Counter(
            (a, b) for a, b in zip(mine, other, strict=True) if (a is None) != (b is None)
        )
        kept = (sum(a is None for a in mine), sum(b is None for b in other))
        print(
            f"{preset:8s} same decision {same}/{len(texts)} ({same / len(texts):.4f}); "
            f"kept ours {kept[0]}, datatrove {kept[1]}; classes (ours, datatrove): "
            f"{dict(classes.most_common())}"
        )


if __name__ == "__main__":
    main()
