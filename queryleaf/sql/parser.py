"""SQL text → typed AST, through the one Lark grammar (LALR)."""

from __future__ import annotations

import functools
from decimal import Decimal
from importlib import resources
from pathlib import Path

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)

from queryleaf.errors import Position, SqlSyntaxError
from queryleaf.sql import ast


def grammar_text() -> str:
    """The grammar shipped in the wheel, or the repository's copy in a source checkout."""
    packaged = resources.files("queryleaf") / "grammar" / "queryleaf.lark"
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    source = Path(__file__).resolve().parents[2] / "grammar" / "queryleaf.lark"
    return source.read_text(encoding="utf-8")


@functools.cache
def _lark() -> Lark:
    return Lark(
        grammar_text(),
        start="script",
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=True,
    )


def parse_script(sql: str) -> list[ast.ParsedStatement]:
    """Parse text holding zero or more ``;``-separated statements."""
    try:
        tree = _lark().parse(sql)
    except UnexpectedInput as exc:
        raise _syntax_error(sql, exc) from None
    out = []
    for child in tree.children:
        meta = child.meta
        try:
            statement = _ToAst(sql).transform(child)
        except VisitError as exc:
            if isinstance(exc.orig_exc, SqlSyntaxError):
                raise exc.orig_exc from None
            raise
        text = sql[meta.start_pos : meta.end_pos]
        out.append(ast.ParsedStatement(statement, text, meta.line, meta.column))
    return out


def parse(sql: str) -> ast.Statement:
    """Parse exactly one statement (a trailing ``;`` is allowed)."""
    statements = parse_script(sql)
    if not statements:
        raise SqlSyntaxError("empty statement: expected SQL", Position(1, 1, 0), sql)
    if len(statements) > 1:
        second = statements[1]
        raise SqlSyntaxError(
            "expected one statement, found several (use execute_script for scripts)",
            Position(second.line, second.column),
            sql,
        )
    return statements[0].statement


# ---------------------------------------------------------------- errors

_READABLE = {
    "_SEMI": "';'", "STAR": "'*'", "COMP_OP": "comparison operator", "EQ": "'='", "CONCAT_OP": "'||'",
    "ADD_OP": "'+' or '-'", "MUL_OP": "'*', '/', '%', DIV or MOD", "NEG_OP": "'-'",
    "ARROW_OP": "'->' or '->>'", "LIKE_OP": "LIKE", "NAMED_PARAM": "parameter", "QMARK": "'?'",
    "NUMBER": "number", "INT": "integer", "STRING": "string", "NAME": "name",
    "QUOTED_NAME": "name", "BACKTICK_NAME": "name", "LPAR": "'('", "RPAR": "')'",
    "COMMA": "','", "DOT": "'.'", "EQUAL": "'='", "LSQB": "'['", "RSQB": "']'",
    "FRAME_UNIT": "ROWS or RANGE", "$END": "end of input",
}


def _readable(terminal: str) -> str:
    if terminal in _READABLE:
        return _READABLE[terminal]
    if terminal.startswith("__ANON"):
        return terminal
    return terminal.lstrip("_").replace("_", " ") if terminal.isupper() else terminal


def _syntax_error(sql: str, exc: UnexpectedInput) -> SqlSyntaxError:
    line, column = exc.line, exc.column
    if line is None or line < 1:  # errors at end of input carry -1
        lines = sql.splitlines() or [""]
        line, column = len(lines), len(lines[-1]) + 1
    pos = Position(line, column, getattr(exc, "pos_in_stream", 0) or 0)
    expected: set[str] = set()
    if isinstance(exc, UnexpectedToken):
        token = exc.token
        found = "end of input" if token.type == "$END" else repr(str(token))
        expected = set(exc.accepts or exc.expected or ())
    elif isinstance(exc, UnexpectedCharacters):
        found = repr(sql[exc.pos_in_stream]) if exc.pos_in_stream < len(sql) else "end of input"
        expected = set(exc.allowed or ())
    elif isinstance(exc, UnexpectedEOF):
        found = "end of input"
        expected = set(exc.expected or ())
    else:  # pragma: no cover - lark has no other kinds today
        found = "input"
    names = tuple(sorted({_readable(t) for t in expected}))
    message = f"unexpected {found}"
    if names:
        shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
        message += f"; expected {shown}"
    return SqlSyntaxError(message, pos, sql, token=found, expected=names)


# ---------------------------------------------------------------- tree → AST


def _position(meta_or_token) -> Position | None:
    line = getattr(meta_or_token, "line", None)
    if line is None:
        return None
    offset = getattr(meta_or_token, "start_pos", 0) or 0
    return Position(line, meta_or_token.column, offset)


def _unquote_name(token: Token) -> str:
    text = str(token)
    if token.type == "QUOTED_NAME":
        return text[1:-1].replace('""', '"')
    if token.type == "BACKTICK_NAME":
        return text[1:-1].replace("``", "`")
    return text


def _number(text: str) -> int | float | Decimal:
    if any(c in text for c in ".eE"):
        if "e" in text.lower():
            return float(text)
        return Decimal(text)
    return int(text)


def _is_token(x, type_: str) -> bool:
    return isinstance(x, Token) and x.type == type_


@v_args(meta=True)
class _ToAst(Transformer):
    """Builds AST nodes; every method receives the Lark meta (positions) first."""

    def __init__(self, sql: str):
        super().__init__()
        self.sql = sql
        self.qmarks = 0

    # --- names and literals
    def name(self, meta, children):
        return _unquote_name(children[0])

    def qualified_name(self, meta, children):
        return ".".join(children)

    def number(self, meta, children):
        return ast.Literal(_number(str(children[0])), _position(meta))

    def string(self, meta, children):
        return ast.Literal(str(children[0])[1:-1].replace("''", "'"), _position(meta))

    def true(self, meta, children):
        return ast.Literal(True, _position(meta))

    def false(self, meta, children):
        return ast.Literal(False, _position(meta))

    def null(self, meta, children):
        return ast.Literal(None, _position(meta))

    def param(self, meta, children):
        token = children[0]
        if token.type == "QMARK":
            index = self.qmarks
            self.qmarks += 1
            return ast.Param(None, index, _position(meta))
        return ast.Param(str(token)[1:], None, _position(meta))

    def column_ref(self, meta, children):
        parts = tuple(int(c) if _is_token(c, "INT") else c for c in children)
        return ast.Column(parts, _position(meta))

    # --- operators
    def compare(self, meta, children):
        left, op, right = children
        op = "<>" if str(op) == "!=" else str(op)
        return ast.Binary(op, left, right, _position(meta))

    def binary(self, meta, children):
        left, op, right = children
        return ast.Binary(str(op).upper(), left, right, _position(meta))

    def unary(self, meta, children):
        op, operand = children
        if isinstance(operand, ast.Literal) and str(op) == "-" and isinstance(
            operand.value, int | float | Decimal
        ) and not isinstance(operand.value, bool):
            return ast.Literal(-operand.value, _position(meta))
        return ast.Unary(str(op), operand, _position(meta))

    def not_(self, meta, children):
        return ast.Unary("NOT", children[-1], _position(meta))

    def and_(self, meta, children):
        return ast.Binary("AND", children[0], children[1], _position(meta))

    def or_(self, meta, children):
        return ast.Binary("OR", children[0], children[1], _position(meta))

    @staticmethod
    def _split_not(children):
        negated = any(_is_token(c, "NOT") for c in children)
        return negated, [c for c in children if not _is_token(c, "NOT")]

    def in_list(self, meta, children):
        negated, rest = self._split_not(children)
        return ast.InList(rest[0], tuple(rest[1]), negated, _position(meta))

    def in_query(self, meta, children):
        negated, rest = self._split_not(children)
        return ast.InSubquery(rest[0], rest[1], negated, _position(meta))

    def between(self, meta, children):
        negated, rest = self._split_not(children)
        return ast.Between(rest[0], rest[1], rest[2], negated, _position(meta))

    def like(self, meta, children):
        negated, rest = self._split_not(children)
        op = next(c for c in rest if _is_token(c, "LIKE_OP"))
        rest = [c for c in rest if c is not op]
        escape = rest[2] if len(rest) > 2 else None
        ci = str(op).upper() == "ILIKE"
        return ast.Like(rest[0], rest[1], negated, ci, escape, _position(meta))

    def regexp(self, meta, children):
        negated, rest = self._split_not(children)
        return ast.Regexp(rest[0], rest[1], negated, _position(meta))

    def is_null(self, meta, children):
        negated, rest = self._split_not(children)
        return ast.IsNull(rest[0], negated, _position(meta))

    def exists(self, meta, children):
        return ast.Exists(children[0], _position(meta))

    def scalar_subquery(self, meta, children):
        return ast.ScalarSubquery(children[0], _position(meta))

    def json_arrow(self, meta, children):
        expr, op, path = children
        return ast.JsonArrow(expr, str(path)[1:-1].replace("''", "'"), str(op) == "->>",
                             _position(meta))

    def expr_list(self, meta, children):
        return list(children)

    # --- function calls
    def function_call(self, meta, children):
        name, distinct, args, order, separator, limit, over = children
        return ast.FuncCall(
            name.upper(), tuple(args or ()), distinct is not None, tuple(order or ()),
            separator, limit, over, _position(meta),
        )

    def count_star(self, meta, children):
        name, star, over = children
        return ast.FuncCall(name.upper(), (ast.Star(None, _position(star)),), over=over,
                            pos=_position(meta))

    def separator(self, meta, children):
        return children[0]

    def limit_in_call(self, meta, children):
        return int(str(children[0]))

    def over_clause(self, meta, children):
        partition, order, frame = children
        unit, start, end = frame if frame else (None, None, None)
        return ast.WindowSpec(tuple(partition or ()), tuple(order or ()), unit, start, end,
                              _position(meta))

    def partition_by(self, meta, children):
        return list(children)

    def frame(self, meta, children):
        unit = str(children[0]).upper()
        if len(children) == 2:
            return (unit, children[1], None)
        return (unit, children[1], children[2])

    def unbounded_preceding(self, meta, children):
        return ast.FrameBound("unbounded_preceding", None, _position(meta))

    def unbounded_following(self, meta, children):
        return ast.FrameBound("unbounded_following", None, _position(meta))

    def current_row(self, meta, children):
        return ast.FrameBound("current_row", None, _position(meta))

    def n_preceding(self, meta, children):
        return ast.FrameBound("preceding", _number(str(children[0])), _position(meta))

    def n_following(self, meta, children):
        return ast.FrameBound("following", _number(str(children[0])), _position(meta))

    def cast_expr(self, meta, children):
        return ast.Cast(children[0], children[1], _position(meta))

    def type_name(self, meta, children):
        return ast.TypeName(children[0].upper(), tuple(int(str(c)) for c in children[1:] if c),
                            _position(meta))

    def extract_expr(self, meta, children):
        return ast.Extract(children[0].upper(), children[1], _position(meta))

    def case_expr(self, meta, children):
        operand = None
        rest = list(children)
        if rest and not isinstance(rest[0], ast.When):
            operand = rest.pop(0)
        else_ = None
        if rest and not isinstance(rest[-1], ast.When):
            else_ = rest.pop()
        return ast.Case(operand, tuple(rest), else_, _position(meta))

    def when_clause(self, meta, children):
        return ast.When(children[0], children[1], _position(meta))

    def else_clause(self, meta, children):
        return children[0]

    def interval_expr(self, meta, children):
        return ast.Interval(children[0], _singular(children[1].upper()), _position(meta))

    # --- queries
    def query(self, meta, children):
        with_, body, order, limit = children
        ctes = tuple(with_ or ())
        limit_expr, offset_expr = limit if limit else (None, None)
        extra = {"order_by": tuple(order or ()), "limit": limit_expr, "offset": offset_expr}
        if isinstance(body, ast.Select):
            if body.order_by or body.limit or body.ctes:
                raise AssertionError("select_core never carries these")
            return _replace(body, ctes=ctes, **extra)
        return _replace(body, ctes=ctes, **extra)

    def with_clause(self, meta, children):
        return list(children)

    def cte(self, meta, children):
        return ast.Cte(children[0], children[1], _position(meta))

    def _set_op(self, op, meta, left, right):
        return ast.SetOperation(op, left, right, pos=_position(meta))

    def set_union(self, meta, children):
        all_ = any(_is_token(c, "ALL") for c in children)
        rest = [c for c in children if not isinstance(c, Token)]
        return self._set_op("UNION ALL" if all_ else "UNION", meta, rest[0], rest[1])

    def set_except(self, meta, children):
        rest = [c for c in children if not isinstance(c, Token)]
        return self._set_op("EXCEPT", meta, rest[0], rest[1])

    def set_intersect(self, meta, children):
        rest = [c for c in children if not isinstance(c, Token)]
        return self._set_op("INTERSECT", meta, rest[0], rest[1])

    def select_core(self, meta, children):
        distinct, items, from_, where, group, having = children
        return ast.Select(
            items=tuple(items), from_=tuple(from_ or ()), where=where,
            group_by=tuple(group or ()), having=having, distinct=distinct is not None,
            pos=_position(meta),
        )

    def select_list(self, meta, children):
        return list(children)

    def select_star(self, meta, children):
        return ast.SelectItem(ast.Star(None, _position(meta)), None, _position(meta))

    def select_table_star(self, meta, children):
        return ast.SelectItem(ast.Star(children[0], _position(meta)), None, _position(meta))

    def select_expr(self, meta, children):
        expr, alias = children
        return ast.SelectItem(expr, alias, _position(meta))

    def from_clause(self, meta, children):
        return list(children)

    def table_ref(self, meta, children):
        return ast.TableRef(children[0], children[1], _position(meta))

    def table_function(self, meta, children):
        name, args, alias = children
        return ast.TableFunction(name.upper(), tuple(args or ()), alias, _position(meta))

    def derived_table(self, meta, children):
        return ast.DerivedTable(children[0], children[1], _position(meta))

    def join(self, meta, children):
        left, kind, right, on = children
        if on is None:
            raise SqlSyntaxError(f"{kind} JOIN needs an ON condition", _position(meta), self.sql)
        return ast.Join(kind, left, right, on, _position(meta))

    def cross_join(self, meta, children):
        left, _cross, right = children
        return ast.Join("CROSS", left, right, None, _position(meta))

    def join_inner(self, meta, children):
        return "INNER"

    def join_left(self, meta, children):
        return "LEFT"

    def join_right(self, meta, children):
        return "RIGHT"

    def join_full(self, meta, children):
        return "FULL"

    def join_on(self, meta, children):
        return children[0]

    def where_clause(self, meta, children):
        return children[0]

    def group_by(self, meta, children):
        return list(children)

    def having_clause(self, meta, children):
        return children[0]

    def order_by(self, meta, children):
        return list(children)

    def order_item(self, meta, children):
        expr, direction, nulls = children
        desc = direction is not None and direction == "DESC"
        return ast.OrderItem(expr, desc, nulls, _position(meta))

    def direction(self, meta, children):
        return str(children[0]).upper()

    def nulls_order(self, meta, children):
        return str(children[0]).upper() == "FIRST"

    def limit_clause(self, meta, children):
        return (children[0], children[1] if len(children) > 1 else None)

    def offset_only(self, meta, children):
        return (None, children[0])

    # --- statements
    def explain_stmt(self, meta, children):
        return ast.Explain(_as_statement(children[0]), _position(meta))

    def insert_stmt(self, meta, children):
        table, columns, source = children
        cols = tuple(columns or ())
        if isinstance(source, ast.Query):
            return ast.Insert(table, cols, (), source, _position(meta))
        return ast.Insert(table, cols, tuple(source), None, _position(meta))

    def insert_columns(self, meta, children):
        return list(children)

    def values_clause(self, meta, children):
        return list(children)

    def values_row(self, meta, children):
        return tuple(children[0])

    def update_stmt(self, meta, children):
        table, alias, *rest = children
        where = rest.pop() if rest and not isinstance(rest[-1], ast.Assignment) else None
        return ast.Update(table, tuple(rest), where, alias, _position(meta))

    def assignment(self, meta, children):
        return ast.Assignment(children[0], children[2], _position(meta))

    def delete_stmt(self, meta, children):
        table, alias, where = children
        return ast.Delete(table, where, alias, _position(meta))

    def create_view(self, meta, children):
        or_replace, name, query = children
        return ast.CreateView(name, query, or_replace is not None, _position(meta))

    def or_replace(self, meta, children):
        return True

    def drop_view(self, meta, children):
        if_exists, name = children
        return ast.DropView(name, if_exists is not None, _position(meta))

    def create_subscription(self, meta, children):
        if_not_exists, name, options, where = children
        return ast.CreateSubscription(name, tuple(options), where, if_not_exists is not None,
                                      _position(meta))

    def alter_subscription(self, meta, children):
        return ast.AlterSubscription(children[0], tuple(children[1]), _position(meta))

    def drop_subscription(self, meta, children):
        if_exists, name = children
        return ast.DropSubscription(name, if_exists is not None, _position(meta))

    def pause_subscription(self, meta, children):
        return ast.PauseSubscription(children[0], _position(meta))

    def resume_subscription(self, meta, children):
        return ast.ResumeSubscription(children[0], _position(meta))

    def show_subscriptions(self, meta, children):
        return ast.ShowSubscriptions(_position(meta))

    def replay_dead_letters(self, meta, children):
        return ast.ReplayDeadLetters(children[0], _position(meta))

    def reset_subscription(self, meta, children):
        name = children[0]
        ts = next((str(c)[1:-1] for c in children[1:] if _is_token(c, "STRING")), None)
        return ast.ResetSubscription(name, ts, _position(meta))

    def option_list(self, meta, children):
        return list(children)

    def option(self, meta, children):
        return ast.SubscriptionOption(children[0].lower(), children[2], _position(meta))

    def if_not_exists(self, meta, children):
        return True

    def if_exists(self, meta, children):
        return True

    def __default__(self, data, children, meta):
        # Top-level statements arrive as their own rule; a bare query becomes QueryStatement.
        return Tree(data, children, meta)

    def transform(self, tree):
        result = super().transform(tree)
        return _as_statement(result)


def _as_statement(node) -> ast.Statement:
    if isinstance(node, ast.Query):
        return ast.QueryStatement(node, node.pos)
    return node


_UNITS = {
    "MICROSECONDS": "MICROSECOND", "MILLISECONDS": "MILLISECOND", "SECONDS": "SECOND",
    "MINUTES": "MINUTE", "HOURS": "HOUR", "DAYS": "DAY", "WEEKS": "WEEK", "MONTHS": "MONTH",
    "QUARTERS": "QUARTER", "YEARS": "YEAR",
}


def _singular(unit: str) -> str:
    return _UNITS.get(unit, unit)


def _replace(node, **changes):
    import dataclasses

    return dataclasses.replace(node, **changes)
