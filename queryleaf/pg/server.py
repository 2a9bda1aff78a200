"""The PostgreSQL wire server: accepts connections and runs each in a thread of its own.

A thread per connection, with blocking sockets: every statement blocks in pymongo anyway, so an
event loop would only hand each one to a thread (one more hop per message, which a point lookup
pays). A slow statement holds only its own connection's thread, and the GIL is released while a
thread waits on MongoDB or on its socket. The connection's first messages are handled here:
SSLRequest (refused with 'N', or TLS with a certificate), CancelRequest (the backend key names
the session whose statement is stopped), the startup message and SCRAM-SHA-256 authentication;
then its messages go to its PgSession.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import socket
import ssl
import struct
import threading
from collections.abc import Callable
from typing import Any, BinaryIO

from queryleaf.api import QueryLeaf
from queryleaf.pg import messages as m
from queryleaf.pg.auth import MECHANISM, AuthenticationFailed, ScramExchange, Verifier
from queryleaf.pg.catalog.settings import lookup
from queryleaf.pg.errors import (
    FEATURE_NOT_SUPPORTED,
    INTERNAL_ERROR,
    INVALID_AUTHORIZATION,
    INVALID_PASSWORD,
    PROTOCOL_VIOLATION,
    PgError,
)
from queryleaf.pg.session import PgSession

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5433
FLUSH_BYTES = 64 * 1024  # rows are sent in chunks of about this size
# The parameters PostgreSQL reports to the client at startup (ParameterStatus), with the values
# the catalog answers SHOW with, so that a client never sees two versions of one setting.
REPORTED = (
    "server_version",
    "server_encoding",
    "client_encoding",
    "DateStyle",
    "TimeZone",
    "integer_datetimes",
    "standard_conforming_strings",
    "IntervalStyle",
    "is_superuser",
    "in_hot_standby",
    "default_transaction_read_only",
    "application_name",
)
_EXTENDED = frozenset(b"PBDEHC")


class ConfigError(Exception):
    """The server cannot start as configured (e.g. --pg-trust on a public address)."""


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` names is a loopback one."""
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(
        ipaddress.ip_address(str(a).split("%")[0]).is_loopback for a in addresses
    )


class Output:
    """A connection's outgoing messages, sent in chunks (at once on ``flush``)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buffer = bytearray()

    def write(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            self.sock.sendall(self.buffer)
            self.buffer.clear()


class PgServer:
    """``connect(database)`` opens the QueryLeaf of a new connection. ``users`` maps user names
    to SCRAM verifiers; ``trust`` (loopback only) lets every client in without a password."""

    def __init__(
        self,
        connect: Callable[[str], QueryLeaf],
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        users: dict[str, Verifier] | None = None,
        trust: bool = False,
        tls: ssl.SSLContext | None = None,
    ):
        if trust and not is_loopback(host):
            raise ConfigError(
                f"--pg-trust lets anyone in without a password: refused on {host}, which is "
                "not a loopback address (give --pg-users FILE to authenticate clients)"
            )
        if not trust and not users:
            raise ConfigError("give --pg-users FILE (SCRAM-SHA-256), or --pg-trust on loopback")
        self.connect = connect
        self.host = host
        self.port = port
        self.users = users or {}
        self.trust = trust
        self.tls = tls
        self.sessions: dict[int, tuple[int, PgSession]] = {}
        self._lock = threading.Lock()
        self._next_pid = 1
        self._listener: socket.socket | None = None
        self._clients: set[socket.socket] = set()
        self._stopping = False

    # ------------------------------------------------------------ lifecycle
    def start(self) -> tuple[str, int]:
        """Listen, and accept connections in a background thread; returns (host, port)."""
        listener = socket.create_server((self.host, self.port), reuse_port=False, backlog=128)
        self._listener = listener
        self.port = listener.getsockname()[1]
        threading.Thread(target=self._accept_loop, name="pg-accept", daemon=True).start()
        return self.host, self.port

    def stop(self) -> None:
        self._stopping = True
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            try:
                client.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(
                target=self._connection, args=(sock,), name="pg-connection", daemon=True
            ).start()

    # ------------------------------------------------------------ one connection
    def _connection(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        held = [sock]  # the connection's socket: the TLS one once the client asked for TLS
        with self._lock:
            self._clients.add(sock)
        try:
            self._converse(held)
        except (m.ConnectionClosed, ConnectionError, ssl.SSLError, OSError):
            pass
        except (m.ProtocolViolation, struct.error, UnicodeDecodeError) as exc:
            _send_fatal(held[0], PgError(PROTOCOL_VIOLATION, f"malformed message: {exc}"))
        except Exception:  # noqa: BLE001 - one connection's failure must not go unseen
            log.exception("PostgreSQL connection failed")
        finally:
            with self._lock:
                self._clients.discard(held[0])
            try:
                held[0].close()
            except OSError:
                pass

    def _converse(self, held: list[socket.socket]) -> None:
        sock = held[0]
        stream: BinaryIO = sock.makefile("rb")
        code, body = m.read_startup(stream)
        while code in (m.SSL_REQUEST, m.GSSENC_REQUEST):
            if code == m.SSL_REQUEST and self.tls is not None:
                sock.sendall(b"S")
                sock = self.tls.wrap_socket(sock, server_side=True)
                with self._lock:  # stop() shuts down, and the end closes, the TLS socket
                    self._clients.discard(held[0])
                    self._clients.add(sock)
                held[0] = sock
                stream = sock.makefile("rb")
            else:
                sock.sendall(b"N")
            code, body = m.read_startup(stream)
        if code == m.CANCEL_REQUEST:
            self._cancel(*struct.unpack("!ii", body[:8]))
            return
        if code != m.PROTOCOL_3:
            _send_fatal(sock, PgError(FEATURE_NOT_SUPPORTED, f"unsupported protocol {code >> 16}"))
            return
        params = m.startup_parameters(body)
        user = params.get("user", "")
        out = Output(sock)
        if not self.trust and not self._authenticate(stream, out, user):
            return
        database = params.get("database") or user
        try:
            ql = self.connect(database)
        except Exception as exc:  # noqa: BLE001 - the client is told why, the server goes on
            _fatal(out, PgError("3D000", f"cannot open database {database!r}: {exc}"))
            return
        settings = dict(params)  # the catalog's SHOW, current_user... read the startup values
        session = PgSession(ql, settings, out.write, out.flush)
        pid, key = self._register(session)
        try:
            out.write(m.authentication(m.AUTH_OK))
            for name, value in _parameter_status(user, settings):
                out.write(m.parameter_status(name, value))
            out.write(m.backend_key_data(pid, key))
            out.write(m.ready_for_query(b"I"))
            out.flush()
            self._message_loop(stream, out, session)
        finally:
            with self._lock:
                self.sessions.pop(pid, None)
            session.close()

    def _authenticate(self, stream: BinaryIO, out: Output, user: str) -> bool:
        out.write(m.authentication(m.AUTH_SASL, m.cstr(MECHANISM) + b"\0"))
        out.flush()
        kind, body = m.read_message(stream)
        reader = m.Reader(body)
        if kind != b"p" or reader.cstring() != MECHANISM:
            _fatal(out, PgError(INVALID_AUTHORIZATION, f"only {MECHANISM} is supported"))
            return False
        exchange = ScramExchange(self.users.get(user))
        try:
            first = reader.raw(reader.int32()).decode()
            out.write(m.authentication(m.AUTH_SASL_CONTINUE, exchange.first(first).encode()))
            out.flush()
            kind, body = m.read_message(stream)
            if kind != b"p":
                raise AuthenticationFailed("expected a SASL response")
            final = exchange.final(body.decode())
        except (AuthenticationFailed, UnicodeDecodeError):
            _fatal(
                out,
                PgError(INVALID_PASSWORD, f'password authentication failed for user "{user}"'),
            )
            return False
        out.write(m.authentication(m.AUTH_SASL_FINAL, final.encode()))
        return True

    def _message_loop(self, stream: BinaryIO, out: Output, session: PgSession) -> None:
        failed = False  # an extended-protocol error: messages are skipped until Sync
        while True:
            kind, body = m.read_message(stream)
            if kind == b"X":
                return
            if failed and kind != b"S":
                continue
            try:
                self._dispatch(kind, body, session, out)
            except PgError as exc:
                session.send_error(exc)
                failed = kind[0] in _EXTENDED
            except (m.ConnectionClosed, OSError):
                raise
            except m.ProtocolViolation:
                raise
            except Exception as exc:  # noqa: BLE001 - never lose the connection over a bug
                log.exception("internal error in a PostgreSQL connection")
                session.send_error(PgError(INTERNAL_ERROR, f"internal error: {exc!r}"))
                failed = kind[0] in _EXTENDED
            if kind in (b"Q", b"S"):
                failed = False
                out.write(m.ready_for_query(session.status()))
                out.flush()
            elif kind == b"H":
                out.flush()

    def _dispatch(self, kind: bytes, body: bytes, session: PgSession, out: Output) -> None:
        reader = m.Reader(body)
        if kind == b"Q":
            session.simple_query(reader.cstring())
        elif kind == b"P":
            name, sql = reader.cstring(), reader.cstring()
            oids = [reader.int32() for _ in range(reader.int16())]
            session.parse_message(name, sql, oids)
        elif kind == b"B":
            portal, statement = reader.cstring(), reader.cstring()
            formats = [reader.int16() for _ in range(reader.int16())]
            values: list[bytes | None] = []
            for _ in range(reader.int16()):
                size = reader.int32()
                values.append(None if size < 0 else reader.raw(size))
            result_formats = [reader.int16() for _ in range(reader.int16())]
            session.bind(portal, statement, formats, values, result_formats)
        elif kind == b"D":
            which = reader.raw(1).decode()
            session.describe(which, reader.cstring())
        elif kind == b"E":
            name = reader.cstring()
            session.execute(name, reader.int32())
        elif kind == b"C":
            which = reader.raw(1).decode()
            session.close_message(which, reader.cstring())
        elif kind == b"S":
            session.sync()
        elif kind == b"H":
            pass
        elif kind in (b"d", b"c", b"f"):
            pass  # COPY data after a refused COPY: nothing to do
        else:
            raise PgError(FEATURE_NOT_SUPPORTED, f"message type {kind!r} is not supported")

    # ------------------------------------------------------------ cancel
    def _register(self, session: PgSession) -> tuple[int, int]:
        key = secrets.randbits(31)
        with self._lock:
            pid = self._next_pid
            self._next_pid += 1
            self.sessions[pid] = (key, session)
        return pid, key

    def _cancel(self, pid: int, key: int) -> None:
        with self._lock:
            entry = self.sessions.get(pid)
        if entry is not None and secrets.compare_digest(
            entry[0].to_bytes(4, "big"), key.to_bytes(4, "big", signed=True)
        ):
            try:
                entry[1].cancel()
            except Exception:  # noqa: BLE001 - a failed cancel leaves the statement running
                log.exception("cancel request failed")


def _parameter_status(user: str, settings: dict[str, str]) -> list[tuple[str, str]]:
    reported = [(name, lookup(settings, name) or "") for name in REPORTED]
    return [*reported, ("session_authorization", user)]


def _fatal(out: Output, error: PgError) -> None:
    out.write(m.notice_or_error(b"E", error.fields("FATAL")))
    out.flush()


def _send_fatal(sock: Any, error: PgError) -> None:
    try:
        sock.sendall(m.notice_or_error(b"E", error.fields("FATAL")))
    except OSError:
        pass
