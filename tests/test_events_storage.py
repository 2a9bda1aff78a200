"""How the worker stores what it does: event-log segments and singles, the combined writer,
the lookup after a restart, RESET dropping rows (against the embedded server)."""

from __future__ import annotations

import datetime as dt

import pytest
from bson import Int64, Timestamp
from event_helpers import drain, log_rows
from pymongo.errors import BulkWriteError, DocumentTooLarge

from queryleaf.events import names
from queryleaf.events.combiner import WriteCombiner, _Job
from queryleaf.events.eventlog import EventLog, read_rows, segment_entries, single_entry


def _row(i: int, **extra) -> dict:
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    row = {
        "subscription_id": "s",
        "subscription_name": "s",
        "service_name": None,
        "event_id": f"{i:04x}",
        "event_type": "insert",
        "collection_name": "orders",
        "database_name": "db",
        "document_key": {"_id": i},
        "event_data": {"_id": i, "n": i},
        "event_timestamp": at,
        "cluster_time": Timestamp(1_700_000_000, i + 1),
        "processing_status": "completed",
        "processing_started_at": at,
        "processing_completed_at": at,
        "processing_duration_ms": 0.0,
        "retry_count": 0,
        "last_error": None,
        "correlation_id": None,
    }
    row.update(extra)
    return row


def test_segments_store_shared_columns_once_and_read_back_as_rows(ql):
    rows = [_row(i) for i in range(3)]
    rows[1]["correlation_id"] = 1.0  # equal to 1 in Python, not in BSON: kept per row
    rows[2]["correlation_id"] = 1
    (entry,) = segment_entries(rows)
    assert entry["common"]["event_type"] == "insert" and "event_id" not in entry["common"]
    assert "cluster_time" not in entry["common"] and "correlation_id" not in entry["common"]
    assert all("event_type" not in row for row in entry["events"])
    ql.db[names.EVENT_LOG].insert_one(entry)
    back = read_rows(ql.db)
    assert [r["_id"] for r in back] == ["s:0000", "s:0001", "s:0002"]
    assert [type(r["correlation_id"]) for r in back] == [type(None), float, int]
    assert back[0]["resume_token_timestamp"] == dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.UTC)
    assert list(back[0])[1:] == list(names.EVENT_LOG_COLUMNS)  # every column, in order
    assert ql.execute(
        "SELECT COUNT(*) AS n FROM CHANGE_STREAM_EVENTS() "
        "WHERE subscription_id = 's' AND event_data.n >= 1"
    ).rows == [{"n": 2}]
    # A query naming columns computes only the derived ones it reads (_id, the timestamp).
    (row,) = ql.execute(
        "SELECT e._id, e.resume_token_timestamp AS at, e.retry_count "
        "FROM CHANGE_STREAM_EVENTS() e WHERE e.event_id = '0001'"
    ).rows
    assert row == {"_id": "s:0001", "at": back[1]["resume_token_timestamp"], "retry_count": 0}
    (command,) = ql.explain("SELECT event_type FROM CHANGE_STREAM_EVENTS()").commands
    stages = [next(iter(stage)) for stage in command["pipeline"]]
    assert stages == ["$unwind", "$replaceRoot", "$project"]
    assert "$concat" not in str(command["pipeline"][1])
    (command,) = ql.explain("SELECT * FROM CHANGE_STREAM_EVENTS()").commands
    assert "$concat" in str(command["pipeline"][1])  # every column, the derived ones too


def test_filters_on_event_timestamp_skip_whole_entries_and_keep_every_matching_row(ql):
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    rows = [_row(i, event_timestamp=base + dt.timedelta(minutes=i)) for i in range(30)]
    rows[5]["event_timestamp"] = None  # no time: never matches a comparison
    log = EventLog(ql.db)
    log.ensure_indexes()
    for start in range(0, 30, 10):  # three entries of ten rows: minutes 0-9, 10-19, 20-29
        log.insert(segment_entries(rows[start : start + 10]))

    def minutes(where: str) -> list[int]:
        sql = f"SELECT event_data.n AS n FROM CHANGE_STREAM_EVENTS() e WHERE {where} ORDER BY n"
        return [r["n"] for r in ql.execute(sql).rows]

    at = "CAST('2026-01-01T00:{:02d}:00Z' AS DATETIME)".format
    assert minutes(f"e.event_timestamp >= {at(15)}") == list(range(15, 30))
    assert minutes(f"{at(15)} > event_timestamp") == [i for i in range(15) if i != 5]
    assert minutes(f"event_timestamp BETWEEN {at(9)} AND {at(10)}") == [9, 10]
    assert minutes(f"event_timestamp = {at(20)} AND subscription_id = 's'") == [20]
    assert minutes(f"event_timestamp <= {at(0)} OR event_data.n = 29") == [0, 29]
    assert minutes("event_timestamp IS NULL") == [5]
    (command,) = ql.explain(
        f"SELECT event_id FROM CHANGE_STREAM_EVENTS() WHERE event_timestamp >= {at(15)}"
    ).commands
    first = command["pipeline"][0]["$match"]
    assert "event_timestamp_max" in str(first)  # entries ending before minute 15 are skipped
    # Entries without the bounds (written before they were recorded) are not skipped.
    ql.db[names.EVENT_LOG].update_many(
        {}, {"$unset": {"event_timestamp_min": "", "event_timestamp_max": ""}}
    )
    assert minutes(f"e.event_timestamp >= {at(15)}") == list(range(15, 30))
    assert minutes(f"event_timestamp BETWEEN {at(9)} AND {at(10)}") == [9, 10]


def test_runs_handled_together_get_their_own_segment():
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    later = at + dt.timedelta(seconds=1)
    rows = [
        _row(
            i,
            processing_started_at=at if i < 20 else later,
            processing_completed_at=at if i < 20 else later,
        )
        for i in range(40)
    ]
    first, second = segment_entries(rows)
    assert len(first["events"]) == 20 and first["common"]["processing_started_at"] == at
    assert second["common"]["processing_completed_at"] == later


def test_a_segment_over_the_document_limit_is_written_in_halves(ql):
    rows = [_row(i, event_data="x" * (3 * 1024 * 1024)) for i in range(8)]  # 24 MB in all
    EventLog(ql.db).insert(segment_entries(rows))
    assert [r["event_id"] for r in read_rows(ql.db)] == [f"{i:04x}" for i in range(8)]
    assert ql.db[names.EVENT_LOG].count_documents({}) > 1


def test_existing_finds_rows_in_segments_and_singles_by_cluster_time(ql):
    log = EventLog(ql.db)
    log.ensure_indexes()
    log.insert(segment_entries([_row(i) for i in range(5)]))
    log.insert([single_entry(_row(5, processing_status="retrying", retry_count=2))])
    known = log.existing("s", Timestamp(1_700_000_000, 3))  # from the third row on
    assert sorted(known) == ["s:0000", "s:0001", "s:0002", "s:0003", "s:0004", "s:0005"]
    assert known["s:0004"].terminal and not known["s:0005"].terminal
    assert known["s:0005"].retries == 2
    assert log.existing("s", Timestamp(1_700_000_001, 0)) == {}


def test_reset_to_an_earlier_time_drops_the_rows_from_there(ql):
    log = EventLog(ql.db)
    log.insert(segment_entries([_row(i) for i in range(6)]))
    log.forget_from("s", Timestamp(1_700_000_000, 4))
    assert [r["event_id"] for r in read_rows(ql.db)] == ["0000", "0001", "0002"]


def test_combined_writer_fences_each_checkpoint_and_isolates_failed_inserts(ql):
    catalog = ql.db["combiner_defs"]
    catalog.insert_many(
        [
            {"_id": name, "position_version": 1, "worker_id": "w", "n": Int64(0)}
            for name in ("a", "b")
        ]
    )
    catalog.update_one({"_id": "b"}, {"$set": {"worker_id": "other"}})  # b's lease was lost
    log = EventLog(ql.db)
    writer = WriteCombiner(catalog, log.insert)

    def checkpoint(name: str) -> _Job:
        return _Job(
            "update",
            (
                {"_id": name, "position_version": 1, "worker_id": "w"},
                {"$inc": {"n": 1}},
                {"worker_id": 1},
            ),
        )

    a, b = checkpoint("a"), checkpoint("b")
    writer._run([a, b])  # one round: one bulk update, one read
    assert a.result == {"_id": "a", "worker_id": "w", "position_version": 1}
    assert b.result is None and b.error is None  # the fence did not match: not applied
    assert [d["n"] for d in catalog.find().sort("_id", 1)] == [1, 0]

    # An entry the server refuses fails only its own insert; the others are written.
    good = _Job("insert", segment_entries([_row(i) for i in range(3)]))
    huge = _row(9, event_data="x" * (17 * 1024 * 1024))  # over the 16 MB document limit
    bad = _Job("insert", [single_entry(huge)])
    writer._run([good, bad])
    assert good.error is None and isinstance(bad.error, DocumentTooLarge | BulkWriteError)
    assert len(read_rows(ql.db)) == 3
    assert good.done.is_set() and bad.done.is_set()

    # Through the thread, as committers use it.
    writer.start()
    assert (
        writer.update_definition(
            {"_id": "a", "position_version": 1, "worker_id": "w"},
            {"$inc": {"n": 1}},
            {"worker_id": 1},
        )
        is not None
    )
    writer.close()
    writer.join(5)
    assert catalog.find_one({"_id": "a"})["n"] == 2


@pytest.mark.parametrize("subscriptions", [3])
def test_many_subscriptions_on_one_worker_each_log_every_event_once(ql, subscriptions):
    for i in range(subscriptions):
        ql.execute(f"CREATE EVENT_SUBSCRIPTION s{i} AS (watch_collections = 'orders')")
    ql.db.orders.insert_many([{"_id": i} for i in range(50)])
    report = drain(ql)
    assert report.events == 50 * subscriptions
    for i in range(subscriptions):
        rows = log_rows(ql, subscription_id=f"s{i}")
        assert [r["document_key"]["_id"] for r in rows] == list(range(50))
        doc = ql.db[names.SUBSCRIPTIONS].find_one({"_id": f"s{i}"})
        assert doc["events_processed"] == 50
