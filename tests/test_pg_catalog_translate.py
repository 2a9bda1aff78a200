"""Each rewrite of queryleaf/pg/catalog/translate.py: PostgreSQL in, SQLite out."""

from __future__ import annotations

import pytest

from queryleaf.pg.catalog import translate


@pytest.mark.parametrize(
    ("postgres", "sqlite"),
    [
        (
            "SELECT c.oid FROM pg_catalog.pg_class c WHERE c.relname "
            "OPERATOR(pg_catalog.~) '^(orders)$' COLLATE pg_catalog.default",
            "SELECT c.oid FROM pg_catalog.pg_class AS c WHERE c.relname REGEXP '^(orders)$'",
        ),
        ("SELECT pg_catalog.version()", "SELECT VERSION()"),
        ("SELECT current_schema(), user", "SELECT CURRENT_SCHEMA(), USER()"),
        (
            "SELECT c.oid::pg_catalog.regclass FROM pg_class c",
            "SELECT REGCLASS(c.oid) FROM pg_class AS c",
        ),
        ("SELECT $1::VARCHAR, $2::int2", "SELECT CAST(:p1 AS TEXT), CAST(:p2 AS INTEGER)"),
        ("SELECT 1 FROM t WHERE k = ANY (ARRAY[$1, $2])", "SELECT 1 FROM t WHERE k IN (:p1, :p2)"),
        (
            "SELECT 'd' = any(stxkind) FROM t",
            "SELECT 'd' IN (SELECT value FROM JSON_EACH(PG_JSON(stxkind))) FROM t",
        ),
        ("SELECT array_agg(a ORDER BY b) FROM t", "SELECT PG_ARRAY_AGG(a, b) FROM t"),
        ("SELECT a[1], a[i] FROM t", "SELECT PG_SUBSCRIPT(a, 1), PG_SUBSCRIPT(a, i) FROM t"),
        (
            "SELECT unnest(k) AS n, unnest(c), generate_subscripts(k, 1) FROM t",
            "SELECT _srf.value AS n, JSON_EXTRACT(c, '$[' || _srf.key || ']'), _srf.key + 1 "
            "FROM t, JSON_EACH(k) AS _srf",
        ),
        (
            "SELECT x FROM unnest(a) x",
            "SELECT x FROM (SELECT value AS x FROM JSON_EACH(PG_JSON(a))) AS x",
        ),
        (
            "SELECT s FROM string_to_array('a,b', ',') s",
            "SELECT s FROM (SELECT STRING_TO_ARRAY('a,b', ',') AS s) AS s",
        ),
    ],
)
def test_rewrite(postgres, sqlite):
    assert translate.to_sqlite(translate.parse(postgres)) == sqlite


def test_array_of_a_subquery_is_an_ordered_aggregate_or_an_empty_array():
    out = translate.to_sqlite(translate.parse("SELECT ARRAY(SELECT n FROM t ORDER BY 1)"))
    assert out == (
        "SELECT COALESCE((SELECT PG_ARRAY_AGG(v, NULL) FROM "
        "(SELECT n AS v FROM t ORDER BY 1 NULLS LAST) AS _array), PG_ARRAY())"
    )
