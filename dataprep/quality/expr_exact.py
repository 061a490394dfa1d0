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

import decimal
import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataprep import arrow_np

Number = int | float
Bound = tuple[str, pa.Scalar]  # a comparison function and the literal it meets


def handles(type_: pa.DataType) -> bool:
    """Integer, floating and decimal columns meet literals here; others as Arrow does."""
    return pa.types.is_integer(type_) or pa.types.is_floating(type_) or pa.types.is_decimal(type_)


def is_float(type_: pa.DataType | None) -> bool:
    return type_ is not None and pa.types.is_floating(type_)


def mixed(
    call: Callable[..., int],
    literal: Callable[[Any], int],
    function: str,
    n: int,
    n_type: pa.DataType,
    x: int,
) -> int:
    """`n FUNCTION x` for integers `n` and floats `x` (steps), exact as Python compares them:
    the rounded float(n) decides wherever it differs from x (rounding keeps the order), and
    where they tie (x is then a whole number) n meets x as an integer."""
    wide = pa.uint64() if pa.types.is_unsigned_integer(n_type) else pa.int64()
    edge = 2.0**64 if wide == pa.uint64() else 2.0**63  # the first whole float past `wide`
    if n_type != wide:
        n = call("cast", n, options=pc.CastOptions.safe(wide))
    rounded = call("cast", n, options=pc.CastOptions.unsafe(pa.float64()))
    rough, tie = call(function, rounded, x), call("equal", rounded, x)
    past = call("greater_equal", x, literal(edge))  # a tie there: n < x
    inside = call("and_kleene", tie, call("invert", past))
    kept = call("if_else", inside, x, literal(0.0))  # whole and in range where it counts
    whole = call("cast", kept, options=pc.CastOptions.safe(wide))
    below = literal(function in ("less", "less_equal", "not_equal"))
    exact = call("if_else", past, below, call(function, n, whole))
    return call("if_else", tie, exact, rough)


def in_array(type_: pa.DataType, values: list[Number]) -> pa.Array:
    """The values that some value of `type_` equals, as an array of `type_`."""
    kept = [v for v in (held(type_, x) for x in values) if v is not None]
    return _array(type_, kept)


def compare(type_: pa.DataType, function: str, value: Number) -> Bound:
    """`n FUNCTION value` for `n` of `type_` as (function, a literal of `type_`) meaning the
    same on every non-null `n`: the value itself when `type_` holds it, else the neighbour
    that keeps the order (`n < 2.5` -> `n <= 2`), or a test every value passes or fails
    with nulls left null (`n == 2.5` -> `n < lowest`; "invert_less": not `n < lowest`)."""
    value_held = held(type_, value)
    if value_held is not None:
        return function, _scalar(type_, value_held)
    grid = _grid(type_)
    if grid is None:  # floating: no value lies below -inf, NaN included
        lowest = highest = _scalar(type_, -math.inf)
    else:
        lowest, highest = (_scalar(type_, _grid_value(type_, v)) for v in grid[1:])
    if function in ("equal", "not_equal"):
        return ("less" if function == "equal" else "invert_less"), lowest
    if isinstance(value, float) and math.isnan(value):
        return "less", lowest  # every order comparison with NaN is false
    below = function in ("less", "less_equal")
    if grid is not None:  # v is off the grid or out of range: n < v and n <= v are n <= floor
        step, low, high = grid
        if math.isinf(value):
            floor = high if value > 0 else low - step
        else:
            floor = math.floor(Fraction(value) / step) * step
        if floor >= high:
            return ("less_equal" if below else "greater"), highest
        if floor < low:
            return ("less" if below else "greater_equal"), lowest
        return ("less_equal" if below else "greater"), _scalar(type_, _grid_value(type_, floor))
    # a float type: `near` is the closest value it holds; none lies between it and `value`
    dtype = _float_dtype(type_)
    with np.errstate(over="ignore"):
        near = dtype.type(value)
    above = float(near) > value if isinstance(value, float) else int_above(near, value)
    if above:
        return ("less" if below else "greater_equal"), _scalar(type_, near)
    return ("less_equal" if below else "greater"), _scalar(type_, near)


def held(type_: pa.DataType, value: Number) -> Any:
    """`value` as a value of `type_` that equals it exactly, or None if none does."""
    grid = _grid(type_)
    if grid is not None:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        exact, (step, low, high) = Fraction(value), grid
        on_grid = (exact / step).denominator == 1 and low <= exact <= high
        return _grid_value(type_, exact) if on_grid else None
    dtype = _float_dtype(type_)
    with np.errstate(over="ignore"):
        near = dtype.type(value)
    if isinstance(value, int):
        return near if math.isfinite(near) and int(near) == value else None
    # in Python floats: numpy would compare in `dtype` (a float32 2**53 "equals" 2**53 + 2)
    return near if float(near) == value else None  # NaN never equals, so it is never held


def _grid(type_: pa.DataType) -> tuple[Fraction, Fraction, Fraction] | None:
    """An integer or decimal type's values: multiples of a step from low to high."""
    if pa.types.is_integer(type_):
        info = np.iinfo(_int_dtype(type_))
        return Fraction(1), Fraction(int(info.min)), Fraction(int(info.max))
    if pa.types.is_decimal(type_):
        step = Fraction(1, 10**type_.scale)
        high = Fraction(10**type_.precision - 1, 10**type_.scale)
        return step, -high, high
    return None


def _float_dtype(type_: pa.DataType) -> np.dtype:
    return np.dtype(f"f{type_.bit_width // 8}")


def _int_dtype(type_: pa.DataType) -> np.dtype:
    return np.dtype(f"{'u' if pa.types.is_unsigned_integer(type_) else 'i'}{type_.bit_width // 8}")


def _grid_value(type_: pa.DataType, exact: Fraction) -> int | decimal.Decimal:
    """A value on the grid as Python holds it for `type_`: an int, or an exact Decimal."""
    if pa.types.is_integer(type_):
        return int(exact)
    units = int(exact * 10**type_.scale)
    return decimal.Decimal(units).scaleb(-type_.scale)


def _array(type_: pa.DataType, values: list[Any]) -> pa.Array:
    """An array of `type_`: numbers from a buffer (pa.array of Python values imports
    pandas), decimals through pa.array (exact, and rare)."""
    if pa.types.is_decimal(type_):
        return pa.array(values, type_)
    dtype = _int_dtype(type_) if pa.types.is_integer(type_) else _float_dtype(type_)
    flat = np.array(values, dtype)
    return pa.Array.from_buffers(type_, len(flat), [None, pa.py_buffer(flat)])


def _scalar(type_: pa.DataType, value: Any) -> pa.Scalar:
    return _array(type_, [value])[0]


# `literal OP n` is `n MIRROR[OP] literal`
MIRROR = {
    "equal": "equal",
    "not_equal": "not_equal",
    "less": "greater",
    "less_equal": "greater_equal",
    "greater": "less",
    "greater_equal": "less_equal",
}


def int_above(near: np.floating, value: int) -> bool:
    """Whether the float `near` is above the integer `value` (exactly, even past 2**53)."""
    if math.isinf(near):
        return near > 0
    return int(near) > value


def literal(value: bool | int | float | str) -> pa.Scalar:
    """The Arrow scalar `pa.scalar(value)` gives, made from a buffer: `pa.scalar`/`pa.array`
    of Python values import pandas (~0.2 s of CPU in every filter worker)."""
    if isinstance(value, bool):
        return arrow_np.mask(np.array([value]))[0]
    if isinstance(value, int):
        return arrow_np.int64s(np.array([value], np.int64))[0]
    if isinstance(value, float):
        return float64s([value])[0]
    return arrow_np.string(value)


def value_set(values: list[Any], value_kind: str) -> pa.Array:
    """The array `pa.array(values)` gives for an `in [...]` list of one kind."""
    if value_kind == "string":
        return arrow_np.strings(values)
    if value_kind == "bool":
        return arrow_np.mask(np.array(values, dtype=bool))
    if all(isinstance(v, int) for v in values):
        return arrow_np.int64s(np.array(values, np.int64))
    if any(isinstance(v, int) and abs(v) > 2**53 for v in values):
        return pa.array(values)  # pyarrow's own verdict on an int a double cannot hold
    return float64s(values)


def float64s(values: list[float]) -> pa.DoubleArray:
    flat = np.array(values, np.float64)
    return pa.Array.from_buffers(pa.float64(), len(flat), [None, pa.py_buffer(flat)])
