"""The durable event log (``CHANGE_STREAM_EVENTS()``) and the dead-letter queue.

One *row* per change event per subscription; its ``_id`` (the row key) is
``<subscription_id>:<event_id>``, where ``event_id`` is the resume token's ``_data``. Rows are
stored in *entries*: documents with the rows in an ``events`` array and, at the top level, what
lookups and retention need (``subscription_id``, ``cluster_time`` of the first row,
``last_cluster_time`` of the last, ``processing_completed_at`` of the newest). Two kinds:

* a **segment** holds the rows of a group of events that completed at the first attempt and
  were not recorded before: one insert per group after the events are handled (the common
  case costs the server one write per group, not one per event);
* a **single** holds one row whose lifecycle is written step by step (``_id`` = its row key):
  an event shown as queued, processing or retrying, one that failed or was dead-lettered, a
  replayed one, or one that was in flight when a worker stopped and is delivered again.

``CHANGE_STREAM_EVENTS()`` reads the rows through ``names.EVENT_LOG_ROWS`` (unwind + replace
root). Idempotence: after (re)opening from a position the runner loads what the log already
holds from there (``existing``): an event already terminal (handled by a run that stopped before
its checkpoint) is not delivered again; one found in flight is delivered and its single
replaced. Only completed events go into segments, so every event keeps exactly one row. RESET
to an earlier time removes the rows from there on (``forget_from``): they are delivered again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bson import Timestamp
from pymongo import ReplaceOne, UpdateOne
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DocumentTooLarge, DuplicateKeyError

from queryleaf.events import names
from queryleaf.events.commands import Command, create_index, delete, send, update

TERMINAL = ("completed", "failed", "dead_letter")
# Fields copied from the changed document into the row when present (else null).
DOCUMENT_FIELDS = (
    "correlation_id",
    "business_process_id",
    "source_service",
    "target_service",
    "interaction_type",
)
SEGMENT_ROWS = 500  # rows per segment at most (fewer when the 16 MB document limit needs it)
MIN_RUN = 16  # rows handled together that get a segment of their own (see _chunks)
LOOKUP_INDEX = "subscription_position"
RECENT_INDEX = "recent_events"

DUPLICATE_KEY = 11000
OBJECT_TOO_LARGE = 10334  # BSONObjectTooLarge


def upsert_by_id(collection: Collection, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Upsert ``docs`` by ``_id``: one unordered insert (much cheaper than upserts), then a
    replace for those that exist. Returns the write errors of the documents that could not be
    written (``index`` into ``docs``, ``code``, ``errmsg``)."""
    try:
        collection.insert_many(docs, ordered=False)
        return []
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
    failed = [e for e in errors if e.get("code") != DUPLICATE_KEY]
    existing = [e["index"] for e in errors if e.get("code") == DUPLICATE_KEY]
    if existing:
        try:
            collection.bulk_write(
                [ReplaceOne({"_id": docs[i]["_id"]}, docs[i], upsert=True) for i in existing],
                ordered=False,
            )
        except BulkWriteError as exc:
            failed += [
                {**e, "index": existing[e["index"]]} for e in exc.details.get("writeErrors", [])
            ]
    return failed


def insert_or_replace(collection: Collection, docs: list[dict[str, Any]]) -> None:
    """``upsert_by_id``, raising ``BulkWriteError`` if a document could not be written."""
    failed = upsert_by_id(collection, docs)
    if failed:
        raise BulkWriteError(
            {
                "writeErrors": failed,
                "writeConcernErrors": [],
                "nInserted": 0,
                "nUpserted": 0,
                "nMatched": 0,
                "nModified": 0,
                "nRemoved": 0,
                "upserted": [],
            }
        )


def _too_large(exc: Exception) -> bool:
    if isinstance(exc, DocumentTooLarge):
        return True
    errors = exc.details.get("writeErrors", []) if isinstance(exc, BulkWriteError) else []
    return any(e.get("code") == OBJECT_TOO_LARGE for e in errors)


def event_id(change: dict[str, Any]) -> str:
    return change["_id"]["_data"]


def row_key(subscription_id: str, eid: str) -> str:
    """The ``_id`` of an event-log row and of a dead letter: ``<subscription_id>:<event_id>``.

    A string rather than an embedded document: equality on a string ``_id`` is a point lookup
    on every server (some do not use the ``_id`` index for embedded-document values).
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


def static_columns(
    subscription_id: str, service_name: str | None, subscription_name: str, change: dict[str, Any]
) -> dict[str, Any]:
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
        "cluster_time": cluster_time,  # resume_token_timestamp is derived from it when read
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
    single: bool = False  # written step by step (marked, or delivered again): not in a segment

    @property
    def done(self) -> bool:
        return self.status is not None

    def document(self) -> dict[str, Any]:
        """The row's columns (``CHANGE_STREAM_EVENTS()`` adds ``_id``, the row key)."""
        return {
            **self.static,
            "processing_status": self.status,
            "processing_started_at": self.started_at,
            "processing_completed_at": self.completed_at,
            "processing_duration_ms": self.duration_ms,
            "retry_count": self.retries,
            "last_error": self.error,
        }


@dataclass(frozen=True)
class Known:
    """What the log holds of an event."""

    status: str
    retries: int

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


# Columns a segment may store once (in ``common``) when all its rows agree on the value (compared
# with their type: 1, 1.0 and True are different values to BSON); other columns only when null.
HOISTABLE = frozenset(
    {
        "subscription_id",
        "subscription_name",
        "service_name",
        "event_type",
        "collection_name",
        "database_name",
        "processing_status",
        "processing_started_at",
        "processing_completed_at",
        "processing_duration_ms",
        "retry_count",
        "last_error",
    }
)
PER_ROW = frozenset({"event_id", "cluster_time"})  # looked up / pulled by: always in the row


def _common(rows: list[dict[str, Any]]) -> dict[str, Any]:
    first, rest = rows[0], rows[1:]
    common = {}
    for name, value in first.items():
        if name in PER_ROW or (value is not None and name not in HOISTABLE):
            continue
        kind = type(value)
        if all(name in row and type(row[name]) is kind and row[name] == value for row in rest):
            common[name] = value
    return common


def _entry(entry_id: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    first, last = rows[0], rows[-1]
    completed = [
        r["processing_completed_at"] for r in rows if r.get("processing_completed_at") is not None
    ]
    happened = [
        r["event_timestamp"] for r in rows if isinstance(r.get("event_timestamp"), datetime)
    ]
    entry = {
        "_id": entry_id,
        "subscription_id": first["subscription_id"],
        "subscription_name": first.get("subscription_name"),
        "service_name": first.get("service_name"),
        "cluster_time": first.get("cluster_time"),
        "last_cluster_time": last.get("cluster_time"),
        "processing_completed_at": max(completed) if completed else None,
        "event_timestamp_min": min(happened) if happened else None,
        "event_timestamp_max": max(happened) if happened else None,
    }
    if len(rows) == 1:
        entry["events"] = rows
        return entry
    common = _common(rows)
    entry["common"] = common
    entry["events"] = [{k: v for k, v in row.items() if k not in common} for row in rows]
    return entry


def single_entry(row: dict[str, Any]) -> dict[str, Any]:
    """The entry of one row written on its own (``_id`` = the row key)."""
    return _entry(row_key(row["subscription_id"], row["event_id"]), [row])


def segment_entries(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entries for completed rows (one subscription), ``SEGMENT_ROWS`` rows each at most."""
    return [
        _entry(f"{row_key(chunk[0]['subscription_id'], chunk[0]['event_id'])}+{len(chunk)}", chunk)
        for chunk in _chunks(rows)
    ]


def _chunks(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Consecutive runs of ``SEGMENT_ROWS`` at most; a run of rows handled together (same
    processing times, e.g. a group written to a collection in one bulk write) ends where the
    times change, so that its times are stored once."""
    chunks: list[list[dict[str, Any]]] = []
    chunk: list[dict[str, Any]] = []
    uniform = True
    for row in rows:
        if chunk:
            same = _times(row) == _times(chunk[-1])
            if len(chunk) >= SEGMENT_ROWS or (uniform and not same and len(chunk) >= MIN_RUN):
                chunks.append(chunk)
                chunk, uniform = [], True
            else:
                uniform = uniform and same
        chunk.append(row)
    if chunk:
        chunks.append(chunk)
    return chunks


def _times(row: dict[str, Any]) -> tuple[Any, Any]:
    return row.get("processing_started_at"), row.get("processing_completed_at")


def read_rows(db: Database, query: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The rows matching ``query`` (on row fields), in oplog order: what
    ``SELECT * FROM CHANGE_STREAM_EVENTS()`` reads, for tools and tests."""
    pipeline = [
        *names.EVENT_LOG_ROWS,
        {"$match": query or {}},
        {"$sort": {"cluster_time": 1, "event_id": 1}},
    ]
    return list(db[names.EVENT_LOG].aggregate(pipeline))


def index_commands() -> list[Command]:
    return [
        create_index(names.EVENT_LOG, {"subscription_id": 1, "last_cluster_time": 1}, LOOKUP_INDEX),
        # CHANGE_STREAM_EVENTS() WHERE event_timestamp >= ... (dashboards) reads recent
        # entries.
        create_index(names.EVENT_LOG, {"event_timestamp_max": 1}, RECENT_INDEX),
    ]


def forget_commands(subscription_id: Any, since: Any) -> list[Command]:
    """The commands of ``EventLog.forget_from`` (placeholders allowed, for EXPLAIN)."""
    return [
        delete(
            names.EVENT_LOG,
            {"subscription_id": subscription_id, "cluster_time": {"$gte": since}},
            multi=True,
        ),
        update(
            names.EVENT_LOG,
            {"subscription_id": subscription_id, "last_cluster_time": {"$gte": since}},
            {"$pull": {"events": {"cluster_time": {"$gte": since}}}},
            multi=True,
        ),
    ]


class EventLog:
    """Writes the processing lifecycle of each event: [processing | retrying →] terminal.

    The rows of a group of handled events are written in one bulk insert (segments, and singles
    for what needed them); a row appears earlier only for an event that is retrying or slow
    (``mark``).
    """

    def __init__(self, db: Database):
        self.db = db
        self.entries = db[names.EVENT_LOG]
        self.dead_letters = db[names.DEAD_LETTERS]

    def ensure_indexes(self) -> None:
        for command in index_commands():
            send(self.db, command)

    def existing(self, subscription_id: str, since: Timestamp | None) -> dict[str, Known]:
        """The rows the log holds for events at or after cluster time ``since``."""
        return self.existing_many({subscription_id: since}).get(subscription_id, {})

    def existing_many(self, since: Mapping[str, Timestamp | None]) -> dict[str, dict[str, Known]]:
        """``existing`` for several subscriptions (by subscription id) in one query."""
        if not since:
            return {}
        query: dict[str, Any] = {"subscription_id": {"$in": list(since)}}
        if len(since) == 1:
            query["subscription_id"] = next(iter(since))
        bounds = [value for value in since.values() if value is not None]
        if len(bounds) == len(since):
            query["last_cluster_time"] = {"$gte": min(bounds)}
        known: dict[str, dict[str, Known]] = {key: {} for key in since}
        fields = ("event_id", "processing_status", "retry_count")
        projection = {f"{part}.{name}": 1 for part in ("events", "common") for name in fields}
        projection.update({"subscription_id": 1, "last_cluster_time": 1})
        for entry in self.entries.find(query, projection):
            subscription_id = entry.get("subscription_id")
            if subscription_id not in known:
                continue
            bound = since[subscription_id]
            last = entry.get("last_cluster_time")
            if bound is not None and (last is None or last < bound):
                continue
            common = entry.get("common") or {}
            mine = known[subscription_id]
            for row in entry.get("events") or ():
                if "event_id" not in row:
                    continue
                found = Known(
                    row.get("processing_status", common.get("processing_status")) or "",
                    row.get("retry_count", common.get("retry_count")) or 0,
                )
                key = row_key(subscription_id, row["event_id"])
                previous = mine.get(key)
                if previous is None or (found.terminal and not previous.terminal):
                    mine[key] = found
        return known

    def mark(self, row: Row, status: str, retry_count: int = 0, error: str | None = None) -> None:
        """Show an event in flight as 'processing' or 'retrying' (never over a terminal row)."""
        row.single = True
        fields = {
            "processing_status": status,
            "processing_started_at": row.started_at,
            "processing_completed_at": None,
            "processing_duration_ms": None,
            "retry_count": retry_count,
            "last_error": error,
        }
        try:
            self.entries.insert_one(single_entry({**row.static, **fields}))
        except DuplicateKeyError:
            self.entries.update_one(
                {"_id": row.key, "events.0.processing_status": {"$nin": list(TERMINAL)}},
                {"$set": {f"events.0.{k}": v for k, v in fields.items()}},
            )

    def mark_queued(self, rows: list[Row]) -> None:
        """Show events taken from the stream but waiting behind another as 'queued'."""
        for row in rows:
            row.single = True
        self.insert(
            [
                single_entry(
                    {
                        **row.static,
                        "processing_status": "queued",
                        "processing_started_at": None,
                        "processing_completed_at": None,
                        "processing_duration_ms": None,
                        "retry_count": 0,
                        "last_error": None,
                    }
                )
                for row in rows
            ]
        )

    @staticmethod
    def entries_for(rows: list[Row]) -> list[dict[str, Any]]:
        """The entries holding the terminal rows of handled events (written with ``insert``):
        events completed at the first attempt go into segments, the others replace their
        single (if marked earlier)."""
        now = datetime.now(UTC)
        singles, grouped = [], []
        for row in rows:
            if row.started_at is None:  # recorded only (deliver_to = 'log'): written now
                row.started_at = row.completed_at = now
            if row.single or row.status != "completed" or row.retries:
                singles.append(single_entry(row.document()))
            else:
                grouped.append(row.document())
        return singles + segment_entries(grouped)

    def insert(self, entries: list[dict[str, Any]]) -> None:
        """Insert or replace entries by ``_id`` (one unordered ``insert_many``, much cheaper
        than upserts, then a replace for those that exist); a segment over the server's
        document size limit is written in halves (everything here is idempotent by ``_id``)."""
        try:
            insert_or_replace(self.entries, entries)
        except (DocumentTooLarge, BulkWriteError) as exc:
            if not _too_large(exc):
                raise
            for entry in entries:
                try:
                    insert_or_replace(self.entries, [entry])
                except (DocumentTooLarge, BulkWriteError) as alone:
                    rows = [{**entry.get("common", {}), **row} for row in entry["events"]]
                    if not _too_large(alone) or len(rows) == 1:
                        raise
                    half = len(rows) // 2
                    self.insert(segment_entries(rows[:half]) + segment_entries(rows[half:]))

    def finish(
        self, key: str, status: str, started_at: datetime, retry_count: int, error: str | None
    ) -> float:
        """Record the terminal status of a single; returns the processing duration in ms."""
        done = datetime.now(UTC)
        duration = round((done - started_at).total_seconds() * 1000, 3)
        fields = {
            "processing_status": status,
            "processing_completed_at": done,
            "processing_duration_ms": duration,
            "retry_count": retry_count,
            "last_error": error,
        }
        self.entries.update_one(
            {"_id": key},
            {
                "$set": {
                    "processing_completed_at": done,
                    **{f"events.0.{k}": v for k, v in fields.items()},
                }
            },
        )
        return duration

    def forget_from(self, subscription_id: str, since: Timestamp) -> None:
        """Remove the rows of events at or after ``since`` (RESET to an earlier time: they
        are delivered again and get new rows)."""
        for command in forget_commands(subscription_id, since):
            send(self.db, command)

    def dead_letter(self, rows: list[Row]) -> None:
        """Park events that exhausted their retries (idempotent by the same key)."""
        now = datetime.now(UTC)
        ops = [
            UpdateOne(
                {"_id": row.key},
                {
                    "$setOnInsert": {"created_at": now},
                    "$set": {
                        **{k: row.static[k] for k in names.DEAD_LETTER_FROM_EVENT},
                        "event": row.change,
                        "error": row.error or "",
                        "attempts": row.retries + 1,
                        "status": "dead_letter",
                        "updated_at": now,
                    },
                },
                upsert=True,
            )
            for row in rows
        ]
        if ops:
            self.dead_letters.bulk_write(ops, ordered=False)
