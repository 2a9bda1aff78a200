"""One writer for all the runners of a worker.

Every write to the database is examined by every open change stream, so with many
subscriptions on one worker the cost of a write grows with their number. The runners' committers
therefore do not write themselves: they hand their event-log entries and their checkpoints to
this thread, which sends what arrived meanwhile as one insert and one update (plus one read to
tell each checkpoint whether it applied) instead of one of each per subscription. A committer
waits for its own part, so the order of its writes (log rows before the checkpoint) is kept.

When a combined insert fails, each part is written again on its own (entries are idempotent by
``_id``), so that one subscription's problem (say, a document too large) reaches only its
committer; a failed combined update fails every checkpoint in it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pymongo import UpdateOne
from pymongo.collection import Collection

FENCE = ("position_version", "worker_id")  # the checkpoint filter's fields besides _id
POSITION = "resume_token"  # a checkpoint's filter also holds the position it moves from


@dataclass
class _Job:
    kind: str  # 'insert' | 'update'
    payload: Any
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class WriteCombiner(threading.Thread):
    def __init__(
        self, definitions: Collection, insert_alone: Callable[[list[dict[str, Any]]], None]
    ):
        super().__init__(name="queryleaf-writer", daemon=True)
        self.definitions = definitions
        self.insert_alone = insert_alone  # writes one committer's entries (idempotent)
        self.jobs: list[_Job] = []
        self.cond = threading.Condition()
        self.closed = False

    # ---------------------------------------------------------------- committer side
    def insert(self, entries: list[dict[str, Any]]) -> None:
        """Insert (or replace) event-log entries; returns once they are written."""
        self._submit(_Job("insert", entries))

    def update_definition(
        self, query: dict[str, Any], update: dict[str, Any], projection: dict[str, Any]
    ) -> dict[str, Any] | None:
        """``find_one_and_update`` on a subscription's definition: the document (``projection``
        of it) when ``query`` matched and the update applied, else None."""
        return self._submit(_Job("update", (query, update, projection)))

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def _submit(self, job: _Job) -> Any:
        if not self.is_alive():  # not started, or stopped: write directly
            self._run([job])
        else:
            with self.cond:
                self.jobs.append(job)
                self.cond.notify_all()
            job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result

    # ---------------------------------------------------------------- writer thread
    def run(self) -> None:
        while True:
            with self.cond:
                while not self.jobs and not self.closed:
                    self.cond.wait()
                jobs, self.jobs = self.jobs, []
                if not jobs and self.closed:
                    return
            self._run(jobs)

    def _run(self, jobs: list[_Job]) -> None:
        inserts = [job for job in jobs if job.kind == "insert"]
        updates = [job for job in jobs if job.kind == "update"]
        if inserts:
            self._combined(inserts, self._insert_all, self._insert_one, retry_alone=True)
        if updates:
            # Not retried alone: a failed combined update may have applied (the connection
            # dropped after it), and its counter increments must not apply twice. Each
            # committer then reopens from its stored position, as after any failed checkpoint.
            self._combined(updates, self._update_all, self._update_one, retry_alone=False)
        for job in jobs:
            job.done.set()

    @staticmethod
    def _combined(
        jobs: list[_Job],
        together: Callable[[list[_Job]], None],
        alone: Callable[[_Job], Any],
        retry_alone: bool,
    ) -> None:
        if len(jobs) > 1:
            try:
                together(jobs)
                return
            except Exception as exc:  # noqa: BLE001 - see retry_alone
                if not retry_alone:
                    for job in jobs:
                        job.error = exc
                    return
        for job in jobs:
            try:
                job.result = alone(job)
            except BaseException as exc:  # noqa: BLE001 - handed to that committer
                job.error = exc

    def _insert_all(self, jobs: list[_Job]) -> None:
        self.insert_alone([entry for job in jobs for entry in job.payload])

    def _insert_one(self, job: _Job) -> None:
        self.insert_alone(job.payload)

    def _update_one(self, job: _Job) -> dict[str, Any] | None:
        query, update, projection = job.payload
        doc = self.definitions.find_one_and_update(query, update, projection=projection)
        if doc is not None:
            return doc
        # Not matched: perhaps because an earlier attempt of this very write applied (a
        # driver's retry after a lost reply, which a restarted server does not recognise).
        doc = self.definitions.find_one({"_id": query["_id"]}, _read_back(job))
        return doc if doc is not None and _applied(query, update, doc) else None

    def _update_all(self, jobs: list[_Job]) -> None:
        self.definitions.bulk_write(
            [UpdateOne(job.payload[0], job.payload[1]) for job in jobs], ordered=False
        )
        fields = {name: 1 for job in jobs for name in _read_back(job)}
        ids = [job.payload[0]["_id"] for job in jobs]
        found = {doc["_id"]: doc for doc in self.definitions.find({"_id": {"$in": ids}}, fields)}
        for job in jobs:
            query, update, _ = job.payload
            doc = found.get(query["_id"])
            job.result = doc if doc is not None and _applied(query, update, doc) else None


def _read_back(job: _Job) -> dict[str, Any]:
    """The fields to read to tell whether a definition update applied."""
    return {name: 1 for name in job.payload[2]} | dict.fromkeys((*FENCE, POSITION), 1)


def _applied(query: dict[str, Any], update: dict[str, Any], doc: dict[str, Any]) -> bool:
    """Whether ``update`` (filtered by ``query``) is in ``doc``, read after it was sent.

    The fence (RESET's position_version, the lease holder) matched if it still matches: it never
    returns to a value once changed. A write that moves the position is conditional on the
    position before it, so it applied if the stored position is the one it sets.
    """
    if not all(doc.get(k) == query[k] for k in FENCE if k in query):
        return False
    moved_to = update.get("$set", {}).get(POSITION)
    return moved_to is None or doc.get(POSITION) == moved_to
