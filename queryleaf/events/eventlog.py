"""The durable event log (``CHANGE_STREAM_EVENTS()``) and the dead-letter queue.

One row per change event per subscription, ``_id = {subscription_id, event_id}`` where
``event_id`` is the resume token's ``_data``: redelivery after a crash updates the same row, and
an event whose row is already terminal (completed / failed / dead_letter) is not delivered again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from queryleaf.events import names

TERMINAL = ("completed", "failed", "dead_letter")
# Fields copied from the changed document into the row when present (else null).
DOCUMENT_FIELDS = ("correlation_id", "business_process_id", "source_service",
                   "target_service", "interaction_type")


def event_id(change: dict[str, Any]) -> str:
    return change["_id"]["_data"]


def row_key(subscription_id: str, eid: str) -> dict[str, str]:
    return {"subscription_id": subscription_id, "event_id": eid}  # field order is part of _id


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


class EventLog:
    """Writes the processing lifecycle of each event: processing → retrying → terminal."""

    def __init__(self, db: Database):
        self.rows = db[names.EVENT_LOG]
        self.dead_letters = db[names.DEAD_LETTERS]

    def begin(self, key: dict[str, str], static: dict[str, Any], started_at: datetime) -> bool:
        """Upsert the row as 'processing'; False if it is already terminal (skip delivery)."""
        try:
            self.rows.update_one(
                {"_id": key, "processing_status": {"$nin": list(TERMINAL)}},
                {"$setOnInsert": static,
                 "$set": {"processing_status": "processing", "processing_started_at": started_at,
                          "processing_completed_at": None, "processing_duration_ms": None,
                          "retry_count": 0, "last_error": None}},
                upsert=True,
            )
        except DuplicateKeyError:
            return False
        return True

    def retrying(self, key: dict[str, str], retry_count: int, error: str) -> None:
        self.rows.update_one({"_id": key}, {"$set": {
            "processing_status": "retrying", "retry_count": retry_count, "last_error": error}})

    def finish(self, key: dict[str, str], status: str, started_at: datetime,
               retry_count: int, error: str | None) -> float:
        """Record the terminal status; returns the processing duration in ms."""
        done = datetime.now(UTC)
        duration = round((done - started_at).total_seconds() * 1000, 3)
        self.rows.update_one({"_id": key}, {"$set": {
            "processing_status": status, "processing_completed_at": done,
            "processing_duration_ms": duration, "retry_count": retry_count, "last_error": error}})
        return duration

    def dead_letter(self, key: dict[str, str], static: dict[str, Any], change: dict[str, Any],
                    error: str, attempts: int) -> None:
        """Park an event that exhausted its retries (idempotent by the same key)."""
        now = datetime.now(UTC)
        self.dead_letters.update_one(
            {"_id": key},
            {"$setOnInsert": {"created_at": now},
             "$set": {**{k: static[k] for k in (
                 "subscription_id", "subscription_name", "service_name", "event_id",
                 "event_type", "collection_name", "database_name", "document_key",
                 "event_timestamp", "cluster_time")},
                 "event": change, "error": error, "attempts": attempts,
                 "status": "dead_letter", "updated_at": now}},
            upsert=True,
        )
