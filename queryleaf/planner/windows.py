"""Window functions (``f(...) OVER (PARTITION BY ... ORDER BY ... frame)``) → $setWindowFields."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from queryleaf.errors import PlanningError
from queryleaf.planner.aggregates import SIMPLE_ACCUMULATORS, accumulate
from queryleaf.planner.expressions import ExprCompiler, is_field_path
from queryleaf.sql import ast

WINDOW_ONLY = frozenset(
    {"ROW_NUMBER", "RANK", "DENSE_RANK", "LAG", "LEAD", "FIRST_VALUE", "LAST_VALUE"}
)
_RANKING = {"ROW_NUMBER": "$documentNumber", "RANK": "$rank", "DENSE_RANK": "$denseRank"}
_EDGE = {"FIRST_VALUE": "$first", "LAST_VALUE": "$last"}
_AGG = {*SIMPLE_ACCUMULATORS, "SUM", "COUNT", *_EDGE}  # usable with OVER


def _bound(b: ast.FrameBound) -> Any:
    if b.kind == "unbounded_preceding" or b.kind == "unbounded_following":
        return "unbounded"
    if b.kind == "current_row":
        return "current"
    n = b.offset or 0
    return -n if b.kind == "preceding" else n


def _ranged(call: ast.FuncCall, spec: ast.WindowSpec) -> bool:
    """Whether the call's frame is a RANGE over the ORDER BY key (the SQL default with ORDER BY)."""
    if call.name not in _AGG or not spec.order_by:
        return False
    return spec.frame_unit in (None, "RANGE")


def _window(call: ast.FuncCall, spec: ast.WindowSpec) -> dict[str, Any] | None:
    """The MongoDB window of an aggregate over the SQL frame (None: the whole partition)."""
    if spec.frame_unit is None:
        if not spec.order_by:
            return None
        if len(spec.order_by) > 1:
            raise PlanningError(
                "the default frame with several ORDER BY keys (RANGE ... CURRENT ROW with "
                "peers) cannot be expressed; add ROWS BETWEEN ... explicitly",
                spec.pos,
            )
        return {"range": ["unbounded", "current"]}
    start = _bound(spec.frame_start)  # type: ignore[arg-type]
    end = _bound(spec.frame_end) if spec.frame_end else "current"
    return {"documents" if spec.frame_unit == "ROWS" else "range": [start, end]}


def plan_windows(
    calls: list[ast.FuncCall],
    exprs: ExprCompiler,
    fresh: Callable[[str], str],
) -> tuple[list[dict[str, Any]], dict[Any, Any], list[str]]:
    """The stages computing ``calls``, the substitutions reading them, the temporary fields."""
    stages: list[dict[str, Any]] = []
    substitutions: dict[Any, Any] = {}
    groups: dict[tuple, tuple[dict[str, Any], dict[str, Any]]] = {}
    pre: dict[str, Any] = {}
    for call in calls:
        spec = call.over
        assert spec is not None
        if call.distinct or call.order_by or call.separator is not None:
            raise PlanningError(
                f"DISTINCT / ORDER BY inside {call.name}(...) OVER is not supported", call.pos
            )
        ranged = _ranged(call, spec)
        key = (spec.partition_by, spec.order_by, ranged)
        if key not in groups:
            setup: dict[str, Any] = {}
            if spec.partition_by:
                parts = [exprs.compile(p) for p in spec.partition_by]
                # In a document of keys a missing key stays missing, a partition apart from
                # NULL's: SQL has one NULL. (One key alone is compared as a value: no split.)
                setup["partitionBy"] = (
                    parts[0]
                    if len(parts) == 1
                    else {f"p{i}": {"$ifNull": [p, None]} for i, p in enumerate(parts)}
                )
            if spec.order_by:
                sort: dict[str, int] = {}
                for item in spec.order_by:
                    if item.nulls_first is not None and item.nulls_first == item.descending:
                        raise PlanningError(
                            "NULLS FIRST/LAST other than the default is not "
                            "supported in OVER (...)",
                            item.pos,
                        )
                    v = exprs.compile(item.expr)
                    direction = -1 if item.descending else 1
                    if ranged:
                        # MongoDB's range windows need one ascending numeric key: dates become
                        # milliseconds, DESC a negated key (a string key fails at run time).
                        # NULL sorts first ascending and last descending, and NULLs are peers:
                        # an infinite key keeps them together at that end, inside no offset
                        # range of a number, and every offset range of a NULL row is its peers.
                        null_key = float("-inf") if direction == 1 else float("inf")
                        v = {"$ifNull": [{"$multiply": [direction, {"$toDouble": v}]}, null_key]}
                        direction = 1
                    if is_field_path(v):
                        path = v[1:]
                    else:
                        path = fresh("__ws")
                        pre[path] = v
                    sort.setdefault(path, direction)  # a repeated key changes nothing
                setup["sortBy"] = sort
            outputs: dict[str, Any] = {}
            groups[key] = (setup, outputs)
        setup, outputs = groups[key]
        field = fresh("__w")
        substitutions[exprs.key(call)] = _output(call, spec, exprs, field, outputs, setup)
    if pre:
        stages.append({"$set": pre})
    for setup, outputs in groups.values():
        stages.append({"$setWindowFields": {**setup, "output": outputs}})
    hidden = list(pre)
    for _, outputs in groups.values():
        hidden += list(outputs)
    return stages, substitutions, hidden


def _output(
    call: ast.FuncCall,
    spec: ast.WindowSpec,
    exprs: ExprCompiler,
    field: str,
    outputs: dict[str, Any],
    setup: dict[str, Any],
) -> Any:
    name = call.name
    if name in _RANKING:
        if call.args:
            raise PlanningError(f"{name}() takes no arguments", call.pos)
        if "sortBy" not in setup:
            raise PlanningError(f"{name}() needs ORDER BY in its OVER (...)", call.pos)
        outputs[field] = {_RANKING[name]: {}}
        return f"${field}"
    if name in ("LAG", "LEAD"):
        if not 1 <= len(call.args) <= 3:
            raise PlanningError(f"{name} takes 1 to 3 arguments", call.pos)
        if "sortBy" not in setup:
            raise PlanningError(f"{name}() needs ORDER BY in its OVER (...)", call.pos)
        offset = 1
        if len(call.args) > 1:
            arg = call.args[1]
            if not isinstance(arg, ast.Literal) or not isinstance(arg.value, int):
                raise PlanningError(f"{name}'s offset must be an integer constant", arg.pos)
            offset = arg.value
        shift: dict[str, Any] = {
            "output": {"$ifNull": [exprs.compile(call.args[0]), None]},
            "by": -offset if name == "LAG" else offset,
        }
        if len(call.args) > 2:
            shift["default"] = exprs.compile(call.args[2])
        outputs[field] = {"$shift": shift}
        return f"${field}"
    if name not in _AGG:
        raise PlanningError(f"{name}(...) cannot be used as a window function", call.pos)
    window = _window(call, spec)
    if name in _EDGE:  # FIRST_VALUE / LAST_VALUE: window accumulators only
        if len(call.args) != 1 or isinstance(call.args[0], ast.Star):
            raise PlanningError(f"{name} takes one argument", call.pos)
        outputs[field] = _framed({_EDGE[name]: exprs.compile(call.args[0])}, window)
        return f"${field}"
    # The aggregates are the GROUP BY ones (aggregates.py), their accumulators over a frame.
    accumulated = accumulate(call, exprs, field)
    for name_, accumulator in accumulated.accumulators.items():
        outputs[name_] = _framed(accumulator, window)
    return accumulated.result


def _framed(accumulator: dict[str, Any], window: dict[str, Any] | None) -> dict[str, Any]:
    return accumulator if window is None else {**accumulator, "window": window}
