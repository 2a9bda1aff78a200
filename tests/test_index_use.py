"""Index use, as the server's ``explain`` reports it for the commands queryleaf sends.

Indexed equality, a range, ORDER BY (no blocking SORT) and the WHERE of an aggregation pipeline
(its leading $match) are read off the winning plan: IXSCAN on the expected index. (SecantusDB
plans an index scan only for a filter on the indexed field alone: `n = 7 AND cat = 'c1'` is a
collection scan there, where MongoDB scans n_1 and filters the rest.)

The inner side of a join: the embedded SecantusDB's aggregate explain describes the leading
$match only and echoes the other stages, so it cannot show the index a $lookup uses (MongoDB
reports it per $lookup stage, ``indexesUsed``, with executionStats verbosity). What it can
show is asserted instead: the join's $lookup matches by ``localField``/``foreignField`` on a
field that leads an index of the joined collection (which is what makes both servers look each
row up through the index), and the equality lookup it does per row is an IXSCAN.
"""

from __future__ import annotations

from typing import Any

import pytest

from queryleaf.planner import plan_statement
from queryleaf.sql.parser import parse


@pytest.fixture()
def shop(ql):
    ql.db.items.insert_many(
        [{"_id": i, "n": i, "code": f"K{i:04d}", "cat": f"c{i % 5}"} for i in range(200)]
    )
    ql.db.items.create_index("code")
    ql.db.items.create_index("n")
    ql.db.customers.insert_many(
        [
            {"_id": i, "name": f"c{i}", "tier": ("gold", "silver")[i % 2], "code": f"C{i}"}
            for i in range(50)
        ]
    )
    ql.db.customers.create_index("tier")
    ql.db.customers.create_index("code")
    ql.db.orders.insert_many(
        [{"_id": i, "customer_id": i % 50, "total": i, "ccode": f"C{i % 50}"} for i in range(500)]
    )
    ql.db.orders.create_index("customer_id")
    return ql


def _command(sql: str) -> dict[str, Any]:
    (command,) = plan_statement(parse(sql)).commands()
    return command


def _winning_plan(ql, command: dict[str, Any]) -> dict[str, Any]:
    reply = ql.db.command({"explain": command, "verbosity": "queryPlanner"})
    return reply["queryPlanner"]["winningPlan"]


def _stages(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The plan's stages, outermost first (following inputStage)."""
    out = []
    while plan:
        out.append(plan)
        plan = plan.get("inputStage")
    return out


def _index_scan(plan: dict[str, Any]) -> str | None:
    """The index the plan scans, or None for a collection scan."""
    scans = [s for s in _stages(plan) if s.get("stage") == "IXSCAN"]
    return scans[0]["indexName"] if scans else None


@pytest.mark.parametrize(
    ("sql", "index"),
    [
        ("SELECT _id, n FROM items WHERE code = 'K0042'", "code_1"),
        ("SELECT _id, n FROM items WHERE code IN ('K0001', 'K0002')", "code_1"),
        ("SELECT _id, code FROM items WHERE n = 7", "n_1"),
        ("SELECT _id, code FROM items WHERE n BETWEEN 10 AND 20", "n_1"),
        ("SELECT _id, code FROM items WHERE n > 190", "n_1"),
        # two conditions on one field are one range (SecantusDB serves {$and: [...]} by scanning)
        ("SELECT _id, code FROM items WHERE n >= 5 AND n < 9", "n_1"),
        ("SELECT _id, code FROM items WHERE NOT (n < 5) AND n <= 9", "n_1"),
    ],
)
def test_equality_and_range_use_the_index(shop, sql, index):
    command = _command(sql)
    assert "find" in command
    assert _index_scan(_winning_plan(shop, command)) == index
    assert shop.execute(sql).rows  # the query answers through it


def test_a_collection_scan_is_reported_as_one(shop):
    """The check can fail: a filter on an unindexed field is a COLLSCAN."""
    plan = _winning_plan(shop, _command("SELECT _id FROM items WHERE cat = 'c1'"))
    assert _index_scan(plan) is None
    assert "COLLSCAN" in [s["stage"] for s in _stages(plan)]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT _id, n FROM items ORDER BY n LIMIT 5",
        "SELECT _id, n FROM items ORDER BY n DESC LIMIT 5",
        "SELECT _id, n FROM items WHERE n > 100 ORDER BY n LIMIT 5 OFFSET 2",
    ],
)
def test_order_by_an_indexed_field_needs_no_sort(shop, sql):
    plan = _winning_plan(shop, _command(sql))
    assert _index_scan(plan) == "n_1"
    assert "SORT" not in [s["stage"] for s in _stages(plan)]
    rows = [r["n"] for r in shop.execute(sql).rows]
    assert rows == sorted(rows, reverse="DESC" in sql)


def test_order_by_an_unindexed_field_sorts(shop):
    plan = _winning_plan(shop, _command("SELECT _id FROM items ORDER BY cat LIMIT 5"))
    assert "SORT" in [s["stage"] for s in _stages(plan)]


def test_where_of_a_pipeline_uses_the_index(shop):
    command = _command("SELECT cat, COUNT(*) AS n FROM items WHERE n < 20 GROUP BY cat")
    assert "aggregate" in command and "$match" in command["pipeline"][0]
    assert _index_scan(_winning_plan(shop, command)) == "n_1"


def _lookup(command: dict[str, Any]) -> dict[str, Any]:
    return next(s["$lookup"] for s in command["pipeline"] if "$lookup" in s)


def _leads_an_index(ql, collection: str, field: str) -> bool:
    return any(next(iter(ix["key"])) == field for ix in ql.db[collection].list_indexes())


@pytest.mark.parametrize(
    ("sql", "outer_index"),
    [
        (
            "SELECT c.name, o.total FROM customers c JOIN orders o ON o.customer_id = c._id "
            "WHERE c.tier = 'gold'",
            "tier_1",
        ),
        (
            "SELECT c.name, o.total FROM customers c LEFT JOIN orders o ON o.customer_id = c._id "
            "AND o.total > 10 WHERE c.tier = 'gold'",
            "tier_1",
        ),
        (
            "SELECT o.total, c.name FROM orders o JOIN customers c ON c._id = o.customer_id "
            "WHERE o.customer_id = 7",
            "customer_id_1",
        ),
        (
            "SELECT o.total, c.name FROM orders o, customers c WHERE c.code = o.ccode "
            "AND o.customer_id < 3",
            "customer_id_1",
        ),
    ],
)
def test_both_sides_of_a_join_use_an_index(shop, sql, outer_index):
    command = _command(sql)
    # the outer side: the leading $match, as the explain shows it
    assert _index_scan(_winning_plan(shop, command)) == outer_index
    # the inner side: the lookup matches by a field an index of the joined collection leads,
    # and the lookup of one key is an index scan
    lookup = _lookup(command)
    inner, field = lookup["from"], lookup["foreignField"]
    assert _leads_an_index(shop, inner, field)
    one_key = {"find": inner, "filter": {field: shop.db[inner].find_one()[field]}}
    assert _index_scan(_winning_plan(shop, one_key)) is not None
    # the explained command is the one sent
    reply = shop.db.command({"explain": command, "verbosity": "queryPlanner"})
    echoed = next(s["$lookup"] for s in reply["stages"] if "$lookup" in s)
    assert echoed["localField"] == lookup["localField"] and echoed["foreignField"] == field
    assert shop.execute(sql).rows


def test_a_join_without_a_key_is_not_looked_up_by_index(shop):
    """The check can fail: a join on an inequality has no localField/foreignField."""
    lookup = _lookup(_command("SELECT c.name FROM customers c JOIN orders o ON o.total > c._id"))
    assert "foreignField" not in lookup
