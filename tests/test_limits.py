"""Extreme statements end in a result or a QueryLeafError, in bounded time (issue 8, item 6).

Long chains (OR/AND/+/* terms, UNION ALL operands, WITH queries, IN items, placeholders) have no
length limit and compile without recursion; nesting (CASE, function calls, subqueries, derived
tables, NOT, signs, parenthesised operands) is refused beyond ``MAX_DEPTH`` with a positioned
SqlSyntaxError, and everything at the limit works with Python's default recursion limit even
from a deep call stack or a thread; bad values (lone surrogates, integers beyond 64 bits, NUL
in a key, documents over 16 MB) are QueryLeafErrors. The budget per statement is generous: it
catches a hang or a quadratic blow-up (seconds to minutes at these sizes), not a slowdown;
bench/limits_bench.py measures the times.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import bson
import pymongo
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from queryleaf import plan as plans
from queryleaf.errors import (
    ExecutionError,
    ParameterError,
    PlanningError,
    QueryLeafError,
    SqlSyntaxError,
)
from queryleaf.events import names
from queryleaf.mongosh import to_json, to_mongosh
from queryleaf.planner import plan_statement
from queryleaf.sql import ast
from queryleaf.sql.limits import MAX_DEPTH
from queryleaf.sql.parser import parse
from queryleaf.sql.printer import to_sql

BUDGET_S = 10.0
Outcome = plans.Plan | QueryLeafError


def compile_all(sql: str, params: Any = None) -> Outcome:
    """Everything but the server: parse, print (and parse the text back), plan, render EXPLAIN's
    two forms, encode the commands as BSON. A result or a QueryLeafError, within the budget;
    any other exception fails the test."""
    started = time.perf_counter()
    try:
        statement = parse(sql)
        assert parse(to_sql(statement)) == statement
        outcome: Outcome = plan_statement(statement, params)
        for command in outcome.commands():
            to_mongosh(command)
            to_json(command)
            bson.encode(command)
    except QueryLeafError as exc:
        outcome = exc
    elapsed = time.perf_counter() - started
    assert elapsed < BUDGET_S, f"{elapsed:.1f} s for {sql[:80]!r}..."
    return outcome


def too_deep(outcome: Outcome) -> bool:
    """The nesting limit: of the SQL (SqlSyntaxError at the node beyond it) or of the command
    it compiles to (PlanningError at the statement)."""
    return (
        isinstance(outcome, SqlSyntaxError | PlanningError)
        and "nested too deeply" in outcome.message
        and outcome.position is not None
    )


# ---------------------------------------------------------------- shapes


def or_chain(n: int) -> str:
    return "SELECT a FROM t WHERE " + " OR ".join(f"a = {i}" for i in range(n))


def and_chain(n: int) -> str:
    return "SELECT a FROM t WHERE " + " AND ".join(f"a <> {i}" for i in range(n))


def plus_chain(n: int) -> str:
    return "SELECT a" + " + 1" * n + " AS x FROM t"


def union_chain(n: int) -> str:
    return " UNION ALL ".join(f"SELECT a, {i} AS k FROM t" for i in range(n))


def cte_chain(n: int) -> str:
    ctes = ["c0 AS (SELECT a FROM t)"] + [f"c{i} AS (SELECT a FROM c{i - 1})" for i in range(1, n)]
    return f"WITH {', '.join(ctes)} SELECT a FROM c{n - 1}"


def in_list(n: int) -> str:
    return "SELECT a FROM t WHERE a IN (" + ", ".join(str(i) for i in range(n)) + ")"


def placeholders(n: int) -> tuple[str, list[int]]:
    return "SELECT a FROM t WHERE a IN (" + ", ".join("?" * n) + ")", list(range(n))


CHAINS: dict[str, Callable[[int], str]] = {
    "or": or_chain,
    "and": and_chain,
    "plus": plus_chain,
    "times": lambda n: "SELECT a" + " * 1" * n + " AS x FROM t",
    "concat": lambda n: "SELECT s" + " || 'x'" * n + " AS x FROM t",
    "or in select": lambda n: (
        "SELECT " + " OR ".join(f"a = {i}" for i in range(n)) + " AS x FROM t"
    ),
    "union all": union_chain,
    "union": lambda n: " UNION ".join(f"SELECT a FROM t{i}" for i in range(n)),
    "intersect": lambda n: " INTERSECT ".join(f"SELECT a FROM t{i}" for i in range(n)),
    "cte": cte_chain,
    "joins": lambda n: (
        "SELECT t0.a FROM t0" + "".join(f" JOIN t{i} ON t{i}.a = t{i - 1}.a" for i in range(1, n))
    ),
    "case else": lambda n: (
        "SELECT " + "CASE WHEN a = 1 THEN 1 ELSE " * n + "0" + " END" * n + " AS x FROM t"
    ),
    "in list": in_list,
    "values rows": lambda n: "INSERT INTO t (a) VALUES " + ", ".join(f"({i})" for i in range(n)),
    "subscription where": lambda n: (
        "CREATE EVENT_SUBSCRIPTION s AS (watch_collections = 'orders') WHERE "
        + " OR ".join(f"full_document.a = {i}" for i in range(n))
    ),
}

# Each builds a statement nesting ``n`` levels of one kind.
NESTINGS: dict[str, Callable[[int], str]] = {
    "case in then": lambda n: (
        "SELECT " + "CASE WHEN a = 1 THEN " * n + "1" + " END" * n + " AS x FROM t"
    ),
    "case in when": lambda n: (
        "SELECT " + "CASE WHEN " * n + "a = 1" + " THEN TRUE END" * n + " AS x FROM t"
    ),
    "function": lambda n: "SELECT " + "ABS(" * n + "a" + ")" * n + " AS x FROM t",
    "coalesce": lambda n: "SELECT " + "COALESCE(" * n + "a" + ", 1)" * n + " AS x FROM t",
    "cast": lambda n: "SELECT " + "CAST(" * n + "a" + " AS INT)" * n + " AS x FROM t",
    "derived table": lambda n: "SELECT a FROM " + "(SELECT a FROM " * n + "t" + ") AS x" * n,
    "in subquery": lambda n: (
        "SELECT a FROM t WHERE a IN " + "(SELECT a FROM t WHERE a IN " * n + "(1)" + ")" * n
    ),
    "scalar subquery": lambda n: "SELECT " + "(SELECT " * n + "1" + ")" * n + " AS x FROM t",
    "exists": lambda n: (
        "SELECT a FROM t WHERE " + "EXISTS (SELECT a FROM t WHERE " * n + "a = 1" + ")" * n
    ),
    "not": lambda n: "SELECT " + "NOT " * n + "a AS x FROM t",
    "not in where": lambda n: "SELECT a FROM t WHERE " + "NOT " * n + "a = 1",
    "sign": lambda n: "SELECT " + "- " * n + "a AS x FROM t",
    "and/or": lambda n: (
        "SELECT a FROM t WHERE "
        + "".join(f"a = {i} {'OR' if i % 2 else 'AND'} (" for i in range(n))
        + "a = 0"
        + ")" * n
    ),
    "and/or in select": lambda n: (
        "SELECT "
        + "".join(f"a = {i} {'OR' if i % 2 else 'AND'} (" for i in range(n))
        + "a = 0"
        + ")" * n
        + " AS x FROM t"
    ),
    "minus": lambda n: "SELECT a" + " - 1" * n + " AS x FROM t",
    "divide": lambda n: "SELECT a" + " / 2" * n + " AS x FROM t",
    "right-nested plus": lambda n: "SELECT " + "a + (" * n + "a" + ")" * n + " AS x FROM t",
    "between": lambda n: "SELECT " + "(" * n + "a" + " BETWEEN 1 AND 2)" * n + " AS x FROM t",
    "in with columns": lambda n: "SELECT " + "(" * n + "a" + " IN (b, c))" * n + " AS x FROM t",
    "simple case": lambda n: (
        "SELECT " + "CASE " * n + "a" + " WHEN 1 THEN 2 END" * n + " AS x FROM t"
    ),
    "json arrow": lambda n: "SELECT a" + "->'$.x'" * n + " AS x FROM t",
    "json_object": lambda n: "SELECT " + "JSON_OBJECT('k', " * n + "a" + ")" * n + " AS x FROM t",
    "date_add": lambda n: (
        "SELECT " + "DATE_ADD(" * n + "d" + ", INTERVAL 1 DAY)" * n + " AS x FROM t"
    ),
}


def deepest(kind: str) -> int:
    """The largest nesting of ``kind`` within the limits (found by bisection)."""
    build = NESTINGS[kind]
    low, high = 1, 4 * MAX_DEPTH
    while low < high:
        mid = (low + high + 1) // 2
        try:
            plan_statement(parse(build(mid)))
            low = mid
        except QueryLeafError as exc:
            assert "nested too deeply" in exc.message, exc
            high = mid - 1
    return low


# ---------------------------------------------------------------- the limits, exactly


@pytest.mark.parametrize("kind", sorted(NESTINGS))
def test_nesting_beyond_the_limit_is_a_positioned_error(kind):
    build = NESTINGS[kind]
    limit = deepest(kind)
    assert 16 <= limit <= MAX_DEPTH
    assert isinstance(compile_all(build(limit)), plans.Plan)
    for n in (limit + 1, 5 * MAX_DEPTH, 3000):
        outcome = compile_all(build(n))
        assert too_deep(outcome), outcome


def _deep_stack(frames: int, fn: Callable[[], Any]) -> Any:
    return fn() if frames == 0 else _deep_stack(frames - 1, fn)


@pytest.mark.parametrize("kind", sorted(NESTINGS))
def test_at_the_limit_everything_fits_the_default_recursion_limit(kind):
    """Parse, print, plan, EXPLAIN's renderings and BSON encoding of the deepest statement
    allowed, called 200 frames deep and from a thread (worker handlers run in threads)."""
    assert sys.getrecursionlimit() <= 1000
    sql = NESTINGS[kind](deepest(kind))
    outcome = _deep_stack(200, lambda: compile_all(sql))
    assert isinstance(outcome, plans.Plan), outcome
    found: list[Outcome | BaseException] = []

    def run() -> None:
        try:
            found.append(compile_all(sql))
        except BaseException as exc:  # noqa: BLE001 - reported below
            found.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    assert isinstance(found[0], plans.Plan), found[0]


@pytest.mark.parametrize("kind", ["or", "and", "plus", "or in select", "subscription where"])
def test_ten_thousand_term_chains_compile(kind):
    assert isinstance(compile_all(CHAINS[kind](10_000)), plans.Plan)


@pytest.mark.parametrize("kind", ["union all", "cte", "case else", "joins"])
def test_thousand_way_chains_compile(kind):
    assert isinstance(compile_all(CHAINS[kind](1000)), plans.Plan)


def test_long_lists_compile():
    assert isinstance(compile_all(in_list(100_000)), plans.Plan)
    assert isinstance(compile_all(*placeholders(100_000)), plans.Plan)


def test_an_unterminated_string_is_reported_at_its_start():
    outcome = compile_all("SELECT 'x" + "y" * 1_000_000)
    assert isinstance(outcome, SqlSyntaxError)
    assert outcome.message.startswith("unterminated string")
    assert (outcome.position.line, outcome.position.column) == (1, 8)
    assert len(outcome.token) < 40  # the excerpt, not the megabyte


def test_a_hand_built_ast_beyond_the_limit_is_a_planning_error():
    """The planner's last resort: ASTs that never went through the parser's limit check."""
    expr: ast.Expr = ast.Column(("a",))
    for _ in range(3000):
        expr = ast.FuncCall("ABS", (expr,))
    statement = ast.QueryStatement(ast.Select((ast.SelectItem(expr, "x"),), (ast.TableRef("t"),)))
    with pytest.raises(PlanningError, match="nested too deeply"):
        plan_statement(statement)


# ---------------------------------------------------------------- generated extreme statements

SHAPES = st.one_of(
    st.tuples(st.sampled_from(sorted(CHAINS)), st.integers(1, 2000)),
    st.tuples(st.sampled_from(sorted(NESTINGS)), st.integers(1, 3 * MAX_DEPTH)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SHAPES)
def test_generated_extreme_statements(shape):
    kind, n = shape
    if kind in CHAINS:
        outcome = compile_all(CHAINS[kind](n))
        assert isinstance(outcome, plans.Plan), outcome
    else:
        outcome = compile_all(NESTINGS[kind](n))
        assert isinstance(outcome, plans.Plan) or too_deep(outcome), outcome


SURROGATES = st.integers(0xD800, 0xDFFF).map(chr)
BAD_VALUES = st.one_of(
    st.tuples(
        st.just("text"),
        st.builds(lambda a, s, b: a + s + b, st.text(max_size=5), SURROGATES, st.text(max_size=5)),
    ),
    st.tuples(
        st.just("int"), st.one_of(st.integers(2**63, 2**80), st.integers(-(2**80), -(2**63) - 1))
    ),
    st.tuples(
        st.just("key"),
        st.builds(lambda a, b: a + "\x00" + b, st.text(max_size=5), st.text(max_size=5)),
    ),
)
CLAUSES = [
    "SELECT {} AS x FROM t",
    "SELECT a FROM t WHERE a = {}",
    "INSERT INTO t (a) VALUES ({})",
    "SELECT a FROM t LIMIT {}",
    "SELECT a FROM t OFFSET {}",
    "UPDATE t SET a = {} WHERE a = 1",
    "SELECT a FROM t WHERE a IN (1, {})",
]


@settings(max_examples=80, deadline=None)
@given(BAD_VALUES, st.sampled_from(CLAUSES), st.booleans())
def test_bad_values_are_queryleaf_errors(bad, clause, as_parameter):
    kind, value = bad
    if kind == "key":
        sql, params = clause.format(":p"), {"p": {value: 1}}
        expected: type[QueryLeafError] = ParameterError
    elif as_parameter:
        sql, params, expected = clause.format(":p"), {"p": value}, ParameterError
    else:
        literal = f"'{value}'" if kind == "text" else str(value)
        sql, params, expected = clause.format(literal), None, SqlSyntaxError
    outcome = compile_all(sql, params)
    assert isinstance(outcome, expected), outcome
    if expected is SqlSyntaxError:
        assert outcome.position is not None
        assert "surrogate" in outcome.message or "64-bit" in outcome.message


@pytest.mark.parametrize("value", [2**63 - 1, -(2**63)])
def test_the_64_bit_bounds_are_integers(value):
    assert isinstance(compile_all(f"SELECT {value} AS x FROM t WHERE a = {value}"), plans.Plan)
    assert isinstance(compile_all(f"SELECT a FROM t LIMIT {2**63 - 1}"), plans.Plan)


# ---------------------------------------------------------------- against the server


@pytest.fixture()
def rows(ql):
    ql.db.t.insert_many([{"_id": i, "a": i, "s": "s", "d": None} for i in range(5)])
    return ql


def test_long_chains_run(rows):
    ql = rows
    assert ql.execute(or_chain(10_000)).rows == [{"a": i} for i in range(5)]
    assert ql.execute(and_chain(10_000) + " OR a = 3").rows == [{"a": 3}]
    assert ql.execute(plus_chain(10_000) + " WHERE a = 2").rows == [{"x": 10_002}]
    assert len(ql.execute(union_chain(1000)).rows) == 5000
    assert ql.execute(cte_chain(1000) + " WHERE a = 4").rows == [{"a": 4}]
    assert ql.execute(in_list(100_000)).rows == [{"a": i} for i in range(5)]
    assert ql.execute(*placeholders(100_000)).rows == [{"a": i} for i in range(5)]


def test_a_subscription_where_of_ten_thousand_terms(rows):
    ql = rows
    where = " OR ".join(f"full_document.a = {i}" for i in range(10_000))
    ql.execute(f"CREATE EVENT_SUBSCRIPTION s AS (watch_collections = 't') WHERE {where}")
    stored = ql.db[names.SUBSCRIPTIONS].find_one({"_id": "s"})
    assert stored["where"] == {"$or": [{"fullDocument.a": i} for i in range(10_000)]}
    ql.execute("DROP EVENT_SUBSCRIPTION s")


@pytest.mark.parametrize(
    "kind", ["case in then", "function", "derived table", "scalar subquery", "and/or in select"]
)
def test_nesting_at_the_limit_runs(rows, kind):
    result = rows.execute(NESTINGS[kind](deepest(kind)))
    assert len(result.rows) in (1, 5)
    assert rows.execute("EXPLAIN " + NESTINGS[kind](deepest(kind))).rows


def test_a_document_over_16_mb_is_an_execution_error(rows):
    big = "x" * (17 * 1024 * 1024)
    for sql, params in (
        (f"INSERT INTO t (a) VALUES ('{big}')", None),
        ("INSERT INTO t (a) VALUES (:p)", {"p": big}),
        (f"SELECT '{big}' AS x", None),
        ("SELECT a FROM t WHERE s = :p", {"p": big}),
    ):
        with pytest.raises(ExecutionError, match="too large"):
            rows.execute(sql, params).rows  # noqa: B018 - a find runs as its rows are read
    assert rows.db.t.count_documents({}) == 5


def test_parameter_keys_are_data_never_operators(rows):
    ql = rows
    for value in ({"$ne": None}, {"$gt": 0}, {"x.y": 1}, {"$set": {"a": 9}}):
        assert ql.execute("SELECT a FROM t WHERE d = :p", {"p": value}).rows == []
        ql.execute("UPDATE t SET d = :p WHERE a = 1", {"p": value})
        assert ql.db.t.find_one({"_id": 1})["d"] == value
        assert ql.execute("SELECT a FROM t WHERE d = :p", {"p": value}).rows == [{"a": 1}]
        assert ql.execute("SELECT :p AS v", {"p": value}).rows == [{"v": value}]
        ql.execute("UPDATE t SET d = NULL WHERE a = 1")
    assert ql.db.t.count_documents({"a": 9}) == 0


def test_insert_select_reports_every_row_stored_before_the_error(ql):
    ql.db.src.insert_many([{"_id": i, "v": i} for i in range(2500)])
    ql.db.dst.insert_one({"_id": 1500})  # the second batch (1000..1999) fails half way
    with pytest.raises(ExecutionError) as caught:
        ql.execute("INSERT INTO dst (_id, v) SELECT _id, v FROM src ORDER BY _id")
    assert caught.value.message.endswith(
        "rows 1-1500 were inserted, row 1501 and the rows after it were not"
    )
    assert ql.db.dst.count_documents({}) == 1501
    assert isinstance(caught.value.__cause__, pymongo.errors.BulkWriteError)
