"""The limits of a statement, checked once after parsing: nesting depth and integer range.

Nesting. The planner and the printer recurse into nested expressions and queries, and so do the
driver's BSON encoder and the EXPLAIN renderers into the nested documents they produce; Python
bounds that recursion (``sys.getrecursionlimit()``, 1000 by default). So a statement may nest
at most ``MAX_DEPTH`` levels, chosen so that every stage at that depth stays well below the
default limit even when the caller is itself deep in a call stack (tests/test_limits.py checks
each kind of nesting at the limit). A level is one operand of an operator of another kind,
one function argument, the operand of NOT or a sign, one CASE inside another (but not in its
ELSE), one JSON arrow, one link of a chain of ``-`` or ``/``; a nested query (subquery, derived
table, WITH query, operand of a set operation) counts as ``QUERY_LEVELS``. Chains written left
to right are not nesting and have no length limit: ``a OR b OR ...``, ``a AND b AND ...``,
``a + b + ...``, ``a * b * ...``, ``a || b || ...``, ``q1 UNION ALL q2 UNION ALL ...``,
``t1 JOIN t2 ... JOIN t3``, ``CASE WHEN ... ELSE CASE WHEN ... END END``, the list of WITH
queries (each may read the one before), IN lists, select lists, VALUES rows.

Integers. MongoDB stores 64-bit integers at most: an integer literal out of that range is an
error (never silently a float).
"""

from __future__ import annotations

import dataclasses

from queryleaf.errors import ErrorCode, Position, SqlSyntaxError
from queryleaf.sql import ast
from queryleaf.sql.walk import node_fields, per_class

MAX_DEPTH = 64
QUERY_LEVELS = 2
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# Operators whose left-deep chains the planner and printer take in one loop.
_FLAT = frozenset({"AND", "OR", "+", "*", "||"})
_TOP_LEVEL = (ast.QueryStatement, ast.Explain, ast.CreateView, ast.Insert)


def check_statement(statement: ast.Statement, sql: str | None = None) -> None:
    """Raise SqlSyntaxError (at the offending node) when ``statement`` nests deeper than
    MAX_DEPTH or holds an integer outside the 64-bit range."""
    stack: list[tuple[ast.Node, int]] = [(statement, 0)]
    pop, push = stack.pop, stack.append
    while stack:
        node, depth = pop()
        if depth > MAX_DEPTH:
            raise SqlSyntaxError(
                f"statement nested too deeply (limit {MAX_DEPTH} levels; "
                f"see Limits in docs/semantics.md)",
                _where(node, statement),
                sql,
                error_code=ErrorCode.LIMIT_EXCEEDED,
            )
        cls = type(node)
        if cls in _INTEGERS:
            _check_integers(node, statement, sql)
        for name, cost in _edges(cls):
            value = getattr(node, name)
            if value is None:
                continue
            for item in value if type(value) is tuple else (value,):
                if type(item) is tuple:  # INSERT rows
                    stack.extend((x, depth + 1) for x in item)
                    continue
                item_depth = depth + (cost if cost >= 0 else _cost(node, name, item))
                if type(item) in _LEAVES and item_depth <= MAX_DEPTH:
                    # most nodes (list items): checked here rather than stacked
                    if type(item) in _INTEGERS:
                        _check_integers(item, statement, sql)
                    continue
                push((item, item_depth))


@per_class
def _edges(cls: type) -> tuple[tuple[str, int], ...]:
    """Per field that can hold nodes: the levels its nodes add, or -1 when that depends on the
    node (`_cost`)."""
    dynamic = {ast.Binary: {"left"}, ast.Case: {"else_"}, ast.SetOperation: {"left"}}
    out = []
    for name in node_fields(cls):
        if name in dynamic.get(cls, ()) or name in _QUERY_FIELDS:
            out.append((name, -1))
        else:
            out.append((name, _static_cost(cls, name)))
    return tuple(out)


# Fields that hold a query (or a list of them): a nested query unless directly in a statement.
_QUERY_FIELDS = frozenset({"query", "right", "left"})


def _static_cost(cls: type, name: str) -> int:
    if cls is ast.Join:
        return 1 if name == "on" else 0
    if issubclass(
        cls,
        ast.Query
        | ast.SelectItem
        | ast.OrderItem
        | ast.Cte
        | ast.DerivedTable
        | ast.Statement
        | ast.When
        | ast.Assignment
        | ast.SubscriptionOption,
    ):
        return 0
    return 1


def _cost(parent: ast.Node, name: str, child: ast.Node) -> int:
    """The levels ``child`` adds below ``parent`` (0: it continues a chain)."""
    if isinstance(child, ast.Query):
        if isinstance(parent, _TOP_LEVEL):
            return 0
        if (
            isinstance(parent, ast.SetOperation)
            and name == "left"
            and (isinstance(child, ast.SetOperation) and not _own_clauses(child))
        ):
            return 0
        return QUERY_LEVELS
    if isinstance(parent, ast.Binary):
        chained = name == "left" and isinstance(child, ast.Binary) and child.op == parent.op
        return 0 if chained and parent.op in _FLAT else 1
    if isinstance(parent, ast.Case) and name == "else_":
        return 0 if isinstance(child, ast.Case) and child.operand is None else 1
    if isinstance(parent, ast.Join):
        return 1 if name == "on" else 0
    return _static_cost(type(parent), name)


def _own_clauses(q: ast.Query) -> bool:
    return bool(q.ctes or q.order_by) or q.limit is not None or q.offset is not None


_INTEGERS = frozenset({ast.Literal, ast.Column, ast.FuncCall, ast.FrameBound, ast.TypeName})


_LEAVES = frozenset(
    cls
    for cls in vars(ast).values()
    if isinstance(cls, type)
    and issubclass(cls, ast.Node)
    and dataclasses.is_dataclass(cls)
    and not node_fields(cls)
)


def _check_integers(node: ast.Node, statement: ast.Statement, sql: str | None) -> None:
    if isinstance(node, ast.Literal):
        if type(node.value) is not int:  # the common case, first
            return
        values: tuple = (node.value,)
    elif isinstance(node, ast.Column):
        values = node.parts
    elif isinstance(node, ast.FuncCall):
        values = (node.limit,)
    elif isinstance(node, ast.FrameBound):
        values = (node.offset,)
    elif isinstance(node, ast.TypeName):
        values = node.params
    else:
        return
    for value in values:
        if (
            isinstance(value, int)
            and not isinstance(value, bool)
            and not (INT64_MIN <= value <= INT64_MAX)
        ):
            raise SqlSyntaxError(
                f"integer {value} is out of range: MongoDB integers are 64-bit "
                f"({INT64_MIN} to {INT64_MAX})",
                _where(node, statement),
                sql,
                str(value),
                error_code=ErrorCode.LIMIT_EXCEEDED,
            )


def _where(node: ast.Node, statement: ast.Statement) -> Position | None:
    return node.pos or statement.pos
