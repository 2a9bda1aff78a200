"""INSERT / UPDATE / DELETE → insert, update (operator or pipeline form) and delete commands."""

from __future__ import annotations

from typing import Any

from queryleaf import plan
from queryleaf.documents import nest
from queryleaf.errors import PlanningError, Position
from queryleaf.planner import sources
from queryleaf.planner.constants import NotConstant, constant
from queryleaf.planner.expressions import ExprCompiler, literal, path_set
from queryleaf.planner.filters import FilterCompiler
from queryleaf.planner.lowering import as_aggregate
from queryleaf.planner.params import Bindings
from queryleaf.planner.references import not_reads, storing_reads_of
from queryleaf.planner.scope import Scope, Table, display_path, field_path
from queryleaf.planner.select import plan_select_statement as plan_query
from queryleaf.sql import ast
from queryleaf.sql.walk import has_subquery, walk_expr


def check_writable(table: str, pos: Position | None) -> None:
    if sources.reserved(table) is not None:
        raise PlanningError(
            f"{table} is a queryleaf system collection and cannot be written with SQL", pos
        )


def _field_path(col: ast.Column, scope: Scope, what: str) -> tuple[str, ...]:
    path = scope.resolve(col).path
    if any(isinstance(p, int) for p in path):
        raise PlanningError(
            f"{what} {display_path(path)}: array indexes are not allowed here", col.pos
        )
    return tuple(str(p) for p in path)


def _check_paths(paths: list[tuple[str, ...]], nodes: list[ast.Node], what: str) -> None:
    seen: dict[tuple[str, ...], ast.Node] = {}
    for path, node in zip(paths, nodes, strict=True):
        for other in seen:
            if other == path:
                raise PlanningError(f"{what} {'.'.join(path)} appears twice", node.pos)
            short, long_ = sorted((other, path), key=len)
            if long_[: len(short)] == short:
                raise PlanningError(f"{what} {'.'.join(path)} overlaps {'.'.join(other)}", node.pos)
        seen[path] = node


# ---------------------------------------------------------------- INSERT


def plan_insert(
    stmt: ast.Insert, bindings: Bindings, tables: frozenset[str] | None = None
) -> plan.Plan:
    check_writable(stmt.table, stmt.pos)
    scope = Scope.single(stmt.table)
    paths = [_field_path(c, scope, "column") for c in stmt.columns]
    _check_paths(paths, list(stmt.columns), "column")
    if stmt.query is not None:
        source = plan_query(stmt.query, bindings, tables)
        return plan.InsertSelect(stmt.table, source, tuple(paths))

    constant_docs: list[dict[str, Any]] = []
    computed = False
    exprs = ExprCompiler(Scope(allow_columns=False), bindings)
    rows_expr: list[dict[str, Any]] = []
    for row in stmt.rows:
        if not paths:
            if len(row) != 1:
                raise PlanningError(
                    "INSERT without a column list takes one JSON_OBJECT(...) document per row",
                    row[0].pos if row else stmt.pos,
                )
            doc_value = _row_document(row[0], bindings, exprs)
            constant_docs.append(doc_value[0])
            rows_expr.append(doc_value[1])
            computed |= doc_value[2]
            continue
        if len(row) != len(paths):
            raise PlanningError(
                f"INSERT has {len(paths)} column(s) but a row has {len(row)} value(s)",
                row[0].pos if row else stmt.pos,
            )
        doc: dict[str, Any] = {}
        doc_expr: dict[str, Any] = {}
        fields: list[Any] = []
        for path, value in zip(paths, row, strict=True):
            for node in walk_expr(value):
                if isinstance(node, ast.Column):
                    raise PlanningError(
                        f"VALUES cannot refer to columns{_quote_hint(node)}", node.pos
                    )
            try:
                v = constant(value, bindings)
                nest(doc, path, v)
                fields.append(literal(v))
            except NotConstant:
                computed = True
                fields.append(exprs.compile(value))
            nest(doc_expr, path, fields[-1])
        constant_docs.append(doc)
        if not all(field_path(p) for p in paths):
            # An expression object cannot hold $-prefixed or dotted keys: $setField them.
            built: Any = {"$literal": {}}
            for path, value_expr in zip(paths, fields, strict=True):
                built = path_set(built, path, value_expr)
            rows_expr.append(built)
        else:
            rows_expr.append(doc_expr)
    if computed:
        # Values such as NOW() are computed by the server, then inserted.
        return plan.Insert(stmt.table, [], compute=[{"$documents": rows_expr}])
    return plan.Insert(stmt.table, constant_docs)


def _quote_hint(col: ast.Column) -> str:
    """The double-quote trap: ``"Jane"`` is a column name, the string is ``'Jane'``."""
    if len(col.parts) != 1 or not isinstance(col.parts[0], str):
        return ""
    from queryleaf.sql.printer import string_literal

    return (
        f' ("{col.parts[0]}" is a column name; string literals use single quotes: '
        f"{string_literal(col.parts[0])})"
    )


def _row_document(
    e: ast.Expr, bindings: Bindings, exprs: ExprCompiler
) -> tuple[dict[str, Any], Any, bool]:
    try:
        value = constant(e, bindings)
        if not isinstance(value, dict):
            raise PlanningError(
                "INSERT without a column list takes one JSON_OBJECT(...) document per row", e.pos
            )
        return value, {"$literal": value}, False
    except NotConstant:
        if not (isinstance(e, ast.FuncCall) and e.name == "JSON_OBJECT"):
            raise PlanningError(
                "INSERT without a column list takes one JSON_OBJECT(...) document per row", e.pos
            ) from None
        return {}, exprs.compile(e), True


# ---------------------------------------------------------------- UPDATE / DELETE


def _write_scope(table: str, alias: str | None) -> Scope:
    return Scope([Table(alias or table, collection=table)])


def _id_query(
    table: str,
    alias: str | None,
    where: ast.Expr,
    bindings: Bindings,
    tables: frozenset[str] | None,
) -> plan.Aggregate:
    """SELECT _id FROM table WHERE where — for a WHERE an update filter cannot express."""
    select = ast.Select(
        (ast.SelectItem(ast.Column(("_id",))),), (ast.TableRef(table, alias),), where
    )

    return as_aggregate(plan_query(select, bindings, tables))


def _filter(where: ast.Expr | None, scope: Scope, bindings: Bindings) -> dict[str, Any]:
    if where is None:
        return {}
    return FilterCompiler(ExprCompiler(scope, bindings)).match(where)


def plan_update(
    stmt: ast.Update, bindings: Bindings, tables: frozenset[str] | None = None
) -> plan.Update:
    check_writable(stmt.table, stmt.pos)
    scope = _write_scope(stmt.table, stmt.alias)
    exprs = ExprCompiler(scope, bindings)
    with not_reads():  # SET may create fields: its targets are not checked against the data
        targets = [scope.resolve(a.target).path for a in stmt.assignments]
    _check_paths(
        [tuple(map(str, t)) for t in targets], [a.target for a in stmt.assignments], "SET target"
    )
    for t, a in zip(targets, stmt.assignments, strict=True):
        if t[0] == "_id":
            raise PlanningError("_id cannot be changed by UPDATE", a.target.pos)
    values: list[tuple[Any, bool]] = []
    with storing_reads_of(scope):
        for a in stmt.assignments:
            try:
                values.append((constant(a.value, bindings), True))
            except NotConstant:
                values.append((exprs.compile(a.value), False))
    indexed = any(isinstance(p, int) for t in targets for p in t)
    update: Any
    paths = [field_path(t) for t in targets]  # None: a name a path cannot hold
    if None in paths:
        update = [{"$replaceWith": _set_fields(targets, values, stmt.assignments)}]
    elif all(is_const for _, is_const in values) and (
        indexed or all(_plain_keys(v) for v, _ in values)
    ):
        update = {"$set": {p: v for p, (v, _) in zip(paths, values, strict=True)}}
    else:
        for t, a in zip(targets, stmt.assignments, strict=True):
            if any(isinstance(p, int) for p in t):
                raise PlanningError("SET on an array element needs a constant value", a.target.pos)
        update = [
            {
                "$set": {
                    p: (literal(v) if is_const else v)
                    for p, (v, is_const) in zip(paths, values, strict=True)
                }
            }
        ]
    if stmt.where is not None and has_subquery(stmt.where):
        return plan.Update(
            stmt.table, {}, update, _id_query(stmt.table, stmt.alias, stmt.where, bindings, tables)
        )
    return plan.Update(stmt.table, _filter(stmt.where, scope, bindings), update)


def _set_fields(
    targets: list[tuple[str | int, ...]],
    values: list[tuple[Any, bool]],
    assignments: tuple[ast.Assignment, ...],
) -> Any:
    """The updated document for targets that an update path cannot name ($-prefixed or dotted
    field names): $setField, every value read from the document as it was before."""
    doc: Any = "$$ROOT"
    for t, (v, is_const), a in zip(targets, values, assignments, strict=True):
        if any(isinstance(p, int) for p in t):
            raise PlanningError(
                "SET on an array element cannot be combined with a field name "
                "that starts with '$' or contains '.'",
                a.target.pos,
            )
        doc = path_set(doc, [str(p) for p in t], literal(v) if is_const else v)
    return doc


def _plain_keys(value: Any) -> bool:
    """Whether a constant holds no document key that an update operator would refuse to store
    (``$``-prefixed or dotted: the pipeline form stores those, as a ``$literal`` value)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            if any(k.startswith("$") or "." in k for k in v):
                return False
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return True


def plan_delete(
    stmt: ast.Delete, bindings: Bindings, tables: frozenset[str] | None = None
) -> plan.Delete:
    check_writable(stmt.table, stmt.pos)
    scope = _write_scope(stmt.table, stmt.alias)
    if stmt.where is not None and has_subquery(stmt.where):
        return plan.Delete(
            stmt.table, {}, _id_query(stmt.table, stmt.alias, stmt.where, bindings, tables)
        )
    return plan.Delete(stmt.table, _filter(stmt.where, scope, bindings))
