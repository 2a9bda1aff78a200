"""The worker runtime in-process: batches, concurrency, timeouts, signatures, leases, metrics,
retention. (Process kills and server restarts are in test_reliability.py.)"""

from __future__ import annotations

import hashlib
import hmac
import http.server
import logging
import re
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from bson import ObjectId, json_util
from event_helpers import count_rows, definition, drain, log_rows, wait_for

from queryleaf.errors import SubscriptionError
from queryleaf.events import names, retention
from queryleaf.events.metrics import percentile


class Background:
    """A worker running in a thread until stopped."""

    def __init__(self, ql, **kwargs):
        self.stop_event = threading.Event()
        self.report = None
        kwargs.setdefault("poll_interval", 0.2)

        def run():
            self.report = ql.run_subscriptions(stop_event=self.stop_event, **kwargs)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def stop(self):
        self.stop_event.set()
        self.thread.join(20)
        assert not self.thread.is_alive()
        return self.report


# ------------------------------------------------------------------ batch_processing


def test_batches_are_lists_flushed_when_full_idle_or_stopping(ql):
    ql.execute(
        "CREATE EVENT_SUBSCRIPTION batched AS (watch_collections = 'orders',"
        " batch_processing = true, batch_size = 4)"
    )
    batches: list[list[int]] = []
    ql.on("batched")(lambda events: batches.append([e["documentKey"]["_id"] for e in events]))
    ql.db.orders.insert_many([{"_id": i} for i in range(10)])
    report = drain(ql)
    assert report.by_subscription["batched"]["completed"] == 10
    assert [i for batch in batches for i in batch] == list(range(10))  # in order, once
    assert all(len(b) <= 4 for b in batches) and max(map(len, batches)) == 4
    assert len(batches[-1]) < 4  # the partial batch was flushed when the stream went idle
    rows = log_rows(ql)
    assert len(rows) == 10 and {r["processing_status"] for r in rows} == {"completed"}
    assert definition(ql, "batched")["resume_token"]["_data"] == rows[-1]["event_id"]

    # Stopping (here: max_events) delivers the partial batch in hand before checkpointing.
    batches.clear()
    ql.db.orders.insert_many([{"_id": i} for i in range(10, 13)])
    assert ql.run_subscriptions(max_events=2, poll_interval=0.2).events == 2
    assert batches == [[10, 11]]
    assert definition(ql, "batched")["resume_token"]["_data"] == log_rows(ql)[-1]["event_id"]
    drain(ql)
    assert batches[-1] == [12]


def test_events_waiting_behind_a_retried_one_show_as_queued(ql):
    ql.execute(
        "CREATE EVENT_SUBSCRIPTION strict AS (watch_collections = 'orders',"
        " max_retry_attempts = 3, retry_delay_ms = 400, exponential_backoff = false)"
    )
    failures = {"count": 0}

    def handler(event):
        if event["documentKey"]["_id"] == "bad" and failures["count"] < 2:
            failures["count"] += 1
            raise RuntimeError("not yet")

    ql.on("strict")(handler)
    worker = Background(ql)
    try:
        ql.db.orders.insert_many([{"_id": "bad"}, {"_id": "x"}, {"_id": "y"}])

        def in_flight():
            rows = {r["document_key"]["_id"]: r["processing_status"] for r in log_rows(ql)}
            return rows if len(rows) == 3 else None

        rows = wait_for(in_flight, what="rows in flight")
        assert rows == {"bad": "retrying", "x": "queued", "y": "queued"}
        wait_for(
            lambda: {r["processing_status"] for r in log_rows(ql)} == {"completed"},
            what="all completed",
        )
    finally:
        worker.stop()
    rows = log_rows(ql)
    assert [(r["document_key"]["_id"], r["retry_count"]) for r in rows] == [
        ("bad", 2),
        ("x", 0),
        ("y", 0),
    ]


def test_a_failing_batch_is_retried_whole_then_dead_lettered(ql):
    ql.execute(
        "CREATE EVENT_SUBSCRIPTION batched AS (watch_collections = 'orders',"
        " batch_processing = true, batch_size = 3, max_retry_attempts = 1,"
        " retry_delay_ms = 10)"
    )
    calls: list[list[int]] = []

    @ql.on("batched")
    def handle(events):
        ids = [e["documentKey"]["_id"] for e in events]
        calls.append(ids)
        if 1 in ids:
            raise RuntimeError("poison")

    ql.db.orders.insert_many([{"_id": i} for i in range(3)])
    drain(ql)
    assert calls == [[0, 1, 2], [0, 1, 2]]
    assert {r["processing_status"] for r in log_rows(ql)} == {"dead_letter"}
    assert ql.db[names.DEAD_LETTERS].count_documents({}) == 3
    assert definition(ql, "batched")["events_dead_lettered"] == 3


# ------------------------------------------------------------------ preserve_order = false


def test_unordered_delivery_is_concurrent_across_documents_ordered_within_one(ql):
    ql.execute(
        "CREATE EVENT_SUBSCRIPTION fast AS (watch_collections = 'orders', preserve_order = false)"
    )
    seen: list[tuple[int, int]] = []
    running = {"now": 0, "max": 0}
    calls: list[float] = []
    lock = threading.Lock()

    @ql.on("fast")
    def handle(event):
        with lock:
            calls.append(time.monotonic())
            running["now"] += 1
            running["max"] = max(running["max"], running["now"])
        time.sleep(0.1)
        with lock:
            calls.append(time.monotonic())
            running["now"] -= 1
            change = (
                event.get("updateDescription", {}).get("updatedFields") or event["fullDocument"]
            )  # the post-image is read late: use what changed
            seen.append((event["documentKey"]["_id"], change["v"]))

    for v in range(3):
        for doc in range(6):
            ql.db.orders.update_one({"_id": doc}, {"$set": {"v": v}}, upsert=True)
    report = drain(ql, idle_timeout=0.6)
    assert report.by_subscription["fast"]["completed"] == 18
    assert running["max"] > 1
    assert max(calls) - min(calls) < 18 * 0.1 / 2  # much faster than one at a time
    for doc in range(6):
        assert [v for d, v in seen if d == doc] == [0, 1, 2]  # per document: in order
    rows = log_rows(ql)
    assert len(rows) == 18 and {r["processing_status"] for r in rows} == {"completed"}
    assert definition(ql, "fast")["resume_token"]["_data"] == rows[-1]["event_id"]


def test_unordered_checkpoint_stays_before_the_oldest_unfinished_event(ql):
    ql.execute(
        "CREATE EVENT_SUBSCRIPTION fast AS (watch_collections = 'orders',"
        " preserve_order = false, max_retry_attempts = 5, retry_delay_ms = 300,"
        " exponential_backoff = false)"
    )
    ql.on("fast")(
        lambda e: (
            (_ for _ in ()).throw(ValueError("down")) if e["documentKey"]["_id"] == "slow" else None
        )
    )
    ql.db.orders.insert_many([{"_id": "a"}, {"_id": "slow"}, {"_id": "b"}, {"_id": "c"}])
    worker = Background(ql)
    try:
        # 'slow' keeps retrying while a, b, c complete behind it: the checkpoint stays at 'a'.
        wait_for(lambda: count_rows(ql.db, {"processing_status": "completed"}) == 3)
        rows = {r["document_key"]["_id"]: r for r in log_rows(ql)}
        assert rows["slow"]["processing_status"] == "retrying"
        assert definition(ql, "fast")["resume_token"]["_data"] == rows["a"]["event_id"]
    finally:
        worker.stop()  # abandons the retry: 'slow' stays unacknowledged
    assert definition(ql, "fast")["resume_token"]["_data"] == rows["a"]["event_id"]


# ------------------------------------------------------------------ processing_timeout_ms


def test_a_handler_running_longer_than_the_timeout_is_a_failure(ql):
    ql.execute(
        "CREATE EVENT_SUBSCRIPTION timed AS (watch_collections = 'orders',"
        " processing_timeout_ms = 200, max_retry_attempts = 1, retry_delay_ms = 10)"
    )
    calls: list[str] = []

    @ql.on("timed")
    def handle(event):
        calls.append(event["documentKey"]["_id"])
        if event["documentKey"]["_id"] == "hangs":
            time.sleep(1.0)

    ql.db.orders.insert_many([{"_id": "ok1"}, {"_id": "hangs"}, {"_id": "ok2"}])
    started = time.monotonic()
    drain(ql, idle_timeout=0.5)
    assert time.monotonic() - started < 3.0
    assert calls == ["ok1", "hangs", "hangs", "ok2"]
    rows = {r["document_key"]["_id"]: r for r in log_rows(ql)}
    assert rows["hangs"]["processing_status"] == "dead_letter"
    assert "HandlerTimeout" in rows["hangs"]["last_error"]
    assert "processing_timeout_ms=200" in rows["hangs"]["last_error"]
    assert rows["ok1"]["processing_status"] == rows["ok2"]["processing_status"] == "completed"


# ------------------------------------------------------------------ webhook_secret


class _Hook(http.server.BaseHTTPRequestHandler):
    received: list[tuple[bytes, dict]] = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((body, dict(self.headers)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_webhook_posts_are_signed_with_hmac_sha256(ql, monkeypatch):
    _Hook.received = []
    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{web.server_port}/hook"
    monkeypatch.setenv("ORDERS_HOOK_SECRET", "from-the-environment")
    try:
        ql.execute(
            f"CREATE EVENT_SUBSCRIPTION signed AS (watch_collections = 'orders',"
            f" deliver_to = '{url}', webhook_secret = 's3cret')"
        )
        ql.execute(
            f"CREATE EVENT_SUBSCRIPTION signed_env AS (watch_collections = 'orders',"
            f" deliver_to = '{url}', webhook_secret = 'env:ORDERS_HOOK_SECRET',"
            f" batch_processing = true)"
        )
        ql.db.orders.insert_one({"_id": 1})
        drain(ql)
    finally:
        web.shutdown()
    by_subscription = {h["X-Queryleaf-Subscription"]: (body, h) for body, h in _Hook.received}
    body, headers = by_subscription["signed"]
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-Queryleaf-Signature-256"] == f"sha256={expected}"
    assert json_util.loads(body)["_id"]["_data"] == headers["X-Queryleaf-Event-Id"]
    body, headers = by_subscription["signed_env"]
    expected = hmac.new(b"from-the-environment", body, hashlib.sha256).hexdigest()
    assert headers["X-Queryleaf-Signature-256"] == f"sha256={expected}"
    assert headers["X-Queryleaf-Batch-Size"] == "1"
    assert [e["documentKey"] for e in json_util.loads(body)] == [{"_id": 1}]


def test_webhook_secret_needs_a_webhook_target(ql):
    with pytest.raises(SubscriptionError, match="webhook_secret.*only applies to webhook"):
        ql.execute("CREATE EVENT_SUBSCRIPTION s AS (webhook_secret = 'x')")
    with pytest.raises(SubscriptionError, match="expected string"):
        ql.execute(
            "CREATE EVENT_SUBSCRIPTION s AS (deliver_to = 'https://example.com',"
            " webhook_secret = 42)"
        )
    assert ql.db[names.SUBSCRIPTIONS].count_documents({}) == 0


# ------------------------------------------------------------------ leases


def test_one_worker_per_subscription_and_takeover_after_release(ql):
    ql.execute("CREATE EVENT_SUBSCRIPTION leased AS (watch_collections = 'orders')")
    seen: list[int] = []
    ql.on("leased")(lambda event: seen.append(event["documentKey"]["_id"]))

    first = Background(ql, lease_seconds=2)
    lease = wait_for(lambda: ql.db[names.LEASES].find_one({"_id": "leased"}))
    second = Background(ql, lease_seconds=2)
    try:
        time.sleep(0.6)  # the second worker polls, sees a live lease, stays out
        (row,) = ql.execute(
            "SELECT subscription_name, worker_id, host, pid, heartbeat_at,"
            " expires_at, watching FROM ACTIVE_CHANGE_STREAMS()"
        ).rows
        assert row["worker_id"] == lease["worker_id"] and row["watching"].endswith(".orders")
        assert definition(ql, "leased")["worker_id"] == lease["worker_id"]
        ql.db.orders.insert_many([{"_id": i} for i in range(5)])
        wait_for(lambda: count_rows(ql.db, {}) == 5)
        # The heartbeat keeps the lease alive past its first expiry.
        time.sleep(2.5)
        renewed = ql.db[names.LEASES].find_one({"_id": "leased"})
        assert renewed["worker_id"] == lease["worker_id"]
        assert renewed["heartbeat_at"] > lease["heartbeat_at"]
        first.stop()  # releases the lease: the second worker takes over at its next poll
        taken = wait_for(
            lambda: (
                (ql.db[names.LEASES].find_one({"_id": "leased"}) or {}).get("worker_id")
                not in (None, lease["worker_id"])
            ),
            timeout=3,
        )
        assert taken
        ql.db.orders.insert_many([{"_id": i} for i in range(5, 8)])
        wait_for(lambda: count_rows(ql.db, {}) == 8)
    finally:
        first.stop()
        second.stop()
    assert ql.db[names.LEASES].count_documents({}) == 0  # released on a graceful stop
    assert definition(ql, "leased")["worker_id"] is None
    assert seen == list(range(8))  # once each, in order, across the takeover
    assert first.report.by_subscription["leased"]["completed"] == 5
    assert second.report.by_subscription["leased"]["completed"] == 3


# ------------------------------------------------------------------ metrics


def test_subscription_rows_carry_counters_percentiles_lag_and_owner(ql):
    ql.execute(
        "CREATE EVENT_SUBSCRIPTION measured AS (watch_collections = 'orders',"
        " service_name = 'billing', max_retry_attempts = 1, retry_delay_ms = 5)"
    )

    @ql.on("measured")
    def handle(event):
        time.sleep(0.002)
        if event["documentKey"]["_id"] == 3:
            raise ValueError("nope")

    worker = Background(ql)
    try:
        wait_for(lambda: (definition(ql, "measured") or {}).get("worker_id"))
        ql.db.orders.insert_many([{"_id": i} for i in range(10)])
        wait_for(lambda: definition(ql, "measured")["events_received"] == 10)
        wait_for(lambda: definition(ql, "measured")["resume_token_lag_seconds"] == 0)
        (row,) = ql.execute(
            "SELECT status, events_received, events_processed, events_failed, events_retried,"
            " events_dead_lettered, processing_time_p50_ms, processing_time_p99_ms,"
            " resume_token_lag_seconds, last_event_at, worker_id, worker_host"
            " FROM EVENT_SUBSCRIPTIONS() WHERE name = 'measured'"
        ).rows
        dashboard = ql.execute(
            "SELECT (SELECT COUNT(*) FROM ACTIVE_CHANGE_STREAMS()) AS active_streams,"
            " (SELECT MAX(resume_token_lag_seconds) FROM EVENT_SUBSCRIPTIONS()) AS max_lag"
        ).rows[0]
    finally:
        worker.stop()
    assert row["status"] == "active"
    assert (
        row["events_received"],
        row["events_processed"],
        row["events_failed"],
        row["events_retried"],
        row["events_dead_lettered"],
    ) == (10, 9, 1, 1, 1)
    assert 2 <= row["processing_time_p50_ms"] <= row["processing_time_p99_ms"] < 1000
    assert row["resume_token_lag_seconds"] == 0 and row["last_event_at"] is not None
    assert row["worker_id"] and row["worker_host"]
    assert dashboard == {"active_streams": 1, "max_lag": 0}
    letter = ql.execute(
        "SELECT event_id, error, attempts, created_at FROM DEAD_LETTER_EVENTS()"
    ).rows[0]
    assert letter["attempts"] == 2 and letter["created_at"] is not None


def test_percentile_is_nearest_rank():
    values = sorted(float(v) for v in range(1, 101))
    assert percentile(values, 50) == 50 and percentile(values, 99) == 99
    assert percentile([7.0], 99) == 7 and percentile([], 50) is None


# ------------------------------------------------------------------ retention


def test_retention_ttl_indexes_defaults_options_and_environment(ql, monkeypatch):
    ql.execute("CREATE EVENT_SUBSCRIPTION kept AS (watch_collections = 'orders')")
    monkeypatch.delenv("QUERYLEAF_EVENT_LOG_RETENTION", raising=False)
    monkeypatch.delenv("QUERYLEAF_DEAD_LETTER_RETENTION", raising=False)

    def ttl(collection):
        index = ql.db[collection].index_information().get(retention.INDEX_NAME)
        return None if index is None else (index["key"], index["expireAfterSeconds"])

    drain(ql, idle_timeout=0.1)
    assert ttl(names.EVENT_LOG) == ([("processing_completed_at", 1)], 7 * 86400)
    assert ttl(names.DEAD_LETTERS) == ([("created_at", 1)], 30 * 86400)
    drain(ql, idle_timeout=0.1, log_retention="12h", dead_letter_retention="off")
    assert ttl(names.EVENT_LOG)[1] == 12 * 3600 and ttl(names.DEAD_LETTERS) is None
    drain(ql, idle_timeout=0.1)  # no setting: an existing index is kept as it is
    assert ttl(names.EVENT_LOG)[1] == 12 * 3600
    monkeypatch.setenv("QUERYLEAF_EVENT_LOG_RETENTION", "90m")
    drain(ql, idle_timeout=0.1)
    assert ttl(names.EVENT_LOG)[1] == 90 * 60
    assert retention.parse_duration("2w") == 14 * 86400
    with pytest.raises(ValueError, match="not a duration"):
        retention.parse_duration("soon")


# ------------------------------------------------------------------ the docs


def test_every_sql_example_of_the_events_doc_runs(ql):
    text = (Path(__file__).resolve().parents[1] / "docs" / "events.md").read_text()
    blocks = re.findall(r"```sql\n(.*?)```", text, re.S)
    assert len(blocks) >= 3
    ql.db.users.insert_one({"_id": 1, "email": "a@example.com"})
    for block in blocks:
        ql.execute_script(block)
    assert {d["_id"] for d in ql.db[names.SUBSCRIPTIONS].find()} == {
        "user_service_events",
        "vip_changes",
    }


def test_a_dropped_collection_is_logged_and_the_stream_continues(ql):
    ql.execute(
        "CREATE EVENT_SUBSCRIPTION feed AS (watch_collections = 'orders', preserve_order = false)"
    )
    ql.db.orders.insert_one({"_id": 1})
    ql.db.orders.drop()
    ql.db.orders.insert_one({"_id": 2})
    drain(ql)
    assert [(r["event_type"], r["document_key"]) for r in log_rows(ql)] == [
        ("insert", {"_id": 1}),
        ("drop", None),
        ("insert", {"_id": 2}),
    ]
    assert definition(ql, "feed")["status"] == "active"


def test_lag_without_a_worker_grows_from_the_position_never_null(ql):
    ql.execute("CREATE EVENT_SUBSCRIPTION unrun AS (watch_collections = 'orders')")
    lag = "SELECT resume_token_lag_seconds AS lag FROM EVENT_SUBSCRIPTIONS() WHERE name = '{}'"
    first = ql.execute(lag.format("unrun")).rows[0]["lag"]
    time.sleep(1.1)
    later = ql.execute(lag.format("unrun")).rows[0]["lag"]
    assert first is not None and 0 <= first < 5  # from the CREATE's cluster time
    assert later >= first + 1
    # A worker that ran and stopped: the lag grows again from its last handled event.
    ql.db.orders.insert_one({"_id": 1})
    drain(ql, max_events=1)
    handled = definition(ql, "unrun")["resume_token_timestamp"]
    assert definition(ql, "unrun")["worker_id"] is None  # released: no worker runs it now
    time.sleep(1.1)
    (row,) = ql.execute(
        "SELECT resume_token_lag_seconds AS lag, worker_status FROM EVENT_SUBSCRIPTIONS()"
    ).rows
    assert row["worker_status"] == "none"
    assert row["lag"] >= 1 and row["lag"] == pytest.approx(
        (datetime.now(UTC) - handled).total_seconds(), abs=1.5
    )
    # RESET: counted from the new start.
    ql.execute("RESET EVENT_SUBSCRIPTION unrun TO NOW")
    assert ql.execute(lag.format("unrun")).rows[0]["lag"] < row["lag"] - 0.5


# ------------------------------------------------------------------ what a worker says


def test_a_standby_worker_says_which_worker_holds_the_lease(ql, caplog):
    caplog.set_level(logging.INFO, logger="queryleaf.worker")
    ql.execute("CREATE EVENT_SUBSCRIPTION held AS (watch_collections = 'orders')")
    first = Background(ql, worker_id="host-a:1:aaaaaa")
    try:
        wait_for(lambda: ql.db[names.LEASES].find_one({"_id": "held"}))
        second = Background(ql, worker_id="host-b:2:bbbbbb")
        try:
            wait_for(lambda: "standing by" in caplog.text, timeout=3, what="the standby line")
            time.sleep(0.6)  # more polls: said once, not at every poll
        finally:
            second.stop()
    finally:
        first.stop()
    lines = [r.getMessage() for r in caplog.records if "standing by" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].startswith("held: standing by: worker host-a:1:aaaaaa (host ")
    assert "holds its lease until 20" in lines[0]


def test_a_worker_on_a_database_without_subscriptions_says_so_and_waits(ql, caplog):
    caplog.set_level(logging.INFO, logger="queryleaf.worker")
    worker = Background(ql)
    try:
        wait_for(lambda: "no event subscriptions" in caplog.text, timeout=3, what="the line")
        # It keeps running: a subscription created now is started at the next poll.
        ql.execute("CREATE EVENT_SUBSCRIPTION later AS (watch_collections = 'orders')")
        wait_for(lambda: ql.db[names.LEASES].find_one({"_id": "later"}), timeout=3)
        ql.execute("PAUSE EVENT_SUBSCRIPTION later")
        wait_for(lambda: "no active event subscriptions" in caplog.text, timeout=3)
    finally:
        worker.stop()
    messages = [r.getMessage() for r in caplog.records]
    assert f"no event subscriptions in database {ql.db.name}; waiting for CREATE" in "\n".join(
        messages
    )
    assert any(
        m.startswith(f"no active event subscriptions in database {ql.db.name} (1 paused)")
        for m in messages
    )


def test_the_worker_log_shows_documents_as_extended_json(ql, caplog):
    caplog.set_level(logging.INFO, logger="queryleaf.worker")
    ql.execute("CREATE EVENT_SUBSCRIPTION logged AS (watch_collections = 'orders')")
    oid = ObjectId()
    ql.db.orders.insert_one({"_id": oid})
    drain(ql, max_events=1)
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("logged ")]
    assert f'{{"_id": {{"$oid": "{oid}"}}}} completed' in line
