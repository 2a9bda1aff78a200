"""Retention of the event log and the dead letters: TTL indexes the worker maintains.

* ``CHANGE_STREAM_EVENTS()`` rows expire ``log`` after ``processing_completed_at`` (rows still
  in flight have no completion time and never expire). Default 7 days.
* ``DEAD_LETTER_EVENTS()`` rows expire ``dead_letters`` after ``created_at``. Default 30 days.

Configured per worker (``queryleaf worker --log-retention 7d --dead-letter-retention 30d``,
``run_worker(log_retention=..., dead_letter_retention=...)``) or by the environment
(``QUERYLEAF_EVENT_LOG_RETENTION``, ``QUERYLEAF_DEAD_LETTER_RETENTION``). A worker given no
value keeps whatever TTL index exists and creates the default one only if there is none, so an
explicit setting is not undone by a worker started without it. ``0``/``off`` removes the index
(keep forever). MongoDB's TTL monitor deletes expired rows about once a minute.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass

from pymongo.database import Database
from pymongo.errors import OperationFailure

from queryleaf.events import names

log = logging.getLogger("queryleaf.worker")

INDEX_NAME = "retention_ttl"
DAY = 86_400


@dataclass(frozen=True)
class Retention:
    collection: str
    field: str
    env: str
    default_seconds: int


LOG = Retention(
    names.EVENT_LOG, "processing_completed_at", "QUERYLEAF_EVENT_LOG_RETENTION", 7 * DAY
)
DEAD_LETTERS = Retention(
    names.DEAD_LETTERS, "created_at", "QUERYLEAF_DEAD_LETTER_RETENTION", 30 * DAY
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": DAY, "w": 7 * DAY}


def parse_duration(text: str | float | int) -> int:
    """Seconds from ``3600``, ``90s``, ``30m``, ``12h``, ``7d``, ``2w``; ``off`` → 0."""
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        if text.strip().lower() in ("off", "none", "forever"):
            return 0
        match = _DURATION.match(text)
        if match is None:
            raise ValueError(f"{text!r} is not a duration (e.g. 3600, 30m, 12h, 7d, off)")
        seconds = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if seconds < 0:
        raise ValueError("a retention cannot be negative")
    return int(seconds)


def configured(spec: Retention, value: str | float | None) -> int | None:
    """Seconds from the argument, else the environment; None when neither is set."""
    if value is None:
        value = os.environ.get(spec.env) or None
    return None if value is None else parse_duration(value)


def ensure(db: Database, spec: Retention, value: str | float | None) -> int | None:
    """Create/update/drop the TTL index per ``value``; returns the seconds now in force."""
    seconds = configured(spec, value)
    collection = db[spec.collection]
    current = collection.index_information().get(INDEX_NAME)
    if seconds is None:  # nothing asked for: keep an existing index, else the default
        if current is not None:
            return current.get("expireAfterSeconds")
        seconds = spec.default_seconds
    if seconds == 0:
        if current is not None:
            collection.drop_index(INDEX_NAME)
        return None
    if current is None:
        collection.create_index(spec.field, expireAfterSeconds=seconds, name=INDEX_NAME)
    elif current.get("expireAfterSeconds") != seconds:
        try:
            db.command(
                "collMod",
                spec.collection,
                index={"name": INDEX_NAME, "expireAfterSeconds": seconds},
            )
        except OperationFailure:
            collection.drop_index(INDEX_NAME)
            collection.create_index(spec.field, expireAfterSeconds=seconds, name=INDEX_NAME)
    return seconds


def ensure_all(
    db: Database, log_retention: str | float | None, dead_letter_retention: str | float | None
) -> dict[str, int | None]:
    applied = {
        "event_log": ensure(db, LOG, log_retention),
        "dead_letters": ensure(db, DEAD_LETTERS, dead_letter_retention),
    }
    log.debug("retention (seconds): %s", applied)
    return applied
