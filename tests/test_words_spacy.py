"""`--words spacy` against spaCy itself: tokens recorded from spaCy 3.8 `spacy.blank("en")`.

spaCy is not installed here (nor a dependency), so its output for these strings was recorded
once (in a venv with spaCy 3.8: `[t.text.strip() for t in nlp(s) if t.text.strip()]`, as
datatrove's SpaCyTokenizer keeps them) and is stored below; every string comes from or
imitates real text on this machine (licences, copyright files, changelogs, man pages).
benchmarks/spacy_words_agreement.py measures the agreement on megabytes of such text.
"""

from __future__ import annotations

import unicodedata

import pyarrow as pa
import pytest

from dataprep.quality import kernels_spacy, signals

# (text, spaCy 3.8 blank("en") tokens, stripped, empty ones dropped)
SPACY_38 = [
    ("Ibid., id. at 5; cf. d.", ["Ibid", ".", ",", "i", "d.", "at", "5", ";", "cf", ".", "d."]),
    (
        "wouldn't've Shouldn't dont cannot gonna",
        ["would", "n't", "'ve", "Should", "n't", "do", "nt", "can", "not", "gon", "na"],
    ),
    (
        "Copyright (C) 2007 Free Software Foundation, Inc. <https://fsf.org/>",
        [
            "Copyright",
            "(",
            "C",
            ")",
            "2007",
            "Free",
            "Software",
            "Foundation",
            ",",
            "Inc.",
            "<",
            "https://fsf.org/",
            ">",
        ],
    ),
    (
        "Everyone is permitted to copy and distribute verbatim copies",
        ["Everyone", "is", "permitted", "to", "copy", "and", "distribute", "verbatim", "copies"],
    ),
    (
        "don't can't won't isn't it's you'll we're they've I'd I'm",
        [
            "do",
            "n't",
            "ca",
            "n't",
            "wo",
            "n't",
            "is",
            "n't",
            "it",
            "'s",
            "you",
            "'ll",
            "we",
            "'re",
            "they",
            "'ve",
            "I",
            "'d",
            "I",
            "'m",
        ],
    ),
    (
        "(see e.g. the GNU GPL, i.e. version 3).",
        ["(", "see", "e.g.", "the", "GNU", "GPL", ",", "i.e.", "version", "3", ")", "."],
    ),
    (
        "http://www.apache.org/licenses/LICENSE-2.0.",
        ["http://www.apache.org/licenses/LICENSE-2.0", "."],
    ),
    (
        "<john.doe@example.com>, jane@example.org;",
        ["<", "john.doe@example.com", ">", ",", "jane@example.org", ";"],
    ),
    (
        "state-of-the-art a--b x---y 1-2 3-a",
        [
            "state",
            "-",
            "of",
            "-",
            "the",
            "-",
            "art",
            "a",
            "--",
            "b",
            "x",
            "---",
            "y",
            "1",
            "-",
            "2",
            "3",
            "-",
            "a",
        ],
    ),
    (
        "3.14 1,000 10km 29K 5kg. 100% $5 US$10 €20 C$3",
        [
            "3.14",
            "1,000",
            "10",
            "km",
            "29",
            "K",
            "5",
            "kg",
            ".",
            "100",
            "%",
            "$",
            "5",
            "US$",
            "10",
            "€",
            "20",
            "C$",
            "3",
        ],
    ),
    (
        "U.S.A. Dr. Smith vs. Mr. Jones etc.",
        ["U.S.A.", "Dr.", "Smith", "vs.", "Mr.", "Jones", "etc", "."],
    ),
    (
        "\"quoted\" 'single' `tick' ``double''",
        ['"', "quoted", '"', "'", "single", "'", "`", "tick", "'", "`", "`", "double", "''"],
    ),
    ("end... wait.... and…so……", ["end", "...", "wait", "....", "and", "…", "so", "……"]),
    (
        "foo.Bar foo/bar a:b x=y a<b c>d",
        [
            "foo",
            ".",
            "Bar",
            "foo",
            "/",
            "bar",
            "a",
            ":",
            "b",
            "x",
            "=",
            "y",
            "a",
            "<",
            "b",
            "c",
            ">",
            "d",
        ],
    ),
    (
        "version 1.2.3-1ubuntu2 (2023-01-05)",
        ["version", "1.2.3", "-", "1ubuntu2", "(", "2023", "-", "01", "-", "05", ")"],
    ),
    (
        "-- Jane Doe <jane@debian.org>  Mon, 01 Jan 2024 10:00:00 +0200",
        [
            "--",
            "Jane",
            "Doe",
            "<",
            "jane@debian.org",
            ">",
            "Mon",
            ",",
            "01",
            "Jan",
            "2024",
            "10:00:00",
            "+0200",
        ],
    ),
    (
        "* debian/control: bump Standards-Version to 4.6.2.",
        [
            "*",
            "debian",
            "/",
            "control",
            ":",
            "bump",
            "Standards",
            "-",
            "Version",
            "to",
            "4.6.2",
            ".",
        ],
    ),
    (
        "\\fB\\-\\-help\\fR display this help and exit",
        ["\\fB\\-\\-help\\fR", "display", "this", "help", "and", "exit"],
    ),
    (
        '.TH LS 1 "March 2024" "GNU coreutils 9.4"',
        [".TH", "LS", "1", '"', "March", "2024", '"', '"', "GNU", "coreutils", "9.4", '"'],
    ),
    (
        "[optional] {braces} #hash @user ~tilde ^caret",
        ["[", "optional", "]", "{", "braces", "}", "#", "hash", "@user", "~tilde", "^caret"],
    ),
    (
        'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND.',
        [
            "THE",
            "SOFTWARE",
            "IS",
            "PROVIDED",
            '"',
            "AS",
            "IS",
            '"',
            ",",
            "WITHOUT",
            "WARRANTY",
            "OF",
            "ANY",
            "KIND",
            ".",
        ],
    ),
    ("Files: src/*.c debian/*", ["Files", ":", "src/*.c", "debian/", "*"]),
    (
        "(a) (b) (8) (ii) 1) 2.",
        ["(", "a", ")", "(", "b", ")", "(", "8)", "(", "ii", ")", "1", ")", "2", "."],
    ),
    ("you're John's O'Reilly rock'n'roll", ["you", "'re", "John", "'s", "O'Reilly", "rock'n'roll"]),
    ("°C 20°C. 30°F.", ["°", "C", "20", "°", "C", ".", "30", "°", "F", "."]),
    ("emacs-lisp/foo.el:12: warning", ["emacs", "-", "lisp", "/", "foo.el:12", ":", "warning"]),
    (
        "L.A. N.Y.C. a.m. p.m. 10am 5p.m.",
        ["L.A.", "N.Y.C.", "a.m.", "p.m.", "10", "am", "5", "p.m."],
    ),
    ("«Bonjour» l'été — naïve café…", ["«", "Bonjour", "»", "l'été", "—", "naïve", "café", "…"]),
    ("(:-) :) :-( ;) <3 xD", ["(", ":-)", ":)", ":-(", ";)", "<3", "xD"]),
    ('"It\'s over," she said.', ['"', "It", "'s", "over", ",", '"', "she", "said", "."]),
    ("item1,item2 a,b 1,2", ["item1,item2", "a", ",", "b", "1,2"]),
    (
        "www.example.com/path?q=1#frag, ftp://host.org:21/x",
        ["www.example.com/path?q=1#frag", ",", "ftp://host.org:21/x"],
    ),
    (
        "e-mail co-operate re-use 2nd 3rd 1st",
        ["e", "-", "mail", "co", "-", "operate", "re", "-", "use", "2nd", "3rd", "1st"],
    ),
    (
        "http://x.org). foo.txt) README.md:",
        ["http://x.org", ")", ".", "foo.txt", ")", "README.md", ":"],
    ),
    # spaCy's own letter and icon sets, not str.isalpha(): a ligature is no letter, "。" and
    # CJK extension B are, extension G (U+30000) is not; a skin-tone modifier is no icon
    (
        "see the x-ﬁle 中文。--can't 👍🏽great",
        ["see", "the", "x-ﬁle", "中文。", "--", "can't", "👍", "🏽great"],
    ),
    (
        "x-𠀀 x-𰀀 a.𠀀 𰀀. ﬂ-x x-ǅa ᏸ.Ꭰ",
        ["x", "-", "𠀀", "x-𰀀", "a.", "𠀀", "𰀀.", "ﬂ-x", "x", "-", "ǅa", "ᏸ.Ꭰ"],
    ),
    ("a—𪛟 a—𪜀 x,ﬁ", ["a", "—", "𪛟", "a", "—", "𪜀", "x,ﬁ"]),
]


@pytest.mark.parametrize(("text", "want"), SPACY_38, ids=[t[:24] for t, _ in SPACY_38])
def test_tokens_equal_spacy(text: str, want: list[str]) -> None:
    assert kernels_spacy.tokens(text) == want


def _real(word: str) -> bool:
    return any(unicodedata.category(c)[0] not in "PSC" for c in word)


def test_compiled_pass_counts_spacy_tokens() -> None:
    """The scoring pass (words inside `kernels.scan`) counts exactly spaCy's tokens."""
    texts = [text for text, _ in SPACY_38]
    names = ["word_count", "alpha_fraction", "stop_word_count", "top_2_gram_char_fraction"]
    got = {k: v.to_pylist() for k, v in signals.compute(pa.array(texts), names, "spacy").items()}
    for i, (text, want) in enumerate(SPACY_38):
        assert got["word_count"][i] == sum(map(_real, want)), text
        alpha = sum(any(c.isalpha() for c in w) for w in want) / len(want)
        assert got["alpha_fraction"][i] == pytest.approx(alpha), text
        stops = {"the", "be", "to", "of", "and", "that", "have", "with"}
        assert got["stop_word_count"][i] == len(stops & set(want)), text


def test_words_option_is_checked() -> None:
    with pytest.raises(ValueError, match="words must be one of"):
        signals.compute(pa.array(["x"]), ["word_count"], "nltk")
