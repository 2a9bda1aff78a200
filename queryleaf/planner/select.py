"""SELECT → one aggregation pipeline (or a find when nothing needs a pipeline).

Stages follow SQL's logical order: FROM, WHERE ($match), GROUP BY + aggregates ($group),
HAVING ($match), SELECT ($project), DISTINCT ($group), ORDER BY ($sort), OFFSET/LIMIT.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from queryleaf import plan
from queryleaf.errors import PlanningError
from queryleaf.events import names
from queryleaf.planner.aggregates import accumulate
from queryleaf.planner.expressions import (
    AGGREGATES,
    ExprCompiler,
    Scope,
    display_path,
    dotted,
    is_null_expr,
)
from queryleaf.planner.filters import FilterCompiler
from queryleaf.planner.params import Bindings
from queryleaf.sql import ast
from queryleaf.sql.walk import walk_expr

_SAFE_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass
class Source:
    collection: str | None  # None: no FROM (one empty row)
    scope: Scope
    table_function: bool = False


@dataclass
class Output:
    item: ast.SelectItem
    name: str
    key: str


@dataclass
class SelectPlanner:
    select: ast.Select
    bindings: Bindings
    pipeline: list[dict[str, Any]] = field(default_factory=list)

    # ------------------------------------------------------------ entry
    def plan(self) -> plan.Aggregate | plan.Find:
        s = self.select
        if s.ctes:
            raise PlanningError("WITH (common table expressions) is not supported yet",
                                s.ctes[0].pos)
        source = self.source()
        exprs = ExprCompiler(source.scope, self.bindings)
        aggregates = self.aggregates()
        where = FilterCompiler(exprs).match(s.where) if s.where is not None else {}

        stars = [i for i in s.items if isinstance(i.expr, ast.Star)]
        grouped = bool(s.group_by or aggregates or s.having is not None)
        if stars and (grouped or s.distinct and len(s.items) > 1):
            raise PlanningError("* cannot be combined with GROUP BY or aggregates", stars[0].pos)

        if not grouped and not s.distinct:
            find = self.as_find(source, exprs, where)
            if find is not None:
                return find

        if source.collection is None:
            self.pipeline.append({"$documents": [{}]})
        if where:
            self.pipeline.append({"$match": where})

        outputs = self.outputs(source)
        if grouped:
            exprs = self.group(exprs, aggregates, outputs)
            if s.having is not None:
                self.pipeline.append({"$match": {"$expr": exprs.truth(s.having)}})

        presort = None if grouped or s.distinct else self.source_sort(exprs, outputs)
        if presort:
            self.pipeline.append({"$sort": presort})
            self.add_window()

        if stars:
            columns = self.star_projection(source, exprs, outputs)
        else:
            columns = self.projection(exprs, outputs, sorting=presort is None)
            if s.distinct:
                keys = {c.key: f"${c.key}" for c in columns}
                self.pipeline.append({"$group": {"_id": keys}})
                self.pipeline.append({"$replaceRoot": {"newRoot": "$_id"}})
        if presort is None:
            self.sort_after_projection(outputs)
            self.add_window()
        return plan.Aggregate(source.collection, self.pipeline, columns)

    # ------------------------------------------------------------ FROM
    def source(self) -> Source:
        s = self.select
        if not s.from_:
            return Source(None, Scope((), allow_columns=False))
        if len(s.from_) > 1:
            raise PlanningError("several tables in FROM (implicit join) are not supported yet",
                                s.from_[1].pos)
        item = s.from_[0]
        if isinstance(item, ast.TableRef):
            if names.is_reserved(item.name):
                raise PlanningError(f"{item.name} is a queryleaf system collection; read it "
                                    "through its table function (e.g. CHANGE_STREAM_EVENTS())",
                                    item.pos)
            quals = (item.alias,) if item.alias else (item.name,)
            return Source(item.name, Scope(quals))
        if isinstance(item, ast.TableFunction):
            collection = names.TABLE_FUNCTIONS.get(item.name)
            if collection is None:
                known = ", ".join(f"{n}()" for n in names.TABLE_FUNCTIONS)
                raise PlanningError(f"unknown table function {item.name}(); known: {known}",
                                    item.pos)
            if item.args:
                raise PlanningError(f"{item.name}() takes no arguments", item.args[0].pos)
            quals = (item.alias,) if item.alias else ()
            return Source(collection, Scope(quals), table_function=True)
        if isinstance(item, ast.Join):
            raise PlanningError(f"{item.kind} JOIN is not supported yet", item.pos)
        raise PlanningError("subqueries in FROM are not supported yet", item.pos)

    # ------------------------------------------------------------ SELECT list
    def outputs(self, source: Source) -> list[Output]:
        outs: list[Output] = []
        used: set[str] = set()
        for i, item in enumerate(self.select.items):
            if isinstance(item.expr, ast.Star):
                continue
            name = item.alias or default_name(item.expr, source.scope)
            unique, n = name, 2
            while unique in used:
                unique, n = f"{name}_{n}", n + 1
            used.add(unique)
            key = unique if _SAFE_KEY.match(unique) else f"_{i}"
            outs.append(Output(item, unique, key))
        return outs

    def projection(self, exprs: ExprCompiler, outputs: list[Output],
                   sorting: bool) -> tuple[plan.OutputColumn, ...]:
        proj: dict[str, Any] = {"_id": 0}
        for out in outputs:
            proj[out.key] = {"$ifNull": [exprs.compile(out.item.expr), None]}
        if sorting:
            proj.update(self.hidden_sort_keys(exprs, outputs))
        self.pipeline.append({"$project": proj})
        return tuple(plan.OutputColumn(o.name, o.key) for o in outputs)

    def star_projection(self, source: Source, exprs: ExprCompiler,
                        outputs: list[Output]) -> None:
        extra = {o.key: {"$ifNull": [exprs.compile(o.item.expr), None]} for o in outputs}
        if self.select.order_by and not any(st.get("$sort") for st in self.pipeline):
            extra.update(self.hidden_sort_keys(exprs, outputs))
        if extra:
            self.pipeline.append({"$addFields": extra})
        if source.table_function:
            self.pipeline.append({"$project": {"_id": 0}})
        return None

    # ------------------------------------------------------------ GROUP BY
    def aggregates(self) -> list[ast.FuncCall]:
        s = self.select
        roots: list[ast.Expr] = [i.expr for i in s.items]
        if s.having is not None:
            roots.append(s.having)
        roots.extend(o.expr for o in s.order_by)
        found: list[ast.FuncCall] = []
        for root in roots:
            for node in walk_expr(root):
                if isinstance(node, ast.FuncCall) and node.name in AGGREGATES and node.over is None:
                    if node not in found:
                        found.append(node)
        for e in [*(g for g in s.group_by), *( [s.where] if s.where is not None else [])]:
            for node in walk_expr(e):
                if isinstance(node, ast.FuncCall) and node.name in AGGREGATES:
                    where = "GROUP BY" if e is not s.where else "WHERE"
                    raise PlanningError(f"aggregate {node.name}(...) is not allowed in {where}"
                                        + (" (use HAVING)" if where == "WHERE" else ""), node.pos)
        return found

    def group_keys(self, outputs: list[Output]) -> list[ast.Expr]:
        keys = []
        for g in self.select.group_by:
            keys.append(self.resolve_reference(g, outputs, "GROUP BY") or g)
        return keys

    def group(self, exprs: ExprCompiler, aggregates: list[ast.FuncCall],
              outputs: list[Output]) -> ExprCompiler:
        keys = self.group_keys(outputs)
        substitutions: dict[Any, Any] = {}
        group_id: Any = None
        if keys:
            group_id = {}
            for i, k in enumerate(keys):
                for node in walk_expr(k):
                    if isinstance(node, ast.FuncCall) and node.name in AGGREGATES:
                        raise PlanningError("GROUP BY cannot refer to an aggregate", k.pos)
                group_id[f"k{i}"] = {"$ifNull": [exprs.compile(k), None]}
                substitutions[exprs.key(k)] = f"$_id.k{i}"
        stage: dict[str, Any] = {"_id": group_id}
        empty: dict[str, Any] = {"_id": None}
        for i, call in enumerate(aggregates):
            acc = accumulate(call, exprs, f"a{i}")
            stage.update(acc.accumulators)
            empty.update(acc.empty)
            substitutions[exprs.key(call)] = acc.result
        if keys:
            self.pipeline.append({"$group": stage})
        else:
            # Aggregates without GROUP BY return one row even over no input rows.
            self.pipeline.append({"$facet": {"g": [{"$group": stage}]}})
            self.pipeline.append({"$replaceRoot": {"newRoot": {
                "$ifNull": [{"$arrayElemAt": ["$g", 0]}, {"$literal": empty}]}}})
        return ExprCompiler(exprs.scope, self.bindings, substitutions, grouped=True)

    # ------------------------------------------------------------ ORDER BY / LIMIT
    def resolve_reference(self, e: ast.Expr, outputs: list[Output], clause: str) -> ast.Expr | None:
        """An ordinal (``2``) or a select-list alias used in GROUP BY / ORDER BY."""
        if isinstance(e, ast.Literal) and isinstance(e.value, int) and not isinstance(e.value, bool):
            items = self.select.items
            if not 1 <= e.value <= len(items) or isinstance(items[e.value - 1].expr, ast.Star):
                raise PlanningError(f"{clause} position {e.value} is not in the select list "
                                    f"(1..{len(items)})", e.pos)
            return items[e.value - 1].expr
        if isinstance(e, ast.Column) and len(e.parts) == 1:
            for o in outputs:
                if o.item.alias == e.parts[0]:
                    return o.item.expr
        return None

    def order_targets(self, outputs: list[Output]) -> list[tuple[ast.OrderItem, ast.Expr]]:
        return [(o, self.resolve_reference(o.expr, outputs, "ORDER BY") or o.expr)
                for o in self.select.order_by]

    def source_sort(self, exprs: ExprCompiler, outputs: list[Output]) -> dict[str, int] | None:
        """$sort on stored fields before projecting (index-usable), when ORDER BY allows it."""
        targets = self.order_targets(outputs)
        if not targets:
            return None
        spec: dict[str, int] = {}
        for item, expr in targets:
            if not isinstance(expr, ast.Column) or item.nulls_first is not None and (
                    item.nulls_first == item.descending):
                return None
            spec[dotted(exprs.scope.path(expr))] = -1 if item.descending else 1
        return spec

    def hidden_sort_keys(self, exprs: ExprCompiler, outputs: list[Output]) -> dict[str, Any]:
        hidden: dict[str, Any] = {}
        self._sort: dict[str, int] = {}
        by_expr = {exprs.key(o.item.expr): o.key for o in outputs}
        for i, (item, expr) in enumerate(self.order_targets(outputs)):
            key = by_expr.get(exprs.key(expr))
            value = f"${key}" if key else None
            if key is None:
                if self.select.distinct:
                    raise PlanningError("with SELECT DISTINCT, ORDER BY expressions must appear "
                                        "in the select list", item.pos)
                value = exprs.compile(expr)
                key = f"__o{i}"
                hidden[key] = value
            direction = -1 if item.descending else 1
            # BSON order puts NULL first ascending and last descending; say otherwise explicitly.
            if item.nulls_first is not None and item.nulls_first == item.descending:
                hidden[f"__n{i}"] = is_null_expr(value)
                self._sort[f"__n{i}"] = -1 if item.nulls_first else 1
            self._sort[key] = direction
        return hidden

    def sort_after_projection(self, outputs: list[Output]) -> None:
        sort = getattr(self, "_sort", {})
        if not sort:
            return
        self.pipeline.append({"$sort": sort})
        hidden = [k for k in sort if k.startswith("__")]
        if hidden:
            self.pipeline.append({"$project": {k: 0 for k in hidden}})

    def add_window(self) -> None:
        skip, limit = self.limits()
        if skip:
            self.pipeline.append({"$skip": skip})
        if limit is not None:
            if limit == 0:
                self.pipeline.append({"$match": {"$expr": False}})
            else:
                self.pipeline.append({"$limit": limit})

    def limits(self) -> tuple[int, int | None]:
        s = self.select
        return (self.count(s.offset, "OFFSET") if s.offset is not None else 0,
                self.count(s.limit, "LIMIT") if s.limit is not None else None)

    def count(self, e: ast.Expr, clause: str) -> int:
        value = e.value if isinstance(e, ast.Literal) else (
            self.bindings.value(e) if isinstance(e, ast.Param) else None)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise PlanningError(f"{clause} must be a non-negative integer constant", e.pos)
        return value

    # ------------------------------------------------------------ find
    def as_find(self, source: Source, exprs: ExprCompiler,
                where: dict[str, Any]) -> plan.Find | None:
        """A find command when the query only filters, picks stored fields and sorts."""
        s = self.select
        if source.collection is None:
            return None
        star = len(s.items) == 1 and isinstance(s.items[0].expr, ast.Star)
        outputs = [] if star else self.outputs(source)
        if not star and not all(isinstance(o.item.expr, ast.Column) and
                                all(isinstance(p, str) for p in exprs.scope.path(o.item.expr))
                                for o in outputs):
            return None
        if any(isinstance(i.expr, ast.Star) for i in s.items) and not star:
            return None
        sort = self.source_sort(exprs, outputs) if s.order_by else {}
        if sort is None:
            return None
        skip, limit = self.limits()
        if limit == 0:
            return None
        if star:
            projection = {"_id": 0} if source.table_function else None
            columns = None
        else:
            paths = [dotted(exprs.scope.path(o.item.expr)) for o in outputs]
            projection = {"_id": 0, **{p: 1 for p in paths}}
            if "_id" in paths:
                projection["_id"] = 1
            for p in paths:  # a path and its parent cannot both be projected
                if any(q != p and q.startswith(p + ".") for q in paths):
                    return None
            columns = tuple(plan.OutputColumn(o.name, p) for o, p in zip(outputs, paths,
                                                                          strict=True))
        return plan.Find(source.collection, where, projection, list((sort or {}).items()),
                         skip, limit or 0, columns)


def default_name(e: ast.Expr, scope: Scope) -> str:
    if isinstance(e, ast.Column):
        return display_path(scope.path(e))
    from queryleaf.sql.printer import expr_name

    return expr_name(e)


def plan_select(select: ast.Select, bindings: Bindings) -> plan.Aggregate | plan.Find:
    return SelectPlanner(select, bindings).plan()


def plan_query(query: ast.Query, bindings: Bindings) -> plan.Aggregate | plan.Find:
    if isinstance(query, ast.SetOperation):
        raise PlanningError(f"{query.op} is not supported yet", query.pos)
    assert isinstance(query, ast.Select)
    return plan_select(query, bindings)
