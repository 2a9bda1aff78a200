"""The parser's fast path (AST built during the LALR parse) against the reference path (Lark's
parse tree with propagated positions, then the `_ToAst` transformer): the same statements, the
same AST including every node's position, the same statement spans; and where the text is not
valid the fast path gives up, so that errors always come from the reference path."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sql_ast_strategies import statements
from test_parser import (
    EXPRESSIONS,
    JOINS,
    OTHER,
    SEED,
    SELECTS,
    SET_OPERATIONS,
    SUBSCRIPTIONS,
    WRITES,
)
from test_parser_fuzz import _mutate, token_soup

from queryleaf.errors import SqlSyntaxError
from queryleaf.sql import parser
from queryleaf.sql.printer import to_sql


def exact(node: Any) -> Any:
    """Everything about an AST, positions and value types included."""
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return (
            type(node).__name__,
            *((f.name, exact(getattr(node, f.name))) for f in dataclasses.fields(node)),
        )
    if isinstance(node, tuple | list):
        return (type(node).__name__, *(exact(x) for x in node))
    return (type(node).__name__, repr(node))


def same_either_way(sql: str) -> bool:
    """Both paths agree on ``sql``; True when it is valid."""
    try:
        reference = parser._reference_script(sql)
    except SqlSyntaxError:
        with pytest.raises(Exception):  # noqa: B017, PT011 - any failure sends it to the reference
            parser._fast_script(sql)
        return False
    assert exact(parser._fast_script(sql)) == exact(reference), sql
    return True


CASES = (
    [
        sql
        for table in (SELECTS, JOINS, SET_OPERATIONS, WRITES, OTHER, SUBSCRIPTIONS)
        for sql, _ in table
    ]
    + [f"SELECT {sql}" for sql, _ in EXPRESSIONS]
    + [
        SEED.read_text(encoding="utf-8"),
        "",
        ";;",
        " -- only a comment\n",
        "SELECT ?, ?; SELECT ?; EXPLAIN SELECT ? + ?",  # ? numbering restarts per statement
        "EXPLAIN EXPLAIN SELECT 1;\n\n  SELECT a FROM t ;; ",
        "SELECT (((a + b)) * c) AS x FROM t /* c */ WHERE (a) = 1 -- end",
        "SELECT\n  a\n  ,\tb FROM\r\n t JOIN u ON t.id = u.id JOIN v ON (u.x = v.x)",
        'SELECT CURRENT_TIMESTAMP, current_date, "CURRENT_DATE", now() FROM t',
        "SELECT café, 日本.x, `a``b`, \"c\"\"d\" FROM t WHERE e = 'it''s\nmultiline'",
        "SELECT COUNT(*) OVER (PARTITION BY a ORDER BY b ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)",
        "SELECT TRIM(LEADING 'x' FROM a), SUBSTRING(a FROM 2 FOR 3), EXTRACT(YEAR FROM d)",
        "SELECT a FROM t LEFT JOIN u ON TRUE CROSS JOIN v, w INNER JOIN x ON x.a = w.a",
        "SELECT 1",  # no trailing semicolon
        "SELECT 1;",
    ]
)
INVALID = [
    "SELECT FROM t",
    "SELECT a FROM t JOIN u",  # JOIN without ON: raised while building the AST
    "SELECT 1; SELECT a FROM t JOIN u WHERE x; SELECT FROM",  # which error comes first
    "SELECT " + "9" * 5000,  # number too long
    "SELECT SUBSTRING(a FROM 1 FOR 2 FOR 3)",
    "SELECT TRIM(a FROM b FOR c)",
    "SELECT 'unterminated",
    "SELECT a /* unclosed",
    "SELECT a FROM t WHERE",
    "SELECT \u00a0a",  # a space the grammar does not skip
    "SELECT a; garbage",
]


@pytest.mark.parametrize("sql", CASES)
def test_valid_text_builds_the_same_ast_and_spans(sql):
    assert same_either_way(sql)


@pytest.mark.parametrize("sql", INVALID)
def test_invalid_text_is_left_to_the_reference_path(sql):
    assert not same_either_way(sql)
    with pytest.raises(SqlSyntaxError) as fast:
        parser.parse_script(sql)
    with pytest.raises(SqlSyntaxError) as reference:
        parser._reference_script(sql)
    assert (fast.value.message, fast.value.position) == (
        reference.value.message,
        reference.value.position,
    )


SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@SETTINGS
@given(statements)
def test_printed_random_statements(statement):
    assert same_either_way(to_sql(statement))


@SETTINGS
@given(token_soup)
def test_token_soup(text):
    same_either_way(text)


@SETTINGS
@given(st.data())
def test_mutated_statements(data):
    same_either_way(_mutate(data))


def test_first_character_sets_never_drop_a_terminal_that_can_match():
    """The lexer narrows each state's alternation by the first character; check the sets
    against every terminal's own regex on every ASCII character."""
    import re

    tables = parser._fast_tables()
    for term in parser._lark().terminals:
        chars = tables.first_chars(term)
        if chars is None:
            continue
        pattern = re.compile(term.pattern.to_regexp())
        for code in range(128):
            ch = chr(code)
            samples = [
                ch,
                ch + "a",
                ch + "1",
                ch + "'",
                ch + '"',
                ch + "`",
                ch + ">",
                ch + "-",
                ch + "=",
                ch + "|",
                ch + "x'",
                ch + 'a"',
                ch + "a`",
            ]
            if any(pattern.match(s) for s in samples):
                assert ch in chars, (term.name, ch)
