"""Views and event-subscription statements → plans."""

from __future__ import annotations

import dataclasses
from typing import Any

from queryleaf import plan
from queryleaf.errors import PlanningError
from queryleaf.planner.constants import NotConstant, constant
from queryleaf.planner.expressions import ExprCompiler
from queryleaf.planner.filters import FilterCompiler
from queryleaf.planner.params import Bindings
from queryleaf.planner.scope import Scope, Table
from queryleaf.planner.select import as_aggregate
from queryleaf.planner.select import plan_select_statement as plan_query
from queryleaf.sql import ast
from queryleaf.sql.walk import replace_columns


def _options(options: tuple[ast.SubscriptionOption, ...],
             bindings: Bindings) -> tuple[dict[str, Any], dict[str, Any]]:
    values: dict[str, Any] = {}
    positions: dict[str, Any] = {}
    for opt in options:
        if opt.name in values:
            raise PlanningError(f"option {opt.name} is given twice", opt.pos)
        try:
            values[opt.name] = constant(opt.value, bindings)
        except NotConstant as exc:
            raise PlanningError(f"option {opt.name} must be a constant (a literal, JSON_ARRAY "
                                "or JSON_OBJECT)", exc.node.pos or opt.pos) from None
        positions[opt.name] = opt.pos
    return values, positions


def plan_ddl(statement: ast.Statement, bindings: Bindings,
             tables: frozenset[str] | None = None) -> plan.Plan:
    if isinstance(statement, ast.CreateView):
        source = as_aggregate(plan_query(statement.query, bindings, tables))
        pipeline, collection = list(source.pipeline), source.collection
        if source.columns and any(c.key != c.name for c in source.columns):
            # A view's documents carry the column names (a dotted name nests, and reads back
            # under the same path).
            pipeline.append({"$project": {"_id": 0, **{c.name: f"${c.key}"
                                                       for c in source.columns}}})
        return plan.CreateView(statement.name, collection, pipeline, statement.or_replace)
    if isinstance(statement, ast.DropView):
        return plan.DropView(statement.name, statement.if_exists)
    if isinstance(statement, ast.CreateSubscription):
        values, positions = _options(statement.options, bindings)
        where = None
        if statement.where is not None:
            where = change_event_filter(statement.where, bindings)
        return plan.CreateSubscription(statement.name, values, where, statement.if_not_exists,
                                       positions)
    if isinstance(statement, ast.AlterSubscription):
        values, positions = _options(statement.options, bindings)
        return plan.AlterSubscription(statement.name, values, positions)
    if isinstance(statement, ast.DropSubscription):
        return plan.DropSubscription(statement.name, statement.if_exists)
    if isinstance(statement, ast.PauseSubscription):
        return plan.SetSubscriptionState(statement.name, "paused")
    if isinstance(statement, ast.ResumeSubscription):
        return plan.SetSubscriptionState(statement.name, "active")
    if isinstance(statement, ast.ResetSubscription):
        return plan.ResetSubscription(statement.name, statement.timestamp,
                                      statement.timestamp_pos or statement.pos)
    if isinstance(statement, ast.ShowSubscriptions):
        return plan_query(ast.Select((ast.SelectItem(ast.Star()),),
                                     (ast.TableFunction("EVENT_SUBSCRIPTIONS"),)), bindings)
    if isinstance(statement, ast.ReplayDeadLetters):
        filter_: dict[str, Any] = {}
        if statement.where is not None:
            scope = Scope.single("dead_letter_events")
            filter_ = FilterCompiler(ExprCompiler(scope, bindings)).match(statement.where)
        return plan.ReplayDeadLetters(filter_)
    raise PlanningError(f"{type(statement).__name__} statements are not supported", statement.pos)


# The columns a subscription's WHERE can test, and the change-event field each one reads.
CHANGE_EVENT_COLUMNS = {
    "operation_type": "operationType",
    "event_type": "operationType",
    "collection_name": "ns.coll",
    "database_name": "ns.db",
    "document_key": "documentKey",
    "full_document": "fullDocument",
    "full_document_before_change": "fullDocumentBeforeChange",
    "update_description": "updateDescription",
    "changed_fields": "changed_fields",
}


def change_event_filter(where: ast.Expr, bindings: Bindings) -> dict[str, Any]:
    """A subscription's SQL WHERE as a $match over change events.

    Nested fields are reached through their column (``full_document.status``,
    ``update_description.updated_fields.email`` — snake_case names of the event's own fields
    are accepted for its sub-documents). ``changed_fields`` is the array of top-level field
    names an update set or removed.
    """
    scope = Scope([Table("", (), CHANGE_EVENT_COLUMNS, label="a change event")])
    changed = {"$map": {"input": {"$concatArrays": [
        {"$map": {"input": {"$objectToArray": {"$ifNull": ["$updateDescription.updatedFields",
                                                           {}]}},
                  "in": "$$this.k"}},
        {"$ifNull": ["$updateDescription.removedFields", []]}]},
        "in": {"$arrayElemAt": [{"$split": ["$$this", "."]}, 0]}}}
    compiler = ExprCompiler(scope, bindings)
    changed_key = ("column", scope.resolve(ast.Column(("changed_fields",))))
    compiler.substitutions[changed_key] = changed
    rewritten = _snake_paths(where)
    return FilterCompiler(compiler).match(rewritten)


_SNAKE = {"updated_fields": "updatedFields", "removed_fields": "removedFields",
          "truncated_arrays": "truncatedArrays"}


def _snake_paths(e: ast.Expr) -> ast.Expr:
    """update_description.updated_fields.x → updateDescription.updatedFields.x (by column)."""

    def camel(col: ast.Column) -> ast.Column:
        parts = tuple(_SNAKE.get(p, p) if isinstance(p, str) and i == 1 else p
                      for i, p in enumerate(col.parts))
        return dataclasses.replace(col, parts=parts)

    return replace_columns(e, camel)
