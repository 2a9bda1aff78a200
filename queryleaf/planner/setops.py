"""UNION [ALL], INTERSECT, EXCEPT → $unionWith, then $group for the set semantics."""

from __future__ import annotations

from typing import Any

from queryleaf import plan
from queryleaf.errors import PlanningError
from queryleaf.planner.context import Context
from queryleaf.planner.lowering import as_aggregate
from queryleaf.planner.scope import Scope, merge_lets
from queryleaf.planner.select import count_value, plan_with_lets
from queryleaf.sql import ast


def _side(
    query: ast.Query, ctx: Context, outer: Scope | None, lets: dict[str, Any]
) -> plan.Aggregate:
    sub, sub_lets = plan_with_lets(query, ctx, outer)
    merge_lets(lets, sub_lets)
    agg = as_aggregate(sub)
    if agg.columns is None:
        raise PlanningError("each side of a set operation must list its columns (not *)", query.pos)
    return agg


def _union_with(side: plan.Aggregate, extra: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if side.collection is not None:
        spec["coll"] = side.collection
    spec["pipeline"] = [*side.pipeline, *extra]
    return {"$unionWith": spec}


def plan_set_operation(
    q: ast.SetOperation, ctx: Context, outer: Scope | None
) -> tuple[plan.Aggregate, dict[str, Any]]:
    """A left-deep chain (``q1 UNION ALL q2 UNION ALL ...``, as the parser builds it) is one
    pipeline over the first operand, each further operand adding its stages in turn: a chain of
    any length is planned in one loop, not one nested call per operator."""
    lets: dict[str, Any] = {}
    chain = [q]
    while isinstance(chain[-1].left, ast.SetOperation) and not _own_clauses(chain[-1].left):
        chain.append(chain[-1].left)
    first = _side(chain[-1].left, ctx, outer, lets)
    assert first.columns is not None
    keys = [c.key for c in first.columns]
    pipeline = list(first.pipeline)
    for node in reversed(chain):
        right = _side(node.right, ctx, outer, lets)
        assert right.columns is not None
        if len(keys) != len(right.columns):
            raise PlanningError(
                f"{node.op}: the left side has {len(keys)} column(s), the "
                f"right side {len(right.columns)}",
                node.pos,
            )
        pipeline += _combine(node.op, keys, right)
    pipeline += _order_and_limit(q, first.columns, ctx)
    return plan.Aggregate(first.collection, pipeline, first.columns), lets


def _own_clauses(q: ast.Query) -> bool:
    return bool(q.ctes or q.order_by) or q.limit is not None or q.offset is not None


def _combine(op: str, keys: list[str], right: plan.Aggregate) -> list[dict[str, Any]]:
    """The stages that combine the rows so far (columns ``keys``) with ``right``'s."""
    assert right.columns is not None
    # The right side's columns take the left side's names, by position.
    rename = {
        "$project": {"_id": 0, **{k: f"${c.key}" for k, c in zip(keys, right.columns, strict=True)}}
    }
    group_id = {k: f"${k}" for k in keys}
    if op in ("UNION ALL", "UNION"):
        stages = [_union_with(right, [rename])]
        if op == "UNION":
            stages += [{"$group": {"_id": group_id}}, {"$replaceRoot": {"newRoot": "$_id"}}]
        return stages
    tag_right = {"$project": {**rename["$project"], "__side": {"$literal": 1}}}
    keep = {"$eq": [{"$size": "$sides"}, 2]} if op == "INTERSECT" else {"$eq": ["$sides", [0]]}
    return [
        {"$set": {"__side": 0}},
        _union_with(right, [tag_right]),
        {"$group": {"_id": group_id, "sides": {"$addToSet": "$__side"}}},
        {"$match": {"$expr": keep}},
        {"$replaceRoot": {"newRoot": "$_id"}},
    ]


def _order_and_limit(
    q: ast.SetOperation, columns: tuple[plan.OutputColumn, ...], ctx: Context
) -> list[dict[str, Any]]:
    stages: list[dict[str, Any]] = []
    if q.order_by:
        sort: dict[str, int] = {}
        by_name = {c.name: c.key for c in columns}
        for item in q.order_by:
            e = item.expr
            if isinstance(e, ast.Literal) and isinstance(e.value, int):
                if not 1 <= e.value <= len(columns):
                    raise PlanningError(
                        f"ORDER BY position {e.value} is not in the select list "
                        f"(1..{len(columns)})",
                        e.pos,
                    )
                key = columns[e.value - 1].key
            elif isinstance(e, ast.Column) and len(e.parts) == 1 and e.parts[0] in by_name:
                key = by_name[e.parts[0]]
            else:
                raise PlanningError(
                    "ORDER BY of a set operation must name an output column or its position", e.pos
                )
            if item.nulls_first is not None and item.nulls_first == item.descending:
                raise PlanningError(
                    "NULLS FIRST/LAST other than the default is not supported "
                    "after a set operation",
                    item.pos,
                )
            sort[key] = -1 if item.descending else 1
        stages.append({"$sort": sort})
    if q.offset is not None:
        stages.append({"$skip": count_value(q.offset, "OFFSET", ctx.bindings)})
    if q.limit is not None:
        n = count_value(q.limit, "LIMIT", ctx.bindings)
        stages.append({"$limit": n} if n else {"$match": {"$expr": False}})
    return stages
