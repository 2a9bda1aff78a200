"""Expressions above the aggregation of a live query (queryleaf/live/evaluate.py): compiled once,
computed in Python per row. Arithmetic, logic and NULL are checked against SQLite as
tests/test_differential.py does (with the same dialect differences: true division); the rest
pins the SQL engine's semantics (docs/semantics.md). Pure Python: no server."""

from __future__ import annotations

import math
import sqlite3
from typing import Any

import pytest
from bson.decimal128 import Decimal128
from hypothesis import given, settings
from hypothesis import strategies as st

from queryleaf.errors import ErrorCode, PlanningError
from queryleaf.live.evaluate import compile_condition, compile_expression
from queryleaf.planner.params import Bindings
from queryleaf.sql import ast
from queryleaf.sql.parser import parse

# What the aggregation computed: the row keys of the group key columns, COUNT(*) and SUM(x),
# and the window bounds.
SLOTS = {
    ast.Column(("a",)): "a",
    ast.Column(("b",)): "b",
    ast.Column(("c",)): "c",
    ast.Column(("s",)): "s",
    ast.Column(("full_document", "status")): "status",
    ast.Column(("WINDOW_START",)): "window_start",
    ast.Column(("WINDOW_END",)): "window_end",
    ast.FuncCall("COUNT", (ast.Star(),)): "n",
    ast.FuncCall("SUM", (ast.Column(("x",)),)): "total",
}


def slot(e: ast.Expr) -> str | None:
    return SLOTS.get(e)


def compiled(sql: str, params: Any = None, condition: bool = False) -> Any:
    statement = parse("SELECT " + sql)
    assert isinstance(statement, ast.QueryStatement) and isinstance(statement.query, ast.Select)
    expr = statement.query.items[0].expr
    make = compile_condition if condition else compile_expression
    return make(expr, slot, Bindings(statement, params))


def ev(sql: str, row: dict[str, Any] | None = None, params: Any = None) -> Any:
    return compiled(sql, params)(row or {})


# ---------------------------------------------------------------- against SQLite

INT, FLOAT, BOOL = "int", "float", "bool"


@st.composite
def expression(draw: st.DrawFn, typ: str, depth: int = 3) -> tuple[str, str]:
    """(queryleaf SQL, SQLite SQL) of an expression of type ``typ`` over a, b (integers) and
    c (a double), any of them NULL."""
    if typ == BOOL:
        shape = draw(st.sampled_from(["cmp", "null", "in", "between", "and", "or", "not"]))
        if depth <= 0 or shape == "cmp":
            op = draw(st.sampled_from(["=", "<>", "!=", "<", "<=", ">", ">="]))
            (lq, ll), (rq, rl) = (
                draw(expression(INT, depth - 1)),
                draw(expression(FLOAT, depth - 1)),
            )
            return f"({lq} {op} {rq})", f"({ll} {op} {rl})"
        if shape == "null":
            q, lite = draw(expression(draw(st.sampled_from([INT, FLOAT])), depth - 1))
            neg = draw(st.sampled_from(["", "NOT "]))
            return f"({q} IS {neg}NULL)", f"({lite} IS {neg}NULL)"
        if shape == "in":
            q, lite = draw(expression(INT, depth - 1))
            items = draw(st.lists(expression(INT, 0), min_size=1, max_size=4))
            neg = draw(st.sampled_from(["", "NOT "]))
            return (
                f"({q} {neg}IN ({', '.join(i[0] for i in items)}))",
                f"({lite} {neg}IN ({', '.join(i[1] for i in items)}))",
            )
        if shape == "between":
            parts = [draw(expression(INT, depth - 1)) for _ in range(3)]
            neg = draw(st.sampled_from(["", "NOT "]))
            return (
                f"({parts[0][0]} {neg}BETWEEN {parts[1][0]} AND {parts[2][0]})",
                f"({parts[0][1]} {neg}BETWEEN {parts[1][1]} AND {parts[2][1]})",
            )
        if shape == "not":
            q, lite = draw(expression(BOOL, depth - 1))
            return f"(NOT {q})", f"(NOT {lite})"
        op = shape.upper()
        terms = draw(st.lists(expression(BOOL, depth - 1), min_size=2, max_size=3))
        return f" {op} ".join(f"({t[0]})" for t in terms), f" {op} ".join(
            f"({t[1]})" for t in terms
        )
    leaves = [("a", "a"), ("b", "b")] if typ == INT else [("c", "c"), ("a", "a")]
    if depth <= 0 or draw(st.integers(0, 3)) == 0:
        kind = draw(st.sampled_from(["column", "literal", "null"]))
        if kind == "column":
            return draw(st.sampled_from(leaves))
        if kind == "null":
            return "NULL", "NULL"
        if typ == INT:
            v = str(draw(st.integers(-4, 4)))
        else:
            v = draw(st.sampled_from(["1.5", "-0.25", "2.0", "1e1"]))
        return v, v
    shape = draw(st.sampled_from(["arith", "neg", "case", "coalesce", "abs", "div", "mod"]))
    if shape == "arith":
        op = draw(st.sampled_from(["+", "-", "*"]))
        (lq, ll), (rq, rl) = draw(expression(typ, depth - 1)), draw(expression(typ, depth - 1))
        return f"({lq} {op} {rq})", f"({ll} {op} {rl})"
    if shape == "neg":
        q, lite = draw(expression(typ, depth - 1))
        return f"(- {q})", f"(- {lite})"
    if shape == "case":
        (cq, cl), (tq, tl) = draw(expression(BOOL, depth - 1)), draw(expression(typ, depth - 1))
        eq, el = draw(expression(typ, depth - 1))
        return (
            f"(CASE WHEN {cq} THEN {tq} ELSE {eq} END)",
            f"(CASE WHEN {cl} THEN {tl} ELSE {el} END)",
        )
    if shape == "coalesce":
        (xq, xl), (yq, yl) = draw(expression(typ, depth - 1)), draw(expression(typ, depth - 1))
        name = draw(st.sampled_from(["COALESCE", "IFNULL"]))
        return f"{name}({xq}, {yq})", f"{name}({xl}, {yl})"
    if shape == "abs":
        q, lite = draw(expression(typ, depth - 1))
        return f"ABS({q})", f"abs({lite})"
    (lq, ll), (rq, rl) = draw(expression(INT, depth - 1)), draw(expression(INT, depth - 1))
    if shape == "div" and typ == FLOAT:  # true division; SQLite divides integers as integers
        return f"({lq} / {rq})", f"(CAST({ll} AS REAL) / {rl})"
    return f"({lq} % {rq})", f"({ll} % {rl})"


def sqlite_value(lite: str, row: dict[str, Any]) -> Any:
    with sqlite3.connect(":memory:") as db:
        query = f"SELECT {lite} FROM (SELECT :a AS a, :b AS b, :c AS c)"
        return db.execute(query, row).fetchone()[0]


def same(ours: Any, theirs: Any) -> bool:
    if isinstance(ours, bool):
        ours = int(ours)  # SQLite has no booleans
    if ours is None or theirs is None:
        return ours is None and theirs is None
    return math.isclose(ours, theirs, rel_tol=1e-9, abs_tol=1e-12)


rows = st.fixed_dictionaries(
    {
        "a": st.one_of(st.none(), st.integers(-3, 3)),
        "b": st.one_of(st.none(), st.integers(-3, 3)),
        "c": st.one_of(st.none(), st.sampled_from([-1.5, 0.0, 0.5, 2.25])),
    }
)


@settings(max_examples=600, deadline=None)
@given(
    st.sampled_from([INT, FLOAT, BOOL]).flatmap(expression), st.lists(rows, min_size=1, max_size=4)
)
def test_expressions_agree_with_sqlite(sql: tuple[str, str], data: list[dict[str, Any]]) -> None:
    ql_sql, lite_sql = sql
    function = compiled(ql_sql)
    for row in data:
        ours, theirs = function(row), sqlite_value(lite_sql, row)
        assert same(ours, theirs), f"{ql_sql} over {row}: queryleaf {ours!r}, SQLite {theirs!r}"


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("NULL AND FALSE", 0),
        ("NULL AND TRUE", None),
        ("NULL OR TRUE", 1),
        ("NULL OR FALSE", None),
        ("NOT NULL", None),
        ("1 IN (2, NULL)", None),
        ("1 NOT IN (2, NULL)", None),
        ("1 IN (1, NULL)", 1),
        ("NULL IN (1)", None),
        ("2 BETWEEN NULL AND 1", 0),
        ("2 BETWEEN 1 AND NULL", None),
        ("CASE NULL WHEN NULL THEN 1 ELSE 2 END", 2),
        ("CASE WHEN NULL THEN 1 END", None),
        ("-7 % 2", -1),
        ("7 % -2", 1),
        ("5 % 0", None),
        ("5 / 0", None),
        ("NULL + 1", None),
        ("2 AND 3", 1),
        ("0 OR NULL", None),
        ("COALESCE(NULL, NULL)", None),
        ("NULLIF(1, 1)", None),
        ("NULLIF(1, 2)", 1),
        ("1 = '1'", 0),
        ("1 < 'a'", 1),
    ],
)
def test_classic_traps_agree_with_sqlite(sql: str, expected: Any) -> None:
    assert sqlite_value(sql, {"a": None, "b": None, "c": None}) == expected
    assert same(ev(sql), expected)


# ---------------------------------------------------------------- the SQL engine's semantics


def test_slots_read_the_row_the_aggregation_made() -> None:
    row = {"status": "paid", "n": 3, "total": 250, "window_start": 60_000, "window_end": 120_000}
    assert ev("full_document.status", row) == "paid"
    assert ev("SUM(x) / COUNT(*)", row) == pytest.approx(250 / 3)
    assert ev("WINDOW_END - WINDOW_START", row) == 60_000
    assert compiled("COUNT(*) > 2 AND full_document.status = 'paid'", condition=True)(row) is True
    assert compiled("SUM(x) > :floor", {"floor": 300}, condition=True)(row) is False
    assert compiled("COUNT(*) > NULL", condition=True)(row) is False  # unknown is not kept


def test_arithmetic_types_follow_the_engine() -> None:
    assert ev("7 / 2") == 3.5 and ev("6 / 3") == 2.0 and type(ev("6 / 3")) is float
    assert ev("7 DIV 2") == 3.0 and ev("-7 DIV 2") == -3.0  # $trunc of $divide: a double
    assert ev("7 DIV 0") is None
    assert type(ev("2 * 3")) is int
    assert ev("a * a", {"a": 2**62}) == float(2**124)  # past 64 bits: a double, as MongoDB
    assert ev("1.5 + 1") == 2.5  # a literal with a point is a double
    assert ev("s + 1", {"s": Decimal128("0.1")}) == Decimal128("1.1")
    assert ev("s / 4", {"s": Decimal128("1")}) == Decimal128("0.25")
    assert ev("s % 3", {"s": Decimal128("-7")}) == Decimal128("-1")
    assert ev("s DIV 2", {"s": Decimal128("7")}) == Decimal128("3")
    assert ev("- s", {"s": Decimal128("2.5")}) == Decimal128("-2.5")
    assert ev("s + 1", {"s": "text"}) is None  # not a number: NULL
    assert ev("s * 2", {"s": True}) is None  # a boolean is not a number
    assert ev("7.5 % 2") == 1.5


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("ROUND(2.5)", 3.0),
        ("ROUND(-2.5)", -3.0),
        ("ROUND(7)", 7),
        ("ROUND(1.25, 1)", 1.3),
        ("ROUND(-1.25, 1)", -1.3),
        ("ROUND(1250, -2)", 1300.0),
        ("ROUND(NULL)", None),
        ("ROUND(1.5, NULL)", None),
        ("ABS(-3)", 3),
        ("ABS(-2.5)", 2.5),
        ("ABS(NULL)", None),
        ("CONCAT('a', 1, 'b')", "a1b"),
        ("CONCAT('a', NULL)", None),
        ("CONCAT('x', TRUE, 2.5, 2.0)", "xtrue2.52"),
        ("'a' || 'b' || 'c'", "abc"),
        ("IF(1 > 2, 'y', 'n')", "n"),
        ("IF(NULL, 'y', 'n')", "n"),
        ("IFNULL(NULL, 'd')", "d"),
    ],
)
def test_functions(sql: str, expected: Any) -> None:
    got = ev(sql)
    assert got == expected and type(got) is type(expected)


def test_round_of_a_decimal_rounds_half_away_from_zero() -> None:
    assert ev("ROUND(s, 1)", {"s": Decimal128("2.25")}) == Decimal128("2.3")
    assert ev("ROUND(s)", {"s": Decimal128("-2.5")}) == Decimal128("-3")


def test_comparisons_in_bson_order() -> None:
    assert ev("a = s", {"a": 1, "s": Decimal128("1.0")}) is True
    assert ev("a = s", {"a": 1, "s": True}) is False  # a boolean is not 1
    assert ev("a < s", {"a": 1, "s": True}) is True  # numbers sort before booleans
    assert ev("s > 'z'", {"s": {"a": 1}}) is True  # documents after strings
    assert ev("s IN (1, 2)", {"s": 2.0}) is True
    assert ev("s BETWEEN 'a' AND 'c'", {"s": "b"}) is True
    assert ev("CASE s WHEN 1 THEN 'one' ELSE 'other' END", {"s": Decimal128("1")}) == "one"


def test_parameters_named_and_positional() -> None:
    assert ev(":x + :y", params={"x": 1, "y": 2}) == 3
    assert ev("? * ?", params=[3, 4]) == 12
    assert ev(":d + 1", params={"d": Decimal128("0.5")}) == Decimal128("1.5")
    statement = parse("SELECT :x")
    expr = statement.query.items[0].expr  # type: ignore[attr-defined]
    with pytest.raises(PlanningError, match="no values"):
        compile_expression(expr, slot)


def test_long_chains_compile_without_recursion() -> None:
    n = 5_000
    assert ev(" + ".join(["a"] * n), {"a": 1}) == n
    assert ev(" OR ".join(["a = 2"] * n), {"a": 1}) is False
    assert ev(" || ".join(["'x'"] * n)) == "x" * n
    nested = "CASE WHEN a = 0 THEN 0 " + "ELSE CASE WHEN a = 1 THEN 1 " * n + "END " * (n + 1)
    assert ev(nested, {"a": 1}) == 1


@pytest.mark.parametrize(
    ("sql", "message", "column"),
    [
        ("x + 1", "x must be a GROUP BY key, an aggregate, WINDOW_START or WINDOW_END", 8),
        ("a + full_document.total", "full_document.total must be a GROUP BY key", 12),
        ("a LIKE 'x%'", "LIKE is not supported above the aggregation in a live query", 8),
        ("UPPER(a)", r"UPPER\(\) is not supported above the aggregation", 8),
        ("a & 1", "the operator & is not supported above the aggregation", 8),
        ("CAST(a AS INT)", "CAST is not supported", 8),
        ("a + (SELECT 1)", "a subquery is not supported", 12),
        ("MAX(a)", r"MAX\(\) is not supported", 8),
        ("COUNT(DISTINCT a)", r"COUNT\(...\) with DISTINCT", 8),
        ("ROUND(1, 2, 3)", "ROUND takes 1 to 2 argument", 8),
    ],
)
def test_unsupported_constructs_are_positioned_planning_errors(
    sql: str, message: str, column: int
) -> None:
    with pytest.raises(PlanningError, match=message) as caught:
        compiled(sql)
    assert caught.value.position is not None and caught.value.position.column == column


def test_an_unknown_column_has_the_unknown_column_code() -> None:
    with pytest.raises(PlanningError) as caught:
        compiled("nope")
    assert caught.value.error_code == ErrorCode.UNKNOWN_COLUMN
