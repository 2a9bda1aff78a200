"""Running a live query (``plan.LiveQuery``): its change stream, as rows.

One loop reads the stream (``LiveRows.__next__``); every change enters through one hook,
``RowMaker.rows_of`` (and quiet polls through ``RowMaker.idle``, with the stream's resume token),
so that other consumers of events — a shared stream, a window engine — plug in there. The stream
opens when ``LiveRows`` is made (changes from that moment on are seen) and closes when the rows
end (LIMIT, the time limit), when the loop over them stops early (``break``: the iterator is
closed or dropped) or on ``close()`` / leaving a ``with`` block.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

import pymongo.errors
from pymongo.change_stream import ChangeStream
from pymongo.database import Database

from queryleaf import plan
from queryleaf.changestream.clients import Source
from queryleaf.changestream.shared import Start
from queryleaf.documents import get_path
from queryleaf.errors import ErrorCode, ExecutionError
from queryleaf.events import failures
from queryleaf.executor import server_error
from queryleaf.live import sharing
from queryleaf.live.sharing import LiveConsumer

# How long one poll of the server waits for a change (a quiet stream's resume token comes at
# this pace, and a time limit is checked between polls).
POLL_MS = 500


class Rows(Protocol):
    """Where each change enters: the rows it makes (``rows_of``), and those a quiet poll makes
    (``idle``: windows that time closes)."""

    def rows_of(self, event: dict[str, Any]) -> Iterable[dict[str, Any]]: ...

    def idle(self, resume_token: Any) -> Iterable[dict[str, Any]]: ...


class RowMaker:
    """Change events (after the server's pipeline) → result rows, by the plan's columns."""

    def __init__(self, p: plan.LiveQuery):
        self.columns = p.columns

    def rows_of(self, event: dict[str, Any]) -> Iterable[dict[str, Any]]:
        if self.columns is None:
            return ({k: v for k, v in event.items() if k != "_id"},)
        return ({c.name: get_path(event, c.key) for c in self.columns},)

    def idle(self, resume_token: Any) -> Iterable[dict[str, Any]]:
        """A poll without changes; ``resume_token``: the stream's position (its time)."""
        return ()


def row_maker(p: plan.LiveQuery) -> Rows:
    """Plain rows, or rows aggregated in the client (GROUP BY / aggregates / WINDOW)."""
    if p.aggregation is None:
        return RowMaker(p)
    from queryleaf.live.aggregating import AggregatingRows

    return AggregatingRows(p)


def open_stream(
    db: Database,
    p: plan.LiveQuery,
    max_await_ms: int = POLL_MS,
    start: Start | None = None,
    first_batch: int | None = None,
) -> ChangeStream:
    """Open the plan's change stream (the server checks the pipeline right here), at its own
    start or at ``start`` (a shared stream's consumer reading alone, see live/sharing.py);
    ``first_batch``: the size of the first reply."""
    target: Any = db if p.database_wide else db[p.collections[0]]
    if start is None:
        if p.start.get("startAtOperationTime") is not None:
            _check_in_history(db, p)
        start_at, start_after = p.start.get("startAtOperationTime"), p.start.get("startAfter")
    else:
        start_at = None if start.token is not None or start.now else start.time
        start_after = None if start.token is None else dict(start.token)
    try:
        return target.watch(
            p.pipeline,
            full_document=p.full_document,
            full_document_before_change=p.full_document_before_change,
            start_at_operation_time=start_at,
            start_after=start_after,
            max_await_time_ms=max_await_ms,
            batch_size=first_batch,
        )
    except pymongo.errors.PyMongoError as exc:
        raise _stream_error(exc, p) from exc


class LiveRows(Iterator[dict[str, Any]]):
    """The rows of a live query as they arrive: an iterator and a context manager."""

    def __init__(
        self,
        db: Database,
        p: plan.LiveQuery,
        limit: int | None = None,
        timeout: float | None = None,
        maker: Rows | None = None,
        source: Source | None = None,
    ):
        self.plan = p
        limits = [n for n in (p.limit, limit) if n is not None]
        self.limit = min(limits) if limits else None
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.maker = maker or row_maker(p)
        self.stream: ChangeStream | LiveConsumer | None = None
        self.rows_seen = 0
        wait = POLL_MS if timeout is None else max(1, min(POLL_MS, int(timeout * 1000)))
        self._pending: deque[dict[str, Any]] = deque()
        if sharing.shares(p, source):
            assert source is not None
            self.stream = _attach(db, source, p, wait)
        else:
            self.stream = open_stream(db, p, wait)

    @property
    def shared(self) -> bool:
        """Whether it reads the process's shared stream of its namespace (EXPLAIN says why
        not: ``plan.own_stream_reason``)."""
        return isinstance(self.stream, LiveConsumer)

    def __next__(self) -> dict[str, Any]:
        """The next row: the loop where every change enters (``maker``). No generator holds
        ``self``, so dropping the rows (a ``break`` out of ``for row in ql.stream(...)``)
        closes the stream at once."""
        while not self._pending:
            stream = self.stream
            if stream is None:
                raise StopIteration
            if self._done():
                self.close()
                raise StopIteration
            try:
                event = stream.try_next()
            except pymongo.errors.PyMongoError as exc:
                self.close()
                raise _stream_error(exc, self.plan) from exc
            if event is None:
                self._pending.extend(self.maker.idle(stream.resume_token))
                if not self._pending and not stream.alive:  # after an invalidate: no more
                    self.close()
                    raise StopIteration
            else:
                self._pending.extend(self.maker.rows_of(event))
        self.rows_seen += 1
        row = self._pending.popleft()
        if self._done():
            self.close()
        return row

    def _done(self) -> bool:
        if self.limit is not None and self.rows_seen >= self.limit:
            return True
        return self.deadline is not None and time.monotonic() >= self.deadline

    def close(self) -> None:
        """Close the change stream (idempotent)."""
        stream, self.stream = self.stream, None
        if stream is not None:
            try:
                stream.close()
            except pymongo.errors.PyMongoError:
                pass  # the server is gone: so is the cursor

    @property
    def late_events(self) -> int:
        """Changes dropped because their window had closed (a windowed aggregate; else 0)."""
        return int(getattr(self.maker, "late_events", 0))

    @property
    def closed(self) -> bool:
        return self.stream is None

    def __enter__(self) -> LiveRows:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


def _attach(db: Database, source: Source, p: plan.LiveQuery, wait_ms: int) -> LiveConsumer:
    """The live query as a consumer of the shared stream of its namespace."""
    if p.start.get("startAtOperationTime") is not None:
        _check_in_history(db, p)
    try:
        return sharing.attach(
            source,
            p,
            sharing.start_of(p, db),
            lambda at, first_batch: open_stream(db, p, wait_ms, at, first_batch),
            wait_ms / 1000,
            wait_ms,
        )
    except pymongo.errors.PyMongoError as exc:
        raise _stream_error(exc, p) from exc


def _check_in_history(db: Database, p: plan.LiveQuery) -> None:
    """Some servers silently start at their oldest oplog entry when the start is older."""
    start = p.start["startAtOperationTime"]
    oldest = failures.oldest_oplog_time(db)
    if oldest is not None and oldest > start:
        raise _history_lost(
            p,
            f"SINCE TIMESTAMP: the start (cluster time {start.time}.{start.inc}) is older than "
            f"the oldest oplog entry ({oldest.time}.{oldest.inc})",
        )


def _stream_error(exc: pymongo.errors.PyMongoError, p: plan.LiveQuery) -> ExecutionError:
    if failures.is_history_lost(exc) or _token_gone(exc):
        return _history_lost(p, failures.server_message(exc))
    return server_error(exc)


def _token_gone(exc: pymongo.errors.PyMongoError) -> bool:
    """startAfter a token whose change left the oplog (servers word it differently)."""
    message = str((getattr(exc, "details", None) or {}).get("errmsg", "")).lower()
    return "resume" in message and "not found" in message


def _history_lost(p: plan.LiveQuery, detail: str) -> ExecutionError:
    return ExecutionError(
        f"{detail}: the changes since then are no longer in the oplog; start later (a later "
        "SINCE TIMESTAMP, or no SINCE to start now), or keep more history (a larger oplog: "
        "replSetResizeOplog)",
        position=p.start_pos,
        error_code=ErrorCode.HISTORY_LOST,
    )
