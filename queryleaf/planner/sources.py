"""Table functions as sources: tables that are not collections read as they are.

A package that owns such a table registers it here (the event runtime registers
``CHANGE_STREAM_EVENTS()`` and the other system tables when queryleaf is imported), with the stages
that turn its stored documents into rows; the planner looks names up here and knows nothing of
the package. A package also reserves the collection-name prefix it owns, so SQL cannot write
those collections or read them other than through their table functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Stages = list[dict[str, Any]]

# SELECT without FROM reads one empty row from a collection that never exists (through
# $facet), so it also works inside views and subqueries.
ONE_ROW = "__queryleaf_one"
ONE_ROW_PIPELINE: Stages = [{"$facet": {"one": [{"$limit": 1}]}}, {"$project": {"one": 0}}]


@dataclass(frozen=True)
class TableFunction:
    """``NAME()`` in FROM: the rows of ``collection`` after ``rows(columns read)`` (None: the
    stored documents are the rows). Stored documents may group rows: ``stored_fields`` are
    columns every row of a document shares (at its top level), ``stored_ranges`` columns whose
    least and greatest value the document records (filters on them also run on the documents,
    see stored.py). ``_id`` is internal and hidden from ``SELECT *``."""

    name: str
    collection: str
    rows: Callable[[Iterable[str] | None], Stages] | None = None
    stored_fields: frozenset[str] = frozenset()
    stored_ranges: Mapping[str, tuple[str, str]] = field(default_factory=dict)


_TABLE_FUNCTIONS: dict[str, TableFunction] = {}
_RESERVED_PREFIXES: dict[str, str] = {}  # prefix → how to read such collections


def register_table_function(source: TableFunction) -> None:
    _TABLE_FUNCTIONS[source.name] = source


def table_function(name: str) -> TableFunction | None:
    return _TABLE_FUNCTIONS.get(name)


def table_function_names() -> list[str]:
    return list(_TABLE_FUNCTIONS)


def reserve_prefix(prefix: str, hint: str) -> None:
    """Collections whose name starts with ``prefix`` belong to a package: ``hint`` says how
    SQL reads them."""
    _RESERVED_PREFIXES[prefix] = hint


def reserved(collection: str) -> str | None:
    """How to read a reserved collection (None: not reserved)."""
    if collection == ONE_ROW:
        return "it is queryleaf's one-row source of SELECT without FROM"
    for prefix, hint in _RESERVED_PREFIXES.items():
        if collection.startswith(prefix):
            return hint
    return None
