"""CREATE TABLE / DROP TABLE: a collection with a $jsonSchema validator from the column types."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from bson import Decimal128
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import queryleaf  # noqa: F401 - registers the event runtime's reserved collections
from queryleaf.column_types import DECLARED_TYPES
from queryleaf.errors import ExecutionError, PlanningError, SqlSyntaxError
from queryleaf.offline import check_offline
from queryleaf.planner import plan_statement
from queryleaf.planner.create_table import BSON_TYPES
from queryleaf.planner.params import to_bson
from queryleaf.sampling import bson_type
from queryleaf.sql.parser import parse
from queryleaf.sql.printer import to_sql

TABLE = (
    "CREATE TABLE people (id BIGINT PRIMARY KEY, name VARCHAR(5) NOT NULL, age INTEGER, "
    "score DOUBLE, price NUMERIC(10, 2), ok BOOLEAN, born TIMESTAMP, doc JSON, raw BYTEA)"
)


def _validator(sql: str) -> dict:
    return plan_statement(parse(sql)).commands()[0]["validator"]["$jsonSchema"]


def test_the_validator_of_each_column_type():
    schema = _validator(TABLE)
    assert schema["required"] == ["id", "name"]
    rules = {
        name: {k: v for k, v in rule.items() if k != "description"}
        for name, rule in schema["properties"].items()
    }
    assert rules == {
        "id": {"bsonType": ["int", "long"]},
        "name": {"bsonType": "string", "maxLength": 5},
        "age": {"bsonType": ["int", "long", "null"]},
        "score": {"bsonType": ["double", "int", "long", "null"]},
        "price": {"bsonType": ["decimal", "double", "int", "long", "null"]},
        "ok": {"bsonType": ["bool", "null"]},
        "born": {"bsonType": ["date", "null"]},
        "doc": {"bsonType": ["object", "array", "null"]},
        "raw": {"bsonType": ["binData", "null"]},
    }
    described = [rule["description"] for rule in schema["properties"].values()]
    assert described == [
        "BIGINT",
        "VARCHAR(5)",
        "INTEGER",
        "DOUBLE",
        "NUMERIC(10, 2)",
        "BOOLEAN",
        "TIMESTAMP",
        "JSON",
        "BYTEA",
    ]


def test_explain_shows_the_create_command(ql):
    rows = ql.execute("EXPLAIN CREATE TABLE t (a INT NOT NULL, PRIMARY KEY (a))").rows
    assert rows[0]["mongosh"].startswith("db.createCollection('t', {\n  validator: {")
    assert '"validationAction": "error"' in rows[0]["json"]
    assert '"createIndexes": "t"' in rows[1]["json"] and '"unique": true' in rows[1]["json"]
    assert ql.execute("SHOW TABLES").rows == []  # EXPLAIN ran nothing


def test_printer_round_trip():
    for sql in (
        "CREATE TABLE IF NOT EXISTS s.t (a INT PRIMARY KEY, b VARCHAR(3) NOT NULL, c TEXT)",
        'CREATE TABLE "my t" ("key" TEXT, PRIMARY KEY ("key"))',
        "DROP TABLE IF EXISTS t",
    ):
        assert to_sql(parse(sql)) == sql
    assert to_sql(parse("create table t (a int) if not exists")) == (
        "CREATE TABLE IF NOT EXISTS t (a INT)"
    )


@pytest.mark.parametrize(
    ("sql", "message", "column"),
    [
        ("CREATE TABLE t (a INT, b WIDGET)", "unknown column type WIDGET", 26),
        ("CREATE TABLE t (a INT, a TEXT)", "column a is declared twice", 24),
        ("CREATE TABLE t (a INT, PRIMARY KEY (b))", "PRIMARY KEY names b", 1),
        ('CREATE TABLE t ("a.b" INT)', "cannot hold '.'", 17),
        ('CREATE TABLE t ("$where" INT)', r"start with '\$'", 17),
        ("CREATE TABLE t (a BOOLEAN(3))", "BOOLEAN takes no length", 19),
        (
            "CREATE TABLE __queryleaf_event_log (a INT)",
            "cannot be created or dropped as a table",
            1,
        ),
        ("DROP TABLE system.views", "MongoDB system collection", 1),
    ],
)
def test_refused_declarations_are_placed(sql, message, column):
    with pytest.raises(PlanningError, match=message) as info:
        plan_statement(parse(sql))
    assert info.value.position is not None and info.value.position.column == column


def test_no_columns_is_a_syntax_error():
    with pytest.raises(SqlSyntaxError):
        parse("CREATE TABLE t ()")


def test_create_insert_read_back_and_drop(ql):
    assert ql.execute(TABLE).message == "CREATE TABLE people"
    born = dt.datetime(2001, 2, 3, 4, 5, 6, tzinfo=dt.UTC)
    ql.execute(
        "INSERT INTO people (id, name, age, score, price, ok, born, doc, raw) "
        "VALUES (1, 'ann', 30, 2, :price, TRUE, :born, :doc, :raw)",
        {"price": Decimal("9.99"), "born": born, "doc": {"x": [1]}, "raw": b"\x00\x01"},
    )
    ql.execute("INSERT INTO people (id, name) VALUES (2, 'bob')")
    row = ql.execute("SELECT id, name, score, price, born FROM people WHERE id = 1").rows[0]
    assert row == {
        "id": 1,
        "name": "ann",
        "score": 2,
        "price": Decimal128("9.99"),
        "born": born,
    }
    options = ql.db.command("listCollections", filter={"name": "people"})["cursor"]["firstBatch"]
    assert options[0]["options"]["validationAction"] == "error"
    assert any(i["name"] == "people_pkey" and i["unique"] for i in ql.db.people.list_indexes())
    assert ql.execute("DROP TABLE people").message == "DROP TABLE people"
    assert "people" not in ql.db.list_collection_names()


@pytest.mark.parametrize(
    ("insert", "message"),
    [
        ("INSERT INTO t (id, name, age) VALUES (1, 'ann', 'old')", "column age: type did not"),
        ("INSERT INTO t (id, name) VALUES (1, 'annabel')", "longer than 5 characters"),
        ("INSERT INTO t (id, age) VALUES (1, 3)", "NOT NULL column name has no value"),
        ("INSERT INTO t (id, name) VALUES (1, NULL)", "column name: type did not match"),
        ("INSERT INTO t (id, name, age) VALUES (1, 'a', 1.5)", "got a double"),
    ],
)
def test_rows_that_break_the_schema_are_refused_clearly(ql, insert, message):
    ql.execute("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(5) NOT NULL, age INT)")
    with pytest.raises(ExecutionError, match=message) as info:
        ql.execute(insert)
    assert info.value.code == 121
    assert ql.execute("SELECT COUNT(*) AS n FROM t").rows == [{"n": 0}]


def test_update_that_breaks_the_schema_is_refused(ql):
    ql.execute("CREATE TABLE t (id INT, age INT)")
    ql.execute("INSERT INTO t (id, age) VALUES (1, 2)")
    with pytest.raises(ExecutionError, match="column age: type did not match"):
        ql.execute("UPDATE t SET age = 'x' WHERE id = 1")


def test_an_existing_name_is_a_placed_error_unless_if_not_exists(ql):
    ql.execute("CREATE TABLE t (a INT)")
    with pytest.raises(ExecutionError, match="table t already exists") as info:
        ql.execute("SELECT 1;\n  CREATE TABLE t (a INT)".split(";\n")[1])
    assert info.value.position is not None and info.value.position.column == 3
    assert "^" in str(info.value)
    assert ql.execute("CREATE TABLE IF NOT EXISTS t (b TEXT)").message.endswith("(already exists)")
    ql.execute("CREATE VIEW v AS SELECT a FROM t")
    with pytest.raises(ExecutionError, match="already exists"):
        ql.execute("CREATE TABLE v (a INT)")


def test_drop_table_refuses_views_and_missing_tables(ql):
    ql.execute("CREATE TABLE t (a INT)")
    ql.execute("CREATE VIEW v AS SELECT a FROM t")
    with pytest.raises(ExecutionError, match="v is a view, not a table; DROP VIEW drops it"):
        ql.execute("DROP TABLE v")
    with pytest.raises(ExecutionError, match="table nope does not exist") as info:
        ql.execute("DROP TABLE nope")
    assert info.value.error_code == "QL2001"
    assert ql.execute("DROP TABLE IF EXISTS nope").message.endswith("(did not exist)")
    ql.execute("DROP TABLE t")
    ql.execute("CREATE TABLE t (a TEXT)")  # dropped: created anew, with the new columns
    ql.execute("INSERT INTO t (a) VALUES ('x')")


def test_not_inside_a_transaction(ql):
    ql.execute("BEGIN")
    with pytest.raises(PlanningError, match="CREATE TABLE cannot run inside a transaction"):
        ql.execute("CREATE TABLE t (a INT)")
    ql.execute("ROLLBACK")


def test_offline_check_says_what_only_the_database_knows():
    create = check_offline(parse("CREATE TABLE t (a INT)"))
    assert create.unchecked == ("that no collection or view t exists yet",)
    assert check_offline(parse("CREATE TABLE IF NOT EXISTS t (a INT)")).unchecked == ()
    assert check_offline(parse("DROP TABLE t")).unchecked == ("that table t exists",)


# Values of every kind a parameter can be, and the BSON type each is stored as.
_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(2**31, 2**62),
    st.floats(allow_nan=False, allow_infinity=False),
    # Decimal128 holds 34 significant digits
    st.decimals(min_value=Decimal("-1e30"), max_value=Decimal("1e30"), allow_nan=False, places=2),
    st.text(max_size=8),
    st.datetimes(timezones=st.just(dt.UTC)),
    st.dictionaries(st.sampled_from("xy"), st.integers(0, 9), max_size=2),
    st.lists(st.integers(0, 9), max_size=2),
    st.binary(max_size=4),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(declared=st.sampled_from(sorted(DECLARED_TYPES)), value=_VALUES)
def test_the_server_accepts_exactly_the_declared_bson_types(ql, declared, value):
    table = f"t_{declared.lower()}"
    ql.execute(f"CREATE TABLE IF NOT EXISTS {table} (c {declared})")
    stored_as = bson_type(to_bson(value))
    allowed = [*BSON_TYPES[DECLARED_TYPES[declared]], "null"]
    try:
        ql.execute(f"INSERT INTO {table} (c) VALUES (:v)", {"v": value})
        accepted = True
    except ExecutionError as exc:
        assert exc.code == 121 and "column c" in exc.message
        accepted = False
    assert accepted == (stored_as in allowed), (declared, value, stored_as)


def test_describe_shows_the_declared_columns(ql):
    ql.execute("CREATE TABLE readings (id BIGINT PRIMARY KEY, sensor VARCHAR(20) NOT NULL, x REAL)")
    footer = ql.execute("DESCRIBE readings").message.splitlines()
    assert (
        "declared columns (CREATE TABLE): id BIGINT NOT NULL, sensor VARCHAR(20) NOT NULL, x REAL"
        in footer
    )
    ql.execute("INSERT INTO plain (a) VALUES (1)")
    assert not any(
        line.startswith("declared") for line in ql.execute("DESCRIBE plain").message.splitlines()
    )
