"""A runner's committer: writes what its runner finished, off the delivery path.

The runner hands over (a) the events it finished, whose terminal event-log rows must be written,
and (b) the prefix of events with nothing unfinished before them, whose last resume token may be
stored. The committer thread writes them in order — the log rows (one bulk insert) first, then
the checkpoint with the counters — coalescing whatever queued up meanwhile into one write of
each. Delivery of the next events goes on in parallel, so the writes add no latency to them.
The writes go through the worker's combined writer (combiner.py), which sends those of all its
committers together.

It is also the only writer of the subscription's definition while the runner runs (checkpoints,
idle syncs), so position writes never race. An error (a lost connection, a stale definition, a
lost lease) is kept and raised in the runner thread at its next look (``raise_error``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pymongo.collection import Collection

from queryleaf.events.combiner import WriteCombiner
from queryleaf.events.definition import Subscription
from queryleaf.events.eventlog import EventLog, Row
from queryleaf.events.metrics import Metrics
from queryleaf.events.stats import NO_STATS, SubscriptionStats

log = logging.getLogger("queryleaf.worker")

MAX_PENDING_ROWS = 5000  # back-pressure: the runner waits beyond this many unwritten rows
COALESCE_S = 0.05  # at most one write batch per this interval while fewer than COALESCE_ROWS wait
COALESCE_ROWS = 1000


class Stale(Exception):
    """The definition changed (ALTER, PAUSE, DROP, RESET): stop this runner."""


class LeaseLost(Stale):
    """Another worker owns the subscription now."""


@dataclass
class Commit:
    record: list[Row] = field(default_factory=list)  # finished: write their log rows
    popped: list[Row] = field(default_factory=list)  # checkpoint after the last of these
    token: dict[str, Any] | None = None  # a position without an event (invalidate, idle)
    cluster_time: Any = None  # the cluster time of ``token`` if known (an invalidate)
    fields: dict[str, Any] = field(default_factory=dict)  # other fields to $set (lag 0, ...)


class Committer(threading.Thread):
    def __init__(
        self,
        catalog: Collection,
        event_log: EventLog,
        sub: Subscription,
        worker_id: str,
        metrics: Metrics,
        report: Callable[[Row], None],
        lease_lost: threading.Event,
        token: dict[str, Any] | None,
        writer: WriteCombiner,
        stats: SubscriptionStats = NO_STATS,
    ):
        super().__init__(name=f"queryleaf-commit-{sub.name}", daemon=True)
        self.catalog = catalog
        self.event_log = event_log
        self.sub = sub
        self.worker_id = worker_id
        self.metrics = metrics
        self.report = report  # called per checkpointed row (worker report, log line)
        self.lease_lost = lease_lost
        self.token = token  # the last position stored
        self.writer = writer  # the worker's combined writer (combiner.py)
        self.stats = stats  # the worker's Prometheus counters (stats.py)
        self.cluster_time = sub.checkpoint_cluster_time  # of the event the position follows
        self.checkpoints = 0
        self.stored_lag: float | None = None
        self.pending: deque[Commit] = deque()
        self.pending_rows = 0
        self.writing_rows = 0  # rows of the batch being written
        self.busy = False
        self.error: BaseException | None = None
        self.closed = False
        self.cond = threading.Condition()

    # ---------------------------------------------------------------- runner side
    def submit(self, commit: Commit) -> None:
        with self.cond:
            while self.pending_rows >= MAX_PENDING_ROWS and self.error is None:
                self.cond.wait(0.1)
            self.pending.append(commit)
            self.pending_rows += len(commit.record) + len(commit.popped)
            self.cond.notify_all()

    def raise_error(self) -> None:
        with self.cond:
            error, self.error = self.error, None
        if error is not None:
            raise error

    def drain(self) -> None:
        """Wait until everything handed over is written; raise its error if any."""
        with self.cond:
            while (self.pending or self.busy) and self.error is None:
                self.cond.wait(0.1)
        self.raise_error()

    @property
    def idle(self) -> bool:
        with self.cond:
            return not self.pending and not self.busy

    @property
    def rows_in_flight(self) -> int:
        """Events handed over and not written yet (idle syncs do not count)."""
        with self.cond:
            return self.pending_rows + self.writing_rows

    def reset(self) -> None:
        """After a transient error: drop what is not written (it will be delivered again)."""
        with self.cond:
            while self.busy:
                self.cond.wait(0.1)
            self.pending.clear()
            self.pending_rows = 0
            self.error = None

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    # ---------------------------------------------------------------- committer thread
    def run(self) -> None:
        last_write = 0.0
        while True:
            with self.cond:
                while not self.pending and not self.closed:
                    self.cond.wait()
                if not self.pending:
                    return
                # Under a trickle of events, gather for a moment rather than writing twice per
                # event: fewer writes for the server (and for every change stream to skip).
                wake = last_write + COALESCE_S
                while (
                    not self.closed
                    and self.pending_rows < COALESCE_ROWS
                    and time.monotonic() < wake
                ):
                    self.cond.wait(max(wake - time.monotonic(), 0.0))
                batch = list(self.pending)
                self.pending.clear()
                self.writing_rows, self.pending_rows = self.pending_rows, 0
                self.busy = True
                self.cond.notify_all()
            try:
                self._commit(batch)
            except BaseException as exc:  # noqa: BLE001 - handed to the runner thread
                with self.cond:
                    self.error = exc
                    self.pending.clear()
                    self.pending_rows = 0
            finally:
                last_write = time.monotonic()
                with self.cond:
                    self.busy = False
                    self.writing_rows = 0
                    self.cond.notify_all()

    def _commit(self, batch: list[Commit]) -> None:
        record = [row for commit in batch for row in commit.record]
        popped = [row for commit in batch for row in commit.popped]
        if record:
            self.writer.insert(self.event_log.entries_for(record))
            dead = [row for row in record if row.status == "dead_letter"]
            if dead:
                self.event_log.dead_letter(dead)
        fields: dict[str, Any] = {}
        token = cluster_time = None
        for commit in batch:
            fields.update(commit.fields)
            if commit.token is not None:
                token, cluster_time = commit.token, commit.cluster_time
        if popped:
            for row in popped:
                self.metrics.record(
                    row.status or "", row.retries, None if row.skipped else row.duration_ms
                )
            self.stats.checkpointed(popped)
            self.checkpoint(popped[-1], popped[-1].change["_id"], fields)
            fields = {}
            for row in popped:
                self.report(row)
        syncs = any(not commit.record and not commit.popped for commit in batch)
        if token is not None or fields or syncs:  # an invalidate after the events, idle
            self.sync(token, fields, cluster_time=cluster_time)

    # ---------------------------------------------------------------- position writes
    def checkpoint(self, last: Row, token: dict[str, Any], extra: dict[str, Any]) -> None:
        """Store the position after ``last`` (handled) with the counters and metrics."""
        now = datetime.now(UTC)
        fields: dict[str, Any] = {**extra, "resume_token": token, "last_event_at": now}
        cluster_time = last.change.get("clusterTime")
        if cluster_time is not None:
            happened = cluster_time.as_datetime()
            lag = max((now - happened).total_seconds(), 0.0)
            fields.update(
                resume_token_timestamp=happened,
                checkpoint_cluster_time=cluster_time,
                resume_token_lag_seconds=round(lag, 3),
            )
            self.stored_lag = lag
        if last.error:
            fields["last_error"] = last.error
        self.write({"$set": fields}, token, now, cluster_time=cluster_time)

    def sync(
        self,
        token: dict[str, Any] | None,
        fields: dict[str, Any],
        force_metrics: bool = True,
        cluster_time: Any = None,
    ) -> None:
        """A position without an event (invalidate, idle post-batch token) and/or fields."""
        update: dict[str, Any] = {"$set": dict(fields)}
        if token is not None and token != self.token:
            update["$set"]["resume_token"] = token
            if cluster_time is not None:
                update["$set"]["checkpoint_cluster_time"] = cluster_time
        else:
            token = None
        if "resume_token_lag_seconds" in fields:
            self.stored_lag = fields["resume_token_lag_seconds"]
        self.write(update, token, datetime.now(UTC), force_metrics, cluster_time)

    def write(
        self,
        update: dict[str, Any],
        token: dict[str, Any] | None,
        now: datetime,
        force_metrics: bool = False,
        cluster_time: Any = None,
    ) -> None:
        increments = self.metrics.take_increments()
        if increments:
            update["$inc"] = increments
        percentiles = self.metrics.percentiles(force_metrics)
        if percentiles is not None:
            update["$set"].update(percentiles)
        if increments or percentiles is not None:
            update["$set"]["metrics_updated_at"] = now
        if not update["$set"] and "$inc" not in update:
            return
        if not update["$set"]:
            del update["$set"]
        # If this write fails, its increments are dropped, not put back: they count events
        # after the stored position, which the runner takes from the stream again (and counts
        # again) when it reopens from there. Were the write applied before the connection
        # dropped, those events are behind the new position and must not count twice.
        query = {
            "_id": self.sub.name,
            "position_version": self.sub.position_version,
            "worker_id": self.worker_id,
        }
        if token is not None:
            # Conditional on the position it moves from: a driver's retry of this write after
            # an attempt that applied (the reply lost with the connection) then changes nothing,
            # so its counter increments never apply twice, whatever the server remembers of
            # retried writes after a restart.
            query["resume_token"] = self.token
        projection = {"status": 1, "version": 1, "worker_id": 1}
        doc = self.writer.update_definition(query, update, projection)
        if doc is None:
            # Dropped, RESET, or another worker owns it now: this position is not wanted.
            owner = self.catalog.find_one({"_id": self.sub.name}, {"worker_id": 1})
            if owner is not None and owner.get("worker_id") != self.worker_id:
                raise LeaseLost()
            raise Stale()
        if token is not None:
            self.token = token
            if cluster_time is not None:
                self.cluster_time = cluster_time
            self.checkpoints += 1
        self.check_current(doc)

    def check_current(self, doc: Mapping[str, Any] | None) -> None:
        if doc is None or doc.get("status") != "active" or doc.get("version") != self.sub.version:
            raise Stale()
        if doc.get("worker_id") != self.worker_id or self.lease_lost.is_set():
            raise LeaseLost()
