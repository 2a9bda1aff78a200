"""Live aggregate queries: ``GROUP BY`` / aggregates / ``WINDOW`` over a change stream.

A change stream has no ``$group``, so the work is split. The server runs, per change, a plain
live query that computes the group keys, the aggregates' arguments and the event time
(``k0``..., ``a0``..., ``event_time``: ``event_timestamp``, the change's wall time, else its cluster
time). The client aggregates those rows per key and window (queryleaf/live/windows.py) and
computes what stands above the aggregation — the select list and HAVING, over the keys, the
aggregates and ``WINDOW_START`` / ``WINDOW_END`` — with queryleaf/live/evaluate.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from queryleaf import plan
from queryleaf.errors import PlanningError
from queryleaf.planner.expressions import AGGREGATES
from queryleaf.planner.params import Bindings
from queryleaf.planner.scope import display_path
from queryleaf.sql import ast
from queryleaf.sql.printer import expr_name, to_sql
from queryleaf.sql.walk import walk_expr

# The aggregates the client computes (queryleaf/live/accumulators.py).
LIVE_AGGREGATES = ("COUNT", "SUM", "AVG", "MIN", "MAX")
TIME_KEY = "event_time"
TIME_COLUMN = "event_timestamp"
WINDOW_BOUNDS = {"WINDOW_START": "window_start", "WINDOW_END": "window_end"}


def is_aggregated(select: ast.Select) -> bool:
    return bool(
        select.group_by or select.having is not None or select.window or _aggregates(select)
    )


def split(
    select: ast.Select, emit: ast.Emit, bindings: Bindings
) -> tuple[ast.Select, plan.LiveAggregation]:
    """The per-change SELECT the server runs, and what the client does with its rows."""
    from queryleaf.live import evaluate, windows  # client-side execution, compiled here

    for item in select.items:
        if isinstance(item.expr, ast.Star):
            raise PlanningError("* cannot be combined with GROUP BY or aggregates", item.pos)
    keys = {to_sql(k): f"k{i}" for i, k in enumerate(select.group_by)}
    calls = _aggregates(select)
    arguments: dict[str, str] = {}
    specs: list[windows.AggregateSpec] = []
    slots: dict[str, str] = {}
    for call in calls:
        text = to_sql(call)
        if text in slots:
            continue
        slots[text] = f"g{len(specs)}"
        specs.append(_spec(call, arguments, windows.AggregateSpec))
    if not specs:  # GROUP BY alone: its rows are the keys; the engine counts to have a state
        specs.append(windows.AggregateSpec("COUNT", None))
    arg_exprs = {name: expr for name, expr in _argument_exprs(calls, arguments)}

    def slot(e: ast.Expr) -> str | None:
        text = to_sql(e)
        if text in keys:
            return keys[text]
        if text in slots:
            return slots[text]
        if isinstance(e, ast.Column) and len(e.parts) == 1 and isinstance(e.parts[0], str):
            return WINDOW_BOUNDS.get(e.parts[0].upper())
        return None

    outputs: list[tuple[str, Callable[[dict[str, Any]], Any]]] = []
    used: set[str] = set()
    for item in select.items:
        name = plan.unique_name(item.alias or _default_name(item.expr), used)
        used.add(name)
        outputs.append((name, evaluate.compile_expression(item.expr, slot, bindings)))
    having = (
        evaluate.compile_condition(select.having, slot, bindings)
        if select.having is not None
        else None
    )
    window = _window(select.window)
    per_change = replace(
        select,
        items=(
            *(ast.SelectItem(k, f"k{i}", k.pos) for i, k in enumerate(select.group_by)),
            *(ast.SelectItem(e, name, e.pos) for name, e in arg_exprs.items()),
            ast.SelectItem(ast.Column((TIME_COLUMN,)), TIME_KEY),
        ),
        group_by=(),
        having=None,
        window=None,
    )
    aggregation = plan.LiveAggregation(
        window=window,
        aggregates=tuple(specs),
        keys=tuple(f"k{i}" for i in range(len(select.group_by))),
        final=emit.final,
        outputs=tuple(outputs),
        having=having,
        description=_description(select, calls),
    )
    return per_change, aggregation


def _aggregates(select: ast.Select) -> list[ast.FuncCall]:
    roots: list[ast.Expr] = [i.expr for i in select.items]
    if select.having is not None:
        roots.append(select.having)
    found: list[ast.FuncCall] = []
    for root in roots:
        for node in walk_expr(root):
            if isinstance(node, ast.FuncCall) and node.name in AGGREGATES and node.over is None:
                found.append(node)
    return found


def _spec(call: ast.FuncCall, arguments: dict[str, str], make: Any) -> Any:
    """The client's aggregate for ``call``; its argument gets a field of the per-change row."""
    if call.name not in LIVE_AGGREGATES:
        raise PlanningError(
            f"{call.name}() is not available in a live query; "
            f"the aggregates there are {', '.join(LIVE_AGGREGATES)}",
            call.pos,
        )
    if call.order_by or call.separator is not None or call.limit is not None:
        raise PlanningError(f"ORDER BY / SEPARATOR / LIMIT inside {call.name}()", call.pos)
    if call.distinct and call.name != "COUNT":
        raise PlanningError(
            f"DISTINCT in a live query is for COUNT only, not {call.name}", call.pos
        )
    if call.name == "COUNT" and len(call.args) == 1 and isinstance(call.args[0], ast.Star):
        return make("COUNT", None)
    if len(call.args) != 1 or isinstance(call.args[0], ast.Star):
        raise PlanningError(f"{call.name} takes one argument", call.pos)
    for node in walk_expr(call.args[0]):
        if isinstance(node, ast.FuncCall) and node.name in AGGREGATES:
            raise PlanningError("an aggregate cannot contain another one", node.pos)
    text = to_sql(call.args[0])
    name = arguments.setdefault(text, f"a{len(arguments)}")
    return make(call.name, name, call.distinct)


def _argument_exprs(
    calls: list[ast.FuncCall], arguments: dict[str, str]
) -> list[tuple[str, ast.Expr]]:
    seen: dict[str, ast.Expr] = {}
    for call in calls:
        if call.args and not isinstance(call.args[0], ast.Star):
            name = arguments[to_sql(call.args[0])]
            seen.setdefault(name, call.args[0])
    return list(seen.items())


def _window(clause: ast.StreamWindow | None) -> Any:
    from queryleaf.live.windows import LiveWindow

    if clause is None:
        return None
    grace = clause.grace.milliseconds if clause.grace is not None else 0
    try:
        if clause.kind == "SESSION":
            return LiveWindow("session", gap_ms=clause.size.milliseconds, grace_ms=grace)
        advance = clause.advance.milliseconds if clause.advance is not None else 0
        return LiveWindow(
            clause.kind.lower(),  # type: ignore[arg-type]
            size_ms=clause.size.milliseconds,
            advance_ms=advance,
            grace_ms=grace,
        )
    except ValueError as exc:
        raise PlanningError(str(exc), clause.pos) from None


def _default_name(e: ast.Expr) -> str:
    if isinstance(e, ast.Column):
        last = e.parts[-1]
        if len(e.parts) == 1 and isinstance(last, str) and last.upper() in WINDOW_BOUNDS:
            return last.upper()
        return display_path(e.parts)
    return expr_name(e)


def _description(select: ast.Select, calls: list[ast.FuncCall]) -> list[str]:
    """What EXPLAIN says the client does."""
    parts = []
    if select.window is not None:
        parts.append(f"window: {to_sql(select.window)}")
    if select.group_by:
        parts.append("group by " + ", ".join(to_sql(k) for k in select.group_by))
    unique = list(dict.fromkeys(to_sql(c) for c in calls))
    if unique:
        parts.append("aggregates " + ", ".join(unique))
    if select.having is not None:
        parts.append(f"having {to_sql(select.having)}")
    return parts
