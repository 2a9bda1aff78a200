"""The field paths seen in a sample of a collection's documents, cached per collection.

MongoDB keeps no schema, so "does this collection have a field ``nmae``?" can only be answered
from the data. A sample is one ``$sample`` of up to ``SAMPLE_SIZE`` documents: on MongoDB that is
a random cursor on a large collection, and the whole collection (in random order) when the
sample is more than 5% of it, so a small collection is read entirely. The paths of a sample are
every field name at every depth (``customer``, ``customer.name``; the elements of arrays count
under the array's path: ``items.price``).

A sample is taken at most once per ``MAX_AGE_S`` per collection, and only when a statement reads
a column of that collection. After a write through this connection (or when it is a few seconds
old) a sample may miss a new field: ``sample(..., recheck=True)`` takes it again then, so a field
just written is never reported unknown.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pymongo.errors
from bson import Binary, Code, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from pymongo.database import Database

from queryleaf import plan

SAMPLE_SIZE = 1000
MAX_AGE_S = 60.0  # a sample older than this is taken again before it is used
RECHECK_AGE_S = 5.0  # a miss in a sample older than this is checked against a new one
MAX_PATHS = 10_000  # more distinct paths than this: the collection is not checked (see below)

FieldPath = tuple[str, ...]


@dataclass(frozen=True)
class Sample:
    documents: int  # how many documents the sample holds (0: an empty collection)
    paths: frozenset[FieldPath]
    # False when the documents hold more distinct paths than MAX_PATHS (keys that are data, such
    # as a map keyed by user id): a miss then says nothing, and nothing is reported.
    complete: bool
    taken_at: float
    generation: int  # FieldSampler's count of writes when it was taken
    is_view: bool = False
    # The top-level fields, ``_id`` first, then in the order they first appear in the sample:
    # the columns an empty ``SELECT *`` shows.
    fields: tuple[str, ...] = ()


class FieldSampler:
    """Samples of the collections of one database, for one client."""

    def __init__(self, db: Database):
        self.db = db
        self._samples: dict[str, Sample] = {}
        self._writes = 0  # statements that wrote through this connection
        self._last_write: dict[str, int] = {}  # collection → the number of its last write

    def sample(self, collection: str, recheck: bool = False) -> Sample | None:
        """The sample of ``collection`` (None when it cannot be read: nothing is checked then).

        ``recheck``: the caller found a miss; take a new sample if this one may be stale.
        """
        cached = self._samples.get(collection)
        now = time.monotonic()
        if cached is not None:
            age = now - cached.taken_at
            if age <= MAX_AGE_S and not (
                recheck and (age > RECHECK_AGE_S or self._written_since(cached, collection))
            ):
                return cached
        fresh = self._take(collection)
        if fresh is None:
            self._samples.pop(collection, None)
        else:
            self._samples[collection] = fresh
        return fresh

    def _written_since(self, sample: Sample, collection: str) -> bool:
        if sample.is_view:  # a view reads other collections: any write may change its rows
            return self._writes > sample.generation
        return self._last_write.get(collection, 0) > sample.generation

    def _take(self, collection: str) -> Sample | None:
        started, generation = time.monotonic(), self._writes
        try:
            info = next(iter(self.db.list_collections(filter={"name": collection})), None)
            cursor = self.db[collection].aggregate(
                [{"$sample": {"size": SAMPLE_SIZE}}], batchSize=SAMPLE_SIZE
            )
            paths: set[FieldPath] = set()
            fields: dict[str, None] = {}
            documents = 0
            complete = True
            for doc in cursor:
                documents += 1
                fields.update(dict.fromkeys(doc))
                if complete:
                    complete = add_paths(doc, paths)
        except pymongo.errors.PyMongoError:
            # The statement itself will meet (and report) the same problem, if it is one; a
            # sample is only ever a hint.
            return None
        is_view = info is not None and info.get("type") == "view"
        top = tuple(sorted(fields, key=lambda name: name != "_id"))  # stable: _id first
        return Sample(documents, frozenset(paths), complete, started, generation, is_view, top)

    def written(self, p: plan.Plan) -> None:
        """Note what a statement that ran through this connection may have changed."""
        if isinstance(p, plan.Insert | plan.InsertSelect | plan.Update | plan.Delete):
            self._writes += 1
            self._last_write[p.collection] = self._writes
        elif isinstance(p, plan.CreateView | plan.DropView | plan.CreateTable | plan.DropTable):
            self._samples.pop(p.name, None)


def add_paths(doc: dict[str, Any], paths: set[FieldPath]) -> bool:
    """Add every field path of ``doc`` to ``paths``; False once they exceed MAX_PATHS."""
    stack: list[tuple[FieldPath, Any]] = [((), doc)]
    while stack:
        prefix, value = stack.pop()
        if isinstance(value, dict):
            for key, inner in value.items():
                path = (*prefix, str(key))
                paths.add(path)
                stack.append((path, inner))
        elif isinstance(value, list):
            stack.extend((prefix, item) for item in value)
        if len(paths) > MAX_PATHS:
            return False
    return True


def bson_type(value: Any) -> str:
    """The BSON type name of a decoded value, as ``$type`` names it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, Int64):
        return "long"
    if isinstance(value, int):
        return "int" if -(2**31) <= value < 2**31 else "long"
    checks: tuple[tuple[Any, str], ...] = (
        (float, "double"),
        (str, "string"),
        (dict, "object"),
        (list, "array"),
        (ObjectId, "objectId"),
        (dt.datetime, "date"),
        (Decimal128, "decimal"),
        (Timestamp, "timestamp"),
        (bytes | Binary | uuid.UUID, "binData"),
        (Regex | re.Pattern, "regex"),
        (Code, "javascript"),
        (MinKey, "minKey"),
        (MaxKey, "maxKey"),
    )
    for kind, name in checks:
        if isinstance(value, kind):
            return name
    return type(value).__name__


@dataclass(frozen=True)
class FieldProfile:
    path: str  # dotted: customer.name; an array's elements are under the array's path
    types: tuple[str, ...]  # BSON type names, most frequent first
    documents: int  # how many sampled documents hold the path


@dataclass(frozen=True)
class CollectionProfile:
    documents: int  # documents sampled
    fields: tuple[FieldProfile, ...]  # in the order paths first appear, children after parents


def profile_fields(collection: Any, size: int = SAMPLE_SIZE) -> CollectionProfile:
    """The field paths of a sample of ``collection`` (a pymongo Collection), with their types
    and how many sampled documents hold each (the sample DESCRIBE reports)."""
    types: dict[str, Counter[str]] = {}
    holders: dict[str, int] = {}
    documents = 0
    for doc in collection.aggregate([{"$sample": {"size": size}}], batchSize=size):
        documents += 1
        seen: set[str] = set()
        _profile(doc, "", types, seen)
        for path in seen:
            holders[path] = holders.get(path, 0) + 1
        if len(types) > MAX_PATHS:
            break
    first = {path: i for i, path in enumerate(types)}

    def tree_order(path: str) -> tuple[int, ...]:  # a nested path right after its parent
        parts = path.split(".")
        return tuple(first.get(".".join(parts[:k]), first[path]) for k in range(1, len(parts) + 1))

    fields = tuple(
        FieldProfile(path, tuple(t for t, _ in types[path].most_common()), holders[path])
        for path in sorted(types, key=tree_order)
    )
    return CollectionProfile(documents, fields)


def _profile(value: Any, prefix: str, types: dict[str, Counter[str]], seen: set[str]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            types.setdefault(path, Counter())[bson_type(inner)] += 1
            seen.add(path)
            _profile(inner, path, types, seen)
    elif isinstance(value, list):
        for item in value:
            _profile(item, prefix, types, seen)
