"""The worker: runs the active subscriptions it can lease, one runner thread (and stream) each.

``run_worker(ql, ...)`` (``QueryLeaf.run_subscriptions`` and ``queryleaf worker``) is a
supervisor loop: every ``poll_interval`` it reads the active subscriptions and the leases,
acquires the free leases of subscriptions it can deliver (see lease.py) and starts a
``SubscriptionRunner`` for each (runner.py). A heartbeat thread renews the leases; a runner whose
lease was taken over stops. On stop, every runner finishes or abandons the event in hand,
checkpoints, and releases its lease.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import PyMongoError

from queryleaf.changestream.clients import STREAM_CLIENTS, Source
from queryleaf.changestream.shared import Start
from queryleaf.errors import ErrorCode, SubscriptionError
from queryleaf.events import catalog, names, retention, sharing
from queryleaf.events.combiner import WriteCombiner
from queryleaf.events.definition import Subscription
from queryleaf.events.durable import durable
from queryleaf.events.eventlog import EventLog
from queryleaf.events.lanes import DEFAULT_CONCURRENCY
from queryleaf.events.lease import (
    LeaseManager,
    ensure_lease_indexes,
    lease_seconds_from,
    new_worker_id,
)
from queryleaf.events.logs import fields
from queryleaf.events.notices import Notices
from queryleaf.events.observe import Monitor, WorkerView
from queryleaf.events.runner import (
    Shared,
    SubscriptionRunner,
    WorkerReport,
    initial_start,
    stream_key,
)
from queryleaf.events.sinks import Sink, SinkUnavailable, resolve

__all__ = ["WorkerReport", "run_worker"]

log = logging.getLogger("queryleaf.worker")

TICK_S = 0.05
# How long a stopping worker waits for its final writes (checkpoints, lease releases) after the
# last handler call in flight returned, when the server does not answer.
STOP_WRITES_S = 2.0
SERVER_MOVED = "server_moved"  # a stop reason that run_worker turns into a restart


class Runners:
    """The worker's subscription runners by name; once closed (the worker stops), no more."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_name: dict[str, SubscriptionRunner] = {}
        self.closed = False

    def get(self, name: str) -> SubscriptionRunner | None:
        with self.lock:
            return self.by_name.get(name)

    def all(self) -> list[SubscriptionRunner]:
        with self.lock:
            return list(self.by_name.values())

    def start(self, runner: SubscriptionRunner) -> bool:
        """Start and keep ``runner``; False once closed."""
        with self.lock:
            if self.closed:
                return False
            self.by_name[runner.sub.name] = runner
            runner.start()
            return True

    def close(self) -> list[SubscriptionRunner]:
        with self.lock:
            self.closed = True
            return list(self.by_name.values())


class Poller(threading.Thread):
    """Every ``interval``: one look at the subscriptions, leases and running runners (see
    ``_start_runners``). Its own thread, so that a server that does not answer keeps only this
    thread waiting, never the supervisor's response to a stop."""

    def __init__(self, poll: Callable[[], None], interval: float, polled: Callable[[], None]):
        super().__init__(name="queryleaf-poller", daemon=True)
        self.poll = poll
        self.polled = polled  # after each successful poll
        self.interval = interval
        self.stopped = threading.Event()
        self.error: BaseException | None = None  # raised by the supervisor

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.poll()
                self.polled()
            except PyMongoError as exc:
                log.warning("could not read the subscriptions (%s); retrying", exc)
            except BaseException as exc:  # noqa: BLE001 - handed to the supervisor
                self.error = exc
                return
            self.stopped.wait(self.interval)


class Heartbeat(threading.Thread):
    """Renews this worker's leases every third of the lease time; reports lost ones."""

    def __init__(self, leases: LeaseManager, runners: Runners, shared: Shared):
        super().__init__(name="queryleaf-heartbeat", daemon=True)
        self.leases = leases
        self.runners = runners
        self.shared = shared
        self.stopped = threading.Event()

    def run(self) -> None:
        interval = self.leases.lease_seconds / 3
        while not self.stopped.wait(interval):
            try:
                lost = self.leases.renew()
            except PyMongoError as exc:
                log.warning("lease heartbeat failed (%s); retrying in %.1fs", exc, interval)
                continue
            self.shared.contact()
            for name in lost:
                runner = self.runners.get(name)
                if runner is not None:
                    runner.lose_lease()


def run_worker(
    ql: Any,
    subscriptions: list[str] | None = None,
    stop_event: threading.Event | None = None,
    idle_timeout: float | None = None,
    max_events: int | None = None,
    poll_interval: float = 1.0,
    lease_seconds: float | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    log_retention: str | float | None = None,
    dead_letter_retention: str | float | None = None,
    worker_id: str | None = None,
    monitor: Monitor | None = None,
) -> WorkerReport:
    """Run the active subscriptions (all, or those named) until told to stop.

    Stops when ``stop_event`` is set, after ``idle_timeout`` seconds without an event, or once
    ``max_events`` events have been handled; in-flight events are finished (or abandoned, and
    delivered again later) and checkpointed, and the leases released.

    ``lease_seconds`` (default ``$QUERYLEAF_LEASE_SECONDS`` or 15): how long a crashed worker's
    subscriptions wait before another worker takes them over. ``concurrency``: threads per
    ``preserve_order = false`` subscription. ``log_retention`` / ``dead_letter_retention``:
    TTL of the event log and dead letters (``'7d'``, ``'12h'``, seconds, ``'off'``; see
    retention.py). ``monitor``: counts into it and shows it the worker's state, for the
    metrics and health endpoint (observe.py, endpoint.py). ``ql`` is a QueryLeaf (its ``db``
    and the ``handlers`` of ``@ql.on``).
    """
    handlers: Mapping[str, Callable[..., Any]] = getattr(ql, "handlers", {})
    worker_id = worker_id or new_worker_id()  # kept across a move: the leases stay ours
    before = WorkerReport()  # what the runs on an earlier port did
    while True:
        uri = getattr(ql, "uri", None)
        client = _worker_client(ql)
        db = durable(client[ql.db.name] if client is not None else ql.db)
        try:
            budget = None if max_events is None else max(max_events - before.events, 0)
            report = _supervise(
                db,
                handlers,
                subscriptions,
                stop_event,
                idle_timeout,
                budget,
                poll_interval,
                lease_seconds,
                concurrency,
                log_retention,
                dead_letter_retention,
                worker_id,
                moved=_moved_from(ql, uri),
                monitor=monitor,
                uri=uri if client is not None else None,
            )
        finally:
            if client is not None:
                STREAM_CLIENTS.give_back(client)
        report.add(before)
        if report.reason != SERVER_MOVED:
            return report
        before = report
        # The embedded server had to be started again on another port (ql's watchdog
        # reconnected ql): run again on the new one, from the stored positions.
        log.warning("the embedded server moved to another port; reconnecting the worker")


def _worker_client(ql: Any) -> MongoClient | None:
    """The worker's client: the process's client of the URI, on which the shared streams are
    opened too (one client to stop, not two: changestream/clients.py). Every runner keeps a
    change stream (a connection, for up to AWAIT_MS at a time) open, so its pool is not capped
    at the driver's default 100."""
    uri = getattr(ql, "uri", None)
    if not isinstance(uri, str):
        return None
    return STREAM_CLIENTS.acquire(uri)


def _moved_from(ql: Any, uri: str | None) -> Callable[[], bool]:
    """Whether ``ql`` now talks to another server than ``uri`` (the embedded one restarted
    on another port)."""
    return lambda: getattr(ql, "uri", None) != uri


def _supervise(
    db: Database,
    handlers: Mapping[str, Callable[..., Any]],
    subscriptions: list[str] | None,
    stop_event: threading.Event | None,
    idle_timeout: float | None,
    max_events: int | None,
    poll_interval: float,
    lease_seconds: float | None,
    concurrency: int,
    log_retention: str | float | None,
    dead_letter_retention: str | float | None,
    worker_id: str | None,
    moved: Callable[[], bool] = lambda: False,
    monitor: Monitor | None = None,
    uri: str | None = None,
) -> WorkerReport:
    if subscriptions:
        _check_names(db, subscriptions)
    leases = LeaseManager(db, lease_seconds_from(lease_seconds), worker_id)
    retention.ensure_all(db, log_retention, dead_letter_retention)
    catalog.ensure_indexes(db)
    ensure_lease_indexes(db)
    writer = WriteCombiner(db[names.SUBSCRIPTIONS], EventLog(db).insert)
    writer.start()
    shared = Shared(max_events, writer, None if monitor is None else monitor.stats, uri)
    runners = Runners()
    notices = Notices(db, poll_interval)
    heartbeat = Heartbeat(leases, runners, shared)
    heartbeat.start()

    def polled() -> None:
        shared.contact()
        if monitor is not None:
            monitor.mark_polled()

    poller = Poller(
        lambda: _start_runners(
            db, subscriptions, handlers, shared, runners, notices, leases, concurrency
        ),
        poll_interval,
        polled,
    )
    if monitor is not None:
        monitor.attach(
            WorkerView(
                db,
                leases,
                subscriptions,
                lambda: sum(runner.committer.rows_in_flight for runner in runners.all()),
                lambda: shared.last_contact,
            )
        )
    poller.start()
    log.info("worker %s started (lease %.1fs)", leases.worker_id, leases.lease_seconds)
    try:
        while True:
            if stop_event is not None and stop_event.is_set():
                shared.report.reason = "stopped"
                break
            if shared.budget_spent or shared.halt.is_set():
                shared.report.reason = "max_events"
                break
            if poller.error is not None:
                raise poller.error
            if moved():
                shared.report.reason = SERVER_MOVED
                break
            if any(runner.busy for runner in runners.all()):
                shared.touch()  # idle means nothing in flight either (e.g. waiting to retry)
            if idle_timeout is not None and shared.idle_for() >= idle_timeout:
                shared.report.reason = "idle_timeout"
                break
            time.sleep(TICK_S)
    finally:
        leases.defer_releases()
        shared.halt.set()
        poller.stopped.set()
        running = runners.close()
        stopped = shared.report.reason != "max_events"  # max_events: finish what was taken
        if stopped:
            for runner in running:
                runner.stop()
        deadline = _join_runners(running, STOP_WRITES_S if stopped else None)
        leases.release_deferred()
        heartbeat.stopped.set()
        writer.close()
        for thread in (heartbeat, writer):
            thread.join(max(deadline - time.monotonic(), TICK_S))
        if monitor is not None:
            monitor.detach()
    log.info("worker %s stopped (%s)", leases.worker_id, shared.report.reason)
    return shared.report


def _join_runners(runners: list[SubscriptionRunner], bound_s: float | None) -> float:
    """Wait for the stopped runners to write what they finished and release their leases, at
    most ``bound_s`` after the last handler call in flight returned (that call has its own grace,
    delivery.SHUTDOWN_GRACE_S). A runner still waiting for an unreachable server then is left
    behind: what it did not checkpoint is delivered again once its lease expires. Returns the
    deadline used (for the other threads)."""
    if bound_s is None:
        for runner in runners:
            runner.join()
        return time.monotonic() + STOP_WRITES_S
    deadline = time.monotonic() + bound_s
    for runner in runners:
        while runner.is_alive():
            if runner.delivery.calling:
                deadline = max(deadline, time.monotonic() + bound_s)
            elif time.monotonic() >= deadline:
                break
            runner.join(TICK_S)
    stuck = [runner.sub.name for runner in runners if runner.is_alive()]
    if stuck:
        log.warning(
            "could not checkpoint %s within %.0fs of the stop (the server does not "
            "answer); leaving: their unacknowledged events are delivered again after "
            "the lease expires",
            ", ".join(stuck),
            bound_s,
        )
    return deadline


def _observe_runners(db: Database, runners: Runners) -> None:
    """One look for all running subscriptions: definition changes and REPLAY requests."""
    running = {r.sub.name: r for r in runners.all() if r.is_alive()}
    if not running:
        return
    docs = {
        doc["_id"]: doc
        for doc in db[names.SUBSCRIPTIONS].find(
            {"_id": {"$in": list(running)}}, {"status": 1, "version": 1, "worker_id": 1}
        )
    }
    replays = _replay_requests(db)
    for name, runner in running.items():
        runner.observe(docs.get(name), runner.sub.subscription_id in replays)


def _replay_requests(db: Database) -> set[Any]:
    """The subscriptions with dead letters marked by REPLAY (one query for all runners)."""
    return set(db[names.DEAD_LETTERS].distinct("subscription_id", {"status": "replay_requested"}))


def _start_runners(
    db: Database,
    only: list[str] | None,
    handlers: Mapping[str, Any],
    shared: Shared,
    runners: Runners,
    notices: Notices,
    leases: LeaseManager,
    concurrency: int,
) -> None:
    _observe_runners(db, runners)
    _forget_settled_problems(db, shared)
    current = leases.holders()
    leases.remove_stale(current.values())
    # All leases first, then all streams: every write is examined by every open stream, so
    # taking N leases while N streams open one by one would cost the server N² (it matters
    # for a worker starting with many subscriptions).
    candidates: dict[str, tuple[Subscription, list[Sink]]] = {}
    active = catalog.load_active(db, only)
    notices.active(len(active), only)
    for sub in active:
        running = runners.get(sub.name)
        if (running is not None and running.is_alive()) or not sub.ready:
            continue
        lease = current.get(sub.name)
        if lease is not None and not leases.is_free(lease):
            notices.standby(sub.name, lease)
            continue
        try:
            sinks = resolve(sub, db, handlers)
        except SinkUnavailable as exc:
            notices.unavailable(sub.name, str(exc))
            continue
        notices.running(sub.name)
        candidates[sub.name] = (sub, sinks)
    taken = leases.acquire_many([sub for sub, _ in candidates.values()])
    for name in taken:
        previous = current.get(name)
        if previous is not None and previous.get("worker_id") != leases.worker_id:
            shared.stats_of(name).taken_over()
    acquired = {name: sinks for name, (_, sinks) in candidates.items() if name in taken}
    if not acquired:
        return
    # The positions as of the leases, not before.
    fresh = {sub.name: sub for sub in catalog.load_many(db, list(acquired))}
    replays = _replay_requests(db)
    starting = [sub for sub in fresh.values() if sub.status == "active"]
    plans = sharing.plans_for([sub.watch for sub in starting])
    plan_of = {sub.name: _plan(plans, sub) for sub in starting}
    earliest = _earliest_starts(Source(shared.uri, db), starting, plan_of)
    # What the event log holds past each position: one look-up for all (see runner._open).
    known = EventLog(db).existing_many({sub.subscription_id: sub.log_since for sub in starting})
    for name, sinks in acquired.items():
        leased = fresh.get(name)
        if leased is None or leased.status != "active":
            leases.release(name)
            continue
        runner = SubscriptionRunner(db, leased, sinks, shared, leases, concurrency)
        runner.preloaded = known.get(leased.subscription_id, {})
        runner.plan = plan_of.get(name)
        runner.earliest = earliest.get(stream_key(Source(shared.uri, db), leased, runner.plan))
        if leased.subscription_id in replays:
            runner.replay_wanted.set()
        if not runners.start(runner):  # the worker is stopping
            leases.release(name)
            continue
        log.info(
            "%s: watching %s (worker %s)",
            leased.name,
            leased.watch.collection or f"database {db.name}",
            leases.worker_id,
            extra=fields(subscription=leased.name),
        )


def _forget_settled_problems(db: Database, shared: Shared) -> None:
    """A subscription stopped by a problem (lost history, a failure, a lost lease) keeps the
    worker not ready until this worker runs it again, or until it is neither active nor failed
    any more (PAUSE, DROP): then the problem is no longer this worker's."""
    if shared.stats is None:
        return
    problems = shared.stats.problems()
    if not problems:
        return
    pending = {
        doc["_id"]
        for doc in db[names.SUBSCRIPTIONS].find(
            {
                "_id": {"$in": [stats.name for stats in problems]},
                "status": {"$in": ["active", "failed"]},
            },
            {"_id": 1},
        )
    }
    for stats in problems:
        if stats.name not in pending:
            stats.stopped("settled")


def _plan(plans: dict[Any, sharing.Plan], sub: Subscription) -> sharing.Plan | None:
    need = sharing.need_of(sub.watch)
    return None if need is None else plans.get(need.namespace)


def _earliest_starts(
    source: Source, subs: list[Subscription], plan_of: dict[str, sharing.Plan | None]
) -> dict[Any, Start]:
    """Per shared stream, the earliest start (by cluster time) of the subscriptions starting
    on it now: a shared stream opened there can place every one of them by cluster time."""
    earliest: dict[Any, Start] = {}
    for sub in subs:
        start = initial_start(sub)
        since = start.since
        if since is None:
            continue
        key = stream_key(source, sub, plan_of.get(sub.name))
        current = earliest.get(key)
        if current is None or since < current.since:
            earliest[key] = start
    return earliest


def _check_names(db: Database, wanted: list[str]) -> None:
    known = {
        doc["_id"]: doc.get("status")
        for doc in db[names.SUBSCRIPTIONS].find({}, {"_id": 1, "status": 1})
    }
    missing = [name for name in wanted if name not in known]
    if missing:
        raise SubscriptionError(
            f"no event subscription named {', '.join(map(repr, missing))}; existing: "
            f"{', '.join(sorted(known)) or 'none'}",
            error_code=ErrorCode.UNKNOWN_SUBSCRIPTION,
        )
    for name in wanted:
        if known[name] != "active":
            log.warning(
                "%s is %s: not run until it is active again (RESUME, or RESET after a failure)",
                name,
                known[name],
            )
