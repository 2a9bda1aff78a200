"""A query block: what one SELECT is made of, computed once before any stage is emitted.

The stage emitters (select.py, from_clause.py) read the block instead of walking the AST again:
its FROM items as typed steps over their sources' relations, its output columns with their
names, its aggregates, window calls and ORDER BY targets, and the columns it reads per table.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any

from queryleaf import plan
from queryleaf.errors import ErrorCode, PlanningError
from queryleaf.planner import sources
from queryleaf.planner.context import Context
from queryleaf.planner.expressions import AGGREGATES
from queryleaf.planner.rewrite import from_chain
from queryleaf.planner.scope import Scope, display_path, merge_lets
from queryleaf.planner.sources import Relation
from queryleaf.sql import ast
from queryleaf.sql.walk import walk, walk_expr

_SAFE_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Step:
    """One FROM item and how it joins the ones before it (``kind`` FROM, CROSS, INNER, LEFT)."""

    kind: str
    relation: Relation
    on: ast.Expr | None
    node: ast.Node


@dataclass
class References:
    """The columns a query reads: ``single`` unqualified names, ``qualified`` the names read
    under each first part (None for an array index), ``stars`` the tables of ``*`` / ``t.*``
    (None for a bare ``*``)."""

    single: set[str] = field(default_factory=set)
    qualified: dict[str, set[str | None]] = field(default_factory=dict)
    stars: set[str | None] = field(default_factory=set)

    def columns_of(self, alias: str) -> set[str] | None:
        """The top-level columns of table ``alias`` the query may read (None: all, for ``*``
        or an array index). Conservative: unqualified names count, and so do subqueries'."""
        if self.stars:
            return None
        own = self.qualified.get(alias, set())
        if None in own:
            return None
        columns = set(self.single)
        columns.update(head for head in self.qualified if head != alias)
        columns.update(name for name in own if name is not None)
        return columns


@dataclass(frozen=True)
class Output:
    """A select-list item (not ``*``): its result column name and its key in the output row."""

    item: ast.SelectItem
    name: str
    key: str


@dataclass(frozen=True)
class QueryBlock:
    select: ast.Select
    steps: tuple[Step, ...]
    outputs: tuple[Output, ...]
    stars: tuple[ast.SelectItem, ...]
    aggregates: tuple[ast.FuncCall, ...]
    window_calls: tuple[ast.FuncCall, ...]
    references: References
    # Outer-query variables that derived tables in FROM read (their $lookup's let).
    lets: dict[str, Any]

    @property
    def grouped(self) -> bool:
        s = self.select
        return bool(s.group_by or self.aggregates or s.having is not None)

    @property
    def order_targets(self) -> list[tuple[ast.OrderItem, ast.Expr]]:
        return [(o, o.expr) for o in self.select.order_by]

    @property
    def aliases(self) -> set[str]:
        return {step.relation.table.alias for step in self.steps}


def query_block(select: ast.Select, ctx: Context, outer: Scope | None) -> QueryBlock:
    refs = _references(select)
    aggregates = _aggregates(select)
    lets: dict[str, Any] = {}
    steps = _steps(select, ctx, outer, refs, lets)
    stars = tuple(i for i in select.items if isinstance(i.expr, ast.Star))
    block = QueryBlock(
        select,
        steps,
        _outputs(select, {s.relation.table.alias for s in steps}),
        stars,
        aggregates,
        _window_calls(select),
        refs,
        lets,
    )
    if stars and block.grouped:
        raise PlanningError("* cannot be combined with GROUP BY or aggregates", stars[0].pos)
    return block


# ---------------------------------------------------------------- FROM


def _steps(
    select: ast.Select, ctx: Context, outer: Scope | None, refs: References, lets: dict[str, Any]
) -> tuple[Step, ...]:
    """The FROM clause as a left-deep list of steps."""
    if not select.from_:
        return ()
    items = from_chain(select)
    for kind, _, _, node in items:
        if kind == "RIGHT":
            raise PlanningError(
                "RIGHT JOIN after other joins cannot be expressed as one "
                "MongoDB pipeline; rewrite it as a LEFT JOIN",
                node.pos,
            )
        if kind == "FULL":
            raise PlanningError(
                "FULL OUTER JOIN cannot be expressed as one MongoDB "
                "pipeline ($lookup joins from one side)",
                node.pos,
            )
    out: list[Step] = []
    aliases: set[str] = set()
    for kind, item, on, node in items:
        source, alias = _source(item, ctx, outer, lets)
        rel = source.relation(alias, refs.columns_of(alias))
        if alias in aliases:
            raise PlanningError(
                f"table name {alias} is used twice in FROM; give one an alias", item.pos
            )
        aliases.add(alias)
        out.append(Step(kind, rel, on, node))
    return tuple(out)


def _source(
    item: ast.FromItem, ctx: Context, outer: Scope | None, lets: dict[str, Any]
) -> tuple[sources.Source, str]:
    """The source a FROM item names, and the alias its columns go by."""
    if isinstance(item, ast.TableRef):
        alias = item.alias or item.name
        if item.name in ctx.ctes:
            return sources.QueryResult(ctx.cte_plan(item.name), ctx.ctes[item.name].pos), alias
        hint = sources.reserved(item.name)
        if hint is not None:
            raise PlanningError(f"{item.name} is a queryleaf system collection; {hint}", item.pos)
        _check_exists(item, ctx)
        return sources.Collection(item.name), alias
    if isinstance(item, ast.TableFunction):
        function = sources.table_function(item.name)
        if function is None:
            known = ", ".join(f"{n}()" for n in sources.table_function_names())
            raise PlanningError(
                f"unknown table function {item.name}(); known: {known}",
                item.pos,
                error_code=ErrorCode.UNKNOWN_TABLE,
            )
        return function.bind(item), item.alias or item.name.lower()
    if isinstance(item, ast.DerivedTable):
        from queryleaf.planner.select import plan_with_lets  # a derived table is a query

        # A derived table inside a subquery may read the enclosing query's columns (they
        # are variables of the subquery's $lookup, visible in every stage below it).
        planned, read = plan_with_lets(item.query, ctx, outer=outer)
        merge_lets(lets, read)
        return sources.QueryResult(planned, item.query.pos), item.alias
    raise PlanningError("unsupported FROM item", item.pos)


def _check_exists(item: ast.TableRef, ctx: Context) -> None:
    """Reading a table that does not exist is an error (SQL), not an empty result."""
    tables = ctx.tables
    if tables is None or item.name in tables:
        return
    known = sorted(t for t in tables if sources.reserved(t) is None) + sorted(ctx.ctes)
    near = difflib.get_close_matches(item.name, known, n=3)
    hint = f"; did you mean {', '.join(near)}?" if near else ""
    raise PlanningError(
        f"unknown table {item.name}: no collection, view or WITH query of that name{hint}",
        item.pos,
        error_code=ErrorCode.UNKNOWN_TABLE,
    )


# ---------------------------------------------------------------- what the query reads


def _count_stars(select: ast.Select) -> set[int]:
    """The ``*`` of ``COUNT(*)`` (ids of the nodes): they read no column."""
    return {
        id(arg)
        for node in walk(select)
        if isinstance(node, ast.FuncCall)
        for arg in node.args
        if isinstance(arg, ast.Star)
    }


def _references(select: ast.Select) -> References:
    """The columns and ``*`` the query reads (its subqueries included), in one walk."""
    refs = References()
    counted = _count_stars(select)
    for node in walk(select):
        if isinstance(node, ast.Star) and id(node) not in counted:
            refs.stars.add(node.table)
        elif isinstance(node, ast.Column) and isinstance(node.parts[0], str):
            if len(node.parts) == 1:
                refs.single.add(node.parts[0])
            else:
                second = node.parts[1]
                refs.qualified.setdefault(node.parts[0], set()).add(
                    second if isinstance(second, str) else None
                )
    return refs


def _aggregates(select: ast.Select) -> tuple[ast.FuncCall, ...]:
    roots: list[ast.Expr] = [i.expr for i in select.items]
    if select.having is not None:
        roots.append(select.having)
    roots.extend(o.expr for o in select.order_by)
    found: list[ast.FuncCall] = []
    for root in roots:
        for node in walk_expr(root):
            if isinstance(node, ast.FuncCall) and node.name in AGGREGATES and node.over is None:
                if node not in found:
                    found.append(node)
    return tuple(found)


def _window_calls(select: ast.Select) -> tuple[ast.FuncCall, ...]:
    calls: list[ast.FuncCall] = []
    roots = [i.expr for i in select.items] + [o.expr for o in select.order_by]
    for root in roots:
        for node in walk_expr(root):
            if isinstance(node, ast.FuncCall) and node.over is not None and node not in calls:
                calls.append(node)
    return tuple(calls)


# ---------------------------------------------------------------- SELECT list


def _outputs(select: ast.Select, aliases: set[str]) -> tuple[Output, ...]:
    outs: list[Output] = []
    used: set[str] = set()
    for i, item in enumerate(select.items):
        if isinstance(item.expr, ast.Star):
            continue
        unique = plan.unique_name(item.alias or _default_name(item.expr, aliases), used)
        used.add(unique)
        key = unique if _SAFE_KEY.match(unique) and not unique.startswith("__") else f"_{i}"
        outs.append(Output(item, unique, key))
    return tuple(outs)


def _default_name(e: ast.Expr, aliases: set[str]) -> str:
    if isinstance(e, ast.Column):
        parts = e.parts
        if len(parts) > 1 and isinstance(parts[0], str) and parts[0] in aliases:
            parts = parts[1:]
        return display_path(parts)
    from queryleaf.sql.printer import expr_name

    return expr_name(e)
