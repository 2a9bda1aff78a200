"""``SELECT *`` through derived tables and CTEs, ``t.*`` over joins, ``_id`` kept through any
depth, and name resolution in ``JOIN ... ON``."""

from __future__ import annotations

import pytest

from queryleaf.errors import PlanningError


@pytest.fixture()
def shop(ql):
    ql.db.o.insert_many(
        [{"_id": 1, "c": 10, "t": 5}, {"_id": 2, "c": 11, "t": 7}, {"_id": 3, "c": None, "t": 1}]
    )
    ql.db.c.insert_many([{"_id": 10, "n": "a"}, {"_id": 11, "n": "b"}, {"_id": 12}])
    return ql


def rows(result) -> list[dict]:
    return [dict(r) for r in result]


def test_select_star_passes_whole_documents_through_derived_tables_and_ctes(shop):
    assert rows(shop.execute("SELECT * FROM (SELECT * FROM o WHERE t > 2) x WHERE x.t < 7")) == [
        {"_id": 1, "c": 10, "t": 5}
    ]
    r = shop.execute("WITH w AS (SELECT *, t * 2 AS tt FROM o) SELECT w._id, tt FROM w ORDER BY tt")
    assert rows(r) == [{"_id": 3, "tt": 2}, {"_id": 1, "tt": 10}, {"_id": 2, "tt": 14}]
    r = shop.execute(
        "SELECT y._id, c.n FROM (SELECT * FROM (SELECT * FROM o) x) y "
        "JOIN c ON y.c = c._id ORDER BY y._id"
    )
    assert rows(r) == [{"_id": 1, "n": "a"}, {"_id": 2, "n": "b"}]


@pytest.mark.parametrize(
    "sql",
    [
        "WITH w AS (SELECT _id, t FROM o) SELECT * FROM w ORDER BY _id",
        "SELECT * FROM (SELECT * FROM (SELECT _id, t FROM o) a) b ORDER BY _id",
        "SELECT b._id, b.t FROM (SELECT a._id, t FROM (SELECT _id, t FROM o) a) b ORDER BY b._id",
    ],
)
def test_id_stays_id_through_derived_tables(shop, sql):
    r = shop.execute(sql)
    assert r.columns == ["_id", "t"]
    assert rows(r)[0] == {"_id": 1, "t": 5}


def test_id_through_a_joined_cte(shop):
    r = shop.execute(
        "WITH w AS (SELECT _id, c FROM o) SELECT w._id, c._id AS cid, w.* "
        "FROM w JOIN c ON w.c = c._id ORDER BY w._id"
    )
    assert r.columns == ["_id", "cid", "_id_2", "c"]
    assert rows(r)[0] == {"_id": 1, "cid": 10, "_id_2": 1, "c": 10}


def test_table_stars_over_joins_spread_each_tables_fields(shop):
    r = shop.execute("SELECT o.*, c.n FROM o JOIN c ON o.c = c._id ORDER BY o._id")
    assert rows(r) == [{"_id": 1, "c": 10, "t": 5, "n": "a"}, {"_id": 2, "c": 11, "t": 7, "n": "b"}]
    r = shop.execute("SELECT * FROM o LEFT JOIN c ON o.c = c._id ORDER BY o._id DESC").rows
    # a LEFT JOIN without a match has no document for c: its columns are NULL
    assert r[0] == {"_id": 3, "c": None, "t": 1, "_id_2": None, "n": None}
    assert r[1] == {"_id": 2, "c": 11, "t": 7, "_id_2": 11, "n": "b"}
    assert rows(
        shop.execute("SELECT DISTINCT c.* FROM o JOIN c ON o.c = c._id WHERE c._id = 11")
    ) == [{"_id": 11, "n": "b"}]


def test_star_over_a_join_inside_a_derived_table_is_refused(shop):
    with pytest.raises(PlanningError, match=r"\* over a join is not allowed"):
        shop.execute("SELECT * FROM (SELECT * FROM o JOIN c ON o.c = c._id) x")


@pytest.mark.parametrize(
    "sql, message, column",
    [
        ("SELECT o._id FROM o JOIN c ON o.c = z._id JOIN c z ON TRUE", "joined later", 37),
        ("SELECT o._id FROM o JOIN c ON o.c = c._id AND x.y = 1", "x is not a table in scope", 47),
        ("SELECT o._id FROM o JOIN c ON c = c._id", "column c is ambiguous", 31),
        ("SELECT o._id FROM o JOIN c ON o.c = _id", "column _id is ambiguous", 37),
        (
            "SELECT o._id FROM o JOIN c ON o.c = c._id JOIN c d ON n = d.n",
            "column n is ambiguous",
            55,
        ),
    ],
)
def test_join_on_names_must_resolve_to_one_table_in_scope(shop, sql, message, column):
    with pytest.raises(PlanningError, match=message) as info:
        shop.execute(sql)
    assert info.value.position is not None and info.value.position.column == column


def test_an_unqualified_on_column_that_one_table_supplies_reads_that_table(shop):
    # x has known columns: i and k belong to it, so the ON reads x.k and c._id.
    r = shop.execute(
        "SELECT i, c.n FROM (SELECT _id AS i, c AS k FROM o) x JOIN c ON k = c._id ORDER BY i"
    )
    assert rows(r) == [{"i": 1, "n": "a"}, {"i": 2, "n": "b"}]


def test_a_registered_table_function_is_a_source_the_planner_does_not_know_by_name(ql):
    from queryleaf.planner import sources

    ql.db.raw_metrics.insert_many([{"_id": 1, "v": 2}, {"_id": 2, "v": 5}])
    sources.register_table_function(
        sources.TableFunction(
            "DOUBLED_METRICS",
            "raw_metrics",
            lambda columns: [{"$set": {"v2": {"$multiply": ["$v", 2]}}}],
        )
    )
    try:
        r = ql.execute("SELECT v, v2 FROM DOUBLED_METRICS() WHERE v2 > 5")
        assert [dict(x) for x in r] == [{"v": 5, "v2": 10}]
        assert ql.execute("SELECT * FROM DOUBLED_METRICS() ORDER BY v").columns == ["v", "v2"]
    finally:
        sources._TABLE_FUNCTIONS.pop("DOUBLED_METRICS")
