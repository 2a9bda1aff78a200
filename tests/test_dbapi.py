"""The PEP 249 module against the embedded server."""

from __future__ import annotations

import datetime

import pytest

import queryleaf.dbapi as dbapi
from queryleaf.column_types import ColumnType


@pytest.fixture()
def conn(server, dbname):
    c = dbapi.connect(server.uri, database=dbname)
    ql = c.queryleaf
    yield c
    with dbapi.connect(server.uri, database=dbname) as cleanup:
        cleanup.queryleaf.client.drop_database(ql.database_name)
    c.close()


def test_module_globals():
    assert (dbapi.apilevel, dbapi.paramstyle, dbapi.threadsafety) == ("2.0", "named", 1)


def test_execute_fetch_description_rowcount(conn):
    cur = conn.cursor()
    cur.execute("INSERT INTO users (name, age) VALUES ('ann', 30), ('bob', 25), ('cy', NULL)")
    assert cur.rowcount == 3 and cur.description is None
    cur.execute("SELECT name, age FROM users WHERE age >= :a ORDER BY name", {"a": 20})
    assert [d[0] for d in cur.description] == ["name", "age"]
    assert cur.fetchone() == ("ann", 30)
    assert cur.fetchall() == [("bob", 25)]
    assert cur.fetchone() is None
    cur.execute("SELECT name FROM users ORDER BY name")
    assert cur.fetchmany(2) == [("ann",), ("bob",)]
    assert list(cur) == [("cy",)]
    cur.executemany("UPDATE users SET age = ? WHERE name = ?", [[1, "ann"], [2, "bob"]])
    assert cur.rowcount == 2


def test_errors_map_to_pep249_classes(conn):
    cur = conn.cursor()
    with pytest.raises(dbapi.ProgrammingError, match="^QL1001: unexpected") as info:
        cur.execute("SELEC 1")
    assert info.value.error_code == "QL1001"
    with pytest.raises(dbapi.ProgrammingError, match="^QL2001: unknown table nope") as info:
        cur.execute("SELECT a FROM nope")
    assert info.value.error_code == "QL2001"
    conn.queryleaf.db.u.create_index("k", unique=True)
    cur.execute("INSERT INTO u (k) VALUES (1)")
    with pytest.raises(dbapi.IntegrityError, match="^QL3002: ") as info:
        cur.execute("INSERT INTO u (k) VALUES (1)")
    assert info.value.error_code == "QL3002"
    with pytest.raises(dbapi.ProgrammingError, match="no rows") as info:
        cur.fetchall()
    assert info.value.error_code is None  # the interface's own error: no queryleaf code
    with pytest.raises(dbapi.NotSupportedError):
        conn.rollback()
    conn.commit()
    conn.close()
    with pytest.raises(dbapi.InterfaceError):
        conn.cursor().execute("SELECT 1")


# ---------------------------------------------------------------- transactions


@pytest.fixture()
def manual(server, dbname):
    """A connection with autocommit off: statements run in a transaction commit() ends."""
    c = dbapi.connect(server.uri, database=dbname, autocommit=False)
    yield c
    c.close()


def _stored(conn, table: str = "t") -> list:
    return sorted(d["_id"] for d in conn.queryleaf.db[table].find())


def test_autocommit_is_the_default(conn):
    assert conn.autocommit is True
    conn.cursor().execute("INSERT INTO t (_id) VALUES (1)")
    assert conn.queryleaf.in_transaction is False


def test_commit_and_rollback_without_autocommit(manual, conn):
    assert manual.autocommit is False
    cur = manual.cursor()
    cur.execute("INSERT INTO t (_id) VALUES (1), (2)")
    assert manual.queryleaf.in_transaction
    cur.execute("SELECT COUNT(*) FROM t")
    assert cur.fetchone() == (2,)
    assert _stored(conn) == []
    manual.commit()
    assert _stored(conn) == [1, 2]
    cur.execute("DELETE FROM t WHERE _id = 1")  # a new transaction begins implicitly
    cur.execute("INSERT INTO t (_id) VALUES (3)")
    manual.rollback()
    assert _stored(conn) == [1, 2]
    manual.rollback()  # nothing to undo: not an error
    manual.commit()


def test_an_error_without_autocommit_needs_a_rollback(manual, conn):
    cur = manual.cursor()
    cur.execute("INSERT INTO t (_id) VALUES (1)")
    with pytest.raises(dbapi.IntegrityError):
        cur.execute("INSERT INTO t (_id) VALUES (1)")
    with pytest.raises(dbapi.InternalError, match="current transaction is aborted"):
        cur.execute("SELECT _id FROM t")
    with pytest.raises(dbapi.InternalError, match="aborted by an earlier error"):
        manual.commit()
    assert _stored(conn) == []
    cur.execute("INSERT INTO t (_id) VALUES (2)")
    manual.commit()
    assert _stored(conn) == [2]


def test_views_are_refused_without_autocommit(manual):
    with pytest.raises(dbapi.ProgrammingError, match="CREATE VIEW cannot run inside a transaction"):
        manual.cursor().execute("CREATE VIEW v AS SELECT 1 AS x")
    manual.rollback()
    manual.autocommit = True
    manual.cursor().execute("CREATE VIEW v AS SELECT 1 AS x")


def test_autocommit_cannot_change_inside_a_transaction(manual):
    manual.cursor().execute("INSERT INTO t (_id) VALUES (1)")
    with pytest.raises(dbapi.ProgrammingError, match="a transaction is open"):
        manual.autocommit = True
    manual.commit()
    manual.autocommit = True
    assert manual.autocommit and not manual.queryleaf.autobegin


def test_close_rolls_back_and_sql_begin_works_in_autocommit_mode(server, dbname, conn):
    closing = dbapi.connect(server.uri, database=dbname, autocommit=False)
    closing.cursor().execute("INSERT INTO t (_id) VALUES (1)")
    closing.close()
    assert _stored(conn) == []
    cur = conn.cursor()
    cur.execute("BEGIN")
    cur.execute("INSERT INTO t (_id) VALUES (2)")
    conn.rollback()  # ends the transaction SQL opened
    assert _stored(conn) == []
    with pytest.raises(dbapi.NotSupportedError, match="autocommit mode"):
        conn.rollback()


def test_a_write_conflict_is_an_operational_error(manual, server, dbname):
    with dbapi.connect(server.uri, database=dbname, autocommit=False) as rival:
        manual.cursor().execute("INSERT INTO t (_id, v) VALUES (1, 0)")
        manual.commit()
        manual.cursor().execute("UPDATE t SET v = 1")
        with pytest.raises(dbapi.OperationalError, match="WriteConflict"):
            rival.cursor().execute("UPDATE t SET v = 2")
        rival.rollback()
        manual.commit()


def test_description_type_codes_compare_to_the_type_objects(conn):
    cur = conn.cursor()
    cur.execute(
        "INSERT INTO t (i, big, f, s, ok, at, doc) VALUES "
        "(1, 5000000000, 1.5, 'a', TRUE, :at, :doc)",
        {"at": datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC), "doc": {"x": 1}},
    )
    cur.execute("SELECT i, big, f, s, ok, at, doc, NULL AS nothing FROM t")
    codes = [d[1] for d in cur.description]
    assert codes == [
        ColumnType.INTEGER,
        ColumnType.BIGINT,
        ColumnType.DOUBLE,
        ColumnType.TEXT,
        ColumnType.BOOLEAN,
        ColumnType.TIMESTAMP,
        ColumnType.DOCUMENT,
        ColumnType.TEXT,  # only NULLs
    ]
    assert codes[0] == dbapi.NUMBER and dbapi.NUMBER == codes[1] and codes[2] == dbapi.NUMBER
    assert codes[3] == dbapi.STRING and codes[3] != dbapi.NUMBER
    assert codes[5] == dbapi.DATETIME and codes[5] != dbapi.STRING
    assert ColumnType.BINARY == dbapi.BINARY and ColumnType.TEXT != dbapi.ROWID
    assert len({dbapi.STRING, dbapi.NUMBER, dbapi.DATETIME, dbapi.BINARY, dbapi.ROWID}) == 5
