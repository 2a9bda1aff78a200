"""Several tables, and queries over relations: joins, derived tables, CTEs, subqueries.

The single-table generator (``sqlgen``) reads one table through ``RowScope``. The relational
shapes (``joingen``, ``subquerygen``, ``windowgen``, ``derivedgen``) read *relations*: the
generated tables ``@A@``, ``@B@``, ``@C@`` (same columns as the single table, plus a unique
integer ``_id``), derived tables and CTEs, each under an alias. This module holds what they share:

- the data: three tables (``@A@`` and ``@B@`` of 2–6 rows, ``@C@`` of 0–6) whose key columns
  overlap (``i`` −3..3, ``j`` 0..4, ``_id`` 1..6), so joins meet NULL keys, missing keys,
  duplicate keys and unmatched rows on both sides;
- ``Rel`` (a FROM item under an alias) and ``Select`` (a query with a FROM clause of joins,
  ``WITH``, and everything ``sqlgen.Query`` has);
- ``RelScope``: the expression leaves of a query over several relations (qualified columns,
  unqualified where the name is unambiguous), optionally with the relations of enclosing queries
  for correlated subqueries;
- ``Ctx``: what a query being generated may read (tables and CTEs in scope) and fresh aliases.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from . import gaps
from .data import COLUMNS, rows
from .sqlgen import Agg, Col, Fn, Gen, Lit, Node, Query

TABLES = ("@A@", "@B@", "@C@")
TABLE_COLUMNS: dict[str, str] = {"_id": "int", **COLUMNS}
MAX_ROWS = 6


@st.composite
def database(draw: Any) -> dict[str, list[dict[str, Any]]]:
    """{placeholder: rows}; each row gets ``_id`` 1..n (unique in its table, equal across
    tables, so ``a._id = b.j`` and the like find partners)."""
    out = {}
    for name in TABLES:
        table = draw(rows(min_size=0 if name == "@C@" else 2, max_size=MAX_ROWS))
        out[name] = [{"_id": k + 1, **r} for k, r in enumerate(table)]
    return out


# ---------------------------------------------------------------- expression leaves


@dataclass(frozen=True)
class RCol(Col):
    """A column of a relation. ``qual`` is how it is written ("a." or ""), ``rel`` the alias it
    resolves to, so that ``a.i`` and an unqualified ``i`` meaning ``a.i`` are the same key, and
    ``a.i`` and ``b.i`` are not."""

    rel: str = ""

    def render(self, d: str) -> str:
        if d == "canon":
            return f"{self.rel}.{self.name}"
        return f"{self.qual}{self.name}"


def is_constant(n: Node) -> bool:
    """Like ``sqlgen.is_constant``, but a window call or a subquery is never constant (both
    may differ from row to row)."""
    if isinstance(n, Col | Agg) or getattr(n, "varies", False):
        return False
    return all(is_constant(c) for c in n.children())


# ---------------------------------------------------------------- relations and queries


@dataclass
class Rel:
    """A FROM item: a table placeholder, a CTE name or a derived ``Select``, under an alias."""

    source: str | Select
    alias: str
    columns: dict[str, str]  # output name → type
    # columns that together tell its rows apart ("_id"); () when it has at most one row,
    # None when unknown
    unique: tuple[str, ...] | None = ()
    as_keyword: bool = False

    def render(self, d: str) -> str:
        src = self.source if isinstance(self.source, str) else f"({self.source.render(d)})"
        return f"{src} {'AS ' if self.as_keyword else ''}{self.alias}"


@dataclass
class Join:
    kind: str  # "JOIN", "INNER JOIN", "LEFT JOIN", "LEFT OUTER JOIN", "RIGHT JOIN",
    #            "CROSS JOIN" or "," (a comma join)
    rel: Rel
    on: Node | None = None

    def render(self, d: str) -> str:
        text = self.rel.render(d)
        if self.kind == ",":
            return f", {text}"
        on = f" ON {self.on.render(d)}" if self.on is not None else ""
        return f" {self.kind} {text}{on}"


@dataclass
class Select(Query):
    """A query over relations. ``rels[0]`` is the first FROM item, ``joins`` the rest."""

    rels: list[Rel] = field(default_factory=list)
    joins: list[Join] = field(default_factory=list)
    ctes: list[tuple[str, Select]] = field(default_factory=list)
    group_keys: list[Node] = field(default_factory=list)  # the GROUP BY keys as expressions

    def from_clause(self, d: str) -> str:
        return self.rels[0].render(d) + "".join(j.render(d) for j in self.joins)

    def render(self, d: str, table: str = "", limits: bool = True) -> str:
        text = super().render(d, self.from_clause(d), limits)
        if self.ctes:
            defs = ", ".join(f"{name} AS ({q.render(d)})" for name, q in self.ctes)
            text = f"WITH {defs} {text}"
        return text

    @property
    def total_order(self) -> bool:
        keys = set()
        for o in self.order_by:
            if o.ref is None:
                keys.add(o.text_canon)
            elif self.items[o.ref].expr is not None:
                keys.add(self.items[o.ref].expr.render("canon"))  # type: ignore[union-attr]
        if self.star:
            return {f"{self.rels[0].alias}.{c}" for c in self.rels[0].columns} <= keys
        return all(
            it.expr is not None and (is_constant(it.expr) or it.expr.render("canon") in keys)
            for it in self.items
        )

    def output_names(self) -> list[str]:
        """The names a derived table / CTE over this query has (every item is named)."""
        if self.star:
            return list(self.rels[0].columns)
        out = []
        for it in self.items:
            if it.alias:
                out.append(it.alias)
            else:
                assert isinstance(it.expr, RCol)
                out.append(it.expr.name)
        return out


# ---------------------------------------------------------------- scopes


class RelScope:
    """Leaves are columns of ``rels`` (qualified, or bare when no other relation of this query
    level has the name) and, for correlated subqueries, qualified columns of ``outer``.

    ``let_bound``: aliases whose columns queryleaf may read through a ``$lookup`` variable (the
    tables before the last one of a join, and the enclosing queries of a subquery); while
    ``gaps.AVOID_ARITHMETIC_ON_MISSING_JOIN_VALUE`` is on, their numbers are read as
    ``COALESCE(col, NULL)`` (the same value)."""

    grouped = False
    qual = None  # sqlgen's requalify() toggles single-table qualifiers; not used here

    def __init__(
        self,
        rels: list[Rel],
        outer: list[Rel] | None = None,
        outer_weight: int = 0,
        bare: bool = True,
        let_bound: Iterable[str] = (),
        bare_among: list[Rel] | None = None,
    ):
        self.rels = rels
        self.bare_among = bare_among or rels  # a bare name must be unique among these
        self.outer = outer or []
        self.outer_weight = outer_weight  # of 10: how often a leaf is an outer column
        self.bare = bare
        self.let_bound = {*let_bound, *(r.alias for r in self.outer)}

    def _owners(self, name: str) -> list[Rel]:
        return [r for r in self.bare_among if name in r.columns]

    def column(self, g: Gen, typ: str) -> Node | None:
        d = g.draw
        pool = self.rels
        if self.outer and d(st.integers(0, 9)) < self.outer_weight:
            pool = self.outer
        cands = [(r, c) for r in pool for c, t in r.columns.items() if t == typ]
        if not cands:
            return None
        rel, name = d(st.sampled_from(cands))
        col: Node = (
            self.ref(d, rel, name)
            if pool is self.rels
            else RCol(typ, name, rel.alias + ".", rel.alias)
        )
        if (
            gaps.AVOID_ARITHMETIC_ON_MISSING_JOIN_VALUE
            and rel.alias in self.let_bound
            and typ in ("int", "float")
        ):
            col = Fn(typ, "COALESCE", (col, Lit(typ, None)))
        return col

    def ref(self, draw: Any, rel: Rel, name: str) -> RCol:
        """Column ``name`` of ``rel`` (one of ``rels``): qualified, or now and then bare."""
        qual = rel.alias + "."
        if self.bare and len(self._owners(name)) == 1 and draw(st.integers(0, 2)) == 2:
            qual = ""
        return RCol(rel.columns[name], name, qual, rel.alias)


class Ctx:
    """What the query being generated may read, and fresh names. ``catalog`` holds the base
    tables and the CTEs defined so far, as (source, columns, unique key)."""

    def __init__(self) -> None:
        self.catalog: list[tuple[str, dict[str, str], tuple[str, ...] | None]] = [
            (t, dict(TABLE_COLUMNS), ("_id",)) for t in TABLES
        ]
        self._aliases = itertools.count()
        self._ctes = itertools.count()
        self._columns = itertools.count()

    def alias(self, prefix: str) -> str:
        return f"{prefix}{next(self._aliases)}"

    def cte_name(self) -> str:
        return f"q{next(self._ctes)}"

    def column_name(self) -> str:
        """A name for a derived table's / CTE's column, unique in the query."""
        return f"v{next(self._columns)}"

    def rel(self, draw: Any, prefix: str = "r", tables_only: bool = False) -> Rel:
        pool = [c for c in self.catalog if c[0] in TABLES] if tables_only else self.catalog
        source, columns, unique = draw(st.sampled_from(pool))
        return Rel(source, self.alias(prefix), dict(columns), unique, draw(st.integers(0, 4)) == 0)
