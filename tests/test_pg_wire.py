"""The PostgreSQL wire server with real clients: psql and psycopg 3 (issue 12, items 1 and 3;
docs/connectors.md). The server runs in a thread of the test process, in front of the test
session's embedded MongoDB-wire server; each test's PostgreSQL database is its own database."""

from __future__ import annotations

import datetime as dt
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
import warnings
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from psycopg.types.json import Jsonb

from queryleaf.api import QueryLeaf
from queryleaf.cli.main import cli
from queryleaf.pg.auth import make_verifier
from queryleaf.pg.server import ConfigError, PgServer


def _start(server: Any, **options: Any) -> PgServer:
    options.setdefault("trust", not options.get("users"))
    pg = PgServer(lambda database: QueryLeaf(server.uri, database), "127.0.0.1", 0, **options)
    pg.start()
    return pg


@pytest.fixture()
def pg(server, ql):
    srv = _start(server)
    yield srv
    srv.stop()


def _connect(pg: PgServer, dbname: str, **kwargs: Any) -> psycopg.Connection:
    kwargs.setdefault("autocommit", True)
    return psycopg.connect(
        host="127.0.0.1", port=pg.port, user="tester", dbname=dbname, connect_timeout=10, **kwargs
    )


def _psql(pg: PgServer, dbname: str, *args: str, stdin: str | None = None):
    return subprocess.run(
        ["psql", "-X", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "tester", "-d", dbname, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


# ---------------------------------------------------------------- psql


def test_psql_runs_a_query_and_shows_typed_columns(pg, ql, dbname):
    ql.execute("INSERT INTO orders (_id, item, qty) VALUES (1, 'pen', 3), (2, 'ink', 10)")
    done = _psql(pg, dbname, "-A", "-c", "SELECT item, qty FROM orders ORDER BY _id")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["item|qty", "pen|3", "ink|10", "(2 rows)"]


def test_psql_draws_the_caret_under_the_offending_character(pg, ql, dbname):
    sql = "SELECT item\nFROM orders WHERE qty = = 3"
    done = _psql(pg, dbname, "-c", sql)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert lines[0].startswith("ERROR:  QL1001")
    caret_line = next(i for i, line in enumerate(lines) if line.strip() == "^")
    text = lines[caret_line - 1]
    assert text.endswith("FROM orders WHERE qty = = 3")
    assert text[lines[caret_line].index("^")] == "=" and text.index("= =") + 2 == lines[
        caret_line
    ].index("^")


def test_psql_stops_a_script_at_the_first_error(pg, ql, dbname):
    script = (
        "INSERT INTO t (_id) VALUES (1);\n"
        "SELECT nosuchfunction(_id) FROM t;\n"
        "INSERT INTO t (_id) VALUES (2);\n"
    )
    done = _psql(pg, dbname, "-v", "ON_ERROR_STOP=1", stdin=script)
    assert done.returncode == 3, done.stderr
    assert [d["_id"] for d in ql.db.t.find()] == [1]


# ---------------------------------------------------------------- psycopg


def test_psycopg_extended_protocol_binds_typed_parameters(pg, ql, dbname):
    when = dt.datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=dt.UTC)
    with _connect(pg, dbname) as conn:
        conn.execute(
            "INSERT INTO things (_id, name, n, big, x, ok, price, at, doc, raw) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                1,
                "a'b",
                42,
                2**40,
                1.5,
                True,
                Decimal("12.30"),
                when,
                Jsonb({"k": [1, 2]}),
                b"\x00\x01",
            ),
        )
        for binary in (False, True):
            cur = conn.cursor(binary=binary)
            cur.execute(
                "SELECT name, n, big, x, ok, price, at, doc, raw FROM things WHERE _id = %s",
                (1,),
            )
            assert [c.type_code for c in cur.description] == [
                25,
                23,
                20,
                701,
                16,
                1700,
                1184,
                3802,
                17,
            ]
            assert cur.fetchall() == [
                ("a'b", 42, 2**40, 1.5, True, Decimal("12.30"), when, {"k": [1, 2]}, b"\x00\x01")
            ]
    stored = ql.db.things.find_one({"_id": 1})
    assert stored["price"].to_decimal() == Decimal("12.30") and stored["big"] == 2**40


@pytest.mark.parametrize("placeholder", ["%t", "%b"])  # text or binary parameters
def test_parameters_in_text_and_binary_format(pg, ql, dbname, placeholder):
    when = dt.datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC)
    values = (7, 2**40, 0.25, True, Decimal("-0.000123"), when, Jsonb({"a": {"b": None}}),
              b"\xff\x00", "text é", 3)  # fmt: skip
    names = "_id, big, x, ok, price, at, doc, raw, name, small"
    with _connect(pg, dbname) as conn:
        marks = ", ".join([placeholder] * len(values))
        conn.execute(f"INSERT INTO things ({names}) VALUES ({marks})", values)
        got = conn.execute(f"SELECT {names} FROM things WHERE _id = {placeholder}", (7,))
        row = got.fetchone()
    assert row == (7, 2**40, 0.25, True, Decimal("-0.000123"), when, {"a": {"b": None}},
                   b"\xff\x00", "text é", 3)  # fmt: skip
    stored = ql.db.things.find_one({"_id": 7})
    assert stored["at"] == when and stored["doc"] == {"a": {"b": None}}


def test_timestamps_in_postgresql_text_form(pg, ql, dbname):
    ql.db.times.insert_many(
        [
            {"_id": 1, "at": dt.datetime(2024, 1, 2, 3, 4, 5, 678000)},
            {"_id": 2, "at": dt.datetime(2024, 1, 2, 3, 4, 5)},
        ]
    )
    done = _psql(pg, dbname, "-A", "-t", "-c", "SELECT at FROM times ORDER BY _id")
    assert done.stdout.splitlines() == ["2024-01-02 03:04:05.678+00", "2024-01-02 03:04:05+00"]


def test_parameters_stay_values_never_operators(pg, ql, dbname):
    ql.execute("INSERT INTO users (_id, name) VALUES (1, 'ann'), (2, 'bob')")
    with _connect(pg, dbname) as conn:
        rows = conn.execute("SELECT _id FROM users WHERE name = %s", ('{"$ne": null}',)).fetchall()
        assert rows == []
        rows = conn.execute("SELECT _id FROM users WHERE name = %s", (Jsonb({"$ne": None}),))
        assert rows.fetchall() == []
        assert conn.execute("SELECT _id FROM users WHERE name = %s", ("bob",)).fetchall() == [(2,)]


def test_simple_protocol_and_command_tags(pg, ql, dbname):
    with _connect(pg, dbname, cursor_factory=psycopg.ClientCursor) as conn:
        cur = conn.execute("INSERT INTO t (_id, v) VALUES (1, 'x'), (2, 'y')")
        assert cur.statusmessage == "INSERT 0 2"
        assert conn.execute("UPDATE t SET v = 'z' WHERE _id = 1").statusmessage == "UPDATE 1"
        cur = conn.execute("SELECT v FROM t ORDER BY _id")
        assert cur.fetchall() == [("z",), ("y",)] and cur.statusmessage == "SELECT 2"
        assert conn.execute("DELETE FROM t").statusmessage == "DELETE 2"


def test_server_side_cursor_streams_100000_rows_with_flat_memory(pg, ql, dbname):
    rows = 100_000
    pad = "x" * 200
    ql.db.big.insert_many([{"_id": i, "pad": pad} for i in range(rows)])
    # Read whole, these rows hold over 40 MB in Python objects: streamed, the server holds
    # one MongoDB batch and one itersize of rows at a time.
    tracemalloc.start()
    try:
        with _connect(pg, dbname) as conn:
            with conn.cursor("all_rows", withhold=True) as cur:
                cur.itersize = 2000
                cur.execute("SELECT _id, pad FROM big ORDER BY _id")
                seen = 0
                for row in cur:
                    assert row[0] == seen
                    seen += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == rows
    assert peak < 15 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


def test_sql_cursors_declare_fetch_close(pg, ql, dbname):
    ql.execute("INSERT INTO t (_id) VALUES (1), (2), (3), (4), (5)")
    with _connect(pg, dbname, cursor_factory=psycopg.ClientCursor) as conn:
        declared = conn.execute(
            'DECLARE "My Cursor" NO SCROLL CURSOR FOR SELECT _id FROM t ORDER BY _id'
        )
        assert declared.statusmessage == "DECLARE CURSOR"
        assert conn.execute('FETCH NEXT FROM "My Cursor"').fetchall() == [(1,)]
        fetched = conn.execute('FETCH FORWARD 2 FROM "My Cursor"')
        assert fetched.fetchall() == [(2,), (3,)] and fetched.statusmessage == "FETCH 2"
        assert conn.execute('FETCH ALL IN "My Cursor"').fetchall() == [(4,), (5,)]
        assert conn.execute('CLOSE "My Cursor";').statusmessage == "CLOSE CURSOR"
        with pytest.raises(psycopg.errors.InvalidCursorName):
            conn.execute('FETCH 1 FROM "My Cursor"')


def test_execute_with_a_row_limit_suspends_the_portal(pg, ql, dbname):
    ql.execute("INSERT INTO t (_id) VALUES (1), (2), (3)")
    client = RawClient(pg.port, dbname)
    client.send(b"P", b"\0SELECT _id FROM t ORDER BY _id\0\0\0")
    client.send(b"B", b"p1\0\0" + struct.pack("!hhh", 0, 0, 0))
    client.send(b"E", b"p1\0" + struct.pack("!i", 2))
    client.send(b"E", b"p1\0" + struct.pack("!i", 2))
    client.send(b"S")
    kinds = client.read_until(b"Z")
    assert [k for k, _ in kinds] == [b"1", b"2", b"D", b"D", b"s", b"D", b"C", b"Z"]
    assert kinds[6][1] == b"SELECT 3\0"
    client.send(b"P", b"\0 -- nothing\0\0\0")
    client.send(b"B", b"\0\0" + struct.pack("!hhh", 0, 0, 0))
    client.send(b"E", b"\0" + struct.pack("!i", 0))
    client.send(b"S")
    assert [k for k, _ in client.read_until(b"Z")] == [b"1", b"2", b"I", b"Z"]
    client.close()


def test_a_value_that_does_not_fit_its_inferred_type(pg, ql, dbname):
    # The types come from the first server batch (1000 rows); the odd value comes later.
    rows = [{"_id": i, "qty": i} for i in range(1500)] + [{"_id": 1500, "qty": "many"}]
    ql.db.t.insert_many(rows)
    sql = "SELECT qty FROM t ORDER BY _id"
    with _connect(pg, dbname) as conn:
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="ask for text format"):
            conn.cursor(binary=True).execute(sql).fetchall()
        with pytest.raises(ValueError):  # sent as text: psycopg cannot read it as an int4
            conn.execute(sql).fetchall()
        assert conn.execute("SELECT COUNT(*) AS n FROM t").fetchone() == (1501,)
    done = _psql(pg, dbname, "-A", "-t", "-c", sql)
    assert done.returncode == 0 and done.stdout.split()[-1] == "many"


def test_transaction_statements_in_postgresql_forms(pg, ql, dbname):
    ql.db.create_collection("t")
    with _connect(pg, dbname, cursor_factory=psycopg.ClientCursor) as conn:
        conn.execute("START TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        conn.execute("INSERT INTO t (_id) VALUES (1)")
        assert conn.execute("END").statusmessage == "COMMIT"
        notices: list[str] = []
        conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
        assert conn.execute("ROLLBACK").statusmessage == "ROLLBACK"
        assert notices == ["there is no transaction in progress"]
        with pytest.raises(psycopg.errors.SyntaxError):
            psycopg.Cursor(conn).execute("BEGIN; SELECT %s AS one", (1,))  # one per Parse
    assert [d["_id"] for d in ql.db.t.find()] == [1]


def _row_description(body: bytes) -> list[tuple[str, int]]:
    count, at, fields = struct.unpack_from("!h", body)[0], 2, []
    for _ in range(count):
        end = body.index(b"\0", at)
        name, oid = body[at:end].decode(), struct.unpack_from("!i", body, end + 7)[0]
        fields.append((name, oid))
        at = end + 19
    return fields


def test_describe_of_a_statement_gives_its_columns(pg, ql, dbname):
    """What pgx (Grafana) and lib/pq read before binding: the statement's columns, found by
    running it with NULL parameters; its portals then send rows in that shape."""
    ql.execute("INSERT INTO t (_id, name) VALUES (1, 'pen'), (2, 'ink')")
    client = RawClient(pg.port, dbname)
    client.send(b"P", b"all\0SELECT _id, name FROM t ORDER BY _id\0\0\0")
    client.send(b"P", b"one\0SELECT name, _id FROM t WHERE _id = $1\0" + struct.pack("!hi", 1, 23))
    client.send(b"D", b"Sall\0")
    client.send(b"D", b"Sone\0")
    client.send(b"S")
    seen = client.read_until(b"Z")
    assert [k for k, _ in seen] == [b"1", b"1", b"t", b"T", b"t", b"T", b"Z"]
    assert _row_description(seen[3][1]) == [("_id", 23), ("name", 25)]
    assert seen[4][1] == struct.pack("!hi", 1, 23)
    assert _row_description(seen[5][1]) == [("name", 25), ("_id", 25)]  # no row: text
    client.send(b"B", b"\0one\0" + struct.pack("!hhi", 0, 1, 1) + b"2" + struct.pack("!h", 0))
    client.send(b"E", b"\0" + struct.pack("!i", 0))
    client.send(b"S")
    seen = client.read_until(b"Z")
    assert [k for k, _ in seen] == [b"2", b"D", b"C", b"Z"]
    assert seen[1][1] == struct.pack("!hi", 2, 3) + b"ink" + struct.pack("!i", 1) + b"2"
    client.close()


def test_copy_is_refused_with_a_clear_error(pg, ql, dbname):
    with _connect(pg, dbname) as conn:
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="COPY is not supported"):
            with conn.cursor().copy("COPY t FROM STDIN"):
                pass
        assert conn.execute("SELECT 1 AS one").fetchone() == (1,)


def test_transactions_commit_and_roll_back(pg, ql, dbname):
    ql.db.create_collection("t")
    with _connect(pg, dbname, autocommit=False) as conn:
        conn.execute("INSERT INTO t (_id) VALUES (%s)", (1,))
        conn.rollback()
        conn.execute("INSERT INTO t (_id) VALUES (%s)", (2,))
        conn.commit()
        with conn.transaction():
            conn.execute("INSERT INTO t (_id) VALUES (%s)", (3,))
    assert sorted(d["_id"] for d in ql.db.t.find()) == [2, 3]


def test_savepoints_around_reads_and_refused_after_a_write(pg, ql, dbname):
    with _connect(pg, dbname, autocommit=False) as conn:
        with conn.transaction():
            with conn.transaction():  # SAVEPOINT ... RELEASE (psycopg's nested transaction)
                conn.execute("SELECT 1 AS one").fetchall()
            conn.execute("SAVEPOINT before_read")
            conn.execute("SELECT 2 AS two").fetchall()
            conn.execute("ROLLBACK TO SAVEPOINT before_read")  # nothing written since: exact
            conn.execute("INSERT INTO orders (_id, item) VALUES (1, 'pen')")
        conn.execute("BEGIN")  # already begun by psycopg: a warning, as in PostgreSQL
        conn.execute("SAVEPOINT s")
        conn.execute("INSERT INTO orders (_id, item) VALUES (2, 'ink')")
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="no savepoints"):
            conn.execute("ROLLBACK TO s")
        conn.rollback()
    assert [r["_id"] for r in ql.execute("SELECT _id FROM orders").rows] == [1]


def test_pandas_to_sql_and_read_sql_over_sqlalchemys_postgresql_dialect(pg, ql, dbname):
    pd = pytest.importorskip("pandas")
    sa = pytest.importorskip("sqlalchemy")
    engine = sa.create_engine(f"postgresql+psycopg://tester@127.0.0.1:{pg.port}/{dbname}")
    frame = pd.DataFrame(
        {
            "id": [1, 2, 3],
            "name": ["a", "b", None],
            "x": [1.5, 2.5, None],
            "ok": [True, False, True],
            "at": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"], utc=True),
        }
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            # CREATE TABLE (in SQLAlchemy's transaction: committed implicitly, with a notice),
            # INSERT with $n::type casts, DEALLOCATE ALL after the DDL
            frame.to_sql("frames", engine, if_exists="replace", index=False)
            frame.to_sql("frames", engine, if_exists="append", index=False)
            back = pd.read_sql("SELECT id, name, x, ok, at FROM frames ORDER BY id", engine)
    finally:
        engine.dispose()
    assert len(back) == 6
    assert list(back.dtypes.astype(str)) == [
        "int64",
        "str",
        "float64",
        "bool",
        "datetime64[us, UTC]",
    ]
    assert back["name"].isna().sum() == 2 and back["at"].iloc[0] == frame["at"].iloc[0]
    validator = ql.db.command("listCollections", filter={"name": "frames"})["cursor"]["firstBatch"]
    assert "$jsonSchema" in validator[0]["options"]["validator"]


def test_catalog_changes_in_a_transaction_commit_it_first(pg, ql, dbname):
    notices: list[str] = []
    with _connect(pg, dbname, autocommit=False) as conn:
        conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
        conn.execute("INSERT INTO log (_id) VALUES (1)")
        conn.execute("CREATE TABLE made (id BIGINT, at TIMESTAMP WITH TIME ZONE)")
        conn.execute("INSERT INTO log (_id) VALUES (2)")
        conn.rollback()  # only what followed the CREATE TABLE is rolled back
        conn.execute("DEALLOCATE ALL")
    assert [d["_id"] for d in ql.db.log.find()] == [1]
    assert "made" in ql.db.list_collection_names()
    assert any("committed the open transaction first" in n for n in notices)


def test_cancel_stops_a_slow_query_and_the_connection_goes_on(pg, ql, dbname):
    ql.db.big.insert_many([{"_id": i, "g": i % 7} for i in range(1000)])
    other_took: list[float] = []

    def meanwhile(conn: psycopg.Connection) -> None:
        """While the slow query runs, another connection is answered at once; then cancel."""
        time.sleep(0.3)
        with _connect(pg, dbname) as other:
            started = time.monotonic()
            other.execute("SELECT _id FROM big WHERE _id = %s", (5,)).fetchall()
            other_took.append(time.monotonic() - started)
        conn.cancel_safe()

    with _connect(pg, dbname) as conn:
        helper = threading.Thread(target=meanwhile, args=(conn,))
        helper.start()
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("SELECT COUNT(*) AS n FROM big a JOIN big b ON a.g = b.g").fetchall()
        helper.join()
        assert time.monotonic() - started < 10
        assert other_took and other_took[0] < 1.5
        assert conn.execute("SELECT COUNT(*) AS n FROM big").fetchone() == (1000,)


def test_fifty_concurrent_connections_with_a_mixed_workload(pg, ql, dbname):
    ql.db.create_collection("events")
    errors: list[BaseException] = []

    def client(n: int) -> None:
        try:
            with _connect(pg, dbname) as conn:
                conn.execute(
                    "INSERT INTO events (_id, who, n) VALUES (%s, %s, %s)", (n, f"c{n}", n)
                )
                assert conn.execute("SELECT who FROM events WHERE _id = %s", (n,)).fetchone() == (
                    f"c{n}",
                )
                conn.execute("UPDATE events SET n = n + 1 WHERE _id = %s", (n,))
                conn.execute("SELECT COUNT(*) AS c FROM events").fetchone()
                with conn.cursor(f"c{n}", withhold=True) as cur:
                    cur.execute("SELECT _id FROM events ORDER BY _id")
                    cur.fetchmany(5)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert sorted(d["n"] for d in ql.db.events.find()) == list(range(1, 51))


def test_live_query_streams_rows_over_the_portal_until_cancelled(pg, ql, dbname):
    ql.db.create_collection("orders")
    sql = (
        "SELECT full_document.item AS item, full_document.qty AS qty "
        "FROM CHANGE_STREAM('orders') WHERE operation_type = 'insert' EMIT CHANGES"
    )
    seen: list[tuple[Any, ...]] = []

    def writes() -> None:
        time.sleep(0.5)
        ql.execute("INSERT INTO orders (_id, item, qty) VALUES (1, 'pen', 3)")
        ql.execute("INSERT INTO orders (_id, item, qty) VALUES (2, 'ink', 10)")

    writer = threading.Thread(target=writes, daemon=True)
    with _connect(pg, dbname) as conn:
        writer.start()
        with pytest.raises(psycopg.errors.QueryCanceled):
            for row in conn.cursor().stream(sql):
                seen.append(row)
                if len(seen) == 2:
                    conn.cancel_safe()
        assert conn.execute("SELECT 1 AS one").fetchone() == (1,)
    assert seen == [("pen", 3), ("ink", 10)]


def test_warnings_are_notices(pg, ql, dbname):
    ql.execute("INSERT INTO t (_id, a) VALUES (1, 2)")
    notices: list[str] = []
    with _connect(pg, dbname) as conn:
        conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
        assert conn.execute("SELECT nosuchcolumn FROM t").fetchall() == [(None,)]
    assert notices and "nosuchcolumn" in notices[0]


def test_queryleaf_serve_pg_with_uri_answers_psql(server, ql, dbname):
    from queryleaf.engine import free_port

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "queryleaf", "serve", "--pg", f"127.0.0.1:{port}", "--pg-trust",
         "--uri", server.uri],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert f"PostgreSQL protocol on 127.0.0.1:{port}" in line, line
        ql.execute("INSERT INTO t (_id) VALUES (7)")
        done = subprocess.run(
            ["psql", "-X", "-h", "127.0.0.1", "-p", str(port), "-d", dbname, "-A", "-t",
             "-c", "SELECT _id FROM t"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.stdout.strip() == "7", done.stderr
    finally:
        process.terminate()
        process.wait(30)


# ---------------------------------------------------------------- authentication and TLS


def test_serve_pg_refuses_to_start_without_a_way_to_authenticate(tmp_path):
    done = CliRunner().invoke(cli, ["serve", "--pg", "--data-dir", str(tmp_path / "data")])
    assert done.exit_code == 1
    assert "give --pg-users FILE (SCRAM-SHA-256), or --pg-trust on loopback" in done.output
    assert not (tmp_path / "data").exists()  # said before the embedded server was started


def test_scram_authentication_right_and_wrong_password(server, ql, dbname):
    srv = _start(server, users={"alice": make_verifier("s3cret")})
    try:
        with psycopg.connect(
            host="127.0.0.1", port=srv.port, user="alice", password="s3cret", dbname=dbname
        ) as conn:
            assert conn.execute("SELECT 1 AS one").fetchone() == (1,)
        for user, password in (("alice", "wrong"), ("nobody", "s3cret")):
            with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
                psycopg.connect(
                    host="127.0.0.1", port=srv.port, user=user, password=password, dbname=dbname
                )
    finally:
        srv.stop()


def test_pg_passwd_line_lets_the_user_in(server, ql, dbname, tmp_path):
    made = CliRunner().invoke(cli, ["pg-passwd", "bob", "--stdin"], input="pw\n")
    assert made.exit_code == 0, made.output
    users = tmp_path / "users"
    users.write_text(made.output)
    from queryleaf.pg.auth import load_users

    srv = _start(server, users=load_users(users))
    try:
        with psycopg.connect(
            host="127.0.0.1", port=srv.port, user="bob", password="pw", dbname=dbname
        ) as conn:
            assert conn.execute("SELECT 2 AS two").fetchone() == (2,)
    finally:
        srv.stop()


def test_trust_is_refused_beyond_loopback(server):
    with pytest.raises(ConfigError, match="not a loopback address"):
        PgServer(lambda db: QueryLeaf(server.uri, db), "0.0.0.0", 0, trust=True)
    done = CliRunner().invoke(
        cli, ["serve", "--pg", "0.0.0.0:0", "--pg-trust", "--uri", server.uri]
    )
    assert done.exit_code != 0 and "not a loopback address" in done.output


def test_tls_with_a_self_signed_certificate(server, ql, dbname, tmp_path):
    import ssl

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    srv = _start(server, tls=context)
    try:
        with _connect(srv, dbname, sslmode="require") as conn:
            assert conn.pgconn.ssl_in_use
            assert conn.execute("SELECT 3 AS three").fetchone() == (3,)
        with _connect(srv, dbname, sslmode="disable") as conn:
            assert not conn.pgconn.ssl_in_use
    finally:
        srv.stop()
    # SCRAM over TLS: libpq says it could bind the channel ("y"), which this server does not.
    srv = _start(server, tls=context, users={"tester": make_verifier("pw")})
    try:
        with _connect(srv, dbname, sslmode="require", password="pw") as conn:
            assert conn.pgconn.ssl_in_use
            assert conn.execute("SELECT 4 AS four").fetchone() == (4,)
    finally:
        srv.stop()


def test_ssl_is_refused_cleanly_without_a_certificate(pg, dbname):
    with pytest.raises(psycopg.OperationalError, match="(?i)ssl"):
        _connect(pg, dbname, sslmode="require")
    with _connect(pg, dbname, sslmode="prefer") as conn:
        assert not conn.pgconn.ssl_in_use


# ---------------------------------------------------------------- a raw protocol client


def test_a_malformed_startup_is_refused_and_the_server_goes_on(pg, dbname):
    with socket.create_connection(("127.0.0.1", pg.port), timeout=10) as sock:
        body = struct.pack("!i", 80877102)  # a CancelRequest without its process id and key
        sock.sendall(struct.pack("!i", len(body) + 4) + body)
        reply = sock.recv(1000)
        assert reply[:1] == b"E" and b"08P01" in reply and b"malformed message" in reply
    with _connect(pg, dbname) as conn:
        assert conn.execute("SELECT 1 AS one").fetchone() == (1,)


class RawClient:
    """Just enough of a frontend to send messages psycopg cannot (Execute with a row limit)."""

    def __init__(self, port: int, dbname: str):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        body = struct.pack("!i", 196608) + b"user\0tester\0database\0" + dbname.encode() + b"\0\0"
        self.sock.sendall(struct.pack("!i", len(body) + 4) + body)
        self.read_until(b"Z")

    def send(self, kind: bytes, body: bytes = b"") -> None:
        self.sock.sendall(kind + struct.pack("!i", len(body) + 4) + body)

    def _exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            assert chunk, "connection closed"
            data += chunk
        return data

    def read_until(self, last: bytes) -> list[tuple[bytes, bytes]]:
        seen = []
        while True:
            kind = self._exact(1)
            size = struct.unpack("!i", self._exact(4))[0]
            seen.append((kind, self._exact(size - 4)))
            if kind == last:
                return seen

    def close(self) -> None:
        self.send(b"X")
        self.sock.close()


# ---------------------------------------------------------------- wire forms of values


@pytest.mark.parametrize(
    "text",
    ["0", "-1", "0.0001", "12.30", "-123456.789", "1E+5", "99999999.99999999", "5E-3",
     "1234567890123456789012345678901234", "-0.0001234", "1E+40", "NaN", "Infinity"],
)  # fmt: skip
def test_numeric_binary_form_agrees_with_psycopg(text):
    from psycopg.types.numeric import DecimalBinaryDumper, NumericBinaryLoader

    from queryleaf.pg.types import NUMERIC, _numeric_binary, decode_parameter

    value = Decimal(text)
    ours = NumericBinaryLoader(NUMERIC).load(_numeric_binary(value))
    theirs = decode_parameter(bytes(DecimalBinaryDumper(Decimal).dump(value)), NUMERIC, True, 1)
    if value.is_nan():
        assert ours.is_nan() and theirs.is_nan()
    else:
        assert ours == value and theirs == value


def _dashboard_queries() -> list[str]:
    """The SQL blocks of docs/connectors.md's dashboard section, with Grafana's time macros
    expanded as Grafana expands them (ISO strings)."""
    text = (Path(__file__).parent.parent / "docs" / "connectors.md").read_text()
    section = text.split("## A dashboard of the event runtime", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sql\n(.*?)```", section, re.S)
    now = dt.datetime.now(dt.UTC)
    start, end = now - dt.timedelta(hours=1), now + dt.timedelta(minutes=1)
    return [
        b.replace("$__timeFrom()", f"'{start:%Y-%m-%dT%H:%M:%SZ}'").replace(
            "$__timeTo()", f"'{end:%Y-%m-%dT%H:%M:%SZ}'"
        )
        for b in blocks
    ]


def test_the_documented_event_dashboard_queries_run_over_the_wire(pg, ql, dbname):
    ql.execute("CREATE EVENT_SUBSCRIPTION inventory AS (watch_collections = 'orders')")
    ql.db.orders.insert_many([{"_id": i} for i in range(3)])
    assert ql.run_subscriptions(idle_timeout=0.8, poll_interval=0.2).events == 3
    queries = _dashboard_queries()
    assert len(queries) == 5
    with _connect(pg, dbname) as conn:
        results = [conn.execute(q).fetchall() for q in queries]
    subscriptions, lag, per_minute, durations, failures = results
    assert subscriptions[0][:3] == ("inventory", "active", 3)
    assert lag[0][0] == "inventory"
    assert sum(n for _, status, n in per_minute if status == "completed") == 3
    assert all(isinstance(t, dt.datetime) for t, *_ in per_minute + durations)
    assert failures == []
