"""sql/split.py: statements end at ';' outside strings, quoted names and comments, as the
grammar reads them (the splitter agrees with parse_script on where each statement starts)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from queryleaf.sql.parser import parse_script
from queryleaf.sql.split import is_complete, split


def test_split_at_semicolons_outside_tokens():
    text = "SELECT ';' AS a;\n  SELECT \"x;y\" FROM `t;u` -- c;\n;/* ; */ SELECT 3"
    pieces = split(text)
    assert [p.text for p in pieces] == [
        "SELECT ';' AS a",
        'SELECT "x;y" FROM `t;u` -- c;',
        "/* ; */ SELECT 3",
    ]
    assert [(p.line, p.column) for p in pieces] == [(1, 1), (2, 3), (3, 2)]
    assert [p.terminated for p in pieces] == [True, True, False]


def test_blank_pieces_are_left_out():
    assert split(" ;; -- only a comment\n; /* and another */") == []


def test_doubled_quotes_stay_inside():
    assert [p.text for p in split("SELECT 'it''s;' ; SELECT \"a\"\";\"")] == [
        "SELECT 'it''s;'",
        'SELECT "a"";"',
    ]


def test_unclosed_string_is_one_unterminated_piece():
    (first, rest) = split("SELECT 1; SELECT 'open; SELECT 2;")
    assert rest.text == "SELECT 'open; SELECT 2;" and not rest.terminated


def test_is_complete():
    assert is_complete("")
    assert is_complete("   \n")
    assert is_complete("SELECT 1;")
    assert is_complete("SELECT 1; -- trailing comment")
    assert is_complete("SELECT 1; /* c */ ")
    assert not is_complete("SELECT 1")
    assert not is_complete("SELECT ';")
    assert not is_complete("SELECT 1 -- ;")
    assert not is_complete("SELECT 1; SELECT 2")
    assert not is_complete("SELECT 1 /* ; */")
    assert not is_complete("SELECT 1 /* ;")


_PARTS = st.sampled_from(
    [
        "SELECT 1",
        "SELECT ';' AS a",
        "SELECT 'it''s' AS b",
        'SELECT 1 AS "x;y"',
        "SELECT 1 AS `a;``b`",
        "-- c;\nSELECT 2",
        "SELECT /* ; */ 3",
        "SELECT 4 /* ;\n; */",
    ]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_PARTS, max_size=5), st.sampled_from([";", ";\n", " ; ", ";;"]))
def test_split_agrees_with_the_grammar(parts, separator):
    text = separator.join(parts)
    parsed = parse_script(text)
    pieces = split(text)
    assert len(pieces) == len(parsed)
    for piece, statement in zip(pieces, parsed, strict=True):
        # a piece may start with a comment the grammar skips
        assert piece.offset <= _offset(text, statement.line, statement.column)
        assert statement.text in piece.text
    assert is_complete(text + ";")


def _offset(text: str, line: int, column: int) -> int:
    lines = text.split("\n")
    return sum(len(x) + 1 for x in lines[: line - 1]) + column - 1
