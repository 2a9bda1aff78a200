"""SQL text → typed AST, through the one Lark grammar (LALR)."""

from __future__ import annotations

import copy
import difflib
import functools
import hashlib
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from lark import Lark, Token, Tree, v_args
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)
from lark.grammar import Rule, Terminal
from lark.lexer import TerminalDef
from lark.parsers.lalr_parser_state import ParserState
from lark.visitors import Transformer_NonRecursive

from queryleaf.errors import ErrorCode, Position, SqlSyntaxError
from queryleaf.sql import ast
from queryleaf.sql.limits import check_statement

BARE_FUNCTIONS = frozenset({"CURRENT_TIMESTAMP", "CURRENT_DATE", "LOCALTIMESTAMP"})


def grammar_text() -> str:
    """The grammar shipped in the wheel, or the repository's copy in a source checkout."""
    packaged = resources.files("queryleaf") / "grammar" / "queryleaf.lark"
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    source = Path(__file__).resolve().parents[2] / "grammar" / "queryleaf.lark"
    return source.read_text(encoding="utf-8")


_LARK_OPTIONS = {
    "start": "script",
    "parser": "lalr",
    "lexer": "contextual",
    "propagate_positions": True,
    "maybe_placeholders": True,
}
CACHE_ENV = "QUERYLEAF_GRAMMAR_CACHE"  # a directory, or "off"


@functools.cache
def _lark() -> Lark:
    """The parser, built once per process (from the on-disk cache when it is current)."""
    text = grammar_text()
    path = _cache_path(text)
    if path is not None:
        cached = _load_cached(path)
        if cached is not None:
            return cached
    parser = Lark(text, **_LARK_OPTIONS)
    if path is not None:
        _save_cached(parser, path)
    return parser


def _cache_path(text: str) -> Path | None:
    """Where the built parser is cached: named by a hash of everything that shapes it, so a
    changed grammar, lark or Python version never loads a stale table."""
    setting = os.environ.get(CACHE_ENV, "")
    if setting.lower() in ("off", "0", "no", "false"):
        return None
    import lark
    import platformdirs

    key = "\n".join([text, lark.__version__, sys.version, repr(sorted(_LARK_OPTIONS.items()))])
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    folder = Path(setting) if setting else Path(platformdirs.user_cache_dir("queryleaf"))
    return folder / f"grammar-{digest}.lark.pickle"


def _load_cached(path: Path) -> Lark | None:
    try:
        with path.open("rb") as f:
            return Lark.load(f)
    except Exception:  # missing, unreadable or corrupt: rebuild (and rewrite it)
        return None


def _save_cached(parser: Lark, path: Path) -> None:
    """Write atomically (temp file + rename): concurrent processes never see a partial file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".grammar-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                parser.save(f)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        _prune_cache(path)
    except OSError:
        pass  # a read-only or full cache dir only costs start-up time


_STALE_SECONDS = 7 * 24 * 3600


def _prune_cache(current: Path) -> None:
    """Remove parsers cached for other grammars that have not been written for a week (another
    installed version may still use a recent one)."""
    now = time.time()
    for other in current.parent.glob("grammar-*.lark.pickle"):
        try:
            if other != current and now - other.stat().st_mtime > _STALE_SECONDS:
                other.unlink()
        except OSError:
            continue


def parse_script(sql: str) -> list[ast.ParsedStatement]:
    """Parse text holding zero or more ``;``-separated statements.

    Valid text takes the fast path (`_fast_script`: the AST is built during the LALR parse).
    Anything it does not accept goes through Lark's own parser and the tree → AST transformer,
    which raise the syntax errors; both paths build the same AST (tests/test_parser_fast.py).
    """
    _check_unicode(sql)
    try:
        statements = _fast_script(sql)
    except Exception:  # noqa: BLE001 - a syntax error, reported by the reference path below
        statements = _reference_script(sql)
    for parsed in statements:
        check_statement(parsed.statement, sql)
    return statements


_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_unicode(sql: str) -> None:
    """A lone UTF-16 surrogate is a Python str but not Unicode text: no string or name holding
    one could be sent to MongoDB (UTF-8), so the text is refused where it holds one."""
    if sql.isascii():
        return
    found = _SURROGATE.search(sql)
    if found is not None:
        offset = found.start()
        line = sql.count("\n", 0, offset) + 1
        column = offset - (sql.rfind("\n", 0, offset) + 1) + 1
        raise SqlSyntaxError(
            f"lone surrogate U+{ord(found.group()):04X} in the SQL text: it is "
            "not Unicode text and cannot be sent to MongoDB as UTF-8",
            Position(line, column, offset),
            sql,
            repr(found.group()),
            (),
        )


def _reference_script(sql: str) -> list[ast.ParsedStatement]:
    """Lark's parse tree (with propagated positions), then `_ToAst` statement by statement."""
    try:
        tree = _lark().parse(sql)
    except UnexpectedInput as exc:
        raise _syntax_error(sql, exc) from None
    # the script rule's children are statement trees, never tokens
    return [_statement(sql, child) for child in tree.children]  # type: ignore[arg-type]


def _statement(sql: str, tree: Tree) -> ast.ParsedStatement:
    meta = tree.meta
    try:
        statement = _ToAst(sql).transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, SqlSyntaxError):
            raise exc.orig_exc from None
        raise
    except RecursionError:
        raise SqlSyntaxError(
            "statement is nested too deeply",
            _position(meta),
            sql,
            token=None,
            expected=(),
            error_code=ErrorCode.LIMIT_EXCEEDED,
        ) from None
    text = sql[meta.start_pos : meta.end_pos]
    return ast.ParsedStatement(statement, text, meta.line, meta.column)


def parse(sql: str) -> ast.Statement:
    """Parse exactly one statement (a trailing ``;`` is allowed)."""
    statements = parse_script(sql)
    if not statements:
        pos = Position(1, 1, 0)
        raise SqlSyntaxError(
            "empty statement: expected SQL", pos, sql, token=None, expected=("statement",)
        )
    if len(statements) > 1:
        second = statements[1]
        raise SqlSyntaxError(
            "expected one statement, found several (use execute_script for scripts)",
            Position(second.line, second.column, _offset(sql, second.line, second.column)),
            sql,
            token=_first_word(second.text),
            expected=("end of input",),
        )
    return statements[0].statement


# ---------------------------------------------------------------- errors

# How terminals read in messages. Keywords read as themselves (``_FROM`` → ``FROM``); string
# terminals as their quoted text; everything else is listed here.
_TERMINAL_NAMES = {
    "COMP_OP": "comparison operator",
    "ADD_OP": "'+' or '-'",
    "MUL_OP": "'*' or '/' or '%'",
    "DIV_OP": "DIV or MOD",
    "NEG_OP": "'-' or '+'",
    "ARROW_OP": "'->' or '->>'",
    "SHIFT_OP": "'<<' or '>>'",
    "LIKE_OP": "LIKE or ILIKE",
    "REGEXP": "REGEXP or RLIKE",
    "FRAME_UNIT": "ROWS or RANGE",
    "NAMED_PARAM": "parameter",
    "NUMBERED_PARAM": "parameter",
    "NUMBER": "number",
    "INT": "integer",
    "STRING": "string",
    "NAME": "name",
    "QUOTED_NAME": "name",
    "BACKTICK_NAME": "name",
    "$END": "end of input",
    "QUANTIFIER": "ANY, SOME or ALL",
    "TIME_UNIT": "time unit",
}
# The tokens an expression can start with: listed together, they read as "expression".
_EXPRESSION_START = {
    "ANY, SOME or ALL",
    "name",
    "number",
    "string",
    "parameter",
    "'?'",
    "'('",
    "'-' or '+'",
    "'~'",
    "CASE",
    "CAST",
    "EXTRACT",
    "INTERVAL",
    "NULL",
    "TRUE",
    "FALSE",
    "EXISTS",
    "NOT",
}
_EXPRESSION_CORE = {"name", "number", "string", "'('"}
# The operators that can follow an operand: when many are possible they read as "operator".
_OPERATORS = {
    "comparison operator",
    "'='",
    "'+' or '-'",
    "'*' or '/' or '%'",
    "DIV or MOD",
    "'||'",
    "'|'",
    "'&'",
    "'^'",
    "'<<' or '>>'",
    "'->' or '->>'",
    "AND",
    "OR",
    "BETWEEN",
    "IN",
    "IS",
    "LIKE or ILIKE",
    "NOT",
    "REGEXP",
}
_UNTERMINATED = {
    "'": "unterminated string: no closing '",
    '"': 'unterminated quoted name: no closing "',
    "`": "unterminated quoted name: no closing `",
}


@functools.cache
def _readable_names() -> dict[str, str]:
    names = {}
    for term in _lark().terminals:
        pattern = term.pattern
        if term.name in _TERMINAL_NAMES:
            names[term.name] = _TERMINAL_NAMES[term.name]
        elif pattern.type == "str":
            names[term.name] = repr(pattern.value) if "'" not in pattern.value else pattern.value
        else:
            names[term.name] = term.name.lstrip("_")
    names["$END"] = "end of input"
    return names


def _readable(terminal: str) -> str:
    return _readable_names().get(terminal) or terminal.lstrip("_")


def _summarize(expected: set[str]) -> tuple[str, ...]:
    """Readable expected tokens, expression starters folded into "expression"; keywords first."""
    names = {_readable(t) for t in expected}
    if _EXPRESSION_CORE <= names:
        names = (names - _EXPRESSION_START) | {"expression"}
    if len(names & _OPERATORS) >= 5:
        names = (names - _OPERATORS) | {"operator"}

    def order(name: str) -> tuple[int, str]:
        if name[:1].isupper():
            return (0, name)
        if name[:1] == "'":
            return (1, name)
        return (2, name)

    return tuple(sorted(names, key=order))


def _describe(token: Token) -> str:
    """The offending token as a message shows it: ``FROM``, ``')'``, ``name 'foo'``..."""
    if token.type == "$END":
        return "end of input"
    text = str(token)
    if token.type in ("NAME", "QUOTED_NAME", "BACKTICK_NAME"):
        return f"name {text}" if token.type != "NAME" else f"name '{text}'"
    if token.type == "STRING":
        return f"string {_clip(text)}"
    if token.type in ("NUMBER", "INT"):
        return f"number {text}"
    if token.type == "NAMED_PARAM":
        return f"parameter {text}"
    if text[:1].isalpha():
        return text.upper()
    return repr(text)


@functools.cache
def keyword_words() -> dict[str, tuple[str, ...]]:
    """The keywords of the grammar, by terminal: ``_FROM`` → (FROM,), ``_REGEXP`` → (REGEXP,
    RLIKE). Completion, highlighting and the did-you-mean of syntax errors read them here."""
    found: dict[str, tuple[str, ...]] = {}
    for term in _lark().terminals:
        if term.pattern.type != "re" or term.name in ("NAME", "QUOTED_NAME", "BACKTICK_NAME"):
            continue
        words = re.findall(r"[A-Z][A-Z_]+", term.pattern.value)
        if term.name == "LIKE_OP":
            words = ["LIKE", "ILIKE"]
        if words:
            found[term.name] = tuple(dict.fromkeys(words))
    return found


def keywords() -> frozenset[str]:
    return frozenset(w for words in keyword_words().values() for w in words)


_WORD = re.compile(r"[^\W\d][\w$]*")
_WORD_BEFORE = re.compile(r"([^\W\d][\w$]*)\s*$")


def _did_you_mean(sql: str, token: Token, accepted: set[str]) -> str:
    """`` (did you mean SELECT?)`` when the unexpected word, or a plain name just before it (a
    misspelt keyword read as an alias: ``FROM t WHER x``), is close to a keyword that fits."""
    words = sorted({w for t in accepted for w in keyword_words().get(t, ())})
    if not words:
        return ""
    if _WORD.fullmatch(str(token)):
        near = difflib.get_close_matches(str(token).upper(), words, n=1, cutoff=0.75)
        if near:
            return f" (did you mean {near[0]}?)"
    before = _WORD_BEFORE.search(sql, 0, token.start_pos or 0)
    if before is not None and before.group(1).upper() not in keywords():
        near = difflib.get_close_matches(before.group(1).upper(), words, n=1, cutoff=0.75)
        if near:
            return f" (did you mean {near[0]} instead of {before.group(1)}?)"
    return ""


def _clip(text: str, width: int = 30) -> str:
    return text if len(text) <= width else text[: width - 4] + "...'"


def _syntax_error(sql: str, exc: UnexpectedInput) -> SqlSyntaxError:
    comment = _unclosed_comment(sql)
    if comment is not None and comment <= (exc.pos_in_stream or 0):
        return _unclosed_comment_error(sql, comment)
    if isinstance(exc, UnexpectedToken):
        return _token_error(sql, exc)
    if isinstance(exc, UnexpectedCharacters):
        return _character_error(sql, exc)
    pos = _end_position(sql)  # UnexpectedEOF: lark's LALR parser does not raise it today
    expected = _summarize(set(getattr(exc, "expected", None) or ()))
    return SqlSyntaxError(
        _message("unexpected end of input", expected),
        pos,
        sql,
        None,
        expected,
        error_code=ErrorCode.UNEXPECTED_INPUT,
    )


def _token_error(sql: str, exc: UnexpectedToken) -> SqlSyntaxError:
    token = exc.token
    expected = _summarize(_accepts(exc))
    if token.type == "$END":
        pos = _end_position(sql, token)
        return SqlSyntaxError(
            _message("unexpected end of input", expected),
            pos,
            sql,
            None,
            expected,
            error_code=ErrorCode.UNEXPECTED_INPUT,
        )
    pos = Position(token.line, token.column, token.start_pos or 0)
    head = f"unexpected {_describe(token)}{_did_you_mean(sql, token, _accepts(exc))}"
    message = _message(head, expected)
    return SqlSyntaxError(
        message, pos, sql, str(token), expected, error_code=ErrorCode.UNEXPECTED_INPUT
    )


def _character_error(sql: str, exc: UnexpectedCharacters) -> SqlSyntaxError:
    offset = exc.pos_in_stream or 0  # always set for a character error
    pos = Position(exc.line, exc.column, offset)
    char = sql[offset]
    if char in _UNTERMINATED:
        rest = sql[offset : offset + 31].split("\n")[0]
        token = rest if len(rest) <= 30 else rest[:30] + "..."
        return SqlSyntaxError(_UNTERMINATED[char], pos, sql, token, ())
    expected = _summarize(_accepts(exc))
    return SqlSyntaxError(
        _message(f"unexpected character {char!r}", expected),
        pos,
        sql,
        char,
        expected,
        error_code=ErrorCode.UNEXPECTED_INPUT,
    )


# Strings, quoted names and comments, in the order the lexer meets them; a bare ``/*`` is the
# start of a comment that is never closed.
_SKIPPABLE = re.compile(
    r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`(?:[^`]|``)*`|--[^\n]*|/\*[\s\S]*?\*/|(/\*)"
)


def _unclosed_comment(sql: str) -> int | None:
    """The offset of a ``/*`` that has no ``*/``, or None."""
    if "/*" not in sql:
        return None
    for match in _SKIPPABLE.finditer(sql):
        if match.group(1):
            return match.start()
    return None


def _unclosed_comment_error(sql: str, offset: int) -> SqlSyntaxError:
    line = sql.count("\n", 0, offset) + 1
    column = offset - (sql.rfind("\n", 0, offset) + 1) + 1
    pos = Position(line, column, offset)
    return SqlSyntaxError("unterminated comment: no closing */", pos, sql, "/*", ("'*/'",))


def _message(head: str, expected: tuple[str, ...]) -> str:
    if not expected:
        return head
    if len(expected) > 12:
        return f"{head}; expected {', '.join(expected[:12])}, ..."
    if len(expected) == 1:
        return f"{head}; expected {expected[0]}"
    return f"{head}; expected {', '.join(expected[:-1])} or {expected[-1]}"


def _accepts(exc: UnexpectedInput) -> set[str]:
    """The terminals the parser could take where it stopped.

    Lark knows this exactly only for errors the parser raises; for a token the contextual lexer
    refused it reports every terminal of the lexer state, which LALR merging makes too broad. So
    ask the parser state itself, as lark's ``InteractiveParser.accepts`` does.
    """
    state = getattr(exc, "state", None)
    if isinstance(state, ParserState):
        return _state_accepts(state)
    found = getattr(exc, "accepts", None) or getattr(exc, "expected", None)
    return set(found or getattr(exc, "allowed", None) or ())


def _state_accepts(state: ParserState) -> set[str]:
    conf = copy.copy(state.parse_conf)
    conf.callbacks = {}
    accepted = set()
    for terminal in conf.parse_table.states[state.position]:
        if not terminal.isupper() and terminal != "$END":
            continue
        trial = state.copy(deepcopy_values=False)
        trial.parse_conf = conf
        try:
            trial.feed_token(Token(terminal, ""), terminal == "$END")
        except UnexpectedToken:
            continue
        except Exception:  # noqa: BLE001 - a probe must never mask the real error
            continue
        accepted.add(terminal)
    return accepted


def _end_position(sql: str, last: Token | None = None) -> Position:
    """Just after the last token (``last``, as lark's end-of-input token borrows its place), or
    after the last non-blank character when there is no token."""
    if last is not None and last.end_pos is not None:
        return Position(last.end_line, last.end_column, last.end_pos)  # type: ignore[arg-type]  # lark sets the end fields together
    offset = len(sql.rstrip())
    line = sql.count("\n", 0, offset) + 1
    return Position(line, offset - (sql.rfind("\n", 0, offset) + 1) + 1, offset)


def _offset(sql: str, line: int, column: int) -> int:
    start = 0
    for _ in range(line - 1):
        start = sql.index("\n", start) + 1
    return start + column - 1


def _first_word(text: str) -> str:
    return text.split(None, 1)[0] if text.strip() else text


# ---------------------------------------------------------------- tree → AST


def _position(meta_or_token: Any) -> Position | None:
    try:
        line = meta_or_token.line
    except AttributeError:  # the meta of a rule that matched no tokens
        return None
    if line is None:
        return None
    return Position(line, meta_or_token.column, getattr(meta_or_token, "start_pos", 0) or 0)


def _unquote_name(token: Token) -> str:
    text = str(token)
    if token.type == "QUOTED_NAME":
        return text[1:-1].replace('""', '"')
    if token.type == "BACKTICK_NAME":
        return text[1:-1].replace("``", "`")
    return text


def _string(token: Token) -> str:
    return str(token)[1:-1].replace("''", "'")


_BLANK = re.compile(r"(?:\s+|--[^\n]*|/\*[\s\S]*?\*/)*")


def _skip_blank(sql: str, offset: int) -> int:
    """The offset of the first character at or after ``offset`` that is not space or comment."""
    return _BLANK.match(sql, offset).end()  # type: ignore[union-attr]  # matches '' at worst


def _number(text: str) -> int | float | Decimal:
    if text.isdigit():
        return int(text)
    if any(c in text for c in ".eE"):
        if "e" in text.lower():
            return float(text)
        return Decimal(text)
    return int(text)


def _is_token(x: object, type_: str) -> bool:
    return isinstance(x, Token) and x.type == type_


# SQL's multi-word type names, as the one-word names queryleaf's types have (BSON dates are UTC
# instants: a timestamp with or without a time zone is the same column type).
_TYPE_SYNONYMS = {
    "DOUBLE PRECISION": "DOUBLE",
    "CHARACTER VARYING": "VARCHAR",
    "CHAR VARYING": "VARCHAR",
    "CHARACTER": "CHAR",
    "TIMESTAMP WITH TIME ZONE": "TIMESTAMP",
    "TIMESTAMP WITHOUT TIME ZONE": "TIMESTAMP",
    "TIMESTAMPTZ": "TIMESTAMP",
}


@v_args(meta=True)
class _ToAst(Transformer_NonRecursive):
    """Builds AST nodes; every method receives the Lark meta (positions) first.

    Non-recursive, so that long operator chains (``a = 1 OR a = 2 OR ...``) do not exhaust the
    Python stack. Children are still transformed left to right (``?`` numbering relies on it).
    """

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
        return ast.Literal(self._number(children[0]), _position(meta))

    def _number(self, token: Token) -> int | float | Decimal:
        try:
            return _number(str(token))
        except ValueError:  # more digits than int() converts (sys.get_int_max_str_digits)
            raise SqlSyntaxError(
                f"number too long: {len(str(token))} digits",
                _position(token),
                self.sql,
                str(token)[:20] + "...",
                (),
                error_code=ErrorCode.LIMIT_EXCEEDED,
            ) from None

    def _integer(self, token: Token) -> int:
        return int(self._number(token))  # an INT token: digits only, an int already

    def string(self, meta, children):
        return ast.Literal(_string(children[0]), _position(meta))

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
        if token.type == "NUMBERED_PARAM":
            return ast.Param(None, int(str(token)[1:]) - 1, _position(meta), numbered=True)
        return ast.Param(str(token)[1:], None, _position(meta))

    def column_ref(self, meta, children):
        if (
            len(children) == 1
            and str(children[0]).upper() in BARE_FUNCTIONS
            and (self.sql[meta.start_pos : meta.end_pos].upper() in BARE_FUNCTIONS)
        ):
            # SQL's niladic functions, written without parentheses (a quoted name stays a column)
            return ast.FuncCall(str(children[0]).upper(), (), pos=_position(meta))
        parts = tuple(self._integer(c) if _is_token(c, "INT") else c for c in children)
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
        if (
            isinstance(operand, ast.Literal)
            and str(op) == "-"
            and isinstance(operand.value, int | float | Decimal)
            and not isinstance(operand.value, bool)
        ):
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

    def quantified(self, meta, children):
        left, op, quantifier, query = children
        op = "<>" if str(op) == "!=" else str(op)
        word = str(quantifier).upper()
        return ast.Quantified(left, op, "ANY" if word == "SOME" else word, query, _position(meta))

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
        return ast.JsonArrow(expr, _string(path), str(op) == "->>", _position(meta))

    def expr_list(self, meta, children):
        return list(children)

    # --- function calls
    def function_call(self, meta, children):
        name, distinct, args, order, separator, limit, over = children
        return ast.FuncCall(
            name.upper(),
            tuple(args or ()),
            distinct is not None,
            tuple(order or ()),
            separator,
            limit,
            over,
            _position(meta),
        )

    def count_star(self, meta, children):
        name, star, over = children
        return ast.FuncCall(
            name.upper(), (ast.Star(None, _position(star)),), over=over, pos=_position(meta)
        )

    def separator(self, meta, children):
        return children[0]

    def limit_in_call(self, meta, children):
        return self._number(children[0])

    def over_clause(self, meta, children):
        partition, order, frame = children
        unit, start, end = frame if frame else (None, None, None)
        return ast.WindowSpec(
            tuple(partition or ()), tuple(order or ()), unit, start, end, _position(meta)
        )

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
        return ast.FrameBound("preceding", self._number(children[0]), _position(meta))

    def n_following(self, meta, children):
        return ast.FrameBound("following", self._number(children[0]), _position(meta))

    def cast_expr(self, meta, children):
        return ast.Cast(children[0], children[1], _position(meta))

    def type_name(self, meta, children):
        words, params, zone = children
        name = " ".join(words)
        if zone is not None:  # only TIMESTAMP WITH TIME ZONE exists
            name += " WITH " + zone
        return ast.TypeName(_TYPE_SYNONYMS.get(name, name), params or (), _position(meta))

    def type_words(self, meta, children):
        return [str(word).upper() for word in children]

    def type_length(self, meta, children):
        return tuple(self._integer(c) for c in children if c is not None)

    def type_zone(self, meta, children):
        return " ".join(str(word).upper() for word in children)

    def from_call(self, meta, children):
        name, side, first, source, length = children
        fn = name.upper()
        pos = _position(meta)
        if fn in ("SUBSTRING", "SUBSTR") and side is None and first is not None:
            args = (first, source) + ((length,) if length is not None else ())
            return ast.FuncCall("SUBSTRING", args, pos=pos)
        if fn == "TRIM" and length is None:
            which = {"LEADING": "LTRIM", "TRAILING": "RTRIM"}.get(str(side).upper(), "TRIM")
            args = (source,) + ((first,) if first is not None else ())
            return ast.FuncCall(which, args, pos=pos)
        raise SqlSyntaxError(
            f"{fn}(... FROM ...) is not valid; only SUBSTRING(s FROM i [FOR n]) "
            "and TRIM([BOTH|LEADING|TRAILING] [x] FROM s) use FROM",
            pos,
            self.sql,
        )

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
        distinct, items, from_, window, where, group, having = children
        return ast.Select(
            items=tuple(items),
            from_=tuple(from_ or ()),
            where=where,
            group_by=tuple(group or ()),
            having=having,
            distinct=distinct is not None,
            window=window,
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
        name, args, alias, since = children
        return ast.TableFunction(name.upper(), tuple(args or ()), alias, since, _position(meta))

    def since_timestamp(self, meta, children):
        return ast.StreamStart("TIMESTAMP", _string(children[0]), _position(children[0]))

    def since_token(self, meta, children):
        return ast.StreamStart("TOKEN", _string(children[0]), _position(children[0]))

    # --- live queries
    def live_query(self, meta, children):
        return ast.LiveQuery(children[0], children[1], _position(meta))

    def emit_clause(self, meta, children):
        kind, limit = children
        final = str(kind).upper() == "FINAL"
        count = self._integer(limit) if limit is not None else None
        return ast.Emit(final, count, _position(meta))

    def window_clause(self, meta, children):
        return _replace(children[0], pos=_position(meta))

    def tumbling(self, meta, children):
        size, grace = children
        return ast.StreamWindow("TUMBLING", size, None, grace, _position(meta))

    def hopping(self, meta, children):
        size, advance, grace = children
        return ast.StreamWindow("HOPPING", size, advance, grace, _position(meta))

    def session(self, meta, children):
        gap, grace = children
        return ast.StreamWindow("SESSION", gap, None, grace, _position(meta))

    def grace(self, meta, children):
        return children[0]

    def duration(self, meta, children):
        amount, unit = children
        return ast.Duration(self._integer(amount), _singular(str(unit).upper()), _position(meta))

    def derived_table(self, meta, children):
        return ast.DerivedTable(children[0], children[1], _position(meta))

    def join(self, meta, children):
        left, kind, right, on = children
        if on is None:
            raise self._missing_on(kind, meta)
        return ast.Join(kind, left, right, on, _position(meta))

    def _missing_on(self, kind: str, meta: Any) -> SqlSyntaxError:
        """Points where ON was expected: at the first token after the joined table."""
        offset = _skip_blank(self.sql, meta.end_pos)
        line = self.sql.count("\n", 0, offset) + 1
        column = offset - (self.sql.rfind("\n", 0, offset) + 1) + 1
        token = self.sql[offset:].split(None, 1)[0] if offset < len(self.sql) else None
        found = f"'{token}'" if token else "end of input"
        message = (
            f"{kind} JOIN needs an ON condition (use CROSS JOIN for every pair of rows);"
            f" found {found}"
        )
        return SqlSyntaxError(message, Position(line, column, offset), self.sql, token, ("ON",))

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

    def create_table(self, meta, children):
        before, name, *elements, after = children
        columns = tuple(e for e in elements if isinstance(e, ast.ColumnDef))
        keys = tuple(k for e in elements if isinstance(e, list) for k in e)
        exists = before is not None or after is not None
        return ast.CreateTable(name, columns, keys, exists, _position(meta))

    def column_def(self, meta, children):
        name, type_name, nullability, primary_key = children
        not_null = nullability is True or primary_key is not None
        return ast.ColumnDef(name, type_name, not_null, primary_key is not None, _position(meta))

    def nullability(self, meta, children):
        return bool(children)  # True: NOT NULL

    def column_primary_key(self, meta, children):
        return True

    def primary_key(self, meta, children):
        return list(children)

    def drop_table(self, meta, children):
        if_exists, name = children
        return ast.DropTable(name, if_exists is not None, _position(meta))

    def create_subscription(self, meta, children):
        if_not_exists, name, options, where = children
        return ast.CreateSubscription(
            name, tuple(options), where, if_not_exists is not None, _position(meta)
        )

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
        return ast.ShowSubscriptions(children[0] is not None, _position(meta))

    def replay_dead_letters(self, meta, children):
        return ast.ReplayDeadLetters(children[0], _position(meta))

    def reset_subscription(self, meta, children):
        name = children[0]
        literal = next((c for c in children[1:] if _is_token(c, "STRING")), None)
        ts = _string(literal) if literal is not None else None
        return ast.ResetSubscription(
            name, ts, _position(meta), _position(literal) if literal is not None else None
        )

    def show_tables(self, meta, children):
        return ast.ShowTables(_position(meta))

    def show_views(self, meta, children):
        return ast.ShowViews(_position(meta))

    def show_databases(self, meta, children):
        return ast.ShowDatabases(_position(meta))

    def show_indexes(self, meta, children):
        return ast.ShowIndexes(children[0], _position(meta))

    def describe_stmt(self, meta, children):
        return ast.Describe(children[0], _position(meta))

    def use_stmt(self, meta, children):
        return ast.Use(children[0], _position(meta))

    def begin_stmt(self, meta, children):
        return ast.Begin(_position(meta))

    def commit_stmt(self, meta, children):
        return ast.Commit(_position(meta))

    def rollback_stmt(self, meta, children):
        return ast.Rollback(_position(meta))

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


def _as_statement(node: ast.Statement | ast.Query) -> ast.Statement:
    if isinstance(node, ast.Query):
        return ast.QueryStatement(node, node.pos)
    return node


_UNITS = {
    "MICROSECONDS": "MICROSECOND",
    "MILLISECONDS": "MILLISECOND",
    "SECONDS": "SECOND",
    "MINUTES": "MINUTE",
    "HOURS": "HOUR",
    "DAYS": "DAY",
    "WEEKS": "WEEK",
    "MONTHS": "MONTH",
    "QUARTERS": "QUARTER",
    "YEARS": "YEAR",
}


def _singular(unit: str) -> str:
    return _UNITS.get(unit, unit)


def _replace(node, **changes):
    import dataclasses

    return dataclasses.replace(node, **changes)


# ---------------------------------------------------------------- fast path
#
# Lark's LALR parser, run with `propagate_positions`, builds a parse tree whose every reduction
# goes through several wrapper objects, and the tree is then walked again by `_ToAst`. Most of
# the reductions are unit steps of the precedence ladder (expr → or_expr → ... → primary). The
# loop below runs the same parse table and the same contextual lexer states, and calls the same
# `_ToAst` methods as each rule is reduced, with a `_Meta` that holds what Lark's propagated
# meta would hold: nodes start at their first token and end at their last, counting the tokens
# that are filtered out of the tree (keywords, punctuation) and those of inlined rules.
# It never reports errors: on any failure parse_script takes the reference path.


class _Meta:
    """The span of a reduction, as `_ToAst` reads Lark's ``Meta``."""

    __slots__ = ("line", "column", "start_pos", "end_pos")

    def __init__(self, first: Token, last: Token):
        self.line = first.line
        self.column = first.column
        self.start_pos = first.start_pos
        self.end_pos = last.end_pos


class _NoMeta:
    """The meta of a rule that matched no tokens (no ``line``: `_position` gives None)."""

    __slots__ = ()


_NO_META = _NoMeta()


class _Inline:
    """The children of a ``_rule`` (Lark's ``x*`` / ``x+`` helpers), spliced into the parent."""

    __slots__ = ("children",)

    def __init__(self, children: list):
        self.children = children


# Rule kinds: how the value of a reduction is made.
_UNIT = 0  # `?rule: x` — the child itself, span unchanged
_STATEMENT = 1  # `?statement: x` — the same, and ``?`` numbering restarts
_PASS = 2  # `?rule` that always keeps one child, e.g. "(" expr ")": that child, wider span
_NODE = 3  # a `_ToAst` method on (meta, filtered children)
_SPLICE = 4  # a ``_rule``: its filtered children, spliced into the parent
_SCRIPT = 5  # the script and its helper rules: statements with their spans


def _child_filter(rule: Rule) -> tuple[list[tuple[int, bool, int]], int]:
    """Which children of a reduction reach the node, as Lark's ``maybe_create_child_filter``
    (with ``maybe_placeholders``) computes them: (index, splice, Nones before it), Nones after."""
    expansion = rule.expansion
    empty = rule.options.empty_indices
    if empty:
        counts = [len(ones) for ones in "".join(str(int(b)) for b in empty).split("0")]
    else:
        counts = [0] * (len(expansion) + 1)
    include = []
    nones = 0
    for i, sym in enumerate(expansion):
        nones += counts[i]
        if rule.options.keep_all_tokens or not (isinstance(sym, Terminal) and sym.filter_out):
            include.append((i, not sym.is_term and sym.name.startswith("_"), nones))
            nones = 0
    return include, nones + counts[len(expansion)]


def _filter_function(
    include: list[tuple[int, bool, int]], trailing: int, size: int
) -> Callable[[list], list] | None:
    """A function: the reduced values → the children the node is built from."""
    if not any(splice for _, splice, _ in include):
        indexes: list[int | None] = []
        for i, _, nones in include:
            indexes += [None] * nones + [i]
        indexes += [None] * trailing
        if indexes == list(range(size)):
            return None  # every value, as it is
        if None not in indexes:
            picks = tuple(i for i in indexes if i is not None)
            return lambda values: [values[i] for i in picks]
        return lambda values: [None if i is None else values[i] for i in indexes]

    # Lark's ``x*`` helpers are left-recursive (``__star: __star "," expr``): the spliced list of
    # the first child is grown in place, never copied, or a list of n items costs O(n²). Safe:
    # an _Inline is made by one reduction and consumed by exactly one parent.
    first_splice = include[0][0] if include and include[0][1] and not include[0][2] else None

    def splicing(values):
        if first_splice is not None:
            children = values[first_splice].children
            rest = include[1:]
        else:
            children = []
            rest = include
        for i, splice, nones in rest:
            if nones:
                children += [None] * nones
            if splice:
                children += values[i].children
            else:
                children.append(values[i])
        if trailing:
            children += [None] * trailing
        return children

    return splicing


class _FastTables:
    """The parse table, rules and lexer states of the cached Lark parser, in the form the loop
    below reads fastest: per state, a dict terminal or rule name → int (shift target, or ``~rule``
    for a reduction, or the goto state); rules as tuples."""

    def __init__(self, lark: Lark):
        frontend = lark.parser
        table = frontend.parser.parser.parse_table
        lexer = frontend.lexer
        count = max(table.states) + 1
        rules: list[tuple] = []
        rule_ids: dict = {}
        self.actions: list[dict[str, int]] = [{} for _ in range(count)]
        for state, row in table.states.items():
            out = self.actions[state]
            for key, (action, arg) in row.items():
                if action.name == "Shift":
                    out[key] = arg
                else:
                    if arg not in rule_ids:
                        rule_ids[arg] = len(rules)
                        rules.append(self._rule(arg))
                    out[key] = ~rule_ids[arg]
        self.rules = rules
        _check_spans(lark.rules)
        self.units: dict[tuple[int, int, str], int] = {}
        self.start = table.start_states["script"]
        self.end = table.end_states["script"]
        # The contextual lexer: per state, an ordered alternation of the terminals that state
        # accepts (the first alternative that matches wins). `lexers[state]` maps the character
        # at the current offset to a smaller alternation: the same terminals in the same order,
        # less those that cannot start with that character (see `_first_chars`), which could not
        # have matched there anyway. Built as characters are met (as Lark builds the scanner of
        # a state when it is first met).
        self.lexers: list[dict[str, Callable[..., Any]]] = [{} for _ in range(count)]
        self._basic: list = [None] * count
        self._subsets: dict[tuple[str, ...], Callable[..., Any]] = {}
        self._first: dict[str, frozenset[str] | None] = {}
        newline: set[str] = set()
        ignore: set[str] = set()
        for state, basic in lexer.lexers.items():
            self._basic[state] = basic
            newline |= basic.newline_types
            ignore |= basic.ignore_types
        self.newline = frozenset(newline)
        self.ignore = frozenset(ignore)

    def first_chars(self, terminal: TerminalDef) -> frozenset[str] | None:
        try:
            return self._first[terminal.name]
        except KeyError:
            chars = self._first[terminal.name] = _first_chars(terminal.pattern.to_regexp())
            return chars

    def unit_chain(self, key: tuple[int, int, str]) -> int:
        """The state a run of unit reductions (``?rule: x``) ends in, from the state below the
        top, the top state and the lookahead (all it depends on); remembered in `units`."""
        below, top, lookahead = key
        while True:
            action = self.actions[top][lookahead]
            if action >= 0:
                break
            kind, _size, origin, _extra = self.rules[~action]
            if kind != _UNIT:
                break
            top = self.actions[below][origin]
        self.units[key] = top
        return top

    def lexer(self, state: int, char: str) -> Callable[..., Any]:
        """The ``match`` of the alternation for ``state`` at a ``char`` (and remember it)."""
        basic = self._basic[state]
        scanner = basic.scanner
        if basic.callback or len(scanner._mres) != 1 or scanner.use_bytes:
            raise ValueError("lexer callbacks or split patterns: not supported by the fast path")
        if char >= "\x80":  # first-character sets only cover ASCII
            return scanner._mres[0].match
        terms = [
            t for t in scanner.terminals if (chars := self.first_chars(t)) is None or char in chars
        ]
        key = tuple(t.name for t in terms)
        found = self._subsets.get(key)
        if found is None:
            if len(terms) == len(scanner.terminals):
                found = scanner._mres[0].match
            else:
                pattern = "|".join(f"(?P<{t.name}>{t.pattern.to_regexp()})" for t in terms)
                found = re.compile(pattern or "(?!)", scanner.g_regex_flags).match
            self._subsets[key] = found
        self.lexers[state][char] = found
        return found

    @staticmethod
    def _rule(rule: Rule) -> tuple:
        origin = rule.origin.name
        name = rule.alias or origin
        size = len(rule.expansion)
        include, trailing = _child_filter(rule)
        filter_fn = _filter_function(include, trailing, size)
        if origin == "script" or origin.startswith("__script"):
            statements = tuple(i for i, sym in enumerate(rule.expansion) if sym.name == "statement")
            return (_SCRIPT, size, origin, (filter_fn, statements, origin == "script"))
        if origin.startswith("_"):
            if rule.options.expand1:
                raise ValueError(f"inlined rule {origin} cannot be a ?rule")
            return (_SPLICE, size, origin, filter_fn or (lambda values: values))
        if rule.options.expand1 and not rule.alias:
            if size == 1 and filter_fn is None:
                return (_STATEMENT if origin == "statement" else _UNIT, size, origin, None)
            if (
                not any(splice for _, splice, _ in include)
                and len(include) == 1
                and not (include[0][2] or trailing)
            ):
                return (_PASS, size, origin, include[0][0])
            raise ValueError(f"?rule {origin} may keep several children")
        method = _ToAst.__dict__.get(name)
        if method is None:
            raise ValueError(f"no AST method for rule {name}")
        return (_NODE, size, origin, (getattr(method, "base_func", method), filter_fn))


_ASCII = [chr(i) for i in range(128)]


def _first_chars(regexp: str) -> frozenset[str] | None:
    """The ASCII characters a match of ``regexp`` can start with, or None for "any" (when
    unsure). Never too small: it only ever drops alternatives that cannot match."""
    from re import _constants as c
    from re import _parser

    def charset(items: Any, icase: bool) -> set[str] | None:
        chars: set[str] = set()
        negate = False
        for op, av in items:
            if op is c.NEGATE:
                negate = True
            elif op is c.LITERAL:
                chars.add(chr(av))
            elif op is c.RANGE:
                chars.update(ch for ch in _ASCII if av[0] <= ord(ch) <= av[1])
            elif op is c.CATEGORY and av in _CATEGORIES:
                chars.update(ch for ch in _ASCII if _CATEGORIES[av](ch))
            else:
                return None
        if negate:
            if icase:
                return None
            chars = set(_ASCII) - chars
        if icase:
            chars |= {ch.swapcase() for ch in chars}
        return {ch for ch in chars if ch < "\x80"}

    def first(items: Any, icase: bool) -> tuple[set[str] | None, bool]:
        """(first characters, whether the sequence can match the empty string)"""
        found: set[str] = set()
        for op, av in items:
            if op is c.LITERAL:
                ch = chr(av)
                found |= {ch, ch.swapcase()} if icase else {ch}
                return found, False
            if op is c.IN:
                chars = charset(av, icase)
                if chars is None:
                    return None, False
                return found | chars, False
            if op is c.SUBPATTERN:
                _group, add, remove, sub = av
                inner, empty = first(
                    sub,
                    (icase or bool(add & c.SRE_FLAG_IGNORECASE))
                    and not remove & c.SRE_FLAG_IGNORECASE,
                )
            elif op is c.BRANCH:
                inner, empty = set(), False
                for branch in av[1]:
                    chars, branch_empty = first(branch, icase)
                    if chars is None:
                        return None, False
                    inner |= chars
                    empty = empty or branch_empty
            elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
                inner, empty = first(av[2], icase)
                empty = empty or av[0] == 0
            elif op in (c.AT, c.ASSERT, c.ASSERT_NOT):
                continue  # zero-width: the next item decides
            else:
                return None, False
            if inner is None:
                return None, False
            found |= inner
            if not empty:
                return found, False
        return found, True

    try:
        chars, empty = first(_parser.parse(regexp), False)
    except Exception:  # noqa: BLE001 - unknown regex internals: no narrowing
        return None
    return None if chars is None or empty else frozenset(chars)


def _category(pattern: str) -> Callable[[str], bool]:
    compiled = re.compile(pattern)
    return lambda ch: compiled.match(ch) is not None


_CATEGORIES = {}
try:
    from re import _constants as _re_constants

    _CATEGORIES = {
        _re_constants.CATEGORY_DIGIT: _category(r"\d"),
        _re_constants.CATEGORY_NOT_DIGIT: _category(r"\D"),
        _re_constants.CATEGORY_SPACE: _category(r"\s"),
        _re_constants.CATEGORY_NOT_SPACE: _category(r"\S"),
        _re_constants.CATEGORY_WORD: _category(r"\w"),
        _re_constants.CATEGORY_NOT_WORD: _category(r"\W"),
    }
except (ImportError, AttributeError):  # pragma: no cover - another Python: no narrowing
    pass


def _check_spans(rules: list[Rule]) -> None:
    """The loop takes the end of a reduced span from the last token shifted, which is right
    unless a rule ends with a symbol that can match nothing: refuse such a grammar."""
    nullable: set[str] = set()
    grown = True
    while grown:
        grown = False
        for rule in rules:
            name = rule.origin.name
            if name not in nullable and all(
                not s.is_term and s.name in nullable for s in rule.expansion
            ):
                nullable.add(name)
                grown = True
    for rule in rules:
        last = rule.expansion[-1] if rule.expansion else None
        if last is not None and not last.is_term and last.name in nullable:
            raise ValueError(f"rule {rule.origin.name} ends with {last.name}, which can be empty")


@functools.cache
def _fast_tables() -> _FastTables | None:
    try:
        return _FastTables(_lark())
    except ValueError:  # a grammar the fast path does not handle: the reference path only
        return None


def _fast_script(sql: str) -> list[ast.ParsedStatement]:
    """Parse and build the AST in one pass; raises (anything) where the text is not valid."""
    tables = _fast_tables()
    if tables is None:
        raise ValueError("no fast path for this grammar")
    actions = tables.actions
    rules = tables.rules
    lexers = tables.lexers
    units = tables.units
    newline = tables.newline
    ignore = tables.ignore
    end_state = tables.end
    builder = _ToAst(sql)
    new_str = str.__new__
    unit, statement, node, pass_, splice = _UNIT, _STATEMENT, _NODE, _PASS, _SPLICE

    states = [tables.start]
    values: list = []
    firsts: list = []  # per stack entry: its first token (None: it matched no tokens)
    token = None  # the last token shifted: the last token of whatever is reduced next
    ends: dict[int, Token | None] = {}  # stack index → last token of the statement reduced there
    pos = 0
    line = 1
    line_start = 0
    size_text = len(sql)
    while True:
        # ---- the next token, lexed in the terminals the current state accepts
        last = token
        token = None
        while pos < size_text:
            char = sql[pos]
            if char == " ":  # ignored in every state (%ignore WS): skip it without the lexer
                pos += 1
                continue
            lex = lexers[states[-1]].get(char) or tables.lexer(states[-1], char)
            m = lex(sql, pos)
            if m is None:
                raise ValueError("no terminal matches")
            value = m.group()
            type_ = m.lastgroup
            start = pos
            start_line = line
            pos = m.end()
            if type_ in newline:
                breaks = value.count("\n")
                if breaks:
                    line += breaks
                    column = start - line_start + 1
                    line_start = start + value.rindex("\n") + 1
                    if type_ in ignore:
                        continue
                elif type_ in ignore:
                    continue
                else:
                    column = start - line_start + 1
            elif type_ in ignore:
                continue
            else:
                column = start - line_start + 1
            # lark.Token(type_, value, start, start_line, column, line, end column, pos),
            # without the keyword-argument handling of its constructor
            token = new_str(Token, value)
            token.type = type_
            token.value = value
            token.start_pos = start
            token.line = start_line
            token.column = column
            token.end_line = line
            token.end_column = pos - line_start + 1
            token.end_pos = pos
            break
        else:
            type_ = "$END"

        # ---- reduce as long as the table says so, then shift the token
        while True:
            action = actions[states[-1]][type_]  # KeyError: a syntax error
            if action >= 0:
                states.append(action)
                values.append(token)
                firsts.append(token)
                break
            kind, size, origin, extra = rules[~action]
            if kind == unit:  # a run of them: from the memo (value and span stay)
                key = (states[-2], states[-1], type_)
                top = units.get(key)
                states[-1] = top if top is not None else tables.unit_chain(key)
                continue
            if kind == statement:
                builder.qmarks = 0  # ``?`` numbering is per statement
                ends[len(values) - 1] = last
                states[-1] = actions[states[-2]][origin]
                continue
            # The reduced span ends at the last token shifted (no rule ends with one that can
            # match nothing) and starts at the first token of its first non-empty child.
            if size:
                children = values[-size:]
                del values[-size:]
                del states[-size:]
                first_tokens = firsts[-size:]
                del firsts[-size:]
                first = first_tokens[0]
                if first is None:
                    first = next((t for t in first_tokens if t is not None), None)
            else:
                children = []
                first, first_tokens = None, []
            if kind == node:
                method, filter_fn = extra
                if filter_fn is not None:
                    children = filter_fn(children)
                # A span of one token is that token's own (a Token has the same fields).
                meta = (
                    _NO_META if first is None else first if first is last else _Meta(first, last)  # type: ignore[arg-type]
                )
                value = method(builder, meta, children)
            elif kind == pass_:
                value = children[extra]
            elif kind == splice:
                value = _Inline(extra(children))
            else:
                filter_fn, positions, top = extra
                for i in positions:
                    children[i] = (
                        _as_statement(children[i]),
                        first_tokens[i],
                        ends[len(values) + i],
                    )
                if filter_fn is not None:
                    children = filter_fn(children)
                if top:
                    if token is not None:
                        raise ValueError("the script rule was reduced before the end")
                    return [_parsed_statement(sql, *item) for item in children]
                value = _Inline(children)
            states.append(actions[states[-1]][origin])
            values.append(value)
            firsts.append(first)
            if token is None and states[-1] == end_state:
                raise ValueError("the script rule was not reduced")


def _parsed_statement(
    sql: str, statement: ast.Statement, first: Token, last: Token
) -> ast.ParsedStatement:
    assert first.line is not None and first.column is not None  # tokens lexed here have them
    return ast.ParsedStatement(
        statement, sql[first.start_pos : last.end_pos], first.line, first.column
    )
