"""Exact numeric literals for `--where`: a literal meets a column in the column's own type.

Arrow compares an int64 column with a float literal (or a float column with an int past
2**53) after casting one side to double, so `n == 9007199254740992.0` kept the row holding
9007199254740993, and a mixed `in [9007199254740993, 1.5]` list could not even be built
(ArrowInvalid). Python compares int and float exactly; so does this module: each literal is
turned into the column's type when some value of that type equals it, and otherwise an
order comparison moves to the nearest value of the type that keeps its meaning (`n < 2.5`
is `n <= 2` on integers). Nothing is cast at run time, so no row changes its value.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa

Number = int | float


def exact_type(type_: pa.DataType) -> np.dtype | None:
    """The numpy dtype of an integer or floating Arrow type (None for others: decimals)."""
    if pa.types.is_integer(type_):
        return np.dtype(
            f"{'u' if pa.types.is_unsigned_integer(type_) else 'i'}{type_.bit_width // 8}"
        )
    if pa.types.is_floating(type_):
        return np.dtype(f"f{type_.bit_width // 8}")
    return None


def convert(dtype: np.dtype, value: Number) -> Any:
    """`value` as a numpy value of `dtype` that equals it exactly, or None if none does."""
    if dtype.kind in "iu":
        if isinstance(value, float):
            if not math.isfinite(value) or value != math.floor(value):
                return None
            value = int(value)
        info = np.iinfo(dtype)
        return dtype.type(value) if info.min <= value <= info.max else None
    with np.errstate(over="ignore"):
        near = dtype.type(value)
    if isinstance(value, int):
        return near if math.isfinite(near) and int(near) == value else None
    # in Python floats: numpy would compare in `dtype` (a float32 2**53 "equals" 2**53 + 2)
    return near if float(near) == value else None  # NaN never equals, so it is never held


def array(dtype: np.dtype, type_: pa.DataType, values: list[Number]) -> pa.Array:
    """The values that some value of `type_` equals, as an array of `type_` (built from a
    buffer: pa.array of Python values imports pandas)."""
    kept = [v for v in (convert(dtype, x) for x in values) if v is not None]
    flat = np.array(kept, dtype)
    return pa.Array.from_buffers(type_, len(flat), [None, pa.py_buffer(flat)])


def scalar(dtype: np.dtype, type_: pa.DataType, value: Any) -> pa.Scalar:
    return array(dtype, type_, [value])[0]


# `literal OP n` is `n MIRROR[OP] literal`
MIRROR = {
    "equal": "equal",
    "not_equal": "not_equal",
    "less": "greater",
    "less_equal": "greater_equal",
    "greater": "less",
    "greater_equal": "less_equal",
}


def compare(dtype: np.dtype, function: str, value: Number) -> tuple[str, Any]:
    """`n FUNCTION value` for `n` of `dtype` as (function, a numpy value of `dtype`) meaning
    the same on every non-null `n`: the value itself when `dtype` holds it, else the
    neighbour that keeps the order (`n < 2.5` -> `n <= 2`), or a test every value passes or
    fails with nulls left null (`n == 2.5` -> `n < lowest`)."""
    held = convert(dtype, value)
    if held is not None:
        return function, held
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lowest, highest = dtype.type(info.min), dtype.type(info.max)
    else:
        lowest = highest = dtype.type(-np.inf)  # no value is below -inf, NaN included
    if function == "equal":
        return "less", lowest  # false everywhere
    if function == "not_equal":
        return "invert_less", lowest  # true everywhere
    if isinstance(value, float) and math.isnan(value):
        return "less", lowest  # every order comparison with NaN is false
    if dtype.kind in "iu":
        # value is a non-integer or out of range: n < v and n <= v are n <= floor(v)
        if math.isinf(value):
            floor = info.max if value > 0 else info.min - 1
        else:
            floor = math.floor(value)
        below = function in ("less", "less_equal")
        if floor >= info.max:
            return ("less_equal" if below else "greater"), highest
        if floor < info.min:
            return ("less" if below else "greater_equal"), lowest
        return ("less_equal" if below else "greater"), dtype.type(floor)
    # a float type: `near` is the closest value it holds; none lies between it and `value`
    with np.errstate(over="ignore"):
        near = dtype.type(value)
    above = float(near) > value if isinstance(value, float) else int_above(near, value)
    below = function in ("less", "less_equal")
    if above:
        return ("less" if below else "greater_equal"), near
    return ("less_equal" if below else "greater"), near


def int_above(near: np.floating, value: int) -> bool:
    """Whether the float `near` is above the integer `value` (exactly, even past 2**53)."""
    if math.isinf(near):
        return near > 0
    return int(near) > value
