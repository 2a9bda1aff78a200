"""A subscription definition: validated options → the stored catalog document, and back.

The catalog document (collection ``names.SUBSCRIPTIONS``, ``_id`` = the statement's name) is
what ``EVENT_SUBSCRIPTIONS()`` reads, so everything a user would query is a top-level field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from queryleaf.events import options as opts
from queryleaf.events.filters import FilterError, normalize_filter
from queryleaf.events.watch import WatchSpec

COUNTERS = (
    "events_received",
    "events_processed",
    "events_failed",
    "events_retried",
    "events_dead_lettered",
)
METADATA = ("subscription_id", "service_name", "deliver_to", "created_by", "description")


def checked_options(
    name: str,
    given: Mapping[str, Any],
    positions: Mapping[str, Any],
) -> dict[str, Any]:
    """Validated options with defaults, ``event_filter`` normalized."""
    options = opts.validate(name, given, positions)
    if options["event_filter"] is not None:
        options["event_filter"] = normalized_filter(options["event_filter"], positions)
    return options


def normalized_filter(
    event_filter: dict[str, Any],
    positions: Mapping[str, Any],
) -> dict[str, Any]:
    try:
        return normalize_filter(event_filter)
    except FilterError as exc:
        raise opts.option_error("event_filter", str(exc), positions) from exc


def new_document(
    name: str,
    options: dict[str, Any],
    spec: WatchSpec,
    where: dict[str, Any] | None,
    original_filter: Any,
    now: datetime | str,
) -> dict[str, Any]:
    """The catalog document of a new subscription (start position filled in after insert)."""
    doc: dict[str, Any] = {"_id": name, "name": name}
    doc.update({key: options[key] for key in METADATA})
    doc.update(
        {
            "status": "active",
            "status_message": None,
            "options": options,
            "event_filter": options["event_filter"],
            "event_filter_as_written": original_filter,
            "where": where,
            "watch": spec.to_document(),
            "pre_images": {
                "requested": spec.needs_images,
                "enabled": False,
                "collections": [],
                "message": None,
            },
            "start_at_operation_time": None,
            "resume_token": None,
            "resume_token_timestamp": None,
            "checkpoint_cluster_time": None,
            "last_event_at": None,
            "last_error": None,
            "processing_time_p50_ms": None,
            "processing_time_p99_ms": None,
            "resume_token_lag_seconds": None,
            "metrics_updated_at": None,
            "worker_id": None,  # the worker holding the lease (see lease.py)
            "worker_host": None,
            "worker_pid": None,
            "created_at": now,
            "updated_at": now,
            "version": 1,  # bumped by ALTER and RESET: a running stream restarts
            "position_version": 1,  # bumped by RESET: older checkpoints are refused
        }
    )
    doc.update({counter: 0 for counter in COUNTERS})
    return doc


@dataclass(frozen=True)
class Subscription:
    """What the worker needs of a stored definition."""

    name: str
    subscription_id: str
    service_name: str | None
    status: str
    version: int
    position_version: int
    options: dict[str, Any]
    watch: WatchSpec
    start_at_operation_time: Any  # bson Timestamp, or None before CREATE finished
    resume_token: dict[str, Any] | None
    checkpoint_cluster_time: Any = None  # bson Timestamp of the event the token follows

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Subscription:
        return cls(
            name=doc["_id"],
            subscription_id=doc["subscription_id"],
            service_name=doc.get("service_name"),
            status=doc["status"],
            version=doc.get("version", 1),
            position_version=doc.get("position_version", 1),
            options=opts.concealed(doc["options"]),  # shown as '***' in logs and reports
            watch=WatchSpec.from_document(doc["watch"]),
            start_at_operation_time=doc.get("start_at_operation_time"),
            resume_token=doc.get("resume_token"),
            checkpoint_cluster_time=doc.get("checkpoint_cluster_time"),
        )

    @property
    def log_since(self) -> Any:
        """The cluster time from which the event log may hold rows past the stored position
        (a run that stopped before its checkpoint; see the runner's ``_open``)."""
        since = self.checkpoint_cluster_time if self.resume_token is not None else None
        return since or self.start_at_operation_time

    @property
    def ready(self) -> bool:
        """Has a position to start from (CREATE has finished)."""
        return self.resume_token is not None or self.start_at_operation_time is not None
