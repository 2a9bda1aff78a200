"""The clients the process's shared change streams are opened on: one per server URI.

A shared stream serves consumers of several ``MongoClient`` objects (each ``QueryLeaf`` and each
event worker has its own), so it must not be opened on any one of them: closing that
``QueryLeaf`` would end the stream under the others. It is opened on a client of its own, one
per URI, made with the first shared stream of that URI and closed with the last.

Streams are keyed by the URI *as written*, credentials included, never by the server's address
alone (``MongoClient`` equality): consumers of one shared stream must be allowed the same reads,
and two users of one server are not.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from bson.codec_options import CodecOptions
from pymongo import MongoClient
from pymongo.change_stream import ChangeStream
from pymongo.database import Database

from queryleaf.clients import CLOSE_WAIT_S, close_client, close_within


@dataclass(frozen=True)
class Source:
    """Where a consumer's shared streams come from: a server URI (None: only the consumer's own
    client, ``db``, whose streams are shared only by users of that very client) and a database.
    """

    uri: str | None
    db: Database

    @property
    def identity(self) -> Hashable:
        """What the hub's keys hold: equal for every consumer that may share a stream."""
        if self.uri is not None:  # hashed: keys show up in logs and reprs, credentials must not
            return ("uri", hashlib.sha256(self.uri.encode()).hexdigest(), self.db.name)
        return ("client", id(self.db.client), self.db.name)

    def open(
        self, codec_options: CodecOptions, watch: Callable[[Database], ChangeStream]
    ) -> ChangeStream | OwnedStream:
        """``watch`` run on the database of this source's stream client (``codec_options``)."""
        if self.uri is None:
            return watch(self.db.with_options(codec_options=codec_options))
        return STREAM_CLIENTS.open(self.uri, self.db.name, codec_options, watch)


class OwnedStream:
    """A change stream that gives its client back when it is closed (a ChangeStream's face)."""

    def __init__(self, stream: ChangeStream, release: Callable[[], None]):
        self.stream = stream
        self._release: Callable[[], None] | None = release

    def try_next(self) -> Any:
        return self.stream.try_next()

    @property
    def alive(self) -> bool:
        return self.stream.alive

    @property
    def resume_token(self) -> Mapping[str, Any] | None:
        return self.stream.resume_token

    def buffered(self) -> int:
        """Events the driver holds (no round trip to read them); see shared.buffered_events."""
        data = getattr(getattr(self.stream, "_cursor", None), "_data", None)
        return len(data) if data is not None else 0

    def close(self) -> None:
        """Close the stream (``killCursors``), then give the client back. A server that is gone
        would hold the close for the server-selection timeout: it is waited for up to
        ``CLOSE_WAIT_S``, and the client's own close (bounded too) ends it."""
        release, self._release = self._release, None
        close_within(self.stream.close, CLOSE_WAIT_S, "queryleaf-close-stream")
        if release is not None:
            release()


class StreamClients:
    """One client per URI, counted by the streams open on it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.clients: dict[str, tuple[MongoClient, int]] = {}
        # More MongoClient options for the clients made from now on (tests add their
        # ``event_listeners`` here to see the shared streams' commands).
        self.options: dict[str, Any] = {}

    def open(
        self,
        uri: str,
        database: str,
        codec_options: CodecOptions,
        watch: Callable[[Database], ChangeStream],
    ) -> OwnedStream:
        client = self._acquire(uri)
        try:
            stream = watch(client.get_database(database, codec_options=codec_options))
        except BaseException:
            self._release(uri)
            raise
        return OwnedStream(stream, lambda: self._release(uri))

    def acquire(self, uri: str) -> MongoClient:
        """The process's client of ``uri``, for a user other than a stream (the event worker:
        one client per process for its commands and the streams it shares); ``give_back``
        when done."""
        return self._acquire(uri)

    def give_back(self, client: MongoClient) -> None:
        """Done with ``client`` (from ``acquire``; any other client is simply closed)."""
        with self.lock:
            uri = next((u for u, (c, _) in self.clients.items() if c is client), None)
        if uri is None:
            close_client(client)
        else:
            self._release(uri)

    def open_count(self) -> int:
        """Clients open now (observable in tests)."""
        with self.lock:
            return len(self.clients)

    def _acquire(self, uri: str) -> MongoClient:
        with self.lock:
            client, users = self.clients.get(uri, (None, 0))
            if client is None:
                # Not capped at the driver's 100: each open stream holds a connection while
                # it waits on the server.
                options = {"serverSelectionTimeoutMS": 10_000, **self.options}
                client = MongoClient(uri, tz_aware=True, maxPoolSize=None, **options)
            self.clients[uri] = (client, users + 1)
            return client

    def _release(self, uri: str) -> None:
        with self.lock:
            client, users = self.clients[uri]
            if users > 1:
                self.clients[uri] = (client, users - 1)
                return
            del self.clients[uri]
        close_client(client)


STREAM_CLIENTS = StreamClients()
