"""One subscription's consumer: a thread that owns the subscription's lease and change stream.

The loop, per group of events the stream has ready (up to ``batch_size``):

1. look up which of them the event log already has as terminal (handled before a crash but not
   checkpointed): those are acknowledged without being delivered again;
2. deliver the others — in order on this thread (``preserve_order``), concurrently per document
   (``preserve_order = false``, see lanes.py), or as one list (``batch_processing``);
3. write their terminal event-log rows (one bulk upsert) and dead letters;
4. store the resume token of the newest event that has no unfinished event before it, with the
   counters and metrics, in one write to the definition. That write is conditional on this
   worker still being the subscription's owner (lease fencing) and on the position not having
   been RESET meanwhile.

A crash anywhere before (4) means the events after the previous checkpoint arrive again: the log
is keyed by event id, so there are no duplicate rows, and those already terminal are skipped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import bson
from pymongo.change_stream import ChangeStream
from pymongo.database import Database
from pymongo.errors import PyMongoError

from queryleaf.events import failures, names
from queryleaf.events.definition import Subscription
from queryleaf.events.delivery import Delivery, Outcome
from queryleaf.events.eventlog import EventLog, Row, event_id, row_key, static_columns
from queryleaf.events.lanes import Lanes
from queryleaf.events.lease import LeaseManager
from queryleaf.events.metrics import Metrics
from queryleaf.events.retry import RetryPolicy
from queryleaf.events.sinks import Sink

log = logging.getLogger("queryleaf.worker")

AWAIT_MS = 200  # longest the stream blocks on the server; also the batch idle-flush interval
BATCH_MAX_WAIT_S = 1.0  # a partial batch is delivered at the latest this long after it began
SYNC_INTERVAL_S = 1.0  # how often an idle runner re-reads its definition
# How often an idle runner stores the stream's post-batch position (so a rarely matching
# subscription does not fall out of the oplog). Not every sync: that write is itself a change.
IDLE_CHECKPOINT_S = 60.0
MAX_IN_FLIGHT = 1000  # events admitted but not yet checkpointed (preserve_order = false)
RECONNECT_FIRST_S = 0.5
RECONNECT_MAX_S = 10.0


@dataclass
class WorkerReport:
    """What a ``run_worker`` call did."""

    events: int = 0
    by_subscription: dict[str, Counter] = field(default_factory=dict)
    reason: str = ""

    def count(self, name: str, status: str) -> None:
        self.by_subscription.setdefault(name, Counter())[status] += 1
        self.events += 1


class Stale(Exception):
    """The definition changed (ALTER, PAUSE, DROP, RESET): stop this runner."""


class LeaseLost(Stale):
    """Another worker owns the subscription now."""


class Shared:
    """State shared by the supervisor and the runners of one worker."""

    def __init__(self, max_events: int | None):
        self.halt = threading.Event()  # max_events reached: runners finish what they took
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


class SubscriptionRunner(threading.Thread):
    """Consumes one subscription's change stream until stopped, stale or failed."""

    def __init__(self, db: Database, sub: Subscription, sinks: list[Sink], shared: Shared,
                 leases: LeaseManager, concurrency: int):
        super().__init__(name=f"queryleaf-sub-{sub.name}", daemon=True)
        self.db = db
        self.sub = sub
        self.shared = shared
        self.leases = leases
        self.catalog = db[names.SUBSCRIPTIONS]
        self.event_log = EventLog(db)
        self.stopping = threading.Event()  # graceful stop: finish or abandon what is in hand
        self.lease_lost = threading.Event()
        self.aborting = False  # a transient error: drop what is in flight, reconnect
        self.policy = RetryPolicy.from_options(sub.options)
        self.delivery = Delivery(sinks, self.policy, self.stopping,
                                 sub.options.get("processing_timeout_ms", 30_000))
        self.batch_mode = bool(sub.options.get("batch_processing"))
        self.group_size = int(sub.options.get("batch_size") or 100)
        self.concurrent = not sub.options.get("preserve_order", True) and not self.batch_mode
        self.lanes: Lanes | None = (
            Lanes(concurrency, self._deliver_row, self._may_start, sub.name)
            if self.concurrent else None)
        self.metrics = Metrics()
        self.token: dict[str, Any] | None = sub.resume_token
        self.window: deque[Row] = deque()  # admitted, not yet checkpointed, in oplog order
        self.batch: list[Row] = []
        self.batch_started = 0.0
        self.stored_lag: float | None = None

    # ---------------------------------------------------------------- control
    def stop(self) -> None:
        self.stopping.set()

    def lose_lease(self) -> None:
        log.warning("%s: the lease was taken over by another worker; stopping", self.sub.name)
        self.lease_lost.set()
        self.stopping.set()

    def _running(self) -> bool:
        return not (self.stopping.is_set() or self.shared.halt.is_set())

    def _may_start(self) -> bool:
        return not self.stopping.is_set() and not self.aborting

    # ---------------------------------------------------------------- the loop
    def run(self) -> None:
        try:
            self._consume()
        except LeaseLost:
            log.warning("%s: another worker owns the subscription now; stream closed",
                        self.sub.name)
        except Stale:
            log.info("%s: definition changed (ALTER, PAUSE, DROP or RESET); stream closed",
                     self.sub.name)
        except Exception as exc:
            if not isinstance(exc, PyMongoError | failures.HistoryLost):
                log.exception("%s: stopped by an unexpected error", self.sub.name)
            self._set_failed(failures.failure_message(self.sub.name, exc))
        finally:
            if self.lanes is not None:
                self.lanes.close()
            self.leases.release(self.sub.name)

    def _consume(self) -> None:
        backoff = RECONNECT_FIRST_S
        while self._running():
            try:
                if self.token is None:
                    failures.check_start_in_history(self.db, self.sub.start_at_operation_time)
                with self._open() as stream:
                    self._drain(stream)
                backoff = RECONNECT_FIRST_S
            except Exception as exc:
                if not failures.is_transient(exc):
                    raise
                self._abort_in_flight()
                log.warning("%s: %s: %s; reconnecting in %.1fs from the last checkpoint",
                            self.sub.name, type(exc).__name__, exc, backoff)
                if self.stopping.wait(backoff):
                    return
                backoff = min(backoff * 2, RECONNECT_MAX_S)

    def _open(self) -> ChangeStream:
        if self.token is not None:
            return self.sub.watch.open(self.db, start_after=self.token,
                                       max_await_time_ms=AWAIT_MS)
        return self.sub.watch.open(self.db,
                                   start_at_operation_time=self.sub.start_at_operation_time,
                                   max_await_time_ms=AWAIT_MS)

    def _drain(self, stream: ChangeStream) -> None:
        """Handle events until stopped; returns when the stream ends (invalidate) to reopen."""
        self._replay_dead_letters()
        last_sync = last_checkpoint = time.monotonic()
        while self._running():
            self._raise_lane_error()
            room = self._room()
            group = self._fetch(stream, room) if room else []
            if group is None:  # the stream was closed by the server: reopen
                self._finish_in_flight(deliver_batch=False)
                return
            invalidate = next((c for c in group if c.get("operationType") == "invalidate"),
                              None)
            if invalidate is not None:
                group = group[:group.index(invalidate)]
            if group:
                self._admit(group)
            if self.batch_mode and self._batch_due(idle=not group):
                self._deliver_batch()
            elif self.lanes is not None and not room:
                self.lanes.wait(AWAIT_MS / 1000)
            self._flush()
            if invalidate is not None:
                # The watched collection/database went away; continue after the invalidate.
                self._finish_in_flight(deliver_batch=True)
                self._checkpoint(None, invalidate["_id"])
                return
            now = time.monotonic()
            if not group and now - last_sync >= SYNC_INTERVAL_S:
                idle = not self.window and not self.batch
                checkpoint = idle and now - last_checkpoint >= IDLE_CHECKPOINT_S
                self._sync(stream.resume_token if checkpoint else None, idle)
                if idle:
                    self._replay_dead_letters()
                last_sync = time.monotonic()
                last_checkpoint = last_sync if checkpoint else last_checkpoint
        self._finish_in_flight(deliver_batch=not self.lease_lost.is_set())

    def _room(self) -> int:
        if self.batch_mode:
            return max(self.group_size - len(self.batch), 0)
        if self.lanes is not None:
            return min(self.group_size, max(MAX_IN_FLIGHT - len(self.window), 0))
        return self.group_size

    def _fetch(self, stream: ChangeStream, limit: int) -> list[dict[str, Any]] | None:
        """The events the stream has ready (waits up to AWAIT_MS for the first); None: closed."""
        change = stream.try_next()
        if change is None:
            return None if not stream.alive else []
        group = [change]
        while len(group) < limit and _buffered(stream):
            change = stream.try_next()
            if change is None:
                break
            group.append(change)
        return group

    # ---------------------------------------------------------------- admitting events
    def _admit(self, group: list[dict[str, Any]]) -> None:
        sub = self.sub
        rows = []
        for change in group:
            if not self.shared.take():
                self.shared.halt.set()
                break
            key = row_key(sub.subscription_id, event_id(change))
            static = static_columns(sub.subscription_id, sub.service_name, sub.name, change)
            rows.append(Row(change, key, static))
        done = self.event_log.terminal([row.key for row in rows])
        todo = []
        for row in rows:
            self.window.append(row)
            previous = done.get(row.key["event_id"])
            if previous is not None:  # handled before a crash, not checkpointed: acknowledge
                row.status, row.retries = previous["processing_status"], previous["retries"]
                row.skipped = row.recorded = True
            else:
                todo.append(row)
        if not todo:
            return
        if self.batch_mode:
            if not self.batch:
                self.batch_started = time.monotonic()
            self.batch.extend(todo)
            return
        todo = self._group_sinks(todo)
        if self.lanes is not None:
            for row in todo:
                self._submit(row)
            return
        for row in todo:
            if not self._may_start() or not self._deliver_row(row):
                break  # stopping: the rest stays unacknowledged

    def _group_sinks(self, rows: list[Row]) -> list[Row]:
        """Apply group-capable sinks (the collection sink) in one bulk write.

        Returns the rows that still need per-event delivery (to the other sinks, or again to a
        group sink whose write failed for that event).
        """
        group_sinks = self.delivery.group_sinks
        if not group_sinks:
            return rows
        started = datetime.now(UTC)
        failed: set[int] = set()
        for sink in group_sinks:
            failed.update(index for index, _ in sink.deliver_group([r.change for r in rows]))
        others = [s for s in self.delivery.sinks if s not in group_sinks]
        done_at = datetime.now(UTC)
        rest = []
        for index, row in enumerate(rows):
            if index in failed:
                row.skip_sinks = ()
                rest.append(row)
            elif others:
                row.skip_sinks = tuple(group_sinks)
                rest.append(row)
            else:
                row.started_at, row.completed_at = started, done_at
                self._finished(row, Outcome("completed", 0, None, _ms(started, done_at)))
        return rest

    def _submit(self, row: Row) -> None:
        assert self.lanes is not None
        key = row.change.get("documentKey")
        if key is None:  # drop, rename, dropDatabase: a barrier for every lane
            self.lanes.wait_idle()
            self._raise_lane_error()
            self._deliver_row(row)
            return
        self.lanes.submit(bson.encode(key), row)

    # ---------------------------------------------------------------- delivering
    def _deliver_row(self, row: Row) -> bool:
        """Deliver one event (in this thread); False when abandoned because we are stopping."""
        row.started_at = datetime.now(UTC)

        def on_retry(retry: int, error: str) -> None:
            log.warning("%s: %s failed (%s); retry %d of %d", self.sub.name,
                        row.key["event_id"][-16:], error, retry, self.policy.max_retry_attempts)
            self.event_log.mark(row, "retrying", retry, error)

        outcome = self.delivery.deliver(row.change, row.skip_sinks, on_retry,
                                        lambda: self.event_log.mark(row, "processing"))
        if outcome is None:
            return False
        row.completed_at = datetime.now(UTC)
        self._finished(row, outcome)
        return True

    def _batch_due(self, idle: bool) -> bool:
        if not self.batch:
            return False
        return (len(self.batch) >= self.group_size or idle
                or time.monotonic() - self.batch_started >= BATCH_MAX_WAIT_S)

    def _deliver_batch(self) -> None:
        """Deliver the pending batch as one list (all its events share the outcome)."""
        rows, self.batch = self.batch, []
        started = datetime.now(UTC)
        for row in rows:
            row.started_at = started

        def on_retry(retry: int, error: str) -> None:
            log.warning("%s: batch of %d failed (%s); retry %d of %d", self.sub.name, len(rows),
                        error, retry, self.policy.max_retry_attempts)
            for row in rows:
                self.event_log.mark(row, "retrying", retry, error)

        def on_slow() -> None:
            for row in rows:
                self.event_log.mark(row, "processing")

        outcome = self.delivery.deliver([row.change for row in rows], (), on_retry, on_slow)
        if outcome is None:
            return  # abandoned while stopping: unacknowledged, delivered again later
        done_at = datetime.now(UTC)
        for row in rows:
            row.completed_at = done_at
            self._finished(row, outcome)

    def _finished(self, row: Row, outcome: Outcome) -> None:
        row.retries = outcome.retries
        row.error = outcome.error
        row.duration_ms = outcome.duration_ms
        row.status = outcome.status  # last: marks the row done for the flushing thread

    def _finish_in_flight(self, deliver_batch: bool) -> None:
        """Stopping or reopening: let lanes finish the event in hand, deliver or drop the batch,
        and checkpoint what is done."""
        if self.lanes is not None:
            self.lanes.wait_idle()
        if self.batch and deliver_batch and not self.aborting:
            self._deliver_batch()
        self.batch = []
        self._flush()
        self._raise_lane_error()

    def _abort_in_flight(self) -> None:
        """After a transient error: stop the lanes, forget everything not checkpointed."""
        self.aborting = True
        try:
            if self.lanes is not None:
                self.lanes.wait_idle()
                self.lanes.take_error()
        finally:
            self.aborting = False
        self.window.clear()
        self.batch = []

    def _raise_lane_error(self) -> None:
        if self.lanes is not None:
            error = self.lanes.take_error()
            if error is not None:
                raise error

    # ---------------------------------------------------------------- flushing
    def _flush(self) -> None:
        """Write terminal rows of finished events; checkpoint the finished prefix."""
        if not self.window:
            return
        finished = [row for row in self.window if row.done and not row.recorded]
        if finished:
            self.event_log.record(finished)
            dead = [row for row in finished if row.status == "dead_letter"]
            if dead:
                self.event_log.dead_letter(dead)
            for row in finished:
                row.recorded = True
        last: Row | None = None
        while self.window and self.window[0].done:
            last = self.window.popleft()
            self._count(last)
        if last is not None:
            self._checkpoint(last, last.change["_id"])

    def _count(self, row: Row) -> None:
        status = row.status or ""
        self.metrics.record(status, row.retries, None if row.skipped else row.duration_ms)
        if row.skipped:
            self.shared.done(self.sub.name, "skipped")
            return
        self.shared.done(self.sub.name, status)
        static = row.static
        log.info("%s %s %s.%s %s %s %.1fms", self.sub.name, static["event_type"],
                 static["database_name"], static["collection_name"], static["document_key"],
                 status, row.duration_ms or 0.0)

    # ---------------------------------------------------------------- checkpoints
    def _checkpoint(self, last: Row | None, token: dict[str, Any]) -> None:
        """Store the position after ``last`` (handled) with the counters and metrics."""
        now = datetime.now(UTC)
        fields: dict[str, Any] = {"resume_token": token}
        if last is not None:
            cluster_time = last.change.get("clusterTime")
            if cluster_time is not None:
                happened = cluster_time.as_datetime()
                lag = max((now - happened).total_seconds(), 0.0)
                fields.update(resume_token_timestamp=happened,
                              resume_token_lag_seconds=round(lag, 3))
                self.stored_lag = lag
            fields["last_event_at"] = now
            if last.error:
                fields["last_error"] = last.error
        update: dict[str, Any] = {"$set": fields}
        self._add_metrics(update, now)
        self._write_position(token, update)

    def _add_metrics(self, update: dict[str, Any], now: datetime, force: bool = False) -> None:
        increments = self.metrics.take_increments()
        if increments:
            update["$inc"] = increments
            update["_increments"] = increments
        percentiles = self.metrics.percentiles(force)
        if percentiles is not None:
            update["$set"].update(percentiles)
        if increments or percentiles is not None:
            update["$set"]["metrics_updated_at"] = now

    def _write_position(self, token: dict[str, Any] | None, update: dict[str, Any]) -> None:
        increments = update.pop("_increments", None)
        try:
            doc = self.catalog.find_one_and_update(
                {"_id": self.sub.name, "position_version": self.sub.position_version,
                 "worker_id": self.leases.worker_id},
                update, projection={"status": 1, "version": 1, "worker_id": 1})
        except Exception:
            if increments:
                self.metrics.restore(increments)
            raise
        if doc is None:
            # Dropped, RESET, or another worker owns it now: this position is not wanted.
            owner = self.catalog.find_one({"_id": self.sub.name}, {"worker_id": 1})
            if owner is not None and owner.get("worker_id") != self.leases.worker_id:
                raise LeaseLost()
            raise Stale()
        if token is not None:
            self.token = token
        self._check_current(doc)

    def _sync(self, token: dict[str, Any] | None, idle: bool) -> None:
        """Idle: store the stream's latest position (if it moved), zero the lag once caught up,
        flush percentiles, and look for definition changes."""
        now = datetime.now(UTC)
        update: dict[str, Any] = {"$set": {}}
        if token is not None and token != self.token:
            update["$set"]["resume_token"] = token
        else:
            token = None
        if idle and self.stored_lag:
            update["$set"]["resume_token_lag_seconds"] = 0.0
            self.stored_lag = 0.0
        self._add_metrics(update, now, force=True)
        if update["$set"] or "$inc" in update:
            self._write_position(token, update)
            return
        doc = self.catalog.find_one({"_id": self.sub.name},
                                    {"status": 1, "version": 1, "worker_id": 1})
        self._check_current(doc)

    def _check_current(self, doc: Mapping[str, Any] | None) -> None:
        if doc is None or doc.get("status") != "active" or doc.get("version") != self.sub.version:
            raise Stale()
        if doc.get("worker_id") != self.leases.worker_id or self.lease_lost.is_set():
            raise LeaseLost()

    # ---------------------------------------------------------------- dead letters
    def _replay_dead_letters(self) -> None:
        """Re-deliver dead letters marked by REPLAY DEAD_LETTER_EVENTS (one pass)."""
        letters = self.db[names.DEAD_LETTERS]
        query = {"subscription_id": self.sub.subscription_id, "status": "replay_requested"}
        while self._running():
            letter = letters.find_one_and_update(query, {"$set": {"status": "replaying"}})
            if letter is None:
                return
            started = datetime.now(UTC)
            payload = [letter["event"]] if self.batch_mode else letter["event"]
            outcome = self.delivery.deliver(payload)
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
    def _set_failed(self, message: str) -> None:
        log.error("%s: subscription failed: %s", self.sub.name, message)
        try:
            self.catalog.update_one(
                {"_id": self.sub.name, "position_version": self.sub.position_version},
                {"$set": {"status": "failed", "status_message": message, "last_error": message,
                          "updated_at": datetime.now(UTC)}})
        except PyMongoError:
            log.exception("%s: could not record the failure", self.sub.name)


def _buffered(stream: ChangeStream) -> int:
    """Events the driver already holds for this stream (no server round trip to read them)."""
    cursor = getattr(stream, "_cursor", None)
    data = getattr(cursor, "_data", None)
    try:
        return len(data) if data is not None else 0
    except TypeError:
        return 0


def _ms(start: datetime, end: datetime) -> float:
    return round((end - start).total_seconds() * 1000, 3)
