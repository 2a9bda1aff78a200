"""Live queries (``... FROM CHANGE_STREAM(...) EMIT CHANGES``): syntax, plans, the rows of
``QueryLeaf.stream`` against the real server, and the CLI's streaming output."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

import pytest
from bson import Timestamp
from event_helpers import wait_for
from pymongo import MongoClient, monitoring
from test_cli import Terminal, _env

import queryleaf
from queryleaf import dbapi
from queryleaf.engine import start_ephemeral_server
from queryleaf.errors import ErrorCode, PlanningError, QueryLeafError
from queryleaf.events import failures
from queryleaf.live import sharing as live_sharing
from queryleaf.sql import ast
from queryleaf.sql.parser import parse
from queryleaf.sql.printer import to_sql

ORDERS_OVER_100 = (
    "SELECT operation_type, full_document.customer AS customer, full_document.total AS total "
    "FROM CHANGE_STREAM('orders') "
    "WHERE operation_type IN ('insert', 'update') AND full_document.total > 100 "
)


def later(action, delay: float = 0.3) -> threading.Thread:
    """Run ``action`` in a thread after ``delay`` seconds (writes while a stream is read)."""

    def run():
        time.sleep(delay)
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


class Recorder(monitoring.CommandListener):
    """The commands a client sent."""

    def __init__(self):
        self.commands: list[tuple[str, dict]] = []

    def started(self, event):
        self.commands.append((event.command_name, event.command))

    def succeeded(self, event):
        pass

    def failed(self, event):
        pass

    def named(self, name: str) -> list[dict]:
        return [c for n, c in self.commands if n == name]


@pytest.fixture()
def recorded(server, dbname, monkeypatch):
    """A QueryLeaf whose client records its commands; its live queries read streams of their
    own, whose pipelines run on the server (test_live_sharing.py: the shared stream)."""
    monkeypatch.setattr(live_sharing, "SHARED_STREAMS", False)
    recorder = Recorder()
    ql = queryleaf.connect(server.uri, database=dbname)
    client = MongoClient(server.uri, event_listeners=[recorder], tz_aware=True)
    ql.db = client[dbname]  # what stream() watches
    yield ql, recorder
    client.drop_database(dbname)
    client.close()
    ql.close()


# ---------------------------------------------------------------- syntax


@pytest.mark.parametrize(
    "sql",
    [
        ORDERS_OVER_100 + "EMIT CHANGES LIMIT 5",
        "SELECT * FROM CHANGE_STREAM('orders', 'users') AS c SINCE TIMESTAMP '2025-01-31 12:00:00'"
        " EMIT CHANGES",
        "SELECT collection_name FROM CHANGE_STREAM(DATABASE) SINCE '8263' EMIT FINAL",
        "SELECT full_document.status AS status, WINDOW_START, WINDOW_END, COUNT(*) AS n "
        "FROM CHANGE_STREAM('orders') WINDOW TUMBLING (SIZE 1 MINUTE, GRACE PERIOD 10 SECONDS) "
        "GROUP BY full_document.status HAVING COUNT(*) > 2 EMIT CHANGES",
        "SELECT COUNT(*) FROM CHANGE_STREAM('orders') "
        "WINDOW HOPPING (SIZE 5 MINUTES, ADVANCE BY 1 MINUTE) EMIT CHANGES",
        "SELECT COUNT(*) FROM CHANGE_STREAM('orders') WINDOW SESSION (30 SECONDS) EMIT FINAL",
    ],
)
def test_live_syntax_round_trips(sql):
    statement = parse(sql)
    assert isinstance(statement, ast.LiveQuery)
    assert parse(to_sql(statement)) == statement


def test_live_syntax_parts():
    statement = parse(
        "SELECT x FROM CHANGE_STREAM('o') c SINCE TIMESTAMP '2025-01-01' "
        "WINDOW HOPPING (SIZE 5 MINUTES, ADVANCE BY 1 MINUTE, GRACE PERIOD 2 SECONDS) "
        "WHERE x > 1 EMIT CHANGES LIMIT 3"
    )
    assert isinstance(statement, ast.LiveQuery)
    assert statement.emit == ast.Emit(False, 3)
    select = statement.query
    assert isinstance(select, ast.Select)
    (call,) = select.from_
    assert isinstance(call, ast.TableFunction)
    assert call.since == ast.StreamStart("TIMESTAMP", "2025-01-01")
    assert call.since.pos is not None and call.since.pos.column == 52  # the literal
    window = select.window
    assert window == ast.StreamWindow(
        "HOPPING", ast.Duration(5, "MINUTE"), ast.Duration(1, "MINUTE"), ast.Duration(2, "SECOND")
    )
    assert window.size.milliseconds == 300_000


def test_new_keywords_stay_names():
    statement = parse("SELECT emit, changes, final, since, session, size, grace, hour FROM window")
    assert isinstance(statement, ast.QueryStatement)


# ---------------------------------------------------------------- planning


@pytest.mark.parametrize(
    ("sql", "message", "column"),
    [
        ("SELECT x FROM CHANGE_STREAM('o') ORDER BY x EMIT CHANGES", "ORDER BY", 43),
        ("SELECT x FROM CHANGE_STREAM('o') LIMIT 3 EMIT CHANGES", "follows EMIT", 40),
        ("SELECT DISTINCT x FROM CHANGE_STREAM('o') EMIT CHANGES", "DISTINCT", 1),
        (
            "SELECT x FROM CHANGE_STREAM('o') WHERE x IN (SELECT y FROM t) EMIT CHANGES",
            "subquery",
            40,
        ),
        ("SELECT ROW_NUMBER() OVER () FROM CHANGE_STREAM('o') EMIT CHANGES", "OVER", 8),
        ("SELECT x FROM orders EMIT CHANGES", "CHANGE_STREAM", 15),
        (
            "SELECT x FROM CHANGE_STREAM('o') c JOIN CHANGE_STREAM('p') d ON 1 = 1 EMIT CHANGES",
            "no joins",
            41,
        ),
        ("SELECT GROUP_CONCAT(x) FROM CHANGE_STREAM('o') EMIT CHANGES", "not available", 8),
        (
            "SELECT x FROM CHANGE_STREAM('o') WINDOW TUMBLING (SIZE 1 SECOND) EMIT CHANGES",
            "GROUP BY key",
            8,
        ),
        (
            "SELECT COUNT(*) FROM CHANGE_STREAM('o') "
            "WINDOW HOPPING (SIZE 1 SECOND, ADVANCE BY 2 SECONDS) EMIT CHANGES",
            "must not exceed",
            41,
        ),
        ("SELECT x FROM CHANGE_STREAM('o') EMIT FINAL", "EMIT FINAL needs a WINDOW", 34),
        ("SELECT SUM(DISTINCT x) FROM CHANGE_STREAM('o') EMIT CHANGES", "COUNT only", 8),
        ("SELECT * FROM CHANGE_STREAM('o') GROUP BY x EMIT CHANGES", "GROUP BY", 8),
        ("SELECT x FROM CHANGE_STREAM() EMIT CHANGES", "needs what to watch", 15),
        ("SELECT x FROM CHANGE_STREAM(1) EMIT CHANGES", "string literals", 29),
        ("SELECT x FROM CHANGE_STREAM(DATABASE, 'o') EMIT CHANGES", "no other argument", 29),
        ("SELECT nope FROM CHANGE_STREAM('o') EMIT CHANGES", "no column nope", 8),
        (
            "SELECT x FROM CHANGE_STREAM('o') SINCE TIMESTAMP 'yesterday' EMIT CHANGES",
            "ISO 8601",
            50,
        ),
        ("SELECT x FROM CHANGE_STREAM('o') SINCE 'not a token' EMIT CHANGES", "resume token", 40),
        ("SELECT x FROM CHANGE_STREAM_EVENTS() SINCE 'ab' EMIT CHANGES", "CHANGE_STREAM", 15),
    ],
)
def test_what_a_change_stream_cannot_run_is_a_positioned_error(ql, sql, message, column):
    with pytest.raises(QueryLeafError) as caught:
        ql.stream(sql)
    assert message in caught.value.message
    assert caught.value.position is not None and caught.value.position.column == column


def test_change_stream_outside_a_live_query_is_refused(ql):
    with pytest.raises(PlanningError, match="live queries only"):
        ql.execute("SELECT * FROM CHANGE_STREAM('orders')")


def test_execute_and_the_dbapi_refuse_a_live_query(ql, server, dbname):
    with pytest.raises(QueryLeafError) as caught:
        ql.execute(ORDERS_OVER_100 + "EMIT CHANGES")
    assert caught.value.error_code == ErrorCode.LIVE_QUERY
    assert "stream(" in caught.value.message
    with pytest.raises(QueryLeafError) as caught:
        ql.execute_script("SELECT 1; " + ORDERS_OVER_100 + "EMIT CHANGES")
    with dbapi.connect(server.uri, database=dbname) as conn:
        with pytest.raises(dbapi.Error, match="stream"):
            conn.cursor().execute(ORDERS_OVER_100 + "EMIT CHANGES")
    with pytest.raises(QueryLeafError, match="runs live queries"):
        ql.stream("SELECT 1")


def test_explain_shows_the_watch_call_and_what_runs_where(ql):
    (row,) = ql.explain(ORDERS_OVER_100 + "EMIT CHANGES LIMIT 5").rows
    text = row["mongosh"]
    assert text.startswith("db.orders.watch([")
    assert "$replaceWith" in text and "$match" in text and "$project" in text
    assert "fullDocument: 'updateLookup'" in text
    assert "in the client" in text and "stop after 5 rows" in text
    (db_row,) = ql.explain("EXPLAIN SELECT * FROM CHANGE_STREAM('a', 'b') EMIT CHANGES").rows
    assert db_row["mongosh"].startswith("db.watch([")
    assert "'ns.coll': { $in: [ 'a', 'b' ] }" in db_row["mongosh"]


# ---------------------------------------------------------------- rows


def test_filters_and_projection_run_in_the_change_stream(recorded):
    ql, recorder = recorded

    def writes():
        ql.db.orders.insert_one({"customer": "ann", "total": 150})
        ql.db.orders.insert_one({"customer": "bob", "total": 50})
        ql.db.orders.update_one({"customer": "bob"}, {"$set": {"total": 500}})
        ql.db.orders.delete_one({"customer": "ann"})

    later(writes)
    rows = list(ql.stream(ORDERS_OVER_100 + "EMIT CHANGES LIMIT 2", timeout=10))
    assert rows == [
        {"operation_type": "insert", "customer": "ann", "total": 150},
        {"operation_type": "update", "customer": "bob", "total": 500},
    ]
    (command,) = [c for c in recorder.named("aggregate") if c["aggregate"] == "orders"]
    stages = command["pipeline"]
    assert stages[0] == {"$changeStream": {"fullDocument": "updateLookup"}}
    assert [next(iter(s)) for s in stages[1:]] == ["$replaceWith", "$match", "$project"]
    assert stages[2]["$match"] == {
        "operation_type": {"$in": ["insert", "update"]},
        "full_document.total": {"$gt": 100},
    }
    assert stages[3]["$project"]["_id"] == 1  # the resume token stays
    # LIMIT ended the stream: its cursor was closed on the server
    assert recorder.named("killCursors")


def test_full_document_is_looked_up_only_when_read(recorded):
    ql, recorder = recorded
    ql.db.orders.insert_one({"_id": 1, "total": 5})
    later(lambda: ql.db.orders.update_one({"_id": 1}, {"$set": {"total": 7}}))
    rows = list(
        ql.stream(
            "SELECT operation_type, document_key, updated_fields, removed_fields "
            "FROM CHANGE_STREAM('orders') EMIT CHANGES LIMIT 1",
            timeout=10,
        )
    )
    assert rows == [
        {
            "operation_type": "update",
            "document_key": {"_id": 1},
            "updated_fields": {"total": 7},
            "removed_fields": [],
        }
    ]
    (command,) = [c for c in recorder.named("aggregate") if c["aggregate"] == "orders"]
    assert command["pipeline"][0] == {"$changeStream": {}}
    replace = command["pipeline"][1]["$replaceWith"]
    assert "full_document" not in replace and "cluster_time" not in replace


def test_pre_images_are_asked_for_only_when_read(ql):
    p = ql.explain(
        "SELECT full_document_before_change.total AS before FROM CHANGE_STREAM('orders') "
        "EMIT CHANGES"
    ).commands[0]
    assert p["pipeline"][0] == {"$changeStream": {"fullDocumentBeforeChange": "whenAvailable"}}
    plain = ql.explain("SELECT operation_type FROM CHANGE_STREAM('orders') EMIT CHANGES")
    assert plain.commands[0]["pipeline"][0] == {"$changeStream": {}}


def test_select_star_has_the_documented_columns(ql):
    later(lambda: ql.db.orders.insert_one({"_id": 7, "total": 1}))
    (row,) = ql.stream("SELECT * FROM CHANGE_STREAM('orders') EMIT CHANGES LIMIT 1", timeout=10)
    assert row["operation_type"] == row["event_type"] == "insert"
    assert row["collection_name"] == "orders" and row["database_name"] == ql.db.name
    assert row["full_document"] == {"_id": 7, "total": 1}
    assert row["document_key"] == {"_id": 7}
    assert isinstance(row["event_id"], str) and isinstance(row["event_timestamp"], datetime)
    assert "_id" not in row


def test_several_collections_and_the_database(ql):
    def writes():
        ql.db.orders.insert_one({"_id": "o"})
        ql.db.other.insert_one({"_id": "x"})
        ql.db.users.insert_one({"_id": "u"})

    def again():
        ql.db.orders.delete_one({"_id": "o"})
        ql.db.other.delete_one({"_id": "x"})
        ql.db.users.delete_one({"_id": "u"})

    later(writes)
    rows = list(
        ql.stream(
            "SELECT collection_name, document_key._id AS id FROM CHANGE_STREAM('orders', 'users') "
            "EMIT CHANGES LIMIT 2",
            timeout=10,
        )
    )
    assert rows == [
        {"collection_name": "orders", "id": "o"},
        {"collection_name": "users", "id": "u"},
    ]

    later(again)
    rows = list(
        ql.stream(
            "SELECT collection_name FROM CHANGE_STREAM(DATABASE) EMIT CHANGES LIMIT 3", timeout=10
        )
    )
    assert [r["collection_name"] for r in rows] == ["orders", "other", "users"]


def test_since_timestamp_replays_earlier_changes_and_since_a_token_resumes(ql):
    time.sleep(1.05)  # a second of its own: SINCE TIMESTAMP has whole seconds
    start = datetime.now(UTC).replace(microsecond=0)
    time.sleep(0.05)
    ql.db.orders.insert_many([{"_id": 1}, {"_id": 2}, {"_id": 3}])
    rows = list(
        ql.stream(
            f"SELECT document_key._id AS id, event_id FROM CHANGE_STREAM('orders') "
            f"SINCE TIMESTAMP '{start.isoformat()}' EMIT CHANGES LIMIT 3",
            timeout=10,
        )
    )
    assert [r["id"] for r in rows] == [1, 2, 3]
    resumed = list(
        ql.stream(
            "SELECT document_key._id AS id FROM CHANGE_STREAM('orders') "
            f"SINCE '{rows[0]['event_id']}' EMIT CHANGES LIMIT 2",
            timeout=10,
        )
    )
    assert resumed == [{"id": 2}, {"id": 3}]


def test_since_on_lost_history_is_a_clear_error():
    srv = start_ephemeral_server(extra_args=("--oplog-max-entries", "50"))
    ql = queryleaf.connect(srv.uri, database="lost")
    try:
        time.sleep(1.05)
        start = datetime.now(UTC).replace(microsecond=0)
        time.sleep(1.05)
        ql.db.orders.insert_many([{"_id": i} for i in range(1100)])
        wait_for(
            lambda: failures.oldest_oplog_time(ql.db) > Timestamp(int(start.timestamp()), 1),
            10,
            "the oplog to move on",
        )
        sql = (
            "SELECT operation_type FROM CHANGE_STREAM('orders')\n"
            f"  SINCE TIMESTAMP '{start.isoformat()}' EMIT CHANGES"
        )
        with pytest.raises(QueryLeafError) as caught:
            ql.stream(sql, timeout=5)
        assert caught.value.error_code == ErrorCode.HISTORY_LOST
        assert "no longer in the oplog" in caught.value.message
        assert "start later" in caught.value.message
        assert caught.value.position.line == 2 and caught.value.position.column == 19  # the time
    finally:
        ql.close()
        srv.stop()


def test_breaking_the_loop_closes_the_stream(recorded):
    ql, recorder = recorded
    later(lambda: ql.db.orders.insert_many([{"_id": i} for i in range(5)]))
    rows = ql.stream("SELECT document_key FROM CHANGE_STREAM('orders') EMIT CHANGES", timeout=10)
    for row in rows:
        assert row == {"document_key": {"_id": 0}}
        break
    assert not recorder.named("killCursors")  # open while ``rows`` is referenced
    del rows
    assert recorder.named("killCursors")

    with ql.stream("SELECT document_key FROM CHANGE_STREAM('orders') EMIT CHANGES") as rows:
        assert not rows.closed
    assert rows.closed


def test_the_limit_argument_and_the_time_limit(ql):
    later(lambda: ql.db.orders.insert_many([{"_id": i} for i in range(5)]))
    rows = ql.stream(
        "SELECT document_key._id AS id FROM CHANGE_STREAM('orders') EMIT CHANGES LIMIT 4",
        limit=2,
        timeout=10,
    )
    assert list(rows) == [{"id": 0}, {"id": 1}] and rows.closed
    started = time.monotonic()
    assert list(ql.stream("SELECT * FROM CHANGE_STREAM('quiet') EMIT CHANGES", timeout=0.5)) == []
    assert time.monotonic() - started < 3


def test_params_bind_in_the_filter(ql):
    later(lambda: ql.db.orders.insert_many([{"total": 5}, {"total": 50}]))
    rows = ql.stream(
        "SELECT full_document.total AS total FROM CHANGE_STREAM('orders') "
        "WHERE full_document.total > :min EMIT CHANGES LIMIT 1",
        {"min": 10},
        timeout=10,
    )
    assert list(rows) == [{"total": 50}]


# ---------------------------------------------------------------- the CLI


def _popen(server, dbname, tmp_path, *args):
    return subprocess.Popen(
        [sys.executable, "-m", "queryleaf", "--uri", server.uri, "--db", dbname, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(tmp_path),
        cwd=tmp_path,
    )


def test_cli_json_lines_are_flushed_as_each_row_arrives(server, dbname, tmp_path):
    client = queryleaf.connect(server.uri, database=dbname)
    proc = _popen(
        server,
        dbname,
        tmp_path,
        "--format",
        "json",
        "-e",
        ORDERS_OVER_100 + "EMIT CHANGES LIMIT 2",
    )
    try:
        time.sleep(2.5)  # the CLI starts and opens its stream
        client.db.orders.insert_one({"customer": "ann", "total": 150})
        first = json.loads(proc.stdout.readline())  # before the second write: flushed
        assert first == {"operation_type": "insert", "customer": "ann", "total": 150}
        client.db.orders.insert_one({"customer": "bob", "total": 250})
        second = json.loads(proc.stdout.readline())
        assert second["customer"] == "bob"
        assert proc.wait(timeout=20) == 0
        assert proc.stdout.read() == ""
        assert "2 rows" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        client.client.drop_database(dbname)
        client.close()


def test_cli_timeout_bounds_the_whole_stream(server, dbname, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "queryleaf",
            "--uri",
            server.uri,
            "--db",
            dbname,
            "--timeout",
            "1",
            "-e",
            "SELECT operation_type, document_key FROM CHANGE_STREAM('quiet') EMIT CHANGES",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env=_env(tmp_path),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "0 rows; change stream closed" in proc.stderr


def test_cli_table_prints_a_header_once_then_rows(server, dbname, tmp_path):
    client = queryleaf.connect(server.uri, database=dbname)
    proc = _popen(
        server,
        dbname,
        tmp_path,
        "-e",
        "SELECT operation_type, document_key._id AS id FROM CHANGE_STREAM('orders') "
        "EMIT CHANGES LIMIT 2",
    )
    try:
        time.sleep(2.5)
        client.db.orders.insert_one({"_id": 1})
        header = proc.stdout.readline()
        assert header.split() == ["operation_type", "id"]
        proc.stdout.readline()  # the rule
        assert proc.stdout.readline().split() == ["insert", "1"]
        client.db.orders.insert_one({"_id": 22})
        assert proc.stdout.readline().split() == ["insert", "22"]
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        client.client.drop_database(dbname)
        client.close()


def test_ctrl_c_ends_the_stream_with_exit_0_and_the_shell_returns(server, dbname, tmp_path):
    term = Terminal(server, dbname, tmp_path, "-e", "SELECT * FROM CHANGE_STREAM('o') EMIT CHANGES")
    try:
        time.sleep(2.5)
        term.write(b"\x03")
        term.read_until(b"change stream closed")
        assert term.proc.wait(timeout=20) == 0
    finally:
        term.close()

    client = queryleaf.connect(server.uri, database=dbname)
    term = Terminal(server, dbname, tmp_path)
    prompt = f"{dbname}>".encode()
    try:
        term.read_until(prompt)
        term.write(b"SELECT document_key._id AS id FROM CHANGE_STREAM('o') EMIT CHANGES;\r")
        time.sleep(1.5)
        client.db.o.insert_one({"_id": 4242})
        term.read_until(b"4242")
        term.write(b"\x03")
        term.read_until(b"1 rows; change stream closed")
        term.read_until(prompt)
        term.write(b"SELECT 2 AS two;\r")
        term.read_until(b"1 row")
        term.write(b"\\q\r")
        assert term.proc.wait(timeout=20) == 0
    finally:
        term.close()
        client.client.drop_database(dbname)
        client.close()
