"""The subscription statements → plans (plans.py), registered with the planner on import
(queryleaf/__init__.py imports this module), so the planner never imports the events package.

Planning validates the options (errors name the option and where it was written), compiles the
WHERE clauses with the planner's filter compiler and builds the change stream: a plan holds
everything its EXPLAIN shows, and only what the catalog holds is read when it runs.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from queryleaf import plan
from queryleaf.errors import PlanningError
from queryleaf.events import catalog, definition
from queryleaf.events import options as opts
from queryleaf.events.plans import (
    AlterSubscription,
    CreateSubscription,
    DropSubscription,
    ReplayDeadLetters,
    ResetSubscription,
    SetSubscriptionState,
    reset_start,
)
from queryleaf.introspection import register_describer
from queryleaf.planner.constants import NotConstant, constant
from queryleaf.planner.expressions import ExprCompiler
from queryleaf.planner.filters import FilterCompiler
from queryleaf.planner.params import Bindings
from queryleaf.planner.scope import Scope, Table
from queryleaf.planner.select import plan_select_statement
from queryleaf.planner.statements import register_statement
from queryleaf.sql import ast
from queryleaf.sql.parser import parse
from queryleaf.sql.walk import replace_columns


def _options(
    options: tuple[ast.SubscriptionOption, ...], bindings: Bindings
) -> tuple[dict[str, Any], dict[str, Any]]:
    values: dict[str, Any] = {}
    positions: dict[str, Any] = {}
    for opt in options:
        if opt.name in values:
            raise PlanningError(f"option {opt.name} is given twice", opt.pos)
        try:
            values[opt.name] = constant(opt.value, bindings)
        except NotConstant as exc:
            raise PlanningError(
                f"option {opt.name} must be a constant (a literal, JSON_ARRAY or JSON_OBJECT)",
                exc.node.pos or opt.pos,
            ) from None
        positions[opt.name] = opt.pos
    return values, positions


def plan_create(statement: ast.CreateSubscription, bindings: Bindings) -> CreateSubscription:
    values, positions = _options(statement.options, bindings)
    where = None
    if statement.where is not None:
        where = change_event_filter(statement.where, bindings)
    return CreateSubscription.build(
        statement.name, values, positions, where, statement.if_not_exists
    )


def plan_alter(statement: ast.AlterSubscription, bindings: Bindings) -> AlterSubscription:
    values, positions = _options(statement.options, bindings)
    given = opts.validate(statement.name, values, positions, partial=True)
    as_written = given.get("event_filter")
    if as_written is not None:
        given["event_filter"] = definition.normalized_filter(as_written, positions)
    return AlterSubscription(statement.name, given, as_written, positions)


def plan_reset(statement: ast.ResetSubscription, bindings: Bindings) -> ResetSubscription:
    if statement.timestamp is None:
        return ResetSubscription(statement.name)
    pos = statement.timestamp_pos or statement.pos
    return ResetSubscription(
        statement.name, reset_start(statement.timestamp, pos), statement.timestamp, pos
    )


# SHOW EVENT_SUBSCRIPTIONS: one short line per subscription (two fit in 12 lines at 120
# columns); FULL is every column. Short names for the long ones, said in docs/events.md.
SUMMARY = """
SELECT name, status, service_name AS service, options.watch_collections AS collections,
       events_received AS received, events_processed AS processed, events_failed AS failed,
       events_dead_lettered AS dead_lettered, resume_token_lag_seconds AS lag_s,
       worker_id AS owner
FROM EVENT_SUBSCRIPTIONS()
ORDER BY name
"""


def plan_show(statement: ast.ShowSubscriptions, bindings: Bindings) -> plan.Plan:
    if statement.full:
        query: ast.Query = ast.Select(
            (ast.SelectItem(ast.Star()),), (ast.TableFunction("EVENT_SUBSCRIPTIONS"),)
        )
    else:
        summary = parse(SUMMARY)
        assert isinstance(summary, ast.QueryStatement)
        query = summary.query
    return plan_select_statement(query, bindings)


def plan_replay(statement: ast.ReplayDeadLetters, bindings: Bindings) -> ReplayDeadLetters:
    filter_: dict[str, Any] = {}
    if statement.where is not None:
        scope = Scope.single("dead_letter_events")
        filter_ = FilterCompiler(ExprCompiler(scope, bindings)).match(statement.where)
    return ReplayDeadLetters(filter_)


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
    changed = {
        "$map": {
            "input": {
                "$concatArrays": [
                    {
                        "$map": {
                            "input": {
                                "$objectToArray": {
                                    "$ifNull": ["$updateDescription.updatedFields", {}]
                                }
                            },
                            "in": "$$this.k",
                        }
                    },
                    {"$ifNull": ["$updateDescription.removedFields", []]},
                ]
            },
            "in": {"$arrayElemAt": [{"$split": ["$$this", "."]}, 0]},
        }
    }
    compiler = ExprCompiler(scope, bindings)
    changed_key = ("column", scope.resolve(ast.Column(("changed_fields",))))
    compiler.substitutions[changed_key] = changed
    rewritten = _snake_paths(where)
    return FilterCompiler(compiler).match(rewritten)


_SNAKE = {
    "updated_fields": "updatedFields",
    "removed_fields": "removedFields",
    "truncated_arrays": "truncatedArrays",
}


def _snake_paths(e: ast.Expr) -> ast.Expr:
    """update_description.updated_fields.x → updateDescription.updatedFields.x (by column)."""

    def camel(col: ast.Column) -> ast.Column:
        parts = tuple(
            _SNAKE.get(p, p) if isinstance(p, str) and i == 1 else p
            for i, p in enumerate(col.parts)
        )
        return dataclasses.replace(col, parts=parts)

    return replace_columns(e, camel)


register_statement(ast.CreateSubscription, plan_create)
register_statement(ast.AlterSubscription, plan_alter)
register_statement(ast.DropSubscription, lambda s, bindings: DropSubscription(s.name, s.if_exists))
register_statement(
    ast.PauseSubscription, lambda s, bindings: SetSubscriptionState(s.name, "paused")
)
register_statement(
    ast.ResumeSubscription, lambda s, bindings: SetSubscriptionState(s.name, "active")
)
register_statement(ast.ResetSubscription, plan_reset)
register_statement(ast.ShowSubscriptions, plan_show)
register_statement(ast.ReplayDeadLetters, plan_replay)
register_describer(catalog.watching)
