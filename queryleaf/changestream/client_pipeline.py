"""A live query's change-stream pipeline run in the client, on the raw events of a shared stream.

A live query's pipeline (planner/live.py) renames the change event's fields into its columns
(``$replaceWith``), filters (``$match``) and projects (``$project``). When every step is one the
client does exactly as the server — the columns are plain paths of the event (or
``event_timestamp``), the filter is in matcher.py's subset once its columns are renamed back to
the event's paths, and the projection reads plain paths — the live query can read a stream
shared with others, that carries the raw events: ``judge`` keeps its events, ``shape`` makes of
each what its own pipeline would have made. Otherwise ``compile_pipeline`` raises
``Unsupported`` with the reason, and the live query keeps a stream of its own.

Exact means undecided where the server's semantics leave the subset: a projected or renamed path
that meets an array before its end (the server's array traversal) makes ``judge`` answer None,
and the consumer reads that event from its own stream (changestream/shared.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bson import json_util

from queryleaf.changestream.matcher import Judge, Unsupported, compile_filter

__all__ = ["ClientPipeline", "Unsupported", "compile_pipeline"]

# The one computed column a shared stream's consumer makes itself: its value is exact.
EVENT_TIMESTAMP = {"$ifNull": ["$wallTime", {"$toDate": "$clusterTime"}]}
_MISSING = object()
_ARRAY = object()  # a path met an array before its end: the server's traversal decides


@dataclass(frozen=True)
class ClientPipeline:
    """The pipeline of a live query, split: ``namespace`` (the ``ns.coll`` ``$match`` of a
    database watch: it stays in the shared stream) and the rest, run by ``judge`` and
    ``shape``."""

    namespace: tuple[dict[str, Any], ...]
    columns: tuple[tuple[str, tuple[str, ...] | None], ...]  # name, event path (None: computed)
    filter: dict[str, Any] | None  # on the event's own paths
    outputs: tuple[tuple[str, tuple[str, ...], bool], ...] | None  # name, path, null if missing
    tz_aware: bool = True

    @property
    def filter_json(self) -> str:
        return "" if self.filter is None else json_util.dumps(self.filter)

    def judge(self) -> Judge:
        """Whether an event is the live query's (None: the client cannot tell exactly)."""
        matches = compile_filter(self.filter) if self.filter is not None else None
        paths = self._event_paths()

        def judge(event: Mapping[str, Any]) -> bool | None:
            verdict = True if matches is None else matches(event)
            if verdict is False:
                return False
            if any(_resolve(event, path) is _ARRAY for path in paths):
                return None
            return verdict

        return judge

    def _event_paths(self) -> list[tuple[str, ...]]:
        """The event paths ``shape`` reads (each must not meet an array before its end)."""
        by_name = dict(self.columns)
        paths = [path for _, path in self.columns if path is not None]
        for _, path, _ in self.outputs or ():
            column = by_name.get(path[0])
            if column is not None and len(path) > 1:
                paths.append((*column, *path[1:]))
        return paths

    def shape(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """What the live query's own pipeline makes of ``event`` (one it judged its own)."""
        renamed: dict[str, Any] = {"_id": event["_id"]}
        for name, path in self.columns:
            value = self._event_timestamp(event) if path is None else _resolve(event, path)
            if value is not _MISSING:
                renamed[name] = value
        if self.outputs is None:
            return renamed
        row: dict[str, Any] = {"_id": event["_id"]}
        for name, path, null_if_missing in self.outputs:
            value = _resolve(renamed, path)
            if value is not _MISSING:
                row[name] = value
            elif null_if_missing:  # $ifNull: [path, null]
                row[name] = None
        return row

    def _event_timestamp(self, event: Mapping[str, Any]) -> Any:
        wall = event.get("wallTime")
        if wall is not None:
            return wall
        cluster = event.get("clusterTime")
        if cluster is None:
            return _MISSING
        when = datetime.fromtimestamp(cluster.time, UTC)  # $toDate of a timestamp: its seconds
        return when if self.tz_aware else when.replace(tzinfo=None)


def compile_pipeline(
    pipeline: list[dict[str, Any]], database_wide: bool, tz_aware: bool = True
) -> ClientPipeline:
    """``pipeline`` as a ``ClientPipeline``; ``Unsupported`` (the reason) if the client cannot
    run it exactly."""
    stages = list(pipeline)
    namespace: list[dict[str, Any]] = []
    if database_wide and stages and set(stages[0]) == {"$match"}:
        if set(stages[0]["$match"]) == {"ns.coll"}:
            namespace.append(stages.pop(0))
    if not stages or set(stages[0]) != {"$replaceWith"}:
        raise Unsupported("the pipeline does not start with the columns' $replaceWith")
    columns = _columns(stages.pop(0)["$replaceWith"])
    filters: list[dict[str, Any]] = []
    outputs = None
    for index, stage in enumerate(stages):
        (name, body), *_ = stage.items()
        if name == "$match" and outputs is None:
            filters.append(_renamed(body, dict(columns)))
        elif name == "$project" and outputs is None and index == len(stages) - 1:
            outputs = _outputs(body, dict(columns))
        else:
            raise Unsupported(f"its {name} stage runs on the server only")
    query = None if not filters else filters[0] if len(filters) == 1 else {"$and": filters}
    if query is not None:
        compile_filter(query)  # Unsupported: the filter is not in the client's subset
    return ClientPipeline(tuple(namespace), columns, query, outputs, tz_aware)


def _columns(body: Any) -> tuple[tuple[str, tuple[str, ...] | None], ...]:
    if not isinstance(body, Mapping) or body.get("_id") != "$_id":
        raise Unsupported("its $replaceWith does not keep the resume token as it is")
    columns: list[tuple[str, tuple[str, ...] | None]] = []
    for name, value in body.items():
        if name == "_id":
            continue
        if value == EVENT_TIMESTAMP:
            columns.append((name, None))
        else:
            columns.append((name, _path(value, name)))
    return tuple(columns)


def _path(value: Any, name: str) -> tuple[str, ...]:
    if not isinstance(value, str) or not value.startswith("$") or value.startswith("$$"):
        raise Unsupported(f"the column {name} is computed on the server")
    parts = tuple(value[1:].split("."))
    if any(not part or part.isdigit() for part in parts):
        raise Unsupported(f"the column {name} is computed on the server")
    return parts


def _renamed(query: Any, columns: dict[str, tuple[str, ...] | None]) -> dict[str, Any]:
    """A ``$match`` body on the columns as the same filter on the event's paths."""
    if not isinstance(query, Mapping):
        raise Unsupported("a filter must be a document")
    out: dict[str, Any] = {}
    for key, value in query.items():
        if key in ("$and", "$or", "$nor") and isinstance(value, list):
            out[key] = [_renamed(branch, columns) for branch in value]
            continue
        if key.startswith("$"):
            raise Unsupported(f"its filter uses {key}, evaluated by the server only")
        head, *rest = key.split(".")
        path = columns.get(head)
        if path is None:
            reason = "is computed" if head in columns else "is not a column"
            raise Unsupported(f"its filter reads {head}, which {reason} on the server")
        out[".".join((*path, *rest))] = value
    return out


def _outputs(
    body: Any, columns: dict[str, tuple[str, ...] | None]
) -> tuple[tuple[str, tuple[str, ...], bool], ...]:
    if not isinstance(body, Mapping):
        raise Unsupported("its $project is not a document")
    outputs = []
    for name, value in body.items():
        if name == "_id":
            if value not in (1, True):
                raise Unsupported("its $project drops the resume token")
            continue
        null_if_missing = False
        if isinstance(value, Mapping) and set(value) == {"$ifNull"}:
            args = value["$ifNull"]
            if not (isinstance(args, list) and len(args) == 2 and args[1] is None):
                raise Unsupported(f"the column {name} is computed on the server")
            value, null_if_missing = args[0], True
        path = _path(value, name)
        if path[0] not in columns:
            raise Unsupported(f"{name} reads {path[0]}, which is not a column")
        outputs.append((name, path, null_if_missing))
    return tuple(outputs)


def _resolve(doc: Any, path: tuple[str, ...]) -> Any:
    for index, part in enumerate(path):
        if isinstance(doc, list):
            return _ARRAY if index else _MISSING
        if not isinstance(doc, Mapping) or part not in doc:
            return _MISSING
        doc = doc[part]
    return doc
