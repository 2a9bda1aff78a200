"""Joins of two or three generated tables (``@A@``, ``@B@``, ``@C@``; the same table twice is a
self-join).

Kinds: ``[INNER] JOIN``, ``LEFT [OUTER] JOIN``, ``CROSS JOIN`` (mixed freely, left to right),
``RIGHT [OUTER] JOIN`` when it is the only join (queryleaf mirrors it to a LEFT JOIN and rejects
it after other joins), and comma joins whose conditions are in WHERE. ``ON`` is an equality of
key columns (``i``, ``j``, ``_id``, or text / float columns), sometimes with a second equality, an
extra condition on either side (``AND``), an alternative (``OR``), or a condition of any shape
(a theta join). The tables' key values overlap, so there are NULL keys, missing keys, duplicate
keys and unmatched rows on both sides.

Columns are always qualified (the tables share their column names). The body is a projection
(``_id`` of the tables and expressions over all of them) or a grouped query, with WHERE (also on
the NULL-extended side of an outer join), ORDER BY and LIMIT (``selectgen``).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from . import gaps
from .relations import Ctx, Join, RCol, Rel, RelScope, Select
from .selectgen import grouped, projection
from .sqlgen import Compare, Gen, Logic, Node

JOIN_KINDS = [
    "JOIN",
    "INNER JOIN",
    "LEFT JOIN",
    "LEFT OUTER JOIN",
    "JOIN",
    "LEFT JOIN",
    "CROSS JOIN",
]
RIGHT_KINDS = ["RIGHT JOIN", "RIGHT OUTER JOIN"]


def _family(typ: str) -> str:
    return "num" if typ in ("int", "float") else typ


def equality(
    draw: Any, left: list[Rel], right: Rel, scope: RelScope | None = None, expression: bool = False
) -> Node | None:
    """``l.x = r.y`` for a column of a relation in ``left`` and one of ``right``, of comparable
    types (integer keys most often); None when there are no such columns. With ``scope`` (which
    holds ``left`` and ``right``) a name may be written bare; with ``expression`` the left side
    is an expression over ``left`` (``l.x + 1 = r.y``)."""
    pairs = []
    for lrel in left:
        for lc, lt in lrel.columns.items():
            for rc, rt in right.columns.items():
                if lt != "bool" and _family(lt) == _family(rt):
                    weight = 3 if lt == rt == "int" else 1
                    pairs += [(lrel, lc, lt, rc, rt)] * weight
    if not pairs:
        return None
    lrel, lc, lt, rc, rt = draw(st.sampled_from(pairs))
    a: Node = scope.ref(draw, lrel, lc) if scope else RCol(lt, lc, lrel.alias + ".", lrel.alias)
    b: Node = scope.ref(draw, right, rc) if scope else RCol(rt, rc, right.alias + ".", right.alias)
    if expression:
        # the left relations are read through $lookup variables
        bare = scope.bare if scope else False
        among = scope.bare_among if scope else left
        a = Gen(
            draw, RelScope(left, bare=bare, bare_among=among, let_bound=[r.alias for r in left])
        ).value(lt, 1)
    return Compare("bool", "=", *((a, b) if draw(st.booleans()) else (b, a)))


def join_condition(draw: Any, scope: RelScope, left: list[Rel], right: Rel) -> Node:
    """An ON condition over ``left`` and ``right`` (``scope`` holds exactly those)."""
    g = Gen(draw, scope)
    kind = draw(
        st.sampled_from(
            ["eq", "eq", "eq", "eq_and", "eq_and", "two_eq", "eq_or", "expr_eq", "theta"]
        )
    )
    eq = equality(draw, left, right, scope, expression=kind == "expr_eq")
    if eq is None or kind == "theta":
        return g.predicate(draw(st.integers(0, 2)))
    if kind in ("eq", "expr_eq"):
        return eq
    if kind == "two_eq":
        return conjoin(eq, equality(draw, left, right))
    other = g.predicate(draw(st.integers(0, 1)))
    op = "AND" if kind == "eq_and" else "OR"
    return Logic("bool", op, *((eq, other) if draw(st.booleans()) else (other, eq)))


def from_clause(
    draw: Any, ctx: Ctx, n: int, prefix: str = "t", rels: list[Rel] | None = None
) -> tuple[list[Rel], list[Join], Node | None]:
    """``n`` relations joined; returns (relations, joins, conditions for WHERE) — the last for
    comma and cross joins, whose conditions are in WHERE. An ON condition reads the relations
    joined so far, by qualified name or by a bare name no relation of the FROM shares."""
    rels = rels or [ctx.rel(draw, prefix, tables_only=True) for _ in range(n)]
    joins: list[Join] = []
    where: Node | None = None
    if draw(st.integers(0, 3)) == 3:  # comma join, conditions in WHERE
        for k in range(1, len(rels)):
            joins.append(Join(",", rels[k]))
            if draw(st.integers(0, 4)):
                where = conjoin(where, equality(draw, rels[:k], rels[k]))
        return rels, joins, where
    kinds = JOIN_KINDS + (RIGHT_KINDS if len(rels) == 2 else [])
    for k in range(1, len(rels)):
        kind = draw(st.sampled_from(kinds))
        if kind == "CROSS JOIN":
            joins.append(Join(kind, rels[k]))
            if draw(st.booleans()):
                where = conjoin(where, equality(draw, rels[:k], rels[k]))
            continue
        # the ON condition may read the tables joined so far, not the later ones
        scope = RelScope(
            rels[: k + 1],
            let_bound=[r.alias for r in rels[:k]],
            bare_among=rels,
            bare=not gaps.AVOID_BARE_NAMES_IN_ON,
        )
        joins.append(Join(kind, rels[k], join_condition(draw, scope, rels[:k], rels[k])))
    return rels, joins, where


def join_scope(rels: list[Rel], bare: bool = False) -> RelScope:
    """The scope of a WHERE over joined relations (a condition may move into a join)."""
    return RelScope(rels, bare=bare, let_bound=[r.alias for r in rels[:-1]])


def conjoin(a: Node | None, b: Node | None) -> Node | None:
    if a is None or b is None:
        return a or b
    return Logic("bool", "AND", a, b)


@st.composite
def join_queries(draw: Any) -> Select:
    ctx = Ctx()
    n = draw(st.sampled_from([2, 2, 3]))
    rels, joins, conds = from_clause(draw, ctx, n)
    scope = RelScope(rels, bare=False)
    if draw(st.integers(0, 3)) == 3:
        q = grouped(draw, rels, joins, row=scope, where_scope=join_scope(rels))
    else:
        q = projection(draw, rels, joins, scope=scope, where_scope=join_scope(rels))
    q.where = conjoin(conds, q.where)
    return q
