"""The PEP 249 module against the embedded server."""

from __future__ import annotations

import pytest

import queryleaf.dbapi as dbapi


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
