"""The stored fields a statement reads: which column reference resolved to which collection
and field path, for the caller to check against a sample of the documents (the planner does no
I/O; see queryleaf/columns.py).

Name resolution (``Scope``) reports each column it resolves in a collection or view; derived
tables, CTEs and system tables have known columns and are not reported. ``plan_statement``
collects the reports of one statement through ``recording``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from queryleaf.errors import Position


@dataclass(frozen=True)
class ColumnReference:
    """A column of a stored collection (or view) that a statement reads."""

    collection: str
    path: tuple[str | int, ...]  # in the collection's documents (array indexes kept)
    written: str  # the reference as written, e.g. ``nmae`` or ``u.customer.name``
    alias: str  # the name that qualifies the table's columns in the statement
    qualified: bool  # written with its table's name or alias: taken as meant
    stored: bool  # its value is stored by INSERT/UPDATE (an unknown one is an error)
    pos: Position | None = None

    @property
    def field_path(self) -> tuple[str, ...]:
        """The path without array indexes: ``items[0].price`` reads the field ``items.price``."""
        return tuple(p for p in self.path if isinstance(p, str))


@dataclass
class _Log:
    references: list[ColumnReference]
    stored_from: set[int] = field(default_factory=set)  # ids of scopes whose reads are stored
    muted: int = 0


_log: ContextVar[_Log | None] = ContextVar("queryleaf_column_references", default=None)


@contextmanager
def recording(into: list[ColumnReference] | None) -> Iterator[None]:
    """Collect into ``into`` the column references resolved while planning (None: do not)."""
    if into is None:
        yield
        return
    token = _log.set(_Log(into))
    try:
        yield
    finally:
        _log.reset(token)


@contextmanager
def storing_reads_of(scope: object) -> Iterator[None]:
    """While compiling values that INSERT/UPDATE store: columns resolved in ``scope`` (the
    written table's row) are stored values. Columns of subqueries stay plain reads."""
    log = _log.get()
    if log is None:
        yield
        return
    log.stored_from.add(id(scope))
    try:
        yield
    finally:
        log.stored_from.discard(id(scope))


@contextmanager
def not_reads() -> Iterator[None]:
    """Resolutions that name fields to write (SET targets), not fields read."""
    log = _log.get()
    if log is None:
        yield
        return
    log.muted += 1
    try:
        yield
    finally:
        log.muted -= 1


def note(
    scope: object,
    collection: str,
    alias: str,
    path: tuple[str | int, ...],
    written: str,
    qualified: bool,
    pos: Position | None,
) -> None:
    """Called by name resolution for a column found in a stored collection or view."""
    log = _log.get()
    if log is None or log.muted:
        return
    log.references.append(
        ColumnReference(
            collection, path, written, alias, qualified, id(scope) in log.stored_from, pos
        )
    )
