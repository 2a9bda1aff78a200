"""Shared change streams: one stream per watched collection per process, each subscription with
its own position, retries and exactly-once delivery (docs/events.md, "Shared change streams")."""

from __future__ import annotations

import gc
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from event_helpers import read_rows, wait_for
from pymongo import MongoClient, monitoring
from test_reliability import Worker, completed, deliveries, lease_holder

from queryleaf.changestream.clients import STREAM_CLIENTS
from queryleaf.changestream.shared import HUB, Start, StreamHub
from queryleaf.events import names, runner, sharing, worker
from queryleaf.events.eventlog import DOCUMENT_FIELDS


class ChangeStreamOpens(monitoring.CommandListener):
    """Counts the change streams opened (``aggregate`` with ``$changeStream``) per collection,
    and the other commands by name and collection."""

    def __init__(self) -> None:
        self.opened: Counter[str] = Counter()
        self.pipelines: list[list] = []
        self.commands: Counter[tuple[str, str]] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pipeline = event.command.get("pipeline") or [{}]
        if event.command_name == "aggregate" and "$changeStream" in pipeline[0]:
            self.opened[str(event.command["aggregate"])] += 1
            self.pipelines.append(list(pipeline))
        else:
            target = event.command.get(event.command_name)
            self.commands[event.command_name, str(target)] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture()
def opens(monkeypatch, ql) -> ChangeStreamOpens:
    listener = ChangeStreamOpens()
    # The listener sees the commands of stream clients made from now on: the process's client
    # of this URI must not be open still (every earlier user has released it; live queries
    # dropped without close() are released when collected).
    gc.collect()
    wait_for(lambda: ql.uri not in STREAM_CLIENTS.clients, 5, "earlier stream users to release")

    def client(ql):
        return MongoClient(ql.uri, tz_aware=True, maxPoolSize=None, event_listeners=[listener])

    monkeypatch.setattr(worker, "_worker_client", client)
    # The shared streams are opened on the process's stream client of the URI.
    monkeypatch.setattr(STREAM_CLIENTS, "options", {"event_listeners": [listener]})
    return listener


def subscribe(ql, name: str, deliver_to: str = "log", **options: object) -> None:
    extra = "".join(f", {key} = {value}" for key, value in options.items())
    ql.execute(
        f"CREATE EVENT_SUBSCRIPTION {name} AS (watch_collections = 'orders',"
        f" deliver_to = '{deliver_to}'{extra})"
    )


def statuses(ql, name: str) -> Counter[str]:
    return Counter(r["processing_status"] for r in read_rows(ql.db, {"subscription_id": name}))


def keys(ql, name: str) -> list[int]:
    return [r["document_key"]["_id"] for r in read_rows(ql.db, {"subscription_id": name})]


class Running:
    """The worker in a thread of this process, until ``stop``."""

    def __init__(self, ql, **kwargs: object):
        self.stop_event = threading.Event()
        self.thread = threading.Thread(
            target=ql.run_subscriptions,
            kwargs={"stop_event": self.stop_event, "poll_interval": 0.2, **kwargs},
        )
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(30)


def test_n_subscriptions_on_one_collection_read_one_change_stream(ql, opens):
    for i in range(5):
        subscribe(ql, f"s{i}")
    ql.db.orders.insert_many([{"_id": i} for i in range(20)])
    report = ql.run_subscriptions(poll_interval=0.2, idle_timeout=0.8)
    assert report.events == 100
    # First run: the subscriptions were created at five different positions (their CREATE
    # cluster times): one stream opened at the earliest, each joins it by its cluster time.
    assert opens.opened == {"orders": 1}
    opens.opened.clear()
    ql.db.orders.insert_many([{"_id": i} for i in range(20, 40)])
    report = ql.run_subscriptions(poll_interval=0.2, idle_timeout=0.8)
    assert report.events == 100
    assert opens.opened == {"orders": 1}  # same positions now: one watch for five
    for i in range(5):
        assert keys(ql, f"s{i}") == list(range(40))
    assert not HUB.streams  # closed with its last consumer


def test_a_failing_slow_subscription_does_not_hold_up_another_and_both_end_exactly_once(ql):
    subscribe(ql, "fast", "collection:mirror")
    subscribe(ql, "slow", "log", max_retry_attempts=3, retry_delay_ms=20)
    attempts: Counter[int] = Counter()

    @ql.on("slow")
    def slow(event):
        key = event["documentKey"]["_id"]
        attempts[key] += 1
        time.sleep(0.02)
        if key % 5 == 0 and attempts[key] == 1:
            raise RuntimeError("first attempt fails")

    total = 60
    running = Running(ql)
    try:
        ql.db.orders.insert_many([{"_id": i} for i in range(total)])
        wait_for(lambda: completed(ql.db, "fast") == total, 10, "the fast subscription")
        assert completed(ql.db, "slow") < total  # still working: it did not hold "fast" up
        wait_for(lambda: completed(ql.db, "slow") == total, 30, "the slow subscription")
    finally:
        running.stop()
    assert ql.db.mirror.count_documents({}) == total
    for name in ("fast", "slow"):
        assert statuses(ql, name) == {"completed": total}
        assert keys(ql, name) == list(range(total))  # in order, once each
    assert sum(attempts.values()) == total + total // 5


def test_a_subscription_created_while_others_run_starts_from_its_own_position(ql):
    subscribe(ql, "first")
    running = Running(ql)
    try:
        ql.db.orders.insert_many([{"_id": i} for i in range(10)])
        wait_for(lambda: completed(ql.db, "first") == 10, 10, "the first subscription")
        subscribe(ql, "later")
        wait_for(lambda: lease_holder(ql.db, "later"), 10, "the worker to take it")
        ql.db.orders.insert_many([{"_id": i} for i in range(10, 20)])
        wait_for(lambda: completed(ql.db, "later") == 10, 10, "the later subscription")
        wait_for(lambda: completed(ql.db, "first") == 20, 10, "the first subscription")
        (shared,) = HUB.streams.values()
        assert shared.consumers == 2  # the later one joined the shared stream
    finally:
        running.stop()
    assert keys(ql, "first") == list(range(20))
    assert keys(ql, "later") == list(range(10, 20))


def test_starting_many_subscriptions_takes_leases_and_reads_the_log_once_for_all(ql, opens):
    for i in range(12):
        subscribe(ql, f"s{i:02}")
        ql.db.orders.insert_one({"_id": i})  # each one created at its own position
    report = ql.run_subscriptions(poll_interval=0.2, idle_timeout=0.8)
    # s00 sees the 12 inserts, s01 the 11 after its creation, ...: each from its CREATE on.
    assert report.events == sum(range(1, 13))
    for i in range(12):
        assert keys(ql, f"s{i:02}") == list(range(i, 12))
    assert opens.opened == {"orders": 1}  # no stream of its own for any of them
    assert opens.commands["insert", names.LEASES] == 1
    assert opens.commands["update", names.LEASES] == 0
    assert opens.commands["find", names.EVENT_LOG] == 1
    assert opens.commands["delete", names.LEASES] == 1  # released together at the stop
    assert not ql.db[names.LEASES].count_documents({})
    assert not ql.db[names.SUBSCRIPTIONS].count_documents({"worker_id": {"$ne": None}})


def test_a_lease_left_by_a_crashed_worker_is_taken_over_in_the_same_bulk(ql, opens):
    subscribe(ql, "free")
    subscribe(ql, "left")
    ql.db[names.LEASES].insert_one(
        # Expired a moment ago (one expired for a minute is removed as stale first).
        {
            "_id": "left",
            "worker_id": "crashed",
            "expires_at": datetime.now(UTC) - timedelta(seconds=5),
        }
    )
    ql.db.orders.insert_many([{"_id": i} for i in range(5)])
    report = ql.run_subscriptions(poll_interval=0.2, idle_timeout=0.8)
    assert report.by_subscription["free"]["completed"] == 5
    assert report.by_subscription["left"]["completed"] == 5
    assert opens.commands["insert", names.LEASES] == 1
    assert opens.commands["update", names.LEASES] >= 1  # the expired one: taken over


def test_a_live_lease_of_another_worker_is_not_taken(ql):
    subscribe(ql, "free")
    subscribe(ql, "held")
    ql.db[names.LEASES].insert_one(
        {"_id": "held", "worker_id": "other", "expires_at": datetime(2999, 1, 1, tzinfo=UTC)}
    )
    ql.db.orders.insert_many([{"_id": i} for i in range(5)])
    report = ql.run_subscriptions(poll_interval=0.2, idle_timeout=0.8)
    assert report.by_subscription["free"]["completed"] == 5
    assert "held" not in report.by_subscription
    assert ql.db[names.LEASES].find_one({"_id": "held"})["worker_id"] == "other"


def _open(coll):
    def open_stream(start: Start, first_batch: int | None):
        return coll.watch(
            start_after=start.token,
            start_at_operation_time=start.time,
            max_await_time_ms=50,
            batch_size=first_batch or 100,
        )

    return open_stream


def _take(consumer, n: int, timeout: float = 10) -> list[int]:
    got: list[int] = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        change = consumer.try_next()
        if change is not None:
            got.append(change["documentKey"]["_id"])
    return got


def test_a_consumer_that_falls_behind_detaches_reads_alone_and_joins_again(ql):
    hub = StreamHub(capacity=5)
    coll = ql.db.orders
    with coll.watch(max_await_time_ms=10) as probe:
        probe.try_next()
        start = Start(token=probe.resume_token)
    opener = _open(coll)
    fast = hub.attach("orders", start, opener, opener, coll.codec_options, 0.05)
    slow = hub.attach("orders", start, opener, opener, coll.codec_options, 0.05)
    assert hub.opened == 1 and not slow.on_own_stream
    coll.insert_many([{"_id": i} for i in range(20)])
    assert _take(fast, 20) == list(range(20))  # past the 5-event buffer: "slow" was dropped
    assert _take(slow, 20) == list(range(20))  # alone from its last event, then in the buffer
    assert slow.detaches == 1 and slow.joins == 2 and not slow.on_own_stream
    # One that starts from an older position than the buffer holds reads alone, then joins.
    older = hub.attach("orders", start, opener, opener, coll.codec_options, 0.05)
    assert older.on_own_stream
    coll.insert_many([{"_id": i} for i in range(20, 23)])
    assert _take(older, 23) == list(range(23))
    assert not older.on_own_stream
    assert _take(fast, 3) == _take(slow, 3) == [20, 21, 22]
    for consumer in (fast, slow, older):
        consumer.close()
    assert not hub.streams


def test_kill_9_mid_stream_with_shared_streams_loses_and_duplicates_nothing(
    ql, server, events_file
):
    db = ql.db
    subscribe(ql, "mirror", "collection:order_mirror")
    subscribe(ql, "audit", "python:test_reliability:append_event")
    subscribe(ql, "logged")
    total = 400

    def write():
        for start in range(0, total, 10):
            db.orders.insert_many([{"_id": i} for i in range(start, start + 10)])
            time.sleep(0.03)

    writer = threading.Thread(target=write)
    writer.start()
    for pause in (0.8, 1.5, 0.4):
        worker_process = Worker(server.uri, ql.database_name, events_file, "--lease-seconds", "1")
        time.sleep(pause)
        worker_process.kill()
    writer.join()
    final = Worker(server.uri, ql.database_name, events_file, "--lease-seconds", "1")
    try:
        wait_for(
            lambda: all(completed(db, name) == total for name in ("mirror", "audit", "logged")),
            60,
            "every change to be handled",
        )
    finally:
        assert final.terminate() == 0, final.output()
    assert sorted(d["documentKey"]["_id"] for d in db.order_mirror.find()) == list(range(total))
    for name in ("mirror", "audit", "logged"):
        assert statuses(ql, name) == {"completed": total}
        assert sorted(keys(ql, name)) == list(range(total))
        assert db[names.SUBSCRIPTIONS].find_one({"_id": name})["events_processed"] == total
    assert {key for _, _, key in deliveries(events_file)} == set(range(total))


def test_kill_9_while_many_subscriptions_start_together_loses_and_duplicates_nothing(
    ql, server, events_file
):
    db = ql.db
    subs = [f"s{i}" for i in range(8)]
    total = 240

    def write():
        for start in range(0, total, 10):
            db.orders.insert_many([{"_id": i} for i in range(start, start + 10)])
            time.sleep(0.03)

    subscribe(ql, "audit", "python:test_reliability:append_event")
    for name in subs:  # created at different positions, all before the writes
        subscribe(ql, name)
    writer = threading.Thread(target=write)
    writer.start()
    for pause in (0.3, 0.9, 0.5):  # the first kills land in the workers' start-up
        worker_process = Worker(server.uri, ql.database_name, events_file, "--lease-seconds", "1")
        time.sleep(pause)
        worker_process.kill()
    writer.join()
    final = Worker(server.uri, ql.database_name, events_file, "--lease-seconds", "1")
    try:
        wait_for(
            lambda: all(completed(db, name) == total for name in ("audit", *subs)),
            90,
            "every change to be handled",
        )
    finally:
        assert final.terminate() == 0, final.output()
    for name in ("audit", *subs):
        assert statuses(ql, name) == {"completed": total}
        assert sorted(keys(ql, name)) == list(range(total))
        assert db[names.SUBSCRIPTIONS].find_one({"_id": name})["events_processed"] == total
    assert {key for _, _, key in deliveries(events_file)} == set(range(total))


@pytest.fixture()
def events_file(tmp_path):
    return tmp_path / "events.txt"


# ---------------------------------------------------------------- different streams, one watch

# name -> (options, WHERE): differing event types, filters and full_document options.
DIFFERENT = {
    "all": ("", ""),
    "ins": (", event_types = JSON_ARRAY('insert')", ""),
    "upd_lookup": (", event_types = JSON_ARRAY('update')", ""),
    "upd_plain": (", event_types = JSON_ARRAY('update'), full_document = 'default'", ""),
    "big": ("", " WHERE full_document.k >= 5"),  # full_document: updateLookup by default
    "red": (", event_filter = JSON_OBJECT('fullDocument.tags', 'red')", ""),
    "gone": (", full_document = 'default'", " WHERE operation_type = 'delete'"),
    "plain": (", full_document = 'default'", ""),
}
COMPARED = (
    "event_id",
    "event_type",
    "document_key",
    "event_data",
    "update_description",
    "full_document_before_change",
    "cluster_time",
    *DOCUMENT_FIELDS,
)


def subscribe_as(ql, name: str, options: str, where: str) -> None:
    ql.execute(
        f"CREATE EVENT_SUBSCRIPTION {name} AS (watch_collections = 'orders',"
        f" deliver_to = 'log'{options}){where}"
    )


def changes(ql, tags: object) -> None:
    """Inserts, updates and deletes on orders (``tags``: the value of each document's tags)."""
    ql.db.orders.insert_many(
        [{"_id": i, "k": i, "tags": tags if i % 2 else "blue"} for i in range(10)]
    )
    for i in range(0, 10, 3):
        ql.db.orders.update_one({"_id": i}, {"$set": {"k": i + 10}})
    ql.db.orders.delete_many({"_id": {"$in": [1, 4]}})


def rows_of(ql, name: str) -> list[tuple]:
    rows = sorted(read_rows(ql.db, {"subscription_id": name}), key=lambda r: r["cluster_time"])
    return [tuple(str(row.get(column)) for column in COMPARED) for row in rows]


def _run_alone_and_shared(ql, monkeypatch, opens, tags: object, names_: dict) -> None:
    for prefix in ("a_", "b_"):
        for name, (options, where) in names_.items():
            subscribe_as(ql, prefix + name, options, where)
    changes(ql, tags)
    seen: list[dict] = []
    ql.on("a_upd_plain")(seen.append) if "upd_plain" in names_ else None
    shared = ql.run_subscriptions(
        subscriptions=[f"a_{n}" for n in names_], poll_interval=0.2, idle_timeout=0.8
    )
    monkeypatch.setattr(runner, "SHARED_STREAMS", False)
    alone = ql.run_subscriptions(
        subscriptions=[f"b_{n}" for n in names_], poll_interval=0.2, idle_timeout=0.8
    )
    assert shared.events == alone.events > 0
    for name in names_:
        assert rows_of(ql, f"a_{name}") == rows_of(ql, f"b_{name}"), name
        assert rows_of(ql, f"a_{name}")
    for event in seen:  # the handler of a subscription without updateLookup: no fullDocument
        assert event["operationType"] == "update" and "fullDocument" not in event


@pytest.mark.parametrize("server_filter", [False, True], ids=["client filter", "server filter"])
def test_subscriptions_with_different_filters_and_options_share_one_watch_exactly(
    ql, monkeypatch, opens, server_filter
):
    monkeypatch.setattr(sharing, "SERVER_FILTER", server_filter)
    chosen = DIFFERENT
    if server_filter:  # the union goes to the server when every one has a filter
        chosen = {k: v for k, v in DIFFERENT.items() if k not in ("all", "plain")}
    _run_alone_and_shared(ql, monkeypatch, opens, "red", chosen)
    # One watch for the a_ subscriptions, one each for the b_ ones.
    assert opens.opened["orders"] == 1 + len(chosen)
    shared_pipeline = opens.pipelines[0]
    assert ("$or" in str(shared_pipeline)) == server_filter


def test_an_event_the_client_cannot_judge_is_read_from_the_consumers_own_stream(
    ql, monkeypatch, opens
):
    # tags is an array on some documents: the server's array matching decides those events.
    _run_alone_and_shared(
        ql, monkeypatch, opens, ["red", "green"], {"all": DIFFERENT["all"], "red": DIFFERENT["red"]}
    )
    assert opens.opened["orders"] > 1 + 2  # the shared stream, then "red" alone for a while
