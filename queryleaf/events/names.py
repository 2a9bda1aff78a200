"""Names of queryleaf's system collections (in the user's database).

The ``__queryleaf_`` prefix is reserved: user statements cannot write to these collections; SQL
reads them through the table functions below.
"""

from collections.abc import Iterable
from typing import Any

PREFIX = "__queryleaf_"
SUBSCRIPTIONS = PREFIX + "subscriptions"
EVENT_LOG = PREFIX + "event_log"
DEAD_LETTERS = PREFIX + "dead_letters"
LEASES = PREFIX + "leases"
WORKERS = PREFIX + "workers"


def is_reserved(collection: str) -> bool:
    return collection.startswith(PREFIX)


# Columns of the table functions (top-level fields of the system collections), in display order.
EVENT_LOG_COLUMNS = (
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
    "business_process_id",
    "source_service",
    "target_service",
    "interaction_type",
    "resume_token_timestamp",
    "cluster_time",
    "subscription_name",
    "update_description",
    "full_document_before_change",
)
# CHANGE_STREAM_EVENTS() rows: the event log stores them grouped in entries, the columns a
# segment's rows share stored once in ``common`` (eventlog.py). Two columns are derived when read.


def _derived(row: str) -> dict[str, Any]:
    """The derived columns of the row at path ``row`` ('$events.' before the unwound row is
    merged, '$' after)."""
    return {
        "_id": {"$concat": ["$subscription_id", ":", f"{row}event_id"]},
        "resume_token_timestamp": {
            "$toDate": {"$multiply": [{"$tsSecond": f"{row}cluster_time"}, 1000]}
        },
    }


_UNWIND = {"$unwind": "$events"}
# Every column, in order: the template gives rows every column (stored values win over it).
EVENT_LOG_ROWS: list[dict[str, Any]] = [
    _UNWIND,
    {
        "$replaceRoot": {
            "newRoot": {
                "$mergeObjects": [
                    {"_id": None, **dict.fromkeys(EVENT_LOG_COLUMNS), **_derived("$events.")},
                    "$common",
                    "$events",
                ]
            }
        }
    },
]


def event_log_rows(columns: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The pipeline reading CHANGE_STREAM_EVENTS() rows; given the columns a query reads, only
    those of the derived ones are computed (they cost the server more than the rest of the
    read), and a column without a value is missing rather than null (the same to SQL)."""
    if columns is None:
        return list(EVENT_LOG_ROWS)
    stages: list[dict[str, Any]] = [
        _UNWIND,
        {"$replaceRoot": {"newRoot": {"$mergeObjects": ["$common", "$events"]}}},
    ]
    derived = {name: expr for name, expr in _derived("$").items() if name in set(columns)}
    if "resume_token_timestamp" in derived:  # a stored value wins, as in the template
        derived["resume_token_timestamp"] = {
            "$ifNull": ["$resume_token_timestamp", derived["resume_token_timestamp"]]
        }
    if derived:
        stages.append({"$addFields": derived})
    return stages


def subscription_rows(columns: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The pipeline reading EVENT_SUBSCRIPTIONS() rows (given the columns the query reads,
    None: all): the stored definitions, secrets masked, plus the worker columns."""
    return [*_masked_secrets(columns), *worker_liveness(columns)]


def _masked_secrets(columns: Iterable[str] | None) -> list[dict[str, Any]]:
    """The literal value of every secret option shown as '***' ('env:NAME' references stay as
    they are), in ``options`` and in the top-level column a metadata option is copied to.

    The stored document must keep the credential (the worker signs with it); masking it in the
    read, before any of the query's stages, keeps it out of every result, view and filter.
    """
    from queryleaf.events.options import ENV_PREFIX, SECRET_OPTIONS  # it imports this module
    from queryleaf.secret import MASK

    fields = [path for name in sorted(SECRET_OPTIONS) for path in (f"options.{name}", name)]
    if columns is not None:
        read = set(columns)
        fields = [path for path in fields if path.split(".")[0] in read]
    if not fields:
        return []

    def shown(field: str) -> dict[str, Any]:
        return {
            "$cond": [
                {"$eq": [{"$type": field}, "string"]},
                {"$cond": [{"$eq": [{"$indexOfCP": [field, ENV_PREFIX]}, 0]}, field, MASK]},
                field,
            ]
        }

    # A field that is not there stays absent: $set does not add a missing value.
    return [{"$set": {path: shown(f"${path}") for path in fields}}]


# EVENT_SUBSCRIPTIONS(): whether the worker named on a definition is alive, from its lease. A
# worker that died, hangs or cannot reach the server stops renewing its lease, so its heartbeat
# ages: such a subscription shows as 'stale', never as running.
WORKER_COLUMNS = ("worker_status", "worker_heartbeat_at", "worker_heartbeat_age_seconds")
_LEASE = "__lease"


def worker_liveness(columns: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The stages adding the worker columns to EVENT_SUBSCRIPTIONS() rows, and the lag of a
    subscription no worker runs (only when the query reads one of them)."""
    if columns is not None and not {*WORKER_COLUMNS, LAG} & set(columns):
        return []
    heartbeat = {"$ifNull": [f"${_LEASE}.heartbeat_at", None]}
    return [
        {"$lookup": {"from": LEASES, "localField": "_id", "foreignField": "_id", "as": _LEASE}},
        {"$set": {_LEASE: {"$first": f"${_LEASE}"}}},
        {
            "$set": {
                "worker_heartbeat_at": heartbeat,
                # Milliseconds as longs: date − date is refused by some servers (SecantusDB).
                # No lease: null, as arithmetic on null is.
                "worker_heartbeat_age_seconds": {
                    "$divide": [{"$subtract": [{"$toLong": "$$NOW"}, {"$toLong": heartbeat}]}, 1000]
                },
                "worker_status": {
                    "$switch": {
                        "branches": [
                            {
                                "case": {
                                    "$gt": [
                                        {"$toLong": f"${_LEASE}.expires_at"},
                                        {"$toLong": "$$NOW"},
                                    ]
                                },
                                "then": "running",
                            },
                            {
                                "case": {
                                    "$or": [
                                        {"$ne": [{"$ifNull": [f"${_LEASE}", None]}, None]},
                                        {"$ne": [{"$ifNull": ["$worker_id", None]}, None]},
                                    ]
                                },
                                "then": "stale",
                            },
                        ],
                        "default": "none",
                    }
                },
            }
        },
        {"$unset": _LEASE},
        {"$set": {LAG: _lag()}},
    ]


LAG = "resume_token_lag_seconds"


def _lag() -> dict[str, Any]:
    """The lag as the worker running the subscription wrote it; with no worker running it (or
    before its first checkpoint), the time since the subscription's position: the cluster time
    of the last handled event, else of its start (CREATE or RESET), else its creation. That
    one grows by a second every second, as the changes it has not read may."""
    start = {
        "$cond": [
            {"$eq": [{"$type": "$start_at_operation_time"}, "timestamp"]},
            {"$toDate": {"$multiply": [{"$tsSecond": "$start_at_operation_time"}, 1000]}},
            None,
        ]
    }
    position = {"$ifNull": ["$resume_token_timestamp", start, "$created_at"]}
    since = {"$divide": [{"$subtract": [{"$toLong": "$$NOW"}, {"$toLong": position}]}, 1000]}
    written = {"$ne": [{"$ifNull": [f"${LAG}", None]}, None]}
    return {
        "$cond": [
            {"$and": [{"$eq": ["$worker_status", "running"]}, written]},
            f"${LAG}",
            {"$round": [{"$max": [since, 0]}, 3]},
        ]
    }


SUBSCRIPTION_COLUMNS = (
    "name",
    "subscription_id",
    "service_name",
    "status",
    "status_message",
    "deliver_to",
    "created_by",
    "description",
    "options",
    "event_filter",
    "event_filter_as_written",
    "where",
    "watch",
    "pre_images",
    "start_at_operation_time",
    "resume_token",
    "resume_token_timestamp",
    "checkpoint_cluster_time",
    "last_event_at",
    "last_error",
    "events_received",
    "events_processed",
    "events_failed",
    "events_retried",
    "events_dead_lettered",
    "processing_time_p50_ms",
    "processing_time_p99_ms",
    "resume_token_lag_seconds",
    "metrics_updated_at",
    "worker_id",
    "worker_host",
    "worker_pid",
    *WORKER_COLUMNS,
    "created_at",
    "updated_at",
    "version",
    "position_version",
)
LEASE_COLUMNS = (
    "subscription_name",
    "subscription_id",
    "service_name",
    "watching",
    "worker_id",
    "host",
    "pid",
    "acquired_at",
    "heartbeat_at",
    "expires_at",
    "lease_seconds",
)
# The columns of a dead letter copied from its event-log row.
DEAD_LETTER_FROM_EVENT = (
    "subscription_id",
    "subscription_name",
    "service_name",
    "event_id",
    "event_type",
    "collection_name",
    "database_name",
    "document_key",
    "event_timestamp",
    "cluster_time",
)
DEAD_LETTER_COLUMNS = (
    *DEAD_LETTER_FROM_EVENT,
    "event",
    "error",
    "attempts",
    "status",
    "created_at",
    "updated_at",
    "replay_requested_at",
    "replayed_at",
)

# A collection that never exists: `SELECT` without FROM reads one empty row from it
# ($facet yields exactly one document even over no input), which also works inside
# $lookup / $unionWith sub-pipelines and views, where $documents is not accepted everywhere.
