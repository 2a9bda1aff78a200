"""A worker's Prometheus metrics, read from its state when scraped (docs/operations.md).

``Monitor`` is handed to ``run_worker(monitor=...)``: the worker attaches what it runs (its
runners, leases, shared state and database) while it runs, and its runners count into the
monitor's ``WorkerStats`` (stats.py). ``WorkerCollector`` turns all that into metric families
at scrape time, so a worker pays nothing per event for being scraped. The lag, status and lease
holder of each subscription come from one read of ``EVENT_SUBSCRIPTIONS()`` (its pipeline,
names.subscription_rows), so the lag gauge is the same value SQL shows.
"""

from __future__ import annotations

import platform
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pymongo
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from pymongo.database import Database
from pymongo.errors import PyMongoError

from queryleaf import __version__
from queryleaf.events import names
from queryleaf.events.lease import LeaseManager
from queryleaf.events.stats import STREAMING, WorkerStats

PREFIX = "queryleaf_"
SUBSCRIPTION = ("subscription",)
# How long a scrape (or a probe) waits for the server before answering without it.
SERVER_TIMEOUT_S = 2.0
STATUSES = ("active", "paused", "failed")


@dataclass
class WorkerView:
    """What a running worker shows its monitor (set by ``_supervise``)."""

    db: Database
    leases: LeaseManager
    only: list[str] | None
    committer_rows: Callable[[], int]  # events handed to the committers, not written yet
    last_contact: Callable[[], float]  # time.monotonic() of the last poll or lease renewal


class Monitor:
    """The monitoring of one worker process, across its runs (a restart after the embedded
    server moved keeps the counters)."""

    def __init__(self) -> None:
        self.stats = WorkerStats()
        self.lock = threading.Lock()
        self.view: WorkerView | None = None
        self.worker_id: str | None = None
        self.polled = False  # the worker has looked at the subscriptions at least once

    def attach(self, view: WorkerView) -> None:
        with self.lock:
            self.view = view
            self.worker_id = view.leases.worker_id
            self.polled = False  # ready again only once this run has polled

    def detach(self) -> None:
        with self.lock:
            self.view = None
            self.polled = False

    def mark_polled(self) -> None:
        self.polled = True

    def current(self) -> WorkerView | None:
        with self.lock:
            return self.view

    def registry(self) -> CollectorRegistry:
        """A registry of this worker's metrics only (not the process-wide default one)."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(WorkerCollector(self))
        return registry


def subscription_rows(
    db: Database,
    only: list[str] | None,
    timeout_s: float = SERVER_TIMEOUT_S,
    extra: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """``SELECT name, status, worker_status, resume_token_lag_seconds[, extra] FROM
    EVENT_SUBSCRIPTIONS()`` (of ``only``, or all), within ``timeout_s``."""
    columns = ["status", "worker_status", names.LAG, *extra]
    match: list[dict[str, Any]] = [{"$match": {"_id": {"$in": list(only)}}}] if only else []
    pipeline = [
        *match,
        *names.subscription_rows(columns),
        {"$project": {column: 1 for column in columns}},
    ]
    with pymongo.timeout(timeout_s):
        return list(db[names.SUBSCRIPTIONS].aggregate(pipeline))


class WorkerCollector(Collector):
    def __init__(self, monitor: Monitor):
        self.monitor = monitor

    def collect(self) -> Iterator[Metric]:
        monitor = self.monitor
        view = monitor.current()
        yield InfoMetricFamily(
            PREFIX + "build",
            "queryleaf version and Python version",
            value={"version": __version__, "python_version": platform.python_version()},
        )
        yield InfoMetricFamily(
            PREFIX + "worker",
            "this worker's id (host:pid:random) as it appears in ACTIVE_CHANGE_STREAMS()",
            value={"worker_id": monitor.worker_id or ""},
        )
        yield GaugeMetricFamily(
            PREFIX + "worker_up", "1 while the worker runs its subscriptions", int(view is not None)
        )
        if view is not None:
            yield GaugeMetricFamily(
                PREFIX + "worker_heartbeat_age_seconds",
                "Seconds since the worker last renewed its leases or read the subscriptions",
                max(time.monotonic() - view.last_contact(), 0.0),
            )
            yield GaugeMetricFamily(
                PREFIX + "worker_committer_queued_events",
                "Events handled and waiting for their event-log rows and checkpoint",
                view.committer_rows(),
            )
        yield from self._subscriptions(view)

    def _subscriptions(self, view: WorkerView | None) -> Iterator[Metric]:
        snapshots = [stats.snapshot() for stats in self.monitor.stats.all()]
        counters = {
            key: CounterMetricFamily(PREFIX + f"subscription_{key}", text, labels=SUBSCRIPTION)
            for key, text in (
                ("events_received", "Events taken from the stream and checkpointed"),
                ("events_processed", "Events delivered successfully"),
                ("events_failed", "Events that failed after their retries (dead-lettered too)"),
                ("events_retried", "Delivery retries"),
                ("events_dead_lettered", "Events moved to DEAD_LETTER_EVENTS()"),
                ("stream_opens", "Change streams opened (the first open and every reopen)"),
                ("history_loss_stops", "Stops because the position left the oplog"),
                ("lease_takeovers", "Leases taken over from another (expired) worker"),
                ("lease_losses", "Leases lost to another worker while running"),
            )
        }
        durations = HistogramMetricFamily(
            PREFIX + "subscription_processing_duration_seconds",
            "Delivery time per event (handler, webhook or collection write, with retries)",
            labels=SUBSCRIPTION,
        )
        batches = HistogramMetricFamily(
            PREFIX + "subscription_batch_size",
            "Events per group taken from the change stream",
            labels=SUBSCRIPTION,
        )
        streaming = GaugeMetricFamily(
            PREFIX + "subscription_streaming",
            "1 while this worker's runner of the subscription has its stream open",
            labels=SUBSCRIPTION,
        )
        held = GaugeMetricFamily(
            PREFIX + "subscription_lease_held",
            "1 while this worker holds the subscription's lease",
            labels=SUBSCRIPTION,
        )
        leases = set() if view is None else _held(view.leases)
        for snap in snapshots:
            label = [snap.name]
            for key, value in snap.counters.items():
                counters[key].add_metric(label, value)
            counters["stream_opens"].add_metric(label, snap.stream_opens)
            counters["history_loss_stops"].add_metric(label, snap.history_loss_stops)
            counters["lease_takeovers"].add_metric(label, snap.lease_takeovers)
            counters["lease_losses"].add_metric(label, snap.lease_losses)
            durations.add_metric(label, snap.durations, snap.duration_sum)
            batches.add_metric(label, snap.batches, snap.batch_sum)
            streaming.add_metric(label, int(snap.state == STREAMING))
            held.add_metric(label, int(snap.name in leases))
        yield from counters.values()
        yield from (durations, batches, streaming, held)
        if view is not None:
            yield from _from_catalog(view)


def _held(leases: LeaseManager) -> set[str]:
    with leases.lock:
        return set(leases.held)


def _from_catalog(view: WorkerView) -> Iterator[Metric]:
    """The subscriptions as EVENT_SUBSCRIPTIONS() shows them (every worker shows the same
    values: aggregate with max by (subscription))."""
    reachable = GaugeMetricFamily(
        PREFIX + "worker_database_up",
        "1 when the last scrape could read EVENT_SUBSCRIPTIONS() within 2 s",
    )
    try:
        rows = subscription_rows(view.db, view.only)
    except PyMongoError:
        reachable.add_metric([], 0)
        yield reachable
        return
    reachable.add_metric([], 1)
    yield reachable
    lag = GaugeMetricFamily(
        PREFIX + "subscription_lag_seconds",
        "EVENT_SUBSCRIPTIONS().resume_token_lag_seconds",
        labels=SUBSCRIPTION,
    )
    status = GaugeMetricFamily(
        PREFIX + "subscription_status",
        "1 for the subscription's current status (active, paused, failed)",
        labels=("subscription", "status"),
    )
    leased = GaugeMetricFamily(
        PREFIX + "subscription_worker_running",
        "1 when some worker holds a live lease (EVENT_SUBSCRIPTIONS().worker_status = running)",
        labels=SUBSCRIPTION,
    )
    for row in rows:
        name = str(row["_id"])
        value = row.get(names.LAG)
        if isinstance(value, int | float):
            lag.add_metric([name], float(value))
        for each in STATUSES:
            status.add_metric([name, each], int(row.get("status") == each))
        leased.add_metric([name], int(row.get("worker_status") == "running"))
    yield from (lag, status, leased)
