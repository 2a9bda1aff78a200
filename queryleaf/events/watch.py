"""The change stream a subscription runs: which namespace, which pipeline, which options.

Both the catalog (to validate and EXPLAIN) and the worker (to consume) use ``WatchSpec``, so
what EXPLAIN shows is exactly what runs.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from pymongo.change_stream import ChangeStream
from pymongo.database import Database

from queryleaf.events import names

IMAGE_MODES = ("whenAvailable", "required")  # full_document / before_change values needing images
# Events per server reply at least: the worker takes what it needs per step from the driver's
# buffer, so a small ``batch_size`` (the handler's group size) need not mean small replies.
MIN_CURSOR_BATCH = 1000


@dataclass(frozen=True)
class WatchSpec:
    collection: str | None  # None: a database-level watch
    pipeline: list[dict[str, Any]] = field(default_factory=list)
    full_document: str = "default"
    full_document_before_change: str = "off"
    batch_size: int = 100

    # ---------------------------------------------------------------- building
    @classmethod
    def build(cls, options: dict[str, Any], where: dict[str, Any] | None = None) -> WatchSpec:
        """From validated options (``event_filter`` already normalized) and the SQL WHERE."""
        collections = list(dict.fromkeys(options["watch_collections"]))
        pipeline: list[dict[str, Any]] = []
        collection = collections[0] if len(collections) == 1 else None
        if len(collections) > 1:
            pipeline.append({"$match": {"ns.coll": {"$in": collections}}})
        elif not collections:
            own = "^" + re.escape(names.PREFIX)
            pipeline.append({"$match": {"ns.coll": {"$not": {"$regex": own}}}})
        if options.get("event_types"):
            types = list(dict.fromkeys(options["event_types"]))
            pipeline.append({"$match": {"operationType": {"$in": types}}})
        if options.get("event_filter"):
            pipeline.append({"$match": options["event_filter"]})
        if where:
            pipeline.append({"$match": where})
        return cls(
            collection,
            pipeline,
            options["full_document"],
            options["full_document_before_change"],
            options["batch_size"],
        )

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> WatchSpec:
        return cls(**doc)

    def to_document(self) -> dict[str, Any]:
        return asdict(self)

    # ---------------------------------------------------------------- describing
    @property
    def needs_images(self) -> bool:
        """Whether the watched collections must record pre- and post-images."""
        return self.full_document in IMAGE_MODES or self.full_document_before_change in IMAGE_MODES

    @property
    def cursor_batch_size(self) -> int:
        return max(self.batch_size, MIN_CURSOR_BATCH)

    def change_stream_stage(self, start: dict[str, Any] | None = None) -> dict[str, Any]:
        stage: dict[str, Any] = {}
        if self.full_document != "default":
            stage["fullDocument"] = self.full_document
        if self.full_document_before_change != "off":
            stage["fullDocumentBeforeChange"] = self.full_document_before_change
        stage.update(start or {})
        return {"$changeStream": stage}

    def command(self, start: dict[str, Any] | None = None) -> dict[str, Any]:
        """The ``aggregate`` command that opens this stream (as EXPLAIN shows it)."""
        return {
            "aggregate": self.collection if self.collection is not None else 1,
            "pipeline": [self.change_stream_stage(start), *self.pipeline],
            "cursor": {"batchSize": self.cursor_batch_size},
        }

    # ---------------------------------------------------------------- running
    def open(
        self,
        db: Database,
        *,
        start_at_operation_time: Any = None,
        start_after: dict[str, Any] | None = None,
        max_await_time_ms: int | None = None,
        first_batch: int | None = None,
    ) -> ChangeStream:
        """Open the stream (the server parses and checks the pipeline right here).

        ``first_batch``: the size of the opening reply only (a shared-stream probe, see
        queryleaf/changestream/shared.py); the later replies are ``cursor_batch_size``."""
        target = db[self.collection] if self.collection is not None else db
        stream = target.watch(
            self.pipeline,
            full_document=None if self.full_document == "default" else self.full_document,
            full_document_before_change=(
                None
                if self.full_document_before_change == "off"
                else self.full_document_before_change
            ),
            start_at_operation_time=start_at_operation_time,
            start_after=start_after,
            batch_size=first_batch or self.cursor_batch_size,
            max_await_time_ms=max_await_time_ms,
        )
        if first_batch:
            _set_batch_size(stream, self.cursor_batch_size)
        return stream


def _set_batch_size(stream: ChangeStream, size: int) -> None:
    """The size of the stream's next replies (its getMores, and the aggregate of a resume)."""
    stream._batch_size = size
    cursor = getattr(stream, "_cursor", None)
    if cursor is not None:
        cursor.batch_size(size)
