"""The type a select-list expression is known to have before any row is read.

Only what the compiled expression guarantees is declared: a comparison is always a boolean (or
NULL), COUNT a 64-bit integer, CONCAT a string, CAST(x AS BIGINT) a long. Everything else (a
column, SUM over values of unknown kinds, CASE) is left to the values (column_types.py), so a
declared type is never contradicted by a row.
"""

from __future__ import annotations

from queryleaf.column_types import ColumnType
from queryleaf.planner.expressions import is_boolean
from queryleaf.sql import ast

_CAST_TYPES = {
    **dict.fromkeys(("INT", "INTEGER", "BIGINT", "SIGNED", "SMALLINT"), ColumnType.BIGINT),
    **dict.fromkeys(("DOUBLE", "FLOAT", "REAL"), ColumnType.DOUBLE),
    **dict.fromkeys(("DECIMAL", "NUMERIC"), ColumnType.DECIMAL),
    **dict.fromkeys(("VARCHAR", "TEXT", "CHAR", "STRING"), ColumnType.TEXT),
    **dict.fromkeys(("BOOLEAN", "BOOL"), ColumnType.BOOLEAN),
    **dict.fromkeys(("DATETIME", "TIMESTAMP", "DATE"), ColumnType.TIMESTAMP),
}
_FUNCTION_TYPES = {
    "COUNT": ColumnType.BIGINT,
    **dict.fromkeys(
        (
            "CONCAT",
            "CONCAT_WS",
            "UPPER",
            "LOWER",
            "UCASE",
            "LCASE",
            "TRIM",
            "LTRIM",
            "RTRIM",
            "REPLACE",
            "REPEAT",
            "SPACE",
            "LPAD",
            "RPAD",
            "GROUP_CONCAT",
            "DATE_FORMAT",
        ),
        ColumnType.TEXT,
    ),
    **dict.fromkeys(
        ("NOW", "CURRENT_TIMESTAMP", "LOCALTIMESTAMP", "SYSDATE"), ColumnType.TIMESTAMP
    ),
}


def declared_type(e: ast.Expr) -> ColumnType | None:
    """The column type ``e``'s values are guaranteed to have (NULLs aside); None: unknown."""
    if is_boolean(e) and not (isinstance(e, ast.Literal) and e.value is None):
        return ColumnType.BOOLEAN
    if isinstance(e, ast.Cast):
        return _CAST_TYPES.get(e.type.name)
    if isinstance(e, ast.FuncCall) and e.over is None:
        return _FUNCTION_TYPES.get(e.name)
    if isinstance(e, ast.Literal) and isinstance(e.value, str):
        return ColumnType.TEXT
    return None
