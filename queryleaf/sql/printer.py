"""AST → canonical queryleaf SQL.

``to_sql`` renders any node (statement, query, expression, clause) so that parsing the text gives
back an equal AST: keywords upper-case, parentheses only where precedence needs them, strings
with ``''`` escaping, names double-quoted only when they are not plain names or are keywords.
``expr_name`` is the default result-column name of an unaliased select expression.

A few ASTs have no text in the dialect (the parser never builds them): a set operation nested on
the right of another, a join nested on the right of a join, a ``SELECT`` operand of a set
operation carrying ORDER BY / LIMIT / WITH, an INSERT without rows. ``to_sql`` raises
``ValueError`` for them rather than print SQL that means something else.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from queryleaf.sql import ast
from queryleaf.sql.parser import BARE_FUNCTIONS

__all__ = ["KEYWORDS", "RESERVED", "expr_name", "quote_name", "to_sql"]

# Every keyword of the grammar (grammar/queryleaf.lark); a name equal to one is printed quoted.
KEYWORDS = frozenset(
    """
    ALL ALTER AND AS ASC BETWEEN BY CASE CAST CREATE CROSS CURRENT DEAD_LETTER_EVENTS DELETE DESC
    BOTH DISTINCT DIV DROP ELSE END ESCAPE EVENT_SUBSCRIPTION EVENT_SUBSCRIPTIONS EXCEPT EXISTS EXPLAIN
    EXTRACT FALSE FIRST FOLLOWING FOR FROM FULL GROUP HAVING IF ILIKE IN INNER INSERT INTERSECT
    INTERVAL INTO IS JOIN LAST LEADING LEFT LIKE LIMIT MOD NOT NOW NULL NULLS OFFSET ON OR ORDER OUTER
    OVER PARTITION PAUSE PRECEDING PRIMARY KEY RANGE REGEXP REPLACE REPLAY RESET RESUME RIGHT RLIKE ROW ROWS
    SELECT SEPARATOR SET SHOW TABLE THEN TIMESTAMP TO TRAILING TRUE UNBOUNDED UNION UPDATE VALUES VIEW WHEN WHERE
    WITH
    BEGIN COMMIT ROLLBACK START TRANSACTION WORK
    COLLECTIONS COLUMNS DATABASES DESCRIBE INDEXES TABLES USE VIEWS
    EMIT CHANGES FINAL SINCE WINDOW TUMBLING HOPPING SESSION SIZE ADVANCE GRACE PERIOD
    MILLISECONDS MILLISECOND SECONDS SECOND MINUTES MINUTE HOURS HOUR DAYS DAY
""".split()
)

# Keywords that are never a plain name (the NAME terminal of the grammar excludes them).
RESERVED = frozenset(
    """
    SELECT FROM WHERE GROUP HAVING ORDER UNION INTERSECT EXCEPT JOIN ON AS AND OR NOT IS IN BETWEEN
    LIKE ILIKE CASE WHEN THEN ELSE NULL TRUE FALSE DISTINCT EXISTS WITH
""".split()
)

# Keywords an expression can start with: a function of that name must be quoted, any other
# keyword reads as a function name in front of "(" (``LEFT(s, 2)``, ``REPLACE(...)``, ``NOW()``).
_EXPRESSION_KEYWORDS = RESERVED | {"CAST", "EXTRACT", "INTERVAL"}

_PLAIN_NAME = re.compile(r"[^\W\d][\w$]*")


def _matcher(words: frozenset[str]) -> re.Pattern[str]:
    # The grammar matches keywords with re.IGNORECASE, which also folds e.g. 'ſ' to 's': test
    # names the same way rather than with str.upper().
    return re.compile("|".join(sorted(words, key=len, reverse=True)), re.IGNORECASE)


_IS_KEYWORD = _matcher(KEYWORDS)
_IS_RESERVED = _matcher(RESERVED)
_IS_EXPRESSION_KEYWORD = _matcher(_EXPRESSION_KEYWORDS)

# ---------------------------------------------------------------- precedence
# Higher binds tighter. An operand is parenthesized when its precedence is below what its place
# in the grammar accepts.
(OR, AND, NOT, PREDICATE, BITOR, BITAND, SHIFT, CONCAT, ADD, MUL, XOR, UNARY, POSTFIX, PRIMARY) = (
    range(1, 15)
)

_BINARY_PRECEDENCE = {
    "OR": OR,
    "AND": AND,
    "=": PREDICATE,
    "<>": PREDICATE,
    "!=": PREDICATE,
    "<": PREDICATE,
    "<=": PREDICATE,
    ">": PREDICATE,
    ">=": PREDICATE,
    "|": BITOR,
    "&": BITAND,
    "<<": SHIFT,
    ">>": SHIFT,
    "||": CONCAT,
    "+": ADD,
    "-": ADD,
    "*": MUL,
    "/": MUL,
    "%": MUL,
    "DIV": MUL,
    "MOD": MUL,
    "^": XOR,
}
_PREDICATES = (
    ast.InList,
    ast.InSubquery,
    ast.Quantified,
    ast.Between,
    ast.Like,
    ast.Regexp,
    ast.IsNull,
    ast.Exists,
)


def precedence(expr: ast.Expr) -> int:
    """How tightly ``expr`` binds when printed (see the constants above)."""
    if isinstance(expr, ast.Binary):
        return _BINARY_PRECEDENCE[expr.op.upper()]
    if isinstance(expr, ast.Unary):
        return NOT if expr.op.upper() == "NOT" else UNARY
    if isinstance(expr, _PREDICATES):
        return PREDICATE
    if isinstance(expr, ast.JsonArrow):
        return POSTFIX
    if isinstance(expr, ast.Literal) and _is_negative_number(expr.value):
        return UNARY  # ``-5`` reads as unary minus applied to 5
    return PRIMARY


def _is_negative_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return False
    return value < 0 or (isinstance(value, float | Decimal) and str(value).startswith("-"))


# ---------------------------------------------------------------- public API


def to_sql(node: Any) -> str:
    """Canonical queryleaf SQL for any AST node."""
    if isinstance(node, ast.ParsedStatement):
        return to_sql(node.statement)
    if isinstance(node, ast.Expr):
        return _expr(node)
    render = _RENDERERS.get(type(node))
    if render is None:
        raise TypeError(f"to_sql: not a queryleaf AST node: {type(node).__name__}")
    return render(node)


def expr_name(expr: ast.Expr) -> str:
    """The default column name of an unaliased select expression.

    A column is named by its path as written, unquoted (``a.b``, ``items[0].price``, ``my col``);
    any other expression by its canonical SQL (``COUNT(*)``, ``price * 2``).
    """
    if isinstance(expr, ast.Column):
        return _raw_path(expr.parts)
    if isinstance(expr, ast.Star):
        return f"{expr.table}.*" if expr.table else "*"
    return to_sql(expr)


def quote_name(name: str) -> str:
    """A name as queryleaf SQL writes it: plain when it can be, else in double quotes."""
    if not name:
        raise ValueError("a name cannot be empty")
    if (
        _PLAIN_NAME.fullmatch(name)
        and not _IS_KEYWORD.fullmatch(name)
        and name.upper() not in BARE_FUNCTIONS
    ):
        return name
    return _quoted(name)


# ---------------------------------------------------------------- names and literals


def _function_name(name: str) -> str:
    """Before "(" a keyword reads as a function name unless an expression can start with it."""
    if _PLAIN_NAME.fullmatch(name) and not _IS_EXPRESSION_KEYWORD.fullmatch(name):
        return name
    return _quoted(name)


def _word(name: str) -> str:
    """A type name or EXTRACT field: only a name fits there, so keywords (other than reserved
    ones) need no quotes: ``CAST(x AS TIMESTAMP)``."""
    if _PLAIN_NAME.fullmatch(name) and not _IS_RESERVED.fullmatch(name):
        return name
    return _quoted(name)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _table_name(name: str) -> str:
    """A possibly qualified collection name (``db.coll``); the parser joins the parts with '.'."""
    parts = name.split(".")
    if all(parts):
        return ".".join(quote_name(p) for p in parts)
    return quote_name(name)


def _path(parts: tuple[str | int, ...]) -> str:
    if not parts or not isinstance(parts[0], str):
        raise ValueError(f"a column path starts with a name: {parts!r}")
    out = [quote_name(parts[0])]
    for part in parts[1:]:
        out.append(f"[{part}]" if isinstance(part, int) else "." + quote_name(part))
    return "".join(out)


def _raw_path(parts: tuple[str | int, ...]) -> str:
    out = [str(parts[0])] if parts else []
    for part in parts[1:]:
        out.append(f"[{part}]" if isinstance(part, int) else f".{part}")
    return "".join(out)


def string_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if value is True:
        return "TRUE"
    if value is False:
        return "FALSE"
    if isinstance(value, str):
        return string_literal(value)
    if isinstance(value, int | float | Decimal):
        return _number(value)
    raise TypeError(f"no SQL literal for {type(value).__name__}: {value!r}")


def _number(value: int | float | Decimal) -> str:
    """Numbers print so that they parse back to the same type: int as digits, Decimal with a
    decimal point, float with an exponent (the parser reads ``1.5`` as Decimal, ``1.5E0`` as
    float)."""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"no SQL literal for {value!r}")
        text = format(value, "f")
        return text if "." in text else text + ".0"
    if math.isnan(value):
        raise ValueError("no SQL literal for NaN")
    if math.isinf(value):
        return "1E999" if value > 0 else "-1E999"
    text = repr(value).upper()
    return text if "E" in text else text + "E0"


# ---------------------------------------------------------------- expressions


def _expr(expr: ast.Expr) -> str:
    render = _EXPR_RENDERERS.get(type(expr))
    if render is None:
        raise TypeError(f"to_sql: not a queryleaf expression: {type(expr).__name__}")
    return render(expr)


def _operand(expr: ast.Expr, minimum: int) -> str:
    """``expr`` printed where the grammar accepts only precedence ``minimum`` or higher."""
    text = _expr(expr)
    return f"({text})" if precedence(expr) < minimum else text


def _binary(expr: ast.Binary) -> str:
    op = expr.op.upper()
    level = _BINARY_PRECEDENCE[op]
    if level == PREDICATE:  # comparisons do not chain: both sides are bitwise-or level
        left, right = _operand(expr.left, BITOR), _operand(expr.right, BITOR)
        op = "<>" if op == "!=" else op
        return f"{left} {op} {right}"
    # Left-associative: a left-deep chain of one level (``a OR b OR c``, ``x - 1 - 2``) prints
    # in one loop over its operands, not one call per operator.
    spine = []
    node: ast.Expr = expr
    while isinstance(node, ast.Binary) and _BINARY_PRECEDENCE[node.op.upper()] == level:
        spine.append(node)
        node = node.left
    parts = [_operand(node, level)]
    for link in reversed(spine):
        parts.append(f" {link.op.upper()} {_operand(link.right, level + 1)}")
    return "".join(parts)


def _unary(expr: ast.Unary) -> str:
    if expr.op.upper() == "NOT":
        return "NOT " + _operand(expr.operand, NOT)
    operand = _operand(expr.operand, UNARY)
    # "- -x" and "-+x": never glue two signs into "--", which starts a comment.
    space = " " if operand[:1] in "-+" and expr.op in "-+" else ""
    return f"{expr.op}{space}{operand}"


def _not(negated: bool) -> str:
    return " NOT" if negated else ""


def _in_list(expr: ast.InList) -> str:
    if not expr.items:
        raise ValueError("IN needs at least one value")
    items = ", ".join(_expr(i) for i in expr.items)
    return f"{_operand(expr.expr, BITOR)}{_not(expr.negated)} IN ({items})"


def _in_subquery(expr: ast.InSubquery) -> str:
    return f"{_operand(expr.expr, BITOR)}{_not(expr.negated)} IN ({_query(expr.query)})"


def _between(expr: ast.Between) -> str:
    return (
        f"{_operand(expr.expr, BITOR)}{_not(expr.negated)} BETWEEN "
        f"{_operand(expr.low, BITOR)} AND {_operand(expr.high, BITOR)}"
    )


def _like(expr: ast.Like) -> str:
    op = "ILIKE" if expr.case_insensitive else "LIKE"
    text = f"{_operand(expr.expr, BITOR)}{_not(expr.negated)} {op} {_operand(expr.pattern, BITOR)}"
    if expr.escape is not None:
        text += f" ESCAPE {_operand(expr.escape, BITOR)}"
    return text


def _regexp(expr: ast.Regexp) -> str:
    return (
        f"{_operand(expr.expr, BITOR)}{_not(expr.negated)} REGEXP {_operand(expr.pattern, BITOR)}"
    )


def _is_null(expr: ast.IsNull) -> str:
    return f"{_operand(expr.expr, BITOR)} IS{_not(expr.negated)} NULL"


def _param(expr: ast.Param) -> str:
    if expr.name is not None:
        return f":{expr.name}"
    return f"${(expr.index or 0) + 1}" if expr.numbered else "?"


def _star(expr: ast.Star) -> str:
    return f"{quote_name(expr.table)}.*" if expr.table else "*"


def _json_arrow(expr: ast.JsonArrow) -> str:
    spine = []
    node: ast.Expr = expr
    while isinstance(node, ast.JsonArrow):  # ``doc->'$.a'->'$.b'``: one loop
        spine.append(node)
        node = node.expr
    parts = [_operand(node, POSTFIX)]
    for link in reversed(spine):
        parts.append(f"{'->>' if link.unquote else '->'}{string_literal(link.path)}")
    return "".join(parts)


def _func_call(expr: ast.FuncCall) -> str:
    inside = []
    if expr.distinct:
        inside.append("DISTINCT")
    if expr.args:
        inside.append(", ".join(_expr(a) for a in expr.args))
    if expr.order_by:
        inside.append(_order_by(expr.order_by))
    if expr.separator is not None:
        inside.append(f"SEPARATOR {_expr(expr.separator)}")
    if expr.limit is not None:
        inside.append(f"LIMIT {expr.limit}")
    text = f"{_function_name(expr.name)}({' '.join(inside)})"
    if expr.over is not None:
        text += f" OVER ({_window(expr.over)})"
    return text


def _window(spec: ast.WindowSpec) -> str:
    parts = []
    if spec.partition_by:
        parts.append("PARTITION BY " + ", ".join(_expr(e) for e in spec.partition_by))
    if spec.order_by:
        parts.append(_order_by(spec.order_by))
    if spec.frame_unit:
        parts.append(_frame(spec))
    return " ".join(parts)


def _frame(spec: ast.WindowSpec) -> str:
    if spec.frame_start is None or spec.frame_unit is None:
        raise ValueError("a window frame needs a unit and a start bound")
    if spec.frame_end is None:
        return f"{spec.frame_unit.upper()} {_frame_bound(spec.frame_start)}"
    return (
        f"{spec.frame_unit.upper()} BETWEEN {_frame_bound(spec.frame_start)}"
        f" AND {_frame_bound(spec.frame_end)}"
    )


_FRAME_BOUNDS = {
    "unbounded_preceding": "UNBOUNDED PRECEDING",
    "unbounded_following": "UNBOUNDED FOLLOWING",
    "current_row": "CURRENT ROW",
}


def _frame_bound(bound: ast.FrameBound) -> str:
    if bound.kind in _FRAME_BOUNDS or bound.offset is None:
        return _FRAME_BOUNDS[bound.kind]
    return f"{_number(bound.offset)} {bound.kind.upper()}"


def _cast(expr: ast.Cast) -> str:
    return f"CAST({_expr(expr.expr)} AS {_type_name(expr.type)})"


def _type_name(node: ast.TypeName) -> str:
    params = f"({', '.join(str(p) for p in node.params)})" if node.params else ""
    return _word(node.name) + params


def _extract(expr: ast.Extract) -> str:
    return f"EXTRACT({_word(expr.unit)} FROM {_expr(expr.expr)})"


def _case(expr: ast.Case) -> str:
    parts = []
    node, ends = expr, 0
    while True:  # ``CASE ... ELSE CASE WHEN ... END END`` (a chain): one loop
        parts.append("CASE")
        if node.operand is not None:
            parts.append(_expr(node.operand))
        parts.extend(_when(w) for w in node.whens)
        ends += 1
        if isinstance(node.else_, ast.Case) and node.else_.operand is None:
            parts.append("ELSE")
            node = node.else_
            continue
        if node.else_ is not None:
            parts.append(f"ELSE {_expr(node.else_)}")
        break
    parts.extend(["END"] * ends)
    return " ".join(parts)


def _when(node: ast.When) -> str:
    return f"WHEN {_expr(node.condition)} THEN {_expr(node.result)}"


# Keywords only after the number of a window's duration: as an INTERVAL unit they read as names.
_TIME_UNITS = frozenset(u + s for u in ast.DURATION_UNITS for s in ("", "S"))


def _interval(expr: ast.Interval) -> str:
    unit = expr.unit if expr.unit.upper() in _TIME_UNITS else quote_name(expr.unit)
    return f"INTERVAL {_operand(expr.value, UNARY)} {unit}"


_EXPR_RENDERERS: dict[type, Callable[[Any], str]] = {
    ast.Literal: lambda e: _literal(e.value),
    ast.Param: _param,
    ast.Column: lambda e: _path(e.parts),
    ast.Star: _star,
    ast.Unary: _unary,
    ast.Binary: _binary,
    ast.InList: _in_list,
    ast.InSubquery: _in_subquery,
    ast.Quantified: lambda e: (
        f"{_operand(e.expr, CONCAT)} {e.op} {e.quantifier} ({_query(e.query)})"
    ),
    ast.Between: _between,
    ast.Like: _like,
    ast.Regexp: _regexp,
    ast.IsNull: _is_null,
    ast.Exists: lambda e: f"EXISTS ({_query(e.query)})",
    ast.ScalarSubquery: lambda e: f"({_query(e.query)})",
    ast.FuncCall: _func_call,
    ast.Cast: _cast,
    ast.Extract: _extract,
    ast.Case: _case,
    ast.Interval: _interval,
    ast.JsonArrow: _json_arrow,
}

# ---------------------------------------------------------------- queries


def _query(query: ast.Query) -> str:
    """A query with its own WITH / ORDER BY / LIMIT / OFFSET."""
    body = _set_operand(query, top=True)
    parts = []
    if query.ctes:
        parts.append("WITH " + ", ".join(_cte(c) for c in query.ctes))
    parts.append(body)
    parts.extend(_tail(query))
    return " ".join(parts)


def _tail(query: ast.Query) -> list[str]:
    parts = []
    if query.order_by:
        parts.append(_order_by(query.order_by))
    if query.limit is not None:
        parts.append(f"LIMIT {_expr(query.limit)}")
    if query.offset is not None:
        parts.append(f"OFFSET {_expr(query.offset)}")
    return parts


def _set_operand(query: ast.Query, top: bool = False) -> str:
    """The body of a query without WITH / ORDER BY / LIMIT (those belong to the whole query)."""
    if not top:
        _check_set_operand(query)
    if isinstance(query, ast.Select):
        return _select_core(query)
    if isinstance(query, ast.SetOperation):
        return _set_operation(query)
    raise TypeError(f"to_sql: not a query: {type(query).__name__}")


# UNION and EXCEPT chain to the left over INTERSECT terms; INTERSECT chains to the left over
# SELECTs. There is no parenthesized query operand, so other shapes have no text.
_LEFT_OPS = {"INTERSECT": ("INTERSECT",)}
_ANY_LEFT = ("UNION", "UNION ALL", "EXCEPT", "INTERSECT")
_RIGHT_OPS = {"INTERSECT": ()}


def _check_set_operand(query: ast.Query) -> None:
    if query.ctes or query.order_by or query.limit is not None or query.offset is not None:
        raise ValueError(
            "an operand of UNION / INTERSECT / EXCEPT cannot have its own "
            "WITH, ORDER BY, LIMIT or OFFSET in queryleaf SQL"
        )


def _set_operation(query: ast.SetOperation) -> str:
    # A left-deep chain (``q1 UNION ALL q2 UNION ALL ...``) prints in one loop over its operands.
    spine = [query]
    while isinstance(spine[-1].left, ast.SetOperation):
        left = spine[-1].left
        _require_set_shape(left, _LEFT_OPS.get(spine[-1].op.upper(), _ANY_LEFT), "left")
        _check_set_operand(left)
        spine.append(left)
    parts = [_set_operand(spine[-1].left)]
    for node in reversed(spine):
        op = node.op.upper()
        _require_set_shape(node.right, _RIGHT_OPS.get(op, ("INTERSECT",)), "right")
        parts.append(f" {op} {_set_operand(node.right)}")
    return "".join(parts)


def _require_set_shape(operand: ast.Query, allowed_ops: tuple[str, ...], side: str) -> None:
    if isinstance(operand, ast.SetOperation) and operand.op.upper() not in allowed_ops:
        raise ValueError(
            f"{operand.op} cannot be the {side} operand here: queryleaf SQL has no "
            "parenthesized set operations"
        )


def _select_core(select: ast.Select) -> str:
    parts = ["SELECT"]
    if select.distinct:
        parts.append("DISTINCT")
    parts.append(", ".join(_select_item(i) for i in select.items))
    if select.from_:
        parts.append("FROM " + ", ".join(_from_item(f) for f in select.from_))
    if select.window is not None:
        if not select.from_:
            raise ValueError("WINDOW needs a FROM clause in queryleaf SQL")
        parts.append(_stream_window(select.window))
    if select.where is not None:
        parts.append(f"WHERE {_expr(select.where)}")
    if select.group_by:
        parts.append("GROUP BY " + ", ".join(_expr(e) for e in select.group_by))
    if select.having is not None:
        parts.append(f"HAVING {_expr(select.having)}")
    return " ".join(parts)


def _select_item(item: ast.SelectItem) -> str:
    text = _expr(item.expr)
    return f"{text} AS {quote_name(item.alias)}" if item.alias else text


def _cte(cte: ast.Cte) -> str:
    return f"{quote_name(cte.name)} AS ({_query(cte.query)})"


def _order_by(items: tuple[ast.OrderItem, ...]) -> str:
    return "ORDER BY " + ", ".join(_order_item(i) for i in items)


def _order_item(item: ast.OrderItem) -> str:
    text = _expr(item.expr)
    if item.descending:
        text += " DESC"
    if item.nulls_first is not None:
        text += " NULLS FIRST" if item.nulls_first else " NULLS LAST"
    return text


def _alias(alias: str | None) -> str:
    return f" AS {quote_name(alias)}" if alias else ""


def _from_item(item: ast.FromItem) -> str:
    if isinstance(item, ast.TableRef):
        return _table_name(item.name) + _alias(item.alias)
    if isinstance(item, ast.TableFunction):
        args = ", ".join(_expr(a) for a in item.args)
        since = _since(item.since) if item.since is not None else ""
        return f"{_function_name(item.name)}({args}){_alias(item.alias)}{since}"
    if isinstance(item, ast.DerivedTable):
        return f"({_query(item.query)}) AS {quote_name(item.alias)}"
    if isinstance(item, ast.Join):
        return _join(item)
    raise TypeError(f"to_sql: not a FROM item: {type(item).__name__}")


def _since(start: ast.StreamStart) -> str:
    if start.kind == "TIMESTAMP":
        return f" SINCE TIMESTAMP {string_literal(start.value)}"
    return f" SINCE {string_literal(start.value)}"


def _duration(d: ast.Duration) -> str:
    return f"{d.amount} {d.unit}"


def _stream_window(w: ast.StreamWindow) -> str:
    grace = f", GRACE PERIOD {_duration(w.grace)}" if w.grace is not None else ""
    if w.kind == "TUMBLING":
        return f"WINDOW TUMBLING (SIZE {_duration(w.size)}{grace})"
    if w.kind == "HOPPING":
        if w.advance is None:
            raise ValueError("a HOPPING window needs ADVANCE BY")
        advance = _duration(w.advance)
        return f"WINDOW HOPPING (SIZE {_duration(w.size)}, ADVANCE BY {advance}{grace})"
    if w.kind == "SESSION":
        return f"WINDOW SESSION ({_duration(w.size)}{grace})"
    raise ValueError(f"to_sql: unknown window kind {w.kind!r}")


def _live_query(stmt: ast.LiveQuery) -> str:
    emit = "EMIT FINAL" if stmt.emit.final else "EMIT CHANGES"
    limit = f" LIMIT {stmt.emit.limit}" if stmt.emit.limit is not None else ""
    return f"{_query(stmt.query)} {emit}{limit}"


_JOIN_WORDS = {
    "INNER": "JOIN",
    "LEFT": "LEFT JOIN",
    "RIGHT": "RIGHT JOIN",
    "FULL": "FULL JOIN",
    "CROSS": "CROSS JOIN",
}


def _join(join: ast.Join) -> str:
    spine = [join]
    while isinstance(spine[-1].left, ast.Join):  # ``a JOIN b ON ... JOIN c ON ...``: one loop
        spine.append(spine[-1].left)
    parts = [_from_item(spine[-1].left)]
    for node in reversed(spine):
        if isinstance(node.right, ast.Join):
            raise ValueError("a join cannot be the right operand of a join in queryleaf SQL")
        kind = node.kind.upper()
        parts.append(f" {_JOIN_WORDS[kind]} {_from_item(node.right)}")
        if kind == "CROSS":
            if node.on is not None:
                raise ValueError("CROSS JOIN takes no ON condition")
            continue
        if node.on is None:
            raise ValueError(f"{kind} JOIN needs an ON condition")
        parts.append(f" ON {_expr(node.on)}")
    return "".join(parts)


# ---------------------------------------------------------------- statements


def _insert(stmt: ast.Insert) -> str:
    text = f"INSERT INTO {_table_name(stmt.table)}"
    if stmt.columns:
        text += " (" + ", ".join(_path(c.parts) for c in stmt.columns) + ")"
    if stmt.query is not None:
        return f"{text} {_query(stmt.query)}"
    if not stmt.rows:
        raise ValueError("INSERT needs VALUES rows or a query")
    rows = ", ".join("(" + ", ".join(_expr(v) for v in row) + ")" for row in stmt.rows)
    return f"{text} VALUES {rows}"


def _update(stmt: ast.Update) -> str:
    sets = ", ".join(_assignment(a) for a in stmt.assignments)
    text = f"UPDATE {_table_name(stmt.table)}{_alias(stmt.alias)} SET {sets}"
    return text + _where(stmt.where)


def _assignment(node: ast.Assignment) -> str:
    return f"{_path(node.target.parts)} = {_expr(node.value)}"


def _delete(stmt: ast.Delete) -> str:
    return f"DELETE FROM {_table_name(stmt.table)}{_alias(stmt.alias)}{_where(stmt.where)}"


def _where(where: ast.Expr | None) -> str:
    return f" WHERE {_expr(where)}" if where is not None else ""


def _create_view(stmt: ast.CreateView) -> str:
    head = "CREATE OR REPLACE VIEW" if stmt.or_replace else "CREATE VIEW"
    return f"{head} {quote_name(stmt.name)} AS {_query(stmt.query)}"


def _drop_view(stmt: ast.DropView) -> str:
    return f"DROP VIEW {'IF EXISTS ' if stmt.if_exists else ''}{quote_name(stmt.name)}"


def _column_def(column: ast.ColumnDef) -> str:
    text = f"{quote_name(column.name)} {_type_name(column.type)}"
    if column.primary_key:
        return text + " PRIMARY KEY"
    return text + (" NOT NULL" if column.not_null else "")


def _create_table(stmt: ast.CreateTable) -> str:
    elements = [_column_def(c) for c in stmt.columns]
    if stmt.primary_key:
        elements.append(f"PRIMARY KEY ({', '.join(quote_name(k) for k in stmt.primary_key)})")
    exists = "IF NOT EXISTS " if stmt.if_not_exists else ""
    return f"CREATE TABLE {exists}{_table_name(stmt.name)} ({', '.join(elements)})"


def _drop_table(stmt: ast.DropTable) -> str:
    return f"DROP TABLE {'IF EXISTS ' if stmt.if_exists else ''}{_table_name(stmt.name)}"


def _options(options: tuple[ast.SubscriptionOption, ...]) -> str:
    return "(" + ", ".join(_option(o) for o in options) + ")"


def _option(option: ast.SubscriptionOption) -> str:
    return f"{quote_name(option.name)} = {_expr(option.value)}"


def _create_subscription(stmt: ast.CreateSubscription) -> str:
    head = "CREATE EVENT_SUBSCRIPTION " + ("IF NOT EXISTS " if stmt.if_not_exists else "")
    return f"{head}{quote_name(stmt.name)} AS {_options(stmt.options)}{_where(stmt.where)}"


def _alter_subscription(stmt: ast.AlterSubscription) -> str:
    return f"ALTER EVENT_SUBSCRIPTION {quote_name(stmt.name)} SET {_options(stmt.options)}"


def _drop_subscription(stmt: ast.DropSubscription) -> str:
    exists = "IF EXISTS " if stmt.if_exists else ""
    return f"DROP EVENT_SUBSCRIPTION {exists}{quote_name(stmt.name)}"


def _reset_subscription(stmt: ast.ResetSubscription) -> str:
    to = "NOW" if stmt.timestamp is None else f"TIMESTAMP {string_literal(stmt.timestamp)}"
    return f"RESET EVENT_SUBSCRIPTION {quote_name(stmt.name)} TO {to}"


_RENDERERS: dict[type, Callable[[Any], str]] = {
    ast.QueryStatement: lambda s: _query(s.query),
    ast.LiveQuery: _live_query,
    ast.Select: _query,
    ast.SetOperation: _query,
    ast.Explain: lambda s: f"EXPLAIN {to_sql(s.statement)}",
    ast.Insert: _insert,
    ast.Update: _update,
    ast.Delete: _delete,
    ast.CreateView: _create_view,
    ast.DropView: _drop_view,
    ast.CreateTable: _create_table,
    ast.DropTable: _drop_table,
    ast.ColumnDef: _column_def,
    ast.CreateSubscription: _create_subscription,
    ast.AlterSubscription: _alter_subscription,
    ast.DropSubscription: _drop_subscription,
    ast.PauseSubscription: lambda s: f"PAUSE EVENT_SUBSCRIPTION {quote_name(s.name)}",
    ast.ResumeSubscription: lambda s: f"RESUME EVENT_SUBSCRIPTION {quote_name(s.name)}",
    ast.ShowSubscriptions: lambda s: "SHOW EVENT_SUBSCRIPTIONS" + (" FULL" if s.full else ""),
    ast.ReplayDeadLetters: lambda s: "REPLAY DEAD_LETTER_EVENTS" + _where(s.where),
    ast.ResetSubscription: _reset_subscription,
    ast.ShowTables: lambda s: "SHOW TABLES",
    ast.ShowViews: lambda s: "SHOW VIEWS",
    ast.ShowDatabases: lambda s: "SHOW DATABASES",
    ast.ShowIndexes: lambda s: (
        "SHOW INDEXES" + (f" FROM {quote_name(s.table)}" if s.table is not None else "")
    ),
    ast.Describe: lambda s: f"DESCRIBE {quote_name(s.table)}",
    ast.Use: lambda s: f"USE {quote_name(s.database)}",
    ast.Begin: lambda s: "BEGIN",
    ast.Commit: lambda s: "COMMIT",
    ast.Rollback: lambda s: "ROLLBACK",
    # clauses and parts
    ast.SelectItem: _select_item,
    ast.OrderItem: _order_item,
    ast.WindowSpec: _window,
    ast.FrameBound: _frame_bound,
    ast.TypeName: _type_name,
    ast.When: _when,
    ast.Cte: _cte,
    ast.TableRef: _from_item,
    ast.TableFunction: _from_item,
    ast.DerivedTable: _from_item,
    ast.Join: _from_item,
    ast.StreamWindow: _stream_window,
    ast.StreamStart: lambda s: _since(s).lstrip(),
    ast.Duration: _duration,
    ast.Assignment: _assignment,
    ast.SubscriptionOption: _option,
}
