"""The SQL type of a result column, for clients that need one before they read a value.

MongoDB keeps no schema, so a column's type is inferred from the values it holds: the DB-API's
``cursor.description`` type codes, the PostgreSQL wire server's ``RowDescription`` OIDs and the
SQLAlchemy dialect all read it from here, so they never disagree. The rules (docs/connectors.md):

- NULLs say nothing; a column of only NULLs (or no rows) is TEXT;
- integers are INTEGER while every one fits 32 bits, else BIGINT;
- integers mixed with doubles are DOUBLE; any DECIMAL among numbers makes the column DECIMAL;
- a column whose values are of kinds that do not widen into one another (a string and a number,
  a document and a date) is TEXT: every value has a text form;
- documents and arrays are DOCUMENT (JSON), bytes and UUIDs BINARY, ObjectIds TEXT.

It also maps the type names a ``CREATE TABLE`` declares to these types (``type_named``) and
each type to its PEP 249 type object family (``DBAPI_FAMILY``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from enum import StrEnum
from typing import Any

from bson import Binary, Decimal128, Int64, ObjectId, Timestamp

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


class ColumnType(StrEnum):
    BOOLEAN = "boolean"
    INTEGER = "integer"  # 32-bit
    BIGINT = "bigint"  # 64-bit
    DOUBLE = "double"
    DECIMAL = "decimal"
    TEXT = "text"
    TIMESTAMP = "timestamp"  # with time zone: BSON dates are UTC instants
    DOCUMENT = "document"  # a document or an array, as JSON
    BINARY = "binary"


_NUMERIC_RANK = {ColumnType.INTEGER: 0, ColumnType.BIGINT: 1, ColumnType.DOUBLE: 2}


def type_of_value(value: Any) -> ColumnType | None:
    """The type of one decoded value; None for NULL."""
    if value is None:
        return None
    if isinstance(value, bool):
        return ColumnType.BOOLEAN
    if isinstance(value, Int64):
        return ColumnType.BIGINT
    if isinstance(value, int):
        return ColumnType.INTEGER if INT32_MIN <= value <= INT32_MAX else ColumnType.BIGINT
    if isinstance(value, float):
        return ColumnType.DOUBLE
    if isinstance(value, Decimal128 | Decimal):
        return ColumnType.DECIMAL
    if isinstance(value, dt.datetime | dt.date | Timestamp):
        return ColumnType.TIMESTAMP
    if isinstance(value, Mapping | list | tuple):
        return ColumnType.DOCUMENT
    if isinstance(value, bytes | Binary | uuid.UUID):
        return ColumnType.BINARY
    if isinstance(value, str | ObjectId):
        return ColumnType.TEXT
    return ColumnType.TEXT


def unify(a: ColumnType | None, b: ColumnType | None) -> ColumnType | None:
    """The narrowest type that holds the values of both (None: no value seen yet)."""
    if a is None or a == b:
        return b
    if b is None:
        return a
    numeric = (*_NUMERIC_RANK, ColumnType.DECIMAL)
    if a in numeric and b in numeric:
        if ColumnType.DECIMAL in (a, b):
            return ColumnType.DECIMAL
        return a if _NUMERIC_RANK[a] >= _NUMERIC_RANK[b] else b
    return ColumnType.TEXT


def infer_type(values: Iterable[Any]) -> ColumnType:
    kind: ColumnType | None = None
    for value in values:
        kind = unify(kind, type_of_value(value))
        if kind is ColumnType.TEXT:
            break
    return kind or ColumnType.TEXT


def infer_column_types(
    columns: Sequence[str],
    rows: Iterable[Mapping[str, Any]],
    declared: Mapping[str, ColumnType] | None = None,
) -> list[ColumnType]:
    """One type per column: the planner's (``declared``, a result's ``declared_types``) where
    it knows it, else from the rows given (e.g. the first batch of a result)."""
    declared = declared or {}
    kinds: list[ColumnType | None] = [declared.get(c) for c in columns]
    inferred = [i for i, c in enumerate(columns) if c not in declared]
    for row in rows:
        for i in inferred:
            kinds[i] = unify(kinds[i], type_of_value(row.get(columns[i])))
    return [kind or ColumnType.TEXT for kind in kinds]


# The type names CREATE TABLE accepts, and the column type each one declares (docs/sql-reference.md).
DECLARED_TYPES: dict[str, ColumnType] = {
    "BOOLEAN": ColumnType.BOOLEAN,
    "BOOL": ColumnType.BOOLEAN,
    "SMALLINT": ColumnType.INTEGER,
    "INT": ColumnType.INTEGER,
    "INTEGER": ColumnType.INTEGER,
    "BIGINT": ColumnType.BIGINT,
    "FLOAT": ColumnType.DOUBLE,
    "REAL": ColumnType.DOUBLE,
    "DOUBLE": ColumnType.DOUBLE,
    "NUMERIC": ColumnType.DECIMAL,
    "DECIMAL": ColumnType.DECIMAL,
    "TEXT": ColumnType.TEXT,
    "VARCHAR": ColumnType.TEXT,
    "CHAR": ColumnType.TEXT,
    "STRING": ColumnType.TEXT,
    "TIMESTAMP": ColumnType.TIMESTAMP,
    "DATETIME": ColumnType.TIMESTAMP,
    "DATE": ColumnType.TIMESTAMP,
    "JSON": ColumnType.DOCUMENT,
    "BLOB": ColumnType.BINARY,
    "BYTEA": ColumnType.BINARY,
}


def type_named(name: str) -> ColumnType | None:
    """The column type of a declared type name (any case); None: not a type queryleaf has."""
    return DECLARED_TYPES.get(name.upper())


# BSON type names ($type's) as column types; None: says nothing of the type (null, missing).
_BSON_NAMES: dict[str, ColumnType | None] = {
    "null": None,
    "missing": None,
    "bool": ColumnType.BOOLEAN,
    "int": ColumnType.INTEGER,
    "long": ColumnType.BIGINT,
    "double": ColumnType.DOUBLE,
    "decimal": ColumnType.DECIMAL,
    "string": ColumnType.TEXT,
    "objectId": ColumnType.TEXT,
    "date": ColumnType.TIMESTAMP,
    "timestamp": ColumnType.TIMESTAMP,
    "object": ColumnType.DOCUMENT,
    "array": ColumnType.DOCUMENT,
    "binData": ColumnType.BINARY,
}


def type_of_bson_names(names: Iterable[str]) -> ColumnType:
    """The column type of a field whose values have these BSON types (a sample's, or the
    ``bsonType`` list of a validator); TEXT when they say nothing or do not widen into one."""
    kind: ColumnType | None = None
    for name in names:
        kind = unify(kind, _BSON_NAMES.get(name, ColumnType.TEXT))
    return kind or ColumnType.TEXT


# PEP 249's type objects (STRING, NUMBER, ...) by the column types each one compares equal to.
DBAPI_FAMILY: dict[ColumnType, str] = {
    ColumnType.BOOLEAN: "NUMBER",
    ColumnType.INTEGER: "NUMBER",
    ColumnType.BIGINT: "NUMBER",
    ColumnType.DOUBLE: "NUMBER",
    ColumnType.DECIMAL: "NUMBER",
    ColumnType.TEXT: "STRING",
    ColumnType.TIMESTAMP: "DATETIME",
    ColumnType.DOCUMENT: "STRING",
    ColumnType.BINARY: "BINARY",
}
