"""The PostgreSQL catalog the wire server answers (queryleaf/pg/catalog), called directly with
the query texts real clients send: psql 15 and SQLAlchemy 2 captured from a real PostgreSQL 15
(tests/pg_catalog_queries/*.sql, the contract), DBeaver's and Grafana's from their sources."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from pathlib import Path

import pytest
from bson import Int64

from queryleaf.column_types import ColumnType
from queryleaf.errors import QueryLeafError
from queryleaf.pg.catalog import CatalogSession, answer

QUERIES = Path(__file__).parent / "pg_catalog_queries"
PSQL_OID = "16385"  # the OID of orders in the PostgreSQL the texts were captured from


def query(name: str, oid: int | None = None) -> tuple[str, list[str]]:
    """A captured text and its parameters, with psql's OID of orders replaced by ours."""
    lines = (QUERIES / f"{name}.sql").read_text().splitlines()
    params: list[str] = []
    for line in lines:
        if line.startswith("-- params: "):
            params = json.loads(line.removeprefix("-- params: "))
    text = "\n".join(line for line in lines if not line.startswith("-- "))
    if oid is not None:
        text = text.replace(PSQL_OID, str(oid))
        params = [str(oid) if p == PSQL_OID else p for p in params]
    return text, params


def run(session: CatalogSession, name: str, oid: int | None = None):
    text, params = query(name, oid)
    result = answer(text, params, session)
    assert result is not None, f"{name} was not answered"
    return result


@pytest.fixture()
def session(ql) -> CatalogSession:
    ql.db.orders.insert_many(
        [
            {
                "_id": "o1",
                "customer": "ann",
                "total": 120.5,
                "qty": 2,
                "placed": dt.datetime(2024, 1, 2),
                "items": [{"sku": "a"}],
            },
            {"_id": "o2", "customer": "bob", "total": 80, "qty": 1, "big": Int64(5)},
        ]
    )
    ql.db.orders.create_index("customer")
    ql.db.customers.insert_one({"_id": "c1", "name": "ann"})
    ql.execute("CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100")
    return CatalogSession(ql, {"user": "tester", "database": ql.db.name, "application_name": "t"})


def orders_oid(session: CatalogSession) -> int:
    rows = run(session, "psql_d_orders_1").rows
    assert [row[1:] for row in rows] == [("public", "orders")]
    return rows[0][0]


# -- psql ------------------------------------------------------------------------------------


def test_psql_dt_lists_the_collections_as_tables(session):
    result = run(session, "psql_dt_1")
    assert result.columns == ["Schema", "Name", "Type", "Owner"]
    assert result.rows == [
        ("public", "customers", "table", "tester"),
        ("public", "orders", "table", "tester"),
    ]
    assert result.tag == "SELECT 2"
    assert result.types == [ColumnType.TEXT] * 4


def test_psql_d_lists_tables_and_views_and_dv_the_views(session):
    assert [row[1:3] for row in run(session, "psql_d_1").rows] == [
        ("big_orders", "view"),
        ("customers", "table"),
        ("orders", "table"),
    ]
    assert [row[1] for row in run(session, "psql_dv_1").rows] == ["big_orders"]


def test_psql_d_orders_describes_the_sampled_columns_and_the_indexes(session):
    oid = orders_oid(session)
    relation = run(session, "psql_d_orders_2", oid)
    assert relation.rows[0][1] == "r" and relation.rows[0][2] is True  # relkind, relhasindex
    assert relation.types[2] == ColumnType.BOOLEAN  # psql reads 't'/'f'

    columns = run(session, "psql_d_orders_3", oid)
    assert [(name, kind, not_null) for name, kind, _, not_null, *_ in columns.rows] == [
        ("_id", "text", True),
        ("customer", "text", False),
        ("total", "double precision", False),  # a double and an int: double precision
        ("qty", "integer", False),
        ("placed", "timestamp with time zone", False),
        ("items", "jsonb", False),
        ("big", "bigint", False),
    ]
    assert columns.types[3] == ColumnType.BOOLEAN

    indexes = run(session, "psql_d_orders_4", oid)
    assert [(row[0], row[1], row[5], row[6]) for row in indexes.rows] == [
        (
            "_id_",
            True,
            "CREATE UNIQUE INDEX _id_ ON public.orders USING btree (_id)",
            "PRIMARY KEY (_id)",
        ),
        (
            "customer_1",
            False,
            "CREATE INDEX customer_1 ON public.orders USING btree (customer)",
            None,
        ),
    ]
    # Policies, statistics objects, publications, inheritance: none, and no error.
    for name in ("psql_d_orders_5", "psql_d_orders_6", "psql_d_orders_7", "psql_d_orders_8"):
        assert run(session, name, oid).rows == []
    assert run(session, "psql_d_orders_9", oid).rows == []


def test_psql_d_plus_orders(session):
    oid = orders_oid(session)
    assert run(session, "psql_dplus_orders_relation", oid).rows[0][9] is None  # no reloptions
    columns = run(session, "psql_dplus_orders_columns", oid)
    assert [row[0] for row in columns.rows][:3] == ["_id", "customer", "total"]
    assert [row[7] for row in columns.rows][:3] == ["x", "x", "p"]  # storage: extended, plain


def test_psql_d_of_a_view_has_no_indexes(session):
    text, _ = query("psql_d_orders_1")
    rows = answer(text.replace("^(orders)$", "^(big_orders)$"), [], session).rows
    oid = rows[0][0]
    assert run(session, "psql_d_orders_2", oid).rows[0][1] == "v"
    assert [row[0] for row in run(session, "psql_d_orders_3", oid).rows][:2] == ["_id", "customer"]
    assert run(session, "psql_d_orders_4", oid).rows == []


def test_psql_l_dn_di(session):
    databases = run(session, "psql_l_1").rows
    assert session.queryleaf.db.name in [row[0] for row in databases]
    assert not {"admin", "local", "config"} & {row[0] for row in databases}
    assert run(session, "psql_dn_1").rows == [("public", "tester")]
    assert sorted((row[1], row[4]) for row in run(session, "psql_di_1").rows) == [
        ("_id_", "customers"),
        ("_id_", "orders"),
        ("customer_1", "orders"),
    ]


def test_psql_dt_plus_dx_and_dtypes(session):
    sized = run(session, "psql_dtplus_1")
    assert [row[1] for row in sized.rows] == ["customers", "orders"]
    assert run(session, "psql_dx_1").rows == []  # no extensions
    assert run(session, "psql_dtypes_1").rows == []  # no types of one's own


def test_psql_du_and_df(session):
    roles = run(session, "psql_du_1")
    assert [(row[0], row[8]) for row in roles.rows] == [("tester", [])]
    assert run(session, "psql_df_1").rows == []  # no functions


# -- SQLAlchemy's PostgreSQL dialect ----------------------------------------------------------


def test_sqlalchemy_connect_queries(session):
    version = run(session, "sqlalchemy_connect_version")
    assert version.columns == ["version"]
    # SQLAlchemy's own pattern (dialects/postgresql/base.py _get_server_version_info)
    match = re.match(r".*(?:PostgreSQL|EnterpriseDB) (\d+)\.?(\d+)?", version.rows[0][0])
    assert match and match.group(1) == "15"
    assert run(session, "sqlalchemy_connect_current_schema").rows == [("public",)]
    isolation = run(session, "sqlalchemy_connect_isolation")
    assert (isolation.columns, isolation.rows, isolation.tag) == (
        ["transaction_isolation"],
        [("read committed",)],
        "SHOW",
    )
    assert run(session, "sqlalchemy_connect_standard_conforming_strings").rows == [("on",)]
    assert run(session, "sqlalchemy_connect_hstore").rows == []  # no hstore type


def test_sqlalchemy_inspection(session):
    assert run(session, "sqlalchemy_get_table_names").rows == [("customers",), ("orders",)]
    assert run(session, "sqlalchemy_get_view_names").rows == [("big_orders",)]
    assert run(session, "sqlalchemy_has_table").rows == [("orders",)]
    assert run(session, "sqlalchemy_has_table_missing").rows == []
    assert run(session, "sqlalchemy_get_schema_names").rows == [
        ("information_schema",),
        ("public",),
    ]
    columns = run(session, "sqlalchemy_get_columns")
    by_name = {row[0]: row for row in columns.rows}
    assert by_name["qty"][1:5] == ("integer", None, False, "orders")
    assert by_name["_id"][3] is True
    assert [row[0] for row in run(session, "sqlalchemy_get_columns_view").rows][:2] == [
        "_id",
        "customer",
    ]

    oid = run(session, "sqlalchemy_table_oids").rows[0][0]
    assert run(session, "sqlalchemy_am_btree").rows == [(403, "btree")]
    assert run(session, "sqlalchemy_opclass").rows == []
    indexes = run(session, "sqlalchemy_get_indexes", oid)
    row = dict(zip(indexes.columns, indexes.rows[0], strict=True))
    assert len(indexes.rows) == 1  # the primary key is read by get_pk_constraint
    assert (row["relname"], row["indisunique"], row["elements"], row["indoption"]) == (
        "customer_1",
        False,
        ["customer"],
        "0",  # an int2vector's text form: SQLAlchemy splits it
    )
    assert row["relam"] == 403 and row["indnkeyatts"] == 1
    assert indexes.types[indexes.columns.index("elements")] == ColumnType.DOCUMENT
    pk = run(session, "sqlalchemy_get_pk_constraint", oid)
    assert [row[:3] for row in pk.rows] == [(oid, ["_id"], "_id_")]
    assert [row[1] for row in run(session, "sqlalchemy_get_foreign_keys").rows] == [None]


def test_sqlalchemy_constraints_and_comments(session):
    oid = run(session, "sqlalchemy_table_oids").rows[0][0]
    assert run(session, "sqlalchemy_get_unique_constraints", oid).rows == []
    assert [row[1] for row in run(session, "sqlalchemy_get_check_constraints").rows] == [None]
    assert run(session, "sqlalchemy_get_table_comment").rows == [("orders", None)]


def test_parameters_are_bound_as_values(session):
    text, params = query("sqlalchemy_has_table")
    params[0] = "orders') OR ('1'='1"
    assert answer(text, params, session).rows == []


# -- DBeaver, pgJDBC, Grafana -----------------------------------------------------------------


def test_dbeaver_connect_queries(session):
    databases = run(session, "dbeaver_databases")
    assert databases.columns[:3] == ["oid", "oid", "datname"]
    names = [row[2] for row in databases.rows]  # the server's databases (other tests' too)
    assert session.queryleaf.db.name in names and names == sorted(names)
    assert run(session, "dbeaver_current_schema").rows == [("public", "tester")]
    assert run(session, "dbeaver_search_path").rows == [('"$user", public',)]
    assert [row[2] for row in run(session, "dbeaver_schemas").rows] == [
        "information_schema",
        "pg_catalog",
        "public",
    ]
    assert run(session, "pgjdbc_extra_float_digits").tag == "SET"
    assert run(session, "pgjdbc_application_name").tag == "SET"
    assert session.settings["application_name"] == "DBeaver 24.0.0 - Main <shop>"


def test_grafana_table_and_column_pickers(session):
    assert run(session, "grafana_tables").rows == [("big_orders",), ("customers",), ("orders",)]
    assert run(session, "grafana_columns").rows[:3] == [
        ("_id", "text"),
        ("customer", "text"),
        ("total", "double precision"),
    ]


# -- SET / SHOW / RESET / DISCARD and session functions ---------------------------------------


def test_set_show_reset(session):
    def ask(sql):
        return answer(sql, [], session)

    assert ask("SET extra_float_digits = 3").tag == "SET"
    assert ask("show extra_float_digits;").rows == [("3",)]
    assert ask("SET datestyle TO 'ISO, MDY'").tag == "SET"
    assert (ask("SHOW DateStyle").columns, ask("SHOW datestyle").rows) == (
        ["DateStyle"],
        [("ISO, MDY",)],
    )
    ask("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    assert ask("SHOW TRANSACTION ISOLATION LEVEL").rows == [("repeatable read",)]
    ask("SET TIME ZONE 'Europe/Paris'")
    assert ask("SELECT current_setting('timezone')").rows == [("Europe/Paris",)]
    ask("SET application_name = 'other'")
    assert ask("RESET application_name").tag == "RESET"
    assert ask("SHOW application_name").rows == [("t",)]  # the startup value
    ask("SET search_path = public")
    assert ask("RESET ALL").tag == "RESET"
    assert ask("SHOW search_path").rows == [('"$user", public',)]
    ask("SET statement_timeout = 5")
    assert ask("DISCARD ALL").tag == "DISCARD ALL"
    assert ask("SHOW statement_timeout").rows == [("0",)]
    assert "server_version" in [row[0] for row in ask("SHOW ALL").rows]
    assert ask("/* pgAdmin */ SET client_min_messages=notice").tag == "SET"
    assert ask("-- a note\nSHOW client_min_messages").rows == [("notice",)]
    assert ask("select*from pg_namespace where nspname='public'").rows[0][1] == "public"
    with pytest.raises(QueryLeafError, match="unrecognized configuration parameter"):
        ask("SHOW no_such_thing")


def test_session_functions(session):
    def ask(sql):
        return answer(sql, [], session)

    result = ask("select current_database(), current_user, session_user, user, version()")
    assert result.columns == ["current_database", "current_user", "session_user", "user", "version"]
    assert result.rows[0][:4] == (session.queryleaf.db.name, "tester", "tester", "tester")
    pid = ask("SELECT pg_backend_pid()")
    assert pid.types == [ColumnType.INTEGER] and pid.rows[0][0] > 0
    assert ask("select current_setting('server_version_num')::int").rows == [(150000,)]
    assert ask("SELECT pg_catalog.current_schemas(true)").rows == [(["pg_catalog", "public"],)]
    assert ask("SELECT set_config('search_path', 'public', false)").rows == [("public",)]
    assert ask("SHOW search_path").rows == [("public",)]


def test_catalog_views_and_star_selects(session):
    tables = answer("SELECT * FROM pg_catalog.pg_tables WHERE schemaname = 'public'", [], session)
    assert tables.columns[:5] == [
        "schemaname",
        "tablename",
        "tableowner",
        "tablespace",
        "hasindexes",
    ]
    assert [row[1:3] for row in tables.rows] == [("customers", "tester"), ("orders", "tester")]
    assert tables.types[4] == ColumnType.BOOLEAN
    count = answer("select count(*) from pg_class where relkind = $1", ["v"], session)
    assert (count.columns, count.rows) == (["count"], [(1,)])
    kinds = (
        "select relname from pg_class where relnamespace = 2200 and relkind <> all(array[$1, 'i'])"
    )
    assert sorted(row[0] for row in answer(kinds, ["r"], session).rows) == ["big_orders"]
    setting = answer("select * from pg_settings where name=$1", ["TimeZone"], session)
    assert dict(zip(setting.columns, setting.rows[0], strict=True))["setting"] == "UTC"


# -- what is not a catalog statement ------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM orders",
        "SELECT customer, SUM(total) FROM orders GROUP BY customer",
        "SHOW TABLES",
        "SHOW INDEXES FROM orders",
        "SHOW COLUMNS FROM orders",
        "INSERT INTO orders (_id) VALUES ('x')",
        "SELECT version FROM releases",
        "SELECT o.customer FROM orders o JOIN pg_class c ON c.relname = o.customer",
        "BEGIN",
        "SELECT current_date",
        "SELECT current_user, name FROM EVENT_SUBSCRIPTIONS()",
    ],
)
def test_ordinary_statements_are_left_to_queryleaf(session, sql):
    assert answer(sql, [], session) is None


def test_the_precheck_costs_microseconds(session):
    sql = "SELECT customer, total FROM orders WHERE customer = $1 ORDER BY total DESC LIMIT 10"
    assert answer(sql, ["ann"], session) is None
    calls = 2000
    started = time.perf_counter()
    for _ in range(calls):
        answer(sql, ["ann"], session)
    per_call = (time.perf_counter() - started) / calls
    assert per_call < 50e-6, f"{per_call * 1e6:.1f} µs per ordinary statement"


def test_a_new_collection_shows_after_the_snapshot_expires(session, monkeypatch):
    import queryleaf.pg.catalog as catalog

    assert [row[1] for row in run(session, "psql_dt_1").rows] == ["customers", "orders"]
    session.queryleaf.db.payments.insert_one({"_id": 1})
    monkeypatch.setattr(catalog, "SNAPSHOT_MAX_AGE_S", 0.0)
    assert [row[1] for row in run(session, "psql_dt_1").rows] == ["customers", "orders", "payments"]


def test_a_describe_before_bind_gets_the_columns(session):
    text, _ = query("sqlalchemy_table_oids")
    result = answer(text, [], session)
    assert (result.columns, result.rows) == (["oid", "relname"], [])


def test_parameters_arrive_decoded_from_binary(session):
    """psycopg sends ints and bools in binary: the wire server passes them as Python values."""
    oid = run(session, "sqlalchemy_table_oids").rows[0][0]
    text, params = query("sqlalchemy_get_indexes")
    params = [0, 1, True, 0, 1, oid, "p", "u", "x"]
    assert [row[1] for row in answer(text, params, session).rows] == ["customer_1"]


def test_index_definitions_quote_names_and_a_declared_primary_key_is_the_primary_key(ql):
    ql.execute('CREATE TABLE readings (id BIGINT PRIMARY KEY, "Sensor" TEXT)')
    ql.db.readings.create_index([("Sensor", -1)], name="by_sensor")
    session = CatalogSession(queryleaf=ql, settings={"user": "tester", "database": ql.db.name})
    sql = (
        "SELECT i.relname, pg_catalog.pg_get_indexdef(x.indexrelid), x.indisprimary "
        "FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class c ON c.oid = x.indrelid "
        "JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid "
        "WHERE c.relname = 'readings' ORDER BY 1"
    )
    rows = answer(sql, [], session).rows
    assert [(name, bool(primary)) for name, _, primary in rows] == [
        ("_id_", False),
        ("by_sensor", False),
        ("readings_pkey", True),
    ]
    assert rows[1][1] == 'CREATE INDEX by_sensor ON public.readings USING btree ("Sensor" DESC)'


def test_an_empty_created_table_has_its_declared_columns(ql):
    ql.execute("CREATE TABLE readings (id BIGINT NOT NULL, sensor VARCHAR(20))")
    session = CatalogSession(queryleaf=ql, settings={"user": "tester", "database": ql.db.name})
    sql = (
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_name = 'readings' ORDER BY ordinal_position"
    )
    assert answer(sql, [], session).rows == [
        ("id", "bigint", "NO"),
        ("sensor", "text", "YES"),
    ]
