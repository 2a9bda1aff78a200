"""Live queries: ``SELECT ... FROM CHANGE_STREAM(...) [WHERE ...] EMIT CHANGES [LIMIT n]`` →
``plan.LiveQuery`` (docs/streaming.md).

WHERE and the select list compile with the SELECT planner's own machinery into ``$match`` and
``$project`` after the source's ``$replaceWith``; the whole pipeline runs in the change stream
on the server, which only takes stages that keep each event's ``_id`` (its resume token). What
such a pipeline cannot run — subqueries (no ``$lookup``), joins, ORDER BY, OFFSET, DISTINCT,
window functions — is refused here with its position; EMIT's LIMIT is counted by the client.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bson import Timestamp

from queryleaf import plan
from queryleaf.changestream import client_pipeline
from queryleaf.errors import PlanningError, Position, QueryLeafError
from queryleaf.planner import change_stream, live_aggregation
from queryleaf.planner.context import Context
from queryleaf.planner.params import Bindings
from queryleaf.planner.rewrite import normalize
from queryleaf.planner.select import SelectPlanner
from queryleaf.sql import ast
from queryleaf.sql.walk import walk, walk_expr

# Stages a change stream's pipeline may hold (MongoDB 6.0).
CHANGE_STREAM_STAGES = frozenset(
    {"$match", "$project", "$addFields", "$set", "$unset", "$replaceRoot", "$replaceWith"}
)


def plan_live_query(statement: ast.LiveQuery, bindings: Bindings) -> plan.LiveQuery:
    select = _check_shape(statement)
    call = select.from_[0]
    assert isinstance(call, ast.TableFunction)
    source = change_stream.ChangeStreamFunction().bind(call)
    start = _start(call.since)
    select = normalize(select)
    if statement.emit.final and select.window is None:
        raise PlanningError(
            "EMIT FINAL needs a WINDOW: it emits a window's rows once, when the window closes",
            statement.emit.pos,
        )
    aggregation = None
    if live_aggregation.is_aggregated(select):  # the server computes per change, the client
        select, aggregation = live_aggregation.split(select, statement.emit, bindings)
    with change_stream.live_planning():
        planner = SelectPlanner(select, Context(bindings))
        planned = planner.build()
    alias = call.alias or call.name.lower()
    read = planner.block.references.columns_of(alias)
    pipeline = _keep_resume_token(planned.pipeline, statement)
    return plan.LiveQuery(
        collections=source.collections,
        pipeline=pipeline,
        columns=planned.columns,
        full_document="updateLookup" if _reads(read, change_stream.POST_IMAGE) else None,
        full_document_before_change=(
            "whenAvailable" if _reads(read, change_stream.PRE_IMAGE) else None
        ),
        start=start,
        limit=statement.emit.limit,
        start_pos=call.since.pos if call.since is not None else call.pos,
        aggregation=aggregation,
        own_stream_reason=own_stream_reason(pipeline, source.database_wide),
    )


def own_stream_reason(pipeline: list[dict[str, Any]], database_wide: bool) -> str | None:
    """Why a live query cannot read the shared stream of its namespace (None: it can)."""
    try:
        client_pipeline.compile_pipeline(pipeline, database_wide)
    except client_pipeline.Unsupported as exc:
        return str(exc)
    return None


def _reads(columns: set[str] | None, name: str) -> bool:
    return columns is None or name in columns


def _check_shape(statement: ast.LiveQuery) -> ast.Select:
    """The query, when it is one a change stream can run; a positioned error otherwise."""
    query = statement.query
    if isinstance(query, ast.SetOperation):
        raise PlanningError(f"{query.op} in a live query: a live query reads one stream", query.pos)
    assert isinstance(query, ast.Select)
    if query.ctes:
        raise PlanningError("WITH is not supported in a live query", query.ctes[0].pos)
    items = query.from_
    if len(items) != 1 or not _is_change_stream(items[0]):
        where = items[0].pos if items else query.pos
        raise PlanningError(
            "a live query (EMIT) reads FROM CHANGE_STREAM('collection', ...) or "
            "CHANGE_STREAM(DATABASE), and nothing else (no joins)",
            _join_position(items[0]) if items and isinstance(items[0], ast.Join) else where,
        )
    for node in walk(query):
        if isinstance(node, ast.InSubquery | ast.Exists | ast.ScalarSubquery | ast.Quantified):
            raise PlanningError(
                "a subquery cannot run in a change stream's pipeline (no $lookup there); "
                "filter on the change's own fields",
                node.pos,
            )
    roots = [i.expr for i in query.items] + ([query.where] if query.where is not None else [])
    for root in roots:
        for node in walk_expr(root):
            if isinstance(node, ast.FuncCall) and node.over is not None:
                raise PlanningError(
                    "window functions (OVER) cannot run in a live query: each change is a row "
                    "on its own",
                    node.pos,
                )
    if query.distinct:
        raise PlanningError("DISTINCT cannot run in a live query (rows never end)", query.pos)
    if query.order_by:
        raise PlanningError(
            "ORDER BY cannot run in a live query: rows come in the order of the changes",
            query.order_by[0].pos,
        )
    if query.offset is not None:
        raise PlanningError("OFFSET cannot run in a live query", query.offset.pos)
    if query.limit is not None:
        raise PlanningError(
            "a live query's LIMIT follows EMIT: ... EMIT CHANGES LIMIT n", query.limit.pos
        )
    return query


def _is_change_stream(item: ast.FromItem) -> bool:
    return isinstance(item, ast.TableFunction) and item.name == change_stream.NAME


def _join_position(join: ast.Join) -> Position | None:
    return join.right.pos or join.pos


def _keep_resume_token(pipeline: list[dict[str, Any]], statement: ast.LiveQuery) -> list[Any]:
    """The pipeline with ``_id`` kept by its projection (the SELECT planner drops it), checked
    to hold only stages a change stream runs."""
    out = []
    for stage in pipeline:
        name = next(iter(stage))
        if name not in CHANGE_STREAM_STAGES:
            raise PlanningError(
                f"this live query needs a {name} stage, which a change stream cannot run",
                statement.pos,
            )
        if name == "$project" and stage[name].get("_id") == 0:
            stage = {name: {**stage[name], "_id": 1}}
            if all(v in (0, False) for k, v in stage[name].items() if k != "_id"):
                stage = {name: {k: v for k, v in stage[name].items() if k != "_id"}}
            if not stage[name]:
                continue
        out.append(stage)
    return out


def _start(since: ast.StreamStart | None) -> dict[str, Any]:
    """The ``$changeStream`` start option of ``SINCE`` (empty: now)."""
    if since is None:
        return {}
    if since.kind == "TOKEN":
        if not since.value or any(c not in "0123456789abcdefABCDEF" for c in since.value):
            raise PlanningError(
                "SINCE '...' takes a resume token: the event_id of a change (hex digits); "
                "for a point in time write SINCE TIMESTAMP '2025-01-31 12:00:00'",
                since.pos,
            )
        return {"startAfter": {"_data": since.value}}
    return {"startAtOperationTime": since_timestamp(since.value, since.pos)}


def since_timestamp(text: str, pos: Position | None) -> Timestamp:
    """The cluster time of ``SINCE TIMESTAMP 'text'``."""
    return cluster_time_at(text, "SINCE TIMESTAMP", pos)


def cluster_time_at(
    text: str,
    clause: str,
    pos: Position | None,
    error: type[QueryLeafError] = PlanningError,
    future_hint: str = "",
) -> Timestamp:
    """The cluster time (whole seconds) of ``clause 'text'``: an ISO 8601 date-time, UTC unless
    it says otherwise, not in the future and not before 1970; ``error`` (at ``pos``) otherwise.
    SINCE TIMESTAMP and RESET ... TO TIMESTAMP read their times here."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise error(
            f"{clause} expects an ISO 8601 date-time such as '2025-01-31 12:00:00', not {text!r}",
            pos,
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if when > datetime.now(UTC):
        raise error(f"{clause} {text!r} is in the future{future_hint}", pos)
    seconds = int(when.timestamp())
    if seconds < 0:
        raise error(f"{clause} {text!r} is before 1970", pos)
    return Timestamp(seconds, 1)
