"""How closely `--words spacy` reproduces spaCy's English tokenizer, token by token and in
Gopher's keep/drop decisions, on real text from this machine.

spaCy is not a dependency: a separate interpreter with spaCy (e.g. the datatrove venv) splits
the same documents the way datatrove's default word tokenizer does (`spacy.blank("en")`,
tokens stripped, empty ones dropped); this process splits them with
`dataprep.quality.kernels_spacy`, and both token lists go through one copy of datatrove's
Gopher quality + repetition rules (below), so a decision differs only where the words do.

    python benchmarks/spacy_words_agreement.py --mb 5 --spacy-python /tmp/h7dt/bin/python
"""

from __future__ import annotations

import argparse
import glob
import gzip
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from dataprep.quality.kernels_spacy import tokens

SOURCES = ("/usr/share/common-licenses/*", "/usr/share/doc/*/copyright")
SOURCES += ("/usr/share/doc/*/changelog*.gz", "/usr/share/man/**/*.gz")
SPACY = """
import json, sys, spacy
nlp = spacy.blank("en")
nlp.max_length = 10**9
for line in sys.stdin:
    words = [t.text.strip() for t in nlp(json.loads(line))]
    print(json.dumps([w for w in words if w]))
"""
PUNCT = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")  # datatrove's PUNCTUATION_SET, ASCII part
STOP = {"the", "be", "to", "of", "and", "that", "have", "with"}


def corpus(mb: float, per_source: float) -> list[str]:
    texts: list[str] = []
    for pattern in SOURCES:
        size = 0
        for name in sorted(glob.glob(pattern, recursive=True)):
            if size >= per_source * mb * 1e6 or os.path.isdir(name):
                continue
            try:
                raw = gzip.open(name).read() if name.endswith(".gz") else Path(name).read_bytes()
            except (OSError, EOFError):
                continue
            texts.append(raw.decode("utf-8", "replace"))
            size += len(raw)
    return texts


def gopher_words_keep(text: str, words: list[str]) -> str:
    """datatrove's word-dependent Gopher rules (quality, then n-grams); "" keeps."""
    n = len(words)
    real = [w for w in words if any(c not in PUNCT for c in w)]
    if not 50 <= len(real) <= 100_000:
        return "word_count"
    mean = sum(map(len, real)) / len(real)
    if not 3 <= mean <= 10:
        return "mean_word_length"
    if (text.count("#") / n > 0.1) or (text.count("...") + text.count("\u2026")) / n > 0.1:
        return "symbol_to_word"
    if sum(any(c.isalpha() for c in w) for w in words) / n < 0.8:
        return "alpha_fraction"
    if len(STOP.intersection(words)) < 2:
        return "stop_words"
    for k, limit in ((2, 0.2), (3, 0.18), (4, 0.16)):
        grams = Counter(" ".join(words[i : i + k]) for i in range(n - k + 1))
        if grams:
            gram, count = grams.most_common(1)[0]
            if len(gram) * count / len(text) > limit:
                return f"top_{k}_gram"
    for k, limit in zip(range(5, 11), (0.15, 0.14, 0.13, 0.12, 0.11, 0.10), strict=True):
        seen, dup, i = set(), 0, 0
        while i < n - k + 1:
            gram = "".join(words[i : i + k])
            if gram in seen:
                dup += len(gram)
                i += k
            else:
                seen.add(gram)
                i += 1
        if dup / len(text) > limit:
            return f"dup_{k}_gram"
    return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=5.0)
    parser.add_argument("--spacy-python", required=True)
    parser.add_argument("--examples", type=int, default=15)
    args = parser.parse_args()
    texts = [t for t in corpus(args.mb, 0.25) if t.strip()]
    with tempfile.TemporaryFile("w+") as feed:
        feed.writelines(json.dumps(t) + "\n" for t in texts)
        feed.seek(0)
        done = subprocess.run(
            [args.spacy_python, "-c", SPACY], stdin=feed, capture_output=True, text=True
        )
    if done.returncode:
        sys.exit(done.stderr)
    theirs = [json.loads(line) for line in done.stdout.splitlines()]
    same_docs = same_tokens = total = agree = 0
    diffs: Counter[tuple[str, str]] = Counter()
    flips: Counter[tuple[str, str]] = Counter()
    for text, want in zip(texts, theirs, strict=True):
        got = tokens(text)
        total += len(want)
        same_docs += got == want
        a, b = Counter(got), Counter(want)
        same_tokens += sum((a & b).values())
        for word in list((a - b).elements())[:3]:
            diffs[("ours", word)] += 1
        for word in list((b - a).elements())[:3]:
            diffs[("spacy", word)] += 1
        ours, spacy = gopher_words_keep(text, got), gopher_words_keep(text, want)
        agree += (ours == "") == (spacy == "")
        if (ours == "") != (spacy == ""):
            flips[(ours or "keep", spacy or "keep")] += 1
    n = len(texts)
    print(f"{n} documents, {sum(map(len, texts)) / 1e6:.1f} MB, {total:,} spaCy tokens")
    print(f"documents with identical tokens: {same_docs / n:.2%}")
    print(f"tokens in common (multiset): {same_tokens / max(total, 1):.4%}")
    print(f"Gopher word-rule decisions agreeing: {agree / n:.2%}  ({n - agree} differ)")
    for (ours, spacy), count in flips.most_common():
        print(f"  ours {ours} / spaCy {spacy}: {count}")
    print("most frequent token differences (side, token):")
    for (side, word), count in diffs.most_common(args.examples):
        print(f"  {count:6d}  {side:5s} {word!r}")


if __name__ == "__main__":
    main()
