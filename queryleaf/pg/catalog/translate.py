"""PostgreSQL catalog queries rewritten for the SQLite database that holds the catalog.

sqlglot parses the PostgreSQL text and writes SQLite; before it writes, the passes below
replace what SQLite lacks with what the catalog registers (functions.py): casts to regclass and
friends become functions, ``= ANY(array)`` becomes ``IN``, set-returning ``unnest`` /
``generate_subscripts`` in a select list become a ``json_each`` join, ``array_agg(x ORDER BY y)``
an ordered aggregate, ``$n`` parameters become named SQLite parameters (bound, never spliced).
"""

from __future__ import annotations

import codecs
import re

import sqlglot
from sqlglot import exp

# Text sqlglot does not read: psql's OPERATOR(pg_catalog.~) and COLLATE pg_catalog.default.
_OPERATOR = re.compile(r"OPERATOR\s*\(\s*pg_catalog\s*\.\s*([^)\s]+)\s*\)", re.I)
_COLLATE = re.compile(r'\s+COLLATE\s+(?:pg_catalog\s*\.\s*)?(?:"?default"?|"C"|"POSIX")', re.I)

_TEXT_TYPES = {"text", "varchar", "name", "char", "bpchar", "character varying", "character"}
_INTEGER_TYPES = {"oid", "int", "int2", "int4", "int8", "integer", "smallint", "bigint", "xid"}
_REAL_TYPES = {"float4", "float8", "real", "double precision", "numeric", "decimal", "double"}
_REG_TYPES = {"regclass", "regtype", "regnamespace"}
FUNCTIONS_BY_CLASS: dict[type[exp.Expr], str] = {
    exp.CurrentSchema: "current_schema",
    exp.CurrentUser: "current_user",
    exp.SessionUser: "session_user",
    exp.CurrentDatabase: "current_database",
    exp.CurrentCatalog: "current_catalog",
    exp.CurrentVersion: "version",
}


def pre_rewrite(text: str) -> str:
    return _COLLATE.sub("", _OPERATOR.sub(r"\1", text))


def parse(text: str) -> exp.Expr:
    return sqlglot.parse_one(pre_rewrite(text), read="postgres")


def to_sqlite(tree: exp.Expr) -> str:
    tree = _post_order(tree.copy())
    for select in list(tree.find_all(exp.Select)):
        _expand_set_returning(select)
    return tree.sql(dialect="sqlite")


def _post_order(node: exp.Expr) -> exp.Expr:
    """Rewrite the children first, so a rewrite sees its operands already rewritten."""
    for child in list(node.iter_expressions()):
        _post_order(child)
    new = _rewrite_node(node)
    if new is not node and node.parent is not None:
        node.replace(new)
    return new


def type_name(data_type: exp.Expr) -> str:
    text = data_type.sql(dialect="postgres").lower()
    return text.removeprefix("pg_catalog.").strip('"')


def _anonymous(name: str, *args: exp.Expr) -> exp.Expr:
    return exp.Anonymous(this=name, expressions=list(args))


def _rewrite_node(node: exp.Expr) -> exp.Expr:
    if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Func):
        if node.this.name.lower() == "pg_catalog":
            return node.expression
    if isinstance(node, exp.Parameter) and node.this is not None and node.this.is_int:
        return exp.Placeholder(this=f"p{node.this.name}")
    if isinstance(node, exp.Column) and not node.table and node.name.lower() == "user":
        if not node.this.quoted:  # PostgreSQL's USER keyword: the current user
            return _anonymous("user")
    for kind, name in FUNCTIONS_BY_CLASS.items():
        if type(node) is kind:
            return _anonymous(name)
    if isinstance(node, exp.Cast):
        return _cast(node)
    if isinstance(node, exp.ByteString):  # E'...' escapes
        return exp.Literal.string(codecs.decode(node.name, "unicode_escape"))
    if isinstance(node, exp.EQ | exp.NEQ) and _quantifier(node.expression):
        return _any(node)
    if isinstance(node, exp.Array):
        return _array(node)
    if isinstance(node, exp.ArrayAgg):
        inner = node.this
        if isinstance(inner, exp.Order):
            key = inner.expressions[0].this if inner.expressions else exp.Null()
            return _anonymous("pg_array_agg", inner.this, key)
        return _anonymous("pg_array_agg", inner, exp.Null())
    if isinstance(node, exp.LogicalAnd):
        return _anonymous("bool_and", node.this)
    if isinstance(node, exp.LogicalOr):
        return _anonymous("bool_or", node.this)
    if isinstance(node, exp.Bracket) and len(node.expressions) == 1:
        index = node.expressions[0]
        if isinstance(index, exp.Literal) and index.is_int:  # sqlglot made a[1] 0-based
            index = exp.Literal.number(int(index.name) + 1)
        return _anonymous("pg_subscript", node.this, index)
    if isinstance(node, exp.RegexpILike):
        return _anonymous("pg_regexp_i", node.this, node.expression)
    if isinstance(node, exp.ArrayToString):
        return _anonymous("array_to_string", node.this, node.expression)
    if isinstance(node, exp.Table) and _is_series(node.this):
        return _series_table(node)
    if isinstance(node, exp.Table) and isinstance(node.this, exp.Explode):
        return _unnest_table(node)
    if isinstance(node, exp.Unnest) and isinstance(node.parent, exp.From | exp.Join):
        return _unnest_table(node)
    if isinstance(node, exp.Table) and isinstance(node.this, exp.Func):
        return _function_table(node)
    return node


def _cast(node: exp.Cast) -> exp.Expr:
    target = type_name(node.to)
    if target.endswith("[]"):
        return node.this
    if target in _REG_TYPES:
        return _anonymous(target, node.this)
    if target in ("bool", "boolean"):
        return _anonymous("pg_bool", node.this)
    if target in _TEXT_TYPES or target.startswith(("varchar", "character", "char(")):
        return exp.cast(node.this, "TEXT")
    if target in _INTEGER_TYPES:
        return exp.cast(node.this, "INTEGER")
    if target in _REAL_TYPES or target.startswith("numeric"):
        return exp.cast(node.this, "REAL")
    return node.this


def _quantifier(node: exp.Expr) -> str | None:
    """ "any" or "all" for ``ANY(...)`` / ``ALL(...)`` (sqlglot reads ``ALL(...)`` as a call)."""
    if isinstance(node, exp.Any):
        return "any"
    if isinstance(node, exp.All):
        return "all"
    if isinstance(node, exp.Anonymous) and node.name.lower() in ("any", "all"):
        return node.name.lower() if len(node.expressions) == 1 else None
    return None


def _any(node: exp.EQ | exp.NEQ) -> exp.Expr:
    """``x = ANY(array)`` → ``x IN (...)``; ``x <> ALL(array)`` → ``x NOT IN (...)``. The other
    two forms are left as they are (SQLite then reports them): no client was seen sending them."""
    quantified = node.expression
    if isinstance(node, exp.EQ) != (_quantifier(quantified) == "any"):
        return node
    values = quantified.expressions[0] if isinstance(quantified, exp.Anonymous) else quantified.this
    values = values.unnest() if isinstance(values, exp.Paren) else values
    if isinstance(values, exp.Anonymous) and values.name == "pg_array":  # ARRAY[...], rewritten
        inside: exp.Expr = exp.In(this=node.this, expressions=values.expressions)
    else:
        query = sqlglot.select("value").from_(
            _anonymous("json_each", _anonymous("pg_json", values))
        )
        inside = exp.In(this=node.this, query=exp.Subquery(this=query))
    return exp.Not(this=inside) if isinstance(node, exp.NEQ) else inside


def _array(node: exp.Array) -> exp.Expr:
    if len(node.expressions) == 1 and isinstance(node.expressions[0], exp.Select):
        select = node.expressions[0]
        first = select.expressions[0]
        select.expressions[0] = exp.alias_(
            first.unalias() if isinstance(first, exp.Alias) else first, "v"
        )
        query = sqlglot.select(_anonymous("pg_array_agg", exp.column("v"), exp.Null())).from_(
            exp.Subquery(this=select, alias=exp.TableAlias(this=exp.to_identifier("_array")))
        )
        # ARRAY() of no rows is an empty array; array_agg of no rows (SQLite: the aggregate) NULL
        return exp.Coalesce(this=exp.Subquery(this=query), expressions=[_anonymous("pg_array")])
    return _anonymous("pg_array", *node.expressions)


def _is_series(node: exp.Expr | None) -> bool:
    return isinstance(node, exp.Anonymous | exp.GenerateSeries) and (
        node.name.lower() == "generate_series" or isinstance(node, exp.GenerateSeries)
    )


def _series_table(node: exp.Table) -> exp.Expr:
    call = node.this
    if isinstance(call, exp.GenerateSeries):
        args = [call.args.get("start"), call.args.get("end"), call.args.get("step")]
    else:
        args = list(call.expressions)
    alias = node.alias or "generate_series"
    series = _anonymous("pg_series", *[a for a in args if a is not None])
    query = sqlglot.select(exp.alias_(exp.column("value"), alias)).from_(
        _anonymous("json_each", series)
    )
    return exp.Subquery(this=query, alias=exp.TableAlias(this=exp.to_identifier(alias)))


def _unnest_table(node: exp.Expr) -> exp.Expr:
    """``FROM unnest(a) AS x``: the elements of a as a one-column table x."""
    array = node.this.this if isinstance(node, exp.Table) else node.expressions[0]
    alias = node.alias or "unnest"
    query = sqlglot.select(exp.alias_(exp.column("value"), alias)).from_(
        _anonymous("json_each", _anonymous("pg_json", array))
    )
    return exp.Subquery(this=query, alias=exp.TableAlias(this=exp.to_identifier(alias)))


def _function_table(node: exp.Table) -> exp.Expr:
    """``FROM f(x) AS s`` with f not set-returning: one row whose column s is f's value."""
    alias = node.alias or node.this.name.lower() or "f"
    query = sqlglot.select(exp.alias_(node.this, alias))
    return exp.Subquery(this=query, alias=exp.TableAlias(this=exp.to_identifier(alias)))


def _set_returning(node: exp.Expr) -> bool:
    return isinstance(node, exp.Explode) or (
        isinstance(node, exp.Anonymous) and node.name.lower() == "generate_subscripts"
    )


def _expand_set_returning(select: exp.Select) -> None:
    """``SELECT unnest(a) AS x, unnest(b), generate_subscripts(a, 1) FROM t`` →
    ``SELECT e.value AS x, json_extract(b, '$[' || e.key || ']'), e.key + 1 FROM t,
    json_each(a) AS e``: PostgreSQL runs set-returning functions of one select list in step."""
    calls = [
        n
        for p in select.expressions
        for n in p.find_all(exp.Explode, exp.Anonymous)
        if _set_returning(n)
    ]
    if not calls:
        return
    driver = calls[0].this if isinstance(calls[0], exp.Explode) else calls[0].expressions[0]
    driver_sql = driver.sql()
    element = "_srf"
    for call in calls:
        array = call.this if isinstance(call, exp.Explode) else call.expressions[0]
        if isinstance(call, exp.Explode):
            if array.sql() == driver_sql:
                replacement: exp.Expr = exp.column("value", element)
            else:
                path = exp.DPipe(
                    this=exp.DPipe(
                        this=exp.Literal.string("$["), expression=exp.column("key", element)
                    ),
                    expression=exp.Literal.string("]"),
                )
                replacement = _anonymous("json_extract", array, path)
        else:
            replacement = exp.Add(this=exp.column("key", element), expression=exp.Literal.number(1))
        call.replace(replacement)
    select.join(
        exp.Table(
            this=_anonymous("json_each", driver.copy()),
            alias=exp.TableAlias(this=exp.to_identifier(element)),
        ),
        copy=False,
    )
