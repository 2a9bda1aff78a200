"""Event subscriptions end to end on the embedded server: catalog, worker, event log, CLI."""

from __future__ import annotations

import datetime as dt
import http.server
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from bson import Timestamp, json_util
from event_helpers import count_rows, definition, drain, log_rows
from test_events_rules import SEED_FILTER_NORMALIZED

from queryleaf.errors import SubscriptionError
from queryleaf.events import names
from queryleaf.events.plans import ReplayDeadLetters

# The seed's CREATE EVENT_SUBSCRIPTION, verbatim (the demo runs the same file).
SEED_STATEMENT = (
    Path(__file__).resolve().parents[1] / "examples" / "seed" / "01_user_service_subscription.sql"
).read_text()

SEED_COLUMNS = (
    "subscription_id",
    "service_name",
    "event_id",
    "event_type",
    "collection_name",
    "database_name",
    "document_key",
    "event_data",
    "event_timestamp",
    "processing_status",
    "processing_started_at",
    "processing_completed_at",
    "processing_duration_ms",
    "retry_count",
    "last_error",
    "correlation_id",
    "resume_token_timestamp",
    "cluster_time",
)


# ------------------------------------------------------------------ CREATE and the catalog


def test_seed_statement_is_stored_with_normalized_filter_and_start(ql):
    result = ql.execute(SEED_STATEMENT)
    assert result.message == "CREATE EVENT_SUBSCRIPTION user_service_events"
    assert result.rowcount == 1
    doc = definition(ql, "user_service_events")
    assert doc["subscription_id"] == "user_lifecycle_events"
    assert doc["service_name"] == "user_service"
    assert doc["status"] == "active"
    assert doc["event_filter"] == SEED_FILTER_NORMALIZED
    assert doc["options"]["event_filter"] == SEED_FILTER_NORMALIZED
    assert doc["event_filter_as_written"]["$or"][1]["updateDescription.updatedFields"]
    assert doc["options"]["retry_delay_ms"] == 1000 and doc["deliver_to"] == "log"
    assert isinstance(doc["start_at_operation_time"], Timestamp)
    assert doc["resume_token"]["_data"]  # the stream's position at CREATE
    assert doc["watch"]["collection"] is None
    assert doc["watch"]["pipeline"] == [
        {"$match": {"ns.coll": {"$in": ["users", "user_profiles", "user_preferences"]}}},
        {"$match": {"operationType": {"$in": ["insert", "update", "delete"]}}},
        {"$match": SEED_FILTER_NORMALIZED},
    ]
    assert doc["pre_images"] == {
        "requested": True,
        "enabled": True,
        "message": None,
        "collections": ["users", "user_profiles", "user_preferences"],
    }
    info = ql.db.command("listCollections", filter={"name": "users"})["cursor"]["firstBatch"]
    assert info[0]["options"]["changeStreamPreAndPostImages"] == {"enabled": True}


def test_explain_shows_the_watch_with_the_normalized_filter(ql):
    result = ql.explain(SEED_STATEMENT)
    watch = next(c for c in result.commands if "aggregate" in c)  # the stream the worker runs
    assert watch["aggregate"] == 1
    assert watch["pipeline"][-1] == {"$match": SEED_FILTER_NORMALIZED}
    assert definition(ql, "user_service_events") is None  # EXPLAIN stores nothing


def test_duplicates_if_not_exists_and_drop(ql):
    sql = "CREATE EVENT_SUBSCRIPTION s1 AS (watch_collections = JSON_ARRAY('orders'))"
    ql.execute(sql)
    with pytest.raises(SubscriptionError, match="already exists"):
        ql.execute(sql)
    skipped = ql.execute(sql.replace("SUBSCRIPTION s1", "SUBSCRIPTION IF NOT EXISTS s1"))
    assert skipped.rowcount == 0
    with pytest.raises(SubscriptionError, match="subscription_id 's1' is already used"):
        ql.execute("CREATE EVENT_SUBSCRIPTION s2 AS (subscription_id = 's1')")
    assert ql.execute("DROP EVENT_SUBSCRIPTION s1").rowcount == 1
    assert definition(ql, "s1") is None
    assert ql.execute("DROP EVENT_SUBSCRIPTION IF EXISTS s1").rowcount == 0
    with pytest.raises(SubscriptionError, match="no event subscription named 's1'"):
        ql.execute("DROP EVENT_SUBSCRIPTION s1")


def test_invalid_filter_is_rejected_by_the_server_and_nothing_is_stored(ql):
    with pytest.raises(SubscriptionError) as info:
        ql.execute(
            "CREATE EVENT_SUBSCRIPTION bad AS ("
            " event_filter = JSON_OBJECT('fullDocument.total', JSON_OBJECT('$bogus', 1)))"
        )
    assert "event_filter" in info.value.message and "$bogus" in info.value.message
    assert ql.db[names.SUBSCRIPTIONS].count_documents({}) == 0


def test_unknown_option_and_wrong_type_are_errors_with_positions(ql):
    with pytest.raises(SubscriptionError) as info:
        ql.execute(
            "CREATE EVENT_SUBSCRIPTION bad AS (\n  service_name = 'x',\n"
            "  watch_colections = JSON_ARRAY('users'))"
        )
    err = info.value
    assert "did you mean 'watch_collections'" in err.message
    assert "valid options: batch_processing, batch_size" in err.message
    assert (err.position.line, err.position.column) == (3, 3)
    with pytest.raises(SubscriptionError) as info:
        ql.execute("CREATE EVENT_SUBSCRIPTION bad AS (max_retry_attempts = 'three')")
    assert "option 'max_retry_attempts'" in info.value.message
    assert "expected integer" in info.value.message
    with pytest.raises(SubscriptionError, match="not a valid target"):
        ql.execute("CREATE EVENT_SUBSCRIPTION bad AS (deliver_to = 'smtp:ops@example.com')")
    assert ql.db[names.SUBSCRIPTIONS].count_documents({}) == 0


# ------------------------------------------------------------------ the worker


def test_changes_after_create_are_delivered_even_before_a_worker_runs(ql):
    ql.db.orders.insert_one({"_id": "before-create"})
    ql.execute(
        "CREATE EVENT_SUBSCRIPTION orders_feed AS ("
        " watch_collections = JSON_ARRAY('orders'), service_name = 'billing')"
    )
    ql.db.orders.insert_many([{"_id": i, "total": i * 10} for i in range(3)])
    report = drain(ql)
    assert report.by_subscription["orders_feed"]["completed"] == 3
    rows = log_rows(ql, subscription_id="orders_feed")
    assert [r["document_key"]["_id"] for r in rows] == [0, 1, 2]
    assert {r["service_name"] for r in rows} == {"billing"}


def test_seed_subscription_honours_collections_types_and_filter(ql):
    ql.execute(SEED_STATEMENT)
    users, orders = ql.db.users, ql.db.orders
    users.insert_one({"_id": "u1", "email": "a@x", "correlation_id": "c-42"})  # yes
    users.update_one({"_id": "u1"}, {"$set": {"email": "b@x"}})  # yes
    users.update_one({"_id": "u1"}, {"$set": {"last_login": 1}})  # no: filter
    users.replace_one({"_id": "u1"}, {"email": "c@x"})  # no: type
    ql.db.user_profiles.insert_one({"_id": "p1", "user": "u1"})  # yes
    ql.db.user_profiles.update_one({"_id": "p1"}, {"$set": {"status": "gold"}})  # yes
    orders.insert_one({"_id": "o1"})  # no: collection
    users.delete_one({"_id": "u1"})  # no: filter
    drain(ql)
    rows = log_rows(ql)
    assert [(r["event_type"], r["collection_name"]) for r in rows] == [
        ("insert", "users"),
        ("update", "users"),
        ("insert", "user_profiles"),
        ("update", "user_profiles"),
    ]
    insert, update, profile, profile_update = rows
    assert insert["subscription_id"] == "user_lifecycle_events"
    assert insert["correlation_id"] == "c-42" and profile["correlation_id"] is None
    assert insert["event_data"] == {"_id": "u1", "email": "a@x", "correlation_id": "c-42"}
    # updateLookup reads the document when the worker runs: u1 is gone by then, so the
    # update's event_data falls back to its updateDescription; p1 still exists.
    assert update["event_data"]["updatedFields"] == {"email": "b@x"}
    assert update["full_document_before_change"]["email"] == "a@x"  # pre-image
    assert profile_update["event_data"] == {"_id": "p1", "user": "u1", "status": "gold"}


def test_event_log_rows_have_the_seed_columns(ql):
    ql.execute(
        "CREATE EVENT_SUBSCRIPTION audit AS (watch_collections = 'users',"
        " service_name = 'audit_service', full_document_before_change = 'whenAvailable')"
    )
    before = dt.datetime.now(dt.UTC)
    ql.db.users.insert_one({"_id": 1, "name": "ann"})
    ql.db.users.delete_one({"_id": 1})
    drain(ql)
    rows = log_rows(ql)
    assert len(rows) == 2
    for row in rows:
        assert set(SEED_COLUMNS) <= set(row)
        assert set(row) - {"_id"} == set(names.EVENT_LOG_COLUMNS)
        assert row["_id"] == f"audit:{row['event_id']}"
        assert row["processing_status"] == "completed" and row["retry_count"] == 0
        assert row["last_error"] is None and row["database_name"] == ql.database_name
        assert isinstance(row["processing_duration_ms"], float)
        assert isinstance(row["cluster_time"], Timestamp)
        assert before - dt.timedelta(seconds=2) <= row["event_timestamp"]
        assert row["processing_started_at"] <= row["processing_completed_at"]
        assert row["resume_token_timestamp"] == row["cluster_time"].as_datetime()
    assert rows[1]["event_type"] == "delete"
    assert rows[1]["event_data"] == {"_id": 1, "name": "ann"}  # the pre-image
    # The planner reads CHANGE_STREAM_EVENTS() from the same collection.
    result = ql.execute(
        "SELECT event_type, collection_name, processing_status "
        "FROM CHANGE_STREAM_EVENTS() ORDER BY event_timestamp"
    )
    assert [r["event_type"] for r in result.rows] == ["insert", "delete"]
    counters = definition(ql, "audit")
    assert counters["events_received"] == 2 and counters["events_processed"] == 2


def test_restart_resumes_from_the_stored_token_without_duplicates(ql):
    ql.execute("CREATE EVENT_SUBSCRIPTION feed AS (watch_collections = JSON_ARRAY('orders'))")
    ql.db.orders.insert_many([{"_id": i} for i in range(5)])
    first = ql.run_subscriptions(max_events=3, poll_interval=0.2)
    assert first.events == 3 and first.reason == "max_events"
    assert len(log_rows(ql)) == 3
    third_token = definition(ql, "feed")["resume_token"]
    assert third_token["_data"] == log_rows(ql)[2]["event_id"]
    ql.db.orders.insert_many([{"_id": i} for i in range(5, 8)])
    drain(ql)
    rows = log_rows(ql)
    assert [r["document_key"]["_id"] for r in rows] == list(range(8))
    # A crash after handling but before checkpointing: the same events arrive again.
    ql.db[names.SUBSCRIPTIONS].update_one({"_id": "feed"}, {"$set": {"resume_token": third_token}})
    seen = []
    ql.on("feed")(seen.append)
    again = drain(ql)
    assert again.by_subscription["feed"] == {"skipped": 5}
    assert seen == []  # already completed: not delivered twice
    assert count_rows(ql.db, {}) == 8


def test_handler_failures_retry_then_dead_letter_and_replay(ql):
    ql.execute(
        "CREATE EVENT_SUBSCRIPTION payments AS (watch_collections = JSON_ARRAY('payments'),"
        " max_retry_attempts = 2, retry_delay_ms = 20, exponential_backoff = true)"
    )
    broken = {"p2"}
    calls: list[str] = []

    @ql.on("payments")
    def handle(event):
        calls.append(event["documentKey"]["_id"])
        if event["documentKey"]["_id"] in broken:
            raise ValueError("card declined")

    ql.db.payments.insert_many([{"_id": "p1"}, {"_id": "p2"}, {"_id": "p3"}])
    drain(ql)
    assert calls == ["p1", "p2", "p2", "p2", "p3"]  # in order; p2 tried 1 + 2 times
    status = {r["document_key"]["_id"]: r for r in log_rows(ql)}
    assert status["p1"]["processing_status"] == "completed"
    assert status["p2"]["processing_status"] == "dead_letter"
    assert status["p2"]["retry_count"] == 2
    assert status["p2"]["last_error"] == "ValueError: card declined"
    letter = ql.db[names.DEAD_LETTERS].find_one()
    assert letter["event_id"] == status["p2"]["event_id"] and letter["attempts"] == 3
    assert letter["event"]["documentKey"] == {"_id": "p2"}
    assert definition(ql, "payments")["events_dead_lettered"] == 1

    broken.clear()
    replayed = ReplayDeadLetters({"subscription_id": "payments"}).run(ql.db)
    assert replayed.rowcount == 1
    assert drain(ql).by_subscription["payments"] == {"replay_completed": 1}
    assert calls[-1] == "p2"
    assert ql.db[names.DEAD_LETTERS].find_one()["status"] == "replayed"
    assert log_rows(ql, event_id=letter["event_id"])[0]["processing_status"] == "completed"


def test_collection_sink_is_idempotent_by_event_id(ql):
    ql.execute(
        "CREATE EVENT_SUBSCRIPTION mirror AS (watch_collections = JSON_ARRAY('orders'),"
        " deliver_to = 'collection:order_events')"
    )
    ql.db.orders.insert_many([{"_id": 1}, {"_id": 2}])
    drain(ql)
    docs = list(ql.db.order_events.find())
    assert len(docs) == 2
    assert {d["_id"] for d in docs} == {r["event_id"] for r in log_rows(ql)}
    assert docs[0]["operationType"] == "insert" and docs[0]["subscription_id"] == "mirror"


RECORDED: list[dict] = []


def record_event(event: dict) -> None:
    """Target of deliver_to = 'python:test_events:record_event'."""
    RECORDED.append(event)


def test_python_and_http_targets(ql):
    posts: list[tuple[dict, str]] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            posts.append((json_util.loads(body), self.headers["X-Queryleaf-Event-Id"]))
            self.send_response(500 if len(posts) == 1 else 204)  # the first try fails
            self.end_headers()

        def log_message(self, *args):
            pass

    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        ql.execute(
            "CREATE EVENT_SUBSCRIPTION hook AS (watch_collections = JSON_ARRAY('orders'),"
            f" deliver_to = 'http://127.0.0.1:{web.server_port}/events',"
            " retry_delay_ms = 10)"
        )
        ql.execute(
            "CREATE EVENT_SUBSCRIPTION py AS (watch_collections = JSON_ARRAY('orders'),"
            " deliver_to = 'python:test_events:record_event')"
        )
        RECORDED.clear()
        ql.db.orders.insert_one({"_id": 7})
        drain(ql)
    finally:
        web.shutdown()
    assert [event["documentKey"] for event, _ in posts] == [{"_id": 7}, {"_id": 7}]
    assert posts[0][1] == posts[0][0]["_id"]["_data"]
    assert [event["fullDocument"] for event in RECORDED] == [{"_id": 7}]
    rows = {r["subscription_id"]: r for r in log_rows(ql)}
    assert rows["hook"]["processing_status"] == "completed" and rows["hook"]["retry_count"] == 1
    assert rows["py"]["processing_status"] == "completed"


def test_pause_resume_alter_and_reset(ql):
    ql.execute("CREATE EVENT_SUBSCRIPTION feed AS (watch_collections = JSON_ARRAY('orders'))")
    ql.execute("PAUSE EVENT_SUBSCRIPTION feed")
    ql.db.orders.insert_one({"_id": 1})
    assert drain(ql, idle_timeout=0.5).events == 0  # paused: not run
    ql.execute("RESUME EVENT_SUBSCRIPTION feed")
    ql.execute("ALTER EVENT_SUBSCRIPTION feed SET (event_types = JSON_ARRAY('update'))")
    doc = definition(ql, "feed")
    assert doc["version"] == 2 and doc["options"]["event_types"] == ["update"]
    ql.db.orders.update_one({"_id": 1}, {"$set": {"x": 1}})
    drain(ql)
    assert [r["event_type"] for r in log_rows(ql)] == ["update"]  # the insert is filtered now
    before = definition(ql, "feed")
    ql.db.orders.update_one({"_id": 1}, {"$set": {"x": 2}})  # skipped by the RESET
    ql.execute("RESET EVENT_SUBSCRIPTION feed TO NOW")
    after = definition(ql, "feed")
    assert after["resume_token"] not in (None, before["resume_token"])  # the position now
    assert after["position_version"] == before["position_version"] + 1
    ql.db.orders.update_one({"_id": 1}, {"$set": {"x": 3}})
    drain(ql)
    assert [r["event_data"]["x"] for r in log_rows(ql)] == [1, 3]
    with pytest.raises(SubscriptionError, match="cannot be changed"):
        ql.execute("ALTER EVENT_SUBSCRIPTION feed SET (subscription_id = 'other')")


# ------------------------------------------------------------------ the CLI


def _read_until(proc: subprocess.Popen, needle: str, timeout: float) -> str:
    """Read the process's stderr until a line contains ``needle``."""
    seen = ""
    sel = selectors.DefaultSelector()
    sel.register(proc.stderr, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while needle not in seen:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise AssertionError(f"no {needle!r} in worker output:\n{seen}")
        if sel.select(0.2):
            seen += proc.stderr.readline()
    return seen


def test_worker_cli_logs_events_and_exits_0_on_sigterm(ql, server):
    ql.execute("CREATE EVENT_SUBSCRIPTION cli_feed AS (watch_collections = JSON_ARRAY('orders'))")
    env = {**os.environ, "QUERYLEAF_URI": server.uri, "QUERYLEAF_DB": ql.database_name}
    proc = subprocess.Popen(
        [sys.executable, "-m", "queryleaf", "worker", "--subscription", "cli_feed"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        _read_until(proc, "cli_feed: watching orders", 30)
        ql.db.orders.insert_one({"_id": "from-test"})
        _read_until(proc, "cli_feed insert", 15)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert [r["document_key"] for r in log_rows(ql)] == [{"_id": "from-test"}]
    assert definition(ql, "cli_feed")["resume_token"]["_data"] == log_rows(ql)[0]["event_id"]


def test_a_position_ahead_of_the_servers_history_fails_clearly_and_reset_recovers(ql):
    ql.execute("CREATE EVENT_SUBSCRIPTION ahead AS (watch_collections = 'orders')")
    ql.db.orders.insert_one({"_id": 1})
    drain(ql)
    # As after a restore of the data from before the last checkpoints (or a crash of a server
    # without durable commits): the stored position is later than the server's newest write,
    # so changes from now on could carry earlier cluster times and be skipped.
    future = Timestamp(int(time.time()) + 86_400, 1)
    ql.db[names.SUBSCRIPTIONS].update_one(
        {"_id": "ahead"}, {"$set": {"checkpoint_cluster_time": future}}
    )
    ql.db.orders.insert_one({"_id": 2})
    drain(ql)
    doc = definition(ql, "ahead")
    assert doc["status"] == "failed"
    assert "ahead of the server's newest write" in doc["status_message"]
    assert "RESET EVENT_SUBSCRIPTION ahead TO TIMESTAMP '" in doc["status_message"]
    assert [r["document_key"]["_id"] for r in log_rows(ql, subscription_id="ahead")] == [1]
    ql.execute("RESET EVENT_SUBSCRIPTION ahead TO NOW")
    ql.db.orders.insert_one({"_id": 3})
    drain(ql)
    assert definition(ql, "ahead")["status"] == "active"
    assert [r["document_key"]["_id"] for r in log_rows(ql, subscription_id="ahead")] == [1, 3]
