"""The subscription catalog (``names.SUBSCRIPTIONS``): reading definitions, and what the
subscription statements (plans.py) share — its indexes, checking a stream on the server, the
error for a name that does not exist."""

from __future__ import annotations

from typing import Any

from pymongo.database import Database
from pymongo.errors import OperationFailure, PyMongoError

from queryleaf.errors import ErrorCode, ExecutionError, SubscriptionError
from queryleaf.events import definition, eventlog, names
from queryleaf.events.commands import Command, create_index, send
from queryleaf.events.watch import WatchSpec

SUBSCRIPTION_ID_INDEX = "subscription_id_unique"


# ------------------------------------------------------------------ indexes


def index_commands() -> list[Command]:
    """The indexes of the catalog and the event log (creating an existing one is a no-op)."""
    return [
        create_index(
            names.SUBSCRIPTIONS, {"subscription_id": 1}, SUBSCRIPTION_ID_INDEX, unique=True
        ),
        *eventlog.index_commands(),
    ]


def ensure_indexes(db: Database) -> None:
    for command in index_commands():
        send(db, command)


# ------------------------------------------------------------------ streams


def validate_on_server(db: Database, spec: WatchSpec, event_filter: Any) -> Any:
    """Open (and close at once) the exact stream the worker will run: the server parses it.
    Returns the stream's position (its resume token; None if the server gave none)."""
    try:
        return current_position(db, spec)
    except OperationFailure as exc:
        message = exc.details.get("errmsg", str(exc)) if exc.details else str(exc)
        what = "event_filter" if event_filter is not None else "watch pipeline"
        shown = f" (normalized event_filter: {event_filter})" if event_filter is not None else ""
        raise SubscriptionError(
            f"the server rejected the subscription's {what}: {message}{shown}"
        ) from exc


def current_position(db: Database, spec: WatchSpec) -> Any:
    """The resume token of the subscription's stream opened now (None if the server gave none).
    It sends ``spec.command()``."""
    with spec.open(db, max_await_time_ms=1) as stream:
        return stream.resume_token


# ------------------------------------------------------------------ reading


def load_active(db: Database, only: list[str] | None = None) -> list[definition.Subscription]:
    query: dict[str, Any] = {"status": "active"}
    if only is not None:
        query["_id"] = {"$in": list(only)}
    return [
        definition.Subscription.from_document(doc)
        for doc in db[names.SUBSCRIPTIONS].find(query).sort("_id", 1)
    ]


def load_many(db: Database, names_: list[str]) -> list[definition.Subscription]:
    return [
        definition.Subscription.from_document(doc)
        for doc in db[names.SUBSCRIPTIONS].find({"_id": {"$in": names_}})
    ]


def load_one(db: Database, name: str) -> definition.Subscription | None:
    doc = db[names.SUBSCRIPTIONS].find_one({"_id": name})
    return definition.Subscription.from_document(doc) if doc is not None else None


# ------------------------------------------------------------------ errors


def watching(db: Database, collection: str) -> list[str]:
    """DESCRIBE's line about the subscriptions that watch ``collection`` (those naming it in
    watch_collections, and those watching the whole database); none: no line."""
    try:
        docs = (
            db[names.SUBSCRIPTIONS]
            .find(
                {
                    "$or": [
                        {"options.watch_collections": collection},
                        {"options.watch_collections": {"$size": 0}},
                    ]
                },
                {"name": 1, "status": 1},
            )
            .sort("name", 1)
        )
        found = [f"{doc['name']} ({doc.get('status')})" for doc in docs]
    except PyMongoError:
        return []  # a description without this line rather than none
    return [f"watched by: {', '.join(found)}"] if found else []


def unknown(db: Database, name: str) -> SubscriptionError:
    """The error for a statement naming no subscription (it reads the names, to list them)."""
    existing = [doc["_id"] for doc in db[names.SUBSCRIPTIONS].find({}, {"_id": 1})]
    hint = f"; existing: {', '.join(sorted(existing))}" if existing else "; there are none"
    return SubscriptionError(
        f"no event subscription named {name!r}{hint}", error_code=ErrorCode.UNKNOWN_SUBSCRIPTION
    )


def server_error(exc: PyMongoError) -> ExecutionError:
    details = getattr(exc, "details", None) or {}
    return ExecutionError(
        details.get("errmsg", str(exc)),
        code=getattr(exc, "code", None),
        code_name=details.get("codeName"),
    )
