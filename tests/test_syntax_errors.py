"""Syntax errors: exact line, column, offending token, readable expected tokens, caret excerpt."""

from __future__ import annotations

import pytest

from queryleaf.errors import SqlSyntaxError
from queryleaf.sql.parser import parse, parse_script

# (sql, line, column, token, expected); token None means "end of input".
ERRORS = [
    ("SELECT a FROM", 1, 14, None, ("'('", "name")),
    ("SELECT a FROM   -- trailing comment\n\n", 1, 14, None, ("'('", "name")),
    ("SELECT FROM t", 1, 8, "FROM", ("DISTINCT", "'*'", "expression")),
    ("SELECT a,\n  FROM t", 2, 3, "FROM", ("'*'", "expression")),
    ("SELECT a FROM WHERE x = 1", 1, 15, "WHERE", ("'('", "name")),
    ("SELECT a FROM t WHERE", 1, 22, None, ("expression",)),
    ("SELECT a FROM t WHERE (a = 1", 1, 29, None, ("')'",)),
    ("SELECT COUNT(* FROM t", 1, 16, "FROM", ("')'",)),
    ("SELECT a FROM t LIMIT 5,", 1, 24, ",", ("EMIT", "OFFSET", "';'", "end of input")),
    ("SELECT a FROM t WHERE a IN ()", 1, 29, ")", ("SELECT", "WITH", "expression")),
    ("SELECT a FROM t GROUP a", 1, 23, "a", ("BY",)),
    ("SELECT a FROM t ORDER BY a NULLS", 1, 33, None, ("FIRST", "LAST")),
    ("SELECT * FROM t WHERE a BETWEEN 1", 1, 34, None, ("AND", "'|'")),
    ("SELECT CASE WHEN a THEN 1 FROM t", 1, 27, "FROM", ("ELSE", "END", "WHEN")),
    ("SELECT CAST(a AS) FROM t", 1, 17, ")", ("name",)),
    ("SELECT f(a,)", 1, 12, ")", ("expression",)),
    ("SELECT a FROM t UNION", 1, 22, None, ("ALL", "SELECT")),
    ("WITH x AS SELECT 1 SELECT 2", 1, 11, "SELECT", ("'('",)),
    ("SELECT a[x]", 1, 10, "x", ("integer",)),
    ("SELECT a->b", 1, 11, "b", ("string",)),
    ("SELECT a.", 1, 10, None, ("'*'", "name")),
    ("SELECT 1)", 1, 9, ")", ("EMIT", "';'", "end of input")),
    ("SELECT a\nFROM t\nWHERE b = = 1", 3, 11, "=", ("expression",)),
    (
        "SELECT a FROM t WHERE a = 1 = 2",
        1,
        29,
        "=",
        (
            "AND",
            "EMIT",
            "EXCEPT",
            "GROUP",
            "HAVING",
            "INTERSECT",
            "LIMIT",
            "OFFSET",
            "OR",
            "ORDER",
            "UNION",
            "';'",
            "'|'",
            "end of input",
        ),
    ),
    ("INSERT INTO t VALUES 1", 1, 22, "1", ("'('",)),
    ("UPDATE t SET a 1", 1, 16, "1", ("'.'", "'='", "'['")),
    ("DELETE t", 1, 8, "t", ("FROM",)),
    ("DROP INDEX t", 1, 6, "INDEX", ("EVENT_SUBSCRIPTION", "TABLE", "VIEW")),
    ("CREATE EVENT_SUBSCRIPTION s (a = 1)", 1, 29, "(", ("AS",)),
    ("CREATE EVENT_SUBSCRIPTION s AS (a = 1,)", 1, 39, ")", ("name",)),
    ("RESET EVENT_SUBSCRIPTION s TO", 1, 30, None, ("NOW", "TIMESTAMP")),
    (
        "SHOW EVENT_SUBSCRIPTION",
        1,
        6,
        "EVENT_SUBSCRIPTION",
        (
            "COLLECTIONS",
            "COLUMNS",
            "DATABASES",
            "EVENT_SUBSCRIPTIONS",
            "INDEXES",
            "TABLES",
            "VIEWS",
        ),
    ),
    (
        "EXPLAIN",
        1,
        8,
        None,
        (
            "ALTER",
            "BEGIN",
            "COMMIT",
            "CREATE",
            "DELETE",
            "DESCRIBE",
            "DROP",
            "EXPLAIN",
            "INSERT",
            "PAUSE",
            "REPLAY",
            "RESET",
            "RESUME",
            "ROLLBACK",
            "SELECT",
            "SHOW",
            "START",
            "UPDATE",
            "USE",
            "WITH",
        ),
    ),
    ("START", 1, 6, None, ("TRANSACTION",)),
    ("BEGIN TRANSACTION WORK", 1, 19, "WORK", ("';'", "end of input")),
    ("SELECT 1;\n  SELECT FROM", 2, 10, "FROM", ("DISTINCT", "'*'", "expression")),
]


@pytest.mark.parametrize(
    ("sql", "line", "column", "token", "expected"), ERRORS, ids=[e[0] for e in ERRORS]
)
def test_syntax_error(sql, line, column, token, expected):
    err = _error(sql)
    assert (err.position.line, err.position.column) == (line, column)
    assert err.token == token
    assert err.expected == expected
    assert _offset_of(sql, line, column) == err.position.offset
    found = "end of input" if token is None else token
    assert err.message.startswith("unexpected ")
    assert found in err.message.split(";")[0]
    assert_caret(err, sql)


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT a FROM t WHERE a = 'x' 'y'", "unexpected string 'y'"),
        ("SELECT 1 2", "unexpected number 2"),
        ("SELEC a FROM t", "unexpected name 'SELEC'"),
        ("SELECT a FROM t ORDER", "unexpected end of input; expected BY"),
        ("SELECT * FROM t WHERE a BETWEEN 1", "unexpected end of input; expected AND or '|'"),
        ("SELECT :", "unexpected character ':'; expected DISTINCT, '*' or expression"),
        ("SELECT * FROM t t2 t3", "unexpected name 't3'; expected CROSS, EMIT, EXCEPT, FULL"),
        (
            "SELECT 1 2",
            "expected AS, EMIT, EXCEPT, FROM, GROUP, HAVING, INTERSECT, LIMIT, OFFSET, ORDER",
        ),
    ],
)
def test_messages_read_well(sql, message):
    assert message in _error(sql).message


def test_many_operators_read_as_operator():
    err = _error("SELECT a FROM t WHERE a = 'x' 'y'")
    assert "operator" in err.expected
    assert not any("||" in e or "LIKE" in e for e in err.expected)


# ---------------------------------------------------------------- lexical errors


@pytest.mark.parametrize(
    ("sql", "line", "column", "message", "token"),
    [
        ("SELECT 'abc", 1, 8, "unterminated string: no closing '", "'abc"),
        ("SELECT a\nFROM t WHERE b = 'x\ny", 3, 0, "unterminated string", None),
        ('SELECT "abc FROM t', 1, 8, 'unterminated quoted name: no closing "', '"abc FROM t'),
        ("SELECT `abc", 1, 8, "unterminated quoted name: no closing `", "`abc"),
        ("SELECT 1 /* x\n y", 1, 10, "unterminated comment: no closing */", "/*"),
        ("SELECT 1 /* ok */ + /* never", 1, 21, "unterminated comment", "/*"),
        ("SELECT a # b", 1, 10, "unexpected character '#'", "#"),
        ("SELECT a ¤", 1, 10, "unexpected character '¤'", "¤"),
    ],
)
def test_lexical_error(sql, line, column, message, token):
    err = _error(sql)
    if column == 0:  # an unterminated string spanning lines is reported where it starts
        line, column = 2, sql.split("\n")[1].index("'") + 1
    assert (err.position.line, err.position.column) == (line, column)
    assert err.message.startswith(message)
    if token is not None:
        assert err.token == token
    assert_caret(err, sql)


def test_comment_markers_in_strings_are_not_comments():
    err = _error("SELECT '/*' FROM t WHERE")
    assert err.message == "unexpected end of input; expected expression"


def test_number_too_long():
    err = _error("SELECT " + "9" * 5000)
    assert err.message.startswith("number too long")
    assert (err.position.line, err.position.column) == (1, 8)


# ---------------------------------------------------------------- errors found after parsing


@pytest.mark.parametrize(
    ("sql", "line", "column", "token", "kind"),
    [
        ("SELECT a FROM t JOIN u WHERE x", 1, 24, "WHERE", "INNER"),
        ("SELECT a FROM t\nLEFT JOIN u", 2, 12, None, "LEFT"),
        ("SELECT a FROM t RIGHT OUTER JOIN u -- no on\n ORDER BY a", 2, 2, "ORDER", "RIGHT"),
        ("SELECT * FROM a JOIN b ON a.x = b.x FULL JOIN c;", 1, 48, ";", "FULL"),
    ],
)
def test_join_without_on_points_where_on_belongs(sql, line, column, token, kind):
    err = _error(sql)
    assert (err.position.line, err.position.column) == (line, column)
    assert err.token == token
    assert err.expected == ("ON",)
    assert err.message.startswith(f"{kind} JOIN needs an ON condition")
    assert_caret(err, sql)


def test_parse_of_several_statements_points_at_the_second():
    err = _error("SELECT 1; SELECT 2", single=True)
    assert (err.position.line, err.position.column) == (1, 11)
    assert err.token == "SELECT"


# ---------------------------------------------------------------- the excerpt


def test_str_shows_position_line_and_caret():
    sql = "SELECT a,\n       b\n  FROM t\n WHERE a = = 1"
    err = _error(sql)
    assert str(err) == (
        "QL1001: unexpected '='; expected expression at line 4, column 12\n"
        " WHERE a = = 1\n"
        "           ^"
    )


def test_error_at_end_of_input_points_just_after_the_last_character():
    err = _error("SELECT a\n  FROM t\n  WHERE   \n\n")
    assert (err.position.line, err.position.column) == (3, 8)
    assert str(err).endswith("  WHERE   \n       ^")


# ---------------------------------------------------------------- helpers


def _error(sql: str, single: bool = False) -> SqlSyntaxError:
    with pytest.raises(SqlSyntaxError) as info:
        parse(sql) if single else parse_script(sql)
    return info.value


def _offset_of(sql: str, line: int, column: int) -> int:
    lines = sql.split("\n")
    return sum(len(x) + 1 for x in lines[: line - 1]) + column - 1


def assert_caret(err: SqlSyntaxError, sql: str) -> None:
    """str(err) ends with the offending line and a caret under the error's column."""
    text_line = sql.split("\n")[err.position.line - 1]
    head, shown, caret = str(err).rsplit("\n", 2)
    assert head.endswith(f"at line {err.position.line}, column {err.position.column}")
    assert shown == text_line
    assert caret == " " * (err.position.column - 1) + "^"
    for internal in ("__ANON", "$END", "LPAR", "RPAR", "_FROM", "NAME", "NUMBER"):
        assert internal not in err.message


@pytest.mark.parametrize(
    ("sql", "hint"),
    [
        ("SELEC * FROM t", "unexpected name 'SELEC' (did you mean SELECT?)"),
        ("SELECT * FORM t", "(did you mean FROM?)"),
        ("SELECT a FROM t ORDER BYY a", "(did you mean BY?)"),
        ("SHOW EVENT_SUBSCRIPTION", "(did you mean EVENT_SUBSCRIPTIONS?)"),
        # a misspelt keyword read as an alias: the error comes one word later
        ("SELECT a FROM t WHER a = 1", "(did you mean WHERE instead of WHER?)"),
        ("SELECT a FROM t GROPU BY a", "(did you mean GROUP instead of GROPU?)"),
    ],
)
def test_keyword_typos_get_a_did_you_mean(sql, hint):
    assert hint in str(_error(sql))


def test_no_did_you_mean_for_names_far_from_keywords():
    assert "did you mean" not in str(_error("SELECT a b c FROM t"))
