"""Compiling a statement with no database (``queryleaf run --check``), and saying what only the
database can check.

Parsing, the options of event subscriptions, placeholders and planning need no database: the
planner is pure. Planning without a catalog skips what the catalog decides: whether the tables a
statement reads exist (collections and views alike: a view reads as a table). The rest that only
the server can tell is listed per statement (``OfflineCheck.unchecked``): the columns, which
queryleaf checks against documents sampled when the statement runs (docs/semantics.md, unknown
columns); for subscriptions, the server's own check of the change stream and whether a named one
exists; for views, whether one of that name exists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from queryleaf import plan
from queryleaf.errors import PlanningError
from queryleaf.planner import Catalog, ColumnReference, plan_statement
from queryleaf.sql import ast
from queryleaf.sql.walk import table_names
from queryleaf.transaction import check_allowed

_NAMED_SUBSCRIPTION = (
    ast.AlterSubscription,
    ast.DropSubscription,
    ast.PauseSubscription,
    ast.ResumeSubscription,
    ast.ResetSubscription,
)


@dataclass(frozen=True)
class OfflineCheck:
    """A statement compiled offline: its plan, and what was left for the database to check."""

    plan: plan.Plan
    unchecked: tuple[str, ...]


def check_offline(
    statement: ast.Statement,
    params: Mapping[str, Any] | Sequence[Any] | None = None,
    in_transaction: bool = False,
) -> OfflineCheck:
    """Plan ``statement`` with no database; raises the QueryLeafError running it would raise
    before reaching the server. ``in_transaction``: it must be able to run inside one."""
    if in_transaction and isinstance(statement, ast.TransactionStatement):
        raise PlanningError(
            f"{_keyword(statement)} cannot be used in a single transaction: the statements "
            "already run in one, committed when all of them succeed",
            statement.pos,
        )
    control = isinstance(statement, ast.TransactionStatement | ast.Explain)
    references: list[ColumnReference] | None = None if control else []
    p = plan_statement(statement, params, Catalog(), references)
    if in_transaction and not control:
        check_allowed(statement, p)
    return OfflineCheck(p, unchecked(statement, references or []))


def unchecked(statement: ast.Statement, references: list[ColumnReference]) -> tuple[str, ...]:
    """What only the database can check for ``statement`` (its column ``references``)."""
    inner = statement.statement if isinstance(statement, ast.Explain) else statement
    gaps: list[str] = []
    tables = set(table_names(inner))
    if isinstance(inner, ast.Update | ast.Delete):
        tables.add(inner.table)
    if tables:
        gaps.append(f"that {_names('table', tables)} {'exist' if len(tables) > 1 else 'exists'}")
    columns: dict[str, set[str]] = {}
    for ref in references:
        if not ref.qualified:
            columns.setdefault(ref.collection, set()).add(".".join(ref.field_path))
    for collection, names in sorted(columns.items()):
        gaps.append(f"{_names('column', names)} against the documents of {collection}")
    if isinstance(inner, ast.CreateSubscription | ast.AlterSubscription):
        gaps.append("the server's check of the subscription's change stream")
    if isinstance(inner, _NAMED_SUBSCRIPTION) and not getattr(inner, "if_exists", False):
        gaps.append(f"that event subscription {inner.name} exists")
    if isinstance(inner, ast.CreateView) and not inner.or_replace:
        gaps.append(f"that no collection or view {inner.name} exists yet")
    if isinstance(inner, ast.DropView) and not inner.if_exists:
        gaps.append(f"that view {inner.name} exists")
    if isinstance(inner, ast.CreateTable) and not inner.if_not_exists:
        gaps.append(f"that no collection or view {inner.name} exists yet")
    if isinstance(inner, ast.DropTable) and not inner.if_exists:
        gaps.append(f"that table {inner.name} exists")
    return tuple(gaps)


def _names(kind: str, names: set[str]) -> str:
    listed = ", ".join(sorted(names))
    return f"{kind}s {listed}" if len(names) > 1 else f"{kind} {listed}"


def _keyword(statement: ast.Statement) -> str:
    if isinstance(statement, ast.Begin):
        return "BEGIN"
    return "COMMIT" if isinstance(statement, ast.Commit) else "ROLLBACK"
