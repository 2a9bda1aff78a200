"""Aggregate functions → ``$group`` accumulators and the expression reading their result.

Every aggregate ignores NULL (COUNT(*) counts rows). Each translation also gives the value its
accumulators hold over zero rows, used when an aggregate query without GROUP BY meets an empty
input and must still return its one row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from queryleaf.errors import PlanningError
from queryleaf.planner.expressions import ExprCompiler, is_null_expr, literal
from queryleaf.sql import ast

# Aggregates that are one MongoDB accumulator over the argument (also in window frames).
SIMPLE_ACCUMULATORS = {
    "AVG": "$avg",
    "MIN": "$min",
    "MAX": "$max",
    "STDDEV": "$stdDevPop",
    "STD": "$stdDevPop",
    "STDDEV_POP": "$stdDevPop",
    "STDDEV_SAMP": "$stdDevSamp",
}


@dataclass
class Accumulated:
    accumulators: dict[str, Any]  # field → accumulator, for the $group stage
    result: Any  # expression over the group's output document
    empty: dict[str, Any]  # field → value over zero rows


def _reads_row(v: Any) -> bool:
    """Whether an expression reads the document (a field path or a variable other than NOW)."""
    if isinstance(v, str):  # a field path, or the document itself ($$let variables are
        # bound to expressions that are themselves inspected)
        return (v.startswith("$") and not v.startswith("$$")) or v.split(".")[0] in (
            "$$ROOT",
            "$$CURRENT",
        )
    if isinstance(v, dict):
        return "$literal" not in v and any(_reads_row(x) for x in v.values())
    if isinstance(v, list):
        return any(_reads_row(x) for x in v)
    return False


def _per_row(v: Any) -> Any:
    """A constant made to depend on the row: some servers reject constant $push/$addToSet."""
    if _reads_row(v):
        return v
    return {"$cond": [{"$gt": ["$$ROOT", None]}, v, v]}


def _non_null(array: Any) -> Any:
    return {"$filter": {"input": array, "cond": {"$gt": ["$$this", None]}}}


def _sort_spec(call: ast.FuncCall, exprs: ExprCompiler) -> tuple[dict[str, Any], dict[str, int]]:
    """Per-row sort-key fields and the $sortArray spec for ... ORDER BY inside a call."""
    keys: dict[str, Any] = {}
    spec: dict[str, int] = {}
    for i, item in enumerate(call.order_by):
        keys[f"s{i}"] = exprs.compile(item.expr)
        spec[f"s{i}"] = -1 if item.descending else 1
        if item.nulls_first is not None:
            raise PlanningError(
                "NULLS FIRST/LAST is not supported inside an aggregate call", item.pos
            )
    return keys, spec


def accumulate(call: ast.FuncCall, exprs: ExprCompiler, field: str) -> Accumulated:
    name = call.name
    args = call.args
    if name == "COUNT" and len(args) == 1 and isinstance(args[0], ast.Star):
        if call.distinct:
            raise PlanningError("COUNT(DISTINCT *) is not valid SQL", call.pos)
        return Accumulated({field: {"$sum": 1}}, f"${field}", {field: 0})
    if any(isinstance(a, ast.Star) for a in args):
        raise PlanningError(f"{name}(*) is not valid; only COUNT(*) takes *", call.pos)
    expected = 2 if name == "JSON_OBJECTAGG" else 1
    if len(args) != expected:
        raise PlanningError(f"{name} takes {expected} argument(s), got {len(args)}", call.pos)
    if name not in ("GROUP_CONCAT", "JSON_ARRAYAGG") and (call.order_by or call.limit):
        raise PlanningError(f"ORDER BY / LIMIT inside {name}(...) is not supported", call.pos)
    if call.separator is not None and name != "GROUP_CONCAT":
        raise PlanningError(f"SEPARATOR is only valid in GROUP_CONCAT, not {name}", call.pos)
    if call.limit is not None and name != "JSON_ARRAYAGG":
        raise PlanningError(
            f"LIMIT inside a call is only valid in JSON_ARRAYAGG, not {name}", call.pos
        )
    x = _per_row(exprs.compile(args[0]))
    ref = f"${field}"
    if call.distinct and name not in ("COUNT", "SUM", "AVG", "MIN", "MAX", "GROUP_CONCAT"):
        raise PlanningError(f"DISTINCT is not supported in {name}", call.pos)

    if call.distinct and name != "GROUP_CONCAT":
        values = _non_null(ref)
        acc: dict[str, Any] = {field: {"$addToSet": x}}
        empty: dict[str, Any] = {field: []}
        if name == "COUNT":
            return Accumulated(acc, {"$size": values}, empty)
        op = {"SUM": "$sum", "AVG": "$avg", "MIN": "$min", "MAX": "$max"}[name]
        result: Any = {"$cond": [{"$eq": [{"$size": values}, 0]}, None, {op: values}]}
        return Accumulated(acc, result, empty)

    if name == "COUNT":
        return Accumulated({field: {"$sum": {"$cond": [is_null_expr(x), 0, 1]}}}, ref, {field: 0})
    if name == "SUM":
        # SUM over no non-NULL value is NULL, where $sum gives 0. $max ignores nulls as SQL
        # does, so it is NULL exactly then; it is cheaper than counting with a $cond per row.
        seen = field + "_n"
        acc = {field: {"$sum": x}, seen: {"$max": x}}
        result = {"$cond": [is_null_expr(f"${seen}"), None, ref]}
        return Accumulated(acc, result, {field: 0, seen: None})
    if name in SIMPLE_ACCUMULATORS:
        return Accumulated({field: {SIMPLE_ACCUMULATORS[name]: x}}, ref, {field: None})
    if name == "GROUP_CONCAT":
        if call.distinct and any(o.expr != args[0] for o in call.order_by):
            raise PlanningError(
                "GROUP_CONCAT(DISTINCT x ORDER BY ...) can only order by x itself", call.pos
            )
        sep = literal(",")
        if call.separator is not None:
            sep = exprs.constant_string(call.separator, "SEPARATOR")
        keys, spec = _sort_spec(call, exprs)
        text = {"$cond": [is_null_expr(x), "$$REMOVE", {"$toString": x}]}
        row = {"v": text, **keys}
        acc = {field: {"$addToSet" if call.distinct else "$push": row}}
        items = {"$filter": {"input": ref, "cond": {"$gt": ["$$this.v", None]}}}
        if spec:
            items = {"$sortArray": {"input": items, "sortBy": spec}}
        joined = {
            "$reduce": {
                "input": {"$map": {"input": items, "in": "$$this.v"}},
                "initialValue": None,
                "in": {
                    "$cond": [
                        {"$eq": ["$$value", None]},
                        "$$this",
                        {"$concat": ["$$value", sep, "$$this"]},
                    ]
                },
            }
        }
        return Accumulated(acc, joined, {field: []})
    if name == "JSON_ARRAYAGG":
        keys, spec = _sort_spec(call, exprs)
        acc = {field: {"$push": {"v": {"$ifNull": [x, None]}, **keys}}}
        rows: Any = ref
        if spec:
            rows = {"$sortArray": {"input": rows, "sortBy": spec}}
        if call.limit is not None:
            rows = {"$slice": [rows, call.limit]}
        values = {"$map": {"input": rows, "in": "$$this.v"}}
        result = {"$cond": [{"$eq": [{"$size": ref}, 0]}, None, values]}
        return Accumulated(acc, result, {field: []})
    if name == "JSON_OBJECTAGG":
        v = exprs.compile(args[1])
        acc = {field: {"$push": {"k": {"$toString": x}, "v": {"$ifNull": [v, None]}}}}
        pairs = {"$filter": {"input": ref, "cond": {"$gt": ["$$this.k", None]}}}
        result = {"$cond": [{"$eq": [{"$size": pairs}, 0]}, None, {"$arrayToObject": pairs}]}
        return Accumulated(acc, result, {field: []})
    raise PlanningError(f"unknown aggregate {name}", call.pos)
