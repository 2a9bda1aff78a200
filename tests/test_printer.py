"""The printer: canonical SQL text, and parse(to_sql(ast)) == ast for every construct."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from sql_ast_strategies import plain_exprs, renumber_params, statements, strict
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

from queryleaf.sql import ast
from queryleaf.sql.parser import _lark, parse, parse_script
from queryleaf.sql.printer import KEYWORDS, RESERVED, expr_name, quote_name, to_sql

# ---------------------------------------------------------------- canonical text

CANONICAL = [
    # keywords upper-case, one space, AS for aliases, JOIN for INNER JOIN
    (
        "select a x from t u inner join v on u.id=v.id where a>1",
        "SELECT a AS x FROM t AS u JOIN v ON u.id = v.id WHERE a > 1",
    ),
    (
        "select distinct a from t order by a asc, b desc nulls first limit 5 offset 2",
        "SELECT DISTINCT a FROM t ORDER BY a, b DESC NULLS FIRST LIMIT 5 OFFSET 2",
    ),
    (
        "SELECT * FROM a LEFT OUTER JOIN b ON TRUE CROSS JOIN c",
        "SELECT * FROM a LEFT JOIN b ON TRUE CROSS JOIN c",
    ),
    # minimal parentheses
    (
        "SELECT (a + b) * c, a + (b * c), (a - b) - c, a - (b - c)",
        "SELECT (a + b) * c, a + b * c, a - b - c, a - (b - c)",
    ),
    (
        "SELECT ((a)), (a || b) || c, a || (b || c), a || (b + c)",
        "SELECT a, a || b || c, a || (b || c), a || b + c",
    ),
    (
        "SELECT a OR (b AND c), (a OR b) AND c, NOT (a = 1), NOT (a AND b)",
        "SELECT a OR b AND c, (a OR b) AND c, NOT a = 1, NOT (a AND b)",
    ),
    (
        "SELECT (a = 1) = (b = 2), (a IS NULL) IS NULL, (EXISTS (SELECT 1)) = TRUE",
        "SELECT (a = 1) = (b = 2), (a IS NULL) IS NULL, (EXISTS (SELECT 1)) = TRUE",
    ),
    (
        "SELECT a BETWEEN (b OR c) AND d, a IN (b OR c), a = (NOT b)",
        "SELECT a BETWEEN (b OR c) AND d, a IN (b OR c), a = (NOT b)",
    ),
    (
        "SELECT -(a + b), -(-a), - -a, -(+a), (-5)->'$.x', -(a->'$.x')",
        "SELECT -(a + b), - -a, - -a, - +a, (-5)->'$.x', -a->'$.x'",
    ),
    (
        "SELECT a - -1, a * -b, INTERVAL (n + 1) day, INTERVAL -2 HOURS",
        "SELECT a - -1, a * -b, INTERVAL (n + 1) DAY, INTERVAL -2 HOUR",
    ),
    ("SELECT a != 1, a mod 2, a div 2", "SELECT a <> 1, a MOD 2, a DIV 2"),
    (
        "SELECT (a | b) & c, a | (b & c), (a << 1) + 2, a << (1 + 2), (a * b) ^ c, (a ^ b) * c",
        "SELECT (a | b) & c, a | b & c, (a << 1) + 2, a << 1 + 2, (a * b) ^ c, a ^ b * c",
    ),
    (
        "SELECT ~(a ^ b), ~ ~a, -~a, ~-a, ~ -5, (a || b) | c, a || (b | c), (a & 1) = 1",
        "SELECT ~(a ^ b), ~~a, -~a, ~-a, ~-5, a || b | c, a || (b | c), a & 1 = 1",
    ),
    # literals
    (
        "SELECT 'it''s', 1.50, .5, 5., 1e3, 2.5e-7, -0.001, 1e999, TRUE, null",
        "SELECT 'it''s', 1.50, 0.5, 5.0, 1000.0E0, 2.5E-07, -0.001, 1E999, TRUE, NULL",
    ),
    ("SELECT 0.0000001", "SELECT 0.0000001"),
    # names: quoted only when needed
    (
        'SELECT status, first, `my col`, "a""b", café, "select".x FROM `t`',
        'SELECT status, "first", "my col", "a""b", café, "select".x FROM t',
    ),
    ("SELECT items[0].price, `a.b`.c FROM db.coll", 'SELECT items[0].price, "a.b".c FROM db.coll'),
    # functions: keyword-named functions print bare; types and units unquoted
    (
        "SELECT left(s, 2), replace(s, 'a', 'b'), if(a, 1, 2), now(), timestamp(x)",
        "SELECT LEFT(s, 2), REPLACE(s, 'a', 'b'), IF(a, 1, 2), NOW(), TIMESTAMP(x)",
    ),
    (
        "SELECT cast(a as decimal(10,2)), cast(b AS timestamp), extract(year from d)",
        "SELECT CAST(a AS DECIMAL(10, 2)), CAST(b AS TIMESTAMP), EXTRACT(YEAR FROM d)",
    ),
    (
        "SELECT group_concat(distinct a order by b desc separator ', '), json_arrayagg(x limit 3)",
        "SELECT GROUP_CONCAT(DISTINCT a ORDER BY b DESC SEPARATOR ', '), JSON_ARRAYAGG(x LIMIT 3)",
    ),
    (
        "SELECT sum(x) over (partition by a order by b rows between unbounded preceding and "
        "current row), count(*) over ()",
        "SELECT SUM(x) OVER (PARTITION BY a ORDER BY b ROWS BETWEEN UNBOUNDED PRECEDING AND "
        "CURRENT ROW), COUNT(*) OVER ()",
    ),
    (
        "SELECT case when a then 1 else 2 end, case a when 1 then 'x' end",
        "SELECT CASE WHEN a THEN 1 ELSE 2 END, CASE a WHEN 1 THEN 'x' END",
    ),
    ("SELECT doc -> '$.a', doc ->> '$.b' FROM t", "SELECT doc->'$.a', doc->>'$.b' FROM t"),
    (
        "SELECT a not like 'x' escape '!', a ilike 'y', a rlike 'z', a is not null",
        "SELECT a NOT LIKE 'x' ESCAPE '!', a ILIKE 'y', a REGEXP 'z', a IS NOT NULL",
    ),
    ("SELECT :p, ?, ?", "SELECT :p, ?, ?"),
    # queries
    (
        "with x as (select 1) select * from x union all select 2 intersect select 3 order by 1",
        "WITH x AS (SELECT 1) SELECT * FROM x UNION ALL SELECT 2 INTERSECT SELECT 3 ORDER BY 1",
    ),
    (
        "select * from (select 1) s, change_stream_events() e",
        "SELECT * FROM (SELECT 1) AS s, CHANGE_STREAM_EVENTS() AS e",
    ),
    # statements
    (
        "insert into t (a, b.c) values (1, 2), (3, 4)",
        "INSERT INTO t (a, b.c) VALUES (1, 2), (3, 4)",
    ),
    ("update t x set a = a + 1 where b", "UPDATE t AS x SET a = a + 1 WHERE b"),
    ("delete from t", "DELETE FROM t"),
    ("create or replace view v as select 1", "CREATE OR REPLACE VIEW v AS SELECT 1"),
    ("drop view if exists v", "DROP VIEW IF EXISTS v"),
    ("explain select 1", "EXPLAIN SELECT 1"),
    (
        "create event_subscription if not exists s as (A = 1, b = 'x') where c",
        "CREATE EVENT_SUBSCRIPTION IF NOT EXISTS s AS (a = 1, b = 'x') WHERE c",
    ),
    ("alter event_subscription s set (a = 1)", "ALTER EVENT_SUBSCRIPTION s SET (a = 1)"),
    ("drop event_subscription if exists s", "DROP EVENT_SUBSCRIPTION IF EXISTS s"),
    ("pause event_subscription s", "PAUSE EVENT_SUBSCRIPTION s"),
    ("resume event_subscription s", "RESUME EVENT_SUBSCRIPTION s"),
    ("show event_subscriptions", "SHOW EVENT_SUBSCRIPTIONS"),
    ("show event_subscriptions full", "SHOW EVENT_SUBSCRIPTIONS FULL"),
    ("replay dead_letter_events where a = 1", "REPLAY DEAD_LETTER_EVENTS WHERE a = 1"),
    (
        "reset event_subscription s to timestamp 'x''y'",
        "RESET EVENT_SUBSCRIPTION s TO TIMESTAMP 'x''y'",
    ),
    ("reset event_subscription s to now", "RESET EVENT_SUBSCRIPTION s TO NOW"),
    ("start transaction", "BEGIN"),
    ("begin work", "BEGIN"),
    ("commit work", "COMMIT"),
    ("rollback work", "ROLLBACK"),
    ("select rollback from work", 'SELECT "rollback" FROM "work"'),
]


@pytest.mark.parametrize(("sql", "canonical"), CANONICAL, ids=[c[0] for c in CANONICAL])
def test_canonical_text(sql, canonical):
    assert to_sql(parse(sql)) == canonical
    assert to_sql(parse(canonical)) == canonical  # a fixed point
    assert strict(parse(canonical)) == strict(parse(sql))


# ---------------------------------------------------------------- round trip of the corpus

CORPUS = [sql for table in (EXPRESSIONS,) for sql, _ in table]
CORPUS = (
    [f"SELECT {sql}" for sql in CORPUS]
    + [sql for table in (SELECTS, SET_OPERATIONS, WRITES, OTHER, SUBSCRIPTIONS) for sql, _ in table]
    + [f"SELECT * FROM {sql.split(' FROM ', 1)[1]}" for sql, _ in JOINS]
)


def assert_round_trip(statement: ast.Statement) -> str:
    text = to_sql(statement)
    assert strict(parse(text)) == strict(statement), text
    return text


@pytest.mark.parametrize("sql", CORPUS)
def test_round_trip_of_every_golden_construct(sql):
    assert_round_trip(parse(sql))


def test_round_trip_of_the_seed():
    for parsed in parse_script(SEED.read_text(encoding="utf-8")):
        assert_round_trip(parsed.statement)
        assert to_sql(parsed) == to_sql(parsed.statement)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(statements)
def test_round_trip_of_random_statements(statement):
    text = assert_round_trip(statement)
    assert to_sql(parse(text)) == text


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plain_exprs)
def test_round_trip_of_random_expressions(expression):
    statement = renumber_params(ast.QueryStatement(ast.Select((ast.SelectItem(expression),))))
    assert_round_trip(statement)


# ---------------------------------------------------------------- pieces


def test_to_sql_renders_clauses_and_expressions():
    select = parse("SELECT a AS x FROM t o JOIN u ON o.k = u.k ORDER BY a DESC").query
    assert to_sql(select.items[0]) == "a AS x"
    assert to_sql(select.from_[0]) == "t AS o JOIN u ON o.k = u.k"
    assert to_sql(select.from_[0].on) == "o.k = u.k"
    assert to_sql(select.order_by[0]) == "a DESC"
    assert to_sql(select) == "SELECT a AS x FROM t AS o JOIN u ON o.k = u.k ORDER BY a DESC"
    assert to_sql(ast.TypeName("DECIMAL", (10, 2))) == "DECIMAL(10, 2)"


@pytest.mark.parametrize(
    ("sql", "name"),
    [
        ("a", "a"),
        ("o.customer.name", "o.customer.name"),
        ("items[0].price", "items[0].price"),
        ('"my col"', "my col"),
        ("COUNT(*)", "COUNT(*)"),
        ("count(distinct a)", "COUNT(DISTINCT a)"),
        ("price * 2", "price * 2"),
        ("sum(x) / count(*)", "SUM(x) / COUNT(*)"),
        ("'x'", "'x'"),
        ("-1", "-1"),
        ("CASE WHEN a THEN 1 END", "CASE WHEN a THEN 1 END"),
        ("t.*", "t.*"),
        ("*", "*"),
    ],
)
def test_expr_name(sql, name):
    assert expr_name(parse(f"SELECT {sql}").query.items[0].expr) == name


@pytest.mark.parametrize(
    ("name", "quoted"),
    [
        ("a", "a"),
        ("_x1", "_x1"),
        ("a$", "a$"),
        ("café", "café"),
        ("status", "status"),
        ("first", '"first"'),
        ("SELECT", '"SELECT"'),
        ("1a", '"1a"'),
        ("a b", '"a b"'),
        ('a"b', '"a""b"'),
        ("$a", '"$a"'),
        ("a.b", '"a.b"'),
    ],
)
def test_quote_name(name, quoted):
    assert quote_name(name) == quoted


def test_float_and_decimal_literals_keep_their_type():
    for value in [1.5, 1e-300, -2.0, 1e22, float("inf"), float("-inf")]:
        assert_round_trip(_select_literal(value))
    for value in [Decimal("1E+3"), Decimal("-0.0000001"), Decimal("7"), Decimal("-12.50")]:
        assert_round_trip(_select_literal(value))


def _select_literal(value) -> ast.Statement:
    return ast.QueryStatement(ast.Select((ast.SelectItem(ast.Literal(value)),)))


S = ast.Select((ast.SelectItem(ast.Literal(1)),))
UNPRINTABLE = [
    ast.SetOperation("UNION", S, ast.SetOperation("UNION", S, S)),
    ast.SetOperation("INTERSECT", ast.SetOperation("UNION", S, S), S),
    ast.SetOperation("UNION", ast.Select(S.items, limit=ast.Literal(1)), S),
    ast.Select(
        S.items,
        from_=(
            ast.Join(
                "LEFT",
                ast.TableRef("a"),
                ast.Join("CROSS", ast.TableRef("b"), ast.TableRef("c")),
                ast.Literal(True),
            ),
        ),
    ),
    ast.Select(S.items, from_=(ast.Join("INNER", ast.TableRef("a"), ast.TableRef("b")),)),
    ast.Insert("t"),
    ast.InList(ast.Column(("a",)), ()),
    ast.Literal(float("nan")),
    ast.Literal(object()),
    ast.Column((0, "a")),
]


@pytest.mark.parametrize("node", UNPRINTABLE, ids=lambda n: type(n).__name__)
def test_asts_without_text_are_refused(node):
    with pytest.raises((ValueError, TypeError)):
        to_sql(node)


# ---------------------------------------------------------------- consistency with the grammar


def _grammar_keywords() -> set[str]:
    words = set()
    for term in _lark().terminals:
        if term.pattern.type == "re" and term.pattern.value.endswith(r"\b"):
            body = term.pattern.value[:-2].strip("()")
            words.update(w.replace("I?", "") for w in body.split("|"))
            if "I?LIKE" in body:
                words.add("ILIKE")
    return words


def test_printer_keywords_are_the_grammar_keywords():
    assert _grammar_keywords() == KEYWORDS


def test_reserved_words_are_the_ones_name_excludes():
    name = next(t for t in _lark().terminals if t.name == "NAME").pattern.to_regexp()
    refused = {w for w in KEYWORDS if not re.fullmatch(name, w.lower())}
    assert refused == RESERVED
