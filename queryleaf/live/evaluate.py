"""The expressions of a live aggregate query above its aggregation (the select list, HAVING),
computed in Python over each output row: the GROUP BY key values, the aggregate results and
WINDOW_START / WINDOW_END (docs/streaming.md#expressions-above-the-aggregation).

``compile_expression`` turns an AST expression into a function of a row once; calling it walks
no AST. ``slot(expr)`` names the row key of a sub-expression the aggregation computed (a GROUP BY
key expression, an aggregate call, WINDOW_START, WINDOW_END), or None. The semantics are the SQL
engine's (docs/semantics.md): three-valued logic, NULL through arithmetic, NULL for a zero
divisor, ``/`` true division, ``DIV`` truncated (a double, as ``$trunc`` of ``$divide``), ``%``
with the dividend's sign, comparisons in BSON order across types, MySQL truthiness.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from decimal import ROUND_DOWN, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

from bson.decimal128 import Decimal128
from bson.int64 import Int64

from queryleaf.errors import ErrorCode, PlanningError
from queryleaf.planner.constants import literal_value
from queryleaf.planner.params import Bindings
from queryleaf.sql import ast

from .values import DECIMAL128_CONTEXT, as_decimal, sort_key, to_decimal128

Row = Mapping[str, Any]
Evaluator = Callable[[Row], Any]
Slot = Callable[[ast.Expr], "str | None"]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_INT, _FLOAT, _DECIMAL = 0, 1, 2


def compile_expression(expr: ast.Expr, slot: Slot, bindings: Bindings | None = None) -> Evaluator:
    """``expr`` as a function of an output row; PlanningError (at the node) for what it cannot
    compute: a column that is not a key, an aggregate or a window bound, or an unsupported
    construct."""
    return _Compiler(slot, bindings).compile(expr)


def compile_condition(expr: ast.Expr, slot: Slot, bindings: Bindings | None = None) -> Evaluator:
    """A HAVING condition: a function that is True where ``expr`` is TRUE (False where FALSE or
    NULL)."""
    value = compile_expression(expr, slot, bindings)
    return lambda row: truth(value(row)) is True


# ---------------------------------------------------------------- values


def _kind(v: Any) -> int | None:
    t = type(v)
    if t is int or t is Int64:
        return _INT
    if t is float:
        return _FLOAT
    if t is Decimal128 or t is Decimal:
        return _DECIMAL
    return None  # not a number (bool is not one)


def _int_result(r: int) -> int | float:
    """An integer result past 64 bits is a double, as MongoDB's arithmetic overflows."""
    return r if _INT64_MIN <= r <= _INT64_MAX else float(r)


def truth(v: Any) -> bool | None:
    """A value as a truth value (MySQL, SQLite): a boolean is itself, a number is true when not
    zero, any other value false, NULL unknown."""
    if v is None or type(v) is bool:
        return v
    k = _kind(v)
    if k is None:
        return False
    return (as_decimal(v) if k == _DECIMAL else v) != 0


def compare(a: Any, b: Any) -> int | None:
    """-1, 0 or 1 as ``a`` is below, equal to or above ``b`` in BSON order (numbers by value
    across types); None when either is NULL."""
    if a is None or b is None:
        return None
    ta, tb = type(a), type(b)
    if (ta is int or ta is float) and (tb is int or tb is float) and a == a and b == b:
        return (a > b) - (a < b)
    if ta is str and tb is str:
        return (a > b) - (a < b)
    ka, kb = sort_key(a), sort_key(b)
    return (ka > kb) - (ka < kb)


def _arithmetic(
    int_op: Callable[[int, int], Any],
    float_op: Callable[[float, float], Any],
    decimal_op: Callable[[Decimal, Decimal], Decimal],
) -> Callable[[Any, Any], Any]:
    """A binary arithmetic operator: NULL when an operand is NULL or not a number; integers
    stay integers, a double makes a double, a decimal a Decimal128."""

    def apply(a: Any, b: Any) -> Any:
        if a is None or b is None:
            return None
        ka, kb = _kind(a), _kind(b)
        if ka is None or kb is None:
            return None
        k = max(ka, kb)
        if k == _INT:
            return int_op(a, b)
        if k == _FLOAT:
            return float_op(float(a), float(b))
        try:
            return to_decimal128(decimal_op(as_decimal(a), as_decimal(b)))
        except (InvalidOperation, ArithmeticError):
            return None

    return apply


def _checked_zero(operator: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """NULL, not an error, for a zero divisor (MySQL, SQLite)."""

    def apply(a: Any, b: Any) -> Any:
        if b is not None and _kind(b) is not None and truth(b) is False:
            return None
        return operator(a, b)

    return apply


def _trunc_float(x: float) -> float:
    return float(math.trunc(x)) if math.isfinite(x) else x


def _int_remainder(a: int, b: int) -> int:
    r = abs(a) % abs(b)
    return -r if a < 0 else r


def _float_remainder(a: float, b: float) -> float:
    try:
        return math.fmod(a, b)
    except ValueError:  # an infinite dividend
        return math.nan


_D = DECIMAL128_CONTEXT
_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "+": _arithmetic(lambda a, b: _int_result(a + b), lambda a, b: a + b, _D.add),
    "-": _arithmetic(lambda a, b: _int_result(a - b), lambda a, b: a - b, _D.subtract),
    "*": _arithmetic(lambda a, b: _int_result(a * b), lambda a, b: a * b, _D.multiply),
    "/": _checked_zero(_arithmetic(lambda a, b: a / b, lambda a, b: a / b, _D.divide)),
    "DIV": _checked_zero(
        _arithmetic(
            lambda a, b: _trunc_float(a / b),
            lambda a, b: _trunc_float(a / b),
            lambda a, b: _D.divide(a, b).to_integral_value(ROUND_DOWN),
        )
    ),
    "%": _checked_zero(_arithmetic(_int_remainder, _float_remainder, _D.remainder)),
}
_OPERATORS["MOD"] = _OPERATORS["%"]

_COMPARISONS: dict[str, Callable[[int], bool]] = {
    "=": lambda c: c == 0,
    "<>": lambda c: c != 0,
    "<": lambda c: c < 0,
    "<=": lambda c: c <= 0,
    ">": lambda c: c > 0,
    ">=": lambda c: c >= 0,
}


def _negate(v: Any) -> Any:
    k = _kind(v)
    if k is None:
        return None
    if k == _INT:
        return _int_result(-v)
    if k == _FLOAT:
        return -v
    return to_decimal128(-as_decimal(v))


def _abs(v: Any) -> Any:
    k = _kind(v)
    if k is None:
        return None
    if k == _INT:
        return _int_result(abs(v))
    if k == _FLOAT:
        return abs(v)
    return to_decimal128(abs(as_decimal(v)))


def _round(x: Any, digits: Any) -> Any:
    """ROUND as the SQL engine computes it: half away from zero on the scaled magnitude, an
    integer unchanged for digits >= 0, a double otherwise."""
    kx = _kind(x)
    if kx is None or _kind(digits) != _INT:
        return None
    if kx == _INT and digits >= 0:
        return x
    if kx == _DECIMAL:
        d, scale = as_decimal(x), Decimal(10) ** digits
        if not d.is_finite():
            return x
        magnitude = (abs(d) * scale + Decimal("0.5")).to_integral_value(ROUND_FLOOR)
        signed = -magnitude if d < 0 else magnitude
        return to_decimal128(signed if digits == 0 else _D.divide(signed, scale))
    f = float(x)
    if not math.isfinite(f):
        return f
    scale_f = 10.0**digits
    signed_f = math.copysign(float(math.floor(abs(f) * scale_f + 0.5)), -1.0 if f < 0 else 1.0)
    return signed_f if digits == 0 else signed_f / scale_f


def to_text(v: Any) -> str:
    """A value as CONCAT shows it (as ``$toString``)."""
    if type(v) is str:
        return v
    if type(v) is bool:
        return "true" if v else "false"
    if type(v) is float:
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)
    if isinstance(v, dt.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(dt.UTC).replace(tzinfo=None)
        return v.isoformat(timespec="milliseconds") + "Z"
    return str(v)


# ---------------------------------------------------------------- the compiler


_UNSUPPORTED_NAMES: dict[type, str] = {
    ast.Like: "LIKE",
    ast.Regexp: "REGEXP",
    ast.Cast: "CAST",
    ast.Extract: "EXTRACT",
    ast.Interval: "INTERVAL",
    ast.JsonArrow: "the JSON arrow",
    ast.InSubquery: "a subquery",
    ast.Exists: "EXISTS",
    ast.ScalarSubquery: "a subquery",
    ast.Quantified: "a subquery",
    ast.Star: "*",
}
_CHAINS = frozenset({"AND", "OR", "+", "*", "||"})
# The functions computed above the aggregation: (least, most) arguments, None for any number.
_ARITY: dict[str, tuple[int, int | None]] = {
    "COALESCE": (1, None),
    "IFNULL": (2, 2),
    "NVL": (2, 2),
    "NULLIF": (2, 2),
    "IF": (3, 3),
    "ROUND": (1, 2),
    "ABS": (1, 1),
    "CONCAT": (1, None),
}


def _chain(e: ast.Binary) -> list[ast.Expr]:
    """The operands of a left-deep chain of one operator, in order, without recursion."""
    operands, node = [], e
    while isinstance(node, ast.Binary) and node.op == e.op:
        operands.append(node.right)
        node = node.left  # type: ignore[assignment]
    operands.append(node)
    return operands[::-1]


def _unsupported(what: str, node: ast.Node) -> PlanningError:
    return PlanningError(
        f"{what} is not supported above the aggregation in a live query "
        "(the select list and HAVING of a GROUP BY ... EMIT query)",
        node.pos,
    )


class _Compiler:
    def __init__(self, slot: Slot, bindings: Bindings | None):
        self.slot = slot
        self.bindings = bindings

    def compile(self, e: ast.Expr) -> Evaluator:
        if isinstance(e, ast.Literal | ast.Param):
            return self._constant(e)
        key = self.slot(e)
        if key is not None:
            return lambda row: row.get(key)
        if isinstance(e, ast.Column):
            name = ".".join(str(p) for p in e.parts)
            raise PlanningError(
                f"{name} must be a GROUP BY key, an aggregate, WINDOW_START or WINDOW_END "
                "in a live aggregate query",
                e.pos,
                error_code=ErrorCode.UNKNOWN_COLUMN,
            )
        if isinstance(e, ast.Binary):
            return self._binary(e)
        if isinstance(e, ast.Unary):
            return self._unary(e)
        if isinstance(e, ast.IsNull):
            return self._is_null(e)
        if isinstance(e, ast.Between):
            return self._between(e)
        if isinstance(e, ast.InList):
            return self._in_list(e)
        if isinstance(e, ast.Case):
            return self._case(e)
        if isinstance(e, ast.FuncCall):
            return self._call(e)
        raise _unsupported(_UNSUPPORTED_NAMES.get(type(e), type(e).__name__), e)

    def _constant(self, e: ast.Literal | ast.Param) -> Evaluator:
        if isinstance(e, ast.Param) and self.bindings is None:
            raise PlanningError("this live query has parameters but no values for them", e.pos)
        value = literal_value(e, self.bindings)  # type: ignore[arg-type]
        return lambda row: value

    # ------------------------------------------------------------ operators

    def _binary(self, e: ast.Binary) -> Evaluator:
        op = e.op
        if op in ("AND", "OR"):
            return self._connective(op, [self.compile(o) for o in _chain(e)])
        if op in _COMPARISONS:
            test = _COMPARISONS[op]
            left, right = self.compile(e.left), self.compile(e.right)

            def comparison(row: Row) -> bool | None:
                c = compare(left(row), right(row))
                return None if c is None else test(c)

            return comparison
        if op == "||":
            return self._concat([self.compile(o) for o in _chain(e)])
        operator = _OPERATORS.get(op)
        if operator is None:
            raise _unsupported(f"the operator {op}", e)
        if op in _CHAINS:  # + and *: a chain of any length, folded left to right
            terms = [self.compile(o) for o in _chain(e)]
            first, rest = terms[0], terms[1:]

            def fold(row: Row) -> Any:
                v = first(row)
                for term in rest:
                    v = operator(v, term(row))
                return v

            return fold
        left, right = self.compile(e.left), self.compile(e.right)
        return lambda row: operator(left(row), right(row))

    def _connective(self, op: str, parts: list[Evaluator]) -> Evaluator:
        decisive = op == "OR"  # OR: a TRUE operand decides; AND: a FALSE one

        def connective(row: Row) -> bool | None:
            unknown = False
            for part in parts:
                t = truth(part(row))
                if t is None:
                    unknown = True
                elif t is decisive:
                    return decisive
            return None if unknown else not decisive

        return connective

    def _unary(self, e: ast.Unary) -> Evaluator:
        operand = self.compile(e.operand)
        if e.op == "NOT":

            def negation(row: Row) -> bool | None:
                t = truth(operand(row))
                return None if t is None else not t

            return negation
        if e.op == "-":
            return lambda row: _negate(operand(row))
        if e.op == "+":
            return lambda row: None if _kind(v := operand(row)) is None else v
        raise _unsupported(f"the operator {e.op}", e)

    def _is_null(self, e: ast.IsNull) -> Evaluator:
        operand, negated = self.compile(e.expr), e.negated
        return lambda row: (operand(row) is None) is not negated

    def _between(self, e: ast.Between) -> Evaluator:
        x, low, high = self.compile(e.expr), self.compile(e.low), self.compile(e.high)
        negated = e.negated

        def between(row: Row) -> bool | None:
            v = x(row)
            above, below = compare(v, low(row)), compare(v, high(row))
            lower = None if above is None else above >= 0
            upper = None if below is None else below <= 0
            if lower is False or upper is False:
                result: bool | None = False
            elif lower is None or upper is None:
                result = None
            else:
                result = True
            return result if result is None or not negated else not result

        return between

    def _in_list(self, e: ast.InList) -> Evaluator:
        x, items, negated = self.compile(e.expr), [self.compile(i) for i in e.items], e.negated

        def in_list(row: Row) -> bool | None:
            v = x(row)
            if v is None:
                return None
            unknown = False
            for item in items:
                c = compare(v, item(row))
                if c is None:
                    unknown = True
                elif c == 0:
                    return not negated
            return None if unknown else negated

        return in_list

    def _case(self, e: ast.Case) -> Evaluator:
        """A CASE whose ELSE is another CASE is taken as one list of branches (no recursion)."""
        branches: list[tuple[Evaluator, Evaluator]] = []
        node: ast.Expr | None = e
        while isinstance(node, ast.Case):
            operand = None if node.operand is None else self.compile(node.operand)
            for when in node.whens:
                branches.append((self._when(operand, when.condition), self.compile(when.result)))
            node = node.else_
        otherwise = None if node is None else self.compile(node)

        def case(row: Row) -> Any:
            for condition, result in branches:
                if condition(row):
                    return result(row)
            return None if otherwise is None else otherwise(row)

        return case

    def _when(self, operand: Evaluator | None, condition: ast.Expr) -> Callable[[Row], bool]:
        value = self.compile(condition)
        if operand is None:
            return lambda row: truth(value(row)) is True
        return lambda row: compare(operand(row), value(row)) == 0

    # ------------------------------------------------------------ functions

    def _call(self, e: ast.FuncCall) -> Evaluator:
        name, n = e.name, len(e.args)
        if e.over is not None or e.distinct or e.order_by or e.separator or e.limit is not None:
            raise _unsupported(f"{name}(...) with DISTINCT, ORDER BY or OVER", e)
        if name not in _ARITY:
            raise _unsupported(f"{name}()", e)
        least, most = _ARITY[name]
        if n < least or (most is not None and n > most):
            wanted = str(least) if least == most else f"{least} or more"
            if most is not None and least != most:
                wanted = f"{least} to {most}"
            raise PlanningError(f"{name} takes {wanted} argument(s), not {n}", e.pos)
        args = [self.compile(a) for a in e.args]
        if name in ("COALESCE", "IFNULL", "NVL"):

            def coalesce(row: Row) -> Any:
                for arg in args:
                    v = arg(row)
                    if v is not None:
                        return v
                return None

            return coalesce
        if name == "NULLIF":
            a, b = args

            def nullif(row: Row) -> Any:
                v = a(row)
                return None if compare(v, b(row)) == 0 else v

            return nullif
        if name == "IF":
            c, then, otherwise = args
            return lambda row: then(row) if truth(c(row)) is True else otherwise(row)
        if name == "ABS":
            [x] = args
            return lambda row: _abs(x(row))
        if name == "ROUND":
            x = args[0]
            digits = args[1] if n == 2 else (lambda row: 0)
            return lambda row: _round(x(row), digits(row))
        return self._concat(args)

    def _concat(self, parts: list[Evaluator]) -> Evaluator:
        def concat(row: Row) -> str | None:
            texts = []
            for part in parts:
                v = part(row)
                if v is None:
                    return None
                texts.append(to_text(v))
            return "".join(texts)

        return concat
