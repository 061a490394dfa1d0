"""Review (H7) of clean's strip_control: controls that separate words are deleted outright.

Form feed (U+000C: a page break in licences, man pages and source files) and NEL (U+0085:
the line break of EBCDIC-converted text) are removed with nothing in their place, so the
words on either side are glued: "end of page\\fNext page" -> "end of pageNext page". ftfy,
the oracle clean cites for what goes (ftfy.chardata.CONTROL_CHARS), keeps both; Python reads
each as whitespace (str.split) and NEL as a line break (str.splitlines). CR already becomes LF.

Oracle: the words (str.split) of a text are the same after strip_control.
"""

from __future__ import annotations

import ftfy.chardata
import pyarrow as pa

from dataprep.quality.clean import strip_control

TEXTS = [
    "end of page\x0cNext page starts here",
    "first line\x85second line",
    "GNU GENERAL PUBLIC LICENSE\x0c\nPreamble",  # already beside a newline: words stay apart
]


def test_word_separating_controls_do_not_glue_words() -> None:
    assert all(ord(c) not in ftfy.chardata.CONTROL_CHARS for c in "\x0c\x85")  # ftfy keeps them
    out = strip_control(pa.array(TEXTS)).to_pylist()
    assert [t.split() for t in out] == [t.split() for t in TEXTS]
