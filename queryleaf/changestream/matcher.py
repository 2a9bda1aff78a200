"""A consumer's ``$match`` filter evaluated in the client, on the events of a shared stream.

Consumers of one namespace whose filters differ share one change stream; each one's filter then
runs here, on every shared event (docs/events.md, "Shared change streams"). It must agree with
the server exactly, so only a subset of the query language is compiled, and even within it an
event the subset cannot judge exactly is reported as *undecided* (None) — the consumer then
reads that part of the stream with its own filter on the server (see shared.py):

* operators: implicit and ``$eq``, ``$ne``, ``$gt``/``$gte``/``$lt``/``$lte``, ``$in``, ``$nin``,
  ``$exists``, and ``$and``/``$or``/``$nor`` at the top level;
* values compared: null, booleans, numbers (int, Int64, float, not NaN), strings, datetimes,
  ObjectIds. A filter with any other operator (``$expr``, ``$regex``, ``$elemMatch``,
  ``$type``, ...) or value (documents, arrays, regexes, Decimal128) does not compile
  (``Unsupported``): that consumer keeps a stream of its own shape;
* undecided at run time: a path that meets an array (the server's array traversal), a document
  or array where a value is compared.

Comparisons follow the server's: numbers compare across int/long/double, other values only
within their own type (``$gt: 5`` never matches a string), strings by code point (the simple
collation), ``{a: null}`` matches a missing ``a``, ``$ne``/``$nin`` are the negations.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from bson.int64 import Int64
from bson.objectid import ObjectId

Judge = Callable[[Mapping[str, Any]], "bool | None"]  # None: undecided
_MISSING = object()
_ARRAY = object()  # the path met an array: undecided
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
COMPARISONS = {"$gt": (1,), "$gte": (0, 1), "$lt": (-1,), "$lte": (-1, 0)}


class Unsupported(ValueError):
    """The filter uses what the client does not evaluate exactly."""


def compile_filter(query: Mapping[str, Any]) -> Judge:
    """A function telling whether an event matches ``query`` (None: it cannot tell)."""
    if not isinstance(query, Mapping):
        raise Unsupported("a filter must be a document")
    clauses = [_clause(key, value) for key, value in query.items()]
    return _all(clauses)


def _clause(key: str, value: Any) -> Judge:
    if key in ("$and", "$or", "$nor"):
        if not isinstance(value, list) or not value:
            raise Unsupported(f"{key} needs a non-empty array")
        branches = [compile_filter(branch) for branch in value]
        if key == "$and":
            return _all(branches)
        anyof = _any(branches)
        return anyof if key == "$or" else _not(anyof)
    if key.startswith("$"):
        raise Unsupported(f"{key} is evaluated by the server only")
    parts = key.split(".")
    if any(not part or part.isdigit() or part.startswith("$") for part in parts):
        raise Unsupported(f"the path {key!r} (array positions) is evaluated by the server only")
    if isinstance(value, Mapping) and any(str(k).startswith("$") for k in value):
        tests = [_operator(op, operand) for op, operand in value.items()]
    else:
        tests = [_operator("$eq", value)]
    return lambda event: _on_path(event, parts, tests)


def _on_path(
    event: Mapping[str, Any], parts: list[str], tests: list[Callable[[Any], bool | None]]
) -> bool | None:
    value = _resolve(event, parts)
    if value is _ARRAY:
        return None
    outcome: bool | None = True
    for test in tests:
        result = test(value)
        if result is False:
            return False
        if result is None:
            outcome = None
    return outcome


def _resolve(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(doc, list):
            return _ARRAY
        if not isinstance(doc, Mapping) or part not in doc:
            return _MISSING
        doc = doc[part]
    return doc


def _operator(op: str, operand: Any) -> Callable[[Any], bool | None]:
    if op == "$exists":
        wanted = bool(operand)
        return lambda value: (value is not _MISSING) == wanted
    if op in ("$eq", "$ne"):
        _check_value(operand)
        equal = _equal_to(operand)
        return equal if op == "$eq" else _negated(equal)
    if op in ("$in", "$nin"):
        if not isinstance(operand, list):
            raise Unsupported(f"{op} needs an array")
        tests = [_equal_to(_check_value(item)) for item in operand]
        anyof = _any_value(tests)
        return anyof if op == "$in" else _negated(anyof)
    if op in COMPARISONS:
        _check_value(operand)
        if operand is None:
            raise Unsupported(f"{op} null is evaluated by the server only")
        signs = COMPARISONS[op]
        return lambda value: _compared(value, operand, signs)
    raise Unsupported(f"{op} is evaluated by the server only")


def _check_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | str | datetime | ObjectId):
        return value
    if isinstance(value, int | Int64):
        return value
    if isinstance(value, float) and not math.isnan(value):
        return value
    raise Unsupported(f"comparing with {type(value).__name__} values is done by the server only")


def _class(value: Any) -> str | None:
    """The server's comparison class of a scalar (None: not one this module compares)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | Int64):
        return "number"
    if isinstance(value, float):
        return None if math.isnan(value) else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, datetime):
        return "date"
    if isinstance(value, ObjectId):
        return "objectid"
    return None


def _equal_to(operand: Any) -> Callable[[Any], bool | None]:
    wanted = _class(operand)

    def equal(value: Any) -> bool | None:
        if value is _MISSING:
            return operand is None  # {a: null} matches a missing a
        have = _class(value)
        if have is None:
            return None  # a document, an array, another type: the server decides
        return have == wanted and (wanted == "null" or _plain(value) == _plain(operand))

    return equal


def _compared(value: Any, operand: Any, signs: tuple[int, ...]) -> bool | None:
    if value is _MISSING:
        return False
    have = _class(value)
    if have is None:
        return None
    if have != _class(operand):
        return False
    a, b = _plain(value), _plain(operand)
    sign = (a > b) - (a < b)
    return sign in signs


def _plain(value: Any) -> Any:
    """A datetime as the server holds it (UTC milliseconds; naive ones are UTC)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return (value - EPOCH) // timedelta(milliseconds=1)
    return value


def _negated(test: Callable[[Any], bool | None]) -> Callable[[Any], bool | None]:
    def negated(value: Any) -> bool | None:
        result = test(value)
        return None if result is None else not result

    return negated


def _any_value(tests: list[Callable[[Any], bool | None]]) -> Callable[[Any], bool | None]:
    def anyof(value: Any) -> bool | None:
        undecided = False
        for test in tests:
            result = test(value)
            if result:
                return True
            undecided = undecided or result is None
        return None if undecided else False

    return anyof


def _all(judges: list[Judge]) -> Judge:
    def every(event: Mapping[str, Any]) -> bool | None:
        undecided = False
        for judge in judges:
            result = judge(event)
            if result is False:
                return False
            undecided = undecided or result is None
        return None if undecided else True

    return every


def _any(judges: list[Judge]) -> Judge:
    def some(event: Mapping[str, Any]) -> bool | None:
        undecided = False
        for judge in judges:
            result = judge(event)
            if result:
                return True
            undecided = undecided or result is None
        return None if undecided else False

    return some


def _not(judge: Judge) -> Judge:
    def negated(event: Mapping[str, Any]) -> bool | None:
        result = judge(event)
        return None if result is None else not result

    return negated
