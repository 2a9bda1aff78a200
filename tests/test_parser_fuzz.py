"""Fuzzing: whatever the text, parsing succeeds or raises SqlSyntaxError, nothing else.

When random text happens to parse, its statements must also survive the printer round trip;
when it does not, the error must point inside the text and read without grammar internals.
"""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sql_ast_strategies import strict
from test_parser import SEED, SELECTS, SUBSCRIPTIONS, WRITES

from queryleaf.errors import SqlSyntaxError
from queryleaf.sql.parser import parse, parse_script
from queryleaf.sql.printer import KEYWORDS, to_sql

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

PUNCTUATION = [
    "(",
    ")",
    ",",
    ".",
    ";",
    "*",
    "=",
    "<>",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "+",
    "-",
    "/",
    "%",
    "||",
    "->",
    "->>",
    "[",
    "]",
    "?",
    ":",
    "::",
    "--",
    "/*",
    "*/",
    "'",
    '"',
    "`",
    "@",
    "#",
    "$",
    "\\",
    "{",
    "}",
]
LEXEMES = [
    "a",
    "t",
    "x.y",
    "items[0]",
    "1",
    "2.5",
    "1e3",
    ".5",
    "'s'",
    "'it''s'",
    '"q"',
    "`b`",
    ":p",
    "COUNT(*)",
    "é",
    "日本",
    "\x00",
    "\t",
    "\n",
    "\r\n",
    "-- c\n",
    "/* c */",
]
tokens = st.one_of(
    st.sampled_from(sorted(KEYWORDS)),
    st.sampled_from(sorted(KEYWORDS)).map(str.lower),
    st.sampled_from(PUNCTUATION),
    st.sampled_from(LEXEMES),
    st.text(max_size=3),
)
token_soup = st.lists(tokens, max_size=30).flatmap(
    lambda ts: st.lists(st.sampled_from(["", " ", "\n"]), min_size=len(ts), max_size=len(ts)).map(
        lambda seps: "".join(t + s for t, s in zip(ts, seps, strict=True))
    )
)


_INTERNAL = re.compile(
    r"^_|__ANON|\$END|^(LPAR|RPAR|LSQB|RSQB|COMMA|DOT|SEMI)$|^[A-Z]+_[A-Z_]*OP$|"
    r"^(NAME|NUMBER|STRING|INT|QMARK|NAMED_PARAM|QUOTED_NAME)$"
)


def check(text: str) -> None:
    """The fuzzing oracle."""
    try:
        statements = parse_script(text)
    except SqlSyntaxError as err:
        check_error(err, text)
        return
    for parsed in statements:
        printed = to_sql(parsed.statement)
        assert strict(parse(printed)) == strict(parsed.statement), (text, printed)


def check_error(err: SqlSyntaxError, text: str) -> None:
    lines = text.split("\n")
    pos = err.position
    assert pos is not None
    assert 1 <= pos.line <= len(lines), (text, pos)
    # a column may point just after the last character of its line (end of input)
    assert 1 <= pos.column <= len(lines[pos.line - 1]) + 1, (text, pos)
    assert 0 <= pos.offset <= len(text)
    for name in err.expected:  # readable names only, never grammar terminals
        assert _INTERNAL.search(name) is None, err.message
    assert "__ANON" not in err.message and "$END" not in err.message
    assert "^" in str(err)


@FUZZ
@given(token_soup)
def test_token_soup(text):
    check(text)


@FUZZ
@given(st.text(max_size=60))
def test_arbitrary_text(text):
    check(text)


@FUZZ
@given(st.lists(tokens, max_size=12).map(" ".join))
def test_after_a_valid_prefix(tail):
    for head in (
        "SELECT ",
        "SELECT a FROM t WHERE ",
        "INSERT INTO t ",
        "CREATE EVENT_SUBSCRIPTION s AS (",
    ):
        check(head + tail)


# ---------------------------------------------------------------- mutations of valid SQL

_LEX = re.compile(
    r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`[^`]*`|--[^\n]*|\w+|->>|->|<>|!=|<=|"
    r">=|\|\||\S"
)
CORPUS = [sql for table in (SELECTS, WRITES, SUBSCRIPTIONS) for sql, _ in table] + [
    p.text for p in parse_script(SEED.read_text(encoding="utf-8"))
]


def _mutate(data) -> str:
    sql = data.draw(st.sampled_from(CORPUS))
    words = _LEX.findall(sql)
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, max(len(words) - 1, 0)))
        kind = data.draw(st.sampled_from(["delete", "duplicate", "swap", "insert", "truncate"]))
        if kind == "delete" and words:
            del words[i]
        elif kind == "duplicate" and words:
            words.insert(i, words[i])
        elif kind == "swap" and i + 1 < len(words):
            words[i], words[i + 1] = words[i + 1], words[i]
        elif kind == "insert":
            words.insert(i, data.draw(tokens))
        elif kind == "truncate":
            words = words[:i]
    return " ".join(w + ("\n" if w.startswith("--") else "") for w in words)


@FUZZ
@given(st.data())
def test_mutated_statements(data):
    check(_mutate(data))
