"""The durable event log (``CHANGE_STREAM_EVENTS()``) and the dead-letter queue.

One row per change event per subscription, ``_id = {subscription_id, event_id}`` where
``event_id`` is the resume token's ``_data``: redelivery after a crash updates the same row, and
an event whose row is already terminal (completed / failed / dead_letter) is not delivered again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo import ReplaceOne, UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from queryleaf.events import names

TERMINAL = ("completed", "failed", "dead_letter")
DEAD_LETTER_STATIC = ("subscription_id", "subscription_name", "service_name", "event_id",
                      "event_type", "collection_name", "database_name", "document_key",
                      "event_timestamp", "cluster_time")
# Fields copied from the changed document into the row when present (else null).
DOCUMENT_FIELDS = ("correlation_id", "business_process_id", "source_service",
                   "target_service", "interaction_type")


DUPLICATE_KEY = 11000


def insert_or_replace(collection: Collection, docs: list[dict[str, Any]]) -> None:
    """Upsert ``docs`` by ``_id``: one unordered insert, then a replace for those that exist."""
    try:
        collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        other = [e for e in errors if e.get("code") != DUPLICATE_KEY]
        if other:
            raise
        existing = [docs[e["index"]] for e in errors]
        collection.bulk_write([ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in existing],
                              ordered=False)


def event_id(change: dict[str, Any]) -> str:
    return change["_id"]["_data"]


def row_key(subscription_id: str, eid: str) -> str:
    """The ``_id`` of an event-log row and of a dead letter: ``<subscription_id>:<event_id>``.

    A string rather than an embedded document: equality on a string ``_id`` is a point lookup
    on every server (some do not use the ``_id`` index for embedded-document values). The event
    id is hex, so the key splits unambiguously at its last ':'.
    """
    return f"{subscription_id}:{eid}"


def event_data(change: dict[str, Any]) -> Any:
    """The change's payload: the document after the change, else what is known of it."""
    if change.get("fullDocument") is not None:
        return change["fullDocument"]
    kind = change.get("operationType")
    if kind == "delete":
        return change.get("fullDocumentBeforeChange") or change.get("documentKey")
    if kind == "update":
        return change.get("updateDescription")
    if kind == "rename":
        return {"to": change.get("to")}
    return None


def _document_fields(change: dict[str, Any]) -> dict[str, Any]:
    doc = change.get("fullDocument") or change.get("fullDocumentBeforeChange") or {}
    return {name: doc.get(name) if isinstance(doc, dict) else None for name in DOCUMENT_FIELDS}


def static_columns(subscription_id: str, service_name: str | None, subscription_name: str,
                   change: dict[str, Any]) -> dict[str, Any]:
    """The columns fixed by the event itself (written once, on the first delivery)."""
    ns = change.get("ns") or {}
    cluster_time = change.get("clusterTime")
    cluster_dt = cluster_time.as_datetime() if cluster_time is not None else None
    eid = event_id(change)
    return {
        "subscription_id": subscription_id,
        "subscription_name": subscription_name,
        "service_name": service_name,
        "event_id": eid,
        "event_type": change.get("operationType"),
        "collection_name": ns.get("coll"),
        "database_name": ns.get("db"),
        "document_key": change.get("documentKey"),
        "event_data": event_data(change),
        "update_description": change.get("updateDescription"),
        "full_document_before_change": change.get("fullDocumentBeforeChange"),
        "event_timestamp": change.get("wallTime") or cluster_dt,
        "resume_token_timestamp": cluster_dt,
        "cluster_time": cluster_time,
        **_document_fields(change),
    }


@dataclass
class Row:
    """One event in flight: its log key, its fixed columns, and (once handled) its outcome."""

    change: dict[str, Any]
    key: str
    static: dict[str, Any]
    started_at: datetime | None = None
    completed_at: datetime | None = None
    status: str | None = None  # terminal status once handled; 'skipped' if already done
    retries: int = 0
    error: str | None = None
    duration_ms: float | None = None
    recorded: bool = False  # its terminal row is written
    skipped: bool = False  # found terminal in the log: acknowledged, not delivered again
    skip_sinks: tuple[Any, ...] = ()  # sinks already applied to it as part of a group

    @property
    def done(self) -> bool:
        return self.status is not None


class EventLog:
    """Writes the processing lifecycle of each event: [processing | retrying →] terminal.

    The terminal row of a group of events is written in one bulk upsert after they are handled;
    a row appears earlier only for an event that is retrying or slow (``mark``).
    """

    def __init__(self, db: Database):
        self.rows = db[names.EVENT_LOG]
        self.dead_letters = db[names.DEAD_LETTERS]

    def terminal(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """``{key: {processing_status, retries}}`` of the ``keys`` whose row is already
        terminal (handled before a crash, not checkpointed)."""
        if not keys:
            return {}
        found = self.rows.find(
            {"_id": {"$in": keys}, "processing_status": {"$in": list(TERMINAL)}},
            {"processing_status": 1, "retry_count": 1})
        return {doc["_id"]: {"processing_status": doc["processing_status"],
                                         "retries": doc.get("retry_count") or 0}
                for doc in found}

    def mark(self, row: Row, status: str, retry_count: int = 0, error: str | None = None) -> None:
        """Show an event in flight as 'processing' or 'retrying' (never over a terminal row)."""
        try:
            self.rows.update_one(
                {"_id": row.key, "processing_status": {"$nin": list(TERMINAL)}},
                {"$setOnInsert": row.static,
                 "$set": {"processing_status": status, "processing_started_at": row.started_at,
                          "processing_completed_at": None, "processing_duration_ms": None,
                          "retry_count": retry_count, "last_error": error}},
                upsert=True)
        except DuplicateKeyError:
            pass

    def record(self, rows: list[Row]) -> None:
        """Write the terminal rows of handled events.

        One unordered ``insert_many`` (much cheaper than upserts); the rows that already exist
        (marked 'retrying' or 'processing' earlier, or written by a worker that lost its lease)
        are then replaced, which is what an upsert would have done.
        """
        if not rows:
            return
        docs = [{"_id": row.key, **row.static, "processing_status": row.status,
                 "processing_started_at": row.started_at,
                 "processing_completed_at": row.completed_at,
                 "processing_duration_ms": row.duration_ms, "retry_count": row.retries,
                 "last_error": row.error} for row in rows]
        insert_or_replace(self.rows, docs)

    def finish(self, key: str, status: str, started_at: datetime,
               retry_count: int, error: str | None) -> float:
        """Record the terminal status; returns the processing duration in ms."""
        done = datetime.now(UTC)
        duration = round((done - started_at).total_seconds() * 1000, 3)
        self.rows.update_one({"_id": key}, {"$set": {
            "processing_status": status, "processing_completed_at": done,
            "processing_duration_ms": duration, "retry_count": retry_count, "last_error": error}})
        return duration

    def dead_letter(self, rows: list[Row]) -> None:
        """Park events that exhausted their retries (idempotent by the same key)."""
        now = datetime.now(UTC)
        ops = [UpdateOne(
            {"_id": row.key},
            {"$setOnInsert": {"created_at": now},
             "$set": {**{k: row.static[k] for k in DEAD_LETTER_STATIC},
                      "event": row.change, "error": row.error or "",
                      "attempts": row.retries + 1, "status": "dead_letter", "updated_at": now}},
            upsert=True) for row in rows]
        if ops:
            self.dead_letters.bulk_write(ops, ordered=False)
