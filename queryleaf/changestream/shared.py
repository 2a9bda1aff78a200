"""One change stream per watched namespace per process, shared by everything that watches it.

A ``StreamHub`` keeps, per key (client, database, namespace and the stream's shape), at most one
open ``SharedStream``. Consumers ``attach`` with their own start position and get a ``Consumer``,
which reads like a pymongo ``ChangeStream`` (``try_next``, ``alive``, ``resume_token``, a
context manager) and yields every event after its position, in order, exactly once.

How positions and the shared stream interact (docs/events.md, "Shared change streams"):

* The shared stream keeps the events it read in one bounded buffer (``capacity`` events), each
  with a sequence number, and an index from resume tokens to "the sequence number after it":
  the token it was opened at, the token of every buffered event, and the post-batch token of
  every read. Tokens are only compared for equality (their order is not documented).
* A consumer attaches to the shared stream when its position is in that index: it goes on from
  the matching sequence number. The first consumer of a key opens the shared stream at its own
  position. Any other consumer reads a stream of its own from its own position ("own stream"),
  and after every event (or idle read) it looks its new position up in the index: once found,
  it closes its own stream and continues in the buffer. So a consumer that starts from an older
  position, or from a position the shared stream never passed, reads alone until it reaches a
  point the shared stream has seen, then joins.
* There is no reader thread: a consumer that is at the head of the buffer reads the next batch
  for everyone (one ``getMore``), the others wait for it. A slow consumer therefore never holds
  the others up; the buffer grows at most ``capacity`` events past the slowest, and the oldest
  event is dropped once it is full. A consumer whose next event was dropped is *detached*: it
  opens its own stream right after the last event it took and joins again as above (or stays
  on its own stream while it is too slow to catch up).
* Each consumer gets its own decoded copy of every event (handlers may change what they get).
* An error of the shared stream is raised in every attached consumer (each then reopens from
  its own durable position); an invalidate ends the shared stream: consumers read up to it, and
  the next attachment opens a new one.

This module knows nothing of subscriptions: the event worker (queryleaf.events.runner) and any
other consumer (a live query) use it the same way.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import bson
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo.change_stream import ChangeStream

DEFAULT_CAPACITY = 10_000  # events buffered per shared stream (the bound of a consumer's lag)
# A consumer that cannot join at once opens its own stream with a first reply of one event: it
# usually joins right after it (its first event is in the buffer), so reading more is waste.
PROBE_BATCH = 1


@dataclass(frozen=True)
class Start:
    """Where a consumer starts: after a resume token, or at a cluster time (one of them).

    ``not_before`` (with a token): only the events at or after this cluster time count — the
    position of a subscription just created (or RESET to now): its token was taken before the
    cluster time of its creation, and its events are those from that time on."""

    token: Mapping[str, Any] | None = None
    time: Any = None  # bson Timestamp
    not_before: Any = None  # bson Timestamp
    # ``time`` is the server's present, read just before: the stream opened when the consumer
    # attaches may open at the server's now instead (cheaper on servers that scan their oplog
    # to find a start time; only changes made while it attaches can fall either side), while
    # consumers joining a shared stream go by ``time``, and a stream reopened later by it too.
    now: bool = False

    @property
    def since(self) -> Any:
        """A cluster time such that this consumer's events are exactly those at or after it
        (None if the position is only a token)."""
        return self.time if self.token is None else self.not_before


# Opens a stream at a start; the int (if not None) is the size of its first reply (the opening
# aggregate's), the later ones being the stream's usual.
Opener = Callable[[Start, int | None], ChangeStream]


TimeKey = tuple[int, int]


def time_key(ts: Any) -> TimeKey | None:
    """A bson Timestamp as a comparable key (cluster times are ordered, unlike tokens)."""
    return None if ts is None else (ts.time, ts.inc)


def _after(key: TimeKey) -> TimeKey:
    """The key of the first cluster time after ``key``."""
    return (key[0], key[1] + 1)


def token_key(token: Mapping[str, Any] | None) -> Any:
    """A hashable identity of a resume token (equality only: their order is not documented)."""
    if token is None:
        return None
    data = token.get("_data")
    return data if isinstance(data, str) else bson.encode(dict(token))


@dataclass
class _Entry:
    token: Mapping[str, Any]
    raw: bytes
    ends: bool  # an invalidate: the shared stream ends after it
    time: TimeKey | None  # its cluster time
    view: Any = None  # decoded once for the consumers' filters (never handed out)
    verdicts: dict[Any, bool | None] | None = None  # per filter (consumers may share one)

    def decoded(self, codec_options: CodecOptions) -> Any:
        view = self.view
        if view is None:  # two consumers may both decode it: the same result
            view = self.view = bson.decode(self.raw, codec_options=codec_options)
        return view


# A consumer's own filter on the shared events (True / False; None: it cannot tell, then the
# consumer reads that part from a stream of its own, filtered by the server).
Accept = Callable[[Mapping[str, Any]], "bool | None"]
# What a consumer keeps of a shared event (the fields it did not ask for removed).
Shape = Callable[[dict[str, Any]], dict[str, Any]]


class SharedStream:
    """One open change stream and the buffer of what it read (see the module docstring)."""

    def __init__(
        self,
        hub: StreamHub,
        key: Hashable,
        stream: ChangeStream,
        start: Start,
        codec_options: CodecOptions,
        capacity: int,
    ):
        self.hub = hub
        self.key = key
        self.stream = stream
        self.codec_options = codec_options
        self.capacity = max(capacity, 1)
        self.cond = threading.Condition()
        self.entries: deque[_Entry] = deque()
        self.first_seq = 0  # sequence number of entries[0]
        self.index: dict[Any, int] = {}
        self.index_order: deque[tuple[int, Any]] = deque()  # (seq, key), seq non-decreasing
        self.reading = False
        self.error: BaseException | None = None
        self.ended = False
        self.closed = False
        self.consumers = 0
        self.hwm: Mapping[str, Any] | None = start.token
        self.reads = 0  # getMores issued (observable in tests and the benchmark)
        # Every event at or after this cluster time is in the buffer or still to be read (None:
        # not known yet); what lets a consumer whose position is a cluster time join by time.
        self.covers = time_key(start.since)
        self._remember(start.token, 0)

    @property
    def head(self) -> int:
        return self.first_seq + len(self.entries)

    def position_of(self, token: Mapping[str, Any] | None) -> int | None:
        """The sequence number right after ``token``, if the buffer still covers it."""
        key = token_key(token)
        if key is None:
            return None
        seq = self.index.get(key)
        return seq if seq is not None and seq >= self.first_seq else None

    def position_at(self, since: Any) -> int | None:
        """The sequence number of the first event at or after cluster time ``since``, if every
        such event is in the buffer or still to be read."""
        key = time_key(since)
        if key is None or self.covers is None or key < self.covers:
            return None
        seq = self.head
        for entry in reversed(self.entries):  # in oplog order: cluster times never decrease
            if entry.time is None:
                return None
            if entry.time < key:
                break
            seq -= 1
        return seq

    def _remember(self, token: Mapping[str, Any] | None, seq: int) -> None:
        key = token_key(token)
        if key is not None and key not in self.index:
            self.index[key] = seq
            self.index_order.append((seq, key))

    # ------------------------------------------------------------------ reading (one at a time)
    def read(self) -> None:
        """One round trip for everyone: the next events the server has (waits up to the
        stream's await time), appended to the buffer. Called without the lock, by the one
        consumer that set ``reading``."""
        try:
            changes = []
            change = self.stream.try_next()
            while change is not None:
                changes.append(change)
                if change.get("operationType") == "invalidate" or not buffered_events(self.stream):
                    break
                change = self.stream.try_next()
            alive = self.stream.alive
            hwm = self.stream.resume_token
        except BaseException as exc:
            with self.cond:
                self.error = exc
                self.reading = False
                self.cond.notify_all()
            self.hub._forget(self)
            self._close_stream()
            raise
        entries = [_entry(c, self.codec_options) for c in changes]
        hwm = _plain(hwm)
        with self.cond:
            self.reads += 1
            if self.covers is None and entries and entries[0].time is not None:
                self.covers = _after(entries[0].time)  # every later event follows it
            for entry in entries:
                self.entries.append(entry)
                self._remember(entry.token, self.head)
            if hwm is not None and not any(e.ends for e in entries):
                self.hwm = hwm
                self._remember(hwm, self.head)
            self._evict()
            if not alive or any(e.ends for e in entries):
                self.ended = True
            self.reading = False
            orphaned = self.consumers <= 0  # the last consumer left while we read
            self.cond.notify_all()
        if self.ended:
            self.hub._forget(self)
        if orphaned:
            self._close_stream()  # the close its leave() deferred to this reader

    def _evict(self) -> None:
        while len(self.entries) > self.capacity:
            evicted = self.entries.popleft()
            self.first_seq += 1
            if evicted.time is None or self.covers is None:
                self.covers = None
            else:
                self.covers = max(self.covers, _after(evicted.time))
        while self.index_order and self.index_order[0][0] < self.first_seq:
            _, key = self.index_order.popleft()
            self.index.pop(key, None)

    # ------------------------------------------------------------------ consumers
    def leave(self) -> None:
        with self.cond:
            self.consumers -= 1
            last = self.consumers <= 0
        if last:
            self.hub._forget(self)
            self._close_stream()

    def _close_stream(self) -> None:
        with self.cond:
            if self.closed or self.reading:
                return  # a reader in flight closes it when it returns (see Consumer)
            self.closed = True
        try:
            self.stream.close()
        except Exception:  # noqa: BLE001 - closing a broken stream
            pass


class Consumer:
    """One consumer's view: its events after its position, in order, from the shared stream or
    from a stream of its own (see the module docstring). Not thread-safe (one consumer, one
    thread), like a pymongo ChangeStream."""

    def __init__(
        self,
        hub: StreamHub,
        key: Hashable,
        start: Start,
        open_own: Opener,
        await_s: float,
        accept: Accept | None = None,
        shape: Shape | None = None,
    ):
        self.hub = hub
        self.accept = accept
        self.shape = shape
        self.key = key
        self.start = start
        self.open_own = open_own
        self.await_s = await_s
        self.shared: SharedStream | None = None
        self.cursor = 0
        self.own: ChangeStream | None = None
        self.last_token: Mapping[str, Any] | None = None  # of the last event taken
        self.closed = False
        self.joins = 0  # times this consumer (re)joined the shared stream
        self.detaches = 0  # times it fell out of the buffer and read alone
        self.undecided = 0  # events its filter could not judge (read from its own stream)

    # ------------------------------------------------------------------ state
    @property
    def on_own_stream(self) -> bool:
        return self.own is not None

    def _join(self, shared: SharedStream, cursor: int) -> None:
        # under shared.cond
        shared.consumers += 1
        self.shared, self.cursor = shared, cursor
        self.joins += 1

    def _position(self) -> Start:
        """Where a stream reopened for this consumer starts (after a detach): never the
        server's now, which has moved on since the consumer started."""
        if self.last_token is not None:
            return Start(token=self.last_token)
        return dataclasses.replace(self.start, now=False)

    # ------------------------------------------------------------------ the ChangeStream face
    @property
    def alive(self) -> bool:
        if self.closed:
            return False
        if self.own is not None:
            return self.own.alive
        shared = self.shared
        if shared is None:
            return False
        with shared.cond:
            return not (shared.ended and self.cursor >= shared.head)

    @property
    def resume_token(self) -> Mapping[str, Any] | None:
        """The position after everything this consumer has taken (when caught up with the
        shared stream: its post-batch token)."""
        if self.own is not None:
            return self.own.resume_token
        shared = self.shared
        if shared is not None:
            with shared.cond:
                caught_up = self.cursor >= shared.head
                if caught_up and shared.position_of(shared.hwm) == self.cursor:
                    return shared.hwm
        return self.last_token if self.last_token is not None else self.start.token

    def buffered(self) -> int:
        """Events ready without a server round trip."""
        if self.own is not None:
            return buffered_events(self.own)
        shared = self.shared
        if shared is None:
            return 0
        with shared.cond:
            return max(shared.head - self.cursor, 0)

    def try_next(self) -> dict[str, Any] | None:
        if self.closed:
            return None
        if self.own is not None:
            return self._next_own()
        return self._next_shared()

    def _next_own(self) -> dict[str, Any] | None:
        assert self.own is not None
        change = self.own.try_next()
        if change is not None:
            self.last_token = change["_id"]
            if not _ends(change):
                self._try_join(self.last_token)
            return change
        if self.own.alive:
            # Idle: the shared stream may have read our last event meanwhile (both streams
            # see a new event at about the same time), or our post-batch position.
            self._try_join(self.last_token)
            if self.own is not None:
                self._try_join(self.own.resume_token)
        return None

    def _try_join(self, token: Mapping[str, Any] | None) -> None:
        """Reading alone: continue in the shared buffer once it holds our position."""
        shared = self.hub._current(self.key)
        if shared is None or token is None:
            return
        with shared.cond:
            if shared.error is not None or shared.ended or shared.closed:
                return
            seq = shared.position_of(token)
            if seq is None:
                return
            self._join(shared, seq)
        own, self.own = self.own, None
        if token is not self.last_token:
            self.last_token = token  # an idle (post-batch) position
        if own is not None:
            own.close()

    def _detach(self) -> None:
        """Our next event left the buffer: read alone from the last event we took."""
        shared, self.shared = self.shared, None
        self.detaches += 1
        if shared is not None:
            shared.leave()
        self.own = self.open_own(self._position(), None)

    def next_buffered(self) -> dict[str, Any] | None:
        """The next event if it is at hand (no server round trip); else None."""
        if self.closed:
            return None
        if self.own is not None:
            return self._next_own() if buffered_events(self.own) else None
        return self._next_shared(read=False)

    def _next_shared(self, read: bool = True) -> dict[str, Any] | None:
        shared = self.shared
        assert shared is not None
        waited = not read
        while True:
            entry: _Entry | None = None
            with shared.cond:
                if shared.error is not None:
                    raise shared.error
                detach = self.cursor < shared.first_seq
                if detach:
                    pass
                elif self.cursor < shared.head:
                    entry = shared.entries[self.cursor - shared.first_seq]
                elif shared.ended or waited:
                    return None
                elif shared.reading:
                    shared.cond.wait(self.await_s)
                    waited = True
                    continue
                else:
                    shared.reading = True
            if entry is not None:  # judged and decoded outside the lock (only we move cursor)
                verdict = self._judge(entry, shared.codec_options)
                if verdict is None:
                    self.undecided += 1
                    detach = True
                else:
                    self.cursor += 1
                    self.last_token = entry.token
                    if verdict:
                        return self._copy(entry, shared.codec_options)
                    continue  # not this consumer's event: its position moves past it
            if detach:
                self._detach()
                return self._next_own()
            shared.read()
            waited = True  # one round trip per call at most, like ChangeStream.try_next

    def _judge(self, entry: _Entry, codec_options: CodecOptions) -> bool | None:
        accept = self.accept
        if accept is None or entry.ends:
            return True
        verdicts = entry.verdicts
        if verdicts is None:
            verdicts = entry.verdicts = {}
        elif accept in verdicts:
            return verdicts[accept]
        verdict = verdicts[accept] = accept(entry.decoded(codec_options))
        return verdict

    def _copy(self, entry: _Entry, codec_options: CodecOptions) -> dict[str, Any]:
        change = bson.decode(entry.raw, codec_options=codec_options)
        return change if self.shape is None else self.shape(change)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.own is not None:
            own, self.own = self.own, None
            own.close()
        if self.shared is not None:
            shared, self.shared = self.shared, None
            shared.leave()

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StreamHub:
    """The shared streams of a process, by key. ``attach`` is the one entry point."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY):
        self.capacity = capacity
        self.lock = threading.Lock()
        self.streams: dict[Hashable, SharedStream] = {}
        self.opened = 0  # shared streams opened so far (observable in tests)

    def attach(
        self,
        key: Hashable,
        start: Start,
        open_shared: Opener,
        open_own: Opener,
        codec_options: CodecOptions,
        await_s: float,
        earliest: Start | None = None,
        accept: Accept | None = None,
        shape: Shape | None = None,
    ) -> Consumer:
        """A consumer of the events after ``start`` on the stream ``key`` names.

        ``open_shared`` opens the stream everyone shares (at a given start; best with
        ``RawBSONDocument`` as its document class: events are then decoded only per consumer, with
        ``codec_options``); ``open_own`` the consumer's own (while it reads alone). Errors of opening at ``start`` are raised here,
        as ``watch`` raises them.

        ``earliest``: the earliest start (by ``since``) of the consumers about to attach to
        ``key`` together (a worker starting its subscriptions): the shared stream, if this opens
        it, is opened there, so that each of them joins it by cluster time instead of reading a
        stream of its own first.
        """
        consumer = Consumer(self, key, start, open_own, await_s, accept, shape)
        with self.lock:
            shared = self.streams.get(key)
            opened = shared is None
            if shared is None:
                at, stream = _open_earliest(open_shared, start, earliest)
                shared = SharedStream(self, key, stream, at, codec_options, self.capacity)
                self.streams[key] = shared
                self.opened += 1
                opened = at is start
            with shared.cond:
                seq = 0 if opened else shared.position_of(start.token)
                if seq is None:
                    seq = shared.position_at(start.since)
                usable = shared.error is None and not shared.ended and not shared.closed
                if seq is not None and usable:
                    consumer._join(shared, seq)
                    return consumer
        consumer.own = open_own(start, PROBE_BATCH)
        return consumer

    def keys(self) -> list[Hashable]:
        """The keys of the open shared streams."""
        with self.lock:
            return list(self.streams)

    def _current(self, key: Hashable) -> SharedStream | None:
        with self.lock:
            return self.streams.get(key)

    def _forget(self, shared: SharedStream) -> None:
        with self.lock:
            if self.streams.get(shared.key) is shared:
                del self.streams[shared.key]


def _open_earliest(
    open_shared: Opener, start: Start, earliest: Start | None
) -> tuple[Start, ChangeStream]:
    """The shared stream opened at ``earliest`` if it is before ``start`` by cluster time (and
    can be opened: its history may be gone), else at ``start``."""
    mine, first = time_key(start.since), time_key(earliest.since if earliest else None)
    if earliest is not None and mine is not None and first is not None and first < mine:
        try:
            return earliest, open_shared(earliest, None)
        except Exception:  # noqa: BLE001 - e.g. that position left the oplog: open at ours
            pass
    return start, open_shared(start, None)


HUB = StreamHub()  # the process's hub (the event worker and live queries use this one)


def _plain(token: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if isinstance(token, RawBSONDocument):
        return bson.decode(token.raw)
    return None if token is None else dict(token)


def _entry(change: Mapping[str, Any], codec_options: CodecOptions) -> _Entry:
    """A buffered event: its token and its BSON (as read, when the shared stream is opened with
    RawBSONDocument: then nothing is decoded but per consumer)."""
    if isinstance(change, RawBSONDocument):
        raw = bytes(change.raw)
    else:
        raw = bson.encode(change, codec_options=codec_options)
    token = _plain(change["_id"])
    assert token is not None
    return _Entry(token, raw, _ends(change), time_key(change.get("clusterTime")))


def _ends(change: Mapping[str, Any]) -> bool:
    return change.get("operationType") == "invalidate"


def buffered_events(stream: Any) -> int:
    """Events ``stream`` (a ChangeStream or a Consumer) holds (no server round trip to read them)."""
    buffered = getattr(stream, "buffered", None)
    if callable(buffered):
        return int(buffered())
    cursor = getattr(stream, "_cursor", None)
    data = getattr(cursor, "_data", None)
    try:
        return len(data) if data is not None else 0
    except TypeError:
        return 0
