"""Silent wrong results found by the relational differential generator, fixed at their
mechanism: correlated subqueries over a grouped query, derived tables correlated inside a
subquery, NULL and missing window partitions, repeated window sort keys."""

from __future__ import annotations

import pytest

from queryleaf.errors import PlanningError


@pytest.fixture()
def ab(ql):
    ql.db.a.insert_many(
        [
            {"_id": 1, "i": 1, "j": 1},
            {"_id": 2, "i": 1, "j": 2},
            {"_id": 3, "i": 2, "j": 3},
            {"_id": 4, "j": 4},
            {"_id": 5, "i": None, "j": 5},
        ]
    )
    ql.db.b.insert_many([{"i": 1}, {"i": 1}, {"i": 2}])
    return ql


def test_a_correlated_subquery_reads_the_group_key(ab):
    r = ab.execute(
        "SELECT a.i, (SELECT COUNT(*) FROM b WHERE b.i = a.i) AS n FROM a GROUP BY a.i ORDER BY a.i"
    )
    assert r.rows == [{"i": None, "n": 0}, {"i": 1, "n": 2}, {"i": 2, "n": 1}]
    r = ab.execute(
        "SELECT a.i FROM a GROUP BY a.i HAVING EXISTS "
        "(SELECT 1 FROM b WHERE b.i = a.i) ORDER BY a.i"
    )
    assert r.rows == [{"i": 1}, {"i": 2}]


def test_a_correlated_subquery_cannot_read_an_ungrouped_column(ab):
    with pytest.raises(PlanningError, match="neither grouped nor aggregated"):
        ab.execute("SELECT a.i, (SELECT COUNT(*) FROM b WHERE b.i = a.j) FROM a GROUP BY a.i")


def test_a_derived_table_inside_a_subquery_reads_the_enclosing_row(ab):
    r = ab.execute(
        "SELECT a.j FROM a WHERE EXISTS (SELECT 1 FROM "
        "(SELECT b.i FROM b WHERE b.i = a.i) x) ORDER BY a.j"
    )
    assert r.rows == [{"j": 1}, {"j": 2}, {"j": 3}]
    # the derived table's variable and the subquery's own are two names, two values
    r = ab.execute(
        "SELECT a.j FROM a WHERE EXISTS (SELECT 1 FROM "
        "(SELECT b.i FROM b WHERE b.i = a.i) x WHERE x.i = a.j) ORDER BY a.j"
    )
    assert r.rows == [{"j": 1}]


def test_null_and_missing_share_a_partition_of_several_keys(ab):
    r = ab.execute("SELECT _id, COUNT(*) OVER (PARTITION BY i, 0) AS n FROM a ORDER BY _id")
    assert [row["n"] for row in r] == [2, 2, 1, 2, 2]


def test_a_repeated_window_sort_key_keeps_its_first_direction(ab):
    r = ab.execute("SELECT _id, ROW_NUMBER() OVER (ORDER BY j, j DESC) AS r FROM a ORDER BY _id")
    assert [row["r"] for row in r] == [1, 2, 3, 4, 5]
