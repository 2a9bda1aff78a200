"""Live queries on the process's shared change stream (docs/streaming.md, "One change stream per
collection"): one stream for the live queries and subscriptions of one collection in a process,
each live query with exactly the rows of its own stream, in order."""

from __future__ import annotations

import gc
import threading
import time
from collections import Counter
from datetime import UTC, datetime

import pytest
from bson import Timestamp
from event_helpers import read_rows, wait_for
from pymongo import monitoring
from test_shared_streams import Running, subscribe

import queryleaf
from queryleaf.changestream import client_pipeline, clients
from queryleaf.changestream.shared import HUB
from queryleaf.live.stream import LiveRows
from queryleaf.planner import plan_statement
from queryleaf.sql.parser import parse

BIG_INSERTS = (
    "SELECT operation_type, full_document.customer AS customer, full_document.total AS total "
    "FROM CHANGE_STREAM('orders') "
    "WHERE operation_type = 'insert' AND full_document.total > 100 EMIT CHANGES"
)
# Each is run on the shared stream and on a stream of its own: the same rows.
QUERIES = {
    "filter and projection": BIG_INSERTS,
    "select star": "SELECT * FROM CHANGE_STREAM('orders') EMIT CHANGES",
    "updates": "SELECT document_key, updated_fields.status AS status, removed_fields "
    "FROM CHANGE_STREAM('orders') WHERE operation_type IN ('update', 'replace') EMIT CHANGES",
    "null test": "SELECT full_document.customer AS c FROM CHANGE_STREAM('orders') "
    "WHERE full_document.note IS NULL AND operation_type <> 'delete' EMIT CHANGES",
    "array path": "SELECT full_document.items.price AS prices FROM CHANGE_STREAM('orders') "
    "EMIT CHANGES",
    "running aggregate": "SELECT full_document.customer AS c, COUNT(*) AS n, "
    "SUM(full_document.total) AS revenue FROM CHANGE_STREAM('orders') "
    "WHERE operation_type = 'insert' GROUP BY full_document.customer EMIT CHANGES",
}


class StreamOpens(monitoring.CommandListener):
    """The change streams opened, per collection."""

    def __init__(self) -> None:
        self.opened: Counter[str] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pipeline = event.command.get("pipeline") or [{}]
        if event.command_name == "aggregate" and "$changeStream" in pipeline[0]:
            self.opened[str(event.command["aggregate"])] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture()
def opens(monkeypatch) -> StreamOpens:
    """Counts the shared streams opened (on the process's stream client of the URI)."""
    listener = StreamOpens()
    gc.collect()  # live queries of earlier tests dropped but not yet collected: closed
    wait_for(lambda: clients.STREAM_CLIENTS.open_count() == 0, 10, "earlier streams to close")
    monkeypatch.setattr(clients.STREAM_CLIENTS, "options", {"event_listeners": [listener]})
    return listener


@pytest.fixture()
def other(server, dbname):
    """A second QueryLeaf of the same server and database (a client of its own)."""
    conn = queryleaf.connect(server.uri, database=dbname)
    yield conn
    conn.close()


def orders_streams(ql) -> list:
    """The keys of the open shared streams of ``ql``'s orders collection."""
    return [
        key
        for key in HUB.keys()
        if isinstance(key, tuple)
        and len(key) == 4
        and key[1][2] == ql.db.name
        and key[2] == ("orders", "[]")
    ]


def read_all(rows, into: list) -> threading.Thread:
    thread = threading.Thread(target=lambda: into.extend(rows), daemon=True)
    thread.start()
    return thread


def own_stream(ql, sql: str, timeout: float) -> LiveRows:
    """The live query on a stream of its own (its pipeline on the server)."""
    return LiveRows(ql.db, plan_statement(parse(sql)), timeout=timeout)


def writes(db, n: int = 6) -> None:
    for i in range(n):
        db.orders.insert_one({"_id": i, "customer": f"c{i % 2}", "total": 60 * i})
    db.orders.insert_one({"_id": 100, "customer": "arr", "total": 1, "items": [{"price": 3}]})
    db.orders.update_one({"_id": 1}, {"$set": {"status": "paid"}, "$unset": {"customer": ""}})
    db.orders.update_one({"_id": 2}, {"$set": {"note": "x"}})
    db.orders.replace_one({"_id": 3}, {"customer": "c9", "total": 999})
    db.orders.delete_one({"_id": 4})


def test_two_live_queries_of_two_connections_open_one_change_stream(ql, other, opens):
    first = ql.stream(BIG_INSERTS, timeout=3)
    second = other.stream(QUERIES["updates"], timeout=3)
    assert first.shared and second.shared
    assert len(orders_streams(ql)) == 1
    got_first: list = []
    got_second: list = []
    threads = [read_all(first, got_first), read_all(second, got_second)]
    writes(ql.db)
    for thread in threads:
        thread.join(10)
    assert got_first == [
        {"operation_type": "insert", "customer": "c0", "total": 120},
        {"operation_type": "insert", "customer": "c1", "total": 180},
        {"operation_type": "insert", "customer": "c0", "total": 240},
        {"operation_type": "insert", "customer": "c1", "total": 300},
    ]
    assert got_second == [
        {"document_key": {"_id": 1}, "status": "paid", "removed_fields": ["customer"]},
        {"document_key": {"_id": 2}, "status": None, "removed_fields": []},
        {"document_key": {"_id": 3}, "status": None, "removed_fields": None},
    ]
    assert opens.opened == {"orders": 1}
    assert not orders_streams(ql)  # closed with its last consumer
    assert clients.STREAM_CLIENTS.open_count() == 0


@pytest.mark.parametrize("name", list(QUERIES))
def test_a_shared_live_query_has_exactly_the_rows_of_its_own_stream(ql, name):
    sql = QUERIES[name]
    # Both read until their time limit: every row the writes make arrives well within it.
    shared = ql.stream(sql, timeout=4)
    own = own_stream(ql, sql, timeout=4)
    assert shared.shared and not own.shared
    consumer = shared.stream.consumer
    got_shared: list = []
    got_own: list = []
    threads = [read_all(shared, got_shared), read_all(own, got_own)]
    writes(ql.db)
    for thread in threads:
        thread.join(15)
    assert got_own  # the writes are seen at all
    assert got_shared == got_own
    # A path through an array is the server's traversal: that event is read alone.
    assert consumer.undecided == (1 if name == "array path" else 0)


def test_a_live_query_and_a_subscription_worker_in_one_process_share(ql, opens):
    subscribe(ql, "audit")
    running = Running(ql)
    try:
        wait_for(lambda: orders_streams(ql), 10, "the worker's shared stream")
        rows = ql.stream(
            "SELECT operation_type, document_key FROM CHANGE_STREAM('orders') "
            "WHERE operation_type = 'insert' EMIT CHANGES LIMIT 5",
            timeout=10,
        )
        assert rows.shared and len(orders_streams(ql)) == 1
        ql.db.orders.insert_many([{"_id": i} for i in range(5)])
        got = list(rows)
        assert got == [{"operation_type": "insert", "document_key": {"_id": i}} for i in range(5)]
        wait_for(lambda: len(read_rows(ql.db, {"subscription_id": "audit"})) == 5, 10, "the log")
    finally:
        running.stop()
    assert opens.opened == {"orders": 1}


def test_a_slow_live_query_does_not_delay_another(ql, other, monkeypatch):
    monkeypatch.setattr(HUB, "capacity", 10)  # the slow one falls out of the buffer
    slow = ql.stream("SELECT document_key._id AS id FROM CHANGE_STREAM('orders') EMIT CHANGES")
    fast = other.stream(
        "SELECT document_key._id AS id FROM CHANGE_STREAM('orders') EMIT CHANGES LIMIT 50",
        timeout=10,
    )
    try:
        assert slow.shared and fast.shared
        ql.db.orders.insert_many([{"_id": i} for i in range(50)])
        started = time.monotonic()
        assert [row["id"] for row in fast] == list(range(50))  # slow has read nothing
        assert time.monotonic() - started < 5
        assert [next(slow)["id"] for _ in range(50)] == list(range(50))  # in order, once
        assert slow.stream.consumer.detaches >= 1  # read alone from where it was
    finally:
        slow.close()
        fast.close()


def test_break_and_limit_detach_and_the_last_one_closes_the_stream(ql, other):
    long = ql.stream("SELECT document_key._id AS id FROM CHANGE_STREAM('orders') EMIT CHANGES")
    limited = other.stream(
        "SELECT document_key._id AS id FROM CHANGE_STREAM('orders') EMIT CHANGES LIMIT 2"
    )
    (shared,) = [HUB.streams[key] for key in orders_streams(ql)]
    assert shared.consumers == 2
    ql.db.orders.insert_many([{"_id": i} for i in range(4)])
    assert [row["id"] for row in limited] == [0, 1]
    assert limited.closed and shared.consumers == 1
    for row in long:
        if row["id"] == 2:
            break
    del long  # the loop's iterator dropped: closed
    assert shared.consumers == 0 and shared.closed
    assert not orders_streams(ql)


def test_a_computed_projection_keeps_its_own_stream_and_is_correct(ql):
    sql = "SELECT full_document.total * 2 AS double FROM CHANGE_STREAM('orders') EMIT CHANGES"
    (plan,) = ql.explain(sql).rows
    assert "own change stream: the column double is computed on the server" in plan["mongosh"]
    (plan,) = ql.explain(BIG_INSERTS).rows
    assert "; shared change stream" in plan["mongosh"]
    rows = ql.stream(sql + " LIMIT 3", timeout=10)
    assert not rows.shared and not orders_streams(ql)
    ql.db.orders.insert_many([{"total": t} for t in (1, 2.5, None)])
    assert list(rows) == [{"double": 2}, {"double": 5.0}, {"double": None}]


@pytest.mark.parametrize(
    "where", ["", "WHERE operation_type = 'insert'"], ids=["all changes", "inserts"]
)
def test_an_invalidate_ends_a_shared_live_query_as_its_own_stream(ql, where):
    sql = (
        f"SELECT operation_type, collection_name FROM CHANGE_STREAM('orders') {where} EMIT CHANGES"
    )
    shared = ql.stream(sql, timeout=30)
    own = own_stream(ql, sql, timeout=30)
    assert shared.shared
    got_shared: list = []
    got_own: list = []
    threads = [read_all(shared, got_shared), read_all(own, got_own)]
    ql.db.orders.insert_one({"_id": 1})
    ql.db.orders.drop()
    wait_for(lambda: not orders_streams(ql), 5, "the shared stream to end at the invalidate")
    ql.db.orders.insert_one({"_id": 2})  # a new collection: not this stream's
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive()  # the invalidate ended both, long before their limit
    assert got_shared == got_own
    assert got_own[0] == {"operation_type": "insert", "collection_name": "orders"}


def test_the_client_pipeline_makes_event_timestamp_and_says_why_it_cannot_run():
    sql = (
        "SELECT event_timestamp, full_document.a AS a FROM CHANGE_STREAM('orders') "
        "WHERE full_document.a > 1 EMIT CHANGES"
    )
    p = plan_statement(parse(sql))
    pipeline = client_pipeline.compile_pipeline(p.pipeline, p.database_wide)
    event = {"_id": {"_data": "0a"}, "clusterTime": Timestamp(1_700_000_000, 3)}
    event["fullDocument"] = {"a": 2}
    assert pipeline.judge()(event) is True
    assert pipeline.judge()({**event, "fullDocument": {"a": [2]}}) is None  # the server's
    assert pipeline.judge()({**event, "fullDocument": {"a": 1}}) is False
    shaped = pipeline.shape(event)
    wall = datetime(2024, 1, 1, 12, 0, 0, 123000, tzinfo=UTC)
    assert [shaped[c.key] for c in p.columns] == [datetime.fromtimestamp(1_700_000_000, UTC), 2]
    shaped = pipeline.shape({**event, "wallTime": wall})
    assert shaped[p.columns[0].key] == wall
    reasons = [
        ("full_document.a * 2 AS d", "", "the column d is computed on the server"),
        ("full_document.a", "WHERE event_timestamp IS NULL", "its filter reads event_timestamp"),
        ("full_document.a", "WHERE full_document.s LIKE 'a%'", "Regex values"),
        ("full_document.a", "WHERE full_document.a + 1 > 2", "$expr"),
    ]
    for select, where, reason in reasons:
        sql = f"SELECT {select} FROM CHANGE_STREAM('orders') {where} EMIT CHANGES"
        assert reason in (plan_statement(parse(sql)).own_stream_reason or "")


def test_streams_are_shared_per_uri_as_written_and_keys_hold_no_password(ql):
    one = clients.Source("mongodb://ann:secret@host/", ql.db).identity
    assert "secret" not in repr(one)
    assert one == clients.Source("mongodb://ann:secret@host/", ql.db).identity
    assert one != clients.Source("mongodb://bob:other@host/", ql.db).identity
    assert one != clients.Source("mongodb://ann:secret@host/", ql.client["other"]).identity


def test_closing_a_live_query_while_it_reads_releases_the_shared_stream(ql):
    """A cancel (the wire server's CancelRequest) closes the rows from another thread while
    their reader waits on the server: the stream and its client must still be released."""

    def users() -> int:
        return clients.STREAM_CLIENTS.clients.get(ql.uri, (None, 0))[1]

    before = users()
    ql.db.create_collection("orders")
    live = ql.stream("SELECT full_document.item AS item FROM CHANGE_STREAM('orders') EMIT CHANGES")
    assert live.shared and users() == before + 1
    got: list = []
    reader = threading.Thread(target=lambda: got.extend(live), daemon=True)
    reader.start()
    ql.db.orders.insert_one({"item": "pen"})
    wait_for(lambda: got, 5, "the first row")
    live.close()  # the reader is waiting on the server for the next change
    reader.join(5)
    assert not reader.is_alive() and got == [{"item": "pen"}]
    wait_for(lambda: users() == before, 5, "the shared stream's client to be released")
