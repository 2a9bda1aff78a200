"""``CHANGE_STREAM('orders')``, ``CHANGE_STREAM('orders', 'users')``, ``CHANGE_STREAM(DATABASE)``:
the changes of collections as rows, for live queries (``... EMIT CHANGES``, planner/live.py).

The rows are change events under the column names ``CHANGE_STREAM_EVENTS()`` uses where it has
them (docs/streaming.md lists them). One ``$replaceWith`` after ``$changeStream`` makes them,
with only the columns the query reads, and keeps ``_id``: it is the resume token, and a change
stream refuses a pipeline that changes it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from queryleaf.errors import PlanningError, Position
from queryleaf.planner import sources
from queryleaf.planner.scope import Table
from queryleaf.sql import ast

NAME = "CHANGE_STREAM"

# Column → the change event's value (an aggregation expression of constants only).
COLUMNS: dict[str, Any] = {
    "event_id": "$_id._data",
    "operation_type": "$operationType",
    "event_type": "$operationType",
    "database_name": "$ns.db",
    "collection_name": "$ns.coll",
    "document_key": "$documentKey",
    "full_document": "$fullDocument",
    "full_document_before_change": "$fullDocumentBeforeChange",
    "update_description": "$updateDescription",
    "updated_fields": "$updateDescription.updatedFields",
    "removed_fields": "$updateDescription.removedFields",
    "cluster_time": "$clusterTime",
    "wall_time": "$wallTime",
    "event_timestamp": {"$ifNull": ["$wallTime", {"$toDate": "$clusterTime"}]},
}
# Columns that need the server to look a document up: their change stream option and value.
POST_IMAGE = "full_document"
PRE_IMAGE = "full_document_before_change"

_planning_live = ContextVar("planning_live_query", default=False)


@contextmanager
def live_planning() -> Iterator[None]:
    """CHANGE_STREAM(...) may be read while this is active: only live queries read it."""
    token = _planning_live.set(True)
    try:
        yield
    finally:
        _planning_live.reset(token)


@dataclass(frozen=True)
class ChangeStreamSource:
    """The changes of ``collections`` (empty: of the whole database)."""

    collections: tuple[str, ...]
    pos: Position | None = None

    @property
    def database_wide(self) -> bool:
        return len(self.collections) != 1

    def relation(self, alias: str, columns: set[str] | None) -> sources.Relation:
        if not _planning_live.get():
            raise PlanningError(
                f"{NAME}(...) is read by live queries only: end the query with EMIT CHANGES "
                "and run it with QueryLeaf.stream() (or in the CLI)",
                self.pos,
            )
        wanted = {k: v for k, v in COLUMNS.items() if columns is None or k in columns}
        pipeline: list[dict[str, Any]] = [*self.namespace_filter()]
        pipeline.append({"$replaceWith": {"_id": "$_id", **wanted}})
        table = Table(alias, (), {name: name for name in COLUMNS})
        return sources.Relation(self.collections[0] if self.collections else "", pipeline, table)

    def namespace_filter(self) -> list[dict[str, Any]]:
        """A database watch: only the collections named, or none of queryleaf's own."""
        if len(self.collections) > 1:
            return [{"$match": {"ns.coll": {"$in": list(self.collections)}}}]
        if not self.collections:
            own = [sources.ONE_ROW, *sources.reserved_prefixes()]
            pattern = "^(?:" + "|".join(re.escape(p) for p in own) + ")"
            return [{"$match": {"ns.coll": {"$not": {"$regex": pattern}}}}]
        return []


@dataclass(frozen=True)
class ChangeStreamFunction:
    """The registered definition: checks a call's arguments."""

    name: str = NAME

    def bind(self, call: ast.TableFunction) -> ChangeStreamSource:
        if not call.args:
            raise PlanningError(
                f"{NAME}() needs what to watch: collection names ('orders', ...) or DATABASE",
                call.pos,
            )
        if len(call.args) == 1 and _is_database(call.args[0]):
            return ChangeStreamSource((), call.pos)
        names: list[str] = []
        for arg in call.args:
            if _is_database(arg):
                raise PlanningError(
                    f"{NAME}(DATABASE) watches every collection: it takes no other argument",
                    arg.pos,
                )
            if not (isinstance(arg, ast.Literal) and isinstance(arg.value, str) and arg.value):
                raise PlanningError(
                    f"{NAME}() takes collection names as string literals ('orders') or DATABASE",
                    arg.pos,
                )
            hint = sources.reserved(arg.value)
            if hint is not None:
                raise PlanningError(f"{arg.value} is a queryleaf system collection", arg.pos)
            if arg.value not in names:
                names.append(arg.value)
        return ChangeStreamSource(tuple(names), call.pos)


def _is_database(arg: ast.Expr) -> bool:
    return (
        isinstance(arg, ast.Column)
        and len(arg.parts) == 1
        and str(arg.parts[0]).upper() == "DATABASE"
    )


sources.register_table_function(ChangeStreamFunction())
