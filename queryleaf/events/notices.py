"""What a worker says about the subscriptions it does not run: once when it sees the state, and
again when the state changes — not at every poll.

* **standby**: another worker holds the subscription's lease (which worker, where, until when);
* **unavailable**: this worker cannot deliver to the subscription's target;
* **nothing to run**: the database has no active subscription. The worker keeps running and
  starts a subscription created (or resumed) later at its next poll.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from pymongo.database import Database

from queryleaf.events import names
from queryleaf.events.logs import fields

log = logging.getLogger("queryleaf.worker")


class Notices:
    def __init__(self, db: Database, poll_interval: float):
        self.db = db
        self.poll_interval = poll_interval
        self.holders: dict[str, str | None] = {}  # subscription -> worker seen holding it
        self.unavailable_reasons: dict[str, str] = {}
        self.idle_said = False

    def standby(self, name: str, lease: dict[str, Any]) -> None:
        """Another worker holds ``name``'s live lease."""
        holder = lease.get("worker_id")
        if self.holders.get(name, "") == holder:
            return
        self.holders[name] = holder
        log.info(
            "%s: standing by: worker %s (host %s, pid %s) holds its lease until %s; "
            "this worker takes over if that lease expires",
            name,
            holder,
            lease.get("host"),
            lease.get("pid"),
            _time(lease.get("expires_at")),
            extra=fields(subscription=name),
        )

    def unavailable(self, name: str, reason: str) -> None:
        if self.unavailable_reasons.get(name) != reason:
            log.warning(
                "%s: not run by this worker: %s",
                name,
                reason,
                extra=fields(subscription=name, error=reason),
            )
            self.unavailable_reasons[name] = reason

    def running(self, name: str) -> None:
        """This worker took the lease of ``name`` (or may try to): forget what was said."""
        self.holders.pop(name, None)
        self.unavailable_reasons.pop(name, None)

    def active(self, count: int, only: list[str] | None) -> None:
        """The number of active subscriptions this poll found (of those named, if any)."""
        if count:
            self.idle_said = False
            return
        if self.idle_said:
            return
        self.idle_said = True
        if only:  # the names were checked at start: they exist but are not active
            log.warning(
                "none of %s is active; waiting for RESUME (checking every %gs)",
                ", ".join(only),
                self.poll_interval,
            )
            return
        statuses: dict[str, int] = {}
        for doc in self.db[names.SUBSCRIPTIONS].find({}, {"status": 1}):
            status = str(doc.get("status"))
            statuses[status] = statuses.get(status, 0) + 1
        if not statuses:
            log.warning(
                "no event subscriptions in database %s; waiting for CREATE EVENT_SUBSCRIPTION "
                "(checking every %gs)",
                self.db.name,
                self.poll_interval,
            )
        else:
            log.warning(
                "no active event subscriptions in database %s (%s); waiting for one "
                "(checking every %gs)",
                self.db.name,
                ", ".join(f"{n} {status}" for status, n in sorted(statuses.items())),
                self.poll_interval,
            )


def _time(value: Any) -> str:
    return value.isoformat(timespec="seconds") if isinstance(value, datetime) else str(value)
