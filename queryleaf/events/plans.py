"""The subscription statements as plans that run themselves (``plan.SelfRunning``).

Each plan builds its commands with the builders of commands.py, once for EXPLAIN
(``commands()``, with a ``<placeholder>`` for each value known only when it runs) and once to
run them (``run``, with the real values), so EXPLAIN lists exactly what runs, in order. A
command that runs only under a condition says so in its ``$comment``. When a statement fails,
its error may read the catalog once more to list the existing names (catalog.unknown).
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from bson import Timestamp
from pymongo.client_session import ClientSession
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError, OperationFailure, PyMongoError

from queryleaf import plan
from queryleaf.errors import ErrorCode, Position, SubscriptionError
from queryleaf.events import catalog, definition, failures, images, names
from queryleaf.events import options as opts
from queryleaf.events.commands import (
    Command,
    delete,
    find_and_update,
    find_one,
    insert_one,
    noted,
    send,
    update,
)
from queryleaf.events.durable import durable
from queryleaf.events.eventlog import EventLog, forget_commands
from queryleaf.events.watch import WatchSpec
from queryleaf.planner.live import cluster_time_at
from queryleaf.result import Result

# What EXPLAIN shows for the values known only when the statement runs.
NOW = "<the time the statement runs>"
INSERT_TIME = "<the cluster time of the insert above>"
RESET_TIME = "<the cluster time of the findAndModify above>"
POSITION = "<the resume token of the stream opened above>"
SUBSCRIPTION_ID = "<the subscription_id of the subscription updated above>"
IMAGES = "<the outcome of enabling the images above>"
STORED_STREAM = {
    "aggregate": "<the watched collection, or 1 for the database>",
    "pipeline": ["<the subscription's $changeStream and $match stages>"],
    "cursor": {"batchSize": "<the subscription's batch size>"},
}

NEEDS_IMAGES = (
    "only when full_document or full_document_before_change needs images "
    "('whenAvailable', 'required')"
)


def only_when(condition: str, commands: list[Command]) -> list[Command]:
    """``commands`` noted as running only under ``condition`` (their own notes kept)."""

    def note(own: str | None) -> str:
        if own is None:
            return condition
        if own.startswith("only when "):
            return f"{condition} and {own.removeprefix('only when ')}"
        return f"{condition}; {own}"

    return [noted(c, note(c.get("$comment"))) for c in commands]


class SubscriptionPlan(plan.SelfRunning):
    """A subscription statement: not transactional (the connection refuses it inside a
    transaction), its writes durable (durable.py)."""

    statement: ClassVar[str]

    def run(self, db: Database, session: ClientSession | None = None) -> Result:
        try:
            return self.execute(durable(db))
        except OperationFailure as exc:
            raise catalog.server_error(exc) from exc

    @abstractmethod
    def execute(self, db: Database) -> Result:
        """Send ``commands()``, with the real values."""

    def done(self, name: str, rowcount: int = 1, suffix: str = "") -> Result:
        return Result(
            statement=self.statement, message=f"{self.statement} {name}{suffix}", rowcount=rowcount
        )


def _find(name: str, projection: dict[str, Any] | None = None) -> Command:
    return find_one(names.SUBSCRIPTIONS, {"_id": name}, projection)


def _set_start(name: str, start: Any) -> Command:
    return update(names.SUBSCRIPTIONS, {"_id": name}, {"$set": {"start_at_operation_time": start}})


# ------------------------------------------------------------------ CREATE


@dataclass(frozen=True)
class CreateSubscription(SubscriptionPlan):
    """CREATE EVENT_SUBSCRIPTION. ``options`` are validated and complete (``event_filter``
    normalized; ``filter_as_written`` is the statement's), ``where`` is the statement's WHERE
    as a $match over change events, ``spec`` the stream they make."""

    statement: ClassVar[str] = "CREATE EVENT_SUBSCRIPTION"

    name: str
    options: dict[str, Any]
    spec: WatchSpec
    where: dict[str, Any] | None = None
    filter_as_written: Any = None
    if_not_exists: bool = False

    @classmethod
    def build(
        cls,
        name: str,
        given: dict[str, Any],
        positions: dict[str, Any] | None = None,
        where: dict[str, Any] | None = None,
        if_not_exists: bool = False,
    ) -> CreateSubscription:
        """From the options as written (lower-case names → values): validated here."""
        options = definition.checked_options(name, given, positions or {})
        return cls(
            name,
            options,
            WatchSpec.build(options, where),
            where,
            given.get("event_filter"),
            if_not_exists,
        )

    def commands(self) -> list[Command]:
        stream = self.spec.command()
        enable_images: list[Command] = []
        if self.spec.needs_images:
            enable_images = [
                *images.commands(self.options["watch_collections"]),
                noted(
                    stream,
                    "opened again, now that changes carry their images: "
                    "its resume token is the position",
                ),
            ]
        return [
            _find(self.name, {"_id": 1}),
            self._find_same_id(),
            noted(
                stream,
                "opened and closed at once: the server checks the pipeline, and its "
                "resume token is the position the worker resumes after; the worker "
                "runs this stream",
            ),
            *enable_images,
            *catalog.index_commands(),
            self._insert(NOW, POSITION, IMAGES if self.spec.needs_images else None),
            _set_start(self.name, INSERT_TIME),
        ]

    def execute(self, db: Database) -> Result:
        if send(db, _find(self.name, {"_id": 1})) is not None:
            return self._exists()
        self._check_id_free(db)
        position = catalog.validate_on_server(db, self.spec, self.options["event_filter"])
        pre_images = None
        if self.spec.needs_images:
            pre_images = images.enable(db, self.options["watch_collections"])
            position = catalog.current_position(db, self.spec)  # changes now carry images
        # The worker resumes after this position: every change from now on is delivered, and
        # resuming from a token is cheap for the server (unlike a start time, which some
        # servers find by scanning the oplog) and is where the server itself reports lost
        # history.
        catalog.ensure_indexes(db)
        with db.client.start_session() as session:
            try:
                send(db, self._insert(datetime.now(UTC), position, pre_images), session)
            except DuplicateKeyError:
                if send(db, _find(self.name, {"_id": 1}), session) is not None:
                    return self._exists()
                self._check_id_free(db)
                raise
            start = session.operation_time
            if start is None:
                raise SubscriptionError(
                    "the server reported no cluster time; change streams "
                    "need a replica set or sharded cluster"
                )
            send(db, _set_start(self.name, start), session)
        return self.done(self.name)

    def _insert(self, now: Any, position: Any, pre_images: Any) -> Command:
        doc = definition.new_document(
            self.name, self.options, self.spec, self.where, self.filter_as_written, now
        )
        doc["resume_token"] = position
        if pre_images is not None:
            doc["pre_images"] = pre_images
        return insert_one(names.SUBSCRIPTIONS, doc)

    def _find_same_id(self) -> Command:
        return find_one(
            names.SUBSCRIPTIONS,
            {"subscription_id": self.options["subscription_id"], "_id": {"$ne": self.name}},
            {"_id": 1},
        )

    def _check_id_free(self, db: Database) -> None:
        other = send(db, self._find_same_id())
        if other is not None:
            raise SubscriptionError(
                f"subscription_id {self.options['subscription_id']!r} is already used by event "
                f"subscription {other['_id']!r}; the event log keys rows by subscription_id, "
                "so it must be unique"
            )

    def _exists(self) -> Result:
        if self.if_not_exists:
            return self.done(self.name, 0, ": already exists, skipped")
        raise SubscriptionError(
            f"event subscription {self.name!r} already exists "
            "(use CREATE EVENT_SUBSCRIPTION IF NOT EXISTS, or DROP it first)"
        )


# ------------------------------------------------------------------ ALTER


@dataclass(frozen=True)
class AlterSubscription(SubscriptionPlan):
    """ALTER EVENT_SUBSCRIPTION ... SET: ``given`` are the options set, validated
    (``event_filter`` normalized; ``filter_as_written`` as the statement gave it). When it runs,
    they are merged with the stored options, and the stream is rebuilt from the result."""

    statement: ClassVar[str] = "ALTER EVENT_SUBSCRIPTION"

    name: str
    given: dict[str, Any]
    filter_as_written: Any = None
    option_positions: dict[str, Any] = field(default_factory=dict)

    def commands(self) -> list[Command]:
        altered = {
            "aggregate": "<the watched collection, or 1 for the database>",
            "pipeline": ["<$changeStream and the $match stages of the options as altered>"],
            "cursor": {"batchSize": "<the batch size as altered>"},
        }
        enable_images = images.commands(self.given.get("watch_collections"))  # None: stored
        return [
            _find(self.name),
            noted(altered, "opened and closed at once: the server checks the altered stream"),
            *only_when(NEEDS_IMAGES, [*enable_images, self._set_images(IMAGES)]),
            self._update("<the altered stream>", NOW),
        ]

    def execute(self, db: Database) -> Result:
        current = send(db, _find(self.name))
        if current is None:
            raise catalog.unknown(db, self.name)
        self._refuse_subscription_id_change(current["subscription_id"])
        options = definition.checked_options(
            self.name, {**current["options"], **self.given}, self.option_positions
        )
        spec = WatchSpec.build(options, current.get("where"))
        catalog.validate_on_server(db, spec, options["event_filter"])
        if spec.needs_images:
            send(db, self._set_images(images.enable(db, options["watch_collections"])))
        send(db, self._update(spec.to_document(), datetime.now(UTC)))
        return self.done(self.name)

    def _update(self, watch: Any, now: Any) -> Command:
        changes = {f"options.{key}": value for key, value in self.given.items()}
        changes.update(
            {key: value for key, value in self.given.items() if key in definition.METADATA}
        )  # copied to the top level
        if "event_filter" in self.given:
            changes["event_filter"] = self.given["event_filter"]
            changes["event_filter_as_written"] = self.filter_as_written
        changes.update({"watch": watch, "updated_at": now})
        return update(
            names.SUBSCRIPTIONS, {"_id": self.name}, {"$set": changes, "$inc": {"version": 1}}
        )

    def _set_images(self, outcome: Any) -> Command:
        return update(names.SUBSCRIPTIONS, {"_id": self.name}, {"$set": {"pre_images": outcome}})

    def _refuse_subscription_id_change(self, current: str) -> None:
        if "subscription_id" in self.given and self.given["subscription_id"] != current:
            pos, suffix = opts.where_written("subscription_id", self.option_positions)
            raise SubscriptionError(
                f"subscription_id cannot be changed by ALTER{suffix} (the event log is keyed "
                "by it); create a new subscription instead",
                pos,
            )


# ------------------------------------------------------------------ DROP, PAUSE/RESUME


@dataclass(frozen=True)
class DropSubscription(SubscriptionPlan):
    statement: ClassVar[str] = "DROP EVENT_SUBSCRIPTION"

    name: str
    if_exists: bool = False

    def commands(self) -> list[Command]:
        return [self._delete()]

    def execute(self, db: Database) -> Result:
        deleted = send(db, self._delete()).deleted_count
        if not deleted and not self.if_exists:
            raise catalog.unknown(db, self.name)
        return self.done(self.name, deleted, "" if deleted else ": does not exist, skipped")

    def _delete(self) -> Command:
        return delete(names.SUBSCRIPTIONS, {"_id": self.name})


@dataclass(frozen=True)
class SetSubscriptionState(SubscriptionPlan):
    """PAUSE / RESUME EVENT_SUBSCRIPTION."""

    name: str
    status: str  # 'paused' | 'active'

    @property
    def statement(self) -> str:  # type: ignore[override]  # a class attribute in the others
        return f"{'RESUME' if self.status == 'active' else 'PAUSE'} EVENT_SUBSCRIPTION"

    def commands(self) -> list[Command]:
        return [self._update(NOW)]

    def execute(self, db: Database) -> Result:
        if send(db, self._update(datetime.now(UTC))).matched_count == 0:
            raise catalog.unknown(db, self.name)
        return self.done(self.name)

    def _update(self, now: Any) -> Command:
        return update(
            names.SUBSCRIPTIONS,
            {"_id": self.name},
            {"$set": {"status": self.status, "status_message": None, "updated_at": now}},
        )


# ------------------------------------------------------------------ RESET


@dataclass(frozen=True)
class ResetSubscription(SubscriptionPlan):
    """RESET EVENT_SUBSCRIPTION ... TO NOW | TO TIMESTAMP '...': forget the resume token and
    start from that time (``start``, None: NOW; ``timestamp`` as written, ``pos`` where).

    Events between the old position and the new one are not delivered (that is the point: the
    remedy for a lost resume point). The status becomes 'active'. Events from the new start on
    are delivered again and get new rows, so their old event-log rows are removed: each event
    keeps one row.
    """

    statement: ClassVar[str] = "RESET EVENT_SUBSCRIPTION"

    name: str
    start: Timestamp | None = None
    timestamp: str | None = None
    pos: Position | None = None

    def commands(self) -> list[Command]:
        if self.start is not None:
            return [
                noted(failures.OLDEST_OPLOG_ENTRY, "the oplog must still cover the timestamp"),
                self._reset(None, NOW),
                *forget_commands(SUBSCRIPTION_ID, self.start),
            ]
        return [
            _find(self.name, {"watch": 1}),
            noted(
                STORED_STREAM,
                "opened and closed at once: its resume token is the new "
                "position (when it cannot be opened, there is none and "
                "the worker starts at the cluster time of the findAndModify)",
            ),
            self._reset(POSITION, NOW),
            _set_start(self.name, RESET_TIME),
            *forget_commands(SUBSCRIPTION_ID, RESET_TIME),
        ]

    def execute(self, db: Database) -> Result:
        if self.start is not None:
            self._check_in_history(db)
            doc = send(db, self._reset(None, datetime.now(UTC)))
            if doc is None:
                raise catalog.unknown(db, self.name)
            start = self.start
        else:
            current = send(db, _find(self.name, {"watch": 1}))
            if current is None:
                raise catalog.unknown(db, self.name)
            position = _position_or_none(db, current)
            with db.client.start_session() as session:
                doc = send(db, self._reset(position, datetime.now(UTC)), session)
                if doc is None:
                    raise catalog.unknown(db, self.name)
                written = session.operation_time  # set: the session has written
                assert written is not None
                start = written
                send(db, _set_start(self.name, start), session)
        EventLog(db).forget_from(doc["subscription_id"], start)
        return self.done(self.name)

    def _reset(self, position: Any, now: Any) -> Command:
        changes: dict[str, Any] = {
            "resume_token": position,
            "resume_token_timestamp": None,
            "checkpoint_cluster_time": None,
            "resume_token_lag_seconds": None,
            "status": "active",
            "status_message": None,
            "updated_at": now,
        }
        if self.start is not None:
            changes["start_at_operation_time"] = self.start
        return find_and_update(
            names.SUBSCRIPTIONS,
            {"_id": self.name},
            {"$set": changes, "$inc": {"version": 1, "position_version": 1}},
        )

    def _check_in_history(self, db: Database) -> None:
        try:
            failures.check_start_in_history(db, self.start)
        except failures.HistoryLost as exc:
            raise SubscriptionError(
                f"RESET ... TO TIMESTAMP {self.timestamp!r}: {exc}; choose a later time or TO NOW",
                self.pos,
                error_code=ErrorCode.HISTORY_LOST,
            ) from exc


def _position_or_none(db: Database, doc: dict[str, Any]) -> Any:
    """RESET ... TO NOW: the stream's position now (None: start from the cluster time)."""
    try:
        return catalog.current_position(db, WatchSpec.from_document(doc["watch"]))
    except PyMongoError:
        return None


def reset_start(text: str, pos: Position | None) -> Timestamp:
    """The cluster time of ``RESET ... TO TIMESTAMP 'text'`` (whether the oplog still covers it
    is checked when it runs)."""
    return cluster_time_at(
        text,
        "RESET ... TO TIMESTAMP",
        pos,
        SubscriptionError,
        "; use TO NOW to skip to the present",
    )


# ------------------------------------------------------------------ REPLAY


@dataclass(frozen=True)
class ReplayDeadLetters(SubscriptionPlan):
    """REPLAY DEAD_LETTER_EVENTS: mark the matching dead letters; a running worker re-delivers
    them."""

    statement: ClassVar[str] = "REPLAY DEAD_LETTER_EVENTS"

    filter: dict[str, Any]

    def commands(self) -> list[Command]:
        return [self._update(NOW)]

    def execute(self, db: Database) -> Result:
        updated = send(db, self._update(datetime.now(UTC))).modified_count
        return Result(
            statement=self.statement,
            rowcount=updated,
            message=f"{self.statement}: {updated} event(s) queued for replay",
        )

    def _update(self, now: Any) -> Command:
        query = {"$and": [self.filter or {}, {"status": "dead_letter"}]}
        return update(
            names.DEAD_LETTERS,
            query,
            {"$set": {"status": "replay_requested", "replay_requested_at": now}},
            multi=True,
        )
