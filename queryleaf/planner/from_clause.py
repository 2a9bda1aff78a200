"""FROM → the stages that produce a SELECT's rows: the sources' stages, the filters that can
run early, and a ``$lookup`` per join (``localField``/``foreignField`` where an index can serve
it, planner/joins.py; a pipeline ``$lookup`` otherwise).

With one table, rows are its documents. With joins, each table's fields are nested under its
alias (``{o: {...}, c: {...}}``) so that names never collide.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from queryleaf.errors import PlanningError
from queryleaf.planner import sources
from queryleaf.planner.block import QueryBlock
from queryleaf.planner.context import Context
from queryleaf.planner.emitter import Emitter
from queryleaf.planner.expressions import ExprCompiler, flatten
from queryleaf.planner.filters import FilterCompiler, and_filters
from queryleaf.planner.joins import find_equi_key, keyed_join
from queryleaf.planner.rewrite import tables_of
from queryleaf.planner.scope import Scope, Table, display_path, is_plain_field, merge_lets
from queryleaf.planner.sources import Relation
from queryleaf.planner.stored import document_conditions
from queryleaf.planner.subqueries import subquery_lookup
from queryleaf.sql import ast
from queryleaf.sql.walk import has_subquery, replace_columns

CompilerFactory = Callable[..., ExprCompiler]


class FromPlanner:
    def __init__(
        self,
        block: QueryBlock,
        ctx: Context,
        outer: Scope | None,
        out: Emitter,
        compiler: CompilerFactory,
    ):
        self.block = block
        self.ctx = ctx
        self.outer = outer
        self.out = out
        self.compiler = compiler

    def build(self) -> tuple[Scope, str, ast.Expr | None]:
        """Emit the FROM stages; returns the scope of the rows, the collection read and the
        part of WHERE still to apply."""
        where = self.block.select.where
        steps = self.block.steps
        if not steps:
            self.out.pipeline.extend(sources.ONE_ROW_PIPELINE)
            return Scope(allow_columns=False, outer=self.outer), sources.ONE_ROW, where
        first = steps[0].relation
        self.out.pipeline.extend(self.stored_prefilter(first, where, len(steps) == 1))
        self.out.pipeline.extend(first.pipeline)
        if len(steps) == 1:
            return Scope([first.table], outer=self.outer), first.collection, where
        # Filters on the first table alone run before the joins (and can use its indexes).
        first_scope = Scope([first.table.at(())], outer=self.outer)
        early: list[ast.Expr] = []
        late: list[ast.Expr] = []
        for conj in conjuncts(where):
            reads = tables_of(conj)
            (early if reads is not None and reads <= {first.table.alias} else late).append(conj)
        if early:
            match = and_filters(
                [FilterCompiler(self.compiler(first_scope)).match(c) for c in early]
            )
            self.out.emit({"$match": match})
            merge_lets(self.out.lets, first_scope.lets)
        alias = first.table.alias
        keep = self.used_fields(first)
        # One stage nests the fields the query reads under the alias; the first join may add
        # its lookup key to it (join()).
        nest: dict[str, Any] = {alias: "$$ROOT" if keep is None else {f: f"${f}" for f in keep}}
        self.out.emit({"$replaceRoot": {"newRoot": nest}})
        tables = [first.table.at((alias,))]
        for i, step in enumerate(steps[1:]):
            kind, rel, on, node = step.kind, step.relation, step.on, step.node
            tables.append(rel.table.at((rel.table.alias,)))
            if on is not None:
                later = [later_step.relation.table.alias for later_step in steps[i + 2 :]]
                on = self.qualified_on(on, Scope(list(tables), outer=self.outer), later)
            left = Scope(list(tables[:-1]), outer=self.outer)
            self.join(kind, rel, on, left, node, nest if i == 0 else None)
            merge_lets(self.out.lets, left.lets)
        rest = None
        for conj in late:
            rest = conj if rest is None else ast.Binary("AND", rest, conj, conj.pos)
        return Scope(tables, outer=self.outer), first.collection, rest

    def stored_prefilter(
        self, rel: Relation, where: ast.Expr | None, alone: bool
    ) -> list[dict[str, Any]]:
        """A ``$match`` on the stored documents (before ``rel.pipeline``) for what WHERE
        implies about them (see stored.py)."""
        if not (rel.stored_fields or rel.stored_ranges) or where is None:
            return []
        alias = rel.table.alias
        conditions = document_conditions(
            conjuncts(where), alias, alone, rel.stored_fields, rel.stored_ranges
        )
        if not conditions:
            return []
        scope = Scope([Table(alias, (), rel.table.columns)], outer=self.outer)
        match = and_filters([FilterCompiler(self.compiler(scope)).match(c) for c in conditions])
        merge_lets(self.out.lets, scope.lets)
        return [{"$match": match}]

    def qualified_on(self, on: ast.Expr, visible: Scope, later: list[str]) -> ast.Expr:
        """ON with every unqualified column qualified by the one table in scope that can supply
        it (the tables joined so far and this one); a table joined later, or a name two tables
        could supply, is an error (never a silently empty join)."""

        def qualify(col: ast.Column) -> ast.Column:
            head = col.parts[0]
            if (
                len(col.parts) > 1
                and isinstance(head, str)
                and head in later
                and visible.table(head) is None
            ):
                raise PlanningError(
                    f"table {head} is not in scope in this ON: it is joined "
                    "later in FROM (an ON can read the tables before it and "
                    "its own)",
                    col.pos,
                )
            try:
                resolved = visible.resolve(col)
            except PlanningError as exc:
                if (
                    len(col.parts) > 1
                    and isinstance(head, str)
                    and not visible.knows_alias(head)
                    and "ambiguous" in exc.message
                ):
                    raise PlanningError(
                        f"{head} is not a table in scope here (tables: "
                        f"{', '.join(visible.aliases())}); qualify the field with its table "
                        f"(e.g. {visible.aliases()[0]}.{display_path(col.parts)})",
                        col.pos,
                    ) from None
                raise
            if resolved.variable is not None or (
                isinstance(head, str) and visible.table(head) is not None
            ):
                return col
            return dataclasses.replace(col, parts=(resolved.table, *col.parts))

        return replace_columns(on, qualify)

    def used_fields(self, rel: Relation) -> dict[str, int] | None:
        """The top-level fields of a joined table that the query can read (None: all).

        Conservative: a qualified reference counts for its table, an unqualified one for every
        table; ``*`` / ``t.*`` keep everything. Derived tables already carry only their columns.
        """
        if rel.table.columns is not None:
            return None
        alias = rel.table.alias
        others = self.block.aliases - {alias}
        refs = self.block.references
        if None in refs.stars or alias in refs.stars:
            return None
        own = refs.qualified.get(alias, set())
        if None in own:  # alias[0]: an array index, not a field
            return None
        keep = set(refs.single)
        keep.update(head for head in refs.qualified if head != alias and head not in others)
        keep.update(name for name in own if name is not None)
        if not all(is_plain_field(f) for f in keep):
            return None  # a projection cannot name such a field: keep the whole document
        return {"_id": 1, **{f: 1 for f in sorted(keep) if f != "_id"}}

    def join(
        self,
        kind: str,
        rel: Relation,
        on: ast.Expr | None,
        left: Scope,
        node: ast.Node,
        nest: dict[str, Any] | None = None,
    ) -> None:
        """$lookup + $unwind: the joined table's rows matching ON, nested under its alias.
        ``nest``: the new root of the stage that nested the first table (the first join)."""
        alias = rel.table.alias
        if on is not None and rel.plain and rel.collection is not None and not has_subquery(on):
            joined = Scope([*left.tables, rel.table.at((alias,))], outer=left.outer)
            key = find_equi_key(on, alias, joined)
            if key is not None:  # index-backed: localField/foreignField (planner/joins.py)
                temp = self.ctx.fresh("__jk")
                self.out.temp_fields.append(temp)
                for stage in keyed_join(
                    kind, rel.collection, alias, key, left, self.compiler, temp, nest
                ):
                    self.out.emit(stage)
                return
        inner = Scope([rel.table.at(())], outer=left)
        stages = list(rel.pipeline)
        hidden: list[str] = []
        if on is not None:
            # A subquery in ON reads the join's variables: its $lookup runs inside the join's
            # pipeline, where they are bound, not in the query's pending stages.
            placed: list[dict[str, Any]] = []

            def subquery(e: ast.Expr, compiler: ExprCompiler) -> Any:
                stage, value, name = subquery_lookup(e, compiler, self.ctx)
                placed.append(stage)
                hidden.append(name)
                return value

            compiler = ExprCompiler(inner, self.ctx.bindings, subquery=subquery)
            match = FilterCompiler(compiler).match(on)
            stages.extend(placed)
            stages.append({"$match": match})
        keep = self.used_fields(rel)
        if keep is not None:
            stages.append({"$project": keep})
        elif hidden:
            stages.append({"$project": {name: 0 for name in hidden}})
        lookup: dict[str, Any] = {}
        if rel.collection is not None:
            lookup["from"] = rel.collection
        if inner.lets:
            lookup["let"] = inner.lets
        lookup["pipeline"] = stages
        lookup["as"] = rel.table.alias
        self.out.emit({"$lookup": lookup})
        self.out.emit(
            {
                "$unwind": {
                    "path": f"${rel.table.alias}",
                    "preserveNullAndEmptyArrays": kind == "LEFT",
                }
            }
        )


def conjuncts(e: ast.Expr | None) -> list[ast.Expr]:
    return [] if e is None else flatten(e, "AND")
