"""`--where` expressions: a safe subset of Python syntax turned into a pyarrow Expression.

The text is parsed with `ast` and only a whitelist of node kinds is translated (comparisons,
and/or/not, arithmetic, `in [...]`, `is None`, column names, literals); anything else is
refused with one sentence. Nothing is ever evaluated as Python. Types are checked against the
schema the rows will have, so `word_count > 'a'` or a misspelt column stops before any task
runs. Rows where the expression is null (a null value in a compared column) are not kept.

Numbers compare as in Python, exactly: a numeric literal meets a column in the column's own
type (`expr_exact`), so `n == 2.0**53` or `n in [9007199254740993, 1.5]` never rounds an
integer past 2**53 through a double. `in [...]` takes literals of the left side's kind
(`-3` included) and None, which holds a null row as Python's `None in [None]` does. The
translation is a flat list of compute calls (`Where`, `evaluate`: `expr_run`).
"""

from __future__ import annotations

import ast
import difflib
import keyword
import operator
import re
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from dataprep.errors import DataprepError
from dataprep.quality import expr_exact
from dataprep.quality.expr_run import Step, Where, evaluate

__all__ = ["Where", "evaluate", "kind", "parse"]

# the compute functions pyarrow's Expression operators call (==, !=, <, <=, >, >=)
_COMPARE: dict[type, str] = {
    ast.Eq: "equal",
    ast.NotEq: "not_equal",
    ast.Lt: "less",
    ast.LtE: "less_equal",
    ast.Gt: "greater",
    ast.GtE: "greater_equal",
}
_PYTHON = dict(zip(_COMPARE.values(), ("eq", "ne", "lt", "le", "gt", "ge"), strict=True))
# checked: an int64 overflow stops with one sentence (expr_run) instead of wrapping around
_ARITH: dict[type, str] = {
    ast.Add: "add_checked",
    ast.Sub: "subtract_checked",
    ast.Mult: "multiply_checked",
}
_NAMES = {"true": True, "false": False, "True": True, "False": False}
_ALLOWED = (
    " (use column names, col('any-name'), numbers, 'strings', comparisons, and/or/not, "
    "+ - * /, in [...])"
)


def kind(type_: pa.DataType) -> str:
    """numeric / string / bool / other: what a value may be compared with."""
    if pa.types.is_boolean(type_):
        return "bool"
    if pa.types.is_integer(type_) or pa.types.is_floating(type_) or pa.types.is_decimal(type_):
        return "numeric"
    if pa.types.is_string(type_) or pa.types.is_large_string(type_):
        return "string"
    if pa.types.is_null(type_):
        return "null"
    return "other"


def _literal_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "numeric"
    if isinstance(value, str):
        return "string"
    return "null" if value is None else "other"


def parse(
    text: str,
    schema: pa.Schema | Mapping[str, pa.DataType],
    option: str,
    known_as: str = "a column of the input or a signal filter can compute",
) -> Where:
    """Check `text` against `schema` (column -> type) and translate it; DataprepError else.
    `known_as` says what a name must be, for the error on an unknown one."""
    types = {f.name: f.type for f in schema} if isinstance(schema, pa.Schema) else dict(schema)
    columns: list[str] = []
    translator = _Translator(types, option, text, columns, known_as)
    try:
        tree = ast.parse(text.strip(), mode="eval")
        root, result = translator.visit(tree.body)
    except SyntaxError as exc:
        why = f"{exc.msg}{_keyword_hint(text)}"
        raise DataprepError(f"{option} {text!r} is not a valid expression ({why})") from None
    except (RecursionError, MemoryError):
        # Python's parser and the translator recurse per nesting level
        raise DataprepError(
            f"{option} {_clip(text)!r} nests too deep (thousands of operators in a row); "
            "write it flatter, e.g. with and/or between comparisons"
        ) from None
    if result != "bool":
        raise DataprepError(
            f"{option} {text!r} is a {result} value, not a condition; compare it "
            "(e.g. word_count >= 50)"
        )
    steps = tuple(translator.steps[: root + 1])  # the condition is the last step
    return Where(text, steps, tuple(dict.fromkeys(columns)))


def _keyword_hint(text: str) -> str:
    """A column named like a Python keyword (a `class` label) parses only as col('class')."""
    words = re.findall(r"[^\W\d]\w*", text)
    named = [w for w in words if keyword.iskeyword(w) and w not in _OPERATORS]
    return f"; a column named {named[0]!r} is written col({named[0]!r})" if named else ""


_OPERATORS = {"and", "or", "not", "in", "is", "None", "True", "False"}


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else f"{text[:width]}... ({len(text):,} characters)"


class _Translator:
    def __init__(
        self, types: dict[str, pa.DataType], option: str, text: str, out: list[str], known_as: str
    ):
        self.types, self.option, self.text, self.columns = types, option, text, out
        self.known_as = known_as
        self.steps: list[Step] = []
        self.empty: list[Any] = []  # each step's result on zero rows: its Arrow type

    def step(self, what: str, value: Any, args: tuple[int, ...] = (), options: Any = None) -> int:
        """Append a step; its index stands for its result."""
        self.steps.append((what, value, args, options))
        return len(self.steps) - 1

    def call(self, function: str, *args: int, options: Any = None) -> int:
        return self.step("call", function, args, options)

    def literal(self, value: bool | int | float | str) -> int:
        return self.step("literal", expr_exact.literal(value))

    def type_of(self, index: int) -> pa.DataType | None:
        """The Arrow type of a step's result (its steps run on zero rows); None if unknown."""
        try:
            for what, value, args, options in self.steps[len(self.empty) : index + 1]:
                if what == "column":
                    self.empty.append(pa.nulls(0, self.types[value]))
                elif what == "literal":
                    self.empty.append(value)
                else:
                    self.empty.append(
                        pc.call_function(value, [self.empty[i] for i in args], options)
                    )
        except (pa.ArrowException, TypeError, ValueError):
            return None
        return self.empty[index].type

    def number(self, index: int) -> int | float | None:
        """The Python number a step holds when it is a numeric literal."""
        what, value = self.steps[index][:2]
        if what != "literal" or not (
            pa.types.is_integer(value.type) or pa.types.is_floating(value.type)
        ):
            return None
        return value.as_py()

    def fail(self, why: str) -> DataprepError:
        return DataprepError(f"{self.option} {self.text!r}: {why}")

    def visit(self, node: ast.AST) -> tuple[Any, str]:
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            what = ast.unparse(node) if isinstance(node, ast.expr) else type(node).__name__
            raise self.fail(f"{what!r} is not allowed{_ALLOWED}")
        return method(node)

    def _Name(self, node: ast.Name) -> tuple[Any, str]:
        if node.id in _NAMES:
            return self.literal(_NAMES[node.id]), "bool"
        return self._column(node.id)

    def _Call(self, node: ast.Call) -> tuple[Any, str]:
        """`col('word-count')`: a column whose name is not a Python name (the only call)."""
        if not (isinstance(node.func, ast.Name) and node.func.id == "col"):
            raise self.fail(f"{ast.unparse(node)!r} is not allowed{_ALLOWED}")
        args = node.args
        if node.keywords or len(args) != 1 or not isinstance(args[0], ast.Constant):
            raise self.fail("col() takes one column name in quotes, e.g. col('word-count')")
        if not isinstance(args[0].value, str):
            raise self.fail("col() takes one column name in quotes, e.g. col('word-count')")
        return self._column(args[0].value)

    def _column(self, name: str) -> tuple[Any, str]:
        if name not in self.types:
            known = ", ".join(sorted(self.types))
            close = difflib.get_close_matches(name, list(self.types), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise DataprepError(
                f"{self.option} names {name!r}, which is not {self.known_as}{hint} (known: {known})"
            )
        self.columns.append(name)
        step, type_ = self.step("column", name), self.types[name]
        if pa.types.is_dictionary(type_):  # a Parquet dictionary column: its values, decoded
            type_ = type_.value_type
            step = self.call("cast", step, options=pc.CastOptions.safe(type_))
        if pa.types.is_float16(type_):  # Arrow compares no float16: float32 holds every value
            step = self.call("cast", step, options=pc.CastOptions.safe(pa.float32()))
        return step, kind(type_)

    def _Constant(self, node: ast.Constant) -> tuple[Any, str]:
        value_kind = _literal_kind(node.value)
        if value_kind == "other":
            raise self.fail(f"the literal {node.value!r} is not a number, string or boolean")
        if value_kind == "null":
            raise self.fail("None is written in x is None or in a list (x in [1, None])")
        self._check_int(node.value)
        return self.literal(node.value), value_kind

    def _check_int(self, value: Any) -> None:
        """Arrow holds integers in 64 bits: a longer literal is one sentence, not an
        OverflowError from pyarrow."""
        if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
            raise self.fail(
                f"the integer {_clip(str(value), 30)} is past the 64-bit range; "
                "write it as a float (e.g. 1e26)"
            )

    def _UnaryOp(self, node: ast.UnaryOp) -> tuple[Any, str]:
        value = _signed(node)
        if value is not None:  # -3, -1.5: a literal (-2**63 is an int64, 2**63 is not)
            self._check_int(value)
            return self.literal(value), "numeric"
        operand, operand_kind = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            self._expect(operand_kind, "bool", node.operand)
            return self.call("invert", operand), "bool"
        if isinstance(node.op, ast.USub | ast.UAdd):
            self._expect(operand_kind, "numeric", node.operand)
            negative = isinstance(node.op, ast.USub)
            return (self.call("negate_checked", operand) if negative else operand), "numeric"
        raise self.fail(f"the operator in {ast.unparse(node)!r} is not allowed")

    def _BoolOp(self, node: ast.BoolOp) -> tuple[Any, str]:
        parts = []
        for value in node.values:
            expression, value_kind = self.visit(value)
            self._expect(value_kind, "bool", value)
            parts.append(expression)
        combine = "and_kleene" if isinstance(node.op, ast.And) else "or_kleene"
        result = parts[0]
        for part in parts[1:]:
            result = self.call(combine, result, part)
        return result, "bool"

    def _BinOp(self, node: ast.BinOp) -> tuple[Any, str]:
        left, left_kind = self.visit(node.left)
        right, right_kind = self.visit(node.right)
        self._expect(left_kind, "numeric", node.left)
        self._expect(right_kind, "numeric", node.right)
        name = "divide" if isinstance(node.op, ast.Div) else _ARITH.get(type(node.op))
        if name is None:
            raise self.fail(f"the operator in {ast.unparse(node)!r} is not allowed")
        floats = name == "divide" or any(map(expr_exact.is_float, self._types(left, right)))
        if floats:  # an integer side as Python's float(n) (rounded past 2**53, no error)
            left, right = (self._float(i) for i in (left, right))
        return self.call(name, left, right), "numeric"

    def _types(self, *steps: int) -> list[pa.DataType | None]:
        return [self.type_of(i) for i in steps]

    def _float(self, step: int) -> int:
        type_ = self.type_of(step)
        if type_ is None or not pa.types.is_integer(type_):
            return step
        return self.call("cast", step, options=pc.CastOptions.unsafe(pa.float64()))

    def _Compare(self, node: ast.Compare) -> tuple[Any, str]:
        left, left_kind = self.visit(node.left)
        parts = []
        left_node = node.left
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            # a < b < c: b, once translated, is the left side of the next comparison
            test, left, left_kind = self._compare(left, left_kind, left_node, op, right_node)
            parts.append(test)
            left_node = right_node
        result = parts[0]
        for part in parts[1:]:
            result = self.call("and_kleene", result, part)
        return result, "bool"

    def _compare(
        self, left: int, left_kind: str, left_node: ast.AST, op: ast.cmpop, right_node: ast.AST
    ) -> tuple[int, int, str]:
        """(the test, and the next comparison's left side and its kind)."""
        if isinstance(op, ast.Is | ast.IsNot):
            if not (isinstance(right_node, ast.Constant) and right_node.value is None):
                raise self.fail("'is' compares with None only (x is None, x is not None)")
            test = self.call("is_null", left, options=pc.NullOptions(nan_is_null=False))
            return (
                (self.call("invert", test) if isinstance(op, ast.IsNot) else test),
                left,
                left_kind,
            )
        if isinstance(op, ast.In | ast.NotIn):
            if not isinstance(right_node, ast.List | ast.Tuple | ast.Set):
                raise self.fail("'in' takes a list of literals, e.g. language in ['en', 'de']")
            values = [self._literal(v, left_kind, left_node) for v in right_node.elts]
            test = self._is_in(left, left_kind, [v for v in values if v is not None])
            if None in values:  # as in Python, `None in [None]`: a null row is in the list
                test = self.call("or_kleene", test, self.call("is_null", left))
            return (
                (self.call("invert", test) if isinstance(op, ast.NotIn) else test),
                left,
                left_kind,
            )
        right, right_kind = self.visit(right_node)
        if {left_kind, right_kind} - {"numeric"} and left_kind != right_kind:
            raise self.fail(
                f"{ast.unparse(left_node)!r} is {left_kind} but {ast.unparse(right_node)!r} is "
                f"{right_kind}; they cannot be compared"
            )
        if left_kind in ("other", "null"):
            raise self.fail(f"{ast.unparse(left_node)!r} is not a number, string or boolean")
        if left_kind == "numeric":
            return self._exact(_COMPARE[type(op)], left, right), right, right_kind
        return self.call(_COMPARE[type(op)], left, right), right, right_kind

    def _exact(self, function: str, left: int, right: int) -> int:
        """A numeric comparison with a literal side, exact as Python's (expr_exact)."""
        a, b = self.number(left), self.number(right)
        if a is not None and b is not None:
            return self.literal(bool(getattr(operator, _PYTHON[function])(a, b)))
        if a is not None:  # 3 < n is n > 3
            left, right, b, function = right, left, a, expr_exact.MIRROR[function]
        if b is None:  # two computed sides: an integer and a float meet exactly
            lt, rt = self._types(left, right)
            if lt is not None and pa.types.is_integer(lt) and expr_exact.is_float(rt):
                return expr_exact.mixed(self.call, self.literal, function, left, lt, right)
            if rt is not None and pa.types.is_integer(rt) and expr_exact.is_float(lt):
                mirrored = expr_exact.MIRROR[function]
                return expr_exact.mixed(self.call, self.literal, mirrored, right, rt, left)
            return self.call(function, left, right)
        type_ = self.type_of(left)
        if type_ is None or not expr_exact.handles(type_):
            return self.call(function, left, right)
        function, value = expr_exact.compare(type_, function, b)
        bound = self.step("literal", value)
        if function == "invert_less":
            return self.call("invert", self.call("less", left, bound))
        return self.call(function, left, bound)

    def _is_in(self, left: int, left_kind: str, values: list[Any]) -> int:
        """`left in values` (no None among them); numbers meet `left` in its own type."""
        type_ = self.type_of(left) if values and left_kind == "numeric" else None
        if type_ is not None and expr_exact.handles(type_):
            held = expr_exact.in_array(type_, values)
        else:
            held = expr_exact.value_set(values, left_kind) if values else None
        if held is None or len(held) == 0:
            return self.literal(False)
        options = pc.SetLookupOptions(held, skip_nulls=False)
        return self.call("is_in", left, options=options)

    def _literal(self, node: ast.AST, want: str, column: ast.AST) -> Any:
        """A list item: a literal (-3 included) of the left side's kind, or None."""
        value = _signed(node) if isinstance(node, ast.UnaryOp) else None
        if value is None:
            if not isinstance(node, ast.Constant) or _literal_kind(node.value) == "other":
                raise self.fail(f"{ast.unparse(node)!r} in a list must be a literal")
            value = node.value
        if value is not None and _literal_kind(value) != want:
            raise self.fail(f"{ast.unparse(column)!r} is {want} but the list holds {value!r}")
        self._check_int(value)
        return value

    def _expect(self, got: str, want: str, node: ast.AST) -> None:
        if got != want:
            raise self.fail(f"{ast.unparse(node)!r} is {got}, where a {want} is needed")


def _signed(node: ast.AST) -> int | float | None:
    """The number `-3`, `+1.5` or `--2` spell (a sign before a numeric literal), else None."""
    if not isinstance(node, ast.UnaryOp) or not isinstance(node.op, ast.USub | ast.UAdd):
        return None
    inner = node.operand
    value = _signed(inner) if isinstance(inner, ast.UnaryOp) else None
    if (
        value is None
        and isinstance(inner, ast.Constant)
        and _literal_kind(inner.value) == "numeric"
    ):
        value = inner.value
    if value is None:
        return None
    return -value if isinstance(node.op, ast.USub) else value
