"""Liveness and readiness of a worker: the ``/healthz`` and ``/readyz`` answers, and
``queryleaf worker --check`` (docs/operations.md).

* live (``/healthz``): the worker runs and its MongoDB answers a ping within 2 s;
* ready (``/readyz``): live, it has looked at the subscriptions, and every subscription it owns
  has its stream open; one stopped by lost history, another failure or a lost lease makes it not
  ready until this worker runs that subscription again (or it is no longer active or failed).
* ``check_database``: the same judgement from the database alone, for a check run outside the
  worker's process: every subscription selected that is active is streaming on some worker, none
  is failed.

Each answer is ``(ok, body)``, the body a JSON-ready dict with ``status`` and, when not ok,
``reasons``: ``[{"subscription": ..., "reason": ..., "message": ...}]`` (the subscription is
null for a reason of the whole worker).
"""

from __future__ import annotations

from typing import Any

import pymongo
from pymongo.database import Database
from pymongo.errors import PyMongoError

from queryleaf.events.observe import SERVER_TIMEOUT_S, Monitor, subscription_rows
from queryleaf.events.stats import HISTORY_LOST, RECONNECTING, STARTING

Answer = tuple[bool, dict[str, Any]]
# Failure codes of a status_message that mean the position left the server's history.
HISTORY_CODES = ("QL4002", "QL4003")


def reason(subscription: str | None, why: str, message: str | None = None) -> dict[str, Any]:
    return {"subscription": subscription, "reason": why, "message": message}


def answer(reasons: list[dict[str, Any]], ok_status: str) -> Answer:
    if reasons:
        return False, {"status": "fail", "reasons": reasons}
    return True, {"status": ok_status}


def ping(db: Database, timeout_s: float = SERVER_TIMEOUT_S) -> str | None:
    """None when the server answers a ping within ``timeout_s``, else what went wrong."""
    try:
        with pymongo.timeout(timeout_s):
            db.command("ping")
    except PyMongoError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def liveness(monitor: Monitor) -> Answer:
    view = monitor.current()
    if view is None:
        return answer([reason(None, "not_running", "the worker is not running")], "ok")
    error = ping(view.db)
    if error is not None:
        return answer([reason(None, "database_unreachable", error)], "ok")
    return answer([], "ok")


def readiness(monitor: Monitor) -> Answer:
    live, body = liveness(monitor)
    if not live:
        return live, body
    if not monitor.polled:
        return answer([reason(None, "starting", "the worker has not polled yet")], "ready")
    reasons = []
    for stats in monitor.stats.all():
        snap = stats.snapshot()
        if snap.state in (STARTING, RECONNECTING) or stats.problem:
            reasons.append(reason(snap.name, snap.reason or snap.state, snap.message))
    return answer(reasons, "ready")


def check_database(db: Database, only: list[str] | None) -> Answer:
    """Readiness judged from ``EVENT_SUBSCRIPTIONS()`` (``queryleaf worker --check``)."""
    error = ping(db)
    if error is not None:
        return answer([reason(None, "database_unreachable", error)], "ready")
    try:
        rows = subscription_rows(db, only, extra=("status_message",))
    except PyMongoError as exc:
        return answer([reason(None, "database_unreachable", str(exc))], "ready")
    reasons = []
    for row in sorted(rows, key=lambda r: str(r["_id"])):
        name = str(row["_id"])
        if row.get("status") == "failed":
            message = row.get("status_message") or ""
            why = HISTORY_LOST if message.startswith(HISTORY_CODES) else "failed"
            reasons.append(reason(name, why, message))
        elif row.get("status") == "active" and row.get("worker_status") != "running":
            reasons.append(
                reason(name, "no_worker", "no worker holds a live lease on the subscription")
            )
    return answer(reasons, "ready")
