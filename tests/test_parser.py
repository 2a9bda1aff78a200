"""Golden tests of the parser: for each construct of the grammar, SQL text and the AST it means.

ASTs are compared with ``strict`` (types of literal values included: 1, 1.0, Decimal('1') and
True are different literals), positions excluded.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pytest
from sql_ast_strategies import strict

from queryleaf.errors import Position, SqlSyntaxError
from queryleaf.sql import ast
from queryleaf.sql.ast import (
    AlterSubscription,
    Assignment,
    Between,
    Binary,
    Case,
    Cast,
    Column,
    CreateSubscription,
    CreateView,
    Cte,
    Delete,
    DerivedTable,
    DropSubscription,
    DropView,
    Exists,
    Explain,
    Extract,
    FrameBound,
    FuncCall,
    InList,
    Insert,
    InSubquery,
    Interval,
    IsNull,
    Join,
    JsonArrow,
    Like,
    Literal,
    OrderItem,
    Param,
    PauseSubscription,
    QueryStatement,
    Regexp,
    ReplayDeadLetters,
    ResetSubscription,
    ResumeSubscription,
    ScalarSubquery,
    Select,
    SelectItem,
    SetOperation,
    ShowSubscriptions,
    Star,
    SubscriptionOption,
    TableFunction,
    TableRef,
    TypeName,
    Unary,
    Update,
    When,
    WindowSpec,
)
from queryleaf.sql.parser import parse, parse_script

# The seed's SQL, copied verbatim from ../shared/seed/ (a fresh clone has no ../shared).
SEED = Path(__file__).parent / "golden" / "parser" / "seed-queryleaf-event-sql.sql"
SHARED_SEED = Path(__file__).resolve().parents[2] / "shared" / "seed" / "queryleaf-event-sql.sql"

# ---------------------------------------------------------------- builders


def col(*parts: str | int) -> Column:
    return Column(parts)


def lit(value) -> Literal:
    return Literal(value)


def fn(name: str, *args: ast.Expr, **kw) -> FuncCall:
    return FuncCall(name, args, **kw)


def count_star() -> FuncCall:
    return FuncCall("COUNT", (Star(),))


def b(op: str, left: ast.Expr, right: ast.Expr) -> Binary:
    return Binary(op, left, right)


def item(expr: ast.Expr, alias: str | None = None) -> SelectItem:
    return SelectItem(expr, alias)


def select(*items, **clauses) -> Select:
    """A Select; items may be expressions or SelectItems; list clause values become tuples."""
    built = tuple(i if isinstance(i, SelectItem) else SelectItem(i) for i in items)
    clauses = {k: tuple(v) if isinstance(v, list) else v for k, v in clauses.items()}
    return Select(built, **clauses)


def query(*items, **clauses) -> QueryStatement:
    return QueryStatement(select(*items, **clauses))


def t(name: str, alias: str | None = None) -> TableRef:
    return TableRef(name, alias)


def expr(text: str) -> ast.Expr:
    """The expression of ``SELECT <text>``."""
    statement = parse(f"SELECT {text}")
    return statement.query.items[0].expr


def assert_parses(sql: str, expected) -> None:
    assert strict(parse(sql)) == strict(expected)


# ---------------------------------------------------------------- expressions

EXPRESSIONS = [
    # literals
    ("1", lit(1)),
    ("1.5", lit(Decimal("1.5"))),
    (".5", lit(Decimal("0.5"))),
    ("5.", lit(Decimal("5"))),
    ("1e3", lit(1000.0)),
    ("2.5E-2", lit(0.025)),
    ("-1", lit(-1)),
    ("- 2.50", lit(Decimal("-2.50"))),
    ("-1e2", lit(-100.0)),
    ("- -4", lit(4)),
    ("+3", Unary("+", lit(3))),
    ("-a", Unary("-", col("a"))),
    ("'it''s'", lit("it's")),
    ("''", lit("")),
    ("'multi\nline'", lit("multi\nline")),
    ("TRUE", lit(True)),
    ("false", lit(False)),
    ("NULL", lit(None)),
    # parameters
    (":name", Param("name")),
    ("?", Param(None, 0)),
    # columns, paths, array indexes, quoting
    ("a", col("a")),
    ("a.b.c", col("a", "b", "c")),
    ("items[0].price", col("items", 0, "price")),
    ("m[1][2]", col("m", 1, 2)),
    ('"my col"', col("my col")),
    ('"say ""hi"""', col('say "hi"')),
    ("`odd name`.`x``y`", col("odd name", "x`y")),
    ('"select"', col("select")),
    ("café", col("café")),
    ("a$b", col("a$b")),
    ("Amount", col("Amount")),
    # arithmetic and precedence
    ("a + b * c", b("+", col("a"), b("*", col("b"), col("c")))),
    ("(a + b) * c", b("*", b("+", col("a"), col("b")), col("c"))),
    ("a - b - c", b("-", b("-", col("a"), col("b")), col("c"))),
    ("a - (b - c)", b("-", col("a"), b("-", col("b"), col("c")))),
    ("a / b % c", b("%", b("/", col("a"), col("b")), col("c"))),
    ("a DIV 2", b("DIV", col("a"), lit(2))),
    ("a mod 2", b("MOD", col("a"), lit(2))),
    ("a * -2", b("*", col("a"), lit(-2))),
    ("-a * b", b("*", Unary("-", col("a")), col("b"))),
    ("a || b || c", b("||", b("||", col("a"), col("b")), col("c"))),
    ("a || b + c", b("||", col("a"), b("+", col("b"), col("c")))),
    # bitwise operators: MySQL's precedence (| & << >> below + -, ^ above * /), || above them
    ("a | b & c", b("|", col("a"), b("&", col("b"), col("c")))),
    ("a & b | c", b("|", b("&", col("a"), col("b")), col("c"))),
    ("a & b << 2", b("&", col("a"), b("<<", col("b"), lit(2)))),
    ("a << 1 + 2", b("<<", col("a"), b("+", lit(1), lit(2)))),
    ("a >> b >> c", b(">>", b(">>", col("a"), col("b")), col("c"))),
    ("a * b ^ c", b("*", col("a"), b("^", col("b"), col("c")))),
    ("a ^ b ^ c", b("^", b("^", col("a"), col("b")), col("c"))),
    ("-a ^ b", b("^", Unary("-", col("a")), col("b"))),
    ("~a", Unary("~", col("a"))),
    ("~-1", Unary("~", lit(-1))),
    ("~a ^ ~b", b("^", Unary("~", col("a")), Unary("~", col("b")))),
    ("a || b << 1", b("<<", b("||", col("a"), col("b")), lit(1))),
    ("a||b|c", b("|", b("||", col("a"), col("b")), col("c"))),
    ("a<<b<c", b("<", b("<<", col("a"), col("b")), col("c"))),
    ("a & 4 = 4", b("=", b("&", col("a"), lit(4)), lit(4))),
    ("a | 1 IN (1, 3)", InList(b("|", col("a"), lit(1)), (lit(1), lit(3)))),
    # comparisons
    ("a = 1", b("=", col("a"), lit(1))),
    ("a <> 1", b("<>", col("a"), lit(1))),
    ("a != 1", b("<>", col("a"), lit(1))),
    ("a < 1", b("<", col("a"), lit(1))),
    ("a <= 1", b("<=", col("a"), lit(1))),
    ("a > 1", b(">", col("a"), lit(1))),
    ("a >= 1", b(">=", col("a"), lit(1))),
    ("a + 1 > b * 2", b(">", b("+", col("a"), lit(1)), b("*", col("b"), lit(2)))),
    # boolean logic and precedence
    ("a OR b AND c", b("OR", col("a"), b("AND", col("b"), col("c")))),
    ("(a OR b) AND c", b("AND", b("OR", col("a"), col("b")), col("c"))),
    ("NOT a = 1", Unary("NOT", b("=", col("a"), lit(1)))),
    ("NOT a AND b", b("AND", Unary("NOT", col("a")), col("b"))),
    ("NOT NOT a", Unary("NOT", Unary("NOT", col("a")))),
    (
        "a = 1 AND b = 2 OR c",
        b("OR", b("AND", b("=", col("a"), lit(1)), b("=", col("b"), lit(2))), col("c")),
    ),
    # predicates
    ("a IN (1, 2)", InList(col("a"), (lit(1), lit(2)))),
    ("a NOT IN ('x')", InList(col("a"), (lit("x"),), negated=True)),
    ("a BETWEEN 1 AND 2", Between(col("a"), lit(1), lit(2))),
    ("a NOT BETWEEN b + 1 AND c", Between(col("a"), b("+", col("b"), lit(1)), col("c"), True)),
    ("a BETWEEN 1 AND 2 AND b", b("AND", Between(col("a"), lit(1), lit(2)), col("b"))),
    ("a LIKE 'x%'", Like(col("a"), lit("x%"))),
    ("a NOT LIKE 'x%'", Like(col("a"), lit("x%"), negated=True)),
    ("a ILIKE 'x%'", Like(col("a"), lit("x%"), case_insensitive=True)),
    ("a NOT ILIKE 'x%'", Like(col("a"), lit("x%"), True, True)),
    ("a LIKE 'x!%' ESCAPE '!'", Like(col("a"), lit("x!%"), escape=lit("!"))),
    ("a REGEXP '^x'", Regexp(col("a"), lit("^x"))),
    ("a RLIKE '^x'", Regexp(col("a"), lit("^x"))),
    ("a NOT REGEXP '^x'", Regexp(col("a"), lit("^x"), True)),
    ("a IS NULL", IsNull(col("a"))),
    ("a IS NOT NULL", IsNull(col("a"), True)),
    ("a || b IS NULL", IsNull(b("||", col("a"), col("b")))),
    # JSON arrows
    ("doc->'$.a'", JsonArrow(col("doc"), "$.a")),
    ("doc->>'$.a[0]'", JsonArrow(col("doc"), "$.a[0]", True)),
    ("doc->'$.a'->>'$.b'", JsonArrow(JsonArrow(col("doc"), "$.a"), "$.b", True)),
    ("-doc->'$.a'", Unary("-", JsonArrow(col("doc"), "$.a"))),
    ("(-5)->'$'", JsonArrow(lit(-5), "$")),
    # function calls
    ("now()", fn("NOW")),
    ("Concat(a, 'x', 1)", fn("CONCAT", col("a"), lit("x"), lit(1))),
    ("COUNT(*)", count_star()),
    ("count(DISTINCT a)", fn("COUNT", col("a"), distinct=True)),
    (
        "GROUP_CONCAT(a ORDER BY b DESC SEPARATOR ', ')",
        fn("GROUP_CONCAT", col("a"), order_by=(OrderItem(col("b"), True),), separator=lit(", ")),
    ),
    ("JSON_ARRAYAGG(a LIMIT 10)", fn("JSON_ARRAYAGG", col("a"), limit=10)),
    ("left(s, 2)", fn("LEFT", col("s"), lit(2))),
    ("right(s, 2)", fn("RIGHT", col("s"), lit(2))),
    ("replace(s, 'a', 'b')", fn("REPLACE", col("s"), lit("a"), lit("b"))),
    ("if(a, 1, 2)", fn("IF", col("a"), lit(1), lit(2))),
    ("mod(a, 2)", fn("MOD", col("a"), lit(2))),
    ("timestamp('2024-01-01')", fn("TIMESTAMP", lit("2024-01-01"))),
    ('"my func"(1)', fn("MY FUNC", lit(1))),
    # window functions
    ("ROW_NUMBER() OVER ()", fn("ROW_NUMBER", over=WindowSpec())),
    ("COUNT(*) OVER (PARTITION BY a)", FuncCall("COUNT", (Star(),), over=WindowSpec((col("a"),)))),
    (
        "SUM(x) OVER (PARTITION BY a, b ORDER BY c DESC NULLS LAST)",
        fn(
            "SUM",
            col("x"),
            over=WindowSpec((col("a"), col("b")), (OrderItem(col("c"), True, False),)),
        ),
    ),
    (
        "SUM(x) OVER (ORDER BY c ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)",
        fn(
            "SUM",
            col("x"),
            over=WindowSpec(
                (),
                (OrderItem(col("c")),),
                "ROWS",
                FrameBound("unbounded_preceding"),
                FrameBound("current_row"),
            ),
        ),
    ),
    (
        "AVG(x) OVER (ORDER BY c RANGE BETWEEN 2 PRECEDING AND 3 FOLLOWING)",
        fn(
            "AVG",
            col("x"),
            over=WindowSpec(
                (),
                (OrderItem(col("c")),),
                "RANGE",
                FrameBound("preceding", 2),
                FrameBound("following", 3),
            ),
        ),
    ),
    (
        "AVG(x) OVER (rows 5 preceding)",
        fn("AVG", col("x"), over=WindowSpec((), (), "ROWS", FrameBound("preceding", 5))),
    ),
    (
        "MAX(x) OVER (ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING)",
        fn(
            "MAX",
            col("x"),
            over=WindowSpec(
                (), (), "ROWS", FrameBound("current_row"), FrameBound("unbounded_following")
            ),
        ),
    ),
    # CASE, CAST, EXTRACT, INTERVAL
    (
        "CASE WHEN a > 1 THEN 'big' ELSE 'small' END",
        Case(None, (When(b(">", col("a"), lit(1)), lit("big")),), lit("small")),
    ),
    (
        "CASE a WHEN 1 THEN 'one' WHEN 2 THEN 'two' END",
        Case(col("a"), (When(lit(1), lit("one")), When(lit(2), lit("two")))),
    ),
    ("CAST(a AS INT)", Cast(col("a"), TypeName("INT"))),
    ("cast(a as decimal(10,2))", Cast(col("a"), TypeName("DECIMAL", (10, 2)))),
    ("CAST(a AS varchar(20))", Cast(col("a"), TypeName("VARCHAR", (20,)))),
    ("CAST(a AS timestamp)", Cast(col("a"), TypeName("TIMESTAMP"))),
    ("a::bigint", Cast(col("a"), TypeName("BIGINT"))),
    ("-a::int", Unary("-", Cast(col("a"), TypeName("INT")))),
    ("a::double precision", Cast(col("a"), TypeName("DOUBLE"))),
    ("a::character varying(5)", Cast(col("a"), TypeName("VARCHAR", (5,)))),
    ("a::timestamp with time zone", Cast(col("a"), TypeName("TIMESTAMP"))),
    ("CAST(a AS timestamp without time zone)", Cast(col("a"), TypeName("TIMESTAMP"))),
    ("EXTRACT(year FROM d)", Extract("YEAR", col("d"))),
    ("INTERVAL 24 HOUR", Interval(lit(24), "HOUR")),
    ("INTERVAL 3 days", Interval(lit(3), "DAY")),
    ("INTERVAL -5 minute", Interval(lit(-5), "MINUTE")),
    ("INTERVAL (n + 1) WEEKS", Interval(b("+", col("n"), lit(1)), "WEEK")),
    ("NOW() - INTERVAL 1 DAY", b("-", fn("NOW"), Interval(lit(1), "DAY"))),
    # subqueries
    ("(SELECT 1)", ScalarSubquery(select(lit(1)))),
    ("EXISTS (SELECT 1)", Exists(select(lit(1)))),
    ("NOT EXISTS (SELECT 1)", Unary("NOT", Exists(select(lit(1))))),
    ("a IN (SELECT b FROM u)", InSubquery(col("a"), select(col("b"), from_=[t("u")]))),
    (
        "a NOT IN (SELECT b FROM u)",
        InSubquery(col("a"), select(col("b"), from_=[t("u")]), negated=True),
    ),
    ("a IN ((SELECT 1), 2)", InList(col("a"), (ScalarSubquery(select(lit(1))), lit(2)))),
    ("(EXISTS (SELECT 1)) = TRUE", b("=", Exists(select(lit(1))), lit(True))),
]


@pytest.mark.parametrize(("sql", "expected"), EXPRESSIONS, ids=[e[0] for e in EXPRESSIONS])
def test_expression(sql, expected):
    assert strict(expr(sql)) == strict(expected)


def test_float_infinity_literal():
    assert expr("1e999") == lit(float("inf"))


# ---------------------------------------------------------------- keywords as names


def test_keywords_usable_as_column_names():
    sql = (
        "SELECT status, date, count, first, timestamp, key, value, end, limit, offset, "
        "last, row, rows, left(s, 2) FROM t"
    )
    names = [
        "status",
        "date",
        "count",
        "first",
        "timestamp",
        "key",
        "value",
        "end",
        "limit",
        "offset",
        "last",
        "row",
        "rows",
    ]
    expected = query(*[col(n) for n in names], fn("LEFT", col("s"), lit(2)), from_=[t("t")])
    assert_parses(sql, expected)


def test_keywords_usable_as_aliases_and_tables():
    assert_parses(
        "SELECT a AS first, b last FROM timestamp key WHERE value = 1 ORDER BY count",
        query(
            item(col("a"), "first"),
            item(col("b"), "last"),
            from_=[t("timestamp", "key")],
            where=b("=", col("value"), lit(1)),
            order_by=[OrderItem(col("count"))],
        ),
    )


def test_keyword_wins_where_the_grammar_expects_it():
    # after a table name, LEFT starts a join rather than naming an alias
    assert_parses(
        "SELECT * FROM a left JOIN b ON a.x = b.x",
        query(Star(), from_=[Join("LEFT", t("a"), t("b"), b("=", col("a", "x"), col("b", "x")))]),
    )
    assert_parses("SELECT a mod 2", query(b("MOD", col("a"), lit(2))))


@pytest.mark.parametrize(
    "word",
    [
        "select",
        "from",
        "where",
        "group",
        "order",
        "union",
        "join",
        "on",
        "as",
        "and",
        "or",
        "not",
        "in",
        "is",
        "like",
        "ilike",
        "case",
        "when",
        "then",
        "else",
        "distinct",
        "exists",
        "with",
    ],
)
def test_reserved_words_need_quotes(word):
    with pytest.raises(SqlSyntaxError):
        parse(f"SELECT {word} FROM t WHERE {word} = 1")
    assert_parses(f'SELECT "{word}" FROM t', query(col(word), from_=[t("t")]))


def test_null_true_false_are_literals_unless_quoted():
    assert_parses("SELECT null, true, FALSE", query(lit(None), lit(True), lit(False)))
    assert_parses('SELECT "null", `true`', query(col("null"), col("true")))


def test_case_insensitive_keywords():
    assert_parses(
        "sElEcT DiStInCt a FrOm t wHeRe a iS nOt NuLl OrDeR bY a DeSc NuLlS fIrSt LiMiT 1",
        query(
            col("a"),
            distinct=True,
            from_=[t("t")],
            where=IsNull(col("a"), True),
            order_by=[OrderItem(col("a"), True, True)],
            limit=lit(1),
        ),
    )


# ---------------------------------------------------------------- parameters


def test_qmark_params_numbered_in_order_of_appearance():
    assert_parses(
        "SELECT ? FROM t WHERE a = ? AND b IN (SELECT ? FROM u) LIMIT ?",
        query(
            Param(None, 0),
            from_=[t("t")],
            where=b(
                "AND",
                b("=", col("a"), Param(None, 1)),
                InSubquery(col("b"), select(Param(None, 2), from_=[t("u")])),
            ),
            limit=Param(None, 3),
        ),
    )


def test_qmark_numbering_follows_text_order_through_ctes():
    statement = parse("WITH c AS (SELECT ? AS x) SELECT ?, x FROM c")
    assert statement.query.ctes[0].query.items[0].expr == Param(None, 0)
    assert statement.query.items[0].expr == Param(None, 1)


def test_qmark_numbering_restarts_per_statement():
    script = parse_script("SELECT ?, ?; UPDATE t SET a = ? WHERE b = ?; EXPLAIN SELECT ?")
    assert strict(script[0].statement) == strict(query(Param(None, 0), Param(None, 1)))
    assert strict(script[1].statement) == strict(
        Update("t", (Assignment(col("a"), Param(None, 0)),), b("=", col("b"), Param(None, 1)))
    )
    assert strict(script[2].statement) == strict(Explain(query(Param(None, 0))))


def test_named_params():
    assert_parses(
        "SELECT :a, :b_2 FROM t WHERE x = :a",
        query(Param("a"), Param("b_2"), from_=[t("t")], where=b("=", col("x"), Param("a"))),
    )


# ---------------------------------------------------------------- SELECT

SELECTS = [
    ("SELECT 1", query(lit(1))),
    ("SELECT * FROM t", query(Star(), from_=[t("t")])),
    ("SELECT t.*, u.a FROM t, u", query(Star("t"), col("u", "a"), from_=[t("t"), t("u")])),
    ("SELECT DISTINCT a FROM t", query(col("a"), distinct=True, from_=[t("t")])),
    ("SELECT a AS x, b y FROM t", query(item(col("a"), "x"), item(col("b"), "y"), from_=[t("t")])),
    ("SELECT a FROM db.orders", query(col("a"), from_=[t("db.orders")])),
    ("SELECT o.a FROM orders o", query(col("o", "a"), from_=[t("orders", "o")])),
    ("SELECT o.a FROM orders AS o", query(col("o", "a"), from_=[t("orders", "o")])),
    ('SELECT a FROM "my coll" AS "the alias"', query(col("a"), from_=[t("my coll", "the alias")])),
    ("SELECT a FROM `my coll`", query(col("a"), from_=[t("my coll")])),
    (
        "SELECT a FROM t WHERE a > 1",
        query(col("a"), from_=[t("t")], where=b(">", col("a"), lit(1))),
    ),
    (
        "SELECT a, COUNT(*) FROM t GROUP BY a HAVING COUNT(*) > 1",
        query(
            col("a"),
            count_star(),
            from_=[t("t")],
            group_by=[col("a")],
            having=b(">", count_star(), lit(1)),
        ),
    ),
    (
        "SELECT a FROM t GROUP BY a, b + 1",
        query(col("a"), from_=[t("t")], group_by=[col("a"), b("+", col("b"), lit(1))]),
    ),
    (
        "SELECT a FROM t ORDER BY a, b ASC, c DESC, d NULLS FIRST, e DESC NULLS LAST",
        query(
            col("a"),
            from_=[t("t")],
            order_by=[
                OrderItem(col("a")),
                OrderItem(col("b")),
                OrderItem(col("c"), True),
                OrderItem(col("d"), False, True),
                OrderItem(col("e"), True, False),
            ],
        ),
    ),
    (
        "SELECT a FROM t ORDER BY 1 LIMIT 10 OFFSET 20",
        query(
            col("a"), from_=[t("t")], order_by=[OrderItem(lit(1))], limit=lit(10), offset=lit(20)
        ),
    ),
    ("SELECT a FROM t LIMIT :n", query(col("a"), from_=[t("t")], limit=Param("n"))),
    ("SELECT a FROM t OFFSET 5", query(col("a"), from_=[t("t")], offset=lit(5))),
    # table functions and derived tables
    (
        "SELECT * FROM CHANGE_STREAM_EVENTS()",
        query(Star(), from_=[TableFunction("CHANGE_STREAM_EVENTS")]),
    ),
    (
        "SELECT * FROM change_stream('orders', 'users') AS cs",
        query(Star(), from_=[TableFunction("CHANGE_STREAM", (lit("orders"), lit("users")), "cs")]),
    ),
    (
        "SELECT s.a FROM (SELECT 1 AS a) s",
        query(col("s", "a"), from_=[DerivedTable(select(item(lit(1), "a")), "s")]),
    ),
    (
        "SELECT s.a FROM (SELECT a FROM t ORDER BY a LIMIT 1) AS s",
        query(
            col("s", "a"),
            from_=[
                DerivedTable(
                    select(col("a"), from_=[t("t")], order_by=[OrderItem(col("a"))], limit=lit(1)),
                    "s",
                )
            ],
        ),
    ),
]


@pytest.mark.parametrize(("sql", "expected"), SELECTS, ids=[s[0] for s in SELECTS])
def test_select(sql, expected):
    assert_parses(sql, expected)


ON = b("=", col("a", "id"), col("b", "id"))
JOINS = [
    ("SELECT * FROM a JOIN b ON a.id = b.id", Join("INNER", t("a"), t("b"), ON)),
    ("SELECT * FROM a INNER JOIN b ON a.id = b.id", Join("INNER", t("a"), t("b"), ON)),
    ("SELECT * FROM a LEFT JOIN b ON a.id = b.id", Join("LEFT", t("a"), t("b"), ON)),
    ("SELECT * FROM a LEFT OUTER JOIN b ON a.id = b.id", Join("LEFT", t("a"), t("b"), ON)),
    ("SELECT * FROM a RIGHT JOIN b ON a.id = b.id", Join("RIGHT", t("a"), t("b"), ON)),
    ("SELECT * FROM a RIGHT OUTER JOIN b ON a.id = b.id", Join("RIGHT", t("a"), t("b"), ON)),
    ("SELECT * FROM a FULL JOIN b ON a.id = b.id", Join("FULL", t("a"), t("b"), ON)),
    ("SELECT * FROM a FULL OUTER JOIN b ON a.id = b.id", Join("FULL", t("a"), t("b"), ON)),
    ("SELECT * FROM a CROSS JOIN b", Join("CROSS", t("a"), t("b"))),
    (
        "SELECT * FROM a x JOIN b AS y ON x.id = y.id AND x.k = 1",
        Join(
            "INNER",
            t("a", "x"),
            t("b", "y"),
            b("AND", b("=", col("x", "id"), col("y", "id")), b("=", col("x", "k"), lit(1))),
        ),
    ),
    (
        "SELECT * FROM a JOIN b ON a.id = b.id LEFT JOIN c ON c.id = a.id",
        Join(
            "LEFT",
            Join("INNER", t("a"), t("b"), ON),
            t("c"),
            b("=", col("c", "id"), col("a", "id")),
        ),
    ),
    (
        "SELECT * FROM a JOIN (SELECT 1 AS id) b ON a.id = b.id",
        Join("INNER", t("a"), DerivedTable(select(item(lit(1), "id")), "b"), ON),
    ),
    (
        "SELECT * FROM a JOIN b ON a.x.y = b.items[0].y",
        Join("INNER", t("a"), t("b"), b("=", col("a", "x", "y"), col("b", "items", 0, "y"))),
    ),
]


@pytest.mark.parametrize(("sql", "expected"), JOINS, ids=[j[0] for j in JOINS])
def test_join(sql, expected):
    assert_parses(sql, query(Star(), from_=[expected]))


def test_comma_and_join_mix():
    assert_parses(
        "SELECT * FROM a, b JOIN c ON b.id = c.id",
        query(
            Star(),
            from_=[t("a"), Join("INNER", t("b"), t("c"), b("=", col("b", "id"), col("c", "id")))],
        ),
    )


def test_ctes():
    assert_parses(
        "WITH x AS (SELECT 1 AS a), y AS (SELECT a FROM x) SELECT * FROM x JOIN y ON x.a = y.a",
        query(
            Star(),
            from_=[Join("INNER", t("x"), t("y"), b("=", col("x", "a"), col("y", "a")))],
            ctes=[Cte("x", select(item(lit(1), "a"))), Cte("y", select(col("a"), from_=[t("x")]))],
        ),
    )


S1, S2, S3 = (
    select(col("a"), from_=[t("t")]),
    select(col("b"), from_=[t("u")]),
    select(col("c"), from_=[t("v")]),
)
SET_OPERATIONS = [
    ("SELECT a FROM t UNION SELECT b FROM u", SetOperation("UNION", S1, S2)),
    ("SELECT a FROM t UNION ALL SELECT b FROM u", SetOperation("UNION ALL", S1, S2)),
    ("SELECT a FROM t EXCEPT SELECT b FROM u", SetOperation("EXCEPT", S1, S2)),
    ("SELECT a FROM t INTERSECT SELECT b FROM u", SetOperation("INTERSECT", S1, S2)),
    # UNION / EXCEPT are left-associative; INTERSECT binds tighter
    (
        "SELECT a FROM t UNION SELECT b FROM u EXCEPT SELECT c FROM v",
        SetOperation("EXCEPT", SetOperation("UNION", S1, S2), S3),
    ),
    (
        "SELECT a FROM t UNION SELECT b FROM u INTERSECT SELECT c FROM v",
        SetOperation("UNION", S1, SetOperation("INTERSECT", S2, S3)),
    ),
    (
        "SELECT a FROM t INTERSECT SELECT b FROM u UNION SELECT c FROM v",
        SetOperation("UNION", SetOperation("INTERSECT", S1, S2), S3),
    ),
    # ORDER BY / LIMIT after the last operand apply to the whole set operation
    (
        "SELECT a FROM t UNION ALL SELECT b FROM u ORDER BY 1 DESC LIMIT 5",
        SetOperation("UNION ALL", S1, S2, order_by=(OrderItem(lit(1), True),), limit=lit(5)),
    ),
    (
        "WITH w AS (SELECT 1) SELECT a FROM t UNION SELECT b FROM u",
        SetOperation("UNION", S1, S2, ctes=(Cte("w", select(lit(1))),)),
    ),
]


@pytest.mark.parametrize(("sql", "expected"), SET_OPERATIONS, ids=[s[0] for s in SET_OPERATIONS])
def test_set_operation(sql, expected):
    assert_parses(sql, QueryStatement(expected))


# ---------------------------------------------------------------- writes

WRITES = [
    ("INSERT INTO t VALUES (1, 'a')", Insert("t", (), ((lit(1), lit("a")),))),
    (
        "INSERT INTO t (a, b.c, d[0]) VALUES (1, 2, 3), (4, 5, 6)",
        Insert(
            "t",
            (col("a"), col("b", "c"), col("d", 0)),
            ((lit(1), lit(2), lit(3)), (lit(4), lit(5), lit(6))),
        ),
    ),
    (
        "INSERT INTO db.t (doc) VALUES (JSON_OBJECT('a', 1, 'b', JSON_ARRAY(1, 2)))",
        Insert(
            "db.t",
            (col("doc"),),
            ((fn("JSON_OBJECT", lit("a"), lit(1), lit("b"), fn("JSON_ARRAY", lit(1), lit(2))),),),
        ),
    ),
    (
        "INSERT INTO t (a) SELECT x FROM u WHERE x > 1",
        Insert(
            "t", (col("a"),), (), select(col("x"), from_=[t("u")], where=b(">", col("x"), lit(1)))
        ),
    ),
    (
        "INSERT INTO t WITH w AS (SELECT 1 AS x) SELECT x FROM w",
        Insert(
            "t",
            (),
            (),
            select(col("x"), from_=[t("w")], ctes=[Cte("w", select(item(lit(1), "x")))]),
        ),
    ),
    (
        "UPDATE t SET a = a + 1, b.c = CONCAT(b.c, '!'), d = NULL WHERE id = 1",
        Update(
            "t",
            (
                Assignment(col("a"), b("+", col("a"), lit(1))),
                Assignment(col("b", "c"), fn("CONCAT", col("b", "c"), lit("!"))),
                Assignment(col("d"), lit(None)),
            ),
            b("=", col("id"), lit(1)),
        ),
    ),
    ("UPDATE t SET items[0].qty = 2", Update("t", (Assignment(col("items", 0, "qty"), lit(2)),))),
    (
        "UPDATE orders AS o SET o.x = 1 WHERE o.y = 2",
        Update("orders", (Assignment(col("o", "x"), lit(1)),), b("=", col("o", "y"), lit(2)), "o"),
    ),
    ("UPDATE orders o SET x = 1", Update("orders", (Assignment(col("x"), lit(1)),), None, "o")),
    ("DELETE FROM t", Delete("t")),
    (
        "DELETE FROM t WHERE a IN (SELECT b FROM u)",
        Delete("t", InSubquery(col("a"), select(col("b"), from_=[t("u")]))),
    ),
    ("DELETE FROM db.t AS x WHERE x.a = 1", Delete("db.t", b("=", col("x", "a"), lit(1)), "x")),
]


@pytest.mark.parametrize(("sql", "expected"), WRITES, ids=[w[0] for w in WRITES])
def test_write(sql, expected):
    assert_parses(sql, expected)


# ---------------------------------------------------------------- views, EXPLAIN

OTHER = [
    ("CREATE VIEW v AS SELECT a FROM t", CreateView("v", select(col("a"), from_=[t("t")]))),
    (
        "CREATE OR REPLACE VIEW v AS SELECT 1 UNION SELECT 2",
        CreateView("v", SetOperation("UNION", select(lit(1)), select(lit(2))), True),
    ),
    ("DROP VIEW v", DropView("v")),
    ("DROP VIEW IF EXISTS v", DropView("v", True)),
    ("EXPLAIN SELECT 1", Explain(query(lit(1)))),
    ("EXPLAIN DELETE FROM t WHERE a = 1", Explain(Delete("t", b("=", col("a"), lit(1))))),
    ("BEGIN", ast.Begin()),
    ("begin transaction", ast.Begin()),
    ("BEGIN WORK", ast.Begin()),
    ("START TRANSACTION", ast.Begin()),
    ("COMMIT", ast.Commit()),
    ("commit work", ast.Commit()),
    ("ROLLBACK", ast.Rollback()),
    ("ROLLBACK WORK", ast.Rollback()),
    ("EXPLAIN COMMIT", Explain(ast.Commit())),
    # the transaction keywords stay usable as names
    (
        "SELECT begin, start, work, commit FROM transaction",
        query(col("begin"), col("start"), col("work"), col("commit"), from_=[t("transaction")]),
    ),
]


@pytest.mark.parametrize(("sql", "expected"), OTHER, ids=[o[0] for o in OTHER])
def test_view_explain_and_transactions(sql, expected):
    assert_parses(sql, expected)


# ---------------------------------------------------------------- event subscriptions

SUBSCRIPTIONS = [
    (
        "CREATE EVENT_SUBSCRIPTION s AS (subscription_id = 'x', batch_size = 10)",
        CreateSubscription(
            "s",
            (
                SubscriptionOption("subscription_id", lit("x")),
                SubscriptionOption("batch_size", lit(10)),
            ),
        ),
    ),
    (
        "CREATE EVENT_SUBSCRIPTION IF NOT EXISTS s AS (Batch_Size = 1) "
        "WHERE operationType = 'insert' AND fullDocument.total > 100",
        CreateSubscription(
            "s",
            (SubscriptionOption("batch_size", lit(1)),),
            b(
                "AND",
                b("=", col("operationType"), lit("insert")),
                b(">", col("fullDocument", "total"), lit(100)),
            ),
            if_not_exists=True,
        ),
    ),
    (
        "ALTER EVENT_SUBSCRIPTION s SET (batch_size = 50, preserve_order = false)",
        AlterSubscription(
            "s",
            (
                SubscriptionOption("batch_size", lit(50)),
                SubscriptionOption("preserve_order", lit(False)),
            ),
        ),
    ),
    ("DROP EVENT_SUBSCRIPTION s", DropSubscription("s")),
    ("DROP EVENT_SUBSCRIPTION IF EXISTS s", DropSubscription("s", True)),
    ("PAUSE EVENT_SUBSCRIPTION s", PauseSubscription("s")),
    ("RESUME EVENT_SUBSCRIPTION s", ResumeSubscription("s")),
    ("SHOW EVENT_SUBSCRIPTIONS", ShowSubscriptions()),
    ("SHOW EVENT_SUBSCRIPTIONS FULL", ShowSubscriptions(full=True)),
    ("REPLAY DEAD_LETTER_EVENTS", ReplayDeadLetters()),
    (
        "REPLAY DEAD_LETTER_EVENTS WHERE subscription_id = 'x'",
        ReplayDeadLetters(b("=", col("subscription_id"), lit("x"))),
    ),
    ("RESET EVENT_SUBSCRIPTION s TO NOW", ResetSubscription("s")),
    (
        "RESET EVENT_SUBSCRIPTION s TO TIMESTAMP '2024-01-01T00:00:00Z'",
        ResetSubscription("s", "2024-01-01T00:00:00Z"),
    ),
    ("RESET EVENT_SUBSCRIPTION s TO TIMESTAMP 'it''s'", ResetSubscription("s", "it's")),
    (
        "create event_subscription `my sub` as (a = 1)",
        CreateSubscription("my sub", (SubscriptionOption("a", lit(1)),)),
    ),
]


@pytest.mark.parametrize(("sql", "expected"), SUBSCRIPTIONS, ids=[s[0] for s in SUBSCRIPTIONS])
def test_subscription_statement(sql, expected):
    assert_parses(sql, expected)


# ---------------------------------------------------------------- the seed, verbatim

SEED_SUBSCRIPTION = """\
CREATE EVENT_SUBSCRIPTION user_service_events AS (
  -- Subscription identification
  subscription_id = 'user_lifecycle_events',
  service_name = 'user_service',

  -- Event source configuration
  watch_collections = JSON_ARRAY('users', 'user_profiles', 'user_preferences'),
  event_types = JSON_ARRAY('insert', 'update', 'delete'),

  -- Advanced event filtering with SQL-style conditions
  event_filter = JSON_OBJECT(
    'operationType', JSON_OBJECT('$in', JSON_ARRAY('insert', 'update')),
    '$or', JSON_ARRAY(
      JSON_OBJECT('operationType', 'insert'),
      JSON_OBJECT(
        'operationType', 'update',
        'updateDescription.updatedFields', JSON_OBJECT(
          '$or', JSON_ARRAY(
            JSON_OBJECT('email', JSON_OBJECT('$exists', true)),
            JSON_OBJECT('status', JSON_OBJECT('$exists', true)),
            JSON_OBJECT('subscription_tier', JSON_OBJECT('$exists', true))
          )
        )
      )
    )
  ),

  -- Event processing configuration
  batch_processing = false,
  preserve_order = true,
  full_document = 'updateLookup',
  full_document_before_change = 'whenAvailable',

  -- Error handling and retry policy
  max_retry_attempts = 3,
  retry_delay_ms = 1000,
  exponential_backoff = true,
  dead_letter_queue_enabled = true,

  -- Performance settings
  batch_size = 100,
  processing_timeout_ms = 30000,

  -- Subscription metadata
  created_by = 'user_service_admin',
  description = 'User lifecycle events for authentication and personalization services'
);
"""


def _obj(*args) -> FuncCall:
    return fn("JSON_OBJECT", *[lit(a) if not isinstance(a, ast.Expr) else a for a in args])


def _arr(*args) -> FuncCall:
    return fn("JSON_ARRAY", *[lit(a) if not isinstance(a, ast.Expr) else a for a in args])


def _exists(field: str) -> FuncCall:
    return _obj(field, _obj("$exists", True))


SEED_SUBSCRIPTION_AST = CreateSubscription(
    "user_service_events",
    tuple(
        SubscriptionOption(name, value if isinstance(value, ast.Expr) else lit(value))
        for name, value in [
            ("subscription_id", "user_lifecycle_events"),
            ("service_name", "user_service"),
            ("watch_collections", _arr("users", "user_profiles", "user_preferences")),
            ("event_types", _arr("insert", "update", "delete")),
            (
                "event_filter",
                _obj(
                    "operationType",
                    _obj("$in", _arr("insert", "update")),
                    "$or",
                    _arr(
                        _obj("operationType", "insert"),
                        _obj(
                            "operationType",
                            "update",
                            "updateDescription.updatedFields",
                            _obj(
                                "$or",
                                _arr(
                                    _exists("email"),
                                    _exists("status"),
                                    _exists("subscription_tier"),
                                ),
                            ),
                        ),
                    ),
                ),
            ),
            ("batch_processing", False),
            ("preserve_order", True),
            ("full_document", "updateLookup"),
            ("full_document_before_change", "whenAvailable"),
            ("max_retry_attempts", 3),
            ("retry_delay_ms", 1000),
            ("exponential_backoff", True),
            ("dead_letter_queue_enabled", True),
            ("batch_size", 100),
            ("processing_timeout_ms", 30000),
            ("created_by", "user_service_admin"),
            (
                "description",
                "User lifecycle events for authentication and personalization services",
            ),
        ]
    ),
)


def test_seed_subscription_statement_verbatim():
    assert_parses(SEED_SUBSCRIPTION, SEED_SUBSCRIPTION_AST)


@pytest.mark.skipif(not SHARED_SEED.exists(), reason="no ../shared/seed beside the checkout")
def test_seed_copy_is_verbatim():
    assert SEED.read_bytes() == SHARED_SEED.read_bytes()


def test_seed_file_parses_into_four_statements():
    text = SEED.read_text(encoding="utf-8")
    # the issue quotes the statement without the seed's trailing blanks on empty lines
    assert SEED_SUBSCRIPTION in "\n".join(line.rstrip() for line in text.split("\n"))
    statements = parse_script(text)
    kinds = [(type(s.statement).__name__, s.line, s.column) for s in statements]
    assert kinds == [
        ("CreateSubscription", 4, 1),
        ("QueryStatement", 53, 1),
        ("QueryStatement", 192, 1),
        ("CreateView", 315, 1),
    ]
    assert strict(statements[0].statement) == strict(SEED_SUBSCRIPTION_AST)
    assert statements[0].text.startswith("CREATE EVENT_SUBSCRIPTION user_service_events AS (")
    assert statements[0].text.endswith("personalization services'\n)")


def test_seed_analytics_shapes():
    statements = parse_script(SEED.read_text(encoding="utf-8"))
    metrics = statements[1].statement.query
    assert [c.name for c in metrics.ctes] == ["event_stream_metrics", "processing_performance"]
    assert metrics.order_by == (
        OrderItem(col("esm", "total_events_received"), True),
        OrderItem(col("esm", "success_rate_percent"), False),
    )
    correlation = statements[2].statement.query
    assert isinstance(correlation, SetOperation) and correlation.op == "UNION ALL"
    sequence = correlation.ctes[0].query.items[5]
    assert sequence.alias == "event_sequence"
    assert sequence.expr.name == "GROUP_CONCAT"
    assert sequence.expr.order_by == (OrderItem(col("event_timestamp")),)
    assert sequence.expr.separator == lit(" -> ")
    top = correlation.left.items[1].expr.args[-1]
    assert top.name == "JSON_ARRAYAGG" and top.limit == 10
    view = statements[3].statement
    assert view.name == "microservices_event_dashboard" and view.query.from_ == ()


# ---------------------------------------------------------------- comments and scripts


def test_comments():
    sql = """-- leading comment
    SELECT a, -- trailing comment
      /* block
         comment */ b /* inline */ FROM t -- end
    /* last */"""
    assert_parses(sql, query(col("a"), col("b"), from_=[t("t")]))


def test_comment_markers_inside_strings_and_names_are_text():
    assert_parses(
        "SELECT '-- not a comment', \"/* nor this */\"",
        query(lit("-- not a comment"), col("/* nor this */")),
    )


def test_script_with_empty_statements():
    script = parse_script(";;\nSELECT 1;;\n\n  -- c\n  SELECT 2 ;\n;DELETE FROM t;")
    assert [strict(s.statement) for s in script] == [
        strict(query(lit(1))),
        strict(query(lit(2))),
        strict(Delete("t")),
    ]
    assert [(s.line, s.column) for s in script] == [(2, 1), (5, 3), (6, 2)]
    assert [s.text for s in script] == ["SELECT 1", "SELECT 2", "DELETE FROM t"]


@pytest.mark.parametrize("text", ["", "   ", ";", ";;\n;", "-- only a comment", "/* x */;"])
def test_empty_scripts(text):
    assert parse_script(text) == []


def test_parse_allows_one_trailing_semicolon():
    assert_parses("SELECT 1;", query(lit(1)))
    assert_parses("SELECT 1 ; ;", query(lit(1)))


def test_parse_rejects_empty_text():
    with pytest.raises(SqlSyntaxError) as info:
        parse("  -- nothing\n")
    assert info.value.message.startswith("empty statement")
    assert info.value.position == Position(1, 1, 0)


def test_parse_rejects_several_statements():
    sql = "SELECT 1;\n  SELECT 2"
    with pytest.raises(SqlSyntaxError) as info:
        parse(sql)
    err = info.value
    assert "found several" in err.message
    assert (err.position.line, err.position.column) == (2, 3)
    assert err.position.offset == sql.index("SELECT 2")
    assert err.token == "SELECT"


def test_statement_positions_are_recorded():
    statement = parse("SELECT a\nFROM t\nWHERE b = 1")
    where = statement.query.where
    assert (where.pos.line, where.pos.column) == (3, 7)
    assert (where.right.pos.line, where.right.pos.column) == (3, 11)
    assert statement.query.from_[0].pos.line == 2


def test_long_operator_chains_parse():
    n = 2000
    statement = parse("SELECT a FROM t WHERE " + " OR ".join(f"a = {i}" for i in range(n)))
    where, depth = statement.query.where, 0
    while isinstance(where, Binary) and where.op == "OR":
        where, depth = where.left, depth + 1
    assert depth == n - 1


# ---------------------------------------------------------------- the cached parser tables


def test_cache_file_name_depends_on_the_grammar(monkeypatch, tmp_path):
    from queryleaf.sql import parser

    monkeypatch.setenv(parser.CACHE_ENV, str(tmp_path))
    first, second = parser._cache_path('start: A\nA: "a"'), parser._cache_path("start: B")
    assert first.parent == tmp_path and first != second
    monkeypatch.setenv(parser.CACHE_ENV, "off")
    assert parser._cache_path("start: A") is None


def test_cache_is_written_reused_and_survives_corruption(monkeypatch, tmp_path):
    from queryleaf.sql import parser

    monkeypatch.setenv(parser.CACHE_ENV, str(tmp_path))
    stale = tmp_path / "grammar-0123.lark.pickle"
    stale.write_bytes(b"old")
    os.utime(stale, (0, 0))
    built = parser._lark.__wrapped__()
    [cached] = tmp_path.glob("grammar-*.lark.pickle")  # the stale one was pruned
    loaded = parser._lark.__wrapped__()
    assert loaded is not built
    sql = "SELECT a FROM t WHERE b = 1"
    assert loaded.parse(sql) == built.parse(sql)
    cached.write_bytes(b"not a pickle")
    rebuilt = parser._lark.__wrapped__()
    assert rebuilt.parse(sql) == built.parse(sql)
    assert cached.read_bytes() != b"not a pickle"  # rewritten
