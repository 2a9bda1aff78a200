"""Helpers shared by the event-subscription tests."""

from __future__ import annotations

import time

from queryleaf.events import names
from queryleaf.events.eventlog import read_rows


def count_rows(db, query):
    """How many event-log rows match ``query``."""
    return len(read_rows(db, query))


def definition(ql, name):
    """The stored definition (and live status) of a subscription."""
    return ql.db[names.SUBSCRIPTIONS].find_one({"_id": name})


def log_rows(ql, **query):
    """Event-log rows matching ``query``, in oplog order."""
    return read_rows(ql.db, query)


def drain(ql, **kwargs):
    """Run the worker until it has been idle for a moment (or max_events)."""
    kwargs.setdefault("idle_timeout", 0.8)
    return ql.run_subscriptions(poll_interval=0.2, **kwargs)


def wait_for(predicate, timeout: float = 10.0, what: str = "the condition", interval: float = 0.05):
    """The first truthy value of ``predicate()`` within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
