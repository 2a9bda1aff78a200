"""The typed AST of queryleaf SQL: frozen dataclasses.

Every node carries ``pos`` (where it starts in the SQL text) for error messages; positions are
excluded from equality so that two parses of equivalent text compare equal.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

from queryleaf.errors import Position


def _pos() -> Any:
    return field(default=None, compare=False, repr=False)


class Node:
    """Base of the nodes. Equality and hashing compare every field but ``pos``, through an
    explicit stack: a chain of 100,000 terms compares without recursion (the methods that
    dataclasses would generate recurse once per level)."""

    __slots__ = ()
    pos: Position | None
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]  # every node class is one

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return _equal(self, other)

    def __hash__(self) -> int:
        return _hash(self)


_COMPARED: dict[type, tuple[str, ...]] = {}


def _compared(cls: type) -> tuple[str, ...]:
    names = _COMPARED.get(cls)
    if names is None:
        names = _COMPARED[cls] = tuple(f.name for f in dataclasses.fields(cls) if f.compare)
    return names


def _equal(a: Node, b: Node) -> bool:
    stack: list[tuple[Any, Any]] = [(a, b)]
    while stack:
        x, y = stack.pop()
        if x is y:
            continue
        if isinstance(x, Node):
            if type(x) is not type(y):
                return False
            stack.extend((getattr(x, n), getattr(y, n)) for n in _compared(type(x)))
        elif type(x) is tuple:
            if type(y) is not tuple or len(x) != len(y):
                return False
            stack.extend(zip(x, y, strict=True))
        elif not x == y:
            return False
    return True


def _hash(root: Node) -> int:
    done: dict[int, int] = {}  # id(node) -> its hash, children before parents
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, ready = stack.pop()
        names = _compared(type(node))
        if ready:
            done[id(node)] = hash(
                (type(node).__name__, *(_field_hash(getattr(node, n), done) for n in names))
            )
            continue
        stack.append((node, True))
        for name in names:
            value = getattr(node, name)
            items = value if type(value) is tuple else (value,)
            for item in items:
                for x in item if type(item) is tuple else (item,):
                    if isinstance(x, Node) and id(x) not in done:
                        stack.append((x, False))
    return done[id(root)]


def _field_hash(value: Any, done: dict[int, int]) -> int:
    if isinstance(value, Node):
        return done[id(value)]
    if type(value) is tuple:  # of nodes, or of tuples of nodes (INSERT rows): two levels
        return hash(tuple(_field_hash(v, done) for v in value))
    return hash(value)


class Expr(Node):
    """Base of expressions."""

    __slots__ = ()


# ---------------------------------------------------------------- expressions


@dataclass(frozen=True, slots=True, eq=False)
class Literal(Expr):
    """A constant: str, int, float, Decimal, bool or None (SQL NULL)."""

    value: Any
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class Param(Expr):
    """A placeholder: ``:name`` (name set), ``?`` (index set, 0-based in order of appearance) or
    ``$n`` (numbered: index n - 1)."""

    name: str | None
    index: int | None = None
    pos: Position | None = _pos()
    numbered: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class Column(Expr):
    """A column or nested path: parts are str (field) or int (array index)."""

    parts: tuple[str | int, ...]
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class Star(Expr):
    """``*`` in COUNT(*) or the select list; ``table.*`` when table is set."""

    table: str | None = None
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class Unary(Expr):
    op: str  # '-', '+', '~' (bitwise NOT), 'NOT'
    operand: Expr
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class Binary(Expr):
    """Arithmetic, bitwise operators, concatenation, comparison and boolean connectives.

    op is one of + - * / % DIV MOD & | ^ << >> || = <> < <= > >= AND OR
    """

    op: str
    left: Expr
    right: Expr
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class InList(Expr):
    expr: Expr
    items: tuple[Expr, ...]
    negated: bool = False
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class InSubquery(Expr):
    expr: Expr
    query: Query
    negated: bool = False
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class Quantified(Expr):
    """``expr op ANY|ALL (query)`` (SOME is ANY)."""

    expr: Expr
    op: str
    quantifier: str  # "ANY" or "ALL"
    query: Query
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class Between(Expr):
    expr: Expr
    low: Expr
    high: Expr
    negated: bool = False
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class Like(Expr):
    expr: Expr
    pattern: Expr
    negated: bool = False
    case_insensitive: bool = False
    escape: Expr | None = None
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class Regexp(Expr):
    expr: Expr
    pattern: Expr
    negated: bool = False
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class IsNull(Expr):
    expr: Expr
    negated: bool = False
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class Exists(Expr):
    query: Query
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class ScalarSubquery(Expr):
    query: Query
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class OrderItem(Node):
    expr: Expr
    descending: bool = False
    nulls_first: bool | None = None  # None: the default (NULLs sort as the smallest value)
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class FrameBound(Node):
    kind: str  # 'unbounded_preceding' | 'unbounded_following' | 'current_row' | 'preceding' | 'following'
    offset: int | float | Decimal | None = None
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class WindowSpec(Node):
    partition_by: tuple[Expr, ...] = ()
    order_by: tuple[OrderItem, ...] = ()
    frame_unit: str | None = None  # 'ROWS' | 'RANGE'
    frame_start: FrameBound | None = None
    frame_end: FrameBound | None = None
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
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


@dataclass(frozen=True, slots=True, eq=False)
class TypeName(Node):
    name: str  # upper-cased
    params: tuple[int, ...] = ()
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class Cast(Expr):
    expr: Expr
    type: TypeName
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class Extract(Expr):
    unit: str  # upper-cased
    expr: Expr
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class When(Node):
    condition: Expr
    result: Expr
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class Case(Expr):
    operand: Expr | None
    whens: tuple[When, ...]
    else_: Expr | None = None
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class Interval(Expr):
    value: Expr
    unit: str  # upper-cased, singular: SECOND, MINUTE, HOUR, DAY, WEEK, MONTH, YEAR ...
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class JsonArrow(Expr):
    """``expr -> '$.path'`` (JSON value) or ``expr ->> '$.path'`` (unquoted text)."""

    expr: Expr
    path: str
    unquote: bool = False
    pos: Position | None = _pos()


# ---------------------------------------------------------------- queries


class FromItem(Node):
    """Base of FROM-clause items."""

    __slots__ = ()


@dataclass(frozen=True, slots=True, eq=False)
class TableRef(FromItem):
    name: str
    alias: str | None = None
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class TableFunction(FromItem):
    name: str  # upper-cased
    args: tuple[Expr, ...] = ()
    alias: str | None = None
    since: StreamStart | None = None  # CHANGE_STREAM(...) SINCE ...
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class StreamStart(Node):
    """``SINCE TIMESTAMP 'iso date-time'`` (``kind`` TIMESTAMP) or ``SINCE 'resume token'``
    (``kind`` TOKEN): where a change stream starts instead of now."""

    kind: str  # 'TIMESTAMP' | 'TOKEN'
    value: str
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class Duration(Node):
    """``n unit`` of a window clause."""

    amount: int
    unit: str  # singular, upper-cased: MILLISECOND, SECOND, MINUTE, HOUR, DAY
    pos: Position | None = _pos()

    @property
    def milliseconds(self) -> int:
        return self.amount * DURATION_UNITS[self.unit]


DURATION_UNITS = {"MILLISECOND": 1, "SECOND": 1000, "MINUTE": 60_000, "HOUR": 3_600_000}
DURATION_UNITS["DAY"] = 24 * DURATION_UNITS["HOUR"]


@dataclass(frozen=True, slots=True, eq=False)
class StreamWindow(Node):
    """``WINDOW TUMBLING (SIZE d) | HOPPING (SIZE d, ADVANCE BY d) | SESSION (d)``, each with an
    optional ``GRACE PERIOD d`` (ksqlDB's syntax). For SESSION, ``size`` is the gap."""

    kind: str  # 'TUMBLING' | 'HOPPING' | 'SESSION'
    size: Duration
    advance: Duration | None = None
    grace: Duration | None = None
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class DerivedTable(FromItem):
    query: Query
    alias: str
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class Join(FromItem):
    kind: str  # 'INNER' | 'LEFT' | 'RIGHT' | 'FULL' | 'CROSS'
    left: FromItem
    right: FromItem
    on: Expr | None = None
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class SelectItem(Node):
    expr: Expr  # Star for * / t.*
    alias: str | None = None
    pos: Position | None = _pos()


class Query(Node):
    """Base of SELECT-like statements (Select, SetOperation)."""

    __slots__ = ()
    ctes: tuple[Cte, ...]
    order_by: tuple[OrderItem, ...]
    limit: Expr | None
    offset: Expr | None


@dataclass(frozen=True, slots=True, eq=False)
class Cte(Node):
    name: str
    query: Query
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
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
    window: StreamWindow | None = None  # only in a live query (EMIT)
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
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

    __slots__ = ()


@dataclass(frozen=True, slots=True, eq=False)
class QueryStatement(Statement):
    query: Query
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class Emit(Node):
    """``EMIT CHANGES [LIMIT n]`` (every change as it comes) or ``EMIT FINAL [LIMIT n]`` (a
    window's rows once, when it closes)."""

    final: bool = False
    limit: int | None = None
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class LiveQuery(Statement):
    """A query over ``CHANGE_STREAM(...)`` ending in EMIT: it runs until stopped and yields
    rows as changes arrive (docs/streaming.md); ``QueryLeaf.stream`` runs it."""

    query: Query
    emit: Emit
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class Explain(Statement):
    statement: Statement
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class Insert(Statement):
    table: str
    columns: tuple[Column, ...] = ()
    rows: tuple[tuple[Expr, ...], ...] = ()  # VALUES rows; empty when query is set
    query: Query | None = None
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class Assignment(Node):
    target: Column
    value: Expr
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class Update(Statement):
    table: str
    assignments: tuple[Assignment, ...]
    where: Expr | None = None
    alias: str | None = None
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class Delete(Statement):
    table: str
    where: Expr | None = None
    alias: str | None = None
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class CreateView(Statement):
    name: str
    query: Query
    or_replace: bool = False
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class DropView(Statement):
    name: str
    if_exists: bool = False
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class ColumnDef(Node):
    """A column of CREATE TABLE: its declared type, NOT NULL, PRIMARY KEY."""

    name: str
    type: TypeName
    not_null: bool = False
    primary_key: bool = False
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class CreateTable(Statement):
    """CREATE TABLE: a collection with a $jsonSchema validator of the columns' types.
    ``primary_key`` names the columns of a table-level PRIMARY KEY (...)."""

    name: str
    columns: tuple[ColumnDef, ...]
    primary_key: tuple[str, ...] = ()
    if_not_exists: bool = False
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class DropTable(Statement):
    name: str
    if_exists: bool = False
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class SubscriptionOption(Node):
    name: str  # lower-cased
    value: Expr
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class CreateSubscription(Statement):
    name: str
    options: tuple[SubscriptionOption, ...]
    where: Expr | None = None
    if_not_exists: bool = False
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class AlterSubscription(Statement):
    name: str
    options: tuple[SubscriptionOption, ...]
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class DropSubscription(Statement):
    name: str
    if_exists: bool = False
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class PauseSubscription(Statement):
    name: str
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class ResumeSubscription(Statement):
    name: str
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class ShowSubscriptions(Statement):
    full: bool = False  # every column (SELECT * FROM EVENT_SUBSCRIPTIONS()), not the summary
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class ReplayDeadLetters(Statement):
    where: Expr | None = None
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class ResetSubscription(Statement):
    name: str
    timestamp: str | None = None  # None: TO NOW
    pos: Position | None = _pos()
    timestamp_pos: Position | None = _pos()  # where the timestamp's literal is


@dataclass(frozen=True, slots=True, eq=False)
class ShowTables(Statement):
    """SHOW TABLES / SHOW COLLECTIONS."""

    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class ShowViews(Statement):
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class ShowDatabases(Statement):
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class ShowIndexes(Statement):
    """SHOW INDEXES [FROM table]: without a table, the indexes of every collection."""

    table: str | None = None
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class Describe(Statement):
    """DESCRIBE table / SHOW COLUMNS FROM table."""

    table: str
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class Use(Statement):
    """USE database: the connection's statements run in another database from now on."""

    database: str
    pos: Position | None = _pos()


class TransactionStatement(Statement):
    """BEGIN, COMMIT or ROLLBACK: they change the connection's transaction, not the data."""

    __slots__ = ()


@dataclass(frozen=True, slots=True, eq=False)
class Begin(TransactionStatement):
    """BEGIN [TRANSACTION | WORK] or START TRANSACTION."""

    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class Commit(TransactionStatement):
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True, eq=False)
class Rollback(TransactionStatement):
    pos: Position | None = _pos()


@dataclass(frozen=True, slots=True)
class ParsedStatement:
    """A statement of a script with the span of text it came from."""

    statement: Statement
    text: str
    line: int  # 1-based line where the statement starts in the script
    column: int
