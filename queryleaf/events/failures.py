"""Which errors a runner survives (reconnect and resume) and which stop a subscription.

* transient — the connection dropped, the server restarted or stepped down, a cursor was
  killed: reopen the stream from the last checkpoint with backoff;
* history lost — the stored position is no longer in the oplog (``ChangeStreamHistoryLost``):
  the subscription is marked ``failed``; the remedy is ``RESET EVENT_SUBSCRIPTION name TO NOW``;
* anything else the server refuses — marked ``failed`` with the server's message.

The ``status_message`` of a failed subscription starts with the error code (docs/errors.md).
"""

from __future__ import annotations

from typing import Any

from bson import Timestamp
from pymongo.database import Database
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

from queryleaf.errors import ErrorCode
from queryleaf.events.commands import find_one, send
from queryleaf.events.delivery import ServerUnavailable

HISTORY_LOST = 286  # ChangeStreamHistoryLost
# Server error codes that mean "try again" (network, shutdown, elections, killed cursors).
TRANSIENT_CODES = frozenset(
    {
        6,
        7,
        43,
        63,
        89,
        91,
        133,
        150,
        189,
        234,
        237,
        262,
        9001,
        10107,
        11600,
        11602,
        13388,
        13435,
        13436,
    }
)
TRANSIENT_LABELS = (
    "ResumableChangeStreamError",
    "RetryableWriteError",
    "TransientTransactionError",
)


class HistoryLost(Exception):
    """The position to start from is older than the oldest oplog entry."""


class PositionAhead(HistoryLost):
    """The stored position is newer than the server's newest write: the server lost history
    (a position no longer usable, as HistoryLost; its remedy differs)."""

    def __init__(self, position: Timestamp, newest: Timestamp):
        super().__init__(
            f"the stored position (cluster time {position.time}.{position.inc}) is ahead of the "
            f"server's newest write ({newest.time}.{newest.inc}): the server lost writes it had "
            "acknowledged (a crash without durable commits, a restore from a backup, or a "
            "replica-set rollback), and changes made since may carry earlier cluster times than "
            "the position, so they would be skipped"
        )
        self.newest = newest


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionFailure | ServerUnavailable):
        return True
    if isinstance(exc, OperationFailure):
        if exc.code == HISTORY_LOST:
            return False
        if exc.code in TRANSIENT_CODES:
            return True
        return any(exc.has_error_label(label) for label in TRANSIENT_LABELS)
    return False


def is_history_lost(exc: BaseException) -> bool:
    return isinstance(exc, HistoryLost) or (
        isinstance(exc, OperationFailure) and exc.code == HISTORY_LOST
    )


def server_message(exc: BaseException) -> str:
    if isinstance(exc, OperationFailure):
        details = exc.details or {}
        message = details.get("errmsg", str(exc))
        name = details.get("codeName")
        code = f"{name}, code {exc.code}" if name else f"code {exc.code}"
        return f"{message} ({code})"
    return str(exc)


def failure_code(exc: BaseException) -> ErrorCode:
    if isinstance(exc, PositionAhead):
        return ErrorCode.POSITION_AHEAD
    if is_history_lost(exc):
        return ErrorCode.HISTORY_LOST
    if isinstance(exc, OperationFailure):
        return ErrorCode.SERVER_REJECTED
    return ErrorCode.SUBSCRIPTION


def failure_message(name: str, exc: BaseException) -> str:
    """The status_message of a failed subscription: its code, what happened and what to do."""
    if isinstance(exc, PositionAhead):
        newest = exc.newest.as_datetime().isoformat(timespec="seconds")
        remedy = (
            f"run RESET EVENT_SUBSCRIPTION {name} TO TIMESTAMP '{newest}' (or earlier) to "
            f"deliver again from the server's history (events handled before may be "
            f"delivered twice), or TO NOW"
        )
    elif is_history_lost(exc):
        remedy = (
            f"the stored resume point is no longer in the oplog; run RESET "
            f"EVENT_SUBSCRIPTION {name} TO NOW to continue from now (changes in between "
            f"are not delivered), or TO TIMESTAMP '...' for a later point still in the "
            f"oplog"
        )
    else:
        remedy = f"fix the cause, then RESUME EVENT_SUBSCRIPTION {name}"
    return f"{failure_code(exc)}: {server_message(exc)}; {remedy}"


# The oldest oplog entry (natural order is insertion order).
OLDEST_OPLOG_ENTRY = find_one("oplog.rs", {}, {"ts": 1}, sort={"$natural": 1}, database="local")


def oldest_oplog_time(db: Database) -> Any:
    """The cluster time of the oldest oplog entry, or None when it cannot be read."""
    try:
        doc = send(db, OLDEST_OPLOG_ENTRY)
    except PyMongoError:
        return None  # not permitted (or a mongos): the server's own check has to do
    ts = doc.get("ts") if doc else None
    return ts if isinstance(ts, Timestamp) else None


def check_start_in_history(db: Database, start: Timestamp | None) -> None:
    """Refuse to start from a cluster time the oplog no longer covers.

    MongoDB raises ChangeStreamHistoryLost for that itself; some servers silently start at their
    oldest entry instead, which would skip changes without a trace.
    """
    if start is None:
        return
    oldest = oldest_oplog_time(db)
    if oldest is not None and oldest > start:
        raise HistoryLost(
            f"the subscription's start point (cluster time {start.time}.{start.inc}, from its "
            f"CREATE or RESET) is older than the oldest oplog entry ({oldest.time}."
            f"{oldest.inc}): changes in between are no longer available"
        )


def newest_write_time(db: Database) -> Any:
    """The cluster time of the server's newest write (``hello``), or None when not reported."""
    try:
        reply = db.client.admin.command("hello")
    except PyMongoError:
        return None
    ts = (reply.get("lastWrite") or {}).get("opTime", {}).get("ts")
    return ts if isinstance(ts, Timestamp) else None


def check_position_not_ahead(db: Database, position: Timestamp | None) -> None:
    """Refuse to resume from a position the server's history does not reach.

    A position is stored after the event it follows, in a write with a later cluster time; a
    server whose newest write is older than the position has lost history (and would give new
    changes cluster times before the position, which a resumed stream skips).
    """
    if position is None:
        return
    newest = newest_write_time(db)
    if newest is not None and newest < position:
        raise PositionAhead(position, newest)
