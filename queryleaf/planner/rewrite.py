"""AST → AST normalisations run on each SELECT before it is planned.

Each pass takes a query block and returns an equivalent one in a narrower form, so the stage
emitter (select.py) has fewer cases: a two-table RIGHT JOIN becomes the mirrored LEFT JOIN;
ordinals and select-list aliases in GROUP BY / ORDER BY / HAVING become the expressions they
name; and aggregates and window functions are checked to stand where SQL allows them. Every
pass is tested as SQL in → SQL out through the printer (tests/test_rewrite.py).
"""

from __future__ import annotations

import dataclasses

from queryleaf.errors import PlanningError
from queryleaf.planner.expressions import AGGREGATES
from queryleaf.planner.windows import WINDOW_ONLY
from queryleaf.sql import ast
from queryleaf.sql.walk import replace_columns, walk_expr


def normalize(select: ast.Select) -> ast.Select:
    """All passes, in order."""
    select = mirror_right_join(select)
    select = resolve_references(select)
    check_placement(select)
    return select


def mirror_right_join(select: ast.Select) -> ast.Select:
    """``FROM a RIGHT JOIN b ON c`` → ``FROM b LEFT JOIN a ON c`` (one join only: after other
    joins a RIGHT JOIN cannot be mirrored, and the planner says so)."""
    if len(select.from_) != 1:
        return select
    join = select.from_[0]
    if not (
        isinstance(join, ast.Join) and join.kind == "RIGHT" and not isinstance(join.left, ast.Join)
    ):
        return select
    mirrored = dataclasses.replace(join, kind="LEFT", left=join.right, right=join.left)
    return dataclasses.replace(select, from_=(mirrored,))


def resolve_references(select: ast.Select) -> ast.Select:
    """Ordinals (``ORDER BY 2``) and select-list aliases in GROUP BY and ORDER BY, and aliases
    anywhere in HAVING (as MySQL allows), replaced by the select-list expressions they name."""
    group_by = tuple(_reference(select, g, "GROUP BY") or g for g in select.group_by)
    order_by = tuple(
        item
        if (target := _reference(select, item.expr, "ORDER BY")) is None
        else dataclasses.replace(item, expr=target)
        for item in select.order_by
    )
    having = select.having
    aliases = {
        i.alias: i.expr for i in select.items if i.alias and not isinstance(i.expr, ast.Star)
    }
    if having is not None and aliases:
        having = replace_columns(
            having,
            lambda col: (
                aliases.get(col.parts[0], col)
                if len(col.parts) == 1 and isinstance(col.parts[0], str)
                else col
            ),
        )
    if group_by == select.group_by and order_by == select.order_by and having is select.having:
        return select
    return dataclasses.replace(select, group_by=group_by, order_by=order_by, having=having)


def _reference(select: ast.Select, e: ast.Expr, clause: str) -> ast.Expr | None:
    items = select.items
    if isinstance(e, ast.Literal) and isinstance(e.value, int) and not isinstance(e.value, bool):
        if not 1 <= e.value <= len(items) or isinstance(items[e.value - 1].expr, ast.Star):
            raise PlanningError(
                f"{clause} position {e.value} is not in the select list (1..{len(items)})", e.pos
            )
        return items[e.value - 1].expr
    if isinstance(e, ast.Column) and len(e.parts) == 1:
        for item in items:
            if item.alias == e.parts[0] and not isinstance(item.expr, ast.Star):
                return item.expr
    return None


def check_placement(select: ast.Select) -> None:
    """Aggregates not in WHERE or GROUP BY; window functions only in the select list and
    ORDER BY; ROW_NUMBER() and the like only with OVER."""
    for clause, exprs in (
        ("GROUP BY", list(select.group_by)),
        ("WHERE", [select.where] if select.where is not None else []),
    ):
        for e in exprs:
            for node in walk_expr(e):
                if isinstance(node, ast.FuncCall) and (
                    node.name in AGGREGATES or node.over is not None
                ):
                    hint = ""
                    if clause == "WHERE" and node.over is not None:
                        hint = (
                            " (compute it in a derived table and filter outside: "
                            "SELECT ... FROM (SELECT ..., ROW_NUMBER() OVER (...) AS rn "
                            "FROM t) x WHERE x.rn = 1)"
                        )
                    elif clause == "WHERE":
                        hint = " (use HAVING)"
                    raise PlanningError(
                        f"{node.name}(...) is not allowed in {clause}{hint}", node.pos
                    )
    for root in [i.expr for i in select.items] + [o.expr for o in select.order_by]:
        for node in walk_expr(root):
            if isinstance(node, ast.FuncCall) and node.over is None and node.name in WINDOW_ONLY:
                raise PlanningError(f"{node.name}() needs an OVER (...) clause", node.pos)
    if select.having is not None:
        for node in walk_expr(select.having):
            if isinstance(node, ast.FuncCall) and node.over is not None:
                raise PlanningError("window functions are not allowed in HAVING", node.pos)
