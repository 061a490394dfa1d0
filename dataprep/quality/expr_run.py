"""Running a checked `--where` (`dataprep.quality.expr`): its steps on a table's columns.

The translation is a flat list of compute calls (`Where.steps`) that `evaluate` runs on the
table's columns, with literals made from buffers: `pc.scalar`/`pa.array` of Python values and
Acero (through `pyarrow.dataset`) make pyarrow import pandas, ~0.2 s of CPU in every `filter`
worker that needs nothing of it. `Where.expression` is the same rules as a pyarrow Expression.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataprep import arrow_np
from dataprep.errors import DataprepError

# one step of a translated expression: a column by name, a literal, or a compute function
# called with earlier steps' results (by index) and its options
Step = tuple[str, Any, tuple[int, ...], pc.FunctionOptions | None]


@dataclass(frozen=True)
class Where:
    """A checked expression: its text, its steps (the last one is the condition) and the
    columns it reads."""

    text: str
    steps: tuple[Step, ...]
    columns: tuple[str, ...]

    @cached_property
    def expression(self) -> pc.Expression:
        """The same condition as a pyarrow Expression (for Acero or a dataset scan)."""
        done: list[pc.Expression] = []
        for what, value, args, options in self.steps:
            if what == "column":
                done.append(pc.field(value))
            elif what == "literal":
                done.append(pc.scalar(value))
            else:
                done.append(pc.Expression._call(value, [done[i] for i in args], options))
        return done[-1]

    def run(self, table: pa.Table) -> Any:
        """The condition on every row of `table` (an Arrow array, or a scalar if constant)."""
        done: list[Any] = []
        for what, value, args, options in self.steps:
            if what == "column":
                done.append(table.column(value))
            elif what == "literal":
                done.append(value)
            else:
                try:
                    done.append(pc.call_function(value, [done[i] for i in args], options))
                except pa.ArrowInvalid as exc:  # add_checked & co.: a 64-bit overflow
                    raise DataprepError(
                        f"--where {self.text!r} overflows 64-bit integers on a row "
                        f"({str(exc).strip()}); write a float literal (4.0, not 4) to "
                        "compute in floats"
                    ) from None
        return done[-1]


def evaluate(table: pa.Table, tests: Sequence[Where | pc.Expression]) -> list[np.ndarray]:
    """Each condition's value on every row as a bool array (null counts as False). A `Where`
    runs its steps on the columns; a bare Expression goes through Acero."""
    out = []
    for test in tests:
        value = test.run(table) if isinstance(test, Where) else _acero(table, test)
        if isinstance(value, pa.Scalar):
            out.append(np.full(table.num_rows, value.is_valid and bool(value.as_py())))
        else:
            out.append(arrow_np.bools(value, null=False))
    return out


def _acero(table: pa.Table, expression: pc.Expression) -> pa.ChunkedArray:
    import pyarrow.acero as acero

    plan = acero.Declaration.from_sequence(
        [
            acero.Declaration("table_source", acero.TableSourceNodeOptions(table)),
            acero.Declaration("project", acero.ProjectNodeOptions([expression], ["e"])),
        ]
    )
    return plan.to_table(use_threads=False).column(0)
