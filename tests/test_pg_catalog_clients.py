"""psql and SQLAlchemy's PostgreSQL dialect reading the catalog through the wire server.

Skipped until the wire server (queryleaf/pg/server.py) is present. The server is started as
``queryleaf --uri URI --db DB serve --pg 127.0.0.1:PORT --pg-trust`` (docs/connectors.md); the
catalog's answers themselves are tested without a server in tests/test_pg_catalog.py.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("queryleaf.pg.server")

PSQL = shutil.which("psql")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture()
def wire(server, ql):
    ql.db.orders.insert_many(
        [
            {"_id": "o1", "customer": "ann", "total": 120.5, "qty": 2},
            {"_id": "o2", "customer": "bob", "total": 80, "qty": 1},
        ]
    )
    ql.db.orders.create_index("customer")
    ql.db.customers.insert_one({"_id": "c1", "name": "ann"})
    ql.execute("CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100")
    port = _free_port()
    command = [sys.executable, "-m", "queryleaf", "--uri", server.uri, "--db", ql.db.name]
    command += ["serve", "--pg", f"127.0.0.1:{port}", "--pg-trust"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"the wire server did not start: {output}")
            time.sleep(0.1)
    yield port, ql.db.name
    process.terminate()
    process.wait(timeout=10)


def psql(port: int, database: str, command: str) -> str:
    assert PSQL, "psql (Debian's postgresql-client) is required"
    done = subprocess.run(
        [PSQL, "-h", "127.0.0.1", "-p", str(port), "-U", "tester", "-d", database, "-X"]
        + ["-v", "ON_ERROR_STOP=1", "-c", command],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PGCONNECT_TIMEOUT": "10"},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.skipif(PSQL is None, reason="psql is not installed")
def test_psql_dt_and_d(wire):
    port, database = wire
    listing = psql(port, database, r"\dt")
    assert "customers | table" in listing and "orders    | table" in listing
    assert "big_orders" not in listing
    assert "big_orders | view" in psql(port, database, r"\d")
    described = psql(port, database, r"\d orders")
    assert 'Table "public.orders"' in described
    for line in ("customer | text", "total    | double precision", "qty      | integer"):
        assert line in described
    assert '"_id_" PRIMARY KEY, btree (_id)' in described
    assert '"customer_1" btree (customer)' in described


def test_sqlalchemy_postgresql_dialect_inspection(wire):
    sqlalchemy = pytest.importorskip("sqlalchemy")
    pytest.importorskip("psycopg")
    port, database = wire
    engine = sqlalchemy.create_engine(f"postgresql+psycopg://tester@127.0.0.1:{port}/{database}")
    try:
        inspector = sqlalchemy.inspect(engine)
        assert sorted(inspector.get_table_names()) == ["customers", "orders"]
        assert inspector.get_view_names() == ["big_orders"]
        assert inspector.has_table("orders") and not inspector.has_table("nope")
        columns = {c["name"]: c for c in inspector.get_columns("orders")}
        assert list(columns) == ["_id", "customer", "total", "qty"]
        assert str(columns["qty"]["type"]) == "INTEGER"
        assert str(columns["total"]["type"]) == "DOUBLE PRECISION"
        assert columns["_id"]["nullable"] is False
        assert inspector.get_indexes("orders") == [
            {
                "name": "customer_1",
                "unique": False,
                "column_names": ["customer"],
                "dialect_options": {"postgresql_include": []},
            }
        ]
        assert inspector.get_pk_constraint("orders")["constrained_columns"] == ["_id"]
        assert inspector.get_foreign_keys("orders") == []
    finally:
        engine.dispose()


def test_sqlalchemy_reflects_the_metadata(wire):
    sqlalchemy = pytest.importorskip("sqlalchemy")
    pytest.importorskip("psycopg")
    port, database = wire
    engine = sqlalchemy.create_engine(f"postgresql+psycopg://tester@127.0.0.1:{port}/{database}")
    try:
        metadata = sqlalchemy.MetaData()
        metadata.reflect(engine, views=True)
        assert sorted(metadata.tables) == ["big_orders", "customers", "orders"]
        orders = metadata.tables["orders"]
        assert orders.primary_key.columns.keys() == ["_id"]
        assert [index.name for index in orders.indexes] == ["customer_1"]
    finally:
        engine.dispose()
