"""A live query on the process's shared change stream of its namespace (docs/streaming.md,
"One change stream per collection").

A live query whose pipeline the client runs exactly (``plan.LiveQuery.own_stream_reason`` is
None; changestream/client_pipeline.py) attaches to ``changestream.shared.HUB`` as one more
consumer, next to the other live queries and the event worker's subscriptions of the same server
URI and database: the shared stream carries the raw events, with the union of the image options
its consumers need (``updateLookup`` if one reads ``full_document``, pre-images if one reads
``full_document_before_change``), and each live query filters and shapes its copy in the client.

Its start is a cluster time: "now" is the server's operation time when the query starts, so a
live query that joins a shared stream that is already open is placed in its buffer by time
(events before its start are not its own). Where the shared stream cannot place it (a SINCE in
the past, a token), it reads a stream of its own plan until it reaches a point the shared stream
has seen, then joins — the Consumer's mechanism, exact like the rest.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from bson import Timestamp, json_util
from bson.raw_bson import RawBSONDocument
from pymongo.change_stream import ChangeStream
from pymongo.database import Database

from queryleaf import plan
from queryleaf.changestream import client_pipeline
from queryleaf.changestream.clients import Source
from queryleaf.changestream.shared import HUB, Consumer, Start, time_key
from queryleaf.events import sharing
from queryleaf.events.watch import WatchSpec

# QUERYLEAF_SHARED_STREAMS=0: every live query reads its own stream (as the worker's runners).
SHARED_STREAMS = os.environ.get("QUERYLEAF_SHARED_STREAMS", "1") != "0"
_SKIP = object()  # marks an invalidate the live query's filter drops (see LiveConsumer)


def shares(p: plan.LiveQuery, source: Source | None) -> bool:
    return SHARED_STREAMS and source is not None and p.own_stream_reason is None


def start_of(p: plan.LiveQuery, db: Database) -> Start:
    """The live query's position: after its SINCE token, at its SINCE time, or just after the
    server's current operation time (now)."""
    if p.start.get("startAfter") is not None:
        return Start(token=p.start["startAfter"])
    if p.start.get("startAtOperationTime") is not None:
        return Start(time=p.start["startAtOperationTime"])
    with db.client.start_session(causal_consistency=False) as session:
        db.command("ping", session=session)
        now = session.operation_time
    if not isinstance(now, Timestamp):
        return Start()  # no cluster time (not a replica set): joins after its first event
    return Start(time=Timestamp(now.time, now.inc + 1), now=True)


def attach(
    source: Source,
    p: plan.LiveQuery,
    start: Start,
    open_own: Any,
    await_s: float,
    await_ms: int,
) -> LiveConsumer:
    """``p``'s consumer of the shared stream of its namespace (errors of opening it raised
    here, as ``watch`` raises them)."""
    pipeline = client_pipeline.compile_pipeline(
        p.pipeline, p.database_wide, source.db.codec_options.tz_aware
    )
    spec = WatchSpec(
        None if p.database_wide else p.collections[0],
        list(pipeline.namespace),
        "updateLookup" if p.full_document else "default",
        "whenAvailable" if p.full_document_before_change else "off",
    )
    judge = pipeline.judge()
    need = sharing.Need(
        (spec.collection, json_util.dumps(list(pipeline.namespace))),
        spec.full_document,
        spec.full_document_before_change,
        pipeline.filter_json,
        judge,
        False,  # it reads fullDocument only when it asked for it (planner/live.py)
    )
    identity = source.identity
    plan_ = sharing.open_plan(HUB.keys(), identity, need) or _new_plan(identity, need)
    shared_spec = sharing.stream_spec(spec, plan_)
    raw = source.db.codec_options.with_options(document_class=RawBSONDocument)
    not_before = time_key(start.since)

    def accept(event: Mapping[str, Any]) -> bool | None:
        if not_before is not None:
            when = time_key(event.get("clusterTime"))
            if when is not None and when < not_before:
                return False  # before this query started (the shared stream started earlier)
        return judge(event)

    def shape(event: dict[str, Any]) -> dict[str, Any]:
        if event.get("operationType") == "invalidate" and judge(event) is False:
            return {"_id": event["_id"], _SKIP: True}  # type: ignore[dict-item]
        return pipeline.shape(event)

    def open_shared(at: Start, first_batch: int | None) -> Any:
        return source.open(raw, lambda db: _open_at(shared_spec, db, at, first_batch, await_ms))

    consumer = HUB.attach(
        sharing.plan_key(identity, need, plan_),
        start,
        open_shared,
        open_own,
        source.db.codec_options,
        await_s,
        accept=accept,
        shape=shape,
    )
    return LiveConsumer(consumer)


def _new_plan(identity: Any, need: sharing.Need) -> sharing.Plan:
    """The shape of a new shared stream for ``need``: every event of its namespace (no server
    filter: live queries come and go, each with its own filter, and all of them can join it),
    with the union of the images of ``need`` and of the streams of its namespace open now, so
    that the live queries that start next find one stream that serves them all."""
    plans = [
        key[3]
        for key in HUB.keys()
        if isinstance(key, tuple)
        and len(key) == 4
        and key[:3] == ("union", identity, need.namespace)
    ]
    lookup = need.full_document == "updateLookup" or any(
        p.full_document == "updateLookup" for p in plans
    )
    pre = need.before_change == "whenAvailable" or any(
        p.before_change == "whenAvailable" for p in plans
    )
    return sharing.Plan(
        "updateLookup" if lookup else "default", "whenAvailable" if pre else "off", None
    )


class LiveConsumer:
    """A Consumer as the live query's stream: its shaped events (a ChangeStream's face)."""

    def __init__(self, consumer: Consumer):
        self.consumer = consumer

    def try_next(self) -> dict[str, Any] | None:
        change = self.consumer.try_next()
        while change is not None and _SKIP in change:
            change = self.consumer.try_next()
        return change

    @property
    def alive(self) -> bool:
        return self.consumer.alive

    @property
    def resume_token(self) -> Mapping[str, Any] | None:
        return self.consumer.resume_token

    def close(self) -> None:
        self.consumer.close()


def _open_at(
    spec: WatchSpec, db: Database, start: Start, first_batch: int | None, await_ms: int
) -> ChangeStream:
    return spec.open(
        db,
        start_after=None if start.token is None else dict(start.token),
        start_at_operation_time=None if start.token is not None or start.now else start.time,
        max_await_time_ms=await_ms,
        first_batch=first_batch,
    )
