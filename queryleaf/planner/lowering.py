"""The last step of planning a SELECT: a pipeline that only filters, sorts, pages and picks
stored fields runs as a ``find`` command instead (simpler to read in EXPLAIN, and the form
every MongoDB tool and index advisor knows). The stage emitter never decides this; it always
produces a pipeline, and this step recognises the shape:

    [$match] [$sort] [$skip] [$limit] [$project of plain stored paths | {_id: 0}]
"""

from __future__ import annotations

import dataclasses
from typing import Any

from queryleaf import plan
from queryleaf.planner.expressions import is_field_path

_PAGING = ("$skip", "$limit")


def as_aggregate(p: plan.Aggregate | plan.Find) -> plan.Aggregate:
    """The inverse: a plan as a pipeline over its collection (a find's output keys made flat),
    for a query read by another one (subquery, derived table, view, INSERT ... SELECT)."""
    if isinstance(p, plan.Aggregate):
        return p
    pipeline: list[dict[str, Any]] = []
    if p.filter:
        pipeline.append({"$match": p.filter})
    if p.sort:
        pipeline.append({"$sort": dict(p.sort)})
    if p.skip:
        pipeline.append({"$skip": p.skip})
    if p.limit:
        pipeline.append({"$limit": p.limit})
    columns = None
    if p.columns is not None:
        pipeline.append(
            {
                "$project": {
                    "_id": 0,
                    **{f"_{i}": {"$ifNull": ["$" + c.key, None]} for i, c in enumerate(p.columns)},
                }
            }
        )
        columns = tuple(dataclasses.replace(c, key=f"_{i}") for i, c in enumerate(p.columns))
    elif p.projection is not None:
        pipeline.append({"$project": p.projection})
    return plan.Aggregate(p.collection, pipeline, columns)


def lower_to_find(p: plan.Aggregate) -> plan.Aggregate | plan.Find:
    if p.collection is None:
        return p
    stages = list(p.pipeline)
    filter_: dict[str, Any] = {}
    sort: dict[str, int] = {}
    paging: dict[str, int] = {}
    if stages and list(stages[0]) == ["$match"]:
        filter_ = stages.pop(0)["$match"]
    if stages and list(stages[0]) == ["$sort"]:
        sort = stages.pop(0)["$sort"]
    while stages and list(stages[0])[0] in _PAGING and len(stages[0]) == 1:
        name, value = next(iter(stages.pop(0).items()))
        if name in paging or (name == "$skip" and "$limit" in paging):
            return p
        paging[name] = value
    if paging.get("$limit") == 0:
        return p
    projection: dict[str, Any] | None = None
    columns = p.columns
    if stages:
        project = stages.pop(0)
        if list(project) != ["$project"] or stages:
            return p
        lowered = _projection(project["$project"], p.columns)
        if lowered is None:
            return p
        projection, columns = lowered
    elif p.columns is not None:
        return p
    return plan.Find(
        p.collection,
        filter_,
        projection,
        list(sort.items()),
        paging.get("$skip", 0),
        paging.get("$limit", 0),
        columns,
    )


def _projection(
    spec: dict[str, Any],
    columns: tuple[plan.OutputColumn, ...] | None,
) -> tuple[dict[str, Any], tuple[plan.OutputColumn, ...] | None] | None:
    """The find projection and columns for a ``$project`` that reads plain stored paths."""
    if columns is None:  # SELECT * hiding _id (a system table)
        return (spec, None) if spec == {"_id": 0} else None
    if spec.get("_id") != 0 or len(spec) != len(columns) + 1:
        return None
    paths: dict[str, str] = {}
    for key, value in spec.items():
        if key == "_id":
            continue
        path = _plain_path(value)
        if path is None:
            return None
        paths[key] = path
    found = list(paths.values())
    if any(q != a and q.startswith(a + ".") for a in found for q in found):
        return None  # a path and its parent cannot both be projected
    projection: dict[str, Any] = {"_id": 0, **{path: 1 for path in found}}
    if "_id" in found:
        projection["_id"] = 1
    return projection, tuple(dataclasses.replace(c, key=paths[c.key]) for c in columns)


def _plain_path(value: Any) -> str | None:
    """``path`` for ``{$ifNull: ['$path', null]}`` (a stored field read as is), else None."""
    if not (isinstance(value, dict) and list(value) == ["$ifNull"]):
        return None
    inner, fallback = value["$ifNull"]
    if fallback is not None or not is_field_path(inner):
        return None
    path = inner[1:]
    if any(part.isdigit() or not part for part in path.split(".")):
        return None
    return path
