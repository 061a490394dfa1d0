"""Review (H7) of `--where` (filter, head): an integer literal past int64.

`word_count > 99999999999999999999999999` reaches pyarrow as a Python int it cannot hold
(`pc.scalar`), and the command stops with "OverflowError: Python int too large to convert to
C long" and a traceback (exit 1) instead of comparing (no row has that many words) or one
sentence. The same literal as a float (`1e26`) works.

Oracle: Python's own comparison of each row's value with the literal.
"""

from __future__ import annotations

import pyarrow as pa
import pytest

from dataprep.errors import DataprepError
from dataprep.quality import expr

SCHEMA = pa.schema([("word_count", pa.int64()), ("score", pa.float64()), ("lang", pa.string())])
TABLE = pa.table(
    {"word_count": [0, 5, 2**62], "score": [0.5, -1.0, 3.0], "lang": ["en", "de", "fr"]},
    schema=SCHEMA,
)


@pytest.mark.parametrize(
    ("text", "oracle"),
    [
        ("word_count > 99999999999999999999999999", lambda r: r["word_count"] > 10**26),
        ("score < -99999999999999999999999999", lambda r: r["score"] < -(10**26)),
        ("word_count in [1, 99999999999999999999999999]", lambda r: r["word_count"] in (1,)),
    ],
    ids=["int-column", "float-column", "in-list"],
)
def test_a_huge_integer_literal_compares_or_is_one_sentence(text: str, oracle) -> None:
    try:
        where = expr.parse(text, SCHEMA, "--where")
        got = expr.evaluate(TABLE, [where.expression])[0].tolist()
    except DataprepError as err:  # refusing it in one sentence is fine too
        assert "\n" not in str(err)
        return
    assert got == [oracle(r) for r in TABLE.to_pylist()]
