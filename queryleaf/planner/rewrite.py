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
from queryleaf.planner.expressions import AGGREGATES, flatten
from queryleaf.planner.windows import WINDOW_ONLY
from queryleaf.sql import ast
from queryleaf.sql.walk import has_subquery, replace_columns, walk_expr


def normalize(select: ast.Select) -> ast.Select:
    """All passes, in order."""
    select = mirror_right_join(select)
    select = where_into_on(select)
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


def where_into_on(select: ast.Select) -> ast.Select:
    """A WHERE condition of an inner or comma join that reads only the tables joined up to that
    join moves into its ON: ``FROM a, b WHERE a.k = b.k`` becomes ``FROM a JOIN b ON a.k =
    b.k``, which joins on the key instead of filtering a cross product. Conditions on the first
    table alone stay in WHERE (they run before the joins, on its indexes)."""
    if select.where is None or not select.from_:
        return select
    try:
        steps = from_chain(select)
    except PlanningError:
        return select  # the planner says why
    kinds = [kind for kind, _, _, _ in steps]
    ons = [on for _, _, on, _ in steps]
    aliases = [table_alias(item) for _, item, _, _ in steps]
    if len(steps) < 2 or None in aliases:
        return select
    rest: list[ast.Expr] = []
    for conj in flatten(select.where, "AND"):
        tables = tables_of(conj)
        known = tables is not None and tables <= set(aliases)
        target = max((aliases.index(t) for t in tables or ()), default=0) if known else 0
        if not target or kinds[target] not in ("INNER", "CROSS"):
            rest.append(conj)
            continue
        on = ons[target]
        ons[target] = conj if on is None else ast.Binary("AND", on, conj, conj.pos)
        kinds[target] = "INNER"
    if ons == [on for _, _, on, _ in steps]:
        return select
    chain = steps[0][1]
    for (_, item, _, node), kind, on in zip(steps[1:], kinds[1:], ons[1:], strict=True):
        chain = ast.Join(kind, chain, item, on, node.pos)
    where = None
    for conj in rest:
        where = conj if where is None else ast.Binary("AND", where, conj, conj.pos)
    return dataclasses.replace(select, from_=(chain,), where=where)


FromStep = tuple[str, ast.FromItem, ast.Expr | None, ast.Node]


def from_chain(select: ast.Select) -> list[FromStep]:
    """The FROM clause as a left-deep list of (join kind, item, ON, node): the first item is
    FROM, each further comma item CROSS; a parenthesised join on the right is an error."""
    steps: list[FromStep] = []
    for i, item in enumerate(select.from_):
        joins = []  # the left-deep chain ``a JOIN b ... JOIN c ...``, outermost first
        while isinstance(item, ast.Join):
            joins.append(item)
            item = item.left
        steps.append(("FROM" if i == 0 else "CROSS", item, None, item))
        for join in reversed(joins):
            if isinstance(join.right, ast.Join):
                raise PlanningError(
                    "a parenthesised join on the right of JOIN is not supported", join.right.pos
                )
            steps.append((join.kind, join.right, join.on, join))
    return steps


def table_alias(item: ast.FromItem) -> str | None:
    """The name that qualifies a FROM item's columns."""
    if isinstance(item, ast.TableRef):
        return item.alias or item.name
    if isinstance(item, ast.TableFunction):
        return item.alias or item.name.lower()
    if isinstance(item, ast.DerivedTable):
        return item.alias
    return None


def tables_of(e: ast.Expr) -> set[str] | None:
    """The tables ``e`` reads through qualified columns; None when it has an unqualified column
    or a subquery (then its tables are known only when it is planned)."""
    found: set[str] = set()
    if has_subquery(e):
        return None
    for node in walk_expr(e):
        if isinstance(node, ast.Column):
            if len(node.parts) < 2 or not isinstance(node.parts[0], str):
                return None
            found.add(node.parts[0])
    return found
