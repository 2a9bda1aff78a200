"""The seed's SQL: parsed verbatim, its mistakes reported precisely, corrected versions run.

The event log is loaded with known events so that every figure can be checked.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from queryleaf import ScriptError
from queryleaf.events import names
from queryleaf.events.eventlog import segment_entries
from queryleaf.sql.parser import parse_script

SHARED = Path(__file__).resolve().parents[2] / "shared" / "seed" / "queryleaf-event-sql.sql"
# A clone outside the workspace has no ../shared; the parser tests keep a verbatim copy.
COPY = Path(__file__).resolve().parent / "golden" / "parser" / "seed-queryleaf-event-sql.sql"
SEED = SHARED if SHARED.exists() else COPY
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "seed"


def seed_text() -> str:
    return SEED.read_text()


@pytest.fixture()
def event_log(ql):
    return load_events(ql, dt.datetime.now(dt.UTC).replace(microsecond=0))


def load_events(ql, now: dt.datetime):
    """Known events, the latest at ``now``, the earliest 10 minutes before."""
    rows = []

    def event(
        i,
        sub,
        service,
        kind,
        coll,
        status,
        duration_ms,
        minutes_ago,
        corr=None,
        process=None,
        data=None,
        source=None,
        target=None,
        interaction=None,
        retries=0,
    ):
        at = now - dt.timedelta(minutes=minutes_ago)
        rows.append(
            {
                "subscription_id": sub,
                "service_name": service,
                "event_id": str(i),
                "event_type": kind,
                "collection_name": coll,
                "database_name": ql.database_name,
                "event_data": data or {"n": i},
                "event_timestamp": at,
                "processing_status": status,
                "processing_duration_ms": duration_ms,
                "processing_completed_at": at + dt.timedelta(milliseconds=duration_ms),
                "retry_count": retries,
                "correlation_id": corr,
                "business_process_id": process,
                "source_service": source,
                "target_service": target,
                "interaction_type": interaction,
                "resume_token_timestamp": at,
            }
        )

    event(1, "user_lifecycle_events", "user_service", "insert", "users", "completed", 10, 5)
    event(2, "user_lifecycle_events", "user_service", "update", "users", "completed", 30, 5)
    event(
        3,
        "inventory_management",
        "inventory_service",
        "insert",
        "orders",
        "completed",
        20,
        10,
        "c1",
        "order-flow",
        {"order_total": 100.5},
        "order_service",
        "inventory_service",
        "reserve",
    )
    event(
        4,
        "inventory_management",
        "inventory_service",
        "update",
        "inventory",
        "failed",
        40,
        9,
        "c1",
        "order-flow",
        None,
        "order_service",
        "inventory_service",
        "reserve",
        3,
    )
    event(
        5,
        "realtime_analytics",
        "analytics_service",
        "insert",
        "orders",
        "completed",
        5,
        3,
        "c2",
        "order-flow",
        {"order_total": 20},
        "order_service",
        "analytics_service",
        "track",
    )
    for sub in sorted({row["subscription_id"] for row in rows}):  # stored as the worker does
        ql.db[names.EVENT_LOG].insert_many(
            segment_entries([row for row in rows if row["subscription_id"] == sub])
        )
    return ql


def test_the_whole_seed_file_parses_verbatim():
    kinds = [type(s.statement).__name__ for s in parse_script(seed_text())]
    assert kinds == ["CreateSubscription", "QueryStatement", "QueryStatement", "CreateView"]


def test_seed_mistakes_are_reported_with_positions(event_log):
    with pytest.raises(ScriptError) as err:
        event_log.execute_script(SEED.read_text())
    assert err.value.index == 1
    assert "event_stream_metrics has no column event_timestamp" in err.value.message
    assert (err.value.position.line, err.value.position.column) == (110, 36)
    statements = parse_script(SEED.read_text())
    with pytest.raises(Exception, match="unknown table event_stream_metrics") as err:
        event_log.execute(statements[3].text)
    # the seed's first statement (the subscription) ran before the failure
    assert event_log.db[names.SUBSCRIPTIONS].count_documents({}) == 1


def test_event_correlation_runs_verbatim(event_log):
    (result,) = event_log.execute_script((EXAMPLES / "03_event_correlation.sql").read_text())
    processes, interactions = result.rows
    p = processes["process_analytics"]
    assert processes["section"] == "BUSINESS_PROCESSES"
    assert (
        p["total_processes"],
        p["successful_processes"],
        p["failed_processes"],
        p["in_progress_processes"],
    ) == (2, 1, 1, 0)
    assert p["avg_process_duration_seconds"] == 30
    assert str(p["total_business_value"]) == "120.50"
    top = {t["correlation_id"]: t for t in p["top_processes"]}
    assert top["c1"]["event_sequence"] == (
        "inventory_service:insert:orders -> inventory_service:update:inventory"
    )
    assert top["c1"]["status"] == "Failed" and top["c2"]["status"] == "Success"
    i = interactions["process_analytics"]
    assert interactions["section"] == "SERVICE_INTERACTIONS"
    assert (i["total_interactions"], i["service_pairs"], i["avg_success_rate"]) == (3, 2, 75)
    rates = {d["target_service"]: d["success_rate"] for d in i["interaction_details"]}
    assert rates == {"inventory_service": 50, "analytics_service": 100}


def test_corrected_monitoring_statement(ql):
    # The statement groups by hour: keep all events inside one hour, whatever the clock says.
    anchor = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).replace(
        minute=30, second=0, microsecond=0
    )
    event_log = load_events(ql, anchor)
    (result,) = event_log.execute_script((EXAMPLES / "02_event_monitoring.sql").read_text())
    by_sub = {r["subscription_id"]: r for r in result.rows}
    assert [r["subscription_id"] for r in result.rows] == [
        "inventory_management",
        "user_lifecycle_events",
        "realtime_analytics",
    ]
    inv = by_sub["inventory_management"]
    assert (inv["total_events_received"], inv["events_processed"], inv["events_failed"]) == (
        2,
        1,
        1,
    )
    assert inv["success_rate_percent"] == 50 and inv["avg_processing_lag_ms"] == 30
    assert inv["events_per_hour"] == 120 and inv["events_requiring_retry"] == 1
    assert inv["service_health_status"] == "Needs Attention"
    assert inv["optimization_recommendation"] == "Review error handling"
    users = by_sub["user_lifecycle_events"]
    assert users["service_health_status"] == "Excellent" and users["user_events"] == 2
    assert users["events_per_hour"] is None  # both events in the same second: no time span


def test_corrected_dashboard_view(event_log):
    event_log.execute_script((EXAMPLES / "04_dashboard_view.sql").read_text())
    (row,) = event_log.execute("SELECT * FROM microservices_event_dashboard").rows
    assert row["events_per_minute"] == 0 and row["errors_last_hour"] == 1
    assert row["avg_processing_time_5min"] == 5
    health = {h["service_name"]: h["health_status"] for h in row["service_health_summary"]}
    assert health == {
        "user_service": "Excellent",
        "inventory_service": "Critical",
        "analytics_service": "Excellent",
    }
    assert row["overall_system_health"] == "Healthy"
