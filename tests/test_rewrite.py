"""The planner's AST → AST passes (planner/rewrite.py), as SQL in → SQL out."""

from __future__ import annotations

import pytest

from queryleaf.errors import PlanningError
from queryleaf.planner.rewrite import (
    check_placement,
    mirror_right_join,
    resolve_references,
    where_into_on,
)
from queryleaf.sql.parser import parse
from queryleaf.sql.printer import to_sql


def _select(sql: str):
    return parse(sql).query


@pytest.mark.parametrize(
    "sql, expected",
    [
        (
            "SELECT a.x, b.y FROM a RIGHT JOIN b ON a.k = b.k",
            "SELECT a.x, b.y FROM b LEFT JOIN a ON a.k = b.k",
        ),
        (
            "SELECT * FROM a x RIGHT OUTER JOIN (SELECT k FROM c) y ON x.k = y.k WHERE y.k > 1",
            "SELECT * FROM (SELECT k FROM c) AS y LEFT JOIN a AS x ON x.k = y.k WHERE y.k > 1",
        ),
        # unchanged: no RIGHT JOIN, or one after another join (refused later by the planner)
        ("SELECT * FROM a LEFT JOIN b ON a.k = b.k", "SELECT * FROM a LEFT JOIN b ON a.k = b.k"),
        (
            "SELECT * FROM a JOIN b ON a.k = b.k RIGHT JOIN c ON c.k = b.k",
            "SELECT * FROM a JOIN b ON a.k = b.k RIGHT JOIN c ON c.k = b.k",
        ),
    ],
)
def test_mirror_right_join(sql, expected):
    assert to_sql(mirror_right_join(_select(sql))) == expected


@pytest.mark.parametrize(
    "sql, expected",
    [
        (
            "SELECT status, COUNT(*) AS n FROM t GROUP BY 1 ORDER BY 2 DESC",
            "SELECT status, COUNT(*) AS n FROM t GROUP BY status ORDER BY COUNT(*) DESC",
        ),
        (
            "SELECT a + b AS s FROM t GROUP BY s HAVING s > 1 AND COUNT(*) > 2 ORDER BY s",
            "SELECT a + b AS s FROM t GROUP BY a + b HAVING a + b > 1 AND COUNT(*) > 2 "
            "ORDER BY a + b",
        ),
        # only a whole ORDER BY item is an alias; inside an expression it is a column
        ("SELECT a AS b FROM t ORDER BY b + 1", "SELECT a AS b FROM t ORDER BY b + 1"),
        ("SELECT a FROM t ORDER BY 1 NULLS LAST", "SELECT a FROM t ORDER BY a NULLS LAST"),
    ],
)
def test_resolve_references(sql, expected):
    assert to_sql(resolve_references(_select(sql))) == expected


@pytest.mark.parametrize(
    "sql, message",
    [
        ("SELECT a FROM t ORDER BY 2", "ORDER BY position 2 is not in the select list"),
        ("SELECT * FROM t GROUP BY 1", "GROUP BY position 1 is not in the select list"),
    ],
)
def test_bad_ordinals_are_errors(sql, message):
    with pytest.raises(PlanningError, match=message):
        resolve_references(_select(sql))


@pytest.mark.parametrize(
    "sql, message",
    [
        (
            "SELECT a FROM t WHERE COUNT(*) > 1",
            r"COUNT\(...\) is not allowed in WHERE \(use HAVING",
        ),
        ("SELECT a FROM t GROUP BY SUM(a)", r"SUM\(...\) is not allowed in GROUP BY"),
        ("SELECT a FROM t WHERE ROW_NUMBER() OVER (ORDER BY a) = 1", "derived table"),
        ("SELECT ROW_NUMBER() FROM t", r"ROW_NUMBER\(\) needs an OVER"),
        (
            "SELECT a FROM t GROUP BY a HAVING RANK() OVER (ORDER BY a) > 1",
            "window functions are not allowed in HAVING",
        ),
    ],
)
def test_placement_checks(sql, message):
    with pytest.raises(PlanningError, match=message):
        check_placement(_select(sql))


def _planned(sql: str):
    from queryleaf.planner import plan_statement

    return plan_statement(parse(sql))


@pytest.mark.parametrize(
    "sql, kind",
    [
        ("SELECT a, b.c FROM t WHERE a > 1 ORDER BY a LIMIT 5 OFFSET 2", "Find"),
        ("SELECT * FROM t", "Find"),
        ("SELECT * FROM (SELECT * FROM t) x", "Find"),  # the derived table adds no stage
        ("SELECT a, a.b FROM t", "Aggregate"),  # a path and its parent
        ('SELECT "a.b" FROM t', "Aggregate"),  # not a path: $getField
        ("SELECT items[0] FROM t", "Aggregate"),
        ("SELECT a FROM t LIMIT 0", "Find"),  # a filter that matches nothing
        ("SELECT a + 1 FROM t", "Aggregate"),
        ("SELECT a FROM t ORDER BY a + 1", "Aggregate"),
        ("SELECT DISTINCT a FROM t", "Aggregate"),
    ],
)
def test_the_find_or_aggregate_choice_is_made_on_the_pipeline(sql, kind):
    assert type(_planned(sql)).__name__ == kind


@pytest.mark.parametrize(
    "sql, expected",
    [
        (
            "SELECT a.x FROM a, b WHERE a.k = b.k AND a.y > 1",
            "SELECT a.x FROM a JOIN b ON a.k = b.k WHERE a.y > 1",
        ),
        (
            "SELECT * FROM a JOIN b ON a.k = b.k, c WHERE c.z = b.z AND b.w = 1",
            "SELECT * FROM a JOIN b ON a.k = b.k AND b.w = 1 JOIN c ON c.z = b.z",
        ),
        # a LEFT JOIN's ON is not WHERE: the condition stays (it removes unmatched rows)
        (
            "SELECT * FROM a LEFT JOIN b ON a.k = b.k WHERE b.w = 1",
            "SELECT * FROM a LEFT JOIN b ON a.k = b.k WHERE b.w = 1",
        ),
        # unqualified or subquery conditions stay: their tables are known only when planned
        (
            "SELECT * FROM a, b WHERE k = 1 AND EXISTS (SELECT 1 FROM c WHERE c.k = a.k)",
            "SELECT * FROM a, b WHERE k = 1 AND EXISTS (SELECT 1 FROM c WHERE c.k = a.k)",
        ),
    ],
)
def test_where_into_on(sql, expected):
    assert to_sql(where_into_on(_select(sql))) == expected
