"""The subscription catalog: runs the subscription DDL plans against ``names.SUBSCRIPTIONS``.

Entry points for the executor and EXPLAIN:

* ``execute(db, plan) -> Result`` for CreateSubscription, AlterSubscription, DropSubscription,
  SetSubscriptionState, ResetSubscription and ReplayDeadLetters;
* ``describe_create(plan)`` / ``describe_alter(plan)``: the command documents, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bson import Timestamp
from pymongo import ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError, OperationFailure, PyMongoError

from queryleaf import plan as p
from queryleaf.errors import ErrorCode, ExecutionError, SubscriptionError
from queryleaf.events import definition, failures, images, names
from queryleaf.events import options as opts
from queryleaf.events.durable import durable
from queryleaf.events.eventlog import EventLog
from queryleaf.events.watch import WatchSpec
from queryleaf.result import Result

START_PLACEHOLDER = {"startAtOperationTime": "<cluster time of the CREATE>"}


def execute(db: Database, plan: p.Plan) -> Result:
    """Run one subscription statement."""
    handlers: dict[type, Callable[[Database, Any], Result]] = {
        p.CreateSubscription: create,
        p.AlterSubscription: alter,
        p.DropSubscription: drop,
        p.SetSubscriptionState: set_state,
        p.ResetSubscription: reset,
        p.ReplayDeadLetters: replay_dead_letters,
    }
    handler = handlers.get(type(plan))
    if handler is None:
        raise TypeError(f"not a subscription plan: {type(plan).__name__}")
    try:
        return handler(durable(db), plan)
    except OperationFailure as exc:
        raise _server_error(exc) from exc


# ------------------------------------------------------------------ CREATE


def describe_create(plan: p.CreateSubscription) -> list[dict[str, Any]]:
    """The catalog insert and the watch the worker will run, with the normalized filter."""
    options = definition.checked_options(plan.name, plan.options, plan.option_positions)
    spec = WatchSpec.build(options, plan.where)
    doc = definition.new_document(plan.name, options, spec, plan.where,
                                  plan.options.get("event_filter"), "<now>")
    doc["start_at_operation_time"] = "<cluster time of this insert>"
    commands = images.commands(options["watch_collections"]) if spec.needs_images else []
    commands.append({"insert": names.SUBSCRIPTIONS, "documents": [doc]})
    commands.append(spec.command(START_PLACEHOLDER))
    return commands


def create(db: Database, plan: p.CreateSubscription) -> Result:
    statement = "CREATE EVENT_SUBSCRIPTION"
    options = definition.checked_options(plan.name, plan.options, plan.option_positions)
    spec = WatchSpec.build(options, plan.where)
    catalog = db[names.SUBSCRIPTIONS]
    if catalog.find_one({"_id": plan.name}, {"_id": 1}) is not None:
        return _exists(plan, statement)
    _check_subscription_id_free(db, options["subscription_id"], plan.name)
    position = validate_on_server(db, spec, options["event_filter"])

    now = datetime.now(UTC)
    doc = definition.new_document(plan.name, options, spec, plan.where,
                                  plan.options.get("event_filter"), now)
    if spec.needs_images:
        doc["pre_images"] = images.enable(db, options["watch_collections"])
        position = current_position(db, spec)  # from here on, changes carry their images
    # The worker resumes after this position: every change from now on is delivered, and
    # resuming from a token is cheap for the server (unlike a start time, which some servers
    # find by scanning the oplog) and is where the server itself reports lost history.
    doc["resume_token"] = position
    ensure_indexes(db)
    with db.client.start_session() as session:
        try:
            catalog.insert_one(doc, session=session)
        except DuplicateKeyError:
            if catalog.find_one({"_id": plan.name}, {"_id": 1}, session=session) is not None:
                return _exists(plan, statement)
            _check_subscription_id_free(db, options["subscription_id"], plan.name)
            raise
        start = session.operation_time
        if start is None:
            raise SubscriptionError("the server reported no cluster time; change streams need "
                                    "a replica set or sharded cluster")
        catalog.update_one({"_id": plan.name}, {"$set": {"start_at_operation_time": start}},
                           session=session)
    return Result(statement=statement, message=f"{statement} {plan.name}", rowcount=1)


def _exists(plan: p.CreateSubscription, statement: str) -> Result:
    if plan.if_not_exists:
        return Result(statement=statement, rowcount=0,
                      message=f"{statement} {plan.name}: already exists, skipped")
    raise SubscriptionError(f"event subscription {plan.name!r} already exists "
                            "(use CREATE EVENT_SUBSCRIPTION IF NOT EXISTS, or DROP it first)")


def _check_subscription_id_free(db: Database, subscription_id: str, name: str) -> None:
    other = db[names.SUBSCRIPTIONS].find_one(
        {"subscription_id": subscription_id, "_id": {"$ne": name}}, {"_id": 1})
    if other is not None:
        raise SubscriptionError(
            f"subscription_id {subscription_id!r} is already used by event subscription "
            f"{other['_id']!r}; the event log keys rows by subscription_id, so it must be unique")


def ensure_indexes(db: Database) -> None:
    db[names.SUBSCRIPTIONS].create_index("subscription_id", unique=True,
                                         name="subscription_id_unique")
    EventLog(db).ensure_indexes()


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
            f"the server rejected the subscription's {what}: {message}{shown}") from exc


def current_position(db: Database, spec: WatchSpec) -> Any:
    """The resume token of the subscription's stream opened now (None if the server gave none)."""
    with spec.open(db, max_await_time_ms=1) as stream:
        return stream.resume_token


# ------------------------------------------------------------------ ALTER


def describe_alter(plan: p.AlterSubscription) -> list[dict[str, Any]]:
    """The catalog update for the options given (merged with the stored ones when it runs)."""
    given = opts.validate(plan.name, plan.options, plan.option_positions, partial=True)
    if given.get("event_filter") is not None:
        given["event_filter"] = definition.normalized_filter(given["event_filter"],
                                                             plan.option_positions)
    update = {f"options.{key}": value for key, value in given.items()}
    return [{"update": names.SUBSCRIPTIONS,
             "updates": [{"q": {"_id": plan.name},
                          "u": {"$set": update, "$inc": {"version": 1}}}]}]


def alter(db: Database, plan: p.AlterSubscription) -> Result:
    statement = "ALTER EVENT_SUBSCRIPTION"
    given = opts.validate(plan.name, plan.options, plan.option_positions, partial=True)
    current = _load(db, plan.name)
    _refuse_subscription_id_change(given, plan, current["subscription_id"])
    merged = {**current["options"], **given}
    options = definition.checked_options(plan.name, merged, plan.option_positions)
    spec = WatchSpec.build(options, current.get("where"))
    validate_on_server(db, spec, options["event_filter"])
    changes: dict[str, Any] = {key: options[key] for key in definition.METADATA}
    changes.update({"options": options, "event_filter": options["event_filter"],
                    "watch": spec.to_document(), "updated_at": datetime.now(UTC)})
    if "event_filter" in given:
        changes["event_filter_as_written"] = given["event_filter"]
    if spec.needs_images:
        changes["pre_images"] = images.enable(db, options["watch_collections"])
    db[names.SUBSCRIPTIONS].update_one({"_id": plan.name},
                                       {"$set": changes, "$inc": {"version": 1}})
    return Result(statement=statement, message=f"{statement} {plan.name}", rowcount=1)


def _refuse_subscription_id_change(given: dict[str, Any], plan: p.AlterSubscription,
                                   current: str) -> None:
    if "subscription_id" in given and given["subscription_id"] != current:
        pos, suffix = opts.where_written("subscription_id", plan.option_positions)
        raise SubscriptionError(
            f"subscription_id cannot be changed by ALTER{suffix} (the event log is keyed by "
            "it); create a new subscription instead", pos)


# ------------------------------------------------------------------ DROP, PAUSE/RESUME, RESET


def drop(db: Database, plan: p.DropSubscription) -> Result:
    statement = "DROP EVENT_SUBSCRIPTION"
    deleted = db[names.SUBSCRIPTIONS].delete_one({"_id": plan.name}).deleted_count
    if not deleted and not plan.if_exists:
        raise _unknown(db, plan.name)
    suffix = "" if deleted else ": does not exist, skipped"
    return Result(statement=statement, message=f"{statement} {plan.name}{suffix}",
                  rowcount=deleted)


def set_state(db: Database, plan: p.SetSubscriptionState) -> Result:
    if plan.status not in ("active", "paused"):
        raise SubscriptionError(f"unknown subscription state {plan.status!r}")
    verb = "RESUME" if plan.status == "active" else "PAUSE"
    statement = f"{verb} EVENT_SUBSCRIPTION"
    doc = db[names.SUBSCRIPTIONS].find_one_and_update(
        {"_id": plan.name},
        {"$set": {"status": plan.status, "status_message": None,
                  "updated_at": datetime.now(UTC)}})
    if doc is None:
        raise _unknown(db, plan.name)
    return Result(statement=statement, message=f"{statement} {plan.name}", rowcount=1)


def reset(db: Database, plan: p.ResetSubscription) -> Result:
    """RESET ... TO NOW | TO TIMESTAMP '...': forget the resume token, start from that time.

    Events between the old position and the new one are not delivered (that is the point:
    the remedy for a lost resume point). The status becomes 'active'.
    """
    statement = "RESET EVENT_SUBSCRIPTION"
    catalog = db[names.SUBSCRIPTIONS]
    changes: dict[str, Any] = {"resume_token": None, "resume_token_timestamp": None,
                               "checkpoint_cluster_time": None, "resume_token_lag_seconds": None,
                               "status": "active", "status_message": None,
                               "updated_at": datetime.now(UTC)}
    if plan.timestamp is not None:
        changes["start_at_operation_time"] = _timestamp(db, plan.timestamp, plan.pos)
    else:
        current = catalog.find_one({"_id": plan.name}, {"watch": 1})
        if current is None:
            raise _unknown(db, plan.name)
        changes["resume_token"] = _position_or_none(db, current)
    with db.client.start_session() as session:
        doc = catalog.find_one_and_update({"_id": plan.name},
                                          {"$set": changes,
                                           "$inc": {"version": 1, "position_version": 1}},
                                          session=session, return_document=ReturnDocument.AFTER)
        if doc is None:
            raise _unknown(db, plan.name)
        start = changes.get("start_at_operation_time")
        if plan.timestamp is None:
            start = session.operation_time
            catalog.update_one({"_id": plan.name},
                               {"$set": {"start_at_operation_time": start}},
                               session=session)
    # Events from the new start on are delivered again and get new rows: drop the old ones so
    # that each event keeps one row.
    assert start is not None  # RESET's own time, or the session's (it has written)
    EventLog(db).forget_from(doc["subscription_id"], start)
    return Result(statement=statement, message=f"{statement} {plan.name}", rowcount=1)


def _position_or_none(db: Database, doc: dict[str, Any]) -> Any:
    """RESET ... TO NOW: the stream's position now (None: start from the cluster time)."""
    try:
        return current_position(db, WatchSpec.from_document(doc["watch"]))
    except PyMongoError:
        return None


def _timestamp(db: Database, text: str, pos: Any) -> Timestamp:
    """The cluster time of ``RESET ... TO TIMESTAMP 'text'``: a time the oplog still covers,
    not in the future."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise SubscriptionError(f"RESET ... TO TIMESTAMP expects an ISO 8601 date-time such as "
                                f"'2025-01-31 12:00:00', not {text!r}", pos) from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if when > datetime.now(UTC):
        raise SubscriptionError(f"RESET ... TO TIMESTAMP {text!r} is in the future; use TO NOW "
                                "to skip to the present", pos)
    seconds = int(when.timestamp())
    if seconds < 0:
        raise SubscriptionError(f"RESET ... TO TIMESTAMP {text!r} is before 1970", pos)
    start = Timestamp(seconds, 1)
    try:
        failures.check_start_in_history(db, start)
    except failures.HistoryLost as exc:
        raise SubscriptionError(f"RESET ... TO TIMESTAMP {text!r}: {exc}; choose a later time "
                                "or TO NOW", pos, error_code=ErrorCode.HISTORY_LOST) from exc
    return start


# ------------------------------------------------------------------ REPLAY


def replay_dead_letters(db: Database, plan: p.ReplayDeadLetters) -> Result:
    """Mark the matching dead letters for replay; a running worker re-delivers them."""
    statement = "REPLAY DEAD_LETTER_EVENTS"
    query = {"$and": [plan.filter or {}, {"status": "dead_letter"}]}
    updated = db[names.DEAD_LETTERS].update_many(
        query, {"$set": {"status": "replay_requested",
                         "replay_requested_at": datetime.now(UTC)}}).modified_count
    return Result(statement=statement, rowcount=updated,
                  message=f"{statement}: {updated} event(s) queued for replay")


# ------------------------------------------------------------------ reading


def load_active(db: Database, only: list[str] | None = None) -> list[definition.Subscription]:
    query: dict[str, Any] = {"status": "active"}
    if only is not None:
        query["_id"] = {"$in": list(only)}
    return [definition.Subscription.from_document(doc)
            for doc in db[names.SUBSCRIPTIONS].find(query).sort("_id", 1)]


def load_many(db: Database, names_: list[str]) -> list[definition.Subscription]:
    return [definition.Subscription.from_document(doc)
            for doc in db[names.SUBSCRIPTIONS].find({"_id": {"$in": names_}})]


def load_one(db: Database, name: str) -> definition.Subscription | None:
    doc = db[names.SUBSCRIPTIONS].find_one({"_id": name})
    return definition.Subscription.from_document(doc) if doc is not None else None


def _load(db: Database, name: str) -> dict[str, Any]:
    doc = db[names.SUBSCRIPTIONS].find_one({"_id": name})
    if doc is None:
        raise _unknown(db, name)
    return doc


def _unknown(db: Database, name: str) -> SubscriptionError:
    existing = [doc["_id"] for doc in db[names.SUBSCRIPTIONS].find({}, {"_id": 1})]
    hint = f"; existing: {', '.join(sorted(existing))}" if existing else "; there are none"
    return SubscriptionError(f"no event subscription named {name!r}{hint}",
                             error_code=ErrorCode.UNKNOWN_SUBSCRIPTION)


def _server_error(exc: PyMongoError) -> ExecutionError:
    details = getattr(exc, "details", None) or {}
    return ExecutionError(details.get("errmsg", str(exc)), code=getattr(exc, "code", None),
                          code_name=details.get("codeName"))
