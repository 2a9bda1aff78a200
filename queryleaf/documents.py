"""Paths in documents, on the client: reading a result column, spreading ``t.*``, nesting an
inserted value (the server-side forms are the planner's)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from queryleaf import plan


def nest(doc: dict[str, Any], path: Sequence[str], value: Any) -> None:
    """Set ``value`` at ``path`` (field names) of ``doc``, creating the documents on the way."""
    for part in path[:-1]:
        doc = doc.setdefault(part, {})
    doc[path[-1]] = value


def spread_row(doc: dict[str, Any], columns: tuple[plan.OutputColumn, ...]) -> dict[str, Any]:
    """A result row whose ``t.*`` columns are the fields of a table's document; a name already
    taken gets a suffix (``_id``, ``_id_2``), as the planner does for named columns."""
    row: dict[str, Any] = {}
    for c in columns:
        value = get_path(doc, c.key)
        for name, field_value in (value or {}).items() if c.spread else [(c.name, value)]:
            row[plan.unique_name(name, row)] = field_value
    return row


def get_path(doc: Any, key: str) -> Any:
    """The value at a dotted path of a result document (None when missing)."""
    if key in doc:
        return doc[key]
    value = doc
    for part in key.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value
