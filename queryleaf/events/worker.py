"""The worker: runs the active subscriptions, one thread (and one change stream) each.

For every change event a runner (1) upserts the event-log row as 'processing', (2) delivers it
(``Delivery``: sinks + retry policy), (3) records the terminal status, and only then (4) stores
the event's resume token in the subscription's definition. A crash anywhere before (4) means the
event is received again; the event log row is keyed by event id, so nothing is duplicated, and an
event whose row is already terminal is not delivered again.

Entry point: ``run_worker(ql, ...)`` (``QueryLeaf.run_subscriptions`` and ``queryleaf worker``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pymongo.change_stream import ChangeStream
from pymongo.database import Database
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

from queryleaf.errors import SubscriptionError
from queryleaf.events import catalog, names
from queryleaf.events.definition import Subscription
from queryleaf.events.delivery import Delivery, Outcome
from queryleaf.events.eventlog import EventLog, event_id, row_key, static_columns
from queryleaf.events.retry import RetryPolicy
from queryleaf.events.sinks import Sink, SinkUnavailable, resolve

log = logging.getLogger("queryleaf.worker")

AWAIT_MS = 200  # longest a runner blocks on the server before looking at the stop flag
SYNC_INTERVAL_S = 1.0  # how often an idle runner re-reads its definition
# How often an idle runner stores the stream's post-batch position (so a rarely matching
# subscription does not fall out of the oplog). Not every sync: that write is itself a change
# that moves the position again.
IDLE_CHECKPOINT_S = 60.0
HISTORY_LOST = 286  # ChangeStreamHistoryLost


@dataclass
class WorkerReport:
    """What a ``run_worker`` call did."""

    events: int = 0
    by_subscription: dict[str, Counter] = field(default_factory=dict)
    reason: str = ""

    def count(self, name: str, status: str) -> None:
        self.by_subscription.setdefault(name, Counter())[status] += 1
        self.events += 1


class _Shared:
    """State shared by the supervisor and the runners."""

    def __init__(self, max_events: int | None):
        self.halt = threading.Event()
        self.lock = threading.Lock()
        self.remaining = max_events
        self.last_activity = time.monotonic()
        self.report = WorkerReport()

    def take(self) -> bool:
        """Claim the right to handle one more event (False once max_events is reached)."""
        with self.lock:
            if self.remaining is None:
                return True
            if self.remaining <= 0:
                return False
            self.remaining -= 1
            return True

    @property
    def budget_spent(self) -> bool:
        with self.lock:
            return self.remaining is not None and self.remaining <= 0

    def done(self, name: str, status: str) -> None:
        with self.lock:
            self.report.count(name, status)
            self.last_activity = time.monotonic()

    def idle_for(self) -> float:
        with self.lock:
            return time.monotonic() - self.last_activity


class _Stale(Exception):
    """The definition changed (ALTER, PAUSE, DROP, RESET): stop this runner."""


class SubscriptionRunner(threading.Thread):
    """Consumes one subscription's change stream until halted or the definition changes."""

    def __init__(self, db: Database, sub: Subscription, sinks: list[Sink], shared: _Shared):
        super().__init__(name=f"queryleaf-sub-{sub.name}", daemon=True)
        self.db = db
        self.sub = sub
        self.shared = shared
        self.catalog = db[names.SUBSCRIPTIONS]
        self.event_log = EventLog(db)
        self.policy = RetryPolicy.from_options(sub.options)
        self.sinks = sinks
        self.token: dict[str, Any] | None = sub.resume_token

    # ---------------------------------------------------------------- the loop
    def run(self) -> None:
        try:
            self._consume()
        except _Stale:
            log.info("%s: definition changed (ALTER, PAUSE, DROP or RESET); stream closed",
                     self.sub.name)
        except OperationFailure as exc:
            self._fail(exc)
        except Exception as exc:  # a bug must not kill the worker silently
            log.exception("%s: stopped by an unexpected error", self.sub.name)
            self._set_failed(f"{type(exc).__name__}: {exc}")

    def _consume(self) -> None:
        backoff = 0.5
        while not self.shared.halt.is_set():
            try:
                with self._open() as stream:
                    backoff = 0.5
                    self._drain(stream)
            except ConnectionFailure as exc:
                log.warning("%s: connection problem (%s); retrying in %.1fs",
                            self.sub.name, exc, backoff)
                if self.shared.halt.wait(backoff):
                    return
                backoff = min(backoff * 2, 10.0)

    def _open(self) -> ChangeStream:
        if self.token is not None:
            return self.sub.watch.open(self.db, start_after=self.token,
                                       max_await_time_ms=AWAIT_MS)
        return self.sub.watch.open(self.db,
                                   start_at_operation_time=self.sub.start_at_operation_time,
                                   max_await_time_ms=AWAIT_MS)

    def _drain(self, stream: ChangeStream) -> None:
        """Handle events until halted; returns when the stream ends (invalidate) to reopen."""
        self._replay_dead_letters()
        last_sync = last_checkpoint = time.monotonic()
        while not self.shared.halt.is_set():
            change = stream.try_next()
            if change is None:
                if not stream.alive:
                    return
                now = time.monotonic()
                if now - last_sync >= SYNC_INTERVAL_S:
                    checkpoint = now - last_checkpoint >= IDLE_CHECKPOINT_S
                    self._sync(stream.resume_token if checkpoint else None)
                    self._replay_dead_letters()
                    last_sync = time.monotonic()
                    last_checkpoint = last_sync if checkpoint else last_checkpoint
                continue
            if change.get("operationType") == "invalidate":
                # The watched collection/database went away; continue after the invalidate.
                self._sync(change["_id"])
                return
            if not self.shared.take():
                self.shared.halt.set()
                return
            if not self._handle(change):
                return  # abandoned while stopping: not acknowledged

    # ---------------------------------------------------------------- one event
    def _handle(self, change: dict[str, Any]) -> bool:
        sub = self.sub
        eid = event_id(change)
        key = row_key(sub.subscription_id, eid)
        static = static_columns(sub.subscription_id, sub.service_name, sub.name, change)
        started = datetime.now(UTC)
        if not self.event_log.begin(key, static, started):
            self._checkpoint(change, None)  # already handled before a crash: just acknowledge
            self.shared.done(sub.name, "skipped")
            return True

        def on_retry(retry: int, error: str) -> None:
            log.warning("%s: %s failed (%s); retry %d of %d", sub.name, eid[-16:], error,
                        retry, self.policy.max_retry_attempts)
            self.event_log.retrying(key, retry, error)

        outcome = Delivery(self.sinks, self.policy, self.shared.halt, on_retry).deliver(change)
        if outcome is None:
            return False
        if outcome.status == "dead_letter":
            self.event_log.dead_letter(key, static, change, outcome.error or "",
                                       outcome.retries + 1)
        duration = self.event_log.finish(key, outcome.status, started, outcome.retries,
                                         outcome.error)
        self._checkpoint(change, outcome)
        self.shared.done(sub.name, outcome.status)
        log.info("%s %s %s.%s %s %s %.1fms", sub.name, static["event_type"],
                 static["database_name"], static["collection_name"], static["document_key"],
                 outcome.status, duration)
        return True

    # ---------------------------------------------------------------- checkpoints
    def _checkpoint(self, change: dict[str, Any], outcome: Outcome | None) -> None:
        """Store the event's resume token (after it was handled) and the counters."""
        cluster_time = change.get("clusterTime")
        update: dict[str, Any] = {"$set": {
            "resume_token": change["_id"],
            "resume_token_timestamp": cluster_time.as_datetime() if cluster_time else None,
            "last_event_at": datetime.now(UTC),
        }}
        if outcome is not None:
            update["$inc"] = {
                "events_received": 1,
                "events_processed": int(outcome.status == "completed"),
                "events_failed": int(outcome.status != "completed"),
                "events_retried": outcome.retries,
                "events_dead_lettered": int(outcome.status == "dead_letter"),
            }
            if outcome.error:
                update["$set"]["last_error"] = outcome.error
        self._write_position(change["_id"], update)

    def _sync(self, token: dict[str, Any] | None) -> None:
        """Idle: store the stream's latest position (if it moved) and look for changes."""
        if token is not None and token != self.token:
            self._write_position(token, {"$set": {"resume_token": token}})
            return
        doc = self.catalog.find_one({"_id": self.sub.name}, {"status": 1, "version": 1})
        self._check_current(doc)

    def _write_position(self, token: dict[str, Any], update: dict[str, Any]) -> None:
        doc = self.catalog.find_one_and_update(
            {"_id": self.sub.name, "position_version": self.sub.position_version}, update,
            projection={"status": 1, "version": 1})
        if doc is None:  # dropped or RESET meanwhile: this position is no longer wanted
            raise _Stale()
        self.token = token
        self._check_current(doc)

    def _check_current(self, doc: Mapping[str, Any] | None) -> None:
        if doc is None or doc.get("status") != "active" or doc.get("version") != self.sub.version:
            raise _Stale()

    # ---------------------------------------------------------------- dead letters
    def _replay_dead_letters(self) -> None:
        """Re-deliver dead letters marked by REPLAY DEAD_LETTER_EVENTS (one pass)."""
        letters = self.db[names.DEAD_LETTERS]
        query = {"subscription_id": self.sub.subscription_id, "status": "replay_requested"}
        while not self.shared.halt.is_set():
            letter = letters.find_one_and_update(query, {"$set": {"status": "replaying"}})
            if letter is None:
                return
            started = datetime.now(UTC)
            outcome = Delivery(self.sinks, self.policy, self.shared.halt).deliver(letter["event"])
            if outcome is None:
                letters.update_one({"_id": letter["_id"]},
                                   {"$set": {"status": "replay_requested"}})
                return
            replayed = outcome.status == "completed"
            letters.update_one({"_id": letter["_id"]}, {
                "$set": {"status": "replayed" if replayed else "dead_letter",
                         "error": outcome.error, "updated_at": datetime.now(UTC),
                         "replayed_at": datetime.now(UTC) if replayed else None},
                "$inc": {"attempts": outcome.retries + 1}})
            if replayed:
                self.event_log.finish(letter["_id"], "completed", started, 0, None)
            self.shared.done(self.sub.name, f"replay_{outcome.status}")
            log.info("%s replay %s %s", self.sub.name, letter["event_id"][-16:], outcome.status)

    # ---------------------------------------------------------------- failures
    def _fail(self, exc: OperationFailure) -> None:
        message = (exc.details or {}).get("errmsg", str(exc))
        name = self.sub.name
        if exc.code == HISTORY_LOST:
            remedy = (f"the stored resume point is no longer in the oplog; run RESET "
                      f"EVENT_SUBSCRIPTION {name} TO NOW (changes in between are not delivered)")
        else:
            remedy = f"fix the cause, then RESUME EVENT_SUBSCRIPTION {name}"
        self._set_failed(f"{message} (code {exc.code}); {remedy}")

    def _set_failed(self, message: str) -> None:
        log.error("%s: subscription failed: %s", self.sub.name, message)
        try:
            self.catalog.update_one(
                {"_id": self.sub.name, "position_version": self.sub.position_version},
                {"$set": {"status": "failed", "status_message": message, "last_error": message,
                          "updated_at": datetime.now(UTC)}})
        except PyMongoError:
            log.exception("%s: could not record the failure", self.sub.name)


# -------------------------------------------------------------------- supervisor


def run_worker(ql: Any, subscriptions: list[str] | None = None,
               stop_event: threading.Event | None = None, idle_timeout: float | None = None,
               max_events: int | None = None, poll_interval: float = 1.0) -> WorkerReport:
    """Run the active subscriptions (all, or those named) until told to stop.

    Stops when ``stop_event`` is set, after ``idle_timeout`` seconds without an event, or once
    ``max_events`` events have been handled; in-flight events are finished and checkpointed.
    New, resumed and altered subscriptions are picked up every ``poll_interval`` seconds.
    ``ql`` is a QueryLeaf (its ``db`` and its ``handlers`` registered with ``@ql.on``).
    """
    db: Database = ql.db
    handlers: Mapping[str, Callable[..., Any]] = getattr(ql, "handlers", {})
    if subscriptions:
        _check_names(db, subscriptions)
    shared = _Shared(max_events)
    runners: dict[str, SubscriptionRunner] = {}
    unavailable: dict[str, str] = {}
    next_poll = 0.0
    try:
        while True:
            if stop_event is not None and stop_event.is_set():
                shared.report.reason = "stopped"
                break
            if shared.budget_spent or shared.halt.is_set():
                shared.report.reason = "max_events"
                break
            if idle_timeout is not None and shared.idle_for() >= idle_timeout:
                shared.report.reason = "idle_timeout"
                break
            if time.monotonic() >= next_poll:
                _start_runners(db, subscriptions, handlers, shared, runners, unavailable)
                next_poll = time.monotonic() + poll_interval
            time.sleep(0.05)
    finally:
        shared.halt.set()
        for runner in runners.values():
            runner.join()
    return shared.report


def _start_runners(db: Database, only: list[str] | None, handlers: Mapping[str, Any],
                   shared: _Shared, runners: dict[str, SubscriptionRunner],
                   unavailable: dict[str, str]) -> None:
    for sub in catalog.load_active(db, only):
        running = runners.get(sub.name)
        if (running is not None and running.is_alive()) or not sub.ready:
            continue
        try:
            sinks = resolve(sub, db, handlers)
        except SinkUnavailable as exc:
            if unavailable.get(sub.name) != str(exc):
                log.warning("%s: not run by this worker: %s", sub.name, exc)
                unavailable[sub.name] = str(exc)
            continue
        unavailable.pop(sub.name, None)
        runner = SubscriptionRunner(db, sub, sinks, shared)
        runners[sub.name] = runner
        log.info("%s: watching %s", sub.name, sub.watch.collection or f"database {db.name}")
        runner.start()


def _check_names(db: Database, wanted: list[str]) -> None:
    known = {doc["_id"] for doc in db[names.SUBSCRIPTIONS].find({}, {"_id": 1})}
    missing = [name for name in wanted if name not in known]
    if missing:
        raise SubscriptionError(
            f"no event subscription named {', '.join(map(repr, missing))}; existing: "
            f"{', '.join(sorted(known)) or 'none'}")
