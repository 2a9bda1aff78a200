"""Hypothesis strategies for random queryleaf ASTs, and helpers to compare ASTs strictly.

The strategies build only ASTs the parser can produce (the printer's domain): e.g. no unary
minus applied to a number literal (the parser folds ``-5`` into ``Literal(-5)``), function names
upper-case, left-deep joins and set operations, ``?`` parameters numbered in text order.
"""

from __future__ import annotations

import dataclasses
import itertools
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from queryleaf.sql import ast

# ---------------------------------------------------------------- strict comparison


def strict(node: Any) -> Any:
    """A comparable form of an AST that, unlike ``==``, tells 1, 1.0, Decimal(1) and True apart."""
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        fields = [f for f in dataclasses.fields(node) if f.compare]
        return (type(node).__name__, *(strict(getattr(node, f.name)) for f in fields))
    if isinstance(node, tuple | list):
        return tuple(strict(x) for x in node)
    return (type(node).__name__, node)


# ---------------------------------------------------------------- ? numbering


def renumber_params(statement: ast.Statement) -> ast.Statement:
    """Number ``?`` parameters 0, 1, 2 ... in the order the printed text shows them."""
    counter = itertools.count()
    return _renumber(statement, counter)


def _renumber(node: Any, counter) -> Any:
    if isinstance(node, ast.Param):
        return node if node.name is not None else ast.Param(None, next(counter))
    if isinstance(node, tuple):
        return tuple(_renumber(x, counter) for x in node)
    if not dataclasses.is_dataclass(node) or isinstance(node, type):
        return node
    names = [f.name for f in dataclasses.fields(node) if f.compare]
    if "ctes" in names:  # WITH comes first in the text
        names.remove("ctes")
        names.insert(0, "ctes")
    changes = {name: _renumber(getattr(node, name), counter) for name in names}
    return dataclasses.replace(node, **changes)


# ---------------------------------------------------------------- names

_ODD_NAMES = [
    "status",
    "date",
    "count",
    "first",
    "timestamp",
    "key",
    "value",
    "end",
    "limit",
    "offset",
    "left",
    "select",
    "from",
    "Order",
    "Group",
    "null",
    "interval",
    "cast",
    "my col",
    'a"b',
    "a`b",
    "café",
    "1abc",
    "$x",
    "a.b",
    "x y.z",
    "-",
    "Ünïcödé",
    "日本",
    "tab\there",
    "it's",
    "ſelect",
    "ın",
    "ﬁrst",
    "²x",
]
_PLAIN_NAMES = ["a", "b", "c", "t", "u", "orders", "items", "price", "_id", "x1", "a$b", "Amount"]

names = st.one_of(
    st.sampled_from(_PLAIN_NAMES),
    st.sampled_from(_ODD_NAMES),
    st.text(min_size=1, max_size=6),
)


def _fixed_under(fn):
    return names.map(fn).filter(lambda s: s and fn(s) == s)


upper_names = st.one_of(
    st.sampled_from(
        [
            "COUNT",
            "SUM",
            "JSON_OBJECT",
            "LEFT",
            "REPLACE",
            "IF",
            "NOW",
            "TIMESTAMP",
            "FIRST",
            "MOD",
            "DIV",
            "ROW",
            "CONCAT",
            "GROUP_CONCAT",
            "MY FUNC",
            "CAST",
            "SELECT",
            "INTERVAL",
            "DATE",
        ]
    ),
    _fixed_under(str.upper),
)
option_names = st.one_of(
    st.sampled_from(
        [
            "subscription_id",
            "event_filter",
            "batch_size",
            "deliver_to",
            "description",
            "from",
            "my option",
        ]
    ),
    _fixed_under(str.lower),
)
param_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True)
units = st.sampled_from(
    ["MICROSECOND", "SECOND", "MINUTE", "HOUR", "DAY", "WEEK", "MONTH", "QUARTER", "YEAR"]
)
type_names = st.builds(
    ast.TypeName,
    st.sampled_from(
        [
            "INT",
            "BIGINT",
            "DOUBLE",
            "DECIMAL",
            "VARCHAR",
            "TEXT",
            "BOOLEAN",
            "DATE",
            "DATETIME",
            "TIMESTAMP",
            "OBJECTID",
            "MY TYPE",
            "FIRST",
        ]
    ),
    st.one_of(
        st.just(()),
        st.tuples(st.integers(0, 99)),
        st.tuples(st.integers(0, 99), st.integers(0, 99)),
    ),
)

# ---------------------------------------------------------------- literals and leaves

numbers = st.one_of(
    st.integers(-(2**63), 2**63 - 1),  # literals beyond 64 bits are errors (sql/limits.py)
    st.decimals(
        allow_nan=False, allow_infinity=False, min_value=-(10**9), max_value=10**9, places=4
    ),
    st.floats(allow_nan=False, allow_infinity=True),
)
literals = st.builds(
    ast.Literal,
    st.one_of(numbers, st.text(max_size=8), st.booleans(), st.none()),
)
params = st.one_of(st.builds(ast.Param, param_names), st.just(ast.Param(None, 0)))
columns = st.builds(
    lambda first, rest: ast.Column((first, *rest)),
    names,
    st.lists(st.one_of(names, st.integers(0, 12)), max_size=3),
)
leaves = st.one_of(literals, params, columns)


def _canonical_unary(unary: ast.Unary) -> ast.Unary:
    """The parser reads ``-5`` as the literal -5, never as unary minus applied to 5."""
    if unary.op == "-" and _is_number_literal(unary.operand):
        return ast.Unary("+", unary.operand)
    return unary


def _is_number_literal(expr: ast.Expr) -> bool:
    return (
        isinstance(expr, ast.Literal)
        and not isinstance(expr.value, bool)
        and isinstance(expr.value, int | float | Decimal)
    )


# ---------------------------------------------------------------- expressions

BINARY_OPS = [
    "OR",
    "AND",
    "=",
    "<>",
    "<",
    "<=",
    ">",
    ">=",
    "||",
    "+",
    "-",
    "*",
    "/",
    "%",
    "DIV",
    "MOD",
    "|",
    "&",
    "^",
    "<<",
    ">>",
]


def _order_items(exprs):
    return st.lists(
        st.builds(ast.OrderItem, exprs, st.booleans(), st.sampled_from([None, True, False])),
        min_size=1,
        max_size=2,
    ).map(tuple)


frame_bounds = st.one_of(
    st.sampled_from(
        [
            ast.FrameBound("unbounded_preceding"),
            ast.FrameBound("unbounded_following"),
            ast.FrameBound("current_row"),
        ]
    ),
    st.builds(
        ast.FrameBound,
        st.sampled_from(["preceding", "following"]),
        st.one_of(st.integers(0, 100), st.decimals(min_value=0, max_value=100, places=1)),
    ),
)


def _windows(exprs):
    frames = st.one_of(
        st.just((None, None, None)),
        st.tuples(st.sampled_from(["ROWS", "RANGE"]), frame_bounds, st.none()),
        st.tuples(st.sampled_from(["ROWS", "RANGE"]), frame_bounds, frame_bounds),
    )
    return st.builds(
        lambda partition, order, frame: ast.WindowSpec(partition, order, *frame),
        st.lists(exprs, max_size=2).map(tuple),
        st.one_of(st.just(()), _order_items(exprs)),
        frames,
    )


def _func_calls(exprs):
    general = st.builds(
        ast.FuncCall,
        upper_names,
        st.lists(exprs, max_size=3).map(tuple),
        st.booleans(),
        st.one_of(st.just(()), _order_items(exprs)),
        st.one_of(st.none(), exprs),
        st.one_of(st.none(), st.integers(0, 1000)),
        st.one_of(st.none(), _windows(exprs)),
    )
    count_star = st.builds(
        lambda name, over: ast.FuncCall(name, (ast.Star(),), over=over),
        upper_names,
        st.one_of(st.none(), _windows(exprs)),
    )
    return st.one_of(general, count_star)


def _extend(exprs):
    unary = st.builds(ast.Unary, st.sampled_from(["-", "+", "~", "NOT"]), exprs).map(
        _canonical_unary
    )
    return st.one_of(
        st.builds(ast.Binary, st.sampled_from(BINARY_OPS), exprs, exprs),
        unary,
        st.builds(
            ast.InList, exprs, st.lists(exprs, min_size=1, max_size=3).map(tuple), st.booleans()
        ),
        st.builds(ast.Between, exprs, exprs, exprs, st.booleans()),
        st.builds(
            ast.Like, exprs, exprs, st.booleans(), st.booleans(), st.one_of(st.none(), exprs)
        ),
        st.builds(ast.Regexp, exprs, exprs, st.booleans()),
        st.builds(ast.IsNull, exprs, st.booleans()),
        st.builds(ast.JsonArrow, exprs, st.text(max_size=6), st.booleans()),
        _func_calls(exprs),
        st.builds(ast.Cast, exprs, type_names),
        st.builds(
            ast.Extract, st.sampled_from(["YEAR", "MONTH", "DAY", "HOUR", "EPOCH", "DOW"]), exprs
        ),
        st.builds(
            ast.Case,
            st.one_of(st.none(), exprs),
            st.lists(st.builds(ast.When, exprs, exprs), min_size=1, max_size=2).map(tuple),
            st.one_of(st.none(), exprs),
        ),
        st.builds(ast.Interval, exprs, units),
    )


def _subquery_exprs(exprs):
    return st.one_of(
        st.builds(ast.Exists, queries),
        st.builds(ast.ScalarSubquery, queries),
        st.builds(ast.InSubquery, exprs, queries, st.booleans()),
        st.builds(
            ast.Quantified,
            exprs,
            st.sampled_from(["=", "<>", "<", "<=", ">", ">="]),
            st.sampled_from(["ANY", "ALL"]),
            queries,
        ),
    )


plain_exprs = st.recursive(leaves, _extend, max_leaves=8)
exprs = st.deferred(
    lambda: st.one_of(
        plain_exprs,
        plain_exprs,
        plain_exprs,
        _subquery_exprs(plain_exprs),
    )
)

# ---------------------------------------------------------------- queries

small_exprs = st.recursive(leaves, _extend, max_leaves=3)
optional_alias = st.one_of(st.none(), names)

select_items = st.one_of(
    st.builds(ast.SelectItem, exprs, optional_alias),
    st.just(ast.SelectItem(ast.Star())),
    st.builds(lambda t: ast.SelectItem(ast.Star(t)), names),
)

stream_starts = st.builds(
    ast.StreamStart, st.sampled_from(["TIMESTAMP", "TOKEN"]), st.text(max_size=8)
)
durations = st.builds(
    ast.Duration,
    st.integers(min_value=0, max_value=10**6),
    st.sampled_from(sorted(ast.DURATION_UNITS)),
)
optional_durations = st.one_of(st.none(), durations)
stream_windows = st.one_of(
    st.builds(ast.StreamWindow, st.just("TUMBLING"), durations, st.none(), optional_durations),
    st.builds(ast.StreamWindow, st.just("HOPPING"), durations, durations, optional_durations),
    st.builds(ast.StreamWindow, st.just("SESSION"), durations, st.none(), optional_durations),
)
emits = st.builds(
    ast.Emit, st.booleans(), st.one_of(st.none(), st.integers(min_value=0, max_value=10**9))
)

table_primaries = st.deferred(
    lambda: st.one_of(
        st.builds(ast.TableRef, names, optional_alias),
        st.builds(ast.TableRef, names, optional_alias),
        st.builds(
            ast.TableFunction,
            upper_names,
            st.lists(small_exprs, max_size=2).map(tuple),
            optional_alias,
            st.one_of(st.none(), stream_starts),
        ),
        st.builds(ast.DerivedTable, queries, names),
    )
)


def _joins(items):
    return st.one_of(
        st.builds(
            ast.Join,
            st.sampled_from(["INNER", "LEFT", "RIGHT", "FULL"]),
            items,
            table_primaries,
            small_exprs,
        ),
        st.builds(lambda left, right: ast.Join("CROSS", left, right), items, table_primaries),
    )


from_items = st.one_of(
    table_primaries, table_primaries, _joins(table_primaries), _joins(_joins(table_primaries))
)


def _selects(with_tail: bool):
    tail = _tails() if with_tail else st.just({})
    return st.builds(
        lambda items, from_, window, where, group, having, distinct, extra: ast.Select(
            tuple(items),
            tuple(from_),
            where,
            tuple(group),
            having,
            distinct=distinct,
            window=window if from_ else None,  # WINDOW follows FROM
            **extra,
        ),
        st.lists(select_items, min_size=1, max_size=3),
        st.lists(from_items, max_size=2),
        st.one_of(st.none(), st.none(), stream_windows),
        st.one_of(st.none(), small_exprs),
        st.lists(small_exprs, max_size=2),
        st.one_of(st.none(), small_exprs),
        st.booleans(),
        tail,
    )


def _tails():
    ctes = st.lists(st.builds(ast.Cte, names, st.deferred(lambda: queries)), max_size=2)
    return st.fixed_dictionaries(
        {},
        optional={
            "ctes": ctes.map(tuple),
            "order_by": _order_items(small_exprs),
            "limit": small_exprs,
            "offset": small_exprs,
        },
    )


def _set_operations():
    """Left-deep chains: INTERSECT binds tighter than UNION / EXCEPT, as in the grammar."""
    core = _selects(with_tail=False)

    def intersect(left):
        return st.builds(lambda a, b: ast.SetOperation("INTERSECT", a, b), left, core)

    def union(left, right):
        return st.builds(
            lambda op, a, b: ast.SetOperation(op, a, b),
            st.sampled_from(["UNION", "UNION ALL", "EXCEPT"]),
            left,
            right,
        )

    terms = st.one_of(core, core, intersect(core))
    body = st.one_of(
        intersect(core),
        intersect(intersect(core)),
        union(terms, terms),
        union(union(terms, terms), terms),
    )
    return st.builds(lambda q, extra: dataclasses.replace(q, **extra), body, _tails())


queries = st.deferred(
    lambda: st.one_of(_selects(with_tail=True), _selects(with_tail=True), _set_operations())
)

# ---------------------------------------------------------------- statements

options = st.lists(
    st.builds(ast.SubscriptionOption, option_names, small_exprs), min_size=1, max_size=3
).map(tuple)
paths = columns


def _inserts():
    values = st.builds(
        lambda table, cols, rows: ast.Insert(table, tuple(cols), tuple(map(tuple, rows))),
        names,
        st.lists(paths, max_size=3),
        st.lists(st.lists(small_exprs, min_size=1, max_size=3), min_size=1, max_size=2),
    )
    select = st.builds(
        lambda table, cols, q: ast.Insert(table, tuple(cols), (), q),
        names,
        st.lists(paths, max_size=2),
        queries,
    )
    return st.one_of(values, select)


simple_statements = st.one_of(
    st.builds(ast.QueryStatement, queries),
    st.builds(ast.LiveQuery, queries, emits),
    _inserts(),
    st.builds(
        ast.Update,
        names,
        st.lists(st.builds(ast.Assignment, paths, small_exprs), min_size=1, max_size=3).map(tuple),
        st.one_of(st.none(), small_exprs),
        optional_alias,
    ),
    st.builds(ast.Delete, names, st.one_of(st.none(), small_exprs), optional_alias),
    st.builds(ast.CreateView, names, queries, st.booleans()),
    st.builds(ast.DropView, names, st.booleans()),
    st.builds(
        ast.CreateTable,
        names,
        st.lists(
            st.builds(
                lambda name, type_, not_null, key: ast.ColumnDef(name, type_, not_null or key, key),
                names,
                type_names,
                st.booleans(),
                st.booleans(),
            ),
            min_size=1,
            max_size=3,
        ).map(tuple),
        st.lists(names, max_size=2).map(tuple),
        st.booleans(),
    ),
    st.builds(ast.DropTable, names, st.booleans()),
    st.builds(
        ast.CreateSubscription, names, options, st.one_of(st.none(), small_exprs), st.booleans()
    ),
    st.builds(ast.AlterSubscription, names, options),
    st.builds(ast.DropSubscription, names, st.booleans()),
    st.builds(ast.PauseSubscription, names),
    st.builds(ast.ResumeSubscription, names),
    st.builds(ast.ShowSubscriptions, st.booleans()),
    st.builds(ast.ReplayDeadLetters, st.one_of(st.none(), small_exprs)),
    st.builds(ast.ResetSubscription, names, st.one_of(st.none(), st.text(max_size=8))),
    st.just(ast.Begin()),
    st.just(ast.Commit()),
    st.just(ast.Rollback()),
)
statements = st.one_of(
    simple_statements,
    simple_statements,
    simple_statements,
    st.builds(ast.Explain, simple_statements),
).map(renumber_params)
