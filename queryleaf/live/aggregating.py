"""The rows of a live aggregate query: the change stream's per-change rows (group keys, the
aggregates' arguments, the event time) aggregated per key and window (windows.py), then the
select list and HAVING over each aggregate row (evaluate.py, compiled by the planner).

Time: an event's time is its ``event_timestamp`` (the change's wall time, else its cluster
time). The watermark is the greatest event time seen; while the stream is quiet it moves on with
the local clock from the moment the last event arrived, so that windows on a quiet collection
still close (the server's cluster time only moves when something is written).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from typing import Any

from queryleaf import plan
from queryleaf.documents import get_path
from queryleaf.live.values import canonical_key
from queryleaf.live.windows import Aggregator, Update
from queryleaf.planner.live_aggregation import TIME_KEY

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def milliseconds(value: Any) -> int | None:
    """An event time (a datetime, or a BSON timestamp) as milliseconds since the epoch."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return (value - _EPOCH) // dt.timedelta(milliseconds=1)
    seconds = getattr(value, "time", None)
    return seconds * 1000 if isinstance(seconds, int) else None


def _datetime(ms: int | None) -> dt.datetime | None:
    return None if ms is None else _EPOCH + dt.timedelta(milliseconds=ms)


class AggregateRow(dict[str, Any]):
    """A result row of a live aggregate, with the aggregate row it shows: ``identity`` is its
    group key and window start (a later row with the same identity replaces it), and
    ``window_start`` / ``window_end`` its window's bounds (None for a running aggregate), also
    when the query does not select them. ``final``: the window has closed."""

    identity: tuple[Any, ...] = ()
    window_start: dt.datetime | None = None
    window_end: dt.datetime | None = None
    final: bool = False


class AggregatingRows:
    """``RowMaker`` for a plan with an aggregation (queryleaf/live/stream.py calls it)."""

    def __init__(self, p: plan.LiveQuery, clock: Any = time.monotonic):
        assert p.aggregation is not None
        self.spec = p.aggregation
        self.aggregator = Aggregator(
            self.spec.window,
            list(self.spec.aggregates),
            "final" if self.spec.final else "changes",
        )
        self.args = [a.arg for a in self.spec.aggregates if a.arg is not None]
        # Where the per-change row holds each of its columns (k0..., a0..., event_time).
        self.field = {c.name: c.key for c in p.columns or ()}
        self.clock = clock
        self._last: tuple[int, float] | None = None  # (event time, clock) of the newest event

    def rows_of(self, event: dict[str, Any]) -> Iterable[dict[str, Any]]:
        t = milliseconds(self._value(event, TIME_KEY))
        if t is None:
            return ()
        if self._last is None or t >= self._last[0]:
            self._last = (t, self.clock())
        key = tuple(self._value(event, k) for k in self.spec.keys)
        values = {a: self._value(event, a) for a in self.args}
        return self._rows(self.aggregator.add(t, key, values))

    def _value(self, event: dict[str, Any], column: str) -> Any:
        return get_path(event, self.field[column])

    def idle(self, resume_token: Any) -> Iterable[dict[str, Any]]:
        if self._last is None:
            return ()
        event_time, seen_at = self._last
        watermark = event_time + int((self.clock() - seen_at) * 1000)
        return self._rows(self.aggregator.advance(watermark))

    def _rows(self, updates: list[Update]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for update in updates:
            if update.retracted:
                continue  # a merged session: the row with its new bounds follows
            source: dict[str, Any] = dict(zip(self.spec.keys, update.key, strict=True))
            source.update((f"g{i}", v) for i, v in enumerate(update.values))
            source["window_start"] = _datetime(update.window_start_ms)
            source["window_end"] = _datetime(update.window_end_ms)
            if self.spec.having is not None and not self.spec.having(source):
                continue
            row = AggregateRow((name, value(source)) for name, value in self.spec.outputs)
            row.identity = (*canonical_key(update.key), update.window_start_ms)
            row.window_start = source["window_start"]
            row.window_end = source["window_end"]
            row.final = update.final
            rows.append(row)
        return rows

    @property
    def late_events(self) -> int:
        return self.aggregator.late_events
