"""Columns a stage adds by name (score's signals, pii's `pii_<kind>` counts) must not silently
replace an input column of the same name: that is the user's data (their own `language`
labels), lost with exit 0. A column an earlier run of the same stage wrote (the input's lineage
says which) is the stage's own and is replaced, so a rerun stays idempotent; anything else
stops the stage in one sentence unless `--replace-columns` asks for the overwrite.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pyarrow as pa

from dataprep.errors import DataprepError

History = Iterable[tuple[str, dict[str, Any]]]  # (op, config) per earlier stage, oldest first


def written_before(
    history: History, stage: str, columns_of: Callable[[dict[str, Any]], Iterable[str]]
) -> set[str]:
    """The columns earlier runs of `stage` added (`columns_of` reads them off a config)."""
    names: set[str] = set()
    for op, config in history:
        if op == stage:
            names.update(columns_of(config))
    return names


def check_added(
    adds: Iterable[str],
    schema: pa.Schema,
    ours: set[str],
    *,
    stage: str,
    named: tuple[str, str],
    leave_out: tuple[str, str],
) -> None:
    """One sentence naming the input columns among `adds` that `ours` (what earlier runs of
    `stage` wrote) does not hold. `named`: what the stage adds (one, several); `leave_out`:
    the other way out besides renaming (for one column, for several)."""
    theirs = [n for n in adds if n in schema.names and n not in ours]
    if not theirs:
        return
    listed = ", ".join(repr(n) for n in theirs)
    one = len(theirs) == 1
    it = "it" if one else "them"
    raise DataprepError(
        f"the input's column{'' if one else 's'} {listed} {'is' if one else 'are'} named "
        f"like {named[0] if one else named[1]} {stage} adds and no earlier {stage} wrote "
        f"{it}: rename {it}, {leave_out[0] if one else leave_out[1]}, or pass "
        "--replace-columns to overwrite (the values are lost)"
    )
