"""SELECT → one aggregation pipeline (or a find when nothing needs a pipeline).

Stages follow SQL's logical order: FROM ($lookup/$unwind for joins), WHERE ($match), GROUP BY
and aggregates ($group), HAVING ($match), window functions ($setWindowFields), SELECT
($project), DISTINCT ($group), ORDER BY ($sort), OFFSET/LIMIT. Subqueries become $lookup stages
placed just before the stage that needs their value.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import re
from dataclasses import dataclass, field
from typing import Any

from queryleaf import plan
from queryleaf.errors import ErrorCode, PlanningError, Position
from queryleaf.planner import sources
from queryleaf.planner.aggregates import accumulate
from queryleaf.planner.constants import NotConstant, literal_value
from queryleaf.planner.expressions import (
    AGGREGATES,
    ExprCompiler,
    flatten,
    is_field_path,
    is_null_expr,
    may_be_missing,
)
from queryleaf.planner.filters import FilterCompiler, and_filters
from queryleaf.planner.joins import find_equi_key, keyed_join
from queryleaf.planner.lowering import lower_to_find
from queryleaf.planner.params import Bindings
from queryleaf.planner.rewrite import from_chain, normalize, tables_of
from queryleaf.planner.scope import (
    Scope,
    Table,
    display_path,
    field_path,
    is_plain_field,
    merge_lets,
)
from queryleaf.planner.stored import document_conditions
from queryleaf.planner.subqueries import subquery_lookup
from queryleaf.planner.windows import plan_windows
from queryleaf.sql import ast
from queryleaf.sql.walk import has_subquery, replace_columns, walk, walk_expr

_SAFE_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass
class Context:
    """What every (sub)query of one statement shares: parameters, CTEs, fresh names."""

    bindings: Bindings
    ctes: dict[str, ast.Query] = field(default_factory=dict)
    counter: itertools.count = field(default_factory=itertools.count)
    tables: frozenset[str] | None = None  # existing collections and views (None: unknown)
    # Each WITH query planned once (by id of its AST, so a nested WITH that reuses a name
    # plans its own): a chain of CTEs, each reading the one before, is planned in a loop.
    planned: dict[int, plan.Aggregate | plan.Find] = field(default_factory=dict)

    def fresh(self, prefix: str) -> str:
        return f"{prefix}{next(self.counter)}"

    def with_ctes(self, ctes: tuple[ast.Cte, ...]) -> Context:
        if not ctes:
            return self
        env = dict(self.ctes)
        for cte in ctes:
            if cte.name in env and cte.name not in self.ctes:
                raise PlanningError(f"WITH defines {cte.name} twice", cte.pos)
            env[cte.name] = cte.query
        inner = Context(self.bindings, env, self.counter, self.tables, self.planned)
        for cte in ctes:  # in order: each finds the ones it reads planned already
            inner.cte_plan(cte.name)
        return inner

    def cte_plan(self, name: str) -> plan.Aggregate | plan.Find:
        query = self.ctes[name]
        found = self.planned.get(id(query))
        if found is None:
            found = self.planned[id(query)] = plan_query(query, self)
        return found


@dataclass
class Relation:
    """The rows of a FROM item before the query's own stages."""

    collection: str
    pipeline: list[dict[str, Any]]
    table: Table
    plain: bool = False  # a stored collection read as is (find-able)
    system: bool = False  # a queryleaf system collection (hide _id for SELECT *)
    # The event log keeps rows grouped in stored documents: columns every row of a document
    # shares (stored at its top level), and columns whose least and greatest value the document
    # records. Filters on them also run, on the documents, before ``pipeline`` (stored.py).
    stored_fields: frozenset[str] = frozenset()
    stored_ranges: dict[str, tuple[str, str]] = field(default_factory=dict)


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


@dataclass
class Output:
    item: ast.SelectItem
    name: str
    key: str


def as_aggregate(p: plan.Aggregate | plan.Find) -> plan.Aggregate:
    """A plan as a pipeline over its collection (finds are rewritten with flat output keys)."""
    if isinstance(p, plan.Aggregate):
        return p
    pipeline: list[dict[str, Any]] = []
    if p.filter:
        pipeline.append({"$match": p.filter})
    if p.sort:
        pipeline.append({"$sort": dict(p.sort)})
    if p.skip:
        pipeline.append({"$skip": p.skip})
    if p.limit:
        pipeline.append({"$limit": p.limit})
    columns = None
    if p.columns is not None:
        pipeline.append(
            {
                "$project": {
                    "_id": 0,
                    **{f"_{i}": {"$ifNull": ["$" + c.key, None]} for i, c in enumerate(p.columns)},
                }
            }
        )
        columns = tuple(plan.OutputColumn(c.name, f"_{i}") for i, c in enumerate(p.columns))
    elif p.projection is not None:
        pipeline.append({"$project": p.projection})
    return plan.Aggregate(p.collection, pipeline, columns)


class SelectPlanner:
    def __init__(self, select: ast.Select, ctx: Context, outer: Scope | None = None):
        self.select = select
        self.ctx = ctx
        self.bindings = ctx.bindings
        self.outer = outer
        self.pipeline: list[dict[str, Any]] = []
        self.pending: list[dict[str, Any]] = []  # $lookup stages of subqueries not yet placed
        self.temp_fields: list[str] = []
        self.scope = Scope()
        self.extra_lets: dict[str, Any] = {}  # outer variables read by join/pushdown scopes
        self._sort: dict[str, int] = {}
        self._null_flags: dict[str, Any] = {}
        self.has_windows = False
        self.steps: list[Step] = []
        self._references: References | None = None

    def emit(self, stage: dict[str, Any]) -> None:
        self.pipeline.extend(self.pending)
        self.pending.clear()
        self.pipeline.append(stage)

    def compiler(self, scope: Scope, **kw: Any) -> ExprCompiler:
        return ExprCompiler(scope, self.bindings, subquery=self.subquery, **kw)

    # ------------------------------------------------------------ entry
    def build(self) -> plan.Aggregate | plan.Find:
        s = self.select
        aggregates = self.aggregates()
        relations = self.from_items()
        self.steps = relations
        exprs, collection, where_rest = self.build_from(relations)
        stars = [i for i in s.items if isinstance(i.expr, ast.Star)]
        grouped = bool(s.group_by or aggregates or s.having is not None)
        if stars and grouped:
            raise PlanningError("* cannot be combined with GROUP BY or aggregates", stars[0].pos)

        if where_rest is not None:
            self.emit({"$match": FilterCompiler(exprs).match(where_rest)})

        outputs = self.outputs()
        if grouped:
            exprs = self.group(exprs, aggregates, outputs)
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
            if len(relations) > 1 or relations[0].relation.table.columns is not None:
                columns = self.table_star_projection(exprs, outputs, sorting=presort is None)
            else:
                columns = self.star_projection(relations, exprs, outputs, sorting=presort is None)
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
        self.pipeline.extend(self.pending)
        return plan.Aggregate(collection, self.pipeline, columns)

    # ------------------------------------------------------------ FROM
    def from_items(self) -> list[Step]:
        """The FROM clause as a left-deep list of steps."""
        s = self.select
        if not s.from_:
            return []
        items = from_chain(s)
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
            rel = self.relation(item)
            if rel.table.alias in aliases:
                raise PlanningError(
                    f"table name {rel.table.alias} is used twice in FROM; give one an alias",
                    item.pos,
                )
            aliases.add(rel.table.alias)
            out.append(Step(kind, rel, on, node))
        return out

    def relation(self, item: ast.FromItem) -> Relation:
        if isinstance(item, ast.TableRef):
            if item.name in self.ctx.ctes:
                return self.derived(
                    self.ctx.cte_plan(item.name),
                    item.alias or item.name,
                    self.ctx.ctes[item.name].pos,
                )
            hint = sources.reserved(item.name)
            if hint is not None:
                raise PlanningError(
                    f"{item.name} is a queryleaf system collection; {hint}", item.pos
                )
            self.check_exists(item)
            return Relation(
                item.name, [], Table(item.alias or item.name, collection=item.name), plain=True
            )
        if isinstance(item, ast.TableFunction):
            source = sources.table_function(item.name)
            if source is None:
                known = ", ".join(f"{n}()" for n in sources.table_function_names())
                raise PlanningError(
                    f"unknown table function {item.name}(); known: {known}",
                    item.pos,
                    error_code=ErrorCode.UNKNOWN_TABLE,
                )
            if item.args:
                raise PlanningError(f"{item.name}() takes no arguments", item.args[0].pos)
            alias = item.alias or item.name.lower()
            pipeline = source.rows(self.columns_read(alias)) if source.rows is not None else []
            return Relation(
                source.collection,
                pipeline,
                Table(alias),
                plain=not pipeline,
                system=True,
                stored_fields=source.stored_fields,
                stored_ranges=dict(source.stored_ranges),
            )
        if isinstance(item, ast.DerivedTable):
            # A derived table inside a subquery may read the enclosing query's columns (they
            # are variables of the subquery's $lookup, visible in every stage below it).
            sub, lets = plan_with_lets(item.query, self.ctx, outer=self.outer)
            merge_lets(self.extra_lets, lets)
            return self.derived(sub, item.alias, item.query.pos)
        raise PlanningError("unsupported FROM item", item.pos)

    def count_stars(self) -> set[int]:
        """The ``*`` of ``COUNT(*)`` (ids of the nodes): they read no column."""
        return {
            id(arg)
            for node in walk(self.select)
            if isinstance(node, ast.FuncCall)
            for arg in node.args
            if isinstance(arg, ast.Star)
        }

    def columns_read(self, alias: str) -> set[str] | None:
        """The top-level columns of table ``alias`` this query may read (None: all, for ``*``).
        Conservative: unqualified names count, and so do those of subqueries."""
        counted = self.count_stars()
        columns: set[str] = set()
        for node in walk(self.select):
            if isinstance(node, ast.Star) and id(node) not in counted:
                return None
            if isinstance(node, ast.Column):
                parts = node.parts
                name = parts[1] if len(parts) > 1 and parts[0] == alias else parts[0]
                if not isinstance(name, str):
                    return None
                columns.add(name)
        return columns

    def check_exists(self, item: ast.TableRef) -> None:
        """Reading a table that does not exist is an error (SQL), not an empty result."""
        tables = self.ctx.tables
        if tables is None or item.name in tables:
            return
        known = sorted(t for t in tables if sources.reserved(t) is None) + sorted(self.ctx.ctes)
        near = difflib.get_close_matches(item.name, known, n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        raise PlanningError(
            f"unknown table {item.name}: no collection, view or WITH query of that name{hint}",
            item.pos,
            error_code=ErrorCode.UNKNOWN_TABLE,
        )

    @staticmethod
    def derived(
        sub: plan.Aggregate | plan.Find, alias: str, pos: Position | None = None
    ) -> Relation:
        agg = as_aggregate(sub)
        if agg.columns is None:  # SELECT * of one table: its documents pass through
            return Relation(agg.collection, list(agg.pipeline), Table(alias))
        if any(c.spread for c in agg.columns):
            raise PlanningError(
                f"subquery {alias}: * over a join is not allowed in a derived "
                "table or CTE (the tables' columns are not known); list the "
                "columns",
                pos,
            )
        columns = {c.name: c.key for c in agg.columns}
        return Relation(agg.collection, list(agg.pipeline), Table(alias, (), columns))

    def stored_prefilter(
        self, rel: Relation, where: ast.Expr | None, alone: bool
    ) -> list[dict[str, Any]]:
        """A ``$match`` on the stored documents (before ``rel.pipeline``) for what WHERE
        implies about them (see stored.py)."""
        if not (rel.stored_fields or rel.stored_ranges) or where is None:
            return []
        alias = rel.table.alias
        conditions = document_conditions(
            _conjuncts(where), alias, alone, rel.stored_fields, rel.stored_ranges
        )
        if not conditions:
            return []
        scope = Scope([Table(alias, (), rel.table.columns)], outer=self.outer)
        match = and_filters([FilterCompiler(self.compiler(scope)).match(c) for c in conditions])
        merge_lets(self.extra_lets, scope.lets)
        return [{"$match": match}]

    def build_from(
        self,
        relations: list[Step],
    ) -> tuple[ExprCompiler, str, ast.Expr | None]:
        """Emit the FROM stages; returns the row compiler, the collection and the WHERE part
        that still has to be applied."""
        where = self.select.where
        if not relations:
            self.scope = Scope(allow_columns=False, outer=self.outer)
            self.pipeline.extend(sources.ONE_ROW_PIPELINE)
            return self.compiler(self.scope), sources.ONE_ROW, where
        first = relations[0].relation
        self.pipeline.extend(self.stored_prefilter(first, where, len(relations) == 1))
        self.pipeline.extend(first.pipeline)
        if len(relations) == 1:
            self.scope = Scope([first.table], outer=self.outer)
            return self.compiler(self.scope), first.collection, where
        # Filters on the first table alone run before the joins (and can use its indexes).
        first_scope = Scope([first.table.at(())], outer=self.outer)
        early: list[ast.Expr] = []
        late: list[ast.Expr] = []
        for conj in _conjuncts(where):
            reads = tables_of(conj)
            (early if reads is not None and reads <= {first.table.alias} else late).append(conj)
        if early:
            match = and_filters(
                [FilterCompiler(self.compiler(first_scope)).match(c) for c in early]
            )
            self.emit({"$match": match})
            merge_lets(self.extra_lets, first_scope.lets)
        alias = first.table.alias
        keep = self.used_fields(first)
        # One stage nests the fields the query reads under the alias; the first join may add
        # its lookup key to it (join()).
        nest: dict[str, Any] = {alias: "$$ROOT" if keep is None else {f: f"${f}" for f in keep}}
        self.emit({"$replaceRoot": {"newRoot": nest}})
        tables = [first.table.at((alias,))]
        for i, step in enumerate(relations[1:]):
            kind, rel, on, node = step.kind, step.relation, step.on, step.node
            tables.append(rel.table.at((rel.table.alias,)))
            if on is not None:
                later = [later_step.relation.table.alias for later_step in relations[i + 2 :]]
                on = self.qualified_on(on, Scope(list(tables), outer=self.outer), later)
            left = Scope(list(tables[:-1]), outer=self.outer)
            self.join(kind, rel, on, left, node, nest if i == 0 else None)
            merge_lets(self.extra_lets, left.lets)
        self.scope = Scope(tables, outer=self.outer)
        rest = None
        for conj in late:
            rest = conj if rest is None else ast.Binary("AND", rest, conj, conj.pos)
        return self.compiler(self.scope), first.collection, rest

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
        others = {step.relation.table.alias for step in self.steps} - {alias}
        refs = self.references()
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

    def references(self) -> References:
        """The columns and ``*`` the query reads, gathered in one walk (``used_fields`` asks for
        each joined table: a walk per table would be quadratic in the number of joins)."""
        if self._references is None:
            refs = References()
            counted = self.count_stars()
            for node in walk(self.select):
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
            self._references = refs
        return self._references

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
                self.temp_fields.append(temp)
                for stage in keyed_join(
                    kind, rel.collection, alias, key, left, self.compiler, temp, nest
                ):
                    self.emit(stage)
                return
        inner = Scope([rel.table.at(())], outer=left)
        stages = list(rel.pipeline)
        if on is not None:
            compiler = ExprCompiler(inner, self.bindings, subquery=self.subquery)
            stages.append({"$match": FilterCompiler(compiler).match(on)})
        keep = self.used_fields(rel)
        if keep is not None:
            stages.append({"$project": keep})
        lookup: dict[str, Any] = {}
        if rel.collection is not None:
            lookup["from"] = rel.collection
        if inner.lets:
            lookup["let"] = inner.lets
        lookup["pipeline"] = stages
        lookup["as"] = rel.table.alias
        self.emit({"$lookup": lookup})
        self.emit(
            {
                "$unwind": {
                    "path": f"${rel.table.alias}",
                    "preserveNullAndEmptyArrays": kind == "LEFT",
                }
            }
        )

    # ------------------------------------------------------------ subqueries
    def subquery(self, e: ast.Expr, compiler: ExprCompiler) -> Any:
        """Compile a subquery: its $lookup waits in ``pending`` for the stage that needs it."""
        stage, value, field_name = subquery_lookup(e, compiler, self.ctx)
        self.pending.append(stage)
        self.temp_fields.append(field_name)
        return value

    # ------------------------------------------------------------ SELECT list
    def outputs(self) -> list[Output]:
        outs: list[Output] = []
        used: set[str] = set()
        for i, item in enumerate(self.select.items):
            if isinstance(item.expr, ast.Star):
                continue
            unique = plan.unique_name(item.alias or self.default_name(item.expr), used)
            used.add(unique)
            key = unique if _SAFE_KEY.match(unique) and not unique.startswith("__") else f"_{i}"
            outs.append(Output(item, unique, key))
        return outs

    def default_name(self, e: ast.Expr) -> str:
        if isinstance(e, ast.Column):
            parts = e.parts
            if len(parts) > 1 and isinstance(parts[0], str) and self.scope.table(parts[0]):
                parts = parts[1:]
            return display_path(parts)
        from queryleaf.sql.printer import expr_name

        return expr_name(e)

    def projection(
        self, exprs: ExprCompiler, outputs: list[Output], sorting: bool
    ) -> tuple[plan.OutputColumn, ...]:
        proj: dict[str, Any] = {"_id": 0}
        for out in outputs:
            proj[out.key] = {"$ifNull": [exprs.compile(out.item.expr), None]}
        if sorting:
            proj.update(self.hidden_sort_keys(exprs, outputs))
        self.emit({"$project": proj})
        return tuple(plan.OutputColumn(o.name, o.key) for o in outputs)

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
                columns.append(plan.OutputColumn(out.name, out.key))
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
        relations: list[Step],
        exprs: ExprCompiler,
        outputs: list[Output],
        sorting: bool,
    ) -> tuple[plan.OutputColumn, ...] | None:
        extra = {o.key: {"$ifNull": [exprs.compile(o.item.expr), None]} for o in outputs}
        if sorting and self.select.order_by:
            extra.update(self.hidden_sort_keys(exprs, outputs))
        if extra:
            self.emit({"$addFields": extra})
        hide = list(self.temp_fields)
        if len(relations) == 1 and relations[0].relation.system:
            hide.append("_id")
        if hide:
            self.emit({"$project": {k: 0 for k in hide}})
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
        return found

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
        calls = []
        roots = [i.expr for i in self.select.items] + [o.expr for o in self.select.order_by]
        for root in roots:
            for node in walk_expr(root):
                if isinstance(node, ast.FuncCall) and node.over is not None and node not in calls:
                    calls.append(node)
        if not calls:
            return exprs
        self.has_windows = True
        stages, substitutions, hidden = plan_windows(calls, exprs, self.ctx.fresh)
        self.temp_fields.extend(hidden)
        for stage in stages:
            self.emit(stage)
        merged = {**exprs.substitutions, **substitutions}
        return self.compiler(exprs.scope, substitutions=merged, grouped=exprs.grouped)

    # ------------------------------------------------------------ ORDER BY / LIMIT
    def order_targets(self, outputs: list[Output]) -> list[tuple[ast.OrderItem, ast.Expr]]:
        return [(o, o.expr) for o in self.select.order_by]

    def source_sort(self, exprs: ExprCompiler, outputs: list[Output]) -> dict[str, int] | None:
        """$sort on stored fields before projecting (index-usable), when ORDER BY allows it."""
        targets = self.order_targets(outputs)
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
        for i, (item, expr) in enumerate(self.order_targets(outputs)):
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


def _conjuncts(e: ast.Expr | None) -> list[ast.Expr]:
    return [] if e is None else flatten(e, "AND")


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
    lets = dict(planner.extra_lets)
    merge_lets(lets, planner.scope.lets)
    return result, lets


def plan_query(
    query: ast.Query, ctx: Context, outer: Scope | None = None
) -> plan.Aggregate | plan.Find:
    return plan_with_lets(query, ctx, outer)[0]


def plan_select_statement(
    query: ast.Query, bindings: Bindings, tables: frozenset[str] | None = None
) -> plan.Aggregate | plan.Find:
    planned = plan_query(query, Context(bindings, tables=tables))
    return lower_to_find(planned) if isinstance(planned, plan.Aggregate) else planned
