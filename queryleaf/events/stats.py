"""In-process counters of a monitored worker, per subscription, for its Prometheus metrics.

The runners update them where they already do the work (the committer once per written group,
the runner once per group taken from the stream, at a stream (re)open, at a stop); the metrics
endpoint (observe.py) reads them when scraped. They live as long as the worker process, across
the runner threads of one subscription, so the counters only grow (a runner that stops and is
started again keeps counting). A worker run without monitoring gets ``NO_STATS``, which does
nothing.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field

from queryleaf.events.definition import COUNTERS  # the subscription's stored counters
from queryleaf.events.eventlog import Row
from queryleaf.events.metrics import COUNTER_FOR_STATUS

# Upper bounds (seconds) of the processing-duration buckets: handlers from a millisecond to a
# processing timeout (30 s by default).
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Upper bounds of the batch-size buckets: events per group taken from the stream (batch_size
# caps it, 100 by default).
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)

# Runner states (see ``SubscriptionStats.state``); the stops that make the worker not ready.
STARTING, STREAMING, RECONNECTING, STOPPED = "starting", "streaming", "reconnecting", "stopped"
HISTORY_LOST, LEASE_LOST, FAILED = "history_lost", "lease_lost", "failed"
PROBLEM_STOPS = frozenset({HISTORY_LOST, LEASE_LOST, FAILED})


class Histogram:
    """Counts per bucket and the sum of the observed values (its owner holds the lock)."""

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one: above every bound
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, count)`` pairs as the Prometheus text format wants them, ``+Inf`` last."""
        out, total = [], 0
        for bound, count in zip((*map(_le, self.bounds), "+Inf"), self.counts, strict=True):
            total += count
            out.append((bound, total))
        return out


def _le(bound: float) -> str:
    return repr(float(bound))


@dataclass
class Snapshot:
    """A consistent copy of one subscription's stats, for one scrape."""

    name: str
    counters: dict[str, int]
    durations: list[tuple[str, int]]
    duration_sum: float
    batches: list[tuple[str, int]]
    batch_sum: float
    stream_opens: int
    history_loss_stops: int
    lease_takeovers: int
    lease_losses: int
    state: str
    reason: str | None
    message: str | None


@dataclass
class SubscriptionStats:
    name: str
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    durations: Histogram = field(default_factory=lambda: Histogram(DURATION_BUCKETS))
    batches: Histogram = field(default_factory=lambda: Histogram(BATCH_BUCKETS))
    stream_opens: int = 0
    history_loss_stops: int = 0
    lease_takeovers: int = 0
    lease_losses: int = 0
    state: str = STARTING
    reason: str | None = None  # why stopped or reconnecting
    message: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    # ------------------------------------------------------------ updates (runner threads)
    def checkpointed(self, rows: Iterable[Row]) -> None:
        """Events whose checkpoint is being written (the committer, once per group)."""
        with self.lock:
            counters = self.counters
            for row in rows:
                counters["events_received"] += 1
                for counter in COUNTER_FOR_STATUS.get(row.status or "", ()):
                    counters[counter] += 1
                if row.retries:
                    counters["events_retried"] += row.retries
                if row.duration_ms is not None and not row.skipped:
                    self.durations.observe(row.duration_ms / 1000)

    def batch(self, size: int) -> None:
        with self.lock:
            self.batches.observe(size)

    def starting(self) -> None:
        with self.lock:
            self.state, self.reason, self.message = STARTING, None, None

    def streaming(self) -> None:
        with self.lock:
            self.stream_opens += 1
            self.state, self.reason, self.message = STREAMING, None, None

    def reconnecting(self, error: str) -> None:
        with self.lock:
            self.state, self.reason, self.message = RECONNECTING, "reconnecting", error

    def stopped(self, reason: str, message: str | None = None) -> None:
        with self.lock:
            if reason == HISTORY_LOST:
                self.history_loss_stops += 1
            elif reason == LEASE_LOST and self.reason != LEASE_LOST:
                self.lease_losses += 1
            self.state, self.reason, self.message = STOPPED, reason, message

    def taken_over(self) -> None:
        """This worker took the subscription's lease from another (expired) worker."""
        with self.lock:
            self.lease_takeovers += 1

    # ------------------------------------------------------------ reading (scrapes)
    @property
    def problem(self) -> bool:
        """Stopped by something an operator must look at (not by PAUSE, ALTER or a stop)."""
        return self.state == STOPPED and self.reason in PROBLEM_STOPS

    def snapshot(self) -> Snapshot:
        with self.lock:
            return Snapshot(
                self.name,
                dict(self.counters),
                self.durations.cumulative(),
                self.durations.sum,
                self.batches.cumulative(),
                self.batches.sum,
                self.stream_opens,
                self.history_loss_stops,
                self.lease_takeovers,
                self.lease_losses,
                self.state,
                self.reason,
                self.message,
            )


class NoStats(SubscriptionStats):
    """A worker run without monitoring: every update does nothing."""

    def checkpointed(self, rows: Iterable[Row]) -> None:
        pass

    def batch(self, size: int) -> None:
        pass

    def starting(self) -> None:
        pass

    def streaming(self) -> None:
        pass

    def reconnecting(self, error: str) -> None:
        pass

    def stopped(self, reason: str, message: str | None = None) -> None:
        pass

    def taken_over(self) -> None:
        pass


NO_STATS = NoStats("")


class WorkerStats:
    """Every subscription's stats in this worker process, by name."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_name: dict[str, SubscriptionStats] = {}

    def of(self, name: str) -> SubscriptionStats:
        with self.lock:
            stats = self.by_name.get(name)
            if stats is None:
                stats = self.by_name[name] = SubscriptionStats(name)
            return stats

    def all(self) -> list[SubscriptionStats]:
        with self.lock:
            return sorted(self.by_name.values(), key=lambda s: s.name)

    def problems(self) -> list[SubscriptionStats]:
        return [stats for stats in self.all() if stats.problem]
