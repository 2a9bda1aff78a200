"""Derived tables ``(SELECT ...) AS d`` and CTEs ``WITH q AS (SELECT ...)``, nested up to depth
2, joined with each other and with tables, a CTE read twice (a self-join) or by a later CTE.

The inner query is any body (``selectgen``): a projection (most often with its table's ``_id``,
so ``_id`` is selected through one or two levels), a grouped query, a projection with window
calls (an outer WHERE on a window result is the top-N-per-group idiom), or a join of two
relations; behind ``gaps.DERIVED_SELECT_STAR`` also ``SELECT *``. Every column of an inner query
is named: a bare column keeps its name, anything else gets ``v<n>`` (unique in the whole query, so
an outer alias never equals an inner column name). An inner LIMIT is kept only under a total
order. The outer query reads the columns by qualified name, or bare where the name is unique, or
with ``SELECT *`` from a single relation (compared by column name).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from . import gaps
from .joingen import conjoin, from_clause, join_scope
from .relations import TABLES, Ctx, Rel, RelScope, Select
from .selectgen import as_rel, columns_of, grouped, projection, unique_outputs
from .sqlgen import Gen, Node, OrderItem, SelectItem, _limits
from .windowgen import group_windows, row_windows


def _from(
    draw: Any, ctx: Ctx, depth: int, prefix: str, force_derived: bool = False
) -> tuple[list[Rel], list, Any]:
    """One or two relations: tables, CTEs in scope, or derived tables of depth - 1 (the first
    one surely with ``force_derived``)."""
    n = draw(st.sampled_from([1, 1, 1, 2]))
    rels = []
    for k in range(n):
        if depth > 0 and ((force_derived and k == 0) or draw(st.integers(0, 2))):
            rels.append(as_rel(draw, ctx, body(draw, ctx, depth - 1)))
        else:
            rels.append(ctx.rel(draw, prefix))
    if n == 1:
        return rels, [], None
    return from_clause(draw, ctx, n, rels=rels)


@dataclass(frozen=True)
class TableStar(Node):
    """``d.*``: every column of one relation."""

    alias: str = ""

    def render(self, d: str) -> str:
        return f"{self.alias}.*"


def star_body(draw: Any, rels: list[Rel], scope: RelScope) -> Select:
    """``SELECT *`` or ``SELECT d.*`` from one relation (compared by column name)."""
    star = TableStar("", rels[0].alias) if draw(st.integers(0, 2)) == 2 else None
    q = Select([SelectItem(star)], rels=rels, star=True)
    if draw(st.booleans()):
        q.where = Gen(draw, scope).predicate(draw(st.integers(0, 2)))
    if draw(st.integers(0, 2)) == 2:
        rel = rels[0]
        names = list(rel.columns)
        picked = draw(st.lists(st.sampled_from(names), unique=True, min_size=1))
        if draw(st.booleans()):
            picked += [c for c in names if c not in picked]
        for c in picked:
            text = c if draw(st.booleans()) else f"{rel.alias}.{c}"
            q.order_by.append(
                OrderItem(None, text, text, draw(st.booleans()), text_canon=f"{rel.alias}.{c}")
            )
        _limits(draw, q)
    return q


def body(draw: Any, ctx: Ctx, depth: int, outer: bool = False) -> Select:
    """A query over one or two relations; every output column named unless ``outer``."""
    rels, joins, conds = _from(draw, ctx, depth, "e", force_derived=outer)
    scope = RelScope(rels)
    where = join_scope(rels, bare=True)
    namer = None if outer else ctx.column_name
    shapes = ["projection", "projection", "grouped", "windowed"]
    if (
        len(rels) == 1
        and (outer or gaps.DERIVED_SELECT_STAR)
        and not (
            gaps.AVOID_STAR_OVER_DERIVED_ID
            and "_id" in rels[0].columns
            and rels[0].source not in TABLES
        )
    ):
        shapes += ["star", "star"]
    shape = draw(st.sampled_from(shapes))
    if shape == "star":
        q = star_body(draw, rels, where)
    elif shape == "grouped":
        windows = group_windows(draw) if draw(st.integers(0, 3)) == 3 else None
        q = grouped(draw, rels, joins, row=scope, where_scope=where, windows=windows, namer=namer)
    else:
        windows = row_windows(draw, rels) if shape == "windowed" else None
        q = projection(
            draw, rels, joins, scope=scope, where_scope=where, windows=windows, namer=namer, ids=3
        )
    q.where = conjoin(conds, q.where)
    if not outer and q.limited and not q.total_order:
        q.limit = q.offset = None  # which rows an inner LIMIT keeps must be fixed
    return q


@st.composite
def derived_queries(draw: Any) -> Select:
    ctx = Ctx()
    ctes: list[tuple[str, Select]] = []
    if draw(st.booleans()):
        for _ in range(draw(st.integers(1, 2))):
            q = body(draw, ctx, draw(st.integers(0, 1)))
            name = ctx.cte_name()
            ctx.catalog.append((name, columns_of(q), unique_outputs(q)))
            ctes.append((name, q))
    depth = draw(st.integers(1, 2))
    q = body(draw, ctx, depth, outer=True)
    q.ctes = ctes
    return q
