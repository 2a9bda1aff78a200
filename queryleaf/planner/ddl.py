"""Views and event-subscription statements → plans."""

from __future__ import annotations

from typing import Any

from queryleaf import plan
from queryleaf.errors import PlanningError
from queryleaf.planner.constants import NotConstant, constant
from queryleaf.planner.params import Bindings
from queryleaf.planner.select import plan_select_statement as plan_query
from queryleaf.sql import ast


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


def plan_ddl(statement: ast.Statement, bindings: Bindings) -> plan.Plan:
    if isinstance(statement, ast.CreateView):
        source = plan_query(statement.query, bindings)
        if isinstance(source, plan.Find):
            pipeline: list[dict[str, Any]] = []
            if source.filter:
                pipeline.append({"$match": source.filter})
            if source.sort:
                pipeline.append({"$sort": dict(source.sort)})
            if source.skip:
                pipeline.append({"$skip": source.skip})
            if source.limit:
                pipeline.append({"$limit": source.limit})
            if source.projection is not None:
                pipeline.append({"$project": source.projection})
            collection = source.collection
        else:
            pipeline, collection = source.pipeline, source.collection
        return plan.CreateView(statement.name, collection, pipeline, statement.or_replace)
    if isinstance(statement, ast.DropView):
        return plan.DropView(statement.name, statement.if_exists)
    if isinstance(statement, ast.CreateSubscription):
        if statement.where is not None:
            raise PlanningError("WHERE on CREATE EVENT_SUBSCRIPTION is not supported yet; "
                                "use the event_filter option", statement.where.pos)
        values, positions = _options(statement.options, bindings)
        return plan.CreateSubscription(statement.name, values, None, statement.if_not_exists,
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
        return plan.ResetSubscription(statement.name, statement.timestamp)
    if isinstance(statement, ast.ShowSubscriptions):
        return plan_query(ast.Select((ast.SelectItem(ast.Star()),),
                                     (ast.TableFunction("EVENT_SUBSCRIPTIONS"),)), bindings)
    if isinstance(statement, ast.ReplayDeadLetters):
        raise PlanningError("REPLAY DEAD_LETTER_EVENTS is not supported yet", statement.pos)
    raise PlanningError(f"{type(statement).__name__} statements are not supported", statement.pos)
