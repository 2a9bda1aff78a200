"""The worker's log: one logger (``queryleaf.worker``), the structured fields its lines carry,
and the two formats of ``queryleaf worker --log-format`` (docs/operations.md, "Logs").

Lines about one subscription carry ``subscription`` (and ``event_id`` about one event, ``error``
when something failed) as ``extra`` fields: the text format shows them in the message as before,
the JSON format as keys of its own.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

LOGGER = "queryleaf.worker"
FIELDS = ("subscription", "event_id", "error")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(message)s"
FORMATS = ("text", "json")


def fields(
    subscription: str | None = None, event_id: str | None = None, error: object = None
) -> dict[str, Any]:
    """The ``extra`` of a log call: the structured fields that have a value."""
    out: dict[str, Any] = {}
    if subscription is not None:
        out["subscription"] = subscription
    if event_id is not None:
        out["event_id"] = event_id
    if error is not None:
        out["error"] = str(error)
    return out


class SubscriptionLog(logging.LoggerAdapter):
    """The worker's logger for one subscription: its lines carry ``subscription``, besides the
    fields a call gives (``extra=fields(...)``)."""

    def __init__(self, name: str):
        super().__init__(logging.getLogger(LOGGER), {"subscription": name})

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs["extra"] = {**(self.extra or {}), **(kwargs.get("extra") or {})}
        return msg, kwargs


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, worker_id, subscription,
    event_id, message, error (with the traceback of a logged exception)."""

    def __init__(self, worker_id: str | None = None):
        super().__init__()
        self.worker_id = worker_id

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "worker_id": self.worker_id,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            trace = self.formatException(record.exc_info)
            line["error"] = f"{line['error']}\n{trace}" if "error" in line else trace
        return json.dumps(line, default=str)


def configure(log_format: str, level: int, worker_id: str | None = None) -> None:
    """The process's logging for a worker, to stderr: text (as ``logging.basicConfig``: left
    alone when the process has configured logging already) or JSON lines."""
    if log_format not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}; got {log_format!r}")
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "queryleaf_worker", False)]:
        root.removeHandler(old)  # a worker started again in the same process
    if log_format == "text" and root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    formatter = JsonFormatter(worker_id) if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    handler.queryleaf_worker = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
