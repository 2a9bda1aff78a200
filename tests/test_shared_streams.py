"""Shared change streams: one stream per watched collection per process, each subscription with
its own position, retries and exactly-once delivery (docs/events.md, "Shared change streams")."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from event_helpers import read_rows, wait_for
from pymongo import MongoClient, monitoring
from test_reliability import Worker, completed, deliveries, lease_holder

from queryleaf.changestream.shared import HUB, Start, StreamHub
from queryleaf.events import names, worker


class ChangeStreamOpens(monitoring.CommandListener):
    """Counts the change streams opened (``aggregate`` with ``$changeStream``) per collection."""

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
def opens(monkeypatch) -> ChangeStreamOpens:
    listener = ChangeStreamOpens()

    def client(ql):
        return MongoClient(ql.uri, tz_aware=True, maxPoolSize=None, event_listeners=[listener])

    monkeypatch.setattr(worker, "_worker_client", client)
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
    # First run: the subscriptions were created at five different positions; the first opens
    # the shared stream, each other one probes from its own position and joins at once.
    assert opens.opened["orders"] <= 5
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


@pytest.fixture()
def events_file(tmp_path):
    return tmp_path / "events.txt"
