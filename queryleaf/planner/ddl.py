"""Views and tables → plans (and the error for a statement nothing plans)."""

from __future__ import annotations

from queryleaf import plan
from queryleaf.errors import PlanningError
from queryleaf.planner.create_table import plan_create_table, plan_drop_table
from queryleaf.planner.lowering import as_aggregate
from queryleaf.planner.params import Bindings
from queryleaf.planner.select import plan_select_statement as plan_query
from queryleaf.sql import ast


def plan_ddl(
    statement: ast.Statement, bindings: Bindings, tables: frozenset[str] | None = None
) -> plan.Plan:
    if isinstance(statement, ast.CreateView):
        source = as_aggregate(plan_query(statement.query, bindings, tables))
        pipeline, collection = list(source.pipeline), source.collection
        if source.columns and any(c.key != c.name for c in source.columns):
            # A view's documents carry the column names (a dotted name nests, and reads back
            # under the same path).
            pipeline.append(
                {"$project": {"_id": 0, **{c.name: f"${c.key}" for c in source.columns}}}
            )
        return plan.CreateView(statement.name, collection, pipeline, statement.or_replace)
    if isinstance(statement, ast.DropView):
        return plan.DropView(statement.name, statement.if_exists)
    if isinstance(statement, ast.CreateTable):
        return plan_create_table(statement)
    if isinstance(statement, ast.DropTable):
        return plan_drop_table(statement)
    raise PlanningError(f"{type(statement).__name__} statements are not supported", statement.pos)
