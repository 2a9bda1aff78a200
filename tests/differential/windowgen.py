"""Window functions: ``ROW_NUMBER``, ``RANK``, ``DENSE_RANK``, ``LAG``/``LEAD``,
``FIRST_VALUE``/``LAST_VALUE`` and ``SUM COUNT AVG MIN MAX`` with ``OVER (PARTITION BY ...
ORDER BY ... [frame])``, over a table, a join, or the groups of a grouped query (windows over
aggregates).

Only windows whose answer SQL fixes are generated:

- ``ROW_NUMBER``, ``LAG``/``LEAD``, ``FIRST_VALUE``/``LAST_VALUE`` and every ``ROWS`` frame
  depend on the order of rows tied on the ORDER BY keys, so their ORDER BY ends with keys that
  tell the rows apart (each table's ``_id``; a grouped query's GROUP BY keys);
- ``RANK``/``DENSE_RANK`` and aggregates over the whole partition or over a ``RANGE`` frame
  (the default frame with ORDER BY, or ``RANGE BETWEEN n PRECEDING AND m FOLLOWING``) are
  determined by ties, so any keys do; queryleaf takes a ``RANGE`` frame over one numeric key
  only (MongoDB's ``range`` windows), so those have one ``int``/``float`` key;
- ``FIRST_VALUE``/``LAST_VALUE`` take an explicit ``ROWS`` frame (with ``RANGE``, which of the
  tied first rows is first is unspecified).

Frames are the ones both engines accept: ``ROWS n PRECEDING``, ``ROWS BETWEEN <start> AND <end>``
with UNBOUNDED / n PRECEDING / CURRENT ROW / n FOLLOWING (start not after end), the same for
``RANGE`` with a numeric key. ``NULLS FIRST/LAST`` in OVER is not generated (queryleaf accepts the
defaults only, which are SQLite's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from . import gaps
from .joingen import conjoin, from_clause, join_scope
from .relations import Ctx, RCol, Rel, RelScope, Select, is_constant
from .selectgen import grouped, projection
from .sqlgen import Fn, Gen, Lit, Node, Op

BOUNDS = ["UNBOUNDED PRECEDING", "n PRECEDING", "CURRENT ROW", "n FOLLOWING", "UNBOUNDED FOLLOWING"]


@dataclass(frozen=True)
class Win(Node):
    func: str = "ROW_NUMBER"
    args: tuple[Node, ...] = ()  # COUNT with no argument is COUNT(*)
    partition: tuple[Node, ...] = ()
    order: tuple[tuple[Node, bool], ...] = ()  # (key, descending)
    frame: str = ""
    varies = True
    over = True

    def children(self) -> tuple[Node, ...]:
        return (*self.args, *self.partition, *(k for k, _ in self.order))

    @property
    def exact(self) -> bool:
        return self.func != "AVG" and super().exact

    @property
    def has_agg(self) -> bool:  # an aggregate inside a window belongs to the GROUP BY
        return any(c.has_agg for c in self.children())

    def render(self, d: str) -> str:
        args = ", ".join(a.render(d) for a in self.args)
        if self.func == "COUNT" and not self.args:
            args = "*"
        parts = []
        if self.partition:
            parts.append("PARTITION BY " + ", ".join(p.render(d) for p in self.partition))
        if self.order:
            parts.append(
                "ORDER BY "
                + ", ".join(k.render(d) + (" DESC" if desc else "") for k, desc in self.order)
            )
        if self.frame:
            parts.append(self.frame)
        return f"{self.func}({args}) OVER ({' '.join(parts)})"


def _bound(draw: Any, kind: str) -> str:
    return kind.replace("n", str(draw(st.integers(0, 2))), 1) if kind[0] == "n" else kind


def frame(draw: Any, unit: str) -> str:
    """``ROWS|RANGE BETWEEN a AND b`` (a not after b), or the one-bound short form."""
    if draw(st.integers(0, 4)) == 4:
        return f"{unit} {_bound(draw, draw(st.sampled_from(BOUNDS[:3])))}"
    start = draw(st.integers(0, 3))
    end = draw(st.integers(max(start, 1), 4))
    return f"{unit} BETWEEN {_bound(draw, BOUNDS[start])} AND {_bound(draw, BOUNDS[end])}"


def _dedupe(keys: tuple[tuple[Node, bool], ...]) -> tuple[tuple[Node, bool], ...]:
    if not gaps.AVOID_REPEATED_WINDOW_ORDER_KEY:
        return keys
    seen: set[str] = set()
    out = []
    for k, desc in keys:
        if k.render("canon") not in seen:
            seen.add(k.render("canon"))
            out.append((k, desc))
    return tuple(out)


def _windows_in(n: Node) -> list[Node]:
    if isinstance(n, Win):
        return [n]
    return [w for c in n.children() for w in _windows_in(c)]


class WindowMaker:
    """Draws window calls. ``g`` draws their arguments and keys (a row scope, or a group scope
    over keys and aggregates); ``tiebreak`` are keys that tell the rows apart (None: unknown,
    so only calls that ties cannot change)."""

    def __init__(self, draw: Any, g: Gen, tiebreak: list[Node] | None):
        self.draw = draw
        self.g = g
        self.tiebreak = tiebreak

    def _keys(self, n_min: int, n_max: int) -> tuple[tuple[Node, bool], ...]:
        d = self.draw
        out = []
        for _ in range(d(st.integers(n_min, n_max))):
            k = self.g.value(
                d(st.sampled_from(["int", "int", "float", "text", "bool"])), d(st.integers(0, 1))
            )
            if not is_constant(k):
                out.append((k, d(st.booleans())))
        return _dedupe(tuple(out))

    def _total(self, keys: tuple[tuple[Node, bool], ...]) -> tuple[tuple[Node, bool], ...]:
        d = self.draw
        out = _dedupe(keys + tuple((k, d(st.booleans())) for k in self.tiebreak or ()))
        if not out:  # at most one row: any key will do (not a constant: ORDER BY needs one)
            for typ in ("int", "float", "text", "bool"):
                k = self.g.scope.column(self.g, typ)
                if k is not None:
                    return ((k, False),)
        return out

    def _numeric_key(self) -> tuple[tuple[Node, bool], ...]:
        d = self.draw
        k = self.g.value(d(st.sampled_from(["int", "int", "float"])), d(st.integers(0, 1)))
        if gaps.AVOID_NULL_RANGE_KEYS:
            k = Fn(k.typ, "COALESCE", (k, Lit(k.typ, 0)))
        return ((k, d(st.booleans())),)

    def _partition(self) -> tuple[Node, ...]:
        d = self.draw
        parts = [
            self.g.value(
                d(st.sampled_from(["int", "text", "bool", "float"])), d(st.sampled_from([0, 0, 1]))
            )
            for _ in range(d(st.integers(0, 2)))
        ]
        parts = [p for p in parts if not is_constant(p)]
        if gaps.AVOID_MULTI_KEY_PARTITION_MISSING and len(parts) > 1:
            parts = [Fn(p.typ, "COALESCE", (p, Lit(p.typ, None))) for p in parts]
        return tuple(parts)

    def _aggregate(self) -> tuple[str, tuple[Node, ...], str]:
        d = self.draw
        func = d(st.sampled_from(["SUM", "COUNT", "COUNT", "AVG", "MIN", "MAX"]))
        if func == "COUNT":
            if d(st.booleans()):
                return func, (), "int"
            return func, (self.g.value(d(st.sampled_from(["int", "text", "bool"])), 1),), "int"
        if func in ("SUM", "AVG"):
            typ = d(st.sampled_from(["int", "float"]))
            arg = self.g.exact_value(typ, d(st.integers(0, 1)))
            return func, (arg,), ("float" if func == "AVG" else arg.typ)
        typ = d(st.sampled_from(["int", "float", "text"]))
        return func, (self.g.value(typ, d(st.integers(0, 1))),), typ

    def call(self) -> Win:
        d = self.draw
        kinds = ["rank", "agg_partition", "agg_default", "agg_range"]
        if self.tiebreak is not None:
            kinds += ["row_number", "row_number", "lag", "value", "agg_rows", "agg_rows"]
        kind = d(st.sampled_from(kinds))
        part = self._partition()
        if kind == "rank":
            func = d(st.sampled_from(["RANK", "DENSE_RANK"]))
            keys = self._keys(1, 2) or self._numeric_key()
            return Win("int", func, (), part, keys)
        if kind == "row_number":
            return Win("int", "ROW_NUMBER", (), part, self._total(self._keys(0, 2)))
        if kind == "lag":
            typ = d(st.sampled_from(["int", "float", "text"]))
            args: tuple[Node, ...] = (self.g.value(typ, d(st.integers(0, 1))),)
            if d(st.booleans()):
                args += (Lit("int", d(st.integers(1, 2))),)
                if d(st.booleans()):
                    args += (self.g.literal(typ),)
            func = d(st.sampled_from(["LAG", "LEAD"]))
            return Win(typ, func, args, part, self._total(self._keys(0, 1)))
        if kind == "value":
            typ = d(st.sampled_from(["int", "float", "text"]))
            func = d(st.sampled_from(["FIRST_VALUE", "LAST_VALUE"]))
            return Win(
                typ,
                func,
                (self.g.value(typ, d(st.integers(0, 1))),),
                part,
                self._total(self._keys(0, 1)),
                frame(d, "ROWS"),
            )
        func, args, typ = self._aggregate()
        if kind == "agg_partition":
            return Win(typ, func, args, part)
        if kind == "agg_rows":
            return Win(typ, func, args, part, self._total(self._keys(0, 1)), frame(d, "ROWS"))
        keys = self._numeric_key()
        return Win(typ, func, args, part, keys, frame(d, "RANGE") if kind == "agg_range" else "")

    def calls(self) -> list[Node]:
        """One to three window calls, sometimes inside an expression."""
        d = self.draw
        out: list[Node] = []
        for _ in range(d(st.integers(1, 3))):
            w = self.call()
            if gaps.AVOID_REPEATED_WINDOW_CALL and any(w in _windows_in(o) for o in out):
                continue
            if w.typ == "int" and d(st.integers(0, 5)) == 5:
                out.append(Op("int", d(st.sampled_from("+-*")), w, self.g.value("int", 0)))
            elif d(st.integers(0, 7)) == 7:
                out.append(Fn(w.typ, "COALESCE", (w, self.g.literal(w.typ))))
            else:
                out.append(w)
        return out


def tiebreak_of(rels: list[Rel]) -> list[Node] | None:
    """Columns that tell the rows of a FROM clause apart: every relation's unique key."""
    out: list[Node] = []
    for r in rels:
        if r.unique is None:
            return None
        out += [RCol(r.columns[u], u, r.alias + ".", r.alias) for u in r.unique]
    return out


def row_windows(draw: Any, rels: list[Rel]):
    tiebreak = tiebreak_of(rels)

    def make(g: Gen, keys: list[Node]) -> list[Node]:
        return WindowMaker(draw, g, tiebreak).calls()

    return make


def group_windows(draw: Any):
    def make(g: Gen, keys: list[Node]) -> list[Node]:
        return WindowMaker(draw, g, list(keys)).calls()

    return make


@st.composite
def window_queries(draw: Any) -> Select:
    """Window calls over a table or a join, or over the groups of a grouped query."""
    ctx = Ctx()
    n = draw(st.sampled_from([1, 1, 1, 2]))
    if n == 1:
        rels, joins, conds = [ctx.rel(draw, "w", tables_only=True)], [], None
    else:
        rels, joins, conds = from_clause(draw, ctx, n, "w")
    scope = RelScope(rels, bare=n == 1)
    where = join_scope(rels, bare=n == 1)
    if draw(st.integers(0, 3)) == 3:
        q = grouped(draw, rels, joins, row=scope, where_scope=where, windows=group_windows(draw))
    else:
        q = projection(
            draw, rels, joins, scope=scope, where_scope=where, windows=row_windows(draw, rels)
        )
    q.where = conjoin(conds, q.where)
    return q
