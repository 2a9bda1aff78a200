"""Subqueries: ``[NOT] IN (SELECT ...)``, ``[NOT] EXISTS``, scalar ``(SELECT ...)`` and, behind
``gaps.QUANTIFIED_COMPARISONS``, ``x op ANY|SOME|ALL (SELECT ...)``.

``SubqueryScope`` is a ``RelScope`` whose leaves are sometimes subqueries: a boolean leaf may be
an IN / EXISTS / quantified predicate, an int / float / text leaf a scalar subquery. So they land
anywhere ``sqlgen.Gen`` puts a leaf (inside NOT/AND/OR, CASE, arithmetic, comparisons), in WHERE
and in the select list; ``subquery_queries`` also puts one at the top of WHERE or in the select
list of most queries. A subquery reads a table or CTE (sometimes a join of two), its WHERE may
read the enclosing queries' columns (correlation, always qualified) and may hold a subquery of its
own (nesting); an unqualified name resolves to the subquery's own table, as in SQL.

Shapes of the subquery: ``SELECT [DISTINCT] expr ... [WHERE]``, grouped (``SELECT MAX(x) ...
GROUP BY k [HAVING]``), ``ORDER BY <unique key> LIMIT n``, and for scalars an aggregate without
GROUP BY (one row) or a lookup by ``_id`` (at most one row). NULLs come from the data (NULL and
missing values on either side) and from the expressions.

Quantified comparisons have no SQLite syntax; SQLite gets the equivalent with the same
three-valued logic (``c`` the subquery's column, ``S`` the subquery):

    x op ANY S  →  CASE WHEN EXISTS (SELECT 1 FROM S WHERE x op c) THEN 1
                        WHEN EXISTS (SELECT 1 FROM S WHERE (x op c) IS NULL) THEN NULL ELSE 0 END
    x op ALL S  →  CASE WHEN EXISTS (SELECT 1 FROM S WHERE NOT (x op c)) THEN 0
                        WHEN EXISTS (SELECT 1 FROM S WHERE (x op c) IS NULL) THEN NULL ELSE 1 END
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from . import gaps
from .derivedgen import body
from .joingen import conjoin, equality, join_condition
from .relations import Ctx, Join, RCol, Rel, RelScope, Select
from .selectgen import as_rel, columns_of, grouped, projection, unique_outputs
from .sqlgen import (
    COMPARISONS,
    Compare,
    Fn,
    Gen,
    GroupScope,
    IsNull,
    Lit,
    Logic,
    Node,
    OrderItem,
    SelectItem,
)

# ---------------------------------------------------------------- nodes


@dataclass(frozen=True)
class Exists(Node):
    query: Select = None  # type: ignore[assignment]
    negated: bool = False
    varies = True

    def render(self, d: str) -> str:
        return f"({'NOT ' if self.negated else ''}EXISTS ({self.query.render(d)}))"


@dataclass(frozen=True)
class InSubquery(Node):
    operand: Node = None  # type: ignore[assignment]
    query: Select = None  # type: ignore[assignment]
    negated: bool = False
    varies = True

    def render(self, d: str) -> str:
        neg = "NOT " if self.negated else ""
        return f"({self.operand.render(d)} {neg}IN ({self.query.render(d)}))"


@dataclass(frozen=True)
class Scalar(Node):
    query: Select = None  # type: ignore[assignment]
    varies = True

    @property
    def exact(self) -> bool:
        return self.query.items[0].expr.exact  # type: ignore[union-attr]

    def render(self, d: str) -> str:
        return f"({self.query.render(d)})"


@dataclass(frozen=True)
class Quantified(Node):
    operand: Node = None  # type: ignore[assignment]
    op: str = "="
    quantifier: str = "ANY"  # ANY, SOME, ALL
    query: Select = None  # type: ignore[assignment]  # its one item is named "qc"
    varies = True

    def render(self, d: str) -> str:
        x = self.operand.render(d)
        sub = self.query.render(d)
        if d != "lite":
            return f"({x} {self.op} {self.quantifier} ({sub}))"
        cmp = f"({x} {self.op} qv.qc)"

        def exists(cond: str) -> str:
            return f"EXISTS (SELECT 1 FROM ({sub}) AS qv WHERE {cond})"

        if self.quantifier == "ALL":
            return (
                f"(CASE WHEN {exists(f'NOT {cmp}')} THEN 0 "
                f"WHEN {exists(f'{cmp} IS NULL')} THEN NULL ELSE 1 END)"
            )
        return (
            f"(CASE WHEN {exists(cmp)} THEN 1 WHEN {exists(f'{cmp} IS NULL')} THEN NULL ELSE 0 END)"
        )


# ---------------------------------------------------------------- the scope


class SubqueryScope(RelScope):
    """A ``RelScope`` whose leaves are sometimes subqueries (while ``budget`` lasts; the budget
    is shared by a whole query, nested subqueries included)."""

    def __init__(
        self,
        ctx: Ctx,
        rels: list[Rel],
        outer: list[Rel] | None = None,
        outer_weight: int = 0,
        budget: list[int] | None = None,
        bare: bool = True,
        bool_weight: int = 6,
        value_weight: int = 2,
        let_bound: Iterable[str] = (),
    ):
        super().__init__(rels, outer, outer_weight, bare, let_bound)
        self.ctx = ctx
        self.budget = budget if budget is not None else [3]
        self.bool_weight = bool_weight  # of 10
        self.value_weight = value_weight

    def column(self, g: Gen, typ: str) -> Node | None:
        if self.budget[0] > 0:
            roll = g.draw(st.integers(0, 9))
            if roll < (self.bool_weight if typ == "bool" else self.value_weight):
                return self.subquery(g.draw, typ)
        return super().column(g, typ)

    def plain(self) -> RelScope:
        """The same columns without subqueries."""
        return RelScope(self.rels, self.outer, self.outer_weight, self.bare, self.let_bound)

    # -- subqueries
    def subquery(self, draw: Any, typ: str) -> Node:
        self.budget[0] -= 1
        if typ != "bool":
            sub: Node = Scalar(typ, self.scalar_select(draw, typ))
            if gaps.AVOID_ARITHMETIC_ON_EMPTY_SCALAR_SUBQUERY and typ in ("int", "float"):
                sub = Fn(typ, "COALESCE", (sub, Lit(typ, None)))
            return sub
        kinds = ["in", "in", "not in", "not in", "exists", "not exists"]
        if gaps.QUANTIFIED_COMPARISONS:
            kinds += ["quantified", "quantified"]
        kind = draw(st.sampled_from(kinds))
        if kind in ("exists", "not exists"):
            return Exists("bool", self.exists_select(draw), kind == "not exists")
        vtype = draw(st.sampled_from(["int", "int", "float", "text"]))
        # most often a column that may be NULL or missing (x IN (SELECT ...))
        cols = [
            (r, c) for r in self.rels for c, t in r.columns.items() if t == vtype and c != "_id"
        ]
        if cols and draw(st.integers(0, 2)) < 2:
            operand: Node = self.ref(draw, *draw(st.sampled_from(cols)))
        else:
            operand = Gen(draw, self).value(vtype, draw(st.integers(0, 1)))
        item_type = (
            operand.typ
            if draw(st.integers(0, 2))
            else {"int": "float", "float": "int"}.get(operand.typ, operand.typ)
        )
        if kind == "quantified":
            q = self.list_select(draw, item_type, name="qc")
            return Quantified(
                "bool",
                operand,
                draw(st.sampled_from(COMPARISONS)),
                draw(st.sampled_from(["ANY", "SOME", "ALL"])),
                q,
            )
        if gaps.AVOID_IN_SUBQUERY_NULL_OPERAND:
            fill = Lit(operand.typ, {"int": 0, "float": 0.5, "text": "a"}[operand.typ])
            operand = Fn(operand.typ, "COALESCE", (operand, fill))
        return InSubquery("bool", operand, self.list_select(draw, item_type), kind == "not in")

    def _from(self, draw: Any) -> tuple[list[Rel], list, SubqueryScope, RelScope]:
        """The subquery's FROM (a table or CTE, sometimes joined with a second one) and the
        scopes of its WHERE (correlated, may nest) and of its select list."""
        ctx = self.ctx
        outer = self.rels + self.outer
        rels = [self._derived(draw, outer) if draw(st.integers(0, 3)) == 3 else ctx.rel(draw, "s")]
        joins = []
        if draw(st.integers(0, 5)) == 5:
            second = ctx.rel(draw, "s")
            kind = draw(st.sampled_from(["JOIN", "LEFT JOIN"]))
            on_scope = RelScope(
                [*rels, second],
                outer,
                let_bound=[rels[0].alias],
                bare=not gaps.AVOID_BARE_NAMES_IN_ON,
            )
            joins.append(Join(kind, second, join_condition(draw, on_scope, rels, second)))
            rels.append(second)
        inner_let = [r.alias for r in rels[:-1]]
        where = SubqueryScope(
            ctx,
            rels,
            outer,
            outer_weight=4,
            budget=self.budget,
            bool_weight=3,
            value_weight=0,
            let_bound=inner_let,
        )
        items = RelScope(rels, outer, outer_weight=1, let_bound=inner_let)
        return rels, joins, where, items

    def _derived(self, draw: Any, outer: list[Rel]) -> Rel:
        """A derived table reading a table or CTE, its WHERE maybe correlated."""
        base = self.ctx.rel(draw, "s")
        if gaps.AVOID_CORRELATED_DERIVED_IN_SUBQUERY:
            outer = []
        where = RelScope([base], outer, outer_weight=4)
        q = projection(
            draw,
            [base],
            [],
            scope=RelScope([base]),
            where_scope=where,
            namer=self.ctx.column_name,
            order=False,
        )
        if outer and draw(st.booleans()):
            q.where = conjoin(equality(draw, outer, base), q.where)
        return as_rel(draw, self.ctx, q, "s")

    def _where(self, draw: Any, q: Select, scope: SubqueryScope, chance: int = 4) -> None:
        """Sometimes a WHERE, often with a correlation on a key (``s.i = a.j``)."""
        if draw(st.integers(0, 4)) < chance:
            q.where = Gen(draw, scope).predicate(draw(st.integers(0, 2)))
        if scope.outer and draw(st.integers(0, 3)) < 3:
            q.where = conjoin(equality(draw, scope.outer, q.rels[0]), q.where)

    def list_select(self, draw: Any, typ: str, name: str | None = None) -> Select:
        """A one-column subquery for IN / ANY / ALL (any number of rows)."""
        rels, joins, where, items = self._from(draw)
        inner_only = RelScope(rels)
        form = draw(st.sampled_from(["plain", "plain", "plain", "not_null", "grouped", "limited"]))
        if form == "grouped":
            keys = [
                inner_only.column(Gen(draw, inner_only), draw(st.sampled_from(["int", "text"])))
            ]
            g = Gen(draw, GroupScope([k for k in keys if k is not None], inner_only))
            q = Select([SelectItem(g.aggregate(typ), name)], rels=rels, joins=joins)
            q.group_by = [(k.render("ql"), k.render("lite")) for k in keys if k is not None]
            self._where(draw, q, where, 2)
            if draw(st.booleans()):
                q.having = g.predicate(1)
            return q
        q = Select(
            [SelectItem(Gen(draw, items).value(typ, draw(st.integers(0, 1))), name)],
            rels=rels,
            joins=joins,
        )
        q.distinct = form == "plain" and draw(st.integers(0, 3)) == 3
        self._where(draw, q, where)
        if form == "not_null":  # the NULL-free subquery of NOT IN done right
            q.where = conjoin(IsNull("bool", q.items[0].expr, True), q.where)
        if form == "limited":
            self._limit(draw, q, draw(st.integers(0, 3)))
        return q

    def _limit(self, draw: Any, q: Select, n: int) -> None:
        """ORDER BY the relations' unique keys (a total order), LIMIT n."""
        for r in q.rels:
            for u in r.unique or ():
                col = RCol(r.columns[u], u, r.alias + ".", r.alias)
                desc = draw(st.booleans())
                q.order_by.append(
                    OrderItem(
                        None,
                        col.render("ql"),
                        col.render("lite"),
                        desc,
                        text_canon=col.render("canon"),
                    )
                )
        q.limit = n

    def exists_select(self, draw: Any) -> Select:
        rels, joins, where, items = self._from(draw)
        form = draw(st.sampled_from(["one", "one", "star", "expr", "grouped"]))
        if form == "grouped":
            inner_only = RelScope(rels)
            q = grouped(draw, rels, joins, row=inner_only, where_scope=where, order=False)
            return q
        if form == "star":
            q = Select([SelectItem(None)], rels=rels, joins=joins, star=True)
        elif form == "one":
            q = Select([SelectItem(Lit("int", 1))], rels=rels, joins=joins)
        else:
            typ = draw(st.sampled_from(["int", "float", "text", "bool"]))
            q = Select([SelectItem(Gen(draw, items).value(typ, 1))], rels=rels, joins=joins)
        self._where(draw, q, where)
        return q

    def scalar_select(self, draw: Any, typ: str) -> Select:
        """At most one row: an aggregate without GROUP BY, a lookup by ``_id``, or LIMIT 1."""
        rels, joins, where, items = self._from(draw)
        form = draw(st.sampled_from(["aggregate", "aggregate", "by_id", "limit"]))
        if form == "aggregate" or (form == "by_id" and (joins or rels[0].unique != ("_id",))):
            g = Gen(draw, GroupScope([], RelScope(rels)))
            q = Select([SelectItem(g.aggregate(typ))], rels=rels, joins=joins)
            self._where(draw, q, where)
            return q
        q = Select(
            [SelectItem(Gen(draw, items).value(typ, draw(st.integers(0, 1))))],
            rels=rels,
            joins=joins,
        )
        if form == "by_id":
            # qualified: inside the subquery a bare name would be the subquery's own column
            enclosing = RelScope(
                self.rels + self.outer,
                bare=False,
                let_bound=[r.alias for r in self.rels + self.outer],
            )
            key = Gen(draw, enclosing).value("int", draw(st.integers(0, 1)))
            r = rels[0]
            cond: Node = Compare("bool", "=", RCol("int", "_id", r.alias + ".", r.alias), key)
            if draw(st.booleans()):
                cond = Logic("bool", "AND", cond, Gen(draw, where).predicate(1))
            q.where = cond
            return q
        self._where(draw, q, where)
        self._limit(draw, q, 1)
        return q


# ---------------------------------------------------------------- query strategy


def _on_group_keys(draw: Any, ctx: Ctx, q: Select, budget: list[int], typ: str) -> Node:
    """A subquery for the select list or HAVING of a grouped query: it may read the GROUP BY
    keys that are columns (as qualified outer columns), nothing else of the outer rows."""
    keys: dict[str, dict[str, str]] = {}
    if not gaps.AVOID_CORRELATED_SUBQUERY_ON_GROUP_KEY:
        for k in q.group_keys:
            if isinstance(k, RCol):
                keys.setdefault(k.rel, {})[k.name] = k.typ
    visible = [Rel("", alias, cols) for alias, cols in keys.items()]
    scope = SubqueryScope(ctx, visible, budget=budget, bare=False)
    return scope.subquery(draw, typ)


@st.composite
def subquery_queries(draw: Any) -> Select:
    """A query over a table (or a join of two) with subqueries in WHERE and the select list;
    sometimes with a CTE that the subqueries may read."""
    ctx = Ctx()
    ctes = []
    if draw(st.integers(0, 4)) == 4:
        cte = body(draw, ctx, 0)
        name = ctx.cte_name()
        ctx.catalog.append((name, columns_of(cte), unique_outputs(cte)))
        ctes.append((name, cte))
    rels = [ctx.rel(draw, "a", tables_only=True)]
    joins: list = []
    if draw(st.integers(0, 2)) == 2:
        second = ctx.rel(draw, "a", tables_only=True)
        budget = [draw(st.integers(1, 3))]
        on_scope: RelScope = RelScope([*rels, second], let_bound=[rels[0].alias])
        if not gaps.AVOID_SUBQUERY_IN_ON:
            on_scope = SubqueryScope(
                ctx,
                [*rels, second],
                budget=budget,
                bool_weight=3,
                value_weight=0,
                let_bound=[rels[0].alias],
            )
        on = join_condition(draw, on_scope, rels, second)
        if isinstance(on_scope, SubqueryScope) and draw(st.booleans()):
            on = conjoin(on_scope.subquery(draw, "bool"), on)
        joins.append(Join(draw(st.sampled_from(["JOIN", "LEFT JOIN"])), second, on))
        rels.append(second)
    else:
        budget = [draw(st.integers(1, 3))]
    scope = SubqueryScope(ctx, rels, budget=budget)
    where = SubqueryScope(ctx, rels, budget=budget, let_bound=[r.alias for r in rels[:-1]])
    q = _body(draw, ctx, rels, joins, scope, where, budget)
    q.ctes = ctes
    return q


def _body(
    draw: Any,
    ctx: Ctx,
    rels: list[Rel],
    joins: list,
    scope: SubqueryScope,
    where: SubqueryScope,
    budget: list[int],
) -> Select:
    is_grouped = draw(st.integers(0, 3)) == 3
    if is_grouped:
        q = grouped(draw, rels, joins, row=scope.plain(), where_scope=where)
        if draw(st.integers(0, 3)) < 3:
            typ = draw(st.sampled_from(["bool", "int", "text"]))
            q.items.append(SelectItem(_on_group_keys(draw, ctx, q, [1], typ), None))
        if draw(st.integers(0, 2)) == 2:
            sub = _on_group_keys(draw, ctx, q, [1], "bool")
            q.having = sub if q.having is None else Logic("bool", "AND", sub, q.having)
    else:
        q = projection(draw, rels, joins, scope=scope, where_scope=where)
    # most queries get one subquery at the top of WHERE or as a select item
    if budget[0] > 0 and draw(st.integers(0, 3)) < 3:
        in_items = not is_grouped and draw(st.booleans())
        sub = (scope if in_items else where).subquery(
            draw, draw(st.sampled_from(["bool", "bool", "int", "text"]))
        )
        if in_items:
            q.items.append(SelectItem(sub, f"c{len(q.items)}" if draw(st.booleans()) else None))
            return q
        pred = sub if sub.typ == "bool" else IsNull("bool", sub, draw(st.booleans()))
        if q.where is None or draw(st.booleans()):
            q.where = pred
        else:
            q.where = Logic("bool", draw(st.sampled_from(["AND", "OR"])), pred, q.where)
    return q
