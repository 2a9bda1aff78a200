"""Leases: one active consumer per subscription (``ACTIVE_CHANGE_STREAMS()``).

A worker runs a subscription only while it holds that subscription's lease, a document in
``names.LEASES`` with ``_id`` = the subscription's name::

    {_id, subscription_name, subscription_id, service_name, watching, worker_id, host, pid,
     acquired_at, heartbeat_at, expires_at, lease_seconds}

* **acquire** (``acquire_many``: the leases a worker can take, in one bulk write): one
  conditional upsert per subscription — it matches when the lease is free (expired) or already
  ours; when another worker holds a live lease the upsert collides on ``_id`` and fails.
  The winner also stamps (one ``update`` for all it won) ``worker_id``/``worker_host``/``worker_pid`` on the subscription's
  definition; checkpoints are conditional on that stamp, so a worker that lost its lease can
  no longer move the subscription's position (fencing).
* **heartbeat**: the worker's heartbeat thread pushes ``expires_at`` forward every third of the
  lease time; a lease that is no longer ours is reported lost and its runner stops.
* **release**: on a graceful stop the lease document is deleted and the stamp cleared.

Times are the *server's* clock as estimated from ``hello.localTime`` (``ServerClock``), so
workers on hosts with skewed clocks still agree on when a lease expires.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import UpdateOne
from pymongo.database import Database
from pymongo.errors import BulkWriteError, PyMongoError

from queryleaf.events import names
from queryleaf.events.definition import Subscription

log = logging.getLogger("queryleaf.worker")

DEFAULT_LEASE_SECONDS = 15.0
LEASE_ENV = "QUERYLEAF_LEASE_SECONDS"
# A lease left by a crashed worker is removed once it has been expired this long (and by a TTL
# index on expires_at when no worker runs at all).
STALE_LEASE_TTL_S = 60
DUPLICATE_KEY = 11000


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def lease_seconds_from(value: float | None) -> float:
    if value is None:
        value = float(os.environ.get(LEASE_ENV) or DEFAULT_LEASE_SECONDS)
    if value <= 0:
        raise ValueError("the lease time must be positive")
    return value


class ServerClock:
    """The server's current time, estimated from ``hello.localTime`` and a local offset."""

    def __init__(self, db: Database, refresh_s: float = 30.0):
        self.db = db
        self.refresh_s = refresh_s
        self.offset = timedelta(0)
        self.measured_at = -refresh_s - 1.0

    def now(self) -> datetime:
        if time.monotonic() - self.measured_at >= self.refresh_s:
            self.measure()
        return datetime.now(UTC) + self.offset

    def measure(self) -> None:
        before = datetime.now(UTC)
        try:
            reply = self.db.client.admin.command("hello")
        except PyMongoError:
            return  # keep the previous estimate; retried at the next call
        after = datetime.now(UTC)
        server = reply.get("localTime")
        if isinstance(server, datetime):
            if server.tzinfo is None:
                server = server.replace(tzinfo=UTC)
            self.offset = server - (before + (after - before) / 2)
        self.measured_at = time.monotonic()


class LeaseManager:
    """Acquires, renews and releases this worker's leases."""

    def __init__(
        self,
        db: Database,
        lease_seconds: float,
        worker_id: str | None = None,
        clock: ServerClock | None = None,
    ):
        self.db = db
        self.leases = db[names.LEASES]
        self.catalog = db[names.SUBSCRIPTIONS]
        self.lease_seconds = lease_seconds
        self.worker_id = worker_id or new_worker_id()
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.clock = clock or ServerClock(db)
        self.lock = threading.Lock()
        self.held: set[str] = set()
        self.deferred: list[str] | None = None  # see defer_releases

    # ------------------------------------------------------------ reading
    def holders(self) -> dict[str, dict[str, Any]]:
        """Every lease document by subscription name."""
        return {doc["_id"]: doc for doc in self.leases.find({})}

    def is_free(self, lease: dict[str, Any] | None) -> bool:
        if lease is None or lease.get("worker_id") == self.worker_id:
            return True
        expires = lease.get("expires_at")
        return not isinstance(expires, datetime) or _aware(expires) <= self.clock.now()

    # ------------------------------------------------------------ acquire / release
    def acquire(self, sub: Subscription) -> bool:
        """Take the subscription's lease if it is free or ours; stamp the definition."""
        return sub.name in self.acquire_many([sub])

    def acquire_many(self, subs: list[Subscription]) -> set[str]:
        """Take the leases of ``subs`` that are free or ours, and stamp their definitions, with
        a few writes for all (a worker starting with many subscriptions). Returns the names
        taken."""
        if not subs:
            return set()
        now = self.clock.now()
        leases = {sub.name: {"_id": sub.name, **self._lease(sub, now)} for sub in subs}
        # Inserted where there is none (the usual case: released at the last stop): an insert
        # costs this server a small fraction of a conditional upsert.
        held_elsewhere = _duplicates(
            lambda: self.leases.insert_many(list(leases.values()), ordered=False)
        )
        taken = [name for index, name in enumerate(leases) if index not in held_elsewhere]
        others = [name for index, name in enumerate(leases) if index in held_elsewhere]
        if others:
            # A lease exists: taken over if it expired (a crashed worker's), or ours already.
            self.leases.bulk_write(
                [
                    UpdateOne(
                        {
                            "_id": name,
                            "$or": [{"worker_id": self.worker_id}, {"expires_at": {"$lte": now}}],
                        },
                        {"$set": {k: v for k, v in leases[name].items() if k != "_id"}},
                    )
                    for name in others
                ],
                ordered=False,
            )
            ours = self.leases.find(
                {"_id": {"$in": others}, "worker_id": self.worker_id}, {"_id": 1}
            )
            taken += [doc["_id"] for doc in ours]
        if not taken:
            return set()
        stamped = self.catalog.update_many(
            {"_id": {"$in": taken}},
            {
                "$set": {
                    "worker_id": self.worker_id,
                    "worker_host": self.host,
                    "worker_pid": self.pid,
                }
            },
        )
        if stamped.matched_count < len(taken):  # some were dropped meanwhile
            present = {d["_id"] for d in self.catalog.find({"_id": {"$in": taken}}, {"_id": 1})}
            gone = [name for name in taken if name not in present]
            self.leases.delete_many({"_id": {"$in": gone}, "worker_id": self.worker_id})
            taken = [name for name in taken if name in present]
        with self.lock:
            self.held.update(taken)
        return set(taken)

    def _lease(self, sub: Subscription, now: datetime) -> dict[str, Any]:
        return {
            "subscription_name": sub.name,
            "subscription_id": sub.subscription_id,
            "service_name": sub.service_name,
            "watching": f"{self.db.name}.{sub.watch.collection}"
            if sub.watch.collection
            else f"{self.db.name} (database)",
            "worker_id": self.worker_id,
            "host": self.host,
            "pid": self.pid,
            "acquired_at": now,
            "heartbeat_at": now,
            "expires_at": now + timedelta(seconds=self.lease_seconds),
            "lease_seconds": self.lease_seconds,
        }

    def release(self, name: str) -> None:
        """Give the lease up (graceful stop); a failure only delays takeover until expiry.
        While releases are deferred (the worker is stopping), it is given up with the others
        by ``release_deferred``."""
        with self.lock:
            if self.deferred is not None:
                self.deferred.append(name)
                return
        self.release_many([name])

    def defer_releases(self) -> None:
        """From now on, ``release`` only notes the name (a stopping worker: its runners end
        together, and giving their leases up in two writes for all spares the server)."""
        with self.lock:
            if self.deferred is None:
                self.deferred = []

    def release_deferred(self) -> None:
        """Give up the leases noted since ``defer_releases``; later releases are done at once."""
        with self.lock:
            names_, self.deferred = self.deferred or [], None
        self.release_many(names_)

    def release_many(self, names_: list[str]) -> None:
        if not names_:
            return
        with self.lock:
            self.held.difference_update(names_)
        mine = {"_id": {"$in": names_}, "worker_id": self.worker_id}
        try:
            self.leases.delete_many(mine)
            self.catalog.update_many(
                mine, {"$set": {"worker_id": None, "worker_host": None, "worker_pid": None}}
            )
        except PyMongoError as exc:
            log.warning(
                "%s: could not release the lease (%s); it expires in %.0fs",
                ", ".join(names_),
                exc,
                self.lease_seconds,
            )

    # ------------------------------------------------------------ heartbeat
    def renew(self) -> set[str]:
        """Extend every held lease; returns the names of those that are no longer ours."""
        with self.lock:
            held = sorted(self.held)
        if not held:
            return set()
        now = self.clock.now()
        result = self.leases.update_many(
            {"_id": {"$in": held}, "worker_id": self.worker_id},
            {
                "$set": {
                    "heartbeat_at": now,
                    "expires_at": now + timedelta(seconds=self.lease_seconds),
                }
            },
        )
        if result.matched_count == len(held):
            return set()
        ours = {
            doc["_id"]
            for doc in self.leases.find(
                {"_id": {"$in": held}, "worker_id": self.worker_id}, {"_id": 1}
            )
        }
        with self.lock:  # a lease released meanwhile (a runner stopping) is not lost
            lost = (set(held) - ours) & self.held
            self.held -= lost
        return lost

    def remove_stale(self, leases: Iterable[dict[str, Any]]) -> None:
        """Delete leases of crashed workers that nobody took over (housekeeping)."""
        cutoff = self.clock.now() - timedelta(seconds=STALE_LEASE_TTL_S)
        stale = [
            doc["_id"]
            for doc in leases
            if isinstance(doc.get("expires_at"), datetime) and _aware(doc["expires_at"]) < cutoff
        ]
        if stale:
            self.leases.delete_many({"_id": {"$in": stale}, "expires_at": {"$lt": cutoff}})


def _duplicates(write: Callable[[], Any]) -> set[int]:
    """The indexes of the documents ``write`` (an unordered bulk write) found already there."""
    try:
        write()
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors") or []
        if not errors or any(error.get("code") != DUPLICATE_KEY for error in errors):
            raise
        return {error["index"] for error in errors}
    return set()


def ensure_lease_indexes(db: Database) -> None:
    """A TTL index removes leases left by crashed workers even when no worker runs."""
    db[names.LEASES].create_index(
        "expires_at", expireAfterSeconds=STALE_LEASE_TTL_S, name="stale_lease_ttl"
    )


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
