"""SQLAlchemy types whose values queryleaf stores natively.

SQLAlchemy's ``JSON`` writes a JSON string for drivers that take text; queryleaf binds a dict or
a list as a BSON document or array and reads it back as one, so the value passes untouched (and
a ``JSON`` column's validator, ``object``/``array``, accepts it).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import types


class Document(types.JSON):
    def bind_processor(self, dialect: Any) -> None:
        return None

    def result_processor(self, dialect: Any, coltype: Any) -> None:
        return None


COLSPECS: dict[Any, Any] = {types.JSON: Document}

# The types reflection reports for a column CREATE TABLE declared (its validator rule's
# description, e.g. "VARCHAR(20)"), by the declared name; a length or precision is passed on.
_DECLARED: dict[str, type[types.TypeEngine[Any]]] = {
    "SMALLINT": types.SMALLINT,
    "INT": types.INTEGER,
    "INTEGER": types.INTEGER,
    "BIGINT": types.BIGINT,
    "FLOAT": types.DOUBLE,
    "REAL": types.DOUBLE,
    "DOUBLE": types.DOUBLE,
    "NUMERIC": types.NUMERIC,
    "DECIMAL": types.DECIMAL,
    "TEXT": types.TEXT,
    "STRING": types.TEXT,
    "VARCHAR": types.VARCHAR,
    "CHAR": types.CHAR,
    "BOOLEAN": types.BOOLEAN,
    "BOOL": types.BOOLEAN,
    "TIMESTAMP": types.TIMESTAMP,
    "DATETIME": types.TIMESTAMP,
    "DATE": types.DATE,
    "JSON": types.JSON,
    "BLOB": types.LargeBinary,
    "BYTEA": types.LargeBinary,
}
_TYPE_TEXT = re.compile(r"([A-Z]+)(?:\((\d+)(?:, *(\d+))?\))?")


def declared_sqlalchemy_type(text: str) -> types.TypeEngine[Any] | None:
    """The SQLAlchemy type of a declared type (``NUMERIC(10, 2)``); None when ``text`` is not
    one (a validator written by hand may describe its fields in words)."""
    match = _TYPE_TEXT.fullmatch(text.strip())
    if match is None or match.group(1) not in _DECLARED:
        return None
    name = match.group(1)
    first, second = (int(g) if g is not None else None for g in match.groups()[1:])
    if first is not None and name in ("VARCHAR", "CHAR"):
        return (types.VARCHAR if name == "VARCHAR" else types.CHAR)(length=first)
    if first is not None and name in ("NUMERIC", "DECIMAL"):
        return (types.NUMERIC if name == "NUMERIC" else types.DECIMAL)(first, second)
    return _DECLARED[name]()
