"""CREATE TABLE → a collection with a ``$jsonSchema`` validator; DROP TABLE → drop.

MongoDB keeps no schema, so the declared columns become a validator the server checks on every
insert and update (docs/semantics.md, "Tables with declared columns"): each column's BSON types
(with ``null`` unless NOT NULL) and its declared type as the rule's ``description``; NOT NULL
columns are ``required``, other fields are allowed.
A PRIMARY KEY is NOT NULL and gets a unique index, ``<table>_pkey``; ``_id`` stays the document's
own key.
"""

from __future__ import annotations

from typing import Any

from queryleaf import plan
from queryleaf.column_types import DECLARED_TYPES, ColumnType, type_named
from queryleaf.errors import PlanningError, Position
from queryleaf.planner import sources
from queryleaf.sql import ast
from queryleaf.sql.printer import to_sql

# The BSON types a value of each column type may be stored as. A number column accepts the
# narrower numbers as they are: SQL lets an integer into a FLOAT or NUMERIC column, and MongoDB
# cannot convert it on the way in.
BSON_TYPES: dict[ColumnType, list[str]] = {
    ColumnType.BOOLEAN: ["bool"],
    ColumnType.INTEGER: ["int", "long"],
    ColumnType.BIGINT: ["int", "long"],
    ColumnType.DOUBLE: ["double", "int", "long"],
    ColumnType.DECIMAL: ["decimal", "double", "int", "long"],
    ColumnType.TEXT: ["string"],
    ColumnType.TIMESTAMP: ["date"],
    ColumnType.DOCUMENT: ["object", "array"],
    ColumnType.BINARY: ["binData"],
}

_LENGTH_TYPES = frozenset({"VARCHAR", "CHAR"})
_PRECISION_TYPES = frozenset({"NUMERIC", "DECIMAL", "FLOAT", "TIMESTAMP", "DATETIME"})


def check_table_name(name: str, pos: Position | None) -> None:
    """Refuse queryleaf's and MongoDB's own collections."""
    hint = sources.reserved(name)
    if hint is not None or name.startswith("system."):
        why = hint or "it is a MongoDB system collection"
        raise PlanningError(f"{name} cannot be created or dropped as a table: {why}", pos)


def plan_create_table(stmt: ast.CreateTable) -> plan.CreateTable:
    check_table_name(stmt.name, stmt.pos)
    seen: dict[str, ast.ColumnDef] = {}
    for column in stmt.columns:
        _check_column_name(column)
        if column.name in seen:
            raise PlanningError(f"column {column.name} is declared twice", column.pos)
        seen[column.name] = column
    keys = [c.name for c in stmt.columns if c.primary_key]
    if keys and stmt.primary_key:
        raise PlanningError("a table has one PRIMARY KEY", stmt.pos)
    for key in stmt.primary_key:
        if key not in seen:
            raise PlanningError(f"PRIMARY KEY names {key}, which is not a column", stmt.pos)
    keys = keys or list(stmt.primary_key)
    properties = {c.name: _property(c, c.not_null or c.name in keys) for c in stmt.columns}
    required = [c.name for c in stmt.columns if c.not_null or c.name in keys]
    schema: dict[str, Any] = {"bsonType": "object", "properties": properties}
    if required:
        schema["required"] = required
    return plan.CreateTable(
        stmt.name, {"$jsonSchema": schema}, tuple(keys), stmt.if_not_exists, stmt.pos
    )


def plan_drop_table(stmt: ast.DropTable) -> plan.DropTable:
    check_table_name(stmt.name, stmt.pos)
    return plan.DropTable(stmt.name, stmt.if_exists, stmt.pos)


def _check_column_name(column: ast.ColumnDef) -> None:
    # A declared column is a top-level field: a dot would be a path, a leading $ an operator.
    if "." in column.name or column.name.startswith("$") or "\0" in column.name:
        raise PlanningError(
            f"column name {column.name!r}: a declared column cannot hold '.' or NUL or start "
            "with '$' (nested fields go in a JSON column)",
            column.pos,
        )


def _property(column: ast.ColumnDef, not_null: bool) -> dict[str, Any]:
    type_name = column.type
    kind = type_named(type_name.name)
    if kind is None:
        known = ", ".join(sorted(DECLARED_TYPES))
        raise PlanningError(
            f"unknown column type {type_name.name} (the types are {known})", type_name.pos
        )
    allowed = _LENGTH_TYPES | _PRECISION_TYPES
    if type_name.params and type_name.name not in allowed:
        raise PlanningError(f"{type_name.name} takes no length or precision", type_name.pos)
    if len(type_name.params) > 1 and type_name.name in _LENGTH_TYPES:
        raise PlanningError(f"{type_name.name} takes one length", type_name.pos)
    bson_types = BSON_TYPES[kind] + ([] if not_null else ["null"])
    rule: dict[str, Any] = {"bsonType": bson_types[0] if len(bson_types) == 1 else bson_types}
    if type_name.name in _LENGTH_TYPES and type_name.params:
        rule["maxLength"] = type_name.params[0]
    # The type as declared, for inspection (SQLAlchemy reflects VARCHAR(20), not only "string").
    rule["description"] = to_sql(type_name)
    return rule
