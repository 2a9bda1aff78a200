"""SQLAlchemy's statements, DDL and types as queryleaf SQL.

SQLAlchemy's default compiler already writes most of what queryleaf reads (double-quoted names,
``:name`` parameters, ``TRUE``/``FALSE``, ``INSERT ... VALUES``, ``UPDATE ... SET``); what
differs is overridden here:

- OFFSET without LIMIT: queryleaf has ``OFFSET n`` alone (not SQLite's ``LIMIT -1 OFFSET n``);
- names equal to a queryleaf keyword are quoted (queryleaf's keywords, not PostgreSQL's);
- CREATE TABLE types are queryleaf's type names (column_types.DECLARED_TYPES); a type, default,
  constraint or index queryleaf cannot store is a CompileError naming it, never dropped quietly;
- RETURNING, sequences, comments and ALTER do not exist (the dialect says so to SQLAlchemy).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import exc, types
from sqlalchemy.sql import compiler

from queryleaf.column_types import ColumnType
from queryleaf.sql.parser import BARE_FUNCTIONS
from queryleaf.sql.printer import KEYWORDS


class QueryLeafIdentifierPreparer(compiler.IdentifierPreparer):
    reserved_words = {word.lower() for word in KEYWORDS | BARE_FUNCTIONS}


# What follows ':' in a queryleaf parameter (the grammar's NAMED_PARAM); other characters of a
# bound parameter's name (a column "unit price" or "größe") are replaced, the values mapped back.
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NOT_IN_PARAM_NAME = re.compile(r"[^A-Za-z0-9_]")


class QueryLeafCompiler(compiler.SQLCompiler):
    def bindparam_string(self, name: str, **kw: Any) -> str:  # type: ignore[override]
        if not kw.get("escaped_from") and not _PARAM_NAME.fullmatch(name):
            kw["escaped_from"] = name
            name = "p_" + _NOT_IN_PARAM_NAME.sub("_", name)
        return super().bindparam_string(name, **kw)

    def limit_clause(self, select: Any, **kw: Any) -> str:
        text = ""
        if select._limit_clause is not None:
            text += "\n LIMIT " + self.process(select._limit_clause, **kw)
        if select._offset_clause is not None:
            text += "\n OFFSET " + self.process(select._offset_clause, **kw)
        return text

    def for_update_clause(self, select: Any, **kw: Any) -> str:
        raise exc.CompileError("queryleaf has no SELECT ... FOR UPDATE (MongoDB locks no rows)")


class QueryLeafDDLCompiler(compiler.DDLCompiler):
    def get_column_specification(self, column: Any, **kw: Any) -> str:
        if column.identity is not None:
            raise exc.CompileError(f"column {column.name}: queryleaf has no IDENTITY columns")
        if column.server_default is not None or column.computed is not None:
            raise exc.CompileError(
                f"column {column.name}: queryleaf's CREATE TABLE has no DEFAULT or computed "
                "columns (give the value in each INSERT)"
            )
        spec = (
            self.preparer.format_column(column)
            + " "
            + self.dialect.type_compiler_instance.process(column.type, type_expression=column)
        )
        if not column.nullable:
            spec += " NOT NULL"
        return spec

    def visit_check_constraint(self, constraint: Any, **kw: Any) -> str:
        raise exc.CompileError("queryleaf's CREATE TABLE has no CHECK constraints")

    def visit_column_check_constraint(self, constraint: Any, **kw: Any) -> str:
        raise exc.CompileError("queryleaf's CREATE TABLE has no CHECK constraints")

    def visit_unique_constraint(self, constraint: Any, **kw: Any) -> str:
        raise exc.CompileError(
            "queryleaf's CREATE TABLE has no UNIQUE constraints (a PRIMARY KEY gets a unique index)"
        )

    def create_table_constraints(
        self, table: Any, _include_foreign_key_constraints: Any = None, **kw: Any
    ) -> str:
        # MongoDB has no foreign keys: left out (SQLAlchemy still orders create_all by them).
        return super().create_table_constraints(table, _include_foreign_key_constraints=set(), **kw)

    def visit_primary_key_constraint(self, constraint: Any, **kw: Any) -> str:
        if len(constraint) == 0:
            return ""
        names = ", ".join(self.preparer.quote(c.name) for c in constraint)
        return f"PRIMARY KEY ({names})"

    def visit_create_index(self, create: Any, **kw: Any) -> str:  # type: ignore[override]
        raise exc.CompileError(
            f"index {create.element.name}: queryleaf has no CREATE INDEX yet (create it with "
            "MongoDB's createIndexes; pandas: to_sql(..., index=False))"
        )

    def visit_drop_index(self, drop: Any, **kw: Any) -> str:
        raise exc.CompileError("queryleaf has no DROP INDEX")


class QueryLeafTypeCompiler(compiler.GenericTypeCompiler):
    """SQLAlchemy's types as the type names queryleaf's CREATE TABLE and CAST read."""

    def visit_DATETIME(self, type_: Any, **kw: Any) -> str:
        return "TIMESTAMP"

    def visit_TIMESTAMP(self, type_: Any, **kw: Any) -> str:
        return "TIMESTAMP"

    def visit_DATE(self, type_: Any, **kw: Any) -> str:
        return "DATE"

    def visit_FLOAT(self, type_: Any, **kw: Any) -> str:
        return "DOUBLE"

    def visit_REAL(self, type_: Any, **kw: Any) -> str:
        return "DOUBLE"

    def visit_DOUBLE(self, type_: Any, **kw: Any) -> str:
        return "DOUBLE"

    def visit_DOUBLE_PRECISION(self, type_: Any, **kw: Any) -> str:
        return "DOUBLE"

    def visit_CLOB(self, type_: Any, **kw: Any) -> str:
        return "TEXT"

    def visit_NCHAR(self, type_: Any, **kw: Any) -> str:
        return self.visit_CHAR(type_, **kw)

    def visit_NVARCHAR(self, type_: Any, **kw: Any) -> str:
        return self.visit_VARCHAR(type_, **kw)

    def visit_VARBINARY(self, type_: Any, **kw: Any) -> str:
        return "BLOB"

    def visit_BINARY(self, type_: Any, **kw: Any) -> str:
        return "BLOB"

    def visit_JSON(self, type_: Any, **kw: Any) -> str:
        return "JSON"

    def visit_TIME(self, type_: Any, **kw: Any) -> str:
        raise exc.CompileError("queryleaf has no TIME type (BSON dates are instants)")

    def visit_interval(self, type_: Any, **kw: Any) -> str:
        raise exc.CompileError("queryleaf has no INTERVAL type")

    def visit_time(self, type_: Any, **kw: Any) -> str:
        return self.visit_TIME(type_, **kw)


# The column types reflection reports for each queryleaf column type (column_types.ColumnType).
REFLECTED_TYPES: dict[ColumnType, type[types.TypeEngine[Any]]] = {
    ColumnType.BOOLEAN: types.BOOLEAN,
    ColumnType.INTEGER: types.INTEGER,
    ColumnType.BIGINT: types.BIGINT,
    ColumnType.DOUBLE: types.DOUBLE,
    ColumnType.DECIMAL: types.NUMERIC,
    ColumnType.TEXT: types.TEXT,
    ColumnType.TIMESTAMP: types.TIMESTAMP,
    ColumnType.DOCUMENT: types.JSON,
    ColumnType.BINARY: types.LargeBinary,
}
