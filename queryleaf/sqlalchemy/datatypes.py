"""SQLAlchemy types whose values queryleaf stores natively.

SQLAlchemy's ``JSON`` writes a JSON string for drivers that take text; queryleaf binds a dict or
a list as a BSON document or array and reads it back as one, so the value passes untouched (and
a ``JSON`` column's validator, ``object``/``array``, accepts it).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import types


class Document(types.JSON):
    def bind_processor(self, dialect: Any) -> None:
        return None

    def result_processor(self, dialect: Any, coltype: Any) -> None:
        return None


COLSPECS: dict[Any, Any] = {types.JSON: Document}
