"""Sources: what a FROM item reads, and how its stored documents become rows.

Every FROM item names a source, and every source gives the planner the same thing, a
``Relation``: the collection to read, the stages that turn its documents into rows, and the
table its columns resolve in. The kinds of source:

* ``Collection``: a stored collection or view, read as it is (a find can serve it);
* ``QueryResult``: a derived table or WITH query, already planned: its pipeline and columns;
* ``TableFunction``: ``NAME()``, a table that is not a collection read as is;
* a table function with arguments, such as ``CHANGE_STREAM('orders')`` (change_stream.py):
  its ``bind`` turns the call into the source.

A package that owns a table function registers it here (the event runtime registers
``CHANGE_STREAM_EVENTS()`` and the other system tables when queryleaf is imported), with the stages
that turn its stored documents into rows; the planner looks names up here and knows nothing of
the package. A package also reserves the collection-name prefix it owns, so SQL cannot write
those collections or read them other than through their table functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from queryleaf import plan
from queryleaf.errors import PlanningError, Position
from queryleaf.planner.lowering import as_aggregate
from queryleaf.planner.scope import Table
from queryleaf.sql import ast

Stages = list[dict[str, Any]]

# SELECT without FROM reads one empty row from a collection that never exists (through
# $facet), so it also works inside views and subqueries.
ONE_ROW = "__queryleaf_one"
ONE_ROW_PIPELINE: Stages = [{"$facet": {"one": [{"$limit": 1}]}}, {"$project": {"one": 0}}]


@dataclass
class Relation:
    """The rows of a FROM item before the query's own stages."""

    collection: str
    pipeline: Stages
    table: Table
    plain: bool = False  # a stored collection read as is (find-able)
    system: bool = False  # a queryleaf system collection (hide _id for SELECT *)
    # The event log keeps rows grouped in stored documents: columns every row of a document
    # shares (stored at its top level), and columns whose least and greatest value the document
    # records. Filters on them also run, on the documents, before ``pipeline`` (stored.py).
    stored_fields: frozenset[str] = frozenset()
    stored_ranges: dict[str, tuple[str, str]] = field(default_factory=dict)


class Source(Protocol):
    def relation(self, alias: str, columns: set[str] | None) -> Relation:
        """The rows under ``alias``; ``columns``: the top-level columns the query may read
        (None: all of them), so a source can skip computing the others."""
        ...


@dataclass(frozen=True)
class Collection:
    """A stored collection or view: its documents are the rows."""

    name: str

    def relation(self, alias: str, columns: set[str] | None) -> Relation:
        return Relation(self.name, [], Table(alias, collection=self.name), plain=True)


@dataclass(frozen=True)
class QueryResult:
    """A derived table or WITH query: the rows of its plan, under its output column names."""

    planned: plan.Aggregate | plan.Find
    pos: Position | None = None

    def relation(self, alias: str, columns: set[str] | None) -> Relation:
        agg = as_aggregate(self.planned)
        if agg.columns is None:  # SELECT * of one table: its documents pass through
            return Relation(agg.collection, list(agg.pipeline), Table(alias))
        if any(c.spread for c in agg.columns):
            raise PlanningError(
                f"subquery {alias}: * over a join is not allowed in a derived "
                "table or CTE (the tables' columns are not known); list the "
                "columns",
                self.pos,
            )
        named = {c.name: c.key for c in agg.columns}
        return Relation(agg.collection, list(agg.pipeline), Table(alias, (), named))


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

    def bind(self, call: ast.TableFunction) -> Source:
        """The source of ``call``: this one, which takes no arguments."""
        if call.args:
            raise PlanningError(f"{self.name}() takes no arguments", call.args[0].pos)
        if call.since is not None:
            raise PlanningError(
                f"SINCE only follows CHANGE_STREAM(...), not {self.name}()", call.since.pos
            )
        return self

    def relation(self, alias: str, columns: set[str] | None) -> Relation:
        pipeline = self.rows(columns) if self.rows is not None else []
        return Relation(
            self.collection,
            pipeline,
            Table(alias),
            plain=not pipeline,
            system=True,
            stored_fields=self.stored_fields,
            stored_ranges=dict(self.stored_ranges),
        )


class TableFunctionDefinition(Protocol):
    """What is registered under a table function's name: ``bind`` checks a call's arguments
    (and SINCE) and returns the source the call reads."""

    @property
    def name(self) -> str: ...

    def bind(self, call: ast.TableFunction) -> Source: ...


_TABLE_FUNCTIONS: dict[str, TableFunctionDefinition] = {}
_RESERVED_PREFIXES: dict[str, str] = {}  # prefix → how to read such collections


def register_table_function(source: TableFunctionDefinition) -> None:
    _TABLE_FUNCTIONS[source.name] = source


def table_function(name: str) -> TableFunctionDefinition | None:
    return _TABLE_FUNCTIONS.get(name)


def table_function_names() -> list[str]:
    return list(_TABLE_FUNCTIONS)


def reserve_prefix(prefix: str, hint: str) -> None:
    """Collections whose name starts with ``prefix`` belong to a package: ``hint`` says how
    SQL reads them."""
    _RESERVED_PREFIXES[prefix] = hint


def reserved_prefixes() -> list[str]:
    return list(_RESERVED_PREFIXES)


def reserved(collection: str) -> str | None:
    """How to read a reserved collection (None: not reserved)."""
    if collection == ONE_ROW:
        return "it is queryleaf's one-row source of SELECT without FROM"
    for prefix, hint in _RESERVED_PREFIXES.items():
        if collection.startswith(prefix):
            return hint
    return None
