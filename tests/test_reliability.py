"""Reliability: real worker processes killed with SIGKILL, a server stopped and restarted, a
failing handler, two competing workers, a lost resume point.

These start processes and servers, so they are marked ``slow``; they run in the default suite.
The worker processes deliver to ``python:test_reliability:append_event`` (below), which appends
one line per delivery to the file named by $QL_TEST_EVENTS_FILE.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from bson import Timestamp
from event_helpers import count_rows, read_rows, wait_for

import queryleaf
from queryleaf.engine import free_port, start_ephemeral_server
from queryleaf.events import failures, names

pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parent


# ------------------------------------------------------------------ the handler target


def append_event(event: dict) -> None:
    """``deliver_to = 'python:test_reliability:append_event'``: one line per delivery."""
    delay = float(os.environ.get("QL_TEST_HANDLER_DELAY") or 0)
    if delay:
        time.sleep(delay)
    line = f"{os.getpid()} {event['ns']['coll']} {event['documentKey']['_id']}\n"
    with open(os.environ["QL_TEST_EVENTS_FILE"], "a") as f:
        f.write(line)


def deliveries(path: Path) -> list[tuple[int, str, int]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        pid, coll, key = line.split()
        out.append((int(pid), coll, int(key)))
    return out


# ------------------------------------------------------------------ helpers


class Worker:
    """A `queryleaf worker` process."""

    def __init__(self, uri: str, db: str, events_file: Path, *args: str, delay: float = 0.0):
        env = {
            **os.environ,
            "QUERYLEAF_URI": uri,
            "QUERYLEAF_DB": db,
            "QL_TEST_EVENTS_FILE": str(events_file),
            "QL_TEST_HANDLER_DELAY": str(delay),
            "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        }
        self.log_path = events_file.with_suffix(f".worker{time.monotonic_ns()}.log")
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in wait()/kill()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "queryleaf", "worker", "--quiet", *args],
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            env=env,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.log.close()

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self.log.close()

    def output(self) -> str:
        return self.log_path.read_text()


def completed(db, subscription_id: str) -> int:
    return count_rows(db, {"subscription_id": subscription_id, "processing_status": "completed"})


def lease_holder(db, name: str) -> int | None:
    lease = db[names.LEASES].find_one({"_id": name})
    return lease["pid"] if lease else None


@pytest.fixture()
def events_file(tmp_path) -> Path:
    return tmp_path / "events.txt"


# ------------------------------------------------------------------ kill -9


def test_kill_9_at_random_points_loses_and_duplicates_nothing(ql, server, events_file):
    seed = random.randrange(1 << 30)
    rnd = random.Random(seed)
    db = ql.db
    ql.execute(
        "CREATE EVENT_SUBSCRIPTION mirror AS (watch_collections = 'orders',"
        " deliver_to = 'collection:order_mirror')"
    )
    ql.execute(
        "CREATE EVENT_SUBSCRIPTION audit AS (watch_collections = 'orders',"
        " deliver_to = 'python:test_reliability:append_event')"
    )
    total = 1000

    def write():
        for start in range(0, total, 10):
            db.orders.insert_many([{"_id": i, "n": i} for i in range(start, start + 10)])
            time.sleep(0.04)  # ~5 s of writes

    writer = threading.Thread(target=write)
    writer.start()
    kills = 0
    while writer.is_alive() or kills < 5:
        worker = Worker(server.uri, ql.database_name, events_file, "--lease-seconds", "1")
        time.sleep(rnd.uniform(0.3, 2.5))  # at start-up, mid-stream, while idle: anywhere
        worker.kill()
        kills += 1
    writer.join()
    final = Worker(server.uri, ql.database_name, events_file, "--lease-seconds", "1")
    try:
        wait_for(
            lambda: lease_holder(db, "mirror") == lease_holder(db, "audit") == final.pid,
            10,
            "the last worker to take over the leases of the killed ones",
        )
        wait_for(
            lambda: completed(db, "mirror") == total and completed(db, "audit") == total,
            60,
            f"every change to be handled (seed {seed})",
        )
        time.sleep(0.3)
    finally:
        assert final.terminate() == 0, final.output()

    context = f"(seed {seed}, {kills} kills)"
    assert db.order_mirror.count_documents({}) == total, context
    assert sorted(d["documentKey"]["_id"] for d in db.order_mirror.find()) == list(range(total))
    for sub in ("mirror", "audit"):
        rows = read_rows(db, {"subscription_id": sub})
        assert len(rows) == total, context
        assert Counter(r["processing_status"] for r in rows) == {"completed": total}, context
        assert len({r["document_key"]["_id"] for r in rows}) == total, context
        stats = db[names.SUBSCRIPTIONS].find_one({"_id": sub})
        assert stats["events_processed"] == total, context  # counters move with checkpoints
        assert stats["status"] == "active"
    seen = Counter(key for _, _, key in deliveries(events_file))
    assert set(seen) == set(range(total)), context  # every change at least once
    assert db[names.LEASES].count_documents({}) == 0  # SIGTERM released the leases


# ------------------------------------------------------------------ server restart


def test_server_stop_and_restart_mid_stream_loses_nothing(tmp_path, events_file):
    port = free_port()
    storage = str(tmp_path / "server")

    def start():
        return start_ephemeral_server(
            storage_path=storage, port=port, log_path=str(tmp_path / "server.log")
        )

    srv = start()
    ql = queryleaf.connect(srv.uri, database="restart")
    worker = None
    try:
        ql.execute(
            "CREATE EVENT_SUBSCRIPTION mirror AS (watch_collections = 'orders',"
            " deliver_to = 'collection:order_mirror')"
        )
        ql.execute(
            "CREATE EVENT_SUBSCRIPTION audit AS (watch_collections = 'orders',"
            " deliver_to = 'python:test_reliability:append_event')"
        )
        worker = Worker(srv.uri, "restart", events_file, "--lease-seconds", "2")
        db = ql.db
        for i in range(150):
            db.orders.insert_one({"_id": i})
        wait_for(lambda: completed(db, "audit") >= 50, 30, "the worker to be mid-stream")
        srv.stop()  # while the worker is still consuming the first 150
        time.sleep(1.0)
        srv = start()
        for i in range(150, 300):
            db.orders.insert_one({"_id": i})
        wait_for(
            lambda: completed(db, "mirror") == 300 and completed(db, "audit") == 300,
            60,
            "the worker to reconnect and finish",
        )
        assert worker.terminate() == 0, worker.output()
        assert db.order_mirror.count_documents({}) == 300
        for sub in ("mirror", "audit"):
            doc = db[names.SUBSCRIPTIONS].find_one({"_id": sub})
            assert doc["status"] == "active", doc["status_message"]
            assert count_rows(db, {"subscription_id": sub}) == 300
        assert {key for _, _, key in deliveries(events_file)} == set(range(300))
    finally:
        if worker is not None and worker.proc.poll() is None:
            worker.kill()
        ql.close()
        srv.stop()


# ------------------------------------------------------------------ transient errors


def test_dropped_connections_reconnect_and_resume_from_the_checkpoint(ql, server, caplog):
    """The server drops the worker's connections again and again (a failpoint)."""
    flaky = queryleaf.connect(server.uri + "&appName=flaky_worker", database=ql.database_name)
    admin = ql.client.admin
    stop = threading.Event()
    try:
        ql.execute(
            "CREATE EVENT_SUBSCRIPTION mirror AS (watch_collections = 'orders',"
            " deliver_to = 'collection:order_mirror')"
        )
        seen: list[int] = []
        flaky.on("mirror")(lambda event: seen.append(event["documentKey"]["_id"]))
        with caplog.at_level("WARNING", logger="queryleaf.worker"):
            worker = threading.Thread(
                target=flaky.run_subscriptions, kwargs={"stop_event": stop, "poll_interval": 0.2}
            )
            worker.start()
            # The lease taken and the definition stamped: what fails from now on is the
            # runner's stream and writes (and the heartbeat's), not the worker taking the lease.
            wait_for(
                lambda: (ql.db[names.SUBSCRIPTIONS].find_one({"_id": "mirror"}) or {}).get(
                    "worker_id"
                ),
                10,
                "the lease",
            )
            admin.command(
                "configureFailPoint",
                "failCommand",
                mode={"times": 8},
                data={
                    "failCommands": ["getMore", "update", "findAndModify"],
                    "closeConnection": True,
                    "appName": "flaky_worker",
                },
            )
            for start in range(0, 60, 5):
                ql.db.orders.insert_many([{"_id": i} for i in range(start, start + 5)])
                time.sleep(0.05)
            wait_for(lambda: completed(ql.db, "mirror") == 60, 30, "every change")
            # ... and checkpointed (a checkpoint that failed is redone after the reconnect)
            wait_for(
                lambda: (
                    ql.db[names.SUBSCRIPTIONS].find_one({"_id": "mirror"})["events_processed"] >= 60
                ),
                30,
                "the checkpoint",
            )
            stop.set()
            worker.join(20)
    finally:
        stop.set()
        admin.command("configureFailPoint", "failCommand", mode="off")
        flaky.close()
    assert "reconnecting" in caplog.text
    assert set(seen) == set(range(60))  # every change at least once
    first_seen = list(dict.fromkeys(seen))
    assert first_seen == sorted(first_seen)  # and first seen in order
    assert ql.db.order_mirror.count_documents({}) == 60
    rows = read_rows(ql.db)
    assert len(rows) == 60 and {r["processing_status"] for r in rows} == {"completed"}
    doc = ql.db[names.SUBSCRIPTIONS].find_one({"_id": "mirror"})
    assert doc["status"] == "active" and doc["events_processed"] == 60


# ------------------------------------------------------------------ failing handler


def test_failing_events_back_off_then_dead_letter_while_the_rest_flow_and_replay(ql):
    ql.execute(
        "CREATE EVENT_SUBSCRIPTION payments AS (watch_collections = 'payments',"
        " max_retry_attempts = 3, retry_delay_ms = 100, exponential_backoff = true)"
    )
    broken = {3, 7}
    attempts: dict[int, list[float]] = {}
    order: list[int] = []

    @ql.on("payments")
    def handle(event):
        key = event["documentKey"]["_id"]
        attempts.setdefault(key, []).append(time.monotonic())
        if key in broken:
            raise ConnectionRefusedError(f"ledger refused payment {key}")
        order.append(key)

    ql.db.payments.insert_many([{"_id": i} for i in range(10)])
    ql.run_subscriptions(idle_timeout=0.8, poll_interval=0.2)
    assert order == [0, 1, 2, 4, 5, 6, 8, 9]  # the others kept flowing, in order
    for key in broken:
        times = attempts[key]
        assert len(times) == 4  # 1 + max_retry_attempts
        delays = [b - a for a, b in zip(times, times[1:], strict=False)]
        for delay, expected in zip(delays, (0.1, 0.2, 0.4), strict=True):
            assert expected <= delay < expected + 0.25, delays
    rows = {r["document_key"]["_id"]: r for r in read_rows(ql.db)}
    for key in broken:
        assert rows[key]["processing_status"] == "dead_letter"
        assert rows[key]["retry_count"] == 3
        assert rows[key]["last_error"] == f"ConnectionRefusedError: ledger refused payment {key}"
    letters = ql.execute(
        "SELECT event_id, error, attempts, status, created_at"
        " FROM DEAD_LETTER_EVENTS() ORDER BY event_id"
    ).rows
    assert [(r["attempts"], r["status"]) for r in letters] == [(4, "dead_letter")] * 2

    broken.clear()  # the handler is fixed
    replay = ql.execute("REPLAY DEAD_LETTER_EVENTS WHERE subscription_id = 'payments'")
    assert replay.rowcount == 2
    report = ql.run_subscriptions(idle_timeout=0.8, poll_interval=0.2)
    assert report.by_subscription["payments"] == {"replay_completed": 2}
    assert sorted(order[8:]) == [3, 7] and len(order) == 10  # delivered once each
    assert {r["status"] for r in ql.db[names.DEAD_LETTERS].find()} == {"replayed"}
    assert {r["processing_status"] for r in read_rows(ql.db)} == {"completed"}


# ------------------------------------------------------------------ two workers


def test_two_workers_one_consumer_each_and_takeover_within_the_lease(ql, server, events_file):
    db = ql.db
    lease_s = 2.0
    for name, coll in (("audit_a", "orders"), ("audit_b", "payments")):
        ql.execute(
            f"CREATE EVENT_SUBSCRIPTION {name} AS (watch_collections = '{coll}',"
            " deliver_to = 'python:test_reliability:append_event')"
        )
    first = Worker(server.uri, ql.database_name, events_file, "--lease-seconds", str(lease_s))
    second = None
    try:
        wait_for(
            lambda: lease_holder(db, "audit_a") and lease_holder(db, "audit_b"),
            30,
            "the first worker to take both leases",
        )
        second = Worker(server.uri, ql.database_name, events_file, "--lease-seconds", str(lease_s))
        for i in range(100):
            db.orders.insert_one({"_id": i})
            db.payments.insert_one({"_id": i})
        wait_for(
            lambda: completed(db, "audit_a") == 100 and completed(db, "audit_b") == 100,
            30,
            "the first 100 changes",
        )
        streams = ql.execute(
            "SELECT subscription_name, pid, worker_id, heartbeat_at"
            " FROM ACTIVE_CHANGE_STREAMS() ORDER BY subscription_name"
        ).rows
        assert [(r["subscription_name"], r["pid"]) for r in streams] == [
            ("audit_a", first.pid),
            ("audit_b", first.pid),
        ]
        assert {pid for pid, _, _ in deliveries(events_file)} == {first.pid}  # one consumer

        killed_at = time.monotonic()
        first.kill()
        for i in range(100, 200):
            db.orders.insert_one({"_id": i})
            db.payments.insert_one({"_id": i})
        wait_for(
            lambda: (
                lease_holder(db, "audit_a") == second.pid
                and lease_holder(db, "audit_b") == second.pid
            ),
            lease_s + 5,
            "the second worker to take over",
        )
        takeover = time.monotonic() - killed_at
        # the lease expires at most lease_s after the last heartbeat; +1 poll of the survivor
        assert takeover <= lease_s + 1.0 + 1.0, takeover
        wait_for(
            lambda: completed(db, "audit_a") == 200 and completed(db, "audit_b") == 200,
            30,
            "the second worker to catch up",
        )
        assert second.terminate(signal.SIGINT) == 0, second.output()
    finally:
        first.kill()
        if second is not None and second.proc.poll() is None:
            second.kill()
    delivered = deliveries(events_file)
    for coll in ("orders", "payments"):
        keys = {key for _, c, key in delivered if c == coll}
        assert keys == set(range(200))  # nothing lost across the takeover
    assert {pid for pid, _, key in delivered if key >= 100} == {second.pid}
    assert db[names.LEASES].count_documents({}) == 0


# ------------------------------------------------------------------ SIGTERM mid-event


def test_sigterm_finishes_the_event_in_hand_checkpoints_and_releases(
    ql, server, events_file, monkeypatch
):
    db = ql.db
    ql.execute(
        "CREATE EVENT_SUBSCRIPTION slow AS (watch_collections = 'orders',"
        " deliver_to = 'python:test_reliability:append_event')"
    )
    worker = Worker(server.uri, ql.database_name, events_file, delay=0.3)
    try:
        db.orders.insert_many([{"_id": i} for i in range(20)])
        wait_for(lambda: len(deliveries(events_file)) >= 3, 30, "a few slow deliveries")
        assert worker.terminate() == 0, worker.output()
    finally:
        if worker.proc.poll() is None:
            worker.kill()
    handled = len(deliveries(events_file))
    assert 3 <= handled < 20
    rows = read_rows(db, {"processing_status": "completed"})
    assert len(rows) == handled  # the event in hand was finished and recorded
    doc = db[names.SUBSCRIPTIONS].find_one({"_id": "slow"})
    assert doc["resume_token"]["_data"] == rows[-1]["event_id"]
    assert doc["worker_id"] is None and db[names.LEASES].count_documents({}) == 0
    monkeypatch.setenv("QL_TEST_EVENTS_FILE", str(events_file))
    ql.run_subscriptions(idle_timeout=0.8, poll_interval=0.2)  # the rest, exactly once
    assert sorted(key for _, _, key in deliveries(events_file)) == list(range(20))


# ------------------------------------------------------------------ history lost


def test_lost_history_fails_the_subscription_clearly_and_reset_recovers(tmp_path):
    srv = start_ephemeral_server(extra_args=("--oplog-max-entries", "50"))
    ql = queryleaf.connect(srv.uri, database="history")
    try:
        db = ql.db
        ql.execute("CREATE EVENT_SUBSCRIPTION hist AS (watch_collections = 'orders')")
        ql.execute("CREATE EVENT_SUBSCRIPTION never_ran AS (watch_collections = 'orders')")
        db.orders.insert_many([{"_id": i} for i in range(3)])
        ql.run_subscriptions(subscriptions=["hist"], idle_timeout=0.5, poll_interval=0.2)
        assert db[names.SUBSCRIPTIONS].find_one({"_id": "hist"})["resume_token"] is not None
        # No worker runs while 1,100 changes go by: the oplog (50 entries) forgets them.
        db.orders.insert_many([{"_id": i} for i in range(3, 1103)])
        ql.execute("CREATE EVENT_SUBSCRIPTION fresh AS (watch_collections = 'orders')")
        db.orders.insert_one({"_id": "after"})
        ql.run_subscriptions(idle_timeout=1.0, poll_interval=0.2)
        for name in ("hist", "never_ran"):
            (row,) = ql.execute(
                f"SELECT status, status_message FROM EVENT_SUBSCRIPTIONS() WHERE name = '{name}'"
            ).rows
            assert row["status"] == "failed"
            assert f"RESET EVENT_SUBSCRIPTION {name} TO NOW" in row["status_message"]
        for name in ("hist", "never_ran"):  # never_ran: from its position at CREATE
            message = db[names.SUBSCRIPTIONS].find_one({"_id": name})["status_message"]
            assert "ChangeStreamHistoryLost" in message and "no longer in the oplog" in message
        # The worker kept the other subscription running.
        assert [r["document_key"] for r in read_rows(db, {"subscription_id": "fresh"})] == [
            {"_id": "after"}
        ]
        assert count_rows(db, {"subscription_id": "hist"}) == 3

        ql.execute("RESET EVENT_SUBSCRIPTION hist TO NOW")
        db.orders.insert_one({"_id": "recovered"})
        ql.run_subscriptions(subscriptions=["hist"], idle_timeout=0.8, poll_interval=0.2)
        doc = db[names.SUBSCRIPTIONS].find_one({"_id": "hist"})
        assert doc["status"] == "active" and doc["status_message"] is None
        keys = [r["document_key"]["_id"] for r in read_rows(db, {"subscription_id": "hist"})]
        assert keys == [0, 1, 2, "recovered"]

        # A start time the oplog no longer covers is refused too (some servers would silently
        # start at their oldest entry instead).
        # (RESET itself refuses a time already gone: it goes while no worker runs.)
        time.sleep(1.1)  # a whole second after the oplog's entries so far
        now = datetime.now(UTC)
        ql.execute(f"RESET EVENT_SUBSCRIPTION never_ran TO TIMESTAMP '{now.isoformat()}'")
        time.sleep(1.1)  # the changes that push it out of the oplog come a second later
        db.orders.insert_many([{"_id": f"later{i}"} for i in range(1100)])
        start = Timestamp(int(now.timestamp()), 1)
        wait_for(lambda: failures.oldest_oplog_time(db) > start, 10, "the oplog to move on")
        ql.run_subscriptions(subscriptions=["never_ran"], idle_timeout=0.5, poll_interval=0.2)
        never = db[names.SUBSCRIPTIONS].find_one({"_id": "never_ran"})
        assert never["status"] == "failed"
        assert "older than the oldest oplog entry" in never["status_message"]
    finally:
        ql.close()
        srv.stop()
