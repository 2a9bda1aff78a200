"""Bitwise operators (``& | ^ ~ << >>``) and BIT_COUNT on signed 64-bit integers.

- An operand is an integer when it is an int or a long, or a double or decimal with an integral
  value in the 64-bit range (4.0 counts as 4). Any other value (a fraction, a string, a boolean,
  NaN, an infinity) makes the result NULL, as NULL does. A constant operand that is not an
  integer is a PlanningError; an expression of constants only is computed here.
- ``&``, ``|``, ``^`` are MongoDB's ``$bitAnd``, ``$bitOr``, ``$bitXor`` (MongoDB 6.3 or later:
  docs/semantics.md lists what needs a newer server than 6.0).
- ``~x`` is ``-1 - x``, exact on longs.
- Shifts run on MongoDB 6.0, with arithmetic that stays exact for every 64-bit integer (a long
  that overflows becomes a double, and doubles hold integers exactly only up to 2^53):
  ``x << n`` keeps the low 64 bits of ``x * 2^n`` as a signed value; ``x >> n`` is
  ``floor(x / 2^n)`` (an arithmetic shift). A negative ``n`` shifts the other way; a count of 64
  or more shifts every bit out (0, or -1 for ``x >> n`` of a negative ``x``). All as in SQLite.
  A count computed per row takes the same steps in Decimal128 (34 digits).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from bson import Int64
from bson.decimal128 import Decimal128

from queryleaf.errors import PlanningError
from queryleaf.planner.expressions import ExprCompiler, bound, null_guard
from queryleaf.sql import ast
from queryleaf.sql.limits import INT64_MAX, INT64_MIN

BITWISE_OPERATORS = frozenset({"&", "|", "^", "<<", ">>"})


def _decimal(n: int) -> Decimal128:
    return Decimal128(str(n))


_BOUND = float(2**63)  # exact as a double: integers are at least -_BOUND and below it
_TWO_64 = _decimal(2**64)
_WRAP_OFFSET = _decimal(2**64 + 2**63)
_TWO_63 = _decimal(2**63)


# ---------------------------------------------------------------- operands


class _NotConstant(Exception):
    pass


def _constant_integer(e: ast.Expr, c: ExprCompiler, what: str) -> int | None:
    """The value of a constant operand (a literal, a parameter, or bitwise operators over them)
    as an int, None for NULL; PlanningError when it is not an integer; _NotConstant else."""
    if isinstance(e, ast.Literal | ast.Param):
        value = e.value if isinstance(e, ast.Literal) else c.bindings.value(e)
        return _integer_value(value, e, what)
    if isinstance(e, ast.Unary) and e.op in ("~", "-", "+"):
        v = _constant_integer(e.operand, c, what)
        if v is None:
            return None
        return _integer_value(-1 - v if e.op == "~" else -v if e.op == "-" else v, e, what)
    if isinstance(e, ast.Binary) and e.op in BITWISE_OPERATORS:
        x, y = _constant_integer(e.left, c, what), _constant_integer(e.right, c, what)
        if x is None or y is None:
            return None
        return _fold(e.op, x, y)
    raise _NotConstant


def _integer_value(value: Any, e: ast.Expr, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, Decimal128):
        value = value.to_decimal()
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        if value == value and value not in (float("inf"), float("-inf")) and value == int(value):
            if INT64_MIN <= int(value) <= INT64_MAX:
                return int(value)
    raise PlanningError(f"{what} takes integers; {value!r} is not a 64-bit integer", e.pos)


def _wrap(v: int) -> int:
    """The signed 64-bit integer with the low 64 bits of v."""
    v &= 2**64 - 1
    return v - 2**64 if v >= 2**63 else v


def _fold(op: str, x: int, y: int) -> int:
    if op == "&":
        return x & y
    if op == "|":
        return x | y
    if op == "^":
        return x ^ y
    if op == ">>":
        y = -y
    if y >= 64:
        return 0
    if y <= -64:
        return -1 if x < 0 else 0
    return _wrap(x << y) if y >= 0 else x >> -y


def as_long(v: Any) -> Any:
    """v as a long when it is an integer (see the module docstring), else null."""

    def convert(refs: list[Any]) -> Any:
        x = refs[0]
        integral = {
            "$and": [
                {"$isNumber": x},
                {"$gte": [x, -_BOUND]},
                {"$lt": [x, _BOUND]},
                {"$eq": [{"$trunc": [x, 0]}, x]},
            ]
        }
        return {"$cond": [integral, {"$toLong": x}, None]}

    return bound([v], convert, "n")


def integer_operand(c: ExprCompiler, e: ast.Expr, what: str) -> tuple[int | None, Any]:
    """(its value, None) for a constant operand, else (None, its value as a long or null)."""
    try:
        return _constant_integer(e, c, what), None
    except _NotConstant:
        return None, as_long(c.compile(e))


# ---------------------------------------------------------------- operators

_NATIVE = {"&": "$bitAnd", "|": "$bitOr", "^": "$bitXor"}


def compile_bitwise(c: ExprCompiler, e: ast.Binary) -> Any:
    what = f"the {e.op} operator"
    (kx, x), (ky, y) = integer_operand(c, e.left, what), integer_operand(c, e.right, what)
    if x is None and y is None:
        return None if kx is None or ky is None else _fold(e.op, kx, ky)
    if (x is None and kx is None) or (y is None and ky is None):
        return None  # a NULL operand
    left = kx if x is None else x
    op = e.op
    if op in _NATIVE:
        right = ky if y is None else y
        return bound([left, right], lambda refs: {_NATIVE[op]: refs}, "w")  # NULL stays NULL
    if y is None:
        assert ky is not None
        count = ky
        return bound([left], lambda refs: null_guard(refs, _shift(refs[0], count, op)), "w")
    return bound([left, y], lambda refs: null_guard(refs, _shift_by(refs[0], refs[1], op)), "w")


def compile_bit_not(c: ExprCompiler, e: ast.Unary) -> Any:
    k, x = integer_operand(c, e.operand, "the ~ operator")
    if x is None:
        return None if k is None else -1 - k
    return {"$subtract": [-1, x]}  # NULL stays NULL


def _remainder(x: Any, modulus: int) -> Any:
    """x mod ``modulus`` (a power of two up to 2^62) in [0, modulus), exact on longs."""
    return {"$mod": [{"$add": [{"$mod": [x, modulus]}, modulus]}, modulus]}


def _shift(x: Any, n: int, op: str) -> Any:
    """x << n or x >> n for a constant n."""
    left = (n >= 0) == (op == "<<")
    n = min(abs(n), 64)
    if n == 0:
        return x
    if left:
        return 0 if n == 64 else _shift_left(x, n)
    if n >= 63:
        return {"$cond": [{"$lt": [x, 0]}, -1, 0]}
    return _shift_right(x, n)


def _shift_left(x: Any, n: int) -> Any:
    """x << n for 1 <= n <= 63: bit k = 63 - n of x becomes the sign bit, the bits below it
    are multiplied by 2^n (below 2^63: no overflow), the bits above it are shifted out."""
    k = 63 - n
    if k + 1 <= 62:
        low = _remainder(x, 2 ** (k + 1))
    else:  # x mod 2^63: a negative x plus 2^63, added in two steps that cannot overflow
        low = {"$cond": [{"$lt": [x, 0]}, {"$add": [x, INT64_MAX, 1]}, x]}
    sign = {"$cond": [{"$gte": ["$$low", 2**k]}, Int64(INT64_MIN), 0]}
    if k == 0:  # x << 63: only the lowest bit stays, as the sign bit
        return {"$let": {"vars": {"low": low}, "in": sign}}
    shifted = {"$multiply": [{"$mod": ["$$low", 2**k]}, 2**n]}
    return {"$let": {"vars": {"low": low}, "in": {"$add": [shifted, sign]}}}


def _shift_right(x: Any, n: int) -> Any:
    """floor(x / 2^n) for 1 <= n <= 62: x minus its low bits is a multiple of 2^k (k = max(n,
    11)), so its quotient has at most 52 bits and the division of doubles is exact; for n < 11
    the low k bits are divided separately."""
    k = max(n, 11)

    def body(refs: list[Any]) -> Any:
        r = refs[0]
        high = {"$toLong": {"$divide": [{"$subtract": [x, r]}, 2**k]}}
        if k == n:
            return high
        return {
            "$add": [
                {"$multiply": [high, 2 ** (k - n)]},
                {"$toLong": {"$floor": {"$divide": [r, 2**n]}}},
            ]
        }

    return bound([_remainder(x, 2**k)], body, "rem")


def _shift_by(x: Any, n: Any, op: str) -> Any:
    """x << n or x >> n for a count computed per row, in Decimal128: ``x mod 2^(64-n)`` times
    ``2^n`` is below 2^64 in magnitude, and 34 digits hold it exactly."""
    forward = {"$min": [n, 64]}
    backward = {"$min": [{"$subtract": [0, n]}, 64]}

    def power(k: Any) -> Any:
        return {"$pow": [_decimal(2), k]}

    def left(k: Any) -> Any:
        product = {"$multiply": [{"$mod": [x, power({"$subtract": [64, k]})]}, power(k)]}
        unsigned = {"$mod": [{"$add": [product, _WRAP_OFFSET]}, _TWO_64]}
        return {"$toLong": {"$subtract": [unsigned, _TWO_63]}}

    def right(k: Any) -> Any:
        return {"$toLong": {"$floor": {"$divide": [x, power(k)]}}}

    first, second = (left, right) if op == "<<" else (right, left)
    return {"$cond": [{"$gte": [n, 0]}, first(forward), second(backward)]}


# ---------------------------------------------------------------- BIT_COUNT

_NIBBLE_BITS = [bin(i).count("1") for i in range(16)]


def constant_bit_count(x: int) -> int:
    return bin(x & (2**64 - 1)).count("1")


def bit_count(x: Any) -> Any:
    """The number of 1 bits of x's 64-bit two's complement form (BIT_COUNT(-1) = 64); ``x``: a
    long (or null, which the caller guards). Both 32-bit halves, as non-negative doubles (exact),
    four bits at a time."""
    low = _remainder(x, 2**32)
    high = {"$divide": [{"$subtract": [x, "$$lo"]}, 2**32]}  # exact: a multiple of 2^32
    halves = {
        "$let": {
            "vars": {"lo": low},
            "in": {"lo": "$$lo", "hi": {"$mod": [{"$add": [high, 2**32]}, 2**32]}, "n": 0},
        }
    }
    nibbles = {
        "$reduce": {
            "input": {"$range": [0, 8]},
            "initialValue": halves,
            "in": {
                "lo": {"$floor": {"$divide": ["$$value.lo", 16]}},
                "hi": {"$floor": {"$divide": ["$$value.hi", 16]}},
                "n": {
                    "$add": [
                        "$$value.n",
                        {"$arrayElemAt": [_NIBBLE_BITS, {"$mod": ["$$value.lo", 16]}]},
                        {"$arrayElemAt": [_NIBBLE_BITS, {"$mod": ["$$value.hi", 16]}]},
                    ]
                },
            },
        }
    }
    return {"$let": {"vars": {"s": nibbles}, "in": "$$s.n"}}
