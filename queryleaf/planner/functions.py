"""The function catalogue: every scalar SQL function and its MongoDB translation.

Each entry states its arity and a translator that receives the compiler, the call and the
compiled arguments. NULL in → NULL out unless the function says otherwise (COALESCE, IFNULL,
CONCAT_WS ...). Aggregates live in planner/aggregates.py.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bson import ObjectId

from queryleaf.errors import ErrorCode, PlanningError, Position
from queryleaf.planner.bitwise import bit_count, constant_bit_count, integer_operand
from queryleaf.planner.expressions import (
    AGGREGATES,
    ExprCompiler,
    bound,
    is_null_expr,
    never_null,
    null_guard,
    path_get,
    to_text,
)
from queryleaf.sql import ast

Translator = Callable[[ExprCompiler, ast.FuncCall, list[Any]], Any]


@dataclass(frozen=True)
class Function:
    min_args: int
    max_args: int | None  # None: variadic
    translate: Translator
    summary: str


FUNCTIONS: dict[str, Function] = {}


def function(
    *names: str, args: tuple[int, int | None] = (1, 1), summary: str = ""
) -> Callable[[Translator], Translator]:
    def register(fn: Translator) -> Translator:
        for n in names:
            FUNCTIONS[n] = Function(args[0], args[1], fn, summary)
        return fn

    return register


def guarded(op: str, *names: str, args: tuple[int, int | None] = (1, 1), summary: str = "") -> None:
    """A function that maps to one MongoDB operator and is NULL when any argument is NULL."""

    def fn(c: ExprCompiler, call: ast.FuncCall, a: list[Any]) -> Any:
        return null_guard(a, {op: a[0] if len(a) == 1 else a})

    function(*names, args=args, summary=summary)(fn)


def compile_function(c: ExprCompiler, call: ast.FuncCall) -> Any:
    spec = FUNCTIONS.get(call.name)
    if spec is None:
        known = sorted(set(FUNCTIONS) | AGGREGATES)
        near = difflib.get_close_matches(call.name, known, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise PlanningError(
            f"unknown function {call.name}{hint}", call.pos, error_code=ErrorCode.UNKNOWN_FUNCTION
        )
    n = len(call.args)
    if n < spec.min_args or (spec.max_args is not None and n > spec.max_args):
        expected = (
            str(spec.min_args)
            if spec.max_args == spec.min_args
            else f"{spec.min_args} or more"
            if spec.max_args is None
            else f"{spec.min_args} to {spec.max_args}"
        )
        raise PlanningError(f"{call.name} takes {expected} argument(s), got {n}", call.pos)
    if call.distinct or call.order_by or call.separator is not None or call.limit is not None:
        raise PlanningError(
            f"{call.name} is not an aggregate: DISTINCT, ORDER BY, SEPARATOR "
            "and LIMIT are not allowed in its call",
            call.pos,
        )
    if call.name in _RAW_ARGS:
        return spec.translate(c, call, [])
    # Translators may read an argument more than once (its null test and its use): a compound
    # argument is bound to a variable (see ``bound``), so nesting calls never doubles sizes.
    args = [c.compile(a) for a in call.args]
    return bound(args, lambda refs: spec.translate(c, call, refs), "a")


# Functions whose translator compiles (or interprets) its arguments itself.
_RAW_ARGS = {
    "DATE_ADD",
    "DATE_SUB",
    "ADDDATE",
    "SUBDATE",
    "TIMESTAMPDIFF",
    "DATE_TRUNC",
    "JSON_OBJECT",
    "OBJECTID",
    "JSON_EXTRACT",
    "BIT_COUNT",
}


# ---------------------------------------------------------------- strings


@function("CONCAT", args=(1, None), summary="concatenation; NULL if any argument is NULL")
def _concat(c, call, a):
    return {"$concat": [to_text(v, e) for v, e in zip(a, call.args, strict=True)]}


@function("CONCAT_WS", args=(2, None), summary="concatenation with a separator, skipping NULLs")
def _concat_ws(c, call, a):
    sep, parts = a[0], a[1:]
    texts = [{"$cond": [is_null_expr(p), None, {"$toString": p}]} for p in parts]
    joined = {
        "$reduce": {
            "input": {"$filter": {"input": texts, "cond": {"$ne": ["$$this", None]}}},
            "initialValue": None,
            "in": {
                "$cond": [
                    {"$eq": ["$$value", None]},
                    "$$this",
                    {"$concat": ["$$value", sep, "$$this"]},
                ]
            },
        }
    }
    return null_guard([sep], {"$ifNull": [joined, ""]})


guarded("$toLower", "LOWER", "LCASE", summary="lower case")
guarded("$toUpper", "UPPER", "UCASE", summary="upper case")
guarded("$strLenCP", "CHAR_LENGTH", "CHARACTER_LENGTH", summary="length in characters")


def _bytes(v: Any) -> Any:
    return {
        "$cond": [
            {"$eq": [{"$type": v}, "object"]},
            {"$bsonSize": v},
            {"$strLenBytes": {"$toString": v}},
        ]
    }


@function("LENGTH", "OCTET_LENGTH", summary="length in bytes (UTF-8); a document: its BSON size")
def _length(c, call, a):
    return null_guard(a, _bytes(a[0]))


@function("BIT_LENGTH", summary="length in bits: 8 times LENGTH")
def _bit_length(c, call, a):
    return null_guard(a, {"$multiply": [8, _bytes(a[0])]})


@function("SUBSTRING", "SUBSTR", "MID", args=(2, 3), summary="SUBSTRING(s, pos[, len]), 1-based")
def _substring(c, call, a):
    s, pos = a[0], a[1]
    length = a[2] if len(a) > 2 else 2**31 - 1
    # MySQL: positions count from 1, negative ones from the end; 0 or before the start is ''.
    start = {
        "$cond": [{"$gt": [pos, 0]}, {"$subtract": [pos, 1]}, {"$add": [{"$strLenCP": s}, pos]}]
    }
    valid = {"$and": [{"$ne": [pos, 0]}, {"$gte": [start, 0]}]}
    return null_guard(
        a, {"$cond": [valid, {"$substrCP": [s, {"$max": [0, start]}, {"$max": [0, length]}]}, ""]}
    )


def _trim(op):
    def fn(c, call, a):
        spec = {"input": a[0]}
        if len(a) > 1:
            spec["chars"] = a[1]
        return null_guard(a, {op: spec})

    return fn


function("TRIM", args=(1, 2), summary="strip spaces (or the given characters) at both ends")(
    _trim("$trim")
)
function("LTRIM", args=(1, 2), summary="strip leading spaces")(_trim("$ltrim"))
function("RTRIM", args=(1, 2), summary="strip trailing spaces")(_trim("$rtrim"))


@function("REPLACE", args=(3, 3), summary="replace every occurrence")
def _replace(c, call, a):
    return null_guard(a, {"$replaceAll": {"input": a[0], "find": a[1], "replacement": a[2]}})


@function("LEFT", args=(2, 2), summary="the first n characters")
def _left(c, call, a):
    return null_guard(a, {"$substrCP": [a[0], 0, {"$max": [0, a[1]]}]})


@function("RIGHT", args=(2, 2), summary="the last n characters")
def _right(c, call, a):
    s, n = a
    length = {"$strLenCP": s}
    return null_guard(
        a, {"$substrCP": [s, {"$max": [0, {"$subtract": [length, n]}]}, {"$max": [0, n]}]}
    )


def _pad(left: bool) -> Translator:
    def fn(c, call, a):
        s, n, pad = a
        fill = {
            "$reduce": {
                "input": {"$range": [0, {"$max": [0, n]}]},
                "initialValue": "",
                "in": {"$concat": ["$$value", pad]},
            }
        }
        need = {"$max": [0, {"$subtract": [n, {"$strLenCP": s}]}]}
        filler = {"$substrCP": [fill, 0, need]}
        padded = {"$concat": [filler, s] if left else [s, filler]}
        return null_guard(
            a,
            {
                "$cond": [
                    {"$gte": [{"$strLenCP": s}, n]},
                    {"$substrCP": [s, 0, {"$max": [0, n]}]},
                    padded,
                ]
            },
        )

    return fn


function("LPAD", args=(3, 3), summary="left-pad to n characters")(_pad(True))
function("RPAD", args=(3, 3), summary="right-pad to n characters")(_pad(False))


def _repeated(s: Any, n: Any) -> Any:
    """``s`` written ``n`` times (none for ``n <= 0``)."""
    return {
        "$reduce": {
            "input": {"$range": [0, {"$max": [0, n]}]},
            "initialValue": "",
            "in": {"$concat": ["$$value", s]},
        }
    }


@function("REPEAT", args=(2, 2), summary="s repeated n times ('' for n <= 0)")
def _repeat(c, call, a):
    return null_guard(a, _repeated(a[0], a[1]))


@function("SPACE", args=(1, 1), summary="n spaces")
def _space(c, call, a):
    return null_guard(a, _repeated(" ", a[0]))


@function("LOCATE", "POSITION", args=(2, 3), summary="1-based position of substr in s, 0 if absent")
def _locate(c, call, a):
    sub, s = a[0], a[1]
    if len(a) == 3:
        idx = {"$indexOfCP": [s, sub, {"$subtract": [a[2], 1]}]}
    else:
        idx = {"$indexOfCP": [s, sub]}
    return null_guard(a, {"$add": [idx, 1]})


@function("INSTR", args=(2, 2), summary="1-based position of substr in s, 0 if absent")
def _instr(c, call, a):
    return null_guard(a, {"$add": [{"$indexOfCP": [a[0], a[1]]}, 1]})


# ---------------------------------------------------------------- numbers


def round_half_away(x: Any, digits: Any) -> Any:
    """x rounded to ``digits`` decimals, halves away from zero (MySQL), integers unchanged.

    NULL propagates through every operator used, so no guard is needed."""
    scale = {"$pow": [10, "$$d"]} if not isinstance(digits, int) else 10**digits
    magnitude = {"$floor": {"$add": [{"$multiply": [{"$abs": "$$x"}, scale]}, 0.5]}}
    signed = {"$multiply": [{"$cond": [{"$lt": ["$$x", 0]}, -1, 1]}, magnitude]}
    rounded = signed if digits == 0 else {"$divide": [signed, scale]}
    if isinstance(digits, int) and digits >= 0:
        rounded = {"$cond": [{"$in": [{"$type": "$$x"}, ["int", "long"]]}, "$$x", rounded]}
    return {"$let": {"vars": {"x": {"$ifNull": [x, None]}, "d": digits}, "in": rounded}}


@function("ROUND", args=(1, 2), summary="round half away from zero to d decimals")
def _round(c, call, a):
    digits = call.args[1] if len(call.args) > 1 else ast.Literal(0)
    if isinstance(digits, ast.Literal) and isinstance(digits.value, int):
        return round_half_away(a[0], digits.value)
    return null_guard([a[1]], round_half_away(a[0], a[1]))


guarded("$trunc", "TRUNCATE", args=(2, 2), summary="truncate to d decimals")
guarded("$floor", "FLOOR", summary="largest integer not greater")
guarded("$ceil", "CEIL", "CEILING", summary="smallest integer not smaller")
guarded("$abs", "ABS", summary="absolute value")
guarded("$pow", "POWER", "POW", args=(2, 2), summary="x raised to y")
guarded("$exp", "EXP", summary="e raised to x")


NAN = float("nan")
INFINITIES = [float("inf"), float("-inf")]


def domain_guard(operands: list[Any], outside: Any, core: Any) -> Any:
    """``core``, or NULL where ``outside`` (a test of the operands) holds: MySQL's answer to an
    argument outside a function's domain (LN(0), SQRT(-1), ASIN(2)). NaN is in every domain:
    BSON orders NaN below every number, so a test such as ``x <= 0`` holds for it, yet SQRT(NaN)
    is NaN. With one operand the core keeps NaN (MongoDB's math operators return NaN for NaN);
    with several, a NaN operand gives NaN before any other test (``$log`` refuses a bad base
    even when its argument is NaN)."""
    if len(operands) == 1:
        return {"$cond": [{"$and": [{"$ne": [operands[0], NAN]}, outside]}, None, core]}
    nans = [{"$eq": [o, NAN]} for o in operands if not _constant_number(o)]
    branches = [{"case": outside, "then": None}] if outside is not False else []
    if nans:
        branches.insert(0, {"case": nans[0] if len(nans) == 1 else {"$or": nans}, "then": NAN})
    return {"$switch": {"branches": branches, "default": core}} if branches else core


def _constant_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v == v


def _positive_only(op, *extra):
    def fn(c, call, a):
        x = a[0]
        return null_guard(a, domain_guard(a, {"$lte": [x, 0]}, {op: [x, *extra] if extra else x}))

    return fn


function("LN", summary="natural logarithm (NULL for x <= 0)")(_positive_only("$ln"))
function("LOG10", summary="base-10 logarithm (NULL for x <= 0)")(_positive_only("$log10"))
function("LOG2", summary="base-2 logarithm (NULL for x <= 0)")(_positive_only("$log", 2))


@function("LOG", args=(1, 2), summary="LOG(x) natural; LOG(b, x) base b")
def _log(c, call, a):
    if len(a) == 1:
        return _positive_only("$ln")(c, call, a)
    b, x = a
    invalid = {"$or": [{"$lte": [x, 0]}, {"$lte": [b, 0]}, {"$eq": [b, 1]}]}
    return null_guard(a, domain_guard(a, invalid, {"$log": [x, b]}))


@function("SQRT", summary="square root (NULL for negative x)")
def _sqrt(c, call, a):
    return null_guard(a, domain_guard(a, {"$lt": [a[0], 0]}, {"$sqrt": a[0]}))


@function("SIGN", summary="-1, 0 or 1 (NaN for NaN)")
def _sign(c, call, a):
    x = a[0]
    return null_guard(
        a,
        {
            "$switch": {
                "branches": [
                    {"case": {"$gt": [x, 0]}, "then": 1},
                    {"case": {"$eq": [x, 0]}, "then": 0},
                    {"case": {"$eq": [x, NAN]}, "then": NAN},
                ],
                "default": -1,
            }
        },
    )


def _finite_only(op):
    """A trigonometric function: NULL for an infinite x (a domain error; MongoDB would refuse
    it), NaN for NaN (not infinite, so kept)."""

    def fn(c, call, a):
        x = a[0]
        return null_guard(a, {"$cond": [{"$in": [x, INFINITIES]}, None, op(x)]})

    return fn


function("SIN", summary="sine of x radians")(_finite_only(lambda x: {"$sin": x}))
function("COS", summary="cosine of x radians")(_finite_only(lambda x: {"$cos": x}))
function("TAN", summary="tangent of x radians")(_finite_only(lambda x: {"$tan": x}))
function("COT", summary="cotangent of x radians (NULL where the tangent is 0)")(
    _finite_only(
        lambda x: {
            "$let": {
                "vars": {"tan": {"$tan": x}},
                "in": {"$cond": [{"$eq": ["$$tan", 0]}, None, {"$divide": [1, "$$tan"]}]},
            }
        }
    )
)


def _unit_interval(op):
    def fn(c, call, a):
        x = a[0]
        outside = {"$or": [{"$lt": [x, -1]}, {"$gt": [x, 1]}]}
        return null_guard(a, domain_guard(a, outside, {op: x}))

    return fn


function("ASIN", summary="arc sine, in radians (NULL outside [-1, 1])")(_unit_interval("$asin"))
function("ACOS", summary="arc cosine, in radians (NULL outside [-1, 1])")(_unit_interval("$acos"))


@function("ATAN", args=(1, 2), summary="arc tangent; ATAN(y, x) = ATAN2(y, x)")
def _atan(c, call, a):
    return _atan2(c, call, a) if len(a) == 2 else null_guard(a, {"$atan": a[0]})


@function("ATAN2", args=(2, 2), summary="arc tangent of y / x, in (-π, π]")
def _atan2(c, call, a):
    # NaN answered before $atan2, which SecantusDB 0.7 never returns from for a decimal NaN.
    return null_guard(a, domain_guard(a, False, {"$atan2": a}))


guarded("$radiansToDegrees", "DEGREES", summary="radians to degrees")
guarded("$degreesToRadians", "RADIANS", summary="degrees to radians")


@function("BIT_COUNT", summary="number of 1 bits of a 64-bit integer (NULL for non-integers)")
def _bit_count(c, call, a):
    constant, x = integer_operand(c, call.args[0], "BIT_COUNT")
    if x is None:
        return None if constant is None else constant_bit_count(constant)
    return bound([x], lambda refs: null_guard(refs, bit_count(refs[0])), "a")


@function("MOD", args=(2, 2), summary="remainder (NULL when dividing by zero)")
def _mod(c, call, a):
    return {"$cond": [{"$eq": [a[1], 0]}, None, {"$mod": a}]}


@function("RAND", args=(0, 0), summary="a random double in [0, 1)")
def _rand(c, call, a):
    return {"$rand": {}}


@function("PI", args=(0, 0), summary="π")
def _pi(c, call, a):
    return 3.141592653589793


# ---------------------------------------------------------------- NULL handling


@function("COALESCE", args=(1, None), summary="the first non-NULL argument")
def _coalesce(c, call, a):
    out = a[-1]
    for v in reversed(a[:-1]):
        out = {"$ifNull": [v, out]}
    return out


@function("IFNULL", "NVL", args=(2, 2), summary="a if not NULL, else b")
def _ifnull(c, call, a):
    return {"$ifNull": a}


@function("NULLIF", args=(2, 2), summary="NULL if a = b, else a")
def _nullif(c, call, a):
    return {"$cond": [{"$eq": a}, None, a[0]]}


@function("IF", args=(3, 3), summary="IF(cond, then, else); NULL cond takes else")
def _if(c, call, a):
    return {"$cond": [c.truth(call.args[0]), a[1], a[2]]}


@function("GREATEST", args=(1, None), summary="largest argument; NULL if any is NULL")
def _greatest(c, call, a):
    return null_guard(a, {"$max": a})


@function("LEAST", args=(1, None), summary="smallest argument; NULL if any is NULL")
def _least(c, call, a):
    return null_guard(a, {"$min": a})


# ---------------------------------------------------------------- dates

_MS = {
    "MILLISECOND": 1,
    "SECOND": 1000,
    "MINUTE": 60_000,
    "HOUR": 3_600_000,
    "DAY": 86_400_000,
    "WEEK": 604_800_000,
}
_DATE_UNITS = {"MILLISECOND", "SECOND", "MINUTE", "HOUR", "DAY", "WEEK", "MONTH", "QUARTER", "YEAR"}


# $$NOW passed through $toLong/$toDate: the same instant, but a plain date value. Some
# MongoDB-compatible servers (SecantusDB 0.7) compare the raw $$NOW wrongly with stored dates.
NOW = {"$toDate": {"$toLong": "$$NOW"}}


@function(
    "NOW",
    "CURRENT_TIMESTAMP",
    "LOCALTIMESTAMP",
    "SYSDATE",
    args=(0, 0),
    summary="the server's current time ($$NOW)",
)
def _now(c, call, a):
    return NOW


@function("CURRENT_DATE", "CURDATE", args=(0, 0), summary="today (UTC) at midnight")
def _curdate(c, call, a):
    return {"$dateTrunc": {"date": NOW, "unit": "day"}}


@function("DATE", summary="the date part (midnight UTC)")
def _date(c, call, a):
    return null_guard(a, {"$dateTrunc": {"date": {"$toDate": a[0]}, "unit": "day"}})


def date_add(c: ExprCompiler, date: Any, interval: ast.Interval, sign: int) -> Any:
    unit = interval.unit
    if unit == "MICROSECOND":
        raise PlanningError(
            "MICROSECOND intervals are finer than MongoDB dates (milliseconds)", interval.pos
        )
    if unit not in _DATE_UNITS:
        raise PlanningError(
            f"unknown interval unit {unit}; use one of {', '.join(sorted(_DATE_UNITS))}",
            interval.pos,
        )
    amount = c.compile(interval.value)
    if sign < 0:
        amount = (
            -amount
            if isinstance(amount, int | float) and not isinstance(amount, bool)
            else {"$multiply": [-1, amount]}
        )
    return bound(
        [date, amount],
        lambda refs: null_guard(
            refs, {"$dateAdd": {"startDate": refs[0], "unit": unit.lower(), "amount": refs[1]}}
        ),
        "d",
    )


def _date_add_fn(sign: int) -> Translator:
    def fn(c, call, a):
        date, interval = call.args
        if not isinstance(interval, ast.Interval):
            interval = ast.Interval(interval, "DAY", interval.pos)
        return date_add(c, c.compile(date), interval, sign)

    return fn


function("DATE_ADD", "ADDDATE", args=(2, 2), summary="DATE_ADD(d, INTERVAL n unit)")(
    _date_add_fn(1)
)
function("DATE_SUB", "SUBDATE", args=(2, 2), summary="DATE_SUB(d, INTERVAL n unit)")(
    _date_add_fn(-1)
)


def unit_name(e: ast.Expr, what: str) -> str:
    """A unit written as a bare word (MINUTE) or a string ('minute')."""
    if isinstance(e, ast.Column) and len(e.parts) == 1 and isinstance(e.parts[0], str):
        return e.parts[0].upper()
    if isinstance(e, ast.Literal) and isinstance(e.value, str):
        return e.value.upper()
    raise PlanningError(f"{what} must be a unit name such as SECOND or DAY", e.pos)


@function("TIMESTAMPDIFF", args=(3, 3), summary="whole units from a to b (MySQL)")
def _timestampdiff(c, call, a):
    unit = unit_name(call.args[0], "TIMESTAMPDIFF's first argument")
    start, end = c.compile(call.args[1]), c.compile(call.args[2])
    start, end = {"$toDate": start}, {"$toDate": end}
    if unit == "MICROSECOND":
        return null_guard([start, end], {"$multiply": [{"$subtract": [end, start]}, 1000]})
    if unit in _MS:
        return null_guard(
            [start, end],
            {"$toLong": {"$trunc": [{"$divide": [{"$subtract": [end, start]}, _MS[unit]]}, 0]}},
        )
    if unit in ("MONTH", "QUARTER", "YEAR"):
        # Whole months: boundaries crossed, minus one when the last month is incomplete.
        months = {"$dateDiff": {"startDate": "$$s", "endDate": "$$e", "unit": "month"}}
        back = {"$dateAdd": {"startDate": "$$s", "unit": "month", "amount": "$$m"}}
        whole = {
            "$let": {
                "vars": {"m": months},
                "in": {
                    "$switch": {
                        "branches": [
                            {
                                "case": {"$and": [{"$gt": ["$$m", 0]}, {"$gt": [back, "$$e"]}]},
                                "then": {"$subtract": ["$$m", 1]},
                            },
                            {
                                "case": {"$and": [{"$lt": ["$$m", 0]}, {"$lt": [back, "$$e"]}]},
                                "then": {"$add": ["$$m", 1]},
                            },
                        ],
                        "default": "$$m",
                    }
                },
            }
        }
        per = {"MONTH": 1, "QUARTER": 3, "YEAR": 12}[unit]
        out = whole if per == 1 else {"$trunc": [{"$divide": [whole, per]}, 0]}
        return null_guard([start, end], {"$let": {"vars": {"s": start, "e": end}, "in": out}})
    raise PlanningError(f"unknown TIMESTAMPDIFF unit {unit}", call.args[0].pos)


@function("DATEDIFF", args=(2, 2), summary="days from b to a (date parts only)")
def _datediff(c, call, a):
    return null_guard(
        a,
        {
            "$dateDiff": {
                "startDate": {"$toDate": a[1]},
                "endDate": {"$toDate": a[0]},
                "unit": "day",
            }
        },
    )


@function("DATE_TRUNC", args=(2, 2), summary="DATE_TRUNC('hour', d): start of the unit")
def _date_trunc(c, call, a):
    unit = unit_name(call.args[0], "DATE_TRUNC's first argument")
    if unit not in _DATE_UNITS:
        raise PlanningError(f"unknown DATE_TRUNC unit {unit}", call.args[0].pos)
    d = c.compile(call.args[1])
    return null_guard([d], {"$dateTrunc": {"date": d, "unit": unit.lower()}})


_FORMAT = {
    "Y": "%Y",
    "m": "%m",
    "d": "%d",
    "H": "%H",
    "i": "%M",
    "s": "%S",
    "S": "%S",
    "j": "%j",
    "f": "%L000",
    "T": "%H:%M:%S",
    "%": "%%",
    "w": None,
    "v": "%V",
    "x": "%G",
}


def mysql_format(fmt: str, pos: Position | None) -> str:
    out, i = [], 0
    while i < len(fmt):
        ch = fmt[i]
        if ch == "%" and i + 1 < len(fmt):
            spec = fmt[i + 1]
            mapped = _FORMAT.get(spec)
            if mapped is None:
                supported = ", ".join("%" + k for k, v in _FORMAT.items() if v)
                raise PlanningError(
                    f"DATE_FORMAT specifier %{spec} is not supported; supported: {supported}", pos
                )
            out.append(mapped)
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


@function("DATE_FORMAT", args=(2, 2), summary="format with MySQL specifiers (UTC)")
def _date_format(c, call, a):
    fmt = c.constant_string(call.args[1], "DATE_FORMAT's format")
    return null_guard(
        [a[0]], {"$dateToString": {"date": a[0], "format": mysql_format(fmt, call.args[1].pos)}}
    )


_PARTS = {
    "YEAR": "$year",
    "MONTH": "$month",
    "DAY": "$dayOfMonth",
    "DAYOFMONTH": "$dayOfMonth",
    "HOUR": "$hour",
    "MINUTE": "$minute",
    "SECOND": "$second",
    "DAYOFWEEK": "$dayOfWeek",
    "DAYOFYEAR": "$dayOfYear",
    "WEEK": "$week",
    "MILLISECOND": "$millisecond",
}


def date_part(unit: str, d: Any, pos: Position | None) -> Any:
    if unit == "QUARTER":
        return null_guard([d], {"$ceil": {"$divide": [{"$month": d}, 3]}})
    if unit == "EPOCH":
        return null_guard([d], {"$divide": [{"$toLong": d}, 1000]})
    op = _PARTS.get(unit)
    if op is None:
        raise PlanningError(
            f"unknown date part {unit}; use one of "
            f"{', '.join(sorted([*_PARTS, 'QUARTER', 'EPOCH']))}",
            pos,
        )
    return null_guard([d], {op: d})


def _date_part_fn(unit: str) -> Translator:
    def fn(c: ExprCompiler, call: ast.FuncCall, a: list[Any]) -> Any:
        return date_part(unit, a[0], call.pos)

    return fn


for _unit in (
    "YEAR",
    "MONTH",
    "DAY",
    "DAYOFMONTH",
    "HOUR",
    "MINUTE",
    "SECOND",
    "DAYOFWEEK",
    "DAYOFYEAR",
    "WEEK",
    "QUARTER",
):
    function(_unit, summary=f"the {_unit.lower()} of a date")(_date_part_fn(_unit))


def compile_extract(c: ExprCompiler, e: ast.Extract) -> Any:
    return bound([c.compile(e.expr)], lambda refs: date_part(e.unit, refs[0], e.pos), "a")


@function("UNIX_TIMESTAMP", args=(0, 1), summary="seconds since 1970-01-01 UTC")
def _unix_timestamp(c, call, a):
    d = a[0] if a else NOW
    return null_guard([d], {"$floor": {"$divide": [{"$toLong": {"$toDate": d}}, 1000]}})


@function("FROM_UNIXTIME", summary="the date of a count of seconds since 1970")
def _from_unixtime(c, call, a):
    return null_guard(a, {"$toDate": {"$toLong": {"$multiply": [a[0], 1000]}}})


# ---------------------------------------------------------------- documents and JSON


@function("JSON_OBJECT", args=(0, None), summary="JSON_OBJECT(key, value, ...): a document")
def _json_object(c, call, a):
    if len(call.args) % 2:
        raise PlanningError(
            "JSON_OBJECT needs key/value pairs (an even number of arguments)", call.pos
        )
    pairs = []
    for k, v in zip(call.args[::2], call.args[1::2], strict=True):
        value = c.compile(v)
        if not never_null(value):
            value = {"$ifNull": [value, None]}  # a missing field is a null member, not absent
        pairs.append((c.constant_string(k, "a JSON_OBJECT key"), value))
    if all(re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", k) for k, _ in pairs):
        return {k: v for k, v in pairs}
    return {"$arrayToObject": [[{"k": k, "v": v} for k, v in pairs]]}


@function("JSON_ARRAY", args=(0, None), summary="JSON_ARRAY(v, ...): an array")
def _json_array(c, call, a):
    return list(a)


def parse_json_path(path: str, pos: Position | None) -> list[str | int]:
    """``$.a.b[0]`` / ``$."odd key"`` → ['a', 'b', 0]."""
    if not path.startswith("$"):
        raise PlanningError(f"JSON path {path!r} must start with $", pos)
    parts: list[str | int] = []
    for m in re.finditer(
        r'\.([A-Za-z_][A-Za-z0-9_$]*)|\."((?:[^"\\]|\\.)*)"|\[(\d+)\]|(.)', path[1:]
    ):
        name, quoted, index, bad = m.groups()
        if bad is not None:
            raise PlanningError(f"invalid JSON path {path!r} near {bad!r}", pos)
        parts.append(name if name is not None else quoted if quoted is not None else int(index))
    return parts


def json_path_get(base: Any, path: str, pos: Position | None) -> Any:
    return path_get(base, parse_json_path(path, pos))


@function("JSON_EXTRACT", args=(2, 2), summary="JSON_EXTRACT(doc, '$.a.b[0]')")
def _json_extract(c, call, a):
    path = c.constant_string(call.args[1], "JSON_EXTRACT's path")
    return json_path_get(c.compile(call.args[0]), path, call.args[1].pos)


@function("JSON_UNQUOTE", summary="the value itself (documents are not text in MongoDB)")
def _json_unquote(c, call, a):
    return a[0]


@function("JSON_LENGTH", summary="elements of an array, keys of a document, 1 for a scalar")
def _json_length(c, call, a):
    v = a[0]
    return null_guard(
        [v],
        {
            "$switch": {
                "branches": [
                    {"case": {"$isArray": v}, "then": {"$size": v}},
                    {
                        "case": {"$eq": [{"$type": v}, "object"]},
                        "then": {"$size": {"$objectToArray": v}},
                    },
                ],
                "default": 1,
            }
        },
    )


@function("JSON_CONTAINS", args=(2, 2), summary="whether an array holds the value (or equals it)")
def _json_contains(c, call, a):
    target, candidate = a
    test = {"$cond": [{"$isArray": "$$t"}, {"$in": ["$$c", "$$t"]}, {"$eq": ["$$t", "$$c"]}]}
    return {
        "$let": {
            "vars": {"t": target, "c": candidate},
            "in": {"$cond": [{"$or": [is_null_expr("$$t"), is_null_expr("$$c")]}, None, test]},
        }
    }


@function("OBJECTID", args=(1, 1), summary="OBJECTID('hex'): an ObjectId")
def _objectid(c, call, a):
    arg = call.args[0]
    if isinstance(arg, ast.Literal) and isinstance(arg.value, str):
        if not ObjectId.is_valid(arg.value):
            raise PlanningError(f"{arg.value!r} is not a valid ObjectId (24 hex digits)", arg.pos)
        return ObjectId(arg.value)
    v = c.compile(arg)
    return null_guard([v], {"$toObjectId": v})


@function("TYPEOF", summary="the BSON type name of the value ('null' for NULL or missing)")
def _typeof(c, call, a):
    return {"$cond": [{"$eq": [{"$type": a[0]}, "missing"]}, "null", {"$type": a[0]}]}


# ---------------------------------------------------------------- CAST

_CASTS = {
    "INT": "$toLong",
    "INTEGER": "$toLong",
    "BIGINT": "$toLong",
    "SIGNED": "$toLong",
    "SMALLINT": "$toLong",
    "DOUBLE": "$toDouble",
    "FLOAT": "$toDouble",
    "REAL": "$toDouble",
    "VARCHAR": "$toString",
    "TEXT": "$toString",
    "CHAR": "$toString",
    "STRING": "$toString",
    "BOOLEAN": "$toBool",
    "BOOL": "$toBool",
    "DATETIME": "$toDate",
    "TIMESTAMP": "$toDate",
    "OBJECTID": "$toObjectId",
}


def compile_cast(c: ExprCompiler, e: ast.Cast) -> Any:
    return bound([c.compile(e.expr)], lambda refs: _cast(e, refs[0]), "a")


def _cast(e: ast.Cast, v: Any) -> Any:
    t = e.type.name
    if t in ("DECIMAL", "NUMERIC"):
        out: Any = {"$toDecimal": v}
        if len(e.type.params) == 2:
            # Round half away from zero, then $round (a no-op on the value) sets the scale: 2.00
            out = {"$round": [round_half_away(out, e.type.params[1]), e.type.params[1]]}
        return null_guard([v], out)
    if t == "DATE":
        return null_guard([v], {"$dateTrunc": {"date": {"$toDate": v}, "unit": "day"}})
    if t in ("INT", "INTEGER", "BIGINT", "SIGNED", "SMALLINT"):
        # Integers convert exactly; anything else (strings, doubles, decimals) truncates.
        exact = {"$in": [{"$type": "$$v"}, ["int", "long"]]}
        truncated = {"$toLong": {"$trunc": [{"$toDecimal": "$$v"}, 0]}}
        return null_guard(
            [v],
            {"$let": {"vars": {"v": v}, "in": {"$cond": [exact, {"$toLong": "$$v"}, truncated]}}},
        )
    op = _CASTS.get(t)
    if op is None:
        raise PlanningError(
            f"unknown type {t} in CAST; use one of "
            f"{', '.join(sorted([*_CASTS, 'DECIMAL', 'NUMERIC', 'DATE']))}",
            e.type.pos,
        )
    return null_guard([v], {op: v})


def signature(name: str, fn: Function) -> str:
    """``NAME(a, b[, c])`` from a function's arity (``NAME(a, ...)`` when variadic)."""
    letters = "abcdefgh"
    required = ", ".join(letters[: fn.min_args])
    if fn.max_args is None:
        args = f"{required}, ..." if required else "..."
    else:
        optional = "".join(
            f"[, {letters[i]}]" if i else f"[{letters[i]}]"
            for i in range(fn.min_args, min(fn.max_args, len(letters)))
        )
        args = required + optional
    return f"{name}({args})"


def function_listing() -> dict[str, str]:
    """Every function SQL can call, with a line about it (signature and summary): the scalar
    functions of this catalogue, the aggregates and the window functions. For the command
    line's completion; the planner itself looks names up in FUNCTIONS."""
    from queryleaf.planner.windows import WINDOW_ONLY

    listing = {name: _describe(name, fn) for name, fn in FUNCTIONS.items()}
    listing.update({name: f"{name}(...): aggregate" for name in AGGREGATES})
    listing.update({name: f"{name}(...) OVER (...): window function" for name in WINDOW_ONLY})
    return dict(sorted(listing.items()))


def _describe(name: str, fn: Function) -> str:
    if fn.summary.startswith(f"{name}("):  # the summary spells the signature out itself
        return fn.summary
    return f"{signature(name, fn)}: {fn.summary}" if fn.summary else signature(name, fn)
