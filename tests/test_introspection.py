"""SHOW TABLES / VIEWS / DATABASES / INDEXES, DESCRIBE and USE through the Python API."""

from __future__ import annotations

import pytest

from queryleaf.errors import PlanningError, QueryLeafError, TransactionError


@pytest.fixture()
def shop(ql):
    ql.db.orders.insert_many(
        [
            {"_id": 1, "status": "paid", "customer": {"name": "Ada", "tier": 2}, "items": []},
            {"_id": 2, "status": "new", "customer": {"name": "Bob"}, "total": 9.5},
            {"_id": 3, "status": None, "customer": "anonymous", "items": [{"sku": "A"}]},
            {"_id": 4, "status": "paid", "total": 12},
        ]
    )
    ql.db.orders.create_index("status", name="by_status")
    ql.db.customers.insert_one({"_id": 1})
    ql.execute("CREATE VIEW paid AS SELECT _id, total FROM orders WHERE status = 'paid'")
    return ql


def test_show_tables_lists_collections_and_views(shop):
    rows = shop.execute("SHOW TABLES").rows
    assert rows == [
        {"name": "customers", "type": "collection"},
        {"name": "orders", "type": "collection"},
        {"name": "paid", "type": "view"},
    ]
    assert shop.execute("show collections;").rows == rows


def test_show_tables_hides_system_collections(shop):
    shop.execute(
        "CREATE EVENT_SUBSCRIPTION watcher AS (watch_collections = JSON_ARRAY('orders'), "
        "deliver_to = 'log')"
    )
    names = [r["name"] for r in shop.execute("SHOW TABLES").rows]
    assert names == ["customers", "orders", "paid"]


def test_show_views(shop):
    (row,) = shop.execute("SHOW VIEWS").rows
    assert row["name"] == "paid" and row["view_on"] == "orders"
    assert isinstance(row["pipeline"], list)


def test_show_indexes(shop):
    rows = shop.execute("SHOW INDEXES FROM orders").rows
    assert [(r["name"], r["keys"]) for r in rows] == [("_id_", "_id"), ("by_status", "status")]
    everywhere = shop.execute("SHOW INDEXES").rows
    assert {r["table"] for r in everywhere} == {"orders", "customers"}


def test_describe_fields_types_and_presence(shop):
    result = shop.execute("DESCRIBE orders")
    assert result.columns == ["field", "types", "present"]
    by_field = {r["field"]: r for r in result.rows}
    assert [r["field"] for r in result.rows][:2] == ["_id", "status"]
    assert by_field["_id"]["present"] == "100%"
    assert by_field["status"]["types"] == "string, null"
    assert by_field["customer"]["types"] == "object, string"
    assert by_field["customer.name"] == {
        "field": "customer.name",
        "types": "string",
        "present": "50%",
    }
    assert by_field["items.sku"]["present"] == "25%"
    assert by_field["total"]["types"] in ("double, int", "int, double")
    assert "collection orders: 4 documents (all sampled)" in result.message
    assert "indexes: _id_ (_id); by_status (status)" in result.message


def test_describe_nested_paths_follow_their_parent(shop):
    fields = [r["field"] for r in shop.execute("SHOW COLUMNS FROM orders").rows]
    assert fields.index("customer.name") == fields.index("customer") + 1


def test_describe_names_the_subscriptions_watching(shop):
    shop.execute(
        "CREATE EVENT_SUBSCRIPTION order_events AS (watch_collections = JSON_ARRAY('orders'), "
        "deliver_to = 'log')"
    )
    shop.execute("CREATE EVENT_SUBSCRIPTION everything AS (deliver_to = 'log')")
    shop.execute(
        "CREATE EVENT_SUBSCRIPTION other AS (watch_collections = JSON_ARRAY('customers'), "
        "deliver_to = 'log')"
    )
    message = shop.execute("DESCRIBE orders").message
    assert "watched by: everything (active), order_events (active)" in message


def test_describe_a_view(shop):
    result = shop.execute("DESCRIBE paid")
    assert [r["field"] for r in result.rows] == ["_id", "total"]
    assert result.message.startswith("view paid on orders: 2 documents")


def test_describe_unknown_table(shop):
    with pytest.raises(QueryLeafError, match="unknown table ordrs"):
        shop.execute("DESCRIBE ordrs")


def test_show_databases_marks_the_current_one(shop):
    rows = shop.execute("SHOW DATABASES").rows
    current = [r["name"] for r in rows if r["current"]]
    assert current == [shop.database_name]


def test_use_switches_the_database(shop, dbname):
    other = dbname + "_other"
    result = shop.execute(f"USE {other}")
    assert result.message == f"USE {other}"
    assert shop.database_name == other
    assert shop.execute("SHOW TABLES").rows == []
    shop.execute(f"USE {dbname}")
    assert len(shop.execute("SELECT * FROM orders").rows) == 4
    shop.client.drop_database(other)


def test_use_refuses_bad_names_and_transactions(shop):
    with pytest.raises(PlanningError, match="not a valid database name"):
        shop.execute('USE "a.b"')
    shop.execute("BEGIN")
    with pytest.raises(QueryLeafError, match="USE cannot run inside a transaction"):
        shop.execute("USE elsewhere")
    shop.execute("ROLLBACK")
    shop.execute("BEGIN")
    with pytest.raises(QueryLeafError, match="SHOW TABLES cannot run inside a transaction"):
        shop.execute("SHOW TABLES")
    shop.execute("ROLLBACK")
    with shop.transaction(), pytest.raises(TransactionError):
        shop.use("elsewhere")


def test_explain_shows_the_catalog_commands(shop):
    commands = shop.explain("DESCRIBE orders").commands
    assert {"listIndexes": "orders"} in commands


def test_statements_work_in_scripts(shop):
    results = shop.execute_script("SHOW TABLES; DESCRIBE customers; SHOW INDEXES IN customers")
    assert [r.statement for r in results] == ["SHOW TABLES", "DESCRIBE", "SHOW INDEXES"]
