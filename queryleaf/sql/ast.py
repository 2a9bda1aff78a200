"""The typed AST of queryleaf SQL: frozen dataclasses.

Every node carries ``pos`` (where it starts in the SQL text) for error messages; positions are
excluded from equality so that two parses of equivalent text compare equal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from queryleaf.errors import Position


def _pos() -> Any:
    return field(default=None, compare=False, repr=False)


class Node:
    pos: Position | None


class Expr(Node):
    """Base of expressions."""


# ---------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Literal(Expr):
    """A constant: str, int, float, Decimal, bool or None (SQL NULL)."""

    value: Any
    pos: Position | None = _pos()


@dataclass(frozen=True)
class Param(Expr):
    """A placeholder: ``:name`` (name set) or ``?`` (index set, 0-based in order of appearance)."""

    name: str | None
    index: int | None = None
    pos: Position | None = _pos()


@dataclass(frozen=True)
class Column(Expr):
    """A column or nested path: parts are str (field) or int (array index)."""

    parts: tuple[str | int, ...]
    pos: Position | None = _pos()


@dataclass(frozen=True)
class Star(Expr):
    """``*`` in COUNT(*) or the select list; ``table.*`` when table is set."""

    table: str | None = None
    pos: Position | None = _pos()


@dataclass(frozen=True)
class Unary(Expr):
    op: str  # '-', '+', 'NOT'
    operand: Expr
    pos: Position | None = _pos()


@dataclass(frozen=True)
class Binary(Expr):
    """Arithmetic, concatenation, comparison and boolean connectives.

    op is one of + - * / % DIV MOD || = <> < <= > >= AND OR
    """

    op: str
    left: Expr
    right: Expr
    pos: Position | None = _pos()


@dataclass(frozen=True)
class InList(Expr):
    expr: Expr
    items: tuple[Expr, ...]
    negated: bool = False
    pos: Position | None = _pos()


@dataclass(frozen=True)
class InSubquery(Expr):
    expr: Expr
    query: Query
    negated: bool = False
    pos: Position | None = _pos()


@dataclass(frozen=True)
class Between(Expr):
    expr: Expr
    low: Expr
    high: Expr
    negated: bool = False
    pos: Position | None = _pos()


@dataclass(frozen=True)
class Like(Expr):
    expr: Expr
    pattern: Expr
    negated: bool = False
    case_insensitive: bool = False
    escape: Expr | None = None
    pos: Position | None = _pos()


@dataclass(frozen=True)
class Regexp(Expr):
    expr: Expr
    pattern: Expr
    negated: bool = False
    pos: Position | None = _pos()


@dataclass(frozen=True)
class IsNull(Expr):
    expr: Expr
    negated: bool = False
    pos: Position | None = _pos()


@dataclass(frozen=True)
class Exists(Expr):
    query: Query
    pos: Position | None = _pos()


@dataclass(frozen=True)
class ScalarSubquery(Expr):
    query: Query
    pos: Position | None = _pos()


@dataclass(frozen=True)
class OrderItem(Node):
    expr: Expr
    descending: bool = False
    nulls_first: bool | None = None  # None: the default (NULLs sort as the smallest value)
    pos: Position | None = _pos()


@dataclass(frozen=True)
class FrameBound(Node):
    kind: str  # 'unbounded_preceding' | 'unbounded_following' | 'current_row' | 'preceding' | 'following'
    offset: int | float | None = None
    pos: Position | None = _pos()


@dataclass(frozen=True)
class WindowSpec(Node):
    partition_by: tuple[Expr, ...] = ()
    order_by: tuple[OrderItem, ...] = ()
    frame_unit: str | None = None  # 'ROWS' | 'RANGE'
    frame_start: FrameBound | None = None
    frame_end: FrameBound | None = None
    pos: Position | None = _pos()


@dataclass(frozen=True)
class FuncCall(Expr):
    """A function or aggregate call. ``args`` may hold a Star for COUNT(*)."""

    name: str  # upper-cased
    args: tuple[Expr, ...] = ()
    distinct: bool = False
    order_by: tuple[OrderItem, ...] = ()  # GROUP_CONCAT / JSON_ARRAYAGG ... ORDER BY
    separator: Expr | None = None  # GROUP_CONCAT ... SEPARATOR
    limit: int | None = None  # JSON_ARRAYAGG ... LIMIT n
    over: WindowSpec | None = None
    pos: Position | None = _pos()


@dataclass(frozen=True)
class TypeName(Node):
    name: str  # upper-cased
    params: tuple[int, ...] = ()
    pos: Position | None = _pos()


@dataclass(frozen=True)
class Cast(Expr):
    expr: Expr
    type: TypeName
    pos: Position | None = _pos()


@dataclass(frozen=True)
class Extract(Expr):
    unit: str  # upper-cased
    expr: Expr
    pos: Position | None = _pos()


@dataclass(frozen=True)
class When(Node):
    condition: Expr
    result: Expr
    pos: Position | None = _pos()


@dataclass(frozen=True)
class Case(Expr):
    operand: Expr | None
    whens: tuple[When, ...]
    else_: Expr | None = None
    pos: Position | None = _pos()


@dataclass(frozen=True)
class Interval(Expr):
    value: Expr
    unit: str  # upper-cased, singular: SECOND, MINUTE, HOUR, DAY, WEEK, MONTH, YEAR ...
    pos: Position | None = _pos()


@dataclass(frozen=True)
class JsonArrow(Expr):
    """``expr -> '$.path'`` (JSON value) or ``expr ->> '$.path'`` (unquoted text)."""

    expr: Expr
    path: str
    unquote: bool = False
    pos: Position | None = _pos()


# ---------------------------------------------------------------- queries


class FromItem(Node):
    """Base of FROM-clause items."""


@dataclass(frozen=True)
class TableRef(FromItem):
    name: str
    alias: str | None = None
    pos: Position | None = _pos()


@dataclass(frozen=True)
class TableFunction(FromItem):
    name: str  # upper-cased
    args: tuple[Expr, ...] = ()
    alias: str | None = None
    pos: Position | None = _pos()


@dataclass(frozen=True)
class DerivedTable(FromItem):
    query: Query
    alias: str
    pos: Position | None = _pos()


@dataclass(frozen=True)
class Join(FromItem):
    kind: str  # 'INNER' | 'LEFT' | 'RIGHT' | 'FULL' | 'CROSS'
    left: FromItem
    right: FromItem
    on: Expr | None = None
    pos: Position | None = _pos()


@dataclass(frozen=True)
class SelectItem(Node):
    expr: Expr  # Star for * / t.*
    alias: str | None = None
    pos: Position | None = _pos()


class Query(Node):
    """Base of SELECT-like statements (Select, SetOperation)."""


@dataclass(frozen=True)
class Cte(Node):
    name: str
    query: Query
    pos: Position | None = _pos()


@dataclass(frozen=True)
class Select(Query):
    items: tuple[SelectItem, ...]
    from_: tuple[FromItem, ...] = ()
    where: Expr | None = None
    group_by: tuple[Expr, ...] = ()
    having: Expr | None = None
    order_by: tuple[OrderItem, ...] = ()
    limit: Expr | None = None
    offset: Expr | None = None
    distinct: bool = False
    ctes: tuple[Cte, ...] = ()
    pos: Position | None = _pos()


@dataclass(frozen=True)
class SetOperation(Query):
    op: str  # 'UNION' | 'UNION ALL' | 'INTERSECT' | 'EXCEPT'
    left: Query
    right: Query
    order_by: tuple[OrderItem, ...] = ()
    limit: Expr | None = None
    offset: Expr | None = None
    ctes: tuple[Cte, ...] = ()
    pos: Position | None = _pos()


# ---------------------------------------------------------------- statements


class Statement(Node):
    """Base of every statement."""


@dataclass(frozen=True)
class QueryStatement(Statement):
    query: Query
    pos: Position | None = _pos()


@dataclass(frozen=True)
class Explain(Statement):
    statement: Statement
    pos: Position | None = _pos()


@dataclass(frozen=True)
class Insert(Statement):
    table: str
    columns: tuple[Column, ...] = ()
    rows: tuple[tuple[Expr, ...], ...] = ()  # VALUES rows; empty when query is set
    query: Query | None = None
    pos: Position | None = _pos()


@dataclass(frozen=True)
class Assignment(Node):
    target: Column
    value: Expr
    pos: Position | None = _pos()


@dataclass(frozen=True)
class Update(Statement):
    table: str
    assignments: tuple[Assignment, ...]
    where: Expr | None = None
    alias: str | None = None
    pos: Position | None = _pos()


@dataclass(frozen=True)
class Delete(Statement):
    table: str
    where: Expr | None = None
    alias: str | None = None
    pos: Position | None = _pos()


@dataclass(frozen=True)
class CreateView(Statement):
    name: str
    query: Query
    or_replace: bool = False
    pos: Position | None = _pos()


@dataclass(frozen=True)
class DropView(Statement):
    name: str
    if_exists: bool = False
    pos: Position | None = _pos()


@dataclass(frozen=True)
class SubscriptionOption(Node):
    name: str  # lower-cased
    value: Expr
    pos: Position | None = _pos()


@dataclass(frozen=True)
class CreateSubscription(Statement):
    name: str
    options: tuple[SubscriptionOption, ...]
    where: Expr | None = None
    if_not_exists: bool = False
    pos: Position | None = _pos()


@dataclass(frozen=True)
class AlterSubscription(Statement):
    name: str
    options: tuple[SubscriptionOption, ...]
    pos: Position | None = _pos()


@dataclass(frozen=True)
class DropSubscription(Statement):
    name: str
    if_exists: bool = False
    pos: Position | None = _pos()


@dataclass(frozen=True)
class PauseSubscription(Statement):
    name: str
    pos: Position | None = _pos()


@dataclass(frozen=True)
class ResumeSubscription(Statement):
    name: str
    pos: Position | None = _pos()


@dataclass(frozen=True)
class ShowSubscriptions(Statement):
    pos: Position | None = _pos()


@dataclass(frozen=True)
class ReplayDeadLetters(Statement):
    where: Expr | None = None
    pos: Position | None = _pos()


@dataclass(frozen=True)
class ResetSubscription(Statement):
    name: str
    timestamp: str | None = None  # None: TO NOW
    pos: Position | None = _pos()
    timestamp_pos: Position | None = _pos()  # where the timestamp's literal is


@dataclass(frozen=True)
class ParsedStatement:
    """A statement of a script with the span of text it came from."""

    statement: Statement
    text: str
    line: int  # 1-based line where the statement starts in the script
    column: int
