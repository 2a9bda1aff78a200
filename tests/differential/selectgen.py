"""Query bodies over relations: the select list, WHERE, GROUP BY/HAVING, ORDER BY and LIMIT of a
``Select`` whose FROM clause (relations and joins) the caller chose.

Two bodies, each mirroring its single-table counterpart in ``sqlgen``:

- ``projection``: ``SELECT [DISTINCT] <_id columns and expressions> ... [WHERE] [ORDER BY]
  [LIMIT/OFFSET]``;
- ``grouped``: ``GROUP BY`` keys (by expression, ordinal or alias), aggregates, ``HAVING``.

Both take the scopes their parts draw from, so that a caller can let subqueries into WHERE and the
select list (``subquerygen.SubqueryScope``) and not into GROUP BY keys or aggregate arguments,
and a ``windows`` callback that adds window calls to the select list (``windowgen``). With
``namer`` every select item gets a name a derived table / CTE can expose (``derivedgen``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from . import gaps
from .relations import Ctx, RCol, Rel, Select, is_constant
from .sqlgen import Gen, GroupScope, Node, SelectItem, _order_by, is_bare_literal

VALUE_TYPES = ["int", "int", "float", "text", "bool"]
Windows = Callable[[Gen, list[Node]], list[Node]]
Namer = Callable[[], str]


def id_columns(rels: list[Rel]) -> list[RCol]:
    return [RCol("int", "_id", r.alias + ".", r.alias) for r in rels if "_id" in r.columns]


def make_items(draw: Any, exprs: list[Node], namer: Namer | None) -> list[SelectItem]:
    """Aliases ``c0``, ``c1`` ... (sometimes none); with ``namer`` every item is named: a bare
    column keeps its name unless another item has it, anything else gets ``namer()``."""
    items = []
    used: set[str] = set()
    for k, e in enumerate(exprs):
        if namer is None:
            items.append(SelectItem(e, f"c{k}" if draw(st.integers(0, 4)) else None))
            continue
        if isinstance(e, RCol) and e.name not in used and draw(st.integers(0, 5)):
            items.append(SelectItem(e, None))
            used.add(e.name)
        else:
            name = namer()
            items.append(SelectItem(e, name))
            used.add(name)
    return items


def _has_window(n: Node) -> bool:
    return getattr(n, "over", False) or any(_has_window(c) for c in n.children())


def _order_and_limit(draw: Any, q: Select, hidden_gen: Gen, allow_order: bool = True) -> None:
    hidden = (
        []
        if q.distinct
        else [
            e
            for e in (
                hidden_gen.value(draw(st.sampled_from(["int", "float", "text"])), 1)
                for _ in range(2)
            )
            if not is_bare_literal(e) and not is_constant(e)
        ]
    )
    if allow_order and draw(st.integers(0, 2)):
        _order_by(draw, q, hidden)
    if gaps.AVOID_REPEATED_WINDOW_CALL:
        for o in q.order_by:
            expr = q.items[o.ref].expr if o.ref is not None else None
            if expr is not None and _has_window(expr) and o.text_ql == expr.render("ql"):
                o.text_ql = o.text_lite = str(o.ref + 1)  # type: ignore[operator]


def projection(
    draw: Any,
    rels: list[Rel],
    joins: list,
    *,
    scope: Any,
    where_scope: Any | None = None,
    windows: Windows | None = None,
    namer: Namer | None = None,
    ids: int = 3,
    order: bool = True,
) -> Select:
    """``ids``: the chance (of 4) that each relation's ``_id`` is selected."""
    g = Gen(draw, scope)
    exprs: list[Node] = [c for c in id_columns(rels) if draw(st.integers(0, 3)) < ids]
    for _ in range(draw(st.integers(0 if exprs else 1, 3))):
        exprs.append(g.value(draw(st.sampled_from(VALUE_TYPES)), draw(st.integers(0, 2))))
    if windows is not None:
        exprs += windows(g, [])
    perm = draw(st.permutations(range(len(exprs))))
    q = Select(make_items(draw, [exprs[p] for p in perm], namer), rels=rels, joins=joins)
    q.distinct = draw(st.integers(0, 4)) == 4
    if draw(st.booleans()):
        q.where = Gen(draw, where_scope or scope).predicate(draw(st.sampled_from([0, 1, 1, 2])))
    _order_and_limit(draw, q, Gen(draw, scope), order)
    return q


def grouped(
    draw: Any,
    rels: list[Rel],
    joins: list,
    *,
    row: Any,
    where_scope: Any | None = None,
    windows: Windows | None = None,
    namer: Namer | None = None,
    order: bool = True,
) -> Select:
    """``row``: the scope of keys and aggregate arguments (no subqueries there)."""
    rg = Gen(draw, row)
    keys: list[Node] = []
    for _ in range(draw(st.integers(0, 2))):
        typ = draw(st.sampled_from(["int", "int", "float", "text", "text", "bool"]))
        k = rg.value(typ, draw(st.integers(0, 1)))
        if is_constant(k) or k in keys:
            k = row.column(rg, typ) or k
        if not is_constant(k) and k not in keys:
            keys.append(k)
    g = Gen(draw, GroupScope(keys, row))
    exprs: list[Node] = []
    key_pos: dict[int, int] = {}
    for ki, k in enumerate(keys):
        if draw(st.integers(0, 3)):
            key_pos[ki] = len(exprs)
            exprs.append(k)
    for _ in range(draw(st.integers(0 if exprs else 1, 3))):
        exprs.append(g.value(draw(st.sampled_from(VALUE_TYPES)), draw(st.integers(0, 2))))
    if not keys and not any(e.has_agg for e in exprs):
        exprs.append(g.aggregate("int"))
    if windows is not None:
        exprs += windows(g, keys)
    perm = draw(st.permutations(range(len(exprs))))
    exprs = [exprs[p] for p in perm]
    key_pos = {ki: perm.index(p) for ki, p in key_pos.items()}
    q = Select(make_items(draw, exprs, namer), rels=rels, joins=joins, group_keys=keys)
    if draw(st.integers(0, 2)) == 2:
        q.where = Gen(draw, where_scope or row).predicate(draw(st.integers(0, 2)))
    for ki, k in enumerate(keys):
        ways = ["expr"]
        if ki in key_pos:
            ways.append("ordinal")
            if q.items[key_pos[ki]].alias:
                ways.append("alias")
        way = draw(st.sampled_from(ways))
        if way == "expr":
            q.group_by.append((k.render("ql"), k.render("lite")))
        elif way == "ordinal":
            q.group_by.append((str(key_pos[ki] + 1),) * 2)
        else:
            a = q.items[key_pos[ki]].alias
            q.group_by.append((a, a))  # type: ignore[arg-type]
    if draw(st.integers(0, 2)) == 2:
        q.having = g.predicate(draw(st.integers(0, 2)))
    q.distinct = draw(st.integers(0, 5)) == 5
    _order_and_limit(draw, q, g, order)
    return q


def unique_outputs(q: Select) -> tuple[str, ...] | None:
    """Output names that together tell the rows of ``q`` apart (None if unknown): the selected
    ``_id`` of every relation, the selected GROUP BY keys, or everything under DISTINCT."""
    names = q.output_names()
    if q.star:
        return q.rels[0].unique
    if q.distinct:
        return tuple(names)
    exprs = [it.expr for it in q.items]
    if q.group_keys:
        if not all(k in exprs for k in q.group_keys):
            return None
        return tuple(names[exprs.index(k)] for k in q.group_keys)
    if any(e is not None and e.has_agg for e in exprs):
        return ()  # an aggregate query without GROUP BY: one row
    out = []
    for r in q.rels:
        if r.unique is None:
            return None
        for u in r.unique:
            col = RCol(r.columns[u], u, r.alias + ".", r.alias)
            hits = [
                n
                for n, e in zip(names, exprs, strict=True)
                if isinstance(e, RCol) and e.render("canon") == col.render("canon")
            ]
            if not hits:
                return None
            out.append(hits[0])
    return tuple(out)


def columns_of(q: Select) -> dict[str, str]:
    """The columns (name → type) of a derived table or CTE over ``q``."""
    if q.star:
        return dict(q.rels[0].columns)
    return {
        n: it.expr.typ  # type: ignore[union-attr]
        for n, it in zip(q.output_names(), q.items, strict=True)
    }


def as_rel(draw: Any, ctx: Ctx, q: Select, prefix: str = "d") -> Rel:
    """``q`` as a derived table."""
    return Rel(q, ctx.alias(prefix), columns_of(q), unique_outputs(q), draw(st.booleans()))
