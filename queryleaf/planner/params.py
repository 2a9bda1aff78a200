"""Binding of ``:name`` / ``?`` placeholders to BSON values (never spliced into text)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from bson import Binary, ObjectId
from bson.decimal128 import Decimal128

from queryleaf.errors import ParameterError
from queryleaf.sql import ast
from queryleaf.sql.walk import walk


def to_bson(value: Any, where: str = "parameter") -> Any:
    """A Python value as the BSON value MongoDB will store."""
    if value is None or isinstance(value, bool | int | float | str | ObjectId | Decimal128):
        if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
            raise ParameterError(f"{where}: integer {value} does not fit in 64 bits")
        return value
    if isinstance(value, Decimal):
        return Decimal128(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if isinstance(value, bytes | bytearray):
        return Binary(bytes(value))
    if isinstance(value, uuid.UUID):
        return Binary.from_uuid(value)
    if isinstance(value, Mapping):
        return {str(k): to_bson(v, where) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_bson(v, where) for v in value]
    raise ParameterError(f"{where}: cannot convert {type(value).__name__} to a BSON value")


class Bindings:
    """The values for the placeholders of one statement."""

    def __init__(self, statement: ast.Node, params: Mapping[str, Any] | Sequence[Any] | None):
        placeholders = [n for n in walk(statement) if isinstance(n, ast.Param)]
        names = {p.name for p in placeholders if p.name is not None}
        positional = sorted({p.index for p in placeholders if p.index is not None})
        self.named: dict[str, Any] = {}
        self.positional: list[Any] = []
        if names and positional:
            raise ParameterError("a statement cannot mix :name and ? placeholders",
                                 placeholders[0].pos)
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
            if len(params) != len(positional):
                raise ParameterError(
                    f"the statement has {len(positional)} ? placeholder(s) but "
                    f"{len(params)} value(s) were given"
                )
            self.positional = [to_bson(v, f"parameter {i + 1}") for i, v in enumerate(params)]
        else:
            raise ParameterError(f"params must be a mapping or a sequence, not {type(params).__name__}")

    def value(self, param: ast.Param) -> Any:
        if param.name is not None:
            return self.named[param.name]
        return self.positional[param.index or 0]
