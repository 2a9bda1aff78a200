"""UNION [ALL], INTERSECT, EXCEPT → $unionWith, then $group for the set semantics."""

from __future__ import annotations

from typing import Any

from queryleaf import plan
from queryleaf.errors import PlanningError
from queryleaf.planner.scope import Scope
from queryleaf.planner.select import Context, as_aggregate, count_value, plan_with_lets
from queryleaf.sql import ast


def _side(query: ast.Query, ctx: Context, outer: Scope | None, lets: dict[str, Any]
          ) -> plan.Aggregate:
    sub, sub_lets = plan_with_lets(query, ctx, outer, allow_find=False)
    lets.update(sub_lets)
    agg = as_aggregate(sub)
    if agg.columns is None:
        raise PlanningError("each side of a set operation must list its columns (not *)",
                            query.pos)
    return agg


def _union_with(side: plan.Aggregate, extra: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if side.collection is not None:
        spec["coll"] = side.collection
    spec["pipeline"] = [*side.pipeline, *extra]
    return {"$unionWith": spec}


def plan_set_operation(q: ast.SetOperation, ctx: Context, outer: Scope | None
                       ) -> tuple[plan.Aggregate, dict[str, Any]]:
    lets: dict[str, Any] = {}
    left = _side(q.left, ctx, outer, lets)
    right = _side(q.right, ctx, outer, lets)
    assert left.columns is not None and right.columns is not None
    if len(left.columns) != len(right.columns):
        raise PlanningError(f"{q.op}: the left side has {len(left.columns)} column(s), the right "
                            f"side {len(right.columns)}", q.pos)
    keys = [c.key for c in left.columns]
    # The right side's columns take the left side's names, by position.
    rename = {"$project": {"_id": 0, **{k: f"${c.key}" for k, c in zip(keys, right.columns,
                                                                      strict=True)}}}
    pipeline = list(left.pipeline)
    group_id = {k: f"${k}" for k in keys}
    if q.op in ("UNION ALL", "UNION"):
        pipeline.append(_union_with(right, [rename]))
        if q.op == "UNION":
            pipeline += [{"$group": {"_id": group_id}}, {"$replaceRoot": {"newRoot": "$_id"}}]
    else:
        pipeline.append({"$set": {"__side": 0}})
        tag_right = {"$project": {**rename["$project"], "__side": {"$literal": 1}}}
        pipeline.append(_union_with(right, [tag_right]))
        pipeline.append({"$group": {"_id": group_id, "sides": {"$addToSet": "$__side"}}})
        keep = ({"$eq": [{"$size": "$sides"}, 2]} if q.op == "INTERSECT"
                else {"$eq": ["$sides", [0]]})
        pipeline += [{"$match": {"$expr": keep}}, {"$replaceRoot": {"newRoot": "$_id"}}]
    pipeline += _order_and_limit(q, left.columns, ctx)
    return plan.Aggregate(left.collection, pipeline, left.columns), lets


def _order_and_limit(q: ast.SetOperation, columns: tuple[plan.OutputColumn, ...],
                     ctx: Context) -> list[dict[str, Any]]:
    stages: list[dict[str, Any]] = []
    if q.order_by:
        sort: dict[str, int] = {}
        by_name = {c.name: c.key for c in columns}
        for item in q.order_by:
            e = item.expr
            if isinstance(e, ast.Literal) and isinstance(e.value, int):
                if not 1 <= e.value <= len(columns):
                    raise PlanningError(f"ORDER BY position {e.value} is not in the select list "
                                        f"(1..{len(columns)})", e.pos)
                key = columns[e.value - 1].key
            elif isinstance(e, ast.Column) and len(e.parts) == 1 and e.parts[0] in by_name:
                key = by_name[e.parts[0]]
            else:
                raise PlanningError("ORDER BY of a set operation must name an output column or "
                                    "its position", e.pos)
            if item.nulls_first is not None and item.nulls_first == item.descending:
                raise PlanningError("NULLS FIRST/LAST other than the default is not supported "
                                    "after a set operation", item.pos)
            sort[key] = -1 if item.descending else 1
        stages.append({"$sort": sort})
    if q.offset is not None:
        stages.append({"$skip": count_value(q.offset, "OFFSET", ctx.bindings)})
    if q.limit is not None:
        n = count_value(q.limit, "LIMIT", ctx.bindings)
        stages.append({"$limit": n} if n else {"$match": {"$expr": False}})
    return stages
