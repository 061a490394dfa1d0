"""`--where` expressions: a safe subset of Python syntax turned into a pyarrow Expression.

The text is parsed with `ast` and only a whitelist of node kinds is translated (comparisons,
and/or/not, arithmetic, `in [...]`, `is None`, column names, literals); anything else is
refused with one sentence. Nothing is ever evaluated as Python. Types are checked against the
schema the rows will have, so `word_count > 'a'` or a misspelt column stops before any task
runs. Rows where the expression is null (a null value in a compared column) are not kept.
"""

from __future__ import annotations

import ast
import difflib
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.acero as acero
import pyarrow.compute as pc

from dataprep.errors import DataprepError

_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_ARITH: dict[type, str] = {ast.Add: "add", ast.Sub: "subtract", ast.Mult: "multiply"}
_NAMES = {"true": True, "false": False, "True": True, "False": False}
_ALLOWED = (
    " (use column names, col('any-name'), numbers, 'strings', comparisons, and/or/not, "
    "+ - * /, in [...])"
)


@dataclass(frozen=True)
class Where:
    """A checked expression: its text, the Arrow expression and the columns it reads."""

    text: str
    expression: pc.Expression
    columns: tuple[str, ...]


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
        expression, result = translator.visit(tree.body)
    except SyntaxError as exc:
        raise DataprepError(f"{option} {text!r} is not a valid expression ({exc.msg})") from None
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
    return Where(text, expression, tuple(dict.fromkeys(columns)))


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else f"{text[:width]}... ({len(text):,} characters)"


class _Translator:
    def __init__(
        self, types: dict[str, pa.DataType], option: str, text: str, out: list[str], known_as: str
    ):
        self.types, self.option, self.text, self.columns = types, option, text, out
        self.known_as = known_as

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
            return pc.scalar(_NAMES[node.id]), "bool"
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
        return pc.field(name), kind(self.types[name])

    def _Constant(self, node: ast.Constant) -> tuple[Any, str]:
        value_kind = _literal_kind(node.value)
        if value_kind == "other":
            raise self.fail(f"the literal {node.value!r} is not a number, string or boolean")
        self._check_int(node.value)
        return pc.scalar(node.value), value_kind

    def _check_int(self, value: Any) -> None:
        """Arrow holds integers in 64 bits: a longer literal is one sentence, not an
        OverflowError from pyarrow."""
        if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
            raise self.fail(
                f"the integer {_clip(str(value), 30)} is past the 64-bit range; "
                "write it as a float (e.g. 1e26)"
            )

    def _UnaryOp(self, node: ast.UnaryOp) -> tuple[Any, str]:
        literal = node.operand
        if isinstance(node.op, ast.USub) and isinstance(literal, ast.Constant):
            if isinstance(literal.value, int) and not isinstance(literal.value, bool):
                self._check_int(-literal.value)  # -2**63 is an int64, 2**63 is not
                return pc.scalar(-literal.value), "numeric"
        operand, operand_kind = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            self._expect(operand_kind, "bool", node.operand)
            return ~operand, "bool"
        if isinstance(node.op, ast.USub | ast.UAdd):
            self._expect(operand_kind, "numeric", node.operand)
            return (pc.negate(operand) if isinstance(node.op, ast.USub) else operand), "numeric"
        raise self.fail(f"the operator in {ast.unparse(node)!r} is not allowed")

    def _BoolOp(self, node: ast.BoolOp) -> tuple[Any, str]:
        parts = []
        for value in node.values:
            expression, value_kind = self.visit(value)
            self._expect(value_kind, "bool", value)
            parts.append(expression)
        combine = operator.and_ if isinstance(node.op, ast.And) else operator.or_
        result = parts[0]
        for part in parts[1:]:
            result = combine(result, part)
        return result, "bool"

    def _BinOp(self, node: ast.BinOp) -> tuple[Any, str]:
        left, left_kind = self.visit(node.left)
        right, right_kind = self.visit(node.right)
        self._expect(left_kind, "numeric", node.left)
        self._expect(right_kind, "numeric", node.right)
        if isinstance(node.op, ast.Div):
            return pc.divide(left.cast(pa.float64()), right), "numeric"
        name = _ARITH.get(type(node.op))
        if name is None:
            raise self.fail(f"the operator in {ast.unparse(node)!r} is not allowed")
        return getattr(pc, name)(left, right), "numeric"

    def _Compare(self, node: ast.Compare) -> tuple[Any, str]:
        left, left_kind = self.visit(node.left)
        parts = []
        left_node = node.left
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            parts.append(self._compare(left, left_kind, left_node, op, right_node))
            if not isinstance(op, ast.In | ast.NotIn | ast.Is | ast.IsNot):
                left, left_kind = self.visit(right_node)
            left_node = right_node
        result = parts[0]
        for part in parts[1:]:
            result = result & part
        return result, "bool"

    def _compare(
        self, left: Any, left_kind: str, left_node: ast.AST, op: ast.cmpop, right_node: ast.AST
    ) -> Any:
        if isinstance(op, ast.Is | ast.IsNot):
            if not (isinstance(right_node, ast.Constant) and right_node.value is None):
                raise self.fail("'is' compares with None only (x is None, x is not None)")
            test = pc.is_null(left)
            return ~test if isinstance(op, ast.IsNot) else test
        if isinstance(op, ast.In | ast.NotIn):
            if not isinstance(right_node, ast.List | ast.Tuple | ast.Set):
                raise self.fail("'in' takes a list of literals, e.g. language in ['en', 'de']")
            values = [self._literal(v, left_kind, left_node) for v in right_node.elts]
            test = pc.is_in(left, value_set=pa.array(values)) if values else pc.scalar(False)
            return ~test if isinstance(op, ast.NotIn) else test
        right, right_kind = self.visit(right_node)
        if {left_kind, right_kind} - {"numeric"} and left_kind != right_kind:
            raise self.fail(
                f"{ast.unparse(left_node)!r} is {left_kind} but {ast.unparse(right_node)!r} is "
                f"{right_kind}; they cannot be compared"
            )
        if left_kind in ("other", "null"):
            raise self.fail(f"{ast.unparse(left_node)!r} is not a number, string or boolean")
        return _COMPARE[type(op)](left, right)

    def _literal(self, node: ast.AST, want: str, column: ast.AST) -> Any:
        if not isinstance(node, ast.Constant) or _literal_kind(node.value) == "other":
            raise self.fail(f"{ast.unparse(node)!r} in a list must be a literal")
        if _literal_kind(node.value) != want:
            raise self.fail(f"{ast.unparse(column)!r} is {want} but the list holds {node.value!r}")
        self._check_int(node.value)
        return node.value

    def _expect(self, got: str, want: str, node: ast.AST) -> None:
        if got != want:
            raise self.fail(f"{ast.unparse(node)!r} is {got}, where a {want} is needed")


def evaluate(table: pa.Table, expressions: Sequence[pc.Expression]) -> list[np.ndarray]:
    """Each expression's value on every row as a bool array (null counts as False)."""
    if not expressions:
        return []
    plan = acero.Declaration.from_sequence(
        [
            acero.Declaration("table_source", acero.TableSourceNodeOptions(table)),
            acero.Declaration(
                "project",
                acero.ProjectNodeOptions(
                    list(expressions), [f"e{i}" for i in range(len(expressions))]
                ),
            ),
        ]
    )
    result = plan.to_table(use_threads=False)
    return [
        pc.fill_null(column, False).to_numpy(zero_copy_only=False).astype(bool)
        if len(column)
        else np.zeros(0, dtype=bool)
        for column in result.columns
    ]
