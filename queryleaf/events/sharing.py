"""Which shared change stream a subscription reads, and what it keeps of it.

Subscriptions of one worker on the same namespace share one stream even when their streams
differ (docs/events.md, "Shared change streams"): the shared stream is opened with the union of
what they need — ``updateLookup`` if any asks for it, pre-images (``whenAvailable``) if any —
and each subscription's own filter (``event_types``, ``event_filter``, ``WHERE``) is evaluated
per event in the client (changestream/matcher.py); fields a subscription did not ask for are
removed from its copy, so its handlers and event-log rows are what its own stream gives.

Kept on a stream of the subscription's own shape (shared only with identical ones): a filter the
client does not evaluate exactly, images ``required`` (or ``full_document = 'whenAvailable'``),
and a filter that reads ``fullDocument``/``fullDocumentBeforeChange`` when the shared stream
adds those fields for others.

When every consumer has a filter, the shared stream also carries their union as one ``$match``
(``$or``), so the server drops what nobody wants (``QUERYLEAF_SHARED_FILTER=client``: never;
measured both ways in docs/benchmarks.md: the union costs up to a fifth of the rate when it
drops nothing and multiplies it when it drops most). A consumer that starts later with another
filter then reads a stream of its own plan.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from bson import json_util

from queryleaf.changestream.matcher import Judge, Unsupported, compile_filter

__all__ = ["Judge", "Need", "Plan", "Shape", "need_of", "plan_for", "plans_for", "stream_spec"]
from queryleaf.events.watch import WatchSpec

SERVER_FILTER = os.environ.get("QUERYLEAF_SHARED_FILTER", "server") != "client"
LOOKUP_MODES = ("default", "updateLookup")  # full_document values a union can serve
PRE_IMAGE_MODES = ("off", "whenAvailable")  # full_document_before_change values likewise
IMAGE_FIELDS = ("fullDocument", "fullDocumentBeforeChange")
Shape = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Plan:
    """The shape of a shared stream of one namespace: image options and the server filter."""

    full_document: str = "default"
    before_change: str = "off"
    server_filter: tuple[str, ...] | None = None  # the consumers' filters (JSON); None: all

    def covers(self, need: Need) -> bool:
        if need.full_document == "updateLookup" and self.full_document != "updateLookup":
            return False
        if need.before_change == "whenAvailable" and self.before_change != "whenAvailable":
            return False
        if need.reads_images and (
            need.full_document != self.full_document or need.before_change != self.before_change
        ):
            return False
        return self.server_filter is None or need.filter_json in self.server_filter


@dataclass(frozen=True)
class Need:
    """What one subscription needs of a shared stream of its namespace."""

    namespace: tuple[Any, ...]  # the collection, or the namespace $match of a multi/db watch
    full_document: str
    before_change: str
    filter_json: str  # "" for none
    judge: Judge | None
    reads_images: bool  # its filter reads fullDocument / fullDocumentBeforeChange


def need_of(spec: WatchSpec) -> Need | None:
    """What ``spec`` needs of a union stream; None if it cannot read one (see the module)."""
    if spec.full_document not in LOOKUP_MODES or spec.full_document_before_change not in (
        PRE_IMAGE_MODES
    ):
        return None
    namespace, filters = split(spec)
    if filters is None:
        return None
    query = _combined(filters)
    text = "" if query is None else json_util.dumps(query)
    try:
        judge = _judge(text) if query is not None else None
    except Unsupported:
        return None
    return Need(
        (spec.collection, json_util.dumps(namespace)),
        spec.full_document,
        spec.full_document_before_change,
        text,
        judge,
        query is not None and _reads_images(query),
    )


@functools.lru_cache(maxsize=1024)
def _judge(text: str) -> Judge:
    """One compiled filter per distinct filter: consumers with the same one share its verdict
    on each event (shared.py caches verdicts by filter)."""
    return compile_filter(json_util.loads(text))


def split(spec: WatchSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """The stages choosing the namespace, and the ``$match`` bodies of the others (None if a
    stage is not a ``$match``)."""
    stages = list(spec.pipeline)
    namespace: list[dict[str, Any]] = []
    if spec.collection is None and stages and set(stages[0].get("$match", {})) == {"ns.coll"}:
        namespace = [stages.pop(0)]
    bodies = []
    for stage in stages:
        if set(stage) != {"$match"}:
            return namespace, None
        bodies.append(stage["$match"])
    return namespace, bodies


def plan_for(needs: Iterable[Need]) -> Plan:
    """The union of ``needs`` (one namespace)."""
    needs = list(needs)
    full_document = (
        "updateLookup" if any(n.full_document == "updateLookup" for n in needs) else "default"
    )
    before = "whenAvailable" if any(n.before_change == "whenAvailable" for n in needs) else "off"
    server_filter = None
    if SERVER_FILTER and needs and all(n.filter_json for n in needs):
        server_filter = tuple(sorted({n.filter_json for n in needs}))
    return Plan(full_document, before, server_filter)


def stream_spec(spec: WatchSpec, plan: Plan) -> WatchSpec:
    """The shared stream of ``plan`` on ``spec``'s namespace."""
    namespace, _ = split(spec)
    pipeline = list(namespace)
    if plan.server_filter is not None:
        branches = [json_util.loads(text) for text in plan.server_filter]
        pipeline.append({"$match": branches[0] if len(branches) == 1 else {"$or": branches}})
    return replace(
        spec,
        pipeline=pipeline,
        full_document=plan.full_document,
        full_document_before_change=plan.before_change,
    )


def shaper(plan: Plan, need: Need) -> Shape | None:
    """What removes from an event of ``plan``'s stream the fields ``need`` did not ask for."""
    lookup_added = plan.full_document == "updateLookup" and need.full_document == "default"
    pre_added = plan.before_change == "whenAvailable" and need.before_change == "off"
    if not lookup_added and not pre_added:
        return None

    def shape(event: dict[str, Any]) -> dict[str, Any]:
        if lookup_added and event.get("operationType") == "update":
            event.pop("fullDocument", None)
        if pre_added:
            event.pop("fullDocumentBeforeChange", None)
        return event

    return shape


def plan_key(source: Hashable, need: Need, plan: Plan) -> Hashable:
    """The hub's key of ``plan``'s stream; ``source``: the server and database (a
    ``changestream.clients.Source`` identity)."""
    return ("union", source, need.namespace, plan)


def open_plan(keys: Iterable[Hashable], source: Hashable, need: Need) -> Plan | None:
    """The plan of an open shared stream of ``need``'s namespace that serves it, if any."""
    for key in keys:
        if (
            isinstance(key, tuple)
            and len(key) == 4
            and key[:3] == ("union", source, need.namespace)
            and isinstance(key[3], Plan)
            and key[3].covers(need)
        ):
            return key[3]
    return None


def plans_for(specs: Iterable[WatchSpec]) -> dict[Any, Plan]:
    """Per namespace, the union plan of the subscriptions (their watch specs) starting now."""
    needs: dict[Any, list[Need]] = {}
    for spec in specs:
        need = need_of(spec)
        if need is not None:
            needs.setdefault(need.namespace, []).append(need)
    return {namespace: plan_for(group) for namespace, group in needs.items()}


def _combined(bodies: list[dict[str, Any]]) -> dict[str, Any] | None:
    bodies = [body for body in bodies if body]
    if not bodies:
        return None
    return bodies[0] if len(bodies) == 1 else {"$and": bodies}


def _reads_images(query: Any) -> bool:
    if isinstance(query, Mapping):
        return any(
            any(str(key).split(".")[0] == name for name in IMAGE_FIELDS) or _reads_images(value)
            for key, value in query.items()
        )
    if isinstance(query, list):
        return any(_reads_images(item) for item in query)
    return False
