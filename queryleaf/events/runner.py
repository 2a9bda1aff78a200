"""One subscription's consumer: a thread that owns the subscription's lease and change stream.

The loop, per group of events the stream has ready (up to ``batch_size``):

1. skip those the event log already has as terminal (handled by a run that stopped before its
   checkpoint): when it (re)opens, the runner loads what the log holds from its position on;
2. deliver the others — in order on this thread (``preserve_order``), concurrently per document
   (``preserve_order = false``, see lanes.py), or as one list (``batch_processing``);
3. hand them to the committer thread (committer.py), which writes their terminal event-log
   rows (one bulk insert: a segment per group, see eventlog.py) and dead letters, and then
4. stores the resume token of the newest event that has no unfinished event before it, with
   the counters and metrics, in one write to the definition. That write is conditional on this
   worker still being the subscription's owner (lease fencing) and on the position not having
   been RESET meanwhile. The runner meanwhile goes on with the next events.

A crash anywhere before (4) means the events after the previous checkpoint arrive again: those
already terminal in the log are skipped, the others get one row each.
Definition changes (ALTER, PAUSE, DROP, RESET, a takeover) are noticed by the supervisor's poll
and handed in with ``observe``; the runner stops at its next step and the supervisor restarts it
if it is still active.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import bson
from bson import json_util
from bson.raw_bson import RawBSONDocument
from pymongo.change_stream import ChangeStream
from pymongo.database import Database
from pymongo.errors import PyMongoError

from queryleaf.changestream.clients import Source
from queryleaf.changestream.shared import HUB, Consumer, Start, buffered_events
from queryleaf.errors import ErrorCode
from queryleaf.events import failures, names, sharing
from queryleaf.events.combiner import WriteCombiner
from queryleaf.events.committer import Commit, Committer, LeaseLost, Stale
from queryleaf.events.definition import Subscription
from queryleaf.events.delivery import Delivery, Outcome
from queryleaf.events.eventlog import EventLog, Known, Row, event_id, row_key, static_columns
from queryleaf.events.lanes import Lanes
from queryleaf.events.lease import LeaseManager
from queryleaf.events.logs import SubscriptionLog, fields
from queryleaf.events.metrics import Metrics
from queryleaf.events.retry import RetryPolicy
from queryleaf.events.sinks import Sink
from queryleaf.events.stats import (
    FAILED,
    HISTORY_LOST,
    LEASE_LOST,
    NO_STATS,
    SubscriptionStats,
    WorkerStats,
)
from queryleaf.events.watch import WatchSpec

AWAIT_MS = 200  # longest the stream blocks on the server; also the batch idle-flush interval
BATCH_MAX_WAIT_S = 1.0  # a partial batch is delivered at the latest this long after it began
SYNC_INTERVAL_S = 1.0  # how often an idle runner writes its lag (0) and metrics
# How often an idle runner stores the stream's post-batch position (so a rarely matching
# subscription does not fall out of the oplog). Not every sync: that write is itself a change.
IDLE_CHECKPOINT_S = 60.0
MAX_IN_FLIGHT = 1000  # events admitted but not yet checkpointed (preserve_order = false)
RECONNECT_FIRST_S = 0.5
RECONNECT_MAX_S = 10.0
# One change stream per watched collection (or database) and stream shape per process, shared by
# the subscriptions that watch it; QUERYLEAF_SHARED_STREAMS=0 gives each its own (a comparison).
SHARED_STREAMS = os.environ.get("QUERYLEAF_SHARED_STREAMS", "1") != "0"


@dataclass
class WorkerReport:
    """What a ``run_worker`` call did."""

    events: int = 0
    by_subscription: dict[str, Counter] = field(default_factory=dict)
    reason: str = ""
    # time.monotonic() when the first event was taken from a stream / the last one checkpointed
    first_event_at: float | None = None
    last_event_at: float | None = None

    def count(self, name: str, status: str) -> None:
        self.by_subscription.setdefault(name, Counter())[status] += 1
        self.events += 1

    def add(self, earlier: WorkerReport) -> None:
        """Count in what an earlier run of the same worker did."""
        self.events += earlier.events
        for name, counts in earlier.by_subscription.items():
            self.by_subscription.setdefault(name, Counter()).update(counts)
        if earlier.first_event_at is not None:
            self.first_event_at = earlier.first_event_at


class Shared:
    """State shared by the supervisor and the runners of one worker."""

    def __init__(
        self,
        max_events: int | None,
        writer: WriteCombiner,
        stats: WorkerStats | None = None,
        uri: str | None = None,
    ):
        # The server's URI: the runners' shared streams are the process's for that URI (and
        # database), shared with other workers' and live queries (changestream/clients.py).
        self.uri = uri
        self.halt = threading.Event()  # max_events reached: runners finish what they took
        self.lock = threading.Lock()
        self.remaining = max_events
        self.last_activity = time.monotonic()
        self.report = WorkerReport()
        self.writer = writer  # writes the runners' log entries and checkpoints together
        self.stats = stats  # None: the worker is not monitored
        # time.monotonic() of the last successful poll or lease renewal (the worker's heartbeat)
        self.last_contact = time.monotonic()

    def stats_of(self, name: str) -> SubscriptionStats:
        return NO_STATS if self.stats is None else self.stats.of(name)

    def contact(self) -> None:
        self.last_contact = time.monotonic()

    def take(self) -> bool:
        """Claim the right to handle one more event (False once max_events is reached)."""
        with self.lock:
            if self.report.first_event_at is None:
                self.report.first_event_at = time.monotonic()
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
            self.last_activity = self.report.last_event_at = time.monotonic()

    def idle_for(self) -> float:
        with self.lock:
            return time.monotonic() - self.last_activity

    def touch(self) -> None:
        with self.lock:
            self.last_activity = time.monotonic()


class SubscriptionRunner(threading.Thread):
    """Consumes one subscription's change stream until stopped, stale or failed."""

    def __init__(
        self,
        db: Database,
        sub: Subscription,
        sinks: list[Sink],
        shared: Shared,
        leases: LeaseManager,
        concurrency: int,
    ):
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
        self.delivery = Delivery(
            sinks, self.policy, self.stopping, sub.options.get("processing_timeout_ms", 30_000)
        )
        self.batch_mode = bool(sub.options.get("batch_processing"))
        self.group_size = int(sub.options.get("batch_size") or 100)
        self.concurrent = not sub.options.get("preserve_order", True) and not self.batch_mode
        self.lanes: Lanes | None = (
            Lanes(concurrency, self._deliver_row, self._may_start, sub.name)
            if self.concurrent
            else None
        )
        self.metrics = Metrics()
        self.stats = shared.stats_of(sub.name)
        self.log = SubscriptionLog(sub.name)
        self.committer = Committer(
            self.catalog,
            self.event_log,
            sub,
            leases.worker_id,
            self.metrics,
            self._report,
            self.lease_lost,
            sub.resume_token,
            shared.writer,
            self.stats,
        )
        self.window: deque[Row] = deque()  # admitted, not yet handed over, in oplog order
        self.batch: list[Row] = []
        self.batch_started = 0.0
        self.known: dict[str, Known] = {}  # what the log holds past the position (see _open)
        # The same, read by the worker for all the subscriptions it starts (for the first open).
        self.preloaded: dict[str, Known] | None = None
        # The earliest start of the subscriptions the worker starts with this one on the same
        # stream (where a shared stream is best opened; see StreamHub.attach).
        self.earliest: Start | None = None
        # The shape of the shared stream of the subscriptions the worker starts with this one
        # on its namespace (the union of their needs; see sharing.py).
        self.plan: sharing.Plan | None = None
        self.not_before: Any = None  # events before this cluster time are not ours (_fetch)
        self.observed: Any = _NOTHING  # the definition as the supervisor last saw it
        self.replay_wanted = threading.Event()

    # ---------------------------------------------------------------- control
    def stop(self) -> None:
        self.stopping.set()

    def observe(self, doc: Mapping[str, Any] | None, replay: bool) -> None:
        """The supervisor's periodic look at the definition (None: dropped) and the dead
        letters: PAUSE/DROP/ALTER/RESET or a takeover stop the runner at its next step; a
        REPLAY request is served when the stream is idle."""
        self.observed = doc
        if replay:
            self.replay_wanted.set()

    def lose_lease(self) -> None:
        self.log.warning("%s: the lease was taken over by another worker; stopping", self.sub.name)
        self.stats.stopped(LEASE_LOST, "the lease was taken over by another worker")
        self.lease_lost.set()
        self.stopping.set()

    @property
    def busy(self) -> bool:
        """Events taken from the stream and not yet checkpointed (for ``idle_timeout``)."""
        return bool(self.window) or bool(self.batch) or self.committer.rows_in_flight > 0

    def _running(self) -> bool:
        return not (self.stopping.is_set() or self.shared.halt.is_set())

    def _may_start(self) -> bool:
        return not self.stopping.is_set() and not self.aborting

    # ---------------------------------------------------------------- the loop
    def run(self) -> None:
        self.stats.starting()
        self.committer.start()
        stop, message = "stopped", None
        try:
            self._consume()
        except LeaseLost:
            stop, message = LEASE_LOST, "another worker owns the subscription now"
            self.log.warning(
                "%s: %s: another worker owns the subscription now (lease lost); stream closed",
                self.sub.name,
                ErrorCode.LEASE_LOST,
            )
        except Stale:
            stop = "definition_changed"
            self.log.info(
                "%s: definition changed (ALTER, PAUSE, DROP or RESET); stream closed", self.sub.name
            )
        except Exception as exc:
            if self.stopping.is_set() and not isinstance(exc, failures.HistoryLost):
                # Stopping while the server is gone (the worker may even have closed the
                # client): not the subscription's failure; the next run resumes it.
                self.log.info(
                    "%s: stopped (%s: %s)",
                    self.sub.name,
                    type(exc).__name__,
                    exc,
                    extra=fields(error=exc),
                )
                return
            if not isinstance(exc, PyMongoError | failures.HistoryLost):
                self.log.exception("%s: stopped by an unexpected error", self.sub.name)
            message = failures.failure_message(self.sub.name, exc)
            stop = HISTORY_LOST if failures.is_history_lost(exc) else FAILED
            self._set_failed(message)
        finally:
            if self.lease_lost.is_set():
                stop, message = LEASE_LOST, message or "the lease was taken over by another worker"
            self.stats.stopped(stop, message)
            if self.lanes is not None:
                self.lanes.close()
            self.delivery.close()
            self.committer.close()
            self.committer.join(30)
            self.leases.release(self.sub.name)

    def _consume(self) -> None:
        backoff = RECONNECT_FIRST_S
        reopening = False
        while self._running():
            checkpoints = self.committer.checkpoints
            try:
                if reopening:
                    self._reload_position()
                if self.committer.token is None:
                    failures.check_start_in_history(self.db, self.sub.start_at_operation_time)
                failures.check_position_not_ahead(
                    self.db,
                    self.committer.cluster_time
                    if self.committer.token is not None
                    else self.sub.start_at_operation_time,
                )
                with self._open() as stream:
                    self.stats.streaming()
                    self._drain(stream)
                backoff = RECONNECT_FIRST_S
            except Exception as exc:
                if not failures.is_transient(exc):
                    raise
                reopening = True
                self.stats.reconnecting(f"{type(exc).__name__}: {exc}")
                if self.committer.checkpoints > checkpoints:  # progress since last time
                    backoff = RECONNECT_FIRST_S
                self._abort_in_flight()
                self.log.warning(
                    "%s: %s: %s; reconnecting in %.1fs from the last checkpoint",
                    self.sub.name,
                    type(exc).__name__,
                    exc,
                    backoff,
                    extra=fields(error=exc),
                )
                if self.stopping.wait(backoff):
                    return
                backoff = min(backoff * 2, RECONNECT_MAX_S)

    def _reload_position(self) -> None:
        """After a lost connection: continue from the position the server has stored.

        Checkpoints are written durably, so it is the one this runner stored last, unless the
        server lost writes it had acknowledged (a server without durable commits crashed, a
        rollback): then the stored one is older, and the events after it come again.
        """
        doc = self.catalog.find_one(
            {"_id": self.sub.name},
            {
                "status": 1,
                "version": 1,
                "worker_id": 1,
                "position_version": 1,
                "resume_token": 1,
                "checkpoint_cluster_time": 1,
            },
        )
        self.committer.check_current(doc)
        assert doc is not None
        if doc.get("position_version") != self.sub.position_version:
            raise Stale()
        stored = doc.get("resume_token")
        if stored != self.committer.token:
            self.log.warning(
                "%s: the server does not have the position this worker stored last (it "
                "lost acknowledged writes); continuing from the stored one, so events "
                "after it are delivered again",
                self.sub.name,
            )
            self.committer.token = stored
            self.committer.cluster_time = doc.get("checkpoint_cluster_time")

    def _open(self) -> ChangeStream | Consumer:
        token = self.committer.token
        # A run that stopped before its checkpoint may have recorded events past the position
        # (RESET removed the rows from its new start on, so after it only such runs count).
        since = self.committer.cluster_time if token is not None else None
        preloaded, self.preloaded = self.preloaded, None
        if preloaded is not None and token == self.sub.resume_token:
            self.known = preloaded
        else:
            self.known = self.event_log.existing(
                self.sub.subscription_id, since or self.sub.start_at_operation_time
            )
        start = self.start_position()
        self.not_before = start.since
        if not SHARED_STREAMS:
            return self._open_own(start)
        # The worker's subscriptions on the same namespace share one stream (docs/events.md,
        # "Shared change streams"); the position, delivery and checkpoints stay this runner's.
        key, spec, accept, shape = self._shared_stream()
        return HUB.attach(
            key,
            start,
            lambda at, first_batch: self._open_shared(spec, at, first_batch),
            self._open_own,
            self.db.codec_options,
            AWAIT_MS / 1000,
            self.earliest,
            accept,
            shape,
        )

    def _shared_stream(
        self,
    ) -> tuple[Hashable, WatchSpec, sharing.Judge | None, sharing.Shape | None]:
        """The shared stream this runner reads (its key and spec), its filter on it and what it
        removes from the events (see sharing.py)."""
        need = sharing.need_of(self.sub.watch)
        if need is None:  # only with streams of the very same shape
            return shared_key(self.source, self.sub.watch), self.sub.watch, None, None
        plan = sharing.open_plan(HUB.keys(), self.source.identity, need) or self.plan
        if plan is None or not plan.covers(need):
            plan = sharing.plan_for([need])
        spec = sharing.stream_spec(self.sub.watch, plan)
        key = sharing.plan_key(self.source.identity, need, plan)
        return key, spec, need.judge, sharing.shaper(plan, need)

    @property
    def source(self) -> Source:
        return Source(self.shared.uri, self.db)

    def start_position(self) -> Start:
        """Where the stream (re)opens (see ``start_of``)."""
        return start_of(
            self.committer.token, self.committer.cluster_time, self.sub.start_at_operation_time
        )

    def _open_shared(
        self, spec: WatchSpec, start: Start, first_batch: int | None = None
    ) -> ChangeStream:
        """The shared stream: events stay raw BSON until each consumer decodes its own copy."""
        raw = self.db.codec_options.with_options(document_class=RawBSONDocument)
        return self.source.open(raw, lambda db: _open_at(spec, db, start, first_batch))  # type: ignore[return-value]

    def _open_own(
        self, start: Start, first_batch: int | None = None, db: Database | None = None
    ) -> ChangeStream:
        return _open_at(self.sub.watch, self.db if db is None else db, start, first_batch)

    def _drain(self, stream: ChangeStream | Consumer) -> None:
        """Handle events until stopped; returns when the stream ends (invalidate) to reopen."""
        if self.replay_wanted.is_set():  # set by the supervisor (at the start, and each poll)
            self._replay_dead_letters()
        last_sync = last_checkpoint = time.monotonic()
        while self._running():
            self._raise_background_errors()
            room = self._room()
            group = self._fetch(stream, room) if room else []
            if group is None:  # the stream was closed by the server: reopen
                self._finish_in_flight(deliver_batch=False)
                return
            invalidate = next((c for c in group if c.get("operationType") == "invalidate"), None)
            if invalidate is not None:
                group = group[: group.index(invalidate)]
            if group:
                self._admit(group)
            if self.batch_mode and self._batch_due(idle=not group):
                self._deliver_batch()
            elif self.lanes is not None and not room:
                self.lanes.wait(AWAIT_MS / 1000)
            self._flush()
            if invalidate is not None:
                # The watched collection/database went away; continue after the invalidate
                # (unless something before it is unfinished: then from the last checkpoint).
                self._finish_in_flight(deliver_batch=True)
                if not self.window:
                    self.committer.submit(
                        Commit(token=invalidate["_id"], cluster_time=invalidate.get("clusterTime"))
                    )
                    self.committer.drain()
                return
            now = time.monotonic()
            if not group and now - last_sync >= SYNC_INTERVAL_S:
                idle = not self.window and not self.batch and self.committer.idle
                checkpoint = idle and now - last_checkpoint >= IDLE_CHECKPOINT_S
                self._sync(stream.resume_token if checkpoint else None, idle)
                if idle and self.replay_wanted.is_set():
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

    def _fetch(self, stream: ChangeStream | Consumer, limit: int) -> list[dict[str, Any]] | None:
        """The events the stream has ready (waits up to AWAIT_MS for the first); None: closed."""
        change = stream.try_next()
        if change is None:
            return None if not stream.alive else []
        group = [change]
        if isinstance(stream, Consumer):  # it may skip events of others: ask for ready ones
            while len(group) < limit:
                change = stream.next_buffered()
                if change is None:
                    break
                group.append(change)
        while len(group) < limit and buffered_events(stream):
            change = stream.try_next()
            if change is None:
                break
            group.append(change)
        if self.not_before is not None:
            group = self._from_start(group)
        return group

    def _from_start(self, group: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Drop the events before the start time (see ``start_position``); the first one at or
        after it ends the check."""
        not_before = self.not_before
        for index, change in enumerate(group):
            time_ = change.get("clusterTime")
            if change.get("operationType") == "invalidate" or time_ is None or time_ >= not_before:
                self.not_before = None
                return group[index:]
        return []

    # ---------------------------------------------------------------- admitting events
    def _admit(self, group: list[dict[str, Any]]) -> None:
        sub = self.sub
        self.stats.batch(len(group))
        rows = []
        for change in group:
            if not self.shared.take():
                self.shared.halt.set()
                break
            key = row_key(sub.subscription_id, event_id(change))
            static = static_columns(sub.subscription_id, sub.service_name, sub.name, change)
            rows.append(Row(change, key, static))
        known = self.known
        todo = []
        for row in rows:
            self.window.append(row)
            previous = known.pop(row.key, None) if known else None
            if previous is not None and previous.terminal:
                # Handled before a crash, not checkpointed: acknowledge, do not deliver again.
                row.status, row.retries = previous.status, previous.retries
                row.skipped = row.recorded = True
                continue
            if previous is not None:  # in flight when that run stopped: replace its single
                row.single = True
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
        """Apply group-capable sinks (the collection sink) in one bulk write (with no sink at
        all, the group is done at once).

        Returns the rows that still need per-event delivery (to the other sinks, or again to a
        group sink whose write failed for that event).
        """
        if not self.delivery.sinks:
            # deliver_to = 'log': recording the event is handling it; its processing times
            # are when the committer writes its row (EventLog.record).
            for row in rows:
                self._finished(row, Outcome("completed", 0, None, 0.0))
            return []
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
            self._raise_background_errors()
            self._deliver_row(row)
            return
        self.lanes.submit(bson.encode(key), row)

    # ---------------------------------------------------------------- delivering
    def _deliver_row(self, row: Row) -> bool:
        """Deliver one event (in this thread); False when abandoned because we are stopping."""
        row.started_at = datetime.now(UTC)

        def on_retry(retry: int, error: str) -> None:
            self.log.warning(
                "%s: %s failed (%s); retry %d of %d",
                self.sub.name,
                row.key[-16:],
                error,
                retry,
                self.policy.max_retry_attempts,
                extra=fields(event_id=event_id(row.change), error=error),
            )
            self.event_log.mark(row, "retrying", retry, error)
            if retry == 1 and self.lanes is None:
                self._show_queued_behind(row)

        outcome = self.delivery.deliver(
            row.change, row.skip_sinks, on_retry, lambda: self.event_log.mark(row, "processing")
        )
        if outcome is None:
            return False
        row.completed_at = datetime.now(UTC)
        self._finished(row, outcome)
        return True

    def _show_queued_behind(self, row: Row) -> None:
        """In order, the events taken from the stream after one being retried wait for it:
        show them as 'queued' (their rows are replaced when they are handled)."""
        waiting = [
            other
            for other in self.window
            if other is not row and not other.done and not other.single
        ]
        if waiting:
            self.event_log.mark_queued(waiting)

    def _batch_due(self, idle: bool) -> bool:
        if not self.batch:
            return False
        return (
            len(self.batch) >= self.group_size
            or idle
            or time.monotonic() - self.batch_started >= BATCH_MAX_WAIT_S
        )

    def _deliver_batch(self) -> None:
        """Deliver the pending batch as one list (all its events share the outcome)."""
        rows, self.batch = self.batch, []
        started = datetime.now(UTC)
        for row in rows:
            row.started_at = started

        def on_retry(retry: int, error: str) -> None:
            self.log.warning(
                "%s: batch of %d failed (%s); retry %d of %d",
                self.sub.name,
                len(rows),
                error,
                retry,
                self.policy.max_retry_attempts,
                extra=fields(error=error),
            )
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
        self.committer.drain()
        self._raise_background_errors()

    def _abort_in_flight(self) -> None:
        """After a transient error: stop the lanes, forget everything not checkpointed."""
        self.aborting = True
        try:
            if self.lanes is not None:
                self.lanes.wait_idle()
                self.lanes.take_error()
        finally:
            self.aborting = False
        self.committer.reset()
        self.window.clear()
        self.batch = []

    def _raise_background_errors(self) -> None:
        observed = self.observed
        if observed is not _NOTHING:
            self.committer.check_current(observed)  # a change the supervisor saw
        if self.lanes is not None:
            error = self.lanes.take_error()
            if error is not None:
                raise error
        self.committer.raise_error()

    # ---------------------------------------------------------------- flushing
    def _flush(self) -> None:
        """Hand finished events to the committer: their log rows, then the checkpoint of the
        finished prefix (events with nothing unfinished before them)."""
        if not self.window:
            return
        finished = [row for row in self.window if row.done and not row.recorded]
        for row in finished:
            row.recorded = True
        popped: list[Row] = []
        while self.window and self.window[0].recorded:  # done *and* handed over
            popped.append(self.window.popleft())
        if finished or popped:
            self.committer.submit(Commit(record=finished, popped=popped))

    def _report(self, row: Row) -> None:
        """After its checkpoint (committer thread): the worker report and the log line."""
        if row.skipped:
            self.shared.done(self.sub.name, "skipped")
            return
        self.shared.done(self.sub.name, row.status or "")
        if not self.log.isEnabledFor(logging.INFO):
            return
        static = row.static
        self.log.info(
            "%s %s %s.%s %s %s %.1fms",
            self.sub.name,
            static["event_type"],
            static["database_name"],
            static["collection_name"],
            json_util.dumps(static["document_key"], json_options=json_util.RELAXED_JSON_OPTIONS),
            row.status,
            row.duration_ms or 0.0,
            extra=fields(event_id=event_id(row.change), error=row.error),
        )

    # ---------------------------------------------------------------- idle
    def _sync(self, token: Mapping[str, Any] | None, idle: bool) -> None:
        """Idle: store the stream's latest position (if it moved), zero the lag once caught up,
        flush percentiles. (Definition changes are seen by the supervisor: ``observe``.)"""
        fields: dict[str, Any] = {}
        if idle and self.committer.stored_lag:
            fields["resume_token_lag_seconds"] = 0.0
        if (token is not None and token != self.committer.token) or fields or self.metrics.dirty:
            # Not waited for: its errors surface at the next step (_raise_background_errors).
            self.committer.submit(
                Commit(token=None if token is None else dict(token), fields=fields)
            )

    # ---------------------------------------------------------------- dead letters
    def _replay_dead_letters(self) -> None:
        """Re-deliver dead letters marked by REPLAY DEAD_LETTER_EVENTS (one pass)."""
        self.replay_wanted.clear()
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
                letters.update_one({"_id": letter["_id"]}, {"$set": {"status": "replay_requested"}})
                return
            replayed = outcome.status == "completed"
            letters.update_one(
                {"_id": letter["_id"]},
                {
                    "$set": {
                        "status": "replayed" if replayed else "dead_letter",
                        "error": outcome.error,
                        "updated_at": datetime.now(UTC),
                        "replayed_at": datetime.now(UTC) if replayed else None,
                    },
                    "$inc": {"attempts": outcome.retries + 1},
                },
            )
            if replayed:
                self.event_log.finish(letter["_id"], "completed", started, 0, None)
            self.shared.done(self.sub.name, f"replay_{outcome.status}")
            self.log.info(
                "%s replay %s %s",
                self.sub.name,
                letter["event_id"][-16:],
                outcome.status,
                extra=fields(event_id=letter["event_id"], error=outcome.error),
            )

    # ---------------------------------------------------------------- failures
    def _set_failed(self, message: str) -> None:
        self.log.error(
            "%s: subscription failed: %s", self.sub.name, message, extra=fields(error=message)
        )
        try:
            self.catalog.update_one(
                {"_id": self.sub.name, "position_version": self.sub.position_version},
                {
                    "$set": {
                        "status": "failed",
                        "status_message": message,
                        "last_error": message,
                        "updated_at": datetime.now(UTC),
                    }
                },
            )
        except PyMongoError:
            self.log.exception("%s: could not record the failure", self.sub.name)


_NOTHING = object()


def _ms(start: datetime, end: datetime) -> float:
    return round((end - start).total_seconds() * 1000, 3)


def shared_key(source: Source, spec: WatchSpec) -> tuple[Any, ...]:
    """Subscriptions whose streams are the same (namespace, pipeline, images) share one: the
    server and database, and the stream's shape (the cursor batch size aside)."""
    shape = {k: v for k, v in spec.to_document().items() if k != "batch_size"}
    return (source.identity, spec.collection, json_util.dumps(shape))


def start_of(token: Mapping[str, Any] | None, cluster_time: Any, start_time: Any) -> Start:
    """Where a subscription's stream opens: after its stored token, or at its start time. A
    position that is still the one CREATE or RESET stored (no event checkpointed since: no
    cluster time) counts from the start time: the token was taken just before it, and the
    events in between are not the subscription's (docs/events.md, "Shared change streams")."""
    if token is None:
        return Start(time=start_time)
    if cluster_time is None and start_time is not None:
        return Start(token=token, not_before=start_time)
    return Start(token=token)


def initial_start(sub: Subscription) -> Start:
    """Where ``sub`` opens with its stored position."""
    return start_of(sub.resume_token, sub.checkpoint_cluster_time, sub.start_at_operation_time)


def _open_at(
    spec: WatchSpec, db: Database, start: Start, first_batch: int | None = None
) -> ChangeStream:
    return spec.open(
        db,
        start_after=None if start.token is None else dict(start.token),
        start_at_operation_time=start.time if start.token is None else None,
        max_await_time_ms=AWAIT_MS,
        first_batch=first_batch,
    )


def stream_key(source: Source, sub: Subscription, plan: sharing.Plan | None) -> Hashable:
    """The shared stream ``sub`` reads when started with ``plan`` (see ``_shared_stream``)."""
    need = sharing.need_of(sub.watch)
    if need is None:
        return shared_key(source, sub.watch)
    if plan is None or not plan.covers(need):
        plan = sharing.plan_for([need])
    return sharing.plan_key(source.identity, need, plan)
