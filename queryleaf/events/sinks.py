"""Where a subscription's events go besides the event log (``deliver_to``).

A sink's ``deliver(payload)`` raises to report a failure (the worker then retries per the
subscription's RetryPolicy). ``payload`` is one change event document exactly as the server sent
it (``_id`` = resume token, ``operationType``, ``ns``, ``documentKey``, ``fullDocument``, ...),
or, for a subscription with ``batch_processing = true``, a list of them in oplog order.

Built-in sinks (``builtin = True``) talk to the database: a connection error there is the
server's trouble, not the event's, so the worker reconnects instead of counting a failure.
The collection sink can also apply a whole group of events in one bulk write
(``deliver_group``).
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from bson import json_util
from pymongo.collection import Collection
from pymongo.database import Database

from queryleaf.events import webhook
from queryleaf.events.definition import Subscription
from queryleaf.events.eventlog import event_id, upsert_by_id
from queryleaf.events.options import ENV_PREFIX
from queryleaf.secret import Secret, reveal

Handler = Callable[[Any], Any]
Payload = dict[str, Any] | list[dict[str, Any]]
SIGNATURE_HEADER = "X-Queryleaf-Signature-256"


class Sink(Protocol):
    @property
    def description(self) -> str: ...

    @property
    def builtin(self) -> bool: ...

    def deliver(self, payload: Payload) -> None: ...


@runtime_checkable
class GroupSink(Sink, Protocol):
    """A sink that also applies a whole group of events in one call: the (index, error) of the
    events that failed."""

    def deliver_group(self, events: list[dict[str, Any]]) -> list[tuple[int, str]]: ...


class SinkUnavailable(Exception):
    """The ``deliver_to`` target cannot be used by this worker process (message says why)."""


@dataclass
class CollectionSink:
    """Upserts each event into a collection, keyed by event id (idempotent)."""

    collection: Collection
    subscription_id: str
    builtin = True

    @property
    def description(self) -> str:
        return f"collection:{self.collection.name}"

    def _document(self, event: dict[str, Any]) -> dict[str, Any]:
        return {
            **event,
            "_id": event_id(event),
            "resume_token": event["_id"],
            "subscription_id": self.subscription_id,
        }

    def deliver(self, payload: Payload) -> None:
        if isinstance(payload, list):
            failed = self.deliver_group(payload)
            if failed:
                raise RuntimeError(
                    f"{len(failed)} of {len(payload)} event(s) could not be "
                    f"written to {self.collection.name}: {failed[0][1]}"
                )
            return
        doc = self._document(payload)
        self.collection.replace_one({"_id": doc["_id"]}, doc, upsert=True)

    def deliver_group(self, events: list[dict[str, Any]]) -> list[tuple[int, str]]:
        """Upsert every event in one unordered bulk write; returns (index, error) failures."""
        if not events:
            return []
        docs = [self._document(event) for event in events]  # a redelivered one is replaced
        return [
            (e["index"], e.get("errmsg", "write error"))
            for e in upsert_by_id(self.collection, docs)
        ]


@dataclass
class CallableSink:
    """A Python function: ``python:<module>:<function>`` or a handler registered by name."""

    function: Handler
    description: str
    builtin = False

    def deliver(self, payload: Payload) -> None:
        self.function(payload)


def signature(secret: str, body: bytes) -> str:
    """The value of the X-Queryleaf-Signature-256 header: ``sha256=<hex HMAC of the body>``."""
    return "sha256=" + hmac.new(reveal(secret).encode(), body, hashlib.sha256).hexdigest()


@dataclass
class HttpSink:
    """POSTs the event (or a batch, as a JSON array) as relaxed Extended JSON; a 2xx from the
    URL itself is success (redirects are not followed; see webhook.py), within ``timeout_s``.

    Headers: ``X-Queryleaf-Subscription`` (the subscription_id), ``X-Queryleaf-Event-Id`` (one
    event) or ``X-Queryleaf-Batch-Size`` (a batch), and with a ``webhook_secret``
    ``X-Queryleaf-Signature-256: sha256=<hex>``, the HMAC-SHA256 of the exact body bytes.
    """

    url: str
    timeout_s: float
    subscription_id: str = ""
    secret: Secret | None = None
    builtin = False

    @property
    def description(self) -> str:
        return self.url

    def deliver(self, payload: Payload) -> None:
        body = json_util.dumps(payload, json_options=json_util.RELAXED_JSON_OPTIONS).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Queryleaf-Subscription": self.subscription_id,
        }
        if isinstance(payload, list):
            headers["X-Queryleaf-Batch-Size"] = str(len(payload))
        else:
            headers["X-Queryleaf-Event-Id"] = event_id(payload)
        if self.secret is not None:
            headers[SIGNATURE_HEADER] = signature(self.secret, body)
        webhook.post(self.url, body, headers, self.timeout_s)


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
        sinks.append(
            HttpSink(
                target,
                sub.options["processing_timeout_ms"] / 1000,
                sub.subscription_id,
                _secret(sub.options.get("webhook_secret")),
            )
        )
    elif scheme == "python":
        sinks.append(CallableSink(_import(rest), target))
    elif scheme == "handler":
        if rest not in handlers:
            raise SinkUnavailable(
                f"deliver_to {target!r}: no handler named {rest!r} is "
                "registered in this process (use @ql.on(...))"
            )
        sinks.append(CallableSink(handlers[rest], target))
    registered = handlers.get(sub.name) or handlers.get(sub.subscription_id)
    if registered is not None and all(
        getattr(s, "function", None) is not registered for s in sinks
    ):
        sinks.append(CallableSink(registered, f"handler registered for {sub.name!r}"))
    return sinks


def _secret(value: str | None) -> Secret | None:
    """The webhook secret: the literal, or for ``env:NAME`` the worker's variable NAME."""
    if value is None:
        return None
    if not value.startswith(ENV_PREFIX):
        return Secret(value)
    name = value[len(ENV_PREFIX) :]
    secret = os.environ.get(name)
    if not secret:
        raise SinkUnavailable(
            f"webhook_secret 'env:{name}': the environment variable {name} "
            "is not set in this worker"
        )
    return Secret(secret)


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
