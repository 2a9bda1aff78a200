"""Windowed and running aggregation of a live query, in the client (a change stream has no
``$group``): events in, rows of aggregate results out. No I/O; docs/streaming.md#windows holds
the semantics and the reasons for them.

Time is event time in milliseconds (the runner passes each change's cluster time). The
watermark is the greatest event time seen or announced by ``advance`` (the stream's resume-token
time on idle batches), never decreasing. A tumbling or hopping window [start, end) closes when
the watermark reaches end + grace; a session closes when the watermark passes its last event +
gap + grace. Closed windows are evicted; an event for one is late: dropped and counted.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass
from itertools import count
from typing import Any, Literal

from queryleaf.live.accumulators import Accumulator, accumulator_factory
from queryleaf.live.values import canonical_key

WindowKind = Literal["tumbling", "hopping", "session"]
EmitMode = Literal["changes", "final"]


@dataclass(frozen=True, slots=True)
class LiveWindow:
    """A WINDOW clause. Invalid sizes are a ValueError at construction (the planner turns it
    into a PlanningError at the clause)."""

    kind: WindowKind
    size_ms: int = 0  # tumbling, hopping
    advance_ms: int = 0  # hopping
    gap_ms: int = 0  # session
    grace_ms: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("tumbling", "hopping", "session"):
            raise ValueError(f"unknown window kind {self.kind!r}")
        if self.kind == "session":
            if self.gap_ms <= 0:
                raise ValueError("the inactivity gap of a SESSION window must be positive")
        elif self.size_ms <= 0:
            raise ValueError(f"the SIZE of a {self.kind.upper()} window must be positive")
        if self.kind == "hopping":
            if self.advance_ms <= 0:
                raise ValueError("ADVANCE BY of a HOPPING window must be positive")
            if self.advance_ms > self.size_ms:
                raise ValueError(
                    "ADVANCE BY of a HOPPING window must not exceed its SIZE "
                    "(events between two windows would belong to none)"
                )
        if self.grace_ms < 0:
            raise ValueError("GRACE PERIOD must not be negative")


@dataclass(frozen=True, slots=True)
class AggregateSpec:
    name: str  # COUNT, SUM, AVG, MIN, MAX
    arg: str | None  # key of the argument's value in an event's values; None for COUNT(*)
    distinct: bool = False


@dataclass(frozen=True, slots=True)
class Update:
    """One output row's aggregate state. A row is identified by (key, window_start)."""

    key: tuple[Any, ...]  # the GROUP BY values (as first seen)
    window_start_ms: int | None  # None for a running aggregate
    window_end_ms: int | None  # exclusive for tumbling and hopping; a session's last event
    values: tuple[Any, ...]  # one per AggregateSpec
    final: bool = False  # the window has closed: these values will not change
    retracted: bool = False  # EMIT CHANGES: the row no longer exists (its session was merged)


class _Group:
    """The accumulators of one key in one window."""

    __slots__ = ("key", "accumulators")

    def __init__(self, key: tuple[Any, ...], accumulators: list[Accumulator]):
        self.key = key
        self.accumulators = accumulators

    def results(self) -> tuple[Any, ...]:
        return tuple(a.result() for a in self.accumulators)


class _Session(_Group):
    __slots__ = ("canonical", "first", "last", "closes_at", "open")

    def __init__(
        self, key: tuple[Any, ...], canonical: Any, accumulators: list[Accumulator], t: int
    ):
        super().__init__(key, accumulators)
        self.canonical = canonical
        self.first = self.last = t
        self.closes_at = 0  # the watermark at which it closes
        self.open = True


class Aggregator:
    """The aggregation state of one live query: ``add`` an event, ``advance`` the watermark,
    ``flush`` at the end of the stream. Each returns the rows to emit."""

    def __init__(
        self, window: LiveWindow | None, aggregates: list[AggregateSpec], emit: EmitMode
    ) -> None:
        if emit not in ("changes", "final"):
            raise ValueError(f"unknown emit mode {emit!r}")
        if window is None and emit == "final":
            raise ValueError(
                "EMIT FINAL needs a WINDOW: a running aggregate never closes, "
                "so it would emit nothing; use EMIT CHANGES"
            )
        if not aggregates:
            raise ValueError("a live aggregate needs at least one aggregate")
        self.window = window
        self.emit = emit
        self._makers: list[Callable[[], Accumulator]] = [
            accumulator_factory(a.name, a.arg is None, a.distinct) for a in aggregates
        ]
        self._args = [a.arg for a in aggregates]
        self._final = emit == "final"
        self.watermark_ms: int | None = None
        self.late_events = 0
        # running aggregate: canonical key -> group
        self._running: dict[Any, _Group] = {}
        # tumbling, hopping: window start -> canonical key -> group; the starts as a min-heap
        self._windows: dict[int, dict[Any, _Group]] = {}
        self._starts: list[int] = []
        # session: canonical key -> its open sessions; a min-heap of (closes_at, n, session)
        self._sessions: dict[Any, list[_Session]] = {}
        self._closing: list[tuple[int, int, _Session]] = []
        self._order = count()
        if window is not None:
            self._size = window.size_ms
            self._advance = window.advance_ms if window.kind == "hopping" else window.size_ms
            self._gap = window.gap_ms
            self._grace = window.grace_ms

    # ------------------------------------------------------------ statistics

    @property
    def open_windows(self) -> int:
        """Windows not yet closed (for sessions: open sessions, over every key)."""
        if self.window is None:
            return 0
        if self.window.kind == "session":
            return sum(len(s) for s in self._sessions.values())
        return len(self._windows)

    @property
    def open_rows(self) -> int:
        """Aggregate states held: one per key per open window (per key for a running one)."""
        if self.window is None:
            return len(self._running)
        if self.window.kind == "session":
            return self.open_windows
        return sum(len(groups) for groups in self._windows.values())

    # ------------------------------------------------------------ the three entry points

    def add(self, event_time_ms: int, key: tuple[Any, ...], values: dict[str, Any]) -> list[Update]:
        """Aggregate one event. EMIT CHANGES: the rows it changed. EMIT FINAL: the rows of the
        windows that its time closed."""
        if self.window is None:
            return self._add_running(key, values)
        out = self._see(event_time_ms)
        if self.window.kind == "session":
            changed = self._add_session(event_time_ms, key, values)
        else:
            changed = self._add_fixed(event_time_ms, key, values)
        return out if self._final else changed

    def advance(self, watermark_ms: int) -> list[Update]:
        """Time passed without events (an idle batch's resume-token time): close the windows
        it ends. EMIT FINAL: their rows; EMIT CHANGES: nothing (they were emitted as changed)."""
        if self.window is None:
            return []
        return self._see(watermark_ms)

    def flush(self) -> list[Update]:
        """The end of the stream: drop every window. EMIT CHANGES owes nothing (each row was
        emitted as it changed). EMIT FINAL returns the rows of the windows still open with
        ``final`` False: they are incomplete, and the caller decides whether to show them."""
        out: list[Update] = []
        if self._final:
            for start in sorted(self._windows):
                end = start + self._size
                out += (
                    Update(g.key, start, end, g.results()) for g in self._windows[start].values()
                )
            sessions = [s for open_ in self._sessions.values() for s in open_]
            sessions.sort(key=lambda s: (s.first, s.last))
            out += (Update(s.key, s.first, s.last, s.results()) for s in sessions)
        self._windows.clear()
        self._starts.clear()
        self._sessions.clear()
        self._closing.clear()
        self._running.clear()
        return out

    # ------------------------------------------------------------ time

    def _see(self, t: int) -> list[Update]:
        """Move the watermark to ``t`` if later and close what it ends (their final rows when
        emitting FINAL; otherwise they are only evicted)."""
        if self.watermark_ms is not None and t <= self.watermark_ms:
            return []
        self.watermark_ms = t
        assert self.window is not None
        if self.window.kind == "session":
            return self._close_sessions(t)
        return self._close_fixed(t)

    def _close_fixed(self, watermark: int) -> list[Update]:
        out: list[Update] = []
        starts, last_open = self._starts, watermark - self._size - self._grace
        while starts and starts[0] <= last_open:  # start + size + grace <= watermark
            start = heapq.heappop(starts)
            groups = self._windows.pop(start)
            if self._final:
                end = start + self._size
                out += (Update(g.key, start, end, g.results(), True) for g in groups.values())
        return out

    def _close_sessions(self, watermark: int) -> list[Update]:
        out: list[Update] = []
        closing = self._closing
        while closing and closing[0][0] <= watermark:
            closes_at, _, session = heapq.heappop(closing)
            if not session.open:
                continue  # merged into another session
            if session.closes_at != closes_at:  # extended since: wait for its new time
                heapq.heappush(closing, (session.closes_at, next(self._order), session))
                continue
            session.open = False
            open_ = self._sessions[session.canonical]
            open_.remove(session)
            if not open_:
                del self._sessions[session.canonical]
            if self._final:
                out.append(
                    Update(session.key, session.first, session.last, session.results(), True)
                )
        return out

    # ------------------------------------------------------------ events

    def _fold(self, accumulators: list[Accumulator], arguments: list[Any]) -> None:
        for acc, x in zip(accumulators, arguments, strict=True):
            acc.add(x)

    def _arguments(self, values: dict[str, Any]) -> list[Any]:
        """The aggregates' argument values (None for COUNT(*), and for a missing field)."""
        return [None if arg is None else values.get(arg) for arg in self._args]

    def _fresh(self) -> list[Accumulator]:
        return [make() for make in self._makers]

    def _add_running(self, key: tuple[Any, ...], values: dict[str, Any]) -> list[Update]:
        ck = canonical_key(key)
        group = self._running.get(ck)
        if group is None:
            group = self._running[ck] = _Group(key, self._fresh())
        self._fold(group.accumulators, self._arguments(values))
        return [Update(group.key, None, None, group.results())]

    def _add_fixed(self, t: int, key: tuple[Any, ...], values: dict[str, Any]) -> list[Update]:
        """Tumbling and hopping windows: the windows [s, s + size) with s a multiple of the
        advance (the size, for tumbling) and s <= t < s + size."""
        size, step = self._size, self._advance
        last_open = self.watermark_ms - size - self._grace  # type: ignore[operator]
        newest = t - t % step
        starts = range(newest, t - size, -step)
        ck = canonical_key(key)
        arguments = self._arguments(values)
        changed: list[Update] = []
        late = False
        for start in reversed(starts):
            if start <= last_open:
                late = True
                continue
            groups = self._windows.get(start)
            if groups is None:
                groups = self._windows[start] = {}
                heapq.heappush(self._starts, start)
            group = groups.get(ck)
            if group is None:
                group = groups[ck] = _Group(key, self._fresh())
            self._fold(group.accumulators, arguments)
            if not self._final:
                changed.append(Update(group.key, start, start + size, group.results()))
        if late:
            self.late_events += 1
        return changed

    def _add_session(self, t: int, key: tuple[Any, ...], values: dict[str, Any]) -> list[Update]:
        """An event within the gap of a session of its key (bounds inclusive) extends it; one
        within the gap of two merges them; otherwise it opens a session, unless that session
        would already be closed (late)."""
        gap = self._gap
        ck = canonical_key(key)
        open_ = self._sessions.get(ck)
        touched = [s for s in open_ if s.first - gap <= t <= s.last + gap] if open_ else []
        changed: list[Update] = []
        if not touched:
            if t + gap + self._grace < self.watermark_ms:  # type: ignore[operator]
                self.late_events += 1
                return changed
            session = _Session(key, ck, self._fresh(), t)
            self._sessions.setdefault(ck, []).append(session)
            self._schedule(session)
        else:
            session = touched[0]
            before = [(s.key, s.first, s.last) for s in touched]
            for other in touched[1:]:
                session.first = min(session.first, other.first)
                session.last = max(session.last, other.last)
                for mine, theirs in zip(session.accumulators, other.accumulators, strict=True):
                    mine.merge(theirs)
                other.open = False
                open_.remove(other)  # type: ignore[union-attr]
            session.first = min(session.first, t)
            if t > session.last:
                session.last = t
            session.closes_at = session.last + gap + self._grace + 1
            if not self._final:
                changed += (
                    Update(k, first, last, (), retracted=True)
                    for k, first, last in before
                    if first != session.first
                )
        self._fold(session.accumulators, self._arguments(values))
        if not self._final:
            changed.append(Update(session.key, session.first, session.last, session.results()))
        return changed

    def _schedule(self, session: _Session) -> None:
        session.closes_at = session.last + self._gap + self._grace + 1
        heapq.heappush(self._closing, (session.closes_at, next(self._order), session))
