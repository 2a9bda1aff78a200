"""The planner: AST → plan objects. Pure: it never touches the database."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from queryleaf import plan
from queryleaf.errors import PlanningError
from queryleaf.planner.ddl import plan_ddl
from queryleaf.planner.live import plan_live_query
from queryleaf.planner.nesting import check_command_depth
from queryleaf.planner.params import Bindings
from queryleaf.planner.references import ColumnReference, recording
from queryleaf.planner.select import plan_select_statement
from queryleaf.planner.statements import statement_planner
from queryleaf.planner.writes import plan_delete, plan_insert, plan_update
from queryleaf.sql import ast


@dataclass(frozen=True)
class Catalog:
    """What the planner may know about the database, passed in by the executor."""

    tables: frozenset[str] | None = None  # collections and views; None: not checked


def plan_statement(
    statement: ast.Statement,
    params: Mapping[str, Any] | Sequence[Any] | None = None,
    catalog: Catalog | None = None,
    references: list[ColumnReference] | None = None,
) -> plan.Plan:
    """The plan of one statement; with ``references``, also the columns of stored collections
    it reads, appended there (for the caller to check against the data: planner/references.py).
    """
    bindings = Bindings(statement, params)
    try:
        with recording(references):
            result = _plan(statement, bindings, catalog or Catalog())
        check_command_depth(result, statement.pos)
        return result
    except RecursionError:
        # Last resort: parsed statements are within the nesting limit (sql/limits.py), which
        # keeps planning far from Python's recursion limit; this is for ASTs built by hand and
        # for callers already deep in their own stack.
        raise PlanningError(
            "statement nested too deeply to plan (see Limits in docs/semantics.md)", statement.pos
        ) from None


_TRANSACTION_PLANS: dict[type[ast.TransactionStatement], type[plan.TransactionControl]] = {
    ast.Begin: plan.StartTransaction,
    ast.Commit: plan.CommitTransaction,
    ast.Rollback: plan.AbortTransaction,
}


def _plan(statement: ast.Statement, bindings: Bindings, catalog: Catalog) -> plan.Plan:
    if isinstance(statement, ast.Explain):
        if isinstance(statement.statement, ast.Explain):
            raise PlanningError("EXPLAIN EXPLAIN is not meaningful", statement.statement.pos)
        return plan.Explain(_plan(statement.statement, bindings, catalog))
    if isinstance(statement, ast.QueryStatement):
        return plan_select_statement(statement.query, bindings, catalog.tables)
    if isinstance(statement, ast.LiveQuery):
        return plan_live_query(statement, bindings)
    if isinstance(statement, ast.Insert):
        return plan_insert(statement, bindings, catalog.tables)
    if isinstance(statement, ast.Update):
        return plan_update(statement, bindings, catalog.tables)
    if isinstance(statement, ast.Delete):
        return plan_delete(statement, bindings, catalog.tables)
    if isinstance(statement, ast.TransactionStatement):
        return _TRANSACTION_PLANS[type(statement)]()
    registered = statement_planner(type(statement))
    if registered is not None:
        return registered(statement, bindings)
    return plan_ddl(statement, bindings, catalog.tables)


__all__ = ["Catalog", "ColumnReference", "plan_statement"]
