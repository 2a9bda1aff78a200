"""BSON values as Python sees them, ordered and compared the way MongoDB does: the sort key of
BSON's comparison order (MIN, MAX, comparisons across types) and the canonical form that makes
equal values equal and hashable (GROUP BY keys, COUNT(DISTINCT x)).

Numbers compare by value across int, double and Decimal128 (``1``, ``1.0`` and ``Decimal128('1')``
are one value, as in ``$group`` and ``$addToSet``); a boolean is not a number (``true`` is not
``1``); documents compare field by field in their order, arrays element by element.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from bson import ObjectId, Regex, Timestamp
from bson.decimal128 import Decimal128, create_decimal128_context
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey

# The arithmetic of Decimal128: 34 digits, half to even (IEEE 754-2008 decimal128).
DECIMAL128_CONTEXT = create_decimal128_context()

# MongoDB's comparison order of BSON types (missing and null are one rank for SQL).
_MIN_KEY, _NULL, _NUMBER, _STRING, _OBJECT, _ARRAY = 1, 2, 3, 4, 5, 6
_BINARY, _OBJECT_ID, _BOOLEAN, _DATE, _TIMESTAMP, _REGEX, _MAX_KEY, _OTHER = range(7, 15)


def is_number(v: Any) -> bool:
    """int (not bool), double or decimal."""
    t = type(v)
    return t is int or t is float or t is Decimal128 or t is Int64 or t is Decimal


def as_decimal(v: Any) -> Decimal:
    """A number as a Decimal: a double through its shortest decimal text."""
    if type(v) is Decimal128:
        return v.to_decimal()
    if type(v) is float:
        return Decimal(repr(v))
    return Decimal(v)


def to_decimal128(d: Decimal) -> Decimal128:
    """A Decimal rounded to Decimal128's 34 digits."""
    return Decimal128(DECIMAL128_CONTEXT.create_decimal(d))


def _utc_naive(d: dt.datetime) -> dt.datetime:
    return d if d.tzinfo is None else d.astimezone(dt.UTC).replace(tzinfo=None)


def sort_key(v: Any) -> tuple[Any, ...]:
    """A key that orders values as MongoDB compares them (MinKey < null < numbers < strings <
    documents < arrays < binary < ObjectId < booleans < dates < timestamps < regexes < MaxKey).
    NaN sorts below every other number, as in BSON."""
    t = type(v)
    if t is int or t is float:
        return (_NUMBER, 0, 0) if v != v else (_NUMBER, 1, v)
    if t is str:
        return (_STRING, v)  # code point order is UTF-8 byte order: MongoDB's simple collation
    if v is None:
        return (_NULL,)
    if t is bool:
        return (_BOOLEAN, v)
    if t is Decimal128 or t is Decimal or t is Int64:
        d = as_decimal(v)
        return (_NUMBER, 0, 0) if d.is_nan() else (_NUMBER, 1, d)
    if isinstance(v, dt.datetime):
        return (_DATE, _utc_naive(v))
    if isinstance(v, Mapping):
        return (_OBJECT, tuple((sort_key(x)[0], k, sort_key(x)) for k, x in v.items()))
    if isinstance(v, list | tuple):
        return (_ARRAY, tuple(sort_key(x) for x in v))
    if isinstance(v, bytes):
        return (_BINARY, len(v), getattr(v, "subtype", 0), bytes(v))
    if t is ObjectId:
        return (_OBJECT_ID, v.binary)
    if t is Timestamp:
        return (_TIMESTAMP, v.time, v.inc)
    if isinstance(v, Regex | re.Pattern):
        return (_REGEX, v.pattern, str(v.flags))
    if t is MinKey:
        return (_MIN_KEY,)
    if t is MaxKey:
        return (_MAX_KEY,)
    return (_OTHER, type(v).__name__, repr(v))


class _Tag:
    """A marker that no stored value equals: tags the canonical forms of non-scalars."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


_NAN, _BOOL, _DOC, _ARR, _BIN = _Tag("NaN"), _Tag("bool"), _Tag("doc"), _Tag("arr"), _Tag("bin")
_UNHASHABLE = _Tag("unhashable")


def canonical(v: Any) -> Any:
    """A hashable value equal to the canonical form of every value MongoDB deems equal to ``v``
    (``1``, ``1.0``, ``Decimal128('1')``; null and missing; NaN and NaN) and to no other."""
    t = type(v)
    if t is str or t is int or v is None:
        return v
    if t is float:
        return _NAN if v != v else v
    if t is bool:
        return (_BOOL, v)
    if t is Decimal128 or t is Decimal or t is Int64:
        d = as_decimal(v)
        return _NAN if d.is_nan() else d  # equal Decimals, ints and floats hash alike
    if isinstance(v, dt.datetime):
        return _utc_naive(v)
    if isinstance(v, Mapping):
        return (_DOC, tuple((k, canonical(x)) for k, x in v.items()))
    if isinstance(v, list | tuple):
        return (_ARR, tuple(canonical(x) for x in v))
    if isinstance(v, bytes):
        return (_BIN, getattr(v, "subtype", 0), bytes(v))
    try:
        hash(v)
    except TypeError:
        return (_UNHASHABLE, type(v).__name__, repr(v))
    return v


def canonical_key(key: tuple[Any, ...]) -> tuple[Any, ...]:
    """A GROUP BY key in canonical form; a key of strings and integers already is one."""
    for v in key:
        t = type(v)
        if not (t is str or t is int or v is None):
            return tuple(canonical(x) for x in key)
    return key
