"""Binding of ``:name`` / ``?`` placeholders to BSON values (never spliced into text)."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from bson import Binary, ObjectId
from bson.decimal128 import Decimal128

from queryleaf.errors import ParameterError
from queryleaf.sql import ast
from queryleaf.sql.walk import walk

# A lone UTF-16 surrogate (written "\ud800" in Python, or made by surrogateescape) is a str
# but not Unicode text: UTF-8, and so BSON, cannot hold it.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_text(text: str, what: str) -> None:
    """ParameterError unless ``text`` can be stored as UTF-8."""
    if not text.isascii():
        found = _SURROGATE.search(text)
        if found is not None:
            raise ParameterError(
                f"{what}: the text holds a lone surrogate "
                f"U+{ord(found.group()):04X} (at index {found.start()}), which "
                "is not Unicode text and cannot be stored as UTF-8"
            )


def _key(key: Any, where: str) -> str:
    """A document key of a parameter: any text but a NUL (BSON ends keys with it). A key that
    starts with ``$`` or holds ``.`` is a field name like any other: parameter values are
    always data, never read as operators or paths (see tests/test_limits.py)."""
    text = str(key)
    if "\0" in text:
        raise ParameterError(
            f"{where}: the key {text!r} holds a NUL character, which MongoDB "
            "field names cannot hold"
        )
    _check_text(text, f"{where}: key {text!r}")
    return text


def _int64(value: int, where: str) -> int:
    if not -(2**63) <= value < 2**63:
        raise ParameterError(
            f"{where}: integer {value} does not fit in 64 bits (MongoDB "
            f"integers are {-(2**63)} to {2**63 - 1})"
        )
    return value


# MongoDB stores documents nested at most 100 levels deep.
MAX_NESTING = 100


def to_bson(value: Any, where: str = "parameter", depth: int = 0) -> Any:
    """A Python value as the BSON value MongoDB will store."""
    if type(value) is int:  # the common case, first
        return _int64(value, where)
    if isinstance(value, str):
        _check_text(value, where)
        return value
    if value is None or isinstance(value, bool | int | float | ObjectId | Decimal128):
        return (
            _int64(value, where)
            if isinstance(value, int) and not isinstance(value, bool)
            else value
        )
    if isinstance(value, Decimal):
        return Decimal128(value)
    if isinstance(value, dt.datetime):
        if value != value:  # pandas' NaT, "not a time": a missing value
            return None
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if isinstance(value, bytes | bytearray):
        return Binary(bytes(value))
    if isinstance(value, uuid.UUID):
        return Binary.from_uuid(value)
    if isinstance(value, Mapping | list | tuple) and depth >= MAX_NESTING:
        raise ParameterError(
            f"{where}: documents and arrays nested more than {MAX_NESTING} "
            "levels deep (MongoDB's limit)"
        )
    if isinstance(value, Mapping):
        return {_key(k, where): to_bson(v, where, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_bson(v, where, depth + 1) for v in value]
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        return to_bson(_numpy_scalar(value), where, depth)
    raise ParameterError(f"{where}: cannot convert {type(value).__name__} to a BSON value")


def _numpy_scalar(value: Any) -> Any:
    """A NumPy scalar (pandas hands them out: ``df.n.max()``) as the Python value it holds."""
    if type(value).__name__ == "datetime64":
        # .item() of a nanosecond datetime64 is an int; BSON dates hold milliseconds anyway
        return None if value != value else value.astype("datetime64[us]").item()
    return value.item()


class Bindings:
    """The values for the placeholders of one statement."""

    def __init__(self, statement: ast.Node, params: Mapping[str, Any] | Sequence[Any] | None):
        placeholders = [n for n in walk(statement) if isinstance(n, ast.Param)]
        names = {p.name for p in placeholders if p.name is not None}
        positional = sorted({p.index for p in placeholders if p.index is not None})
        numbered = [p for p in placeholders if p.numbered]
        self.named: dict[str, Any] = {}
        self.positional: list[Any] = []
        if names and positional:
            raise ParameterError(
                "a statement cannot mix :name and ? placeholders", placeholders[0].pos
            )
        if numbered and len(numbered) != len(placeholders):
            raise ParameterError(
                "a statement cannot mix $n placeholders with ? or :name ones", numbered[0].pos
            )
        # $n needs n values even when a lower number is unused (PostgreSQL's rule too).
        expected = positional[-1] + 1 if numbered else len(positional)
        if params is None:
            params = {} if not positional else []
        if isinstance(params, Mapping):
            if positional:
                raise ParameterError("? placeholders need a sequence of values, got a mapping")
            missing = sorted(names - set(params))
            if missing:
                first = next(p for p in placeholders if p.name == missing[0])
                raise ParameterError(f"no value for parameter :{missing[0]}", first.pos)
            extra = sorted(set(params) - names)
            if extra:
                raise ParameterError(
                    f"parameter {', '.join(':' + e for e in extra)} is not used by the statement"
                )
            self.named = {k: to_bson(v, f"parameter :{k}") for k, v in params.items()}
        elif isinstance(params, Sequence) and not isinstance(params, str | bytes):
            if names:
                raise ParameterError(":name placeholders need a mapping of values, got a sequence")
            if len(params) != expected:
                kind = "$n" if numbered else "?"
                raise ParameterError(
                    f"the statement has {expected} {kind} placeholder(s) but "
                    f"{len(params)} value(s) were given"
                )
            self.positional = [to_bson(v, f"parameter {i + 1}") for i, v in enumerate(params)]
        else:
            raise ParameterError(
                f"params must be a mapping or a sequence, not {type(params).__name__}"
            )

    def value(self, param: ast.Param) -> Any:
        if param.name is not None:
            return self.named[param.name]
        return self.positional[param.index or 0]
