"""Joins, subqueries, CTEs, set operations, window functions, views — executed for real."""

from __future__ import annotations

import pytest

from queryleaf import ExecutionError, PlanningError


@pytest.fixture()
def shop(ql):
    ql.db.customers.insert_many(
        [
            {"_id": 1, "name": "ann", "city": "Oslo", "profile": {"tier": "gold"}},
            {"_id": 2, "name": "bob", "city": "Rome", "profile": {"tier": "basic"}},
            {"_id": 3, "name": "cy", "city": None},
        ]
    )
    ql.db.orders.insert_many(
        [
            {
                "_id": 10,
                "cust": 1,
                "total": 100,
                "status": "paid",
                "items": [{"sku": "a", "qty": 2}],
            },
            {"_id": 11, "cust": 1, "total": 50, "status": "new"},
            {"_id": 12, "cust": 2, "total": 70, "status": "paid"},
            {"_id": 13, "cust": 9, "total": 5, "status": "paid"},
            {"_id": 14, "cust": None, "total": 1},
        ]
    )
    return ql


def rows(ql, sql, params=None):
    return [tuple(r.values()) for r in ql.execute(sql, params)]


def test_inner_join_really_filters(shop):
    assert rows(
        shop,
        "SELECT c.name, o.total FROM customers c JOIN orders o ON o.cust = c._id ORDER BY o.total",
    ) == [("ann", 50), ("bob", 70), ("ann", 100)]


def test_null_join_keys_never_match(shop):
    shop.db.customers.insert_one({"_id": None, "name": "ghost"})
    assert (
        rows(
            shop, "SELECT c.name FROM orders o JOIN customers c ON o.cust = c._id WHERE o._id = 14"
        )
        == []
    )


def test_left_join_keeps_unmatched_rows_with_nulls(shop):
    got = rows(
        shop,
        "SELECT c.name, COUNT(o._id) AS n, SUM(o.total) AS s FROM customers c "
        "LEFT JOIN orders o ON o.cust = c._id GROUP BY c.name ORDER BY c.name",
    )
    assert got == [("ann", 2, 150), ("bob", 1, 70), ("cy", 0, None)]


def test_right_join_is_a_mirrored_left_join(shop):
    got = rows(
        shop,
        "SELECT o._id, c.name FROM orders o RIGHT JOIN customers c "
        "ON o.cust = c._id ORDER BY c.name, o._id",
    )
    assert got == [(10, "ann"), (11, "ann"), (12, "bob"), (None, "cy")]


def test_cross_join_and_comma_join(shop):
    n = shop.execute("SELECT COUNT(*) AS n FROM customers c CROSS JOIN orders o").scalar()
    assert n == 15
    got = rows(
        shop,
        "SELECT c.name, o._id FROM customers c, orders o WHERE o.cust = c._id AND "
        "o.total > 60 ORDER BY o._id",
    )
    assert got == [("ann", 10), ("bob", 12)]


def test_compound_on_nested_paths_and_three_tables(shop):
    shop.db.tiers.insert_many([{"tier": "gold", "discount": 10}, {"tier": "basic", "discount": 0}])
    got = rows(
        shop,
        "SELECT c.name, o._id, t.discount FROM customers c "
        "JOIN orders o ON o.cust = c._id AND o.status = 'paid' "
        "JOIN tiers t ON t.tier = c.profile.tier ORDER BY o._id",
    )
    assert got == [("ann", 10, 10), ("bob", 12, 0)]


def test_outer_table_filter_runs_before_lookup(shop):
    p = shop.explain(
        "SELECT c.name FROM customers c JOIN orders o ON o.cust = c._id "
        "WHERE c.city = 'Oslo' AND o.total > 1"
    ).commands[0]["pipeline"]
    assert p[0] == {"$match": {"city": "Oslo"}}
    stages = [next(iter(stage)) for stage in p]
    assert stages.index("$lookup") > 0
    # only the fields the query reads travel through the join
    assert p[1]["$replaceRoot"]["newRoot"]["c"] == {"_id": "$_id", "city": "$city", "name": "$name"}


def test_full_join_is_rejected_with_position(shop):
    with pytest.raises(PlanningError, match="FULL OUTER JOIN") as err:
        shop.execute("SELECT * FROM customers c FULL JOIN orders o ON o.cust = c._id")
    assert err.value.position.column == 15


def test_unqualified_ambiguous_column_is_an_error(shop):
    with pytest.raises(PlanningError, match="ambiguous"):
        shop.execute("SELECT name FROM customers c JOIN orders o ON o.cust = c._id")


def test_scalar_subqueries_in_select_and_where(shop):
    got = rows(
        shop,
        "SELECT _id, (SELECT MAX(total) FROM orders) AS mx FROM orders "
        "WHERE total > (SELECT AVG(total) FROM orders) ORDER BY _id",
    )
    assert got == [(10, 100), (11, 100), (12, 100)]


def test_correlated_subquery(shop):
    got = rows(
        shop,
        "SELECT name, (SELECT COUNT(*) FROM orders o WHERE o.cust = c._id) AS n "
        "FROM customers c ORDER BY name",
    )
    assert got == [("ann", 2), ("bob", 1), ("cy", 0)]


def test_scalar_subquery_with_several_rows_is_an_error(shop):
    with pytest.raises(ExecutionError, match="more than one row"):
        shop.execute("SELECT name FROM customers WHERE _id = (SELECT cust FROM orders)")


def test_exists_and_in_subquery_with_null_semantics(shop):
    assert rows(
        shop,
        "SELECT name FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE "
        "o.cust = c._id AND o.status = 'new')",
    ) == [("ann",)]
    assert rows(
        shop,
        "SELECT name FROM customers WHERE _id IN (SELECT cust FROM orders WHERE "
        "total > 60) ORDER BY name",
    ) == [("ann",), ("bob",)]
    # NOT IN over a subquery that yields a NULL is never true (SQL three-valued logic)
    assert rows(shop, "SELECT name FROM customers WHERE _id NOT IN (SELECT cust FROM orders)") == []
    assert rows(
        shop,
        "SELECT name FROM customers WHERE _id NOT IN (SELECT cust FROM orders "
        "WHERE cust IS NOT NULL)",
    ) == [("cy",)]


def test_ctes_used_twice_and_derived_tables(shop):
    got = rows(
        shop,
        """
        WITH spend AS (SELECT cust, SUM(total) AS s FROM orders GROUP BY cust),
             top AS (SELECT cust FROM spend WHERE s > 60)
        SELECT c.name, sp.s FROM customers c JOIN spend sp ON sp.cust = c._id
        WHERE c._id IN (SELECT cust FROM top) ORDER BY sp.s DESC""",
    )
    assert got == [("ann", 150), ("bob", 70)]
    got = rows(
        shop,
        "SELECT t.city, t.n FROM (SELECT city, COUNT(*) AS n FROM customers "
        "GROUP BY city) t WHERE t.n >= 1 ORDER BY t.city",
    )
    assert got == [(None, 1), ("Oslo", 1), ("Rome", 1)]


def test_unknown_column_of_a_derived_table_is_an_error(shop):
    with pytest.raises(PlanningError, match="has no column nope"):
        shop.execute("WITH x AS (SELECT cust FROM orders) SELECT nope FROM x")


def test_set_operations(shop):
    assert rows(shop, "SELECT city FROM customers UNION SELECT 'Oslo' ORDER BY city") == [
        (None,),
        ("Oslo",),
        ("Rome",),
    ]
    assert len(rows(shop, "SELECT status FROM orders UNION ALL SELECT name FROM customers")) == 8
    assert rows(shop, "SELECT cust FROM orders INTERSECT SELECT _id FROM customers ORDER BY 1") == [
        (1,),
        (2,),
    ]
    assert rows(shop, "SELECT _id FROM customers EXCEPT SELECT cust FROM orders") == [(3,)]
    with pytest.raises(PlanningError, match="2 column"):
        shop.execute("SELECT _id, name FROM customers UNION SELECT _id FROM orders")


def test_window_functions(shop):
    got = rows(
        shop,
        "SELECT _id, ROW_NUMBER() OVER (ORDER BY total DESC) AS rn, "
        "RANK() OVER (PARTITION BY status ORDER BY total) AS r, "
        "SUM(total) OVER (PARTITION BY status) AS st, "
        "LAG(total) OVER (ORDER BY _id) AS prev, "
        "SUM(total) OVER (ORDER BY _id ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS s2 "
        "FROM orders ORDER BY _id",
    )
    assert got == [
        (10, 1, 3, 175, None, 100),
        (11, 3, 1, 50, 100, 150),
        (12, 2, 2, 175, 50, 120),
        (13, 4, 1, 175, 70, 75),
        (14, 5, 1, 1, 5, 6),
    ]


def test_group_concat_and_json_arrayagg(shop):
    got = shop.execute(
        "SELECT cust, GROUP_CONCAT(status ORDER BY _id DESC SEPARATOR '|') AS s, "
        "JSON_ARRAYAGG(total ORDER BY total LIMIT 1) AS t FROM orders "
        "WHERE cust = 1 GROUP BY cust"
    ).rows
    assert got == [{"cust": 1, "s": "new|paid", "t": [50]}]


def test_update_and_delete_with_subqueries(shop):
    r = shop.execute(
        "UPDATE customers SET vip = TRUE WHERE _id IN (SELECT cust FROM orders WHERE total >= 70)"
    )
    assert r.rowcount == 2
    r = shop.execute(
        "DELETE FROM orders WHERE NOT EXISTS (SELECT 1 FROM customers c WHERE c._id = orders.cust)"
    )
    assert r.rowcount == 2
    assert sorted(d["_id"] for d in shop.db.orders.find()) == [10, 11, 12]


def test_view_with_join_and_no_from_view(shop):
    shop.execute(
        "CREATE VIEW spend AS SELECT c.name, SUM(o.total) AS s FROM customers c "
        "JOIN orders o ON o.cust = c._id GROUP BY c.name"
    )
    assert rows(shop, "SELECT name, s FROM spend ORDER BY s") == [("bob", 70), ("ann", 150)]
    shop.execute(
        "CREATE VIEW counts AS SELECT (SELECT COUNT(*) FROM customers) AS c, "
        "(SELECT COUNT(*) FROM orders WHERE status = 'paid') AS p"
    )
    assert rows(shop, "SELECT c, p FROM counts") == [(3, 3)]


def test_seed_correlation_functions(shop):
    got = shop.execute(
        "SELECT JSON_EXTRACT(items, '$[0].qty') AS q, items->'$[0].sku' AS sku, "
        "CAST(JSON_EXTRACT(items, '$[0].qty') AS DECIMAL(10,2)) AS d "
        "FROM orders WHERE _id = 10"
    ).rows[0]
    assert got["q"] == 2 and got["sku"] == "a" and str(got["d"]) == "2.00"


def test_unknown_table_is_an_error_with_suggestions(shop):
    with pytest.raises(PlanningError, match="unknown table custmers.*did you mean customers") as e:
        shop.execute("SELECT * FROM custmers")
    assert e.value.position.column == 15
    shop.execute("INSERT INTO brand_new (a) VALUES (1)")
    assert shop.execute("SELECT a FROM brand_new").rows == [{"a": 1}]


def test_having_may_use_select_aliases(shop):
    assert rows(shop, "SELECT status, COUNT(*) AS n FROM orders GROUP BY status HAVING n > 1") == [
        ("paid", 3)
    ]


def test_comma_join_conditions_move_into_the_lookup(shop):
    """The WHERE equality becomes the lookup's key: no cross product filtered afterwards."""
    sql = "SELECT c.name, o._id FROM customers c, orders o WHERE o.cust = c._id"
    pipeline = shop.explain(sql).commands[0]["pipeline"]
    lookup = next(s["$lookup"] for s in pipeline if "$lookup" in s)
    assert lookup["foreignField"] == "cust" and "pipeline" not in lookup
    assert sorted(rows(shop, sql)) == sorted(
        rows(shop, "SELECT c.name, o._id FROM customers c JOIN orders o ON o.cust = c._id")
    )
