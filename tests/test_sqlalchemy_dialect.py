"""The queryleaf:// SQLAlchemy dialect and pandas, against the embedded test server."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
import warnings
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from embedded_helpers import data_dir_fixture  # noqa: F401 - the data_dir fixture

import queryleaf.dbapi
from queryleaf.sqlalchemy.datatypes import declared_sqlalchemy_type
from queryleaf.sqlalchemy.dialect import QueryLeafDialect


def engine_url(uri: str, database: str) -> str:
    """The queryleaf:// URL of a MongoDB URI ``mongodb://user:pw@host:port/?options``."""
    head, _, options = uri.partition("/?")
    return head.replace("mongodb://", "queryleaf://", 1) + f"/{database}?{options}"


@pytest.fixture()
def engine(server, dbname):
    eng = sa.create_engine(engine_url(server.uri, dbname))
    yield eng
    eng.dispose()
    with queryleaf.dbapi.connect(server.uri, database=dbname) as cleanup:
        cleanup.queryleaf.client.drop_database(dbname)


@pytest.fixture()
def strict_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pandas' "only supports SQLAlchemy connectable" too
        yield


def _connect_args(url: str) -> dict:
    return QueryLeafDialect().create_connect_args(sa.make_url(url))[1]


# ---------------------------------------------------------------- URLs and the DB-API


def test_the_entry_point_dialect_wraps_queryleaf_dbapi():
    eng = sa.create_engine("queryleaf:///")  # connects lazily: nothing starts here
    assert type(eng.dialect) is QueryLeafDialect
    assert eng.dialect.dbapi is queryleaf.dbapi
    assert eng.dialect.paramstyle == queryleaf.dbapi.paramstyle == "named"
    assert eng.dialect.supports_statement_cache


def test_urls_become_connect_arguments():
    assert _connect_args("queryleaf:///?data_dir=/srv/ql") == {
        "uri": None,
        "database": None,
        "data_dir": "/srv/ql",
    }
    assert _connect_args("queryleaf:///shop")["database"] == "shop"
    args = _connect_args(
        "queryleaf://ann:p%40ss@db1:27017/shop?replicaSet=rs0&readPreference=secondary"
    )
    assert args == {
        "uri": "mongodb://ann:p%40ss@db1:27017/shop?replicaSet=rs0&readPreference=secondary",
        "database": "shop",
    }
    assert _connect_args("queryleaf://db1/shop")["uri"] == "mongodb://db1/shop"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("queryleaf:///?replicaSet=rs0", "takes only"),
        ("queryleaf://db1/shop?data_dir=/x", "data_dir is for the embedded server"),
    ],
)
def test_urls_that_mix_the_two_modes_are_refused(url, message):
    with pytest.raises(sa.exc.ArgumentError, match=message):
        _connect_args(url)


def test_the_embedded_default(data_dir):  # noqa: F811
    eng = sa.create_engine(f"queryleaf:///shop?data_dir={data_dir}")
    try:
        with eng.connect() as conn:
            conn.execute(sa.text("INSERT INTO t (a) VALUES (1)"))
            assert conn.execute(sa.text("SELECT a FROM t")).all() == [(1,)]
            assert conn.connection.dbapi_connection.queryleaf.database_name == "shop"
    finally:
        eng.dispose()


# ---------------------------------------------------------------- compiled SQL

METADATA = sa.MetaData()
ITEMS = sa.Table(
    "items",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(20), nullable=False),
    sa.Column("key", sa.Text),  # a queryleaf keyword: quoted
    sa.Column("unit price", sa.Float),  # a name no parameter can have
    sa.Column("ok", sa.Boolean),
    sa.Column("at", sa.DateTime(timezone=True)),
)


def _sql(statement, engine) -> str:
    return " ".join(str(statement.compile(engine)).split())


def test_core_statements_compile_to_queryleaf_sql(engine):
    query = (
        sa.select(ITEMS.c.id, ITEMS.c.key)
        .where(ITEMS.c.ok == sa.true(), ITEMS.c["unit price"] > 2)
        .order_by(ITEMS.c.id.desc())
        .limit(2)
        .offset(1)
    )
    assert _sql(query, engine) == (
        'SELECT items.id, items."key" FROM items WHERE items.ok = true AND '
        'items."unit price" > :unit_price_1 ORDER BY items.id DESC LIMIT :param_1 '
        "OFFSET :param_2"
    )
    assert _sql(sa.select(ITEMS.c.id).offset(3), engine).endswith("FROM items OFFSET :param_1")
    assert _sql(sa.schema.CreateTable(ITEMS), engine) == (
        'CREATE TABLE items ( id INTEGER NOT NULL, name VARCHAR(20) NOT NULL, "key" TEXT, '
        '"unit price" DOUBLE, ok BOOLEAN, at TIMESTAMP, PRIMARY KEY (id) )'
    )


@pytest.mark.parametrize(
    ("column", "message"),
    [
        (sa.Column("a", sa.Integer, server_default="1"), "no DEFAULT"),
        (sa.Column("a", sa.Time), "no TIME type"),
        (sa.Column("a", sa.Integer, sa.Identity()), "no IDENTITY"),
        (sa.Column("a", sa.Integer, sa.CheckConstraint("a > 0")), "no CHECK"),
    ],
)
def test_ddl_queryleaf_cannot_store_is_a_compile_error(engine, column, message):
    table = sa.Table("bad", sa.MetaData(), column)
    with pytest.raises(sa.exc.CompileError, match=message):
        sa.schema.CreateTable(table).compile(engine)


def test_create_index_is_a_compile_error(engine):
    table = sa.Table("indexed", sa.MetaData(), sa.Column("a", sa.Integer))
    index = sa.Index("ix", table.c.a)
    with pytest.raises(sa.exc.CompileError, match="no CREATE INDEX"):
        sa.schema.CreateIndex(index).compile(engine)


# ---------------------------------------------------------------- Core against the server


def test_core_create_insert_select_update_delete_drop(engine):
    at = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    METADATA.create_all(engine)
    rows = [
        {"id": i, "name": f"n{i}", "key": "k", "unit price": i * 1.5, "ok": i % 2 == 0, "at": at}
        for i in range(5)
    ]
    with engine.begin() as conn:
        conn.execute(ITEMS.insert(), rows)
        query = (
            sa.select(ITEMS.c.id, ITEMS.c.key, ITEMS.c.at)
            .where(ITEMS.c.ok == sa.true(), ITEMS.c.id.in_([0, 2, 4]))
            .order_by(ITEMS.c.id.desc())
            .limit(2)
            .offset(1)
        )
        assert conn.execute(query).all() == [(2, "k", at), (0, "k", at)]
        count = sa.select(sa.func.count()).select_from(ITEMS).where(ITEMS.c["unit price"] > 2)
        assert conn.execute(count).scalar() == 3
        assert conn.execute(ITEMS.update().where(ITEMS.c.id == 1).values(name="x")).rowcount == 1
        assert conn.execute(ITEMS.delete().where(ITEMS.c.id >= 3)).rowcount == 2
        names = conn.execute(sa.select(ITEMS.c.name).order_by(ITEMS.c.id)).scalars().all()
        assert names == ["n0", "x", "n2"]
        with pytest.raises(sa.exc.IntegrityError, match="column name: type did not match"):
            conn.execute(ITEMS.insert().values(id=9, name=None))
    reflected = [(c["name"], str(c["type"])) for c in sa.inspect(engine).get_columns("items")]
    assert reflected[:3] == [("_id", "TEXT"), ("id", "INTEGER"), ("name", "VARCHAR(20)")]
    assert reflected[3:] == [
        ("key", "TEXT"),
        ("unit price", "DOUBLE"),
        ("ok", "BOOLEAN"),
        ("at", "TIMESTAMP"),
    ]
    METADATA.drop_all(engine)
    assert not sa.inspect(engine).has_table("items")


def test_declared_types_read_back_from_a_validator_description():
    assert str(declared_sqlalchemy_type("NUMERIC(10, 2)")) == "NUMERIC(10, 2)"
    assert str(declared_sqlalchemy_type("DATE")) == "DATE"
    assert declared_sqlalchemy_type("the age of the user") is None  # a validator by hand


def test_transactions_commit_per_statement_unless_repeatable_read(engine):
    with engine.connect() as conn:
        conn.execute(sa.text("INSERT INTO t (a) VALUES (1)"))
        conn.rollback()  # AUTOCOMMIT: the insert committed when it ran
        assert conn.execute(sa.text("SELECT COUNT(*) FROM t")).scalar() == 1
    snapshot = engine.execution_options(isolation_level="REPEATABLE READ")
    with snapshot.connect() as conn:
        assert conn.get_isolation_level() == "REPEATABLE READ"
        conn.execute(sa.text("INSERT INTO t (a) VALUES (2)"))
        conn.rollback()
        conn.execute(sa.text("INSERT INTO t (a) VALUES (3)"))
        conn.commit()
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT a FROM t ORDER BY a")).scalars().all()
        assert rows == [1, 3]
        assert conn.get_isolation_level() == "AUTOCOMMIT"


# ---------------------------------------------------------------- reflection


def test_reflection(engine):
    with engine.begin() as conn:
        conn.execute(
            sa.text("CREATE TABLE declared (id BIGINT PRIMARY KEY, name VARCHAR(5) NOT NULL)")
        )
        conn.execute(
            sa.text("INSERT INTO sampled (n, f, s, d) VALUES (1, 1.5, 'a', JSON_OBJECT('x', 1))")
        )
        conn.execute(sa.text("CREATE VIEW v AS SELECT n FROM sampled"))
        ql = conn.connection.dbapi_connection.queryleaf
        ql.db.sampled.create_index([("s", 1), ("n", -1)], name="s_n", unique=True)
    inspector = sa.inspect(engine)
    assert inspector.get_table_names() == ["declared", "sampled"]
    assert inspector.get_view_names() == ["v"]
    assert inspector.has_table("sampled") and inspector.has_table("v")
    assert not inspector.has_table("nope") and not inspector.has_table("__queryleaf_event_log")
    columns = {
        c["name"]: (type(c["type"]), c["nullable"]) for c in inspector.get_columns("sampled")
    }
    assert columns == {
        "_id": (sa.TEXT, False),
        "n": (sa.INTEGER, True),
        "f": (sa.DOUBLE, True),
        "s": (sa.TEXT, True),
        "d": (sa.JSON, True),
    }
    declared = [
        (c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns("declared")
    ]
    assert declared == [("id", "BIGINT", False), ("name", "VARCHAR(5)", False)]  # the validator
    assert inspector.get_pk_constraint("declared")["constrained_columns"] == ["id"]
    assert inspector.get_pk_constraint("sampled")["constrained_columns"] == ["_id"]
    assert inspector.get_indexes("sampled") == [
        {
            "name": "s_n",
            "column_names": ["s", "n"],
            "unique": True,
            "column_sorting": {"n": ("desc",)},
        }
    ]
    assert inspector.get_indexes("declared") == [] and inspector.get_foreign_keys("sampled") == []
    schemas = inspector.get_schema_names()  # the server's databases (other tests' too)
    assert engine.url.database in schemas and "admin" not in schemas
    with pytest.raises(sa.exc.NoSuchTableError):
        inspector.get_columns("nope")
    table = sa.Table("sampled", sa.MetaData(), autoload_with=engine)
    with engine.connect() as conn:
        assert conn.execute(sa.select(table.c.s, table.c.n)).all() == [("a", 1)]


# ---------------------------------------------------------------- pandas


FRAME = pd.DataFrame(
    {
        "i": [1, 2, 3],
        "f": [1.5, float("nan"), 3.0],
        "b": [True, False, True],
        "s": ["a", None, "c"],
        "d": pd.to_datetime(["2026-01-01 00:00:00", "2026-01-02 03:04:05", None], utc=True),
    }
)


def test_pandas_read_sql_dtypes_without_warnings(engine, strict_warnings):
    FRAME.to_sql("frame", engine, if_exists="replace", index=False)
    for read in (pd.read_sql, pd.read_sql_query):
        df = read("SELECT i, f, b, s, d FROM frame ORDER BY i", engine)
        assert df["i"].dtype == "int64" and df["f"].dtype == "float64"
        assert df["b"].dtype == "bool"
        assert pd.api.types.is_string_dtype(df["s"])  # pandas 3: str; pandas 2: object
        assert isinstance(df["d"].dtype, pd.DatetimeTZDtype) and str(df["d"].dt.tz) == "UTC"
        pd.testing.assert_frame_equal(df, FRAME, check_dtype=False)
    low = FRAME["i"].min()  # a NumPy int64
    params = pd.read_sql_query("SELECT i FROM frame WHERE i > :low", engine, params={"low": low})
    assert params["i"].tolist() == [2, 3]


def test_pandas_to_sql_append_replace_fail(engine, strict_warnings):
    FRAME.to_sql("frame", engine, if_exists="replace", index=False)
    FRAME.to_sql("frame", engine, if_exists="append", index=False)
    assert pd.read_sql("SELECT COUNT(*) AS n FROM frame", engine)["n"].tolist() == [6]
    FRAME.to_sql("frame", engine, if_exists="replace", index=False)
    back = pd.read_sql("SELECT i, f, b, s, d FROM frame ORDER BY i", engine)
    pd.testing.assert_frame_equal(back, FRAME, check_dtype=False)
    with pytest.raises(ValueError, match="already exists"):
        FRAME.to_sql("frame", engine, if_exists="fail", index=False)
    # the table to_sql created checks its columns' types
    with engine.connect() as conn, pytest.raises(sa.exc.IntegrityError, match="column i"):
        conn.execute(sa.text("INSERT INTO frame (i) VALUES ('x')"))


def test_pandas_writes_decimals_and_dates(engine, strict_warnings):
    frame = pd.DataFrame(
        {"price": [Decimal("9.99"), Decimal("0.10")], "day": [dt.date(2026, 1, 2), None]}
    )
    # pandas declares a column of Decimals TEXT unless told otherwise (as for any database)
    frame.to_sql("prices", engine, if_exists="replace", index=False, dtype={"price": sa.Numeric})
    back = pd.read_sql("SELECT price, day FROM prices ORDER BY price", engine)
    assert back["price"].dtype == "float64"  # pandas' coerce_float
    exact = pd.read_sql("SELECT price FROM prices ORDER BY price", engine, coerce_float=False)
    assert exact["price"].tolist() == [Decimal("0.10"), Decimal("9.99")]
    assert back["day"].tolist()[1] == pd.Timestamp("2026-01-02", tz="UTC")


def test_numpy_and_pandas_values_as_parameters(engine):
    values = {
        "n": np.int64(7),
        "ok": np.bool_(True),
        "at": np.datetime64("2026-01-02T03:04:05.123456789"),
        "ts": pd.Timestamp("2026-01-02 03:04:05", tz="Europe/Paris"),
        "gone": pd.NaT,
    }
    with engine.connect() as conn:
        conn.execute(
            sa.text("INSERT INTO t (n, ok, at, ts, gone) VALUES (:n, :ok, :at, :ts, :gone)"), values
        )
        row = conn.execute(sa.text("SELECT n, ok, at, ts, gone FROM t")).one()
    assert row == (
        7,
        True,
        dt.datetime(2026, 1, 2, 3, 4, 5, 123000, tzinfo=dt.UTC),
        dt.datetime(2026, 1, 2, 2, 4, 5, tzinfo=dt.UTC),
        None,
    )


def test_executemany_inserts_send_one_multi_row_insert_per_page(engine):
    sent: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *args: sent.append(args[2]))
    table = sa.Table("many", sa.MetaData(), sa.Column("a", sa.Integer))
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"a": i} for i in range(2500)])
    inserts = [s for s in sent if s.startswith("INSERT")]
    assert len(inserts) == 3 and inserts[0].count("), (") == 999
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM many")).scalar() == 2500


class Colour(enum.Enum):
    red = "r"
    green = "g"


def test_foreign_keys_uuids_enums_json_and_binary_round_trip(engine):
    metadata = sa.MetaData()
    parent = sa.Table("parent", metadata, sa.Column("id", sa.Integer, primary_key=True))
    child = sa.Table(
        "child",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("parent_id", sa.ForeignKey("parent.id")),  # left out of CREATE TABLE
        sa.Column("u", sa.Uuid),
        sa.Column("colour", sa.Enum(Colour)),
        sa.Column("doc", sa.JSON),  # stored as a document, not as JSON text
        sa.Column("raw", sa.LargeBinary),
    )
    metadata.create_all(engine)
    row = {
        "id": 1,
        "parent_id": 7,
        "u": uuid.UUID(int=5),
        "colour": Colour.green,
        "doc": {"x": [1, 2]},
        "raw": b"\x00\x01",
    }
    with engine.begin() as conn:
        conn.execute(parent.insert(), [{"id": 7}])
        conn.execute(child.insert(), [row])
        assert conn.execute(sa.select(child)).one()._asdict() == row
        stored = conn.connection.dbapi_connection.queryleaf.db.child.find_one()
        assert stored["doc"] == {"x": [1, 2]}
    frame = pd.read_sql_table("child", engine)
    assert frame.loc[0, "doc"] == {"x": [1, 2]} and frame.loc[0, "colour"] == "green"
    metadata.drop_all(engine)
    assert sa.inspect(engine).get_table_names() == []


def test_schemas_are_databases_and_views_show_their_pipeline(engine, ql):
    other = ql.client[f"{ql.database_name}_other"]
    other.things.insert_one({"_id": 1, "name": "x"})
    ql.execute("INSERT INTO orders (_id, total) VALUES (1, 150), (2, 50)")
    ql.execute("CREATE VIEW big AS SELECT _id, total FROM orders WHERE total > 100")
    try:
        inspector = sa.inspect(engine)
        assert other.name in inspector.get_schema_names()
        assert inspector.get_table_names(schema=other.name) == ["things"]
        columns = inspector.get_columns("things", schema=other.name)
        assert [c["name"] for c in columns] == ["_id", "name"]
        definition = inspector.get_view_definition("big")
        assert definition.startswith("db.createView('big', 'orders', [") and "$match" in definition
        with pytest.raises(sa.exc.NoSuchTableError):
            inspector.get_view_definition("orders")
    finally:
        ql.client.drop_database(other.name)
