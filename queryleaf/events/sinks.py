"""Where a subscription's events go besides the event log (``deliver_to``).

A sink has one method, ``deliver(event)``, which raises to report a failure (the worker then
retries per the subscription's RetryPolicy). ``event`` is the change event document exactly as
the server sent it (``_id`` = resume token, ``operationType``, ``ns``, ``documentKey``,
``fullDocument``, ...).
"""

from __future__ import annotations

import importlib
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from bson import json_util
from pymongo.collection import Collection
from pymongo.database import Database

from queryleaf.events.definition import Subscription
from queryleaf.events.eventlog import event_id

Handler = Callable[[dict[str, Any]], Any]


class Sink(Protocol):
    description: str

    def deliver(self, event: dict[str, Any]) -> None: ...


class SinkUnavailable(Exception):
    """The ``deliver_to`` target cannot be used by this worker process (message says why)."""


@dataclass
class CollectionSink:
    """Upserts each event into a collection, keyed by event id (idempotent)."""

    collection: Collection
    subscription_id: str

    @property
    def description(self) -> str:
        return f"collection:{self.collection.name}"

    def deliver(self, event: dict[str, Any]) -> None:
        eid = event_id(event)
        doc = {**event, "_id": eid, "resume_token": event["_id"],
               "subscription_id": self.subscription_id}
        self.collection.replace_one({"_id": eid}, doc, upsert=True)


@dataclass
class CallableSink:
    """A Python function: ``python:<module>:<function>`` or a handler registered by name."""

    function: Handler
    description: str

    def deliver(self, event: dict[str, Any]) -> None:
        self.function(event)


@dataclass
class HttpSink:
    """POSTs the event as Extended JSON (relaxed); any 2xx status is success."""

    url: str
    timeout_s: float

    @property
    def description(self) -> str:
        return self.url

    def deliver(self, event: dict[str, Any]) -> None:
        body = json_util.dumps(event, json_options=json_util.RELAXED_JSON_OPTIONS).encode()
        request = urllib.request.Request(
            self.url, data=body, method="POST",
            headers={"Content-Type": "application/json", "X-Queryleaf-Event-Id": event_id(event)})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        if not 200 <= status < 300:
            raise RuntimeError(f"POST {self.url} returned HTTP {status}")


def resolve(sub: Subscription, db: Database, handlers: Mapping[str, Handler]) -> list[Sink]:
    """The sinks of a subscription: its ``deliver_to`` target plus a handler registered for it.

    Raises SinkUnavailable when the target cannot be used here (handler not registered in this
    process, module not importable).
    """
    target: str = sub.options.get("deliver_to") or "log"
    sinks: list[Sink] = []
    scheme, _, rest = target.partition(":")
    if scheme == "collection":
        sinks.append(CollectionSink(db[rest], sub.subscription_id))
    elif scheme in ("http", "https"):
        sinks.append(HttpSink(target, sub.options["processing_timeout_ms"] / 1000))
    elif scheme == "python":
        sinks.append(CallableSink(_import(rest), target))
    elif scheme == "handler":
        if rest not in handlers:
            raise SinkUnavailable(f"deliver_to {target!r}: no handler named {rest!r} is "
                                  "registered in this process (use @ql.on(...))")
        sinks.append(CallableSink(handlers[rest], target))
    registered = handlers.get(sub.name) or handlers.get(sub.subscription_id)
    if registered is not None and all(getattr(s, "function", None) is not registered
                                      for s in sinks):
        sinks.append(CallableSink(registered, f"handler registered for {sub.name!r}"))
    return sinks


def _import(spec: str) -> Handler:
    module_name, _, function_name = spec.rpartition(":")
    try:
        module = importlib.import_module(module_name)
        function = getattr(module, function_name)
    except (ImportError, AttributeError) as exc:
        raise SinkUnavailable(f"deliver_to 'python:{spec}': {exc}") from exc
    if not callable(function):
        raise SinkUnavailable(f"deliver_to 'python:{spec}' is not callable")
    return function
