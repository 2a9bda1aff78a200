"""Equi-joins → ``$lookup`` with ``localField``/``foreignField``, which an index on the joined
table's key serves (the pipeline form with ``$expr`` reads the whole joined table once per row).

MongoDB's key match is looser than SQL's ``=``: a null or missing local key matches documents
whose key is null or missing, an empty array matches like null, and an array matches by its
elements (a scalar also matches an array that holds it). So the lookup *pre-selects* a superset
of the rows SQL joins, and a check keeps exactly those. The lookup reads the row's key from a
temporary field (``lookup_key``):

- a NULL key (null or missing) becomes MaxKey: no lookup of every null-keyed document for each
  null-keyed row;
- ``[]`` becomes ``[[]]``, which pre-selects the rows whose key is ``[]``;
- any other value, array or not, is looked up as it is: the rows holding an equal value are
  among what MongoDB finds for it.

The check is ``$eq`` of the two whole values, the core of SQL's ``=``: a row whose key is NULL
finds only keys that are MaxKey, and NULL is not equal to MaxKey. It runs after the ``$unwind``
for an inner join (MongoDB moves a $match on the joined fields into the lookup) and in the
lookup's pipeline for a LEFT join, with the rest of ON.

A key on ``_id`` needs no check: ``_id`` is never an array, so the key is looked up wrapped in
an array (MongoDB looks an array up by its elements), a NULL key as ``[[]]``: an array or a NULL
key finds nothing, any other value exactly the equal ``_id``. Numbers of different types (1,
1.0, a decimal 1) are equal both to MongoDB and to SQL. (MinKey and MaxKey, BSON's bounds, are
not SQL values: they match as MongoDB matches them.)

Not keyed (the pipeline form, see ``SelectPlanner.join``): a joined derived table, CTE or
table function with a pipeline (its columns are not stored fields the lookup could match
before the pipeline runs), a key inside a nested document of the joined table (``c.a.b``:
MongoDB would match through arrays along the path, and an array key equal to the array SQL
reads there would be missed), an ON with a subquery, and an ON without an equality between a
stored top-level field of the joined table and an expression over the tables joined before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bson import MaxKey

from queryleaf.planner.expressions import ExprCompiler, bound, flatten
from queryleaf.planner.filters import FilterCompiler, and_filters
from queryleaf.planner.scope import Scope, Table, is_plain_field
from queryleaf.sql import ast
from queryleaf.sql.walk import has_subquery, walk_expr

# What a NULL key is looked up as (another key than _id): a stored key may be MaxKey, but
# the check ($eq with the NULL key itself) refuses what it finds. [] is looked up as [[]].
_NULL_KEY = MaxKey()
_NO_ID: dict[str, Any] = {"$literal": [[]]}


@dataclass(frozen=True)
class EquiKey:
    """``local = joined.foreign`` in ON: the lookup's key, and what else ON requires."""

    local: ast.Expr  # over the tables joined before (and outer queries), never the joined one
    foreign: str  # a top-level field of the joined table
    conjunct: ast.Expr  # the equality it came from
    others: tuple[ast.Expr, ...]  # the rest of ON (conjuncts)


def find_equi_key(on: ast.Expr, alias: str, joined: Scope) -> EquiKey | None:
    """The equality of ON to look up by, preferring a key on ``_id`` (unique, and exact).

    Only for an ON whose columns all name their table: the pipeline form resolves an
    unqualified name among the joined table's columns first, the keyed form among all the
    tables in scope, and the two must not answer differently."""
    if not _qualified(on, joined):
        return None
    conjuncts = flatten(on, "AND")
    found: list[tuple[bool, int, EquiKey]] = []
    for i, conj in enumerate(conjuncts):
        if not (isinstance(conj, ast.Binary) and conj.op == "=") or has_subquery(conj):
            continue
        for local, other in ((conj.left, conj.right), (conj.right, conj.left)):
            foreign = _stored_field(other, alias, joined)
            if foreign is not None and _reads_before(local, alias, joined):
                rest = tuple(c for j, c in enumerate(conjuncts) if j != i)
                found.append((foreign != "_id", i, EquiKey(local, foreign, conj, rest)))
                break
    return min(found, key=lambda f: f[:2])[2] if found else None


def _qualified(e: ast.Expr, joined: Scope) -> bool:
    return all(
        len(node.parts) > 1 and isinstance(node.parts[0], str) and joined.knows_alias(node.parts[0])
        for node in walk_expr(e)
        if isinstance(node, ast.Column)
    )


def _probe(joined: Scope) -> Scope:
    """A copy of the scope to resolve names in without recording variables."""
    return Scope(list(joined.tables), outer=joined.outer)


def _stored_field(e: ast.Expr, alias: str, joined: Scope) -> str | None:
    if not isinstance(e, ast.Column):
        return None
    resolved = _probe(joined).resolve(e)
    if resolved.variable is not None or resolved.table != alias:
        return None
    path = resolved.path[1:]  # the joined table's fields are nested under its alias
    # foreignField is a path: a name with '.' or a leading '$' cannot be one (pipeline form)
    field = path[0] if len(path) == 1 else None
    return field if isinstance(field, str) and is_plain_field(field) else None


def _reads_before(e: ast.Expr, alias: str, joined: Scope) -> bool:
    """Whether ``e`` reads a table joined before ``alias`` and nothing of ``alias``."""
    if isinstance(e, ast.Interval) or has_subquery(e):
        return False
    probe = _probe(joined)
    reads_row = False
    for node in walk_expr(e):
        if isinstance(node, ast.Column):
            resolved = probe.resolve(node)
            if resolved.variable is None:
                if resolved.table == alias:
                    return False
                reads_row = True
    return reads_row


def lookup_key(local: Any, foreign: str) -> Any:
    """The value to look up for a row's key (see the module's docstring). Few operators: the
    key is computed for every row."""
    if foreign == "_id":
        # Wrapped in an array, which MongoDB looks up by its element: a NULL key as [], an
        # array as itself; no _id is an array.
        return [{"$ifNull": [local, []]}]
    return bound(
        [local],
        lambda r: {
            "$cond": [
                {"$isArray": r[0]},
                {"$cond": [{"$eq": [r[0], []]}, _NO_ID, r[0]]},
                {"$ifNull": [r[0], _NULL_KEY]},
            ]
        },
        "jk",
    )


def _conjunction(parts: tuple[ast.Expr, ...]) -> ast.Expr | None:
    out = None
    for p in parts:
        out = p if out is None else ast.Binary("AND", out, p, p.pos)
    return out


def keyed_join(
    kind: str,
    collection: str,
    alias: str,
    key: EquiKey,
    left: Scope,
    compiler: Callable[[Scope], ExprCompiler],
    temp: str,
    nest: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The stages joining ``collection`` as ``alias`` by ``key`` to the rows of ``left`` (the
    tables joined before); ``temp`` is the field that holds the looked-up key. ``nest``, for
    the first join, is the new root of the stage that nested the first table: the key is
    computed there (a stage less for every row).

    The joined documents come whole, as from a hand-written lookup: projecting them inside
    the lookup costs more per joined row than it saves (the query's last stage keeps only
    what it reads)."""
    # Variables for outer queries land in left.lets, which the caller binds.
    joined = Scope([*left.tables, Table(alias, (alias,), None)], outer=left.outer, lets=left.lets)
    local = compiler(joined).compile(key.local)
    if nest is not None and len(left.tables) == 1:
        first = left.tables[0]
        unnested = Scope([Table(first.alias, (), first.columns)], outer=left.outer, lets=left.lets)
        nest[temp] = lookup_key(compiler(unnested).compile(key.local), key.foreign)
        stages: list[dict[str, Any]] = []
    else:
        stages = [{"$set": {temp: lookup_key(local, key.foreign)}}]
    # The key's own check: whole values equal (MongoDB's match is looser). A key on _id needs
    # none (see the module's docstring).
    exact = key.foreign == "_id"
    lookup: dict[str, Any] = {"from": collection, "localField": temp, "foreignField": key.foreign}
    others = _conjunction(key.others)
    unwind = {"$unwind": {"path": f"${alias}", "preserveNullAndEmptyArrays": kind == "LEFT"}}
    if kind != "LEFT":
        # An inner join drops the rows ON rejects after the $unwind (MongoDB moves a $match
        # on the joined table's fields into the $lookup).
        stages += [{"$lookup": {**lookup, "as": alias}}, unwind]
        checks = [] if exact else [{"$expr": {"$eq": [local, f"${alias}.{key.foreign}"]}}]
        if others is not None:
            checks.append(FilterCompiler(compiler(joined)).match(others))
        if checks:
            stages.append({"$match": and_filters(checks)})
        return stages
    # A LEFT join keeps a row whose matches ON rejects all: ON goes into the lookup.
    inner = Scope([Table(alias, (), None)], outer=left)
    checks = []
    if not exact:
        lookup["let"] = {"jl": local}
        checks.append({"$expr": {"$eq": [f"${key.foreign}", "$$jl"]}})
    if others is not None:
        checks.append(FilterCompiler(compiler(inner)).match(others))
        lookup["let"] = {**lookup.get("let", {}), **inner.lets}
    if checks:
        lookup["pipeline"] = [{"$match": and_filters(checks)}]
    return [*stages, {"$lookup": {**lookup, "as": alias}}, unwind]
