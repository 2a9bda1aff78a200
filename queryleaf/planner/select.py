"""SELECT → one aggregation pipeline (the last step, lowering.py, makes a find of it when
nothing needs a pipeline).

Stages follow SQL's logical order: FROM (from_clause.py: the sources' stages, $lookup/$unwind
for joins), WHERE ($match), GROUP BY and aggregates ($group), HAVING ($match), window functions
($setWindowFields), SELECT ($project), DISTINCT ($group), ORDER BY ($sort), OFFSET/LIMIT.
Subqueries become $lookup stages placed just before the stage that needs their value. What the
SELECT is made of is computed first, once (block.py); this module only emits stages.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from queryleaf import plan
from queryleaf.errors import PlanningError
from queryleaf.planner.aggregates import accumulate
from queryleaf.planner.block import Output, QueryBlock, query_block
from queryleaf.planner.constants import NotConstant, literal_value
from queryleaf.planner.context import Context
from queryleaf.planner.emitter import Emitter
from queryleaf.planner.expressions import (
    AGGREGATES,
    ExprCompiler,
    is_field_path,
    is_null_expr,
    may_be_missing,
)
from queryleaf.planner.filters import FilterCompiler
from queryleaf.planner.from_clause import FromPlanner
from queryleaf.planner.lowering import lower_to_find
from queryleaf.planner.params import Bindings
from queryleaf.planner.result_types import declared_type
from queryleaf.planner.rewrite import normalize
from queryleaf.planner.scope import Scope, field_path, merge_lets
from queryleaf.planner.subqueries import subquery_lookup
from queryleaf.planner.windows import plan_windows
from queryleaf.sql import ast
from queryleaf.sql.walk import walk_expr


class SelectPlanner:
    def __init__(self, select: ast.Select, ctx: Context, outer: Scope | None = None):
        self.select = select
        self.ctx = ctx
        self.bindings = ctx.bindings
        self.outer = outer
        self.out = Emitter()
        self.scope = Scope()
        self._sort: dict[str, int] = {}
        self._null_flags: dict[str, Any] = {}
        self.has_windows = False
        self.block: QueryBlock  # computed first in build()

    def emit(self, stage: dict[str, Any]) -> None:
        self.out.emit(stage)

    def compiler(self, scope: Scope, **kw: Any) -> ExprCompiler:
        return ExprCompiler(scope, self.bindings, subquery=self.subquery, **kw)

    @property
    def lets(self) -> dict[str, Any]:
        """The outer query's variables this SELECT reads (its $lookup binds them)."""
        lets = dict(self.out.lets)
        merge_lets(lets, self.scope.lets)
        return lets

    # ------------------------------------------------------------ entry
    def build(self) -> plan.Aggregate:
        s = self.select
        self.block = block = query_block(s, self.ctx, self.outer)
        merge_lets(self.out.lets, block.lets)
        self.scope, collection, where_rest = FromPlanner(
            block, self.ctx, self.outer, self.out, self.compiler
        ).build()
        exprs = self.compiler(self.scope)
        if where_rest is not None:
            self.emit({"$match": FilterCompiler(exprs).match(where_rest)})

        outputs = list(block.outputs)
        stars = block.stars
        grouped = block.grouped
        if grouped:
            exprs = self.group(exprs, list(block.aggregates), outputs)
            if s.having is not None:
                having = exprs.truth(s.having)
                self.emit({"$match": {"$expr": having}})
        exprs = self.windows(exprs)

        presort = None
        if not grouped and not s.distinct and not self.has_windows:
            presort = self.source_sort(exprs, outputs)
            if presort is None and not s.order_by:
                presort = {}  # no ORDER BY: OFFSET/LIMIT can go before the projection
        if presort is not None:
            if presort:
                self.emit({"$sort": presort})
            self.add_window()

        columns: tuple[plan.OutputColumn, ...] | None
        if stars:
            if len(block.steps) > 1 or block.steps[0].relation.table.columns is not None:
                columns = self.table_star_projection(exprs, outputs, sorting=presort is None)
            else:
                columns = self.star_projection(exprs, outputs, sorting=presort is None)
            if s.distinct:
                self.emit({"$group": {"_id": "$$ROOT"}})
                self.emit({"$replaceRoot": {"newRoot": "$_id"}})
        else:
            columns = self.projection(exprs, outputs, sorting=presort is None)
            if s.distinct:
                keys = {c.key: f"${c.key}" for c in columns}
                self.emit({"$group": {"_id": keys}})
                self.emit({"$replaceRoot": {"newRoot": "$_id"}})
        if presort is None:
            self.sort_after_projection()
            self.add_window()
        return plan.Aggregate(collection, self.out.finish(), columns)

    # ------------------------------------------------------------ subqueries
    def subquery(self, e: ast.Expr, compiler: ExprCompiler) -> Any:
        """Compile a subquery: its $lookup waits in ``pending`` for the stage that needs it."""
        stage, value, field_name = subquery_lookup(e, compiler, self.ctx)
        self.out.pending.append(stage)
        self.out.temp_fields.append(field_name)
        return value

    def projection(
        self, exprs: ExprCompiler, outputs: list[Output], sorting: bool
    ) -> tuple[plan.OutputColumn, ...]:
        proj: dict[str, Any] = {"_id": 0}
        for out in outputs:
            proj[out.key] = {"$ifNull": [exprs.compile(out.item.expr), None]}
        if sorting:
            proj.update(self.hidden_sort_keys(exprs, outputs))
        self.emit({"$project": proj})
        return tuple(
            plan.OutputColumn(o.name, o.key, type=declared_type(o.item.expr)) for o in outputs
        )

    def table_star_projection(
        self, exprs: ExprCompiler, outputs: list[Output], sorting: bool
    ) -> tuple[plan.OutputColumn, ...]:
        """``*`` / ``t.*`` over joins or derived tables: each table's columns in FROM order
        (a derived table's by name, a collection's as its whole document, spread into columns
        when the rows are read), the other items where they stand."""
        proj: dict[str, Any] = {"_id": 0}
        columns: list[plan.OutputColumn] = []
        by_item = {id(o.item): o for o in outputs}
        for item in self.select.items:
            if not isinstance(item.expr, ast.Star):
                out = by_item[id(item)]
                proj[out.key] = {"$ifNull": [exprs.compile(item.expr), None]}
                columns.append(plan.OutputColumn(out.name, out.key, type=declared_type(item.expr)))
                continue
            tables = self.scope.tables
            if item.expr.table is not None:
                tables = [t for t in tables if t.alias == item.expr.table]
                if not tables:
                    raise PlanningError(
                        f"{item.expr.table}.*: no table {item.expr.table} in "
                        f"FROM (tables: {', '.join(self.scope.aliases())})",
                        item.pos,
                    )
            for table in tables:
                source = ".".join(table.prefix)
                if table.columns is not None:
                    for name, key in table.columns.items():
                        slot = f"_p{len(proj)}"
                        proj[slot] = {"$ifNull": [f"${source + '.' if source else ''}{key}", None]}
                        columns.append(plan.OutputColumn(name, slot))
                else:
                    slot = f"_p{len(proj)}"
                    proj[slot] = f"${source}" if source else "$$ROOT"
                    columns.append(plan.OutputColumn(f"{table.alias}.*", slot, spread=True))
        if sorting:
            proj.update(self.hidden_sort_keys(exprs, outputs))
        self.emit({"$project": proj})
        used: set[str] = set()
        for i, c in enumerate(columns):  # a spread column's names are known when rows are read
            if not c.spread:
                columns[i] = dataclasses.replace(c, name=plan.unique_name(c.name, used))
                used.add(columns[i].name)
        return tuple(columns)

    def star_projection(
        self,
        exprs: ExprCompiler,
        outputs: list[Output],
        sorting: bool,
    ) -> tuple[plan.OutputColumn, ...] | None:
        extra = {o.key: {"$ifNull": [exprs.compile(o.item.expr), None]} for o in outputs}
        if sorting and self.select.order_by:
            extra.update(self.hidden_sort_keys(exprs, outputs))
        if extra:
            self.emit({"$addFields": extra})
        hide = list(self.out.temp_fields)
        steps = self.block.steps
        if len(steps) == 1 and steps[0].relation.system:
            hide.append("_id")
        if hide:
            self.emit({"$project": {k: 0 for k in hide}})
        return None

    # ------------------------------------------------------------ GROUP BY
    def group(
        self, exprs: ExprCompiler, aggregates: list[ast.FuncCall], outputs: list[Output]
    ) -> ExprCompiler:
        keys = list(self.select.group_by)
        substitutions: dict[Any, Any] = {}
        group_id: Any = None
        for k in keys:
            for node in walk_expr(k):
                if isinstance(node, ast.FuncCall) and node.name in AGGREGATES:
                    raise PlanningError("GROUP BY cannot refer to an aggregate", k.pos)
        # $group puts null and missing in one group for a key that is one value, and an array
        # holds a missing value as null: no $ifNull per key and row is needed.
        if len(keys) == 1:
            group_id = exprs.compile(keys[0])
            if may_be_missing(group_id) and not is_field_path(group_id):
                # An expression that yields missing ($getField of a quoted name) is a group
                # apart from null on SecantusDB; SQL has one NULL.
                group_id = {"$ifNull": [group_id, None]}
            substitutions[exprs.key(keys[0])] = "$_id"
        elif keys:
            group_id = [exprs.compile(k) for k in keys]
            for i, k in enumerate(keys):
                substitutions[exprs.key(k)] = {"$arrayElemAt": ["$_id", i]}
        stage: dict[str, Any] = {"_id": group_id}
        empty: dict[str, Any] = {"_id": None}
        for i, call in enumerate(aggregates):
            acc = accumulate(call, exprs, f"a{i}")
            stage.update(acc.accumulators)
            empty.update(acc.empty)
            substitutions[exprs.key(call)] = acc.result
        if keys:
            self.emit({"$group": stage})
        else:
            # Aggregates without GROUP BY return one row even over no input rows.
            self.emit({"$facet": {"g": [{"$group": stage}]}})
            self.emit(
                {
                    "$replaceRoot": {
                        "newRoot": {"$ifNull": [{"$arrayElemAt": ["$g", 0]}, {"$literal": empty}]}
                    }
                }
            )
        return self.compiler(exprs.scope, substitutions=substitutions, grouped=True)

    # ------------------------------------------------------------ windows

    def windows(self, exprs: ExprCompiler) -> ExprCompiler:
        calls = list(self.block.window_calls)
        if not calls:
            return exprs
        self.has_windows = True
        stages, substitutions, hidden = plan_windows(calls, exprs, self.ctx.fresh)
        self.out.temp_fields.extend(hidden)
        for stage in stages:
            self.emit(stage)
        merged = {**exprs.substitutions, **substitutions}
        return self.compiler(exprs.scope, substitutions=merged, grouped=exprs.grouped)

    # ------------------------------------------------------------ ORDER BY / LIMIT
    def source_sort(self, exprs: ExprCompiler, outputs: list[Output]) -> dict[str, int] | None:
        """$sort on stored fields before projecting (index-usable), when ORDER BY allows it."""
        targets = self.block.order_targets
        if not targets:
            return None
        spec: dict[str, int] = {}
        for item, expr in targets:
            if (
                not isinstance(expr, ast.Column)
                or item.nulls_first is not None
                and (item.nulls_first == item.descending)
            ):
                return None
            resolved = exprs.scope.resolve(expr)
            path = field_path(resolved.path)
            if resolved.variable is not None or path is None:
                return None
            spec.setdefault(path, -1 if item.descending else 1)
        return spec

    def hidden_sort_keys(self, exprs: ExprCompiler, outputs: list[Output]) -> dict[str, Any]:
        hidden: dict[str, Any] = {}
        by_expr = {exprs.key(o.item.expr): o.key for o in outputs}
        for i, (item, expr) in enumerate(self.block.order_targets):
            key = by_expr.get(exprs.key(expr))
            value: Any = f"${key}" if key else None
            if key is None:
                if self.select.distinct:
                    raise PlanningError(
                        "with SELECT DISTINCT, ORDER BY expressions must appear in the select list",
                        item.pos,
                    )
                value = exprs.compile(expr)
                key = f"__o{i}"
                hidden[key] = value
            if key in self._sort:
                continue  # ORDER BY a DESC, a: the repeat changes nothing
            # BSON order puts NULL first ascending and last descending; say otherwise explicitly
            # with a flag computed after the projection (and DISTINCT), from the sort key.
            if item.nulls_first is not None and item.nulls_first == item.descending:
                self._null_flags[f"__n{i}"] = is_null_expr(f"${key}")
                self._sort[f"__n{i}"] = -1 if item.nulls_first else 1
            self._sort[key] = -1 if item.descending else 1
        return hidden

    def sort_after_projection(self) -> None:
        if not self._sort:
            return
        if self._null_flags:
            self.emit({"$set": self._null_flags})
        self.emit({"$sort": self._sort})
        hidden = [k for k in self._sort if k.startswith("__")]
        if hidden:
            self.emit({"$project": {k: 0 for k in hidden}})

    def add_window(self) -> None:
        skip, limit = self.limits()
        if skip:
            self.emit({"$skip": skip})
        if limit is not None:
            self.emit({"$limit": limit} if limit else {"$match": {"$expr": False}})

    def limits(self) -> tuple[int, int | None]:
        s = self.select
        return (
            count_value(s.offset, "OFFSET", self.bindings) if s.offset is not None else 0,
            count_value(s.limit, "LIMIT", self.bindings) if s.limit is not None else None,
        )


def count_value(e: ast.Expr, clause: str, bindings: Bindings) -> int:
    try:
        value = literal_value(e, bindings)
    except NotConstant:
        value = None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise PlanningError(f"{clause} must be a non-negative integer constant", e.pos)
    return value


def plan_with_lets(
    query: ast.Query,
    ctx: Context,
    outer: Scope | None = None,
) -> tuple[plan.Aggregate | plan.Find, dict[str, Any]]:
    """Plan a query; also return the variables it reads from ``outer`` (correlation)."""
    ctx = ctx.with_ctes(query.ctes)
    if isinstance(query, ast.SetOperation):
        from queryleaf.planner.setops import plan_set_operation

        return plan_set_operation(query, ctx, outer)
    assert isinstance(query, ast.Select)
    planner = SelectPlanner(normalize(query), ctx, outer)
    result = planner.build()
    return result, planner.lets


def plan_query(
    query: ast.Query, ctx: Context, outer: Scope | None = None
) -> plan.Aggregate | plan.Find:
    return plan_with_lets(query, ctx, outer)[0]


def plan_select_statement(
    query: ast.Query, bindings: Bindings, tables: frozenset[str] | None = None
) -> plan.Aggregate | plan.Find:
    planned = plan_query(query, Context(bindings, tables=tables))
    return lower_to_find(planned) if isinstance(planned, plan.Aggregate) else planned
