"""Framing of the PostgreSQL frontend/backend protocol v3 messages (the backend's side).

A message is a type byte, an int32 length that counts itself, and a body; the first message of a
connection (startup, SSLRequest, CancelRequest) has no type byte. Integers are big-endian.
https://www.postgresql.org/docs/current/protocol-message-formats.html
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

PROTOCOL_3 = 196608  # 3.0
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
MAX_MESSAGE = 64 * 1024 * 1024  # a larger length is a broken or hostile client

_INT16 = struct.Struct("!h")
_INT32 = struct.Struct("!i")
_NULL_FIELD = _INT32.pack(-1)


class ProtocolViolation(Exception):
    """The client sent something the protocol does not allow; the connection ends."""


class ConnectionClosed(Exception):
    """The client went away."""


def read_exact(stream: BinaryIO, n: int) -> bytes:
    data = stream.read(n)
    if data is None or len(data) < n:
        raise ConnectionClosed
    return data


def read_startup(stream: BinaryIO) -> tuple[int, bytes]:
    """The first message of a connection: (its code, the rest of its body)."""
    length = _INT32.unpack(read_exact(stream, 4))[0]
    if not 8 <= length <= 10_000:
        raise ProtocolViolation(f"invalid startup packet length {length}")
    body = read_exact(stream, length - 4)
    return _INT32.unpack_from(body)[0], body[4:]


def read_message(stream: BinaryIO) -> tuple[bytes, bytes]:
    """(type byte, body) of the next message."""
    kind = stream.read(1)
    if not kind:
        raise ConnectionClosed
    length = _INT32.unpack(read_exact(stream, 4))[0]
    if not 4 <= length <= MAX_MESSAGE:
        raise ProtocolViolation(f"invalid message length {length}")
    return kind, read_exact(stream, length - 4)


class Reader:
    """Reads the fields of one message's body in order."""

    def __init__(self, body: bytes):
        self.body = body
        self.at = 0

    def int16(self) -> int:
        value = _INT16.unpack_from(self.body, self.at)[0]
        self.at += 2
        return int(value)

    def int32(self) -> int:
        value = _INT32.unpack_from(self.body, self.at)[0]
        self.at += 4
        return int(value)

    def cstring(self) -> str:
        end = self.body.find(b"\0", self.at)
        if end < 0:
            raise ProtocolViolation("unterminated string in message")
        text = self.body[self.at : end].decode("utf-8")
        self.at = end + 1
        return text

    def raw(self, n: int) -> bytes:
        if n < 0 or self.at + n > len(self.body):
            raise ProtocolViolation("message shorter than its fields")
        data = self.body[self.at : self.at + n]
        self.at += n
        return data

    def rest(self) -> bytes:
        data = self.body[self.at :]
        self.at = len(self.body)
        return data


def startup_parameters(body: bytes) -> dict[str, str]:
    reader = Reader(body)
    params: dict[str, str] = {}
    while reader.at < len(body) and body[reader.at] != 0:
        name = reader.cstring()
        params[name] = reader.cstring()
    return params


# ---------------------------------------------------------------- backend messages


def message(kind: bytes, body: bytes = b"") -> bytes:
    return kind + _INT32.pack(len(body) + 4) + body


def cstr(text: str) -> bytes:
    return text.encode("utf-8") + b"\0"


def authentication(code: int, data: bytes = b"") -> bytes:
    return message(b"R", _INT32.pack(code) + data)


AUTH_OK = 0
AUTH_SASL = 10
AUTH_SASL_CONTINUE = 11
AUTH_SASL_FINAL = 12


def parameter_status(name: str, value: str) -> bytes:
    return message(b"S", cstr(name) + cstr(value))


def backend_key_data(pid: int, key: int) -> bytes:
    return message(b"K", _INT32.pack(pid) + _INT32.pack(key))


def ready_for_query(status: bytes) -> bytes:
    """``status``: b"I" idle, b"T" in a transaction, b"E" in a failed transaction."""
    return message(b"Z", status)


@dataclass(frozen=True)
class Field:
    name: str
    type_oid: int
    type_size: int
    format: int  # 0 text, 1 binary


def row_description(fields: Sequence[Field]) -> bytes:
    parts = [_INT16.pack(len(fields))]
    for f in fields:
        parts.append(cstr(f.name))
        parts.append(struct.pack("!ihihih", 0, 0, f.type_oid, f.type_size, -1, f.format))
    return message(b"T", b"".join(parts))


def parameter_description(oids: Sequence[int]) -> bytes:
    return message(b"t", _INT16.pack(len(oids)) + b"".join(_INT32.pack(o) for o in oids))


def data_row(
    encoders: Sequence[Callable[[Any], bytes]], values: Iterable[Any], count: int
) -> bytes:
    """A DataRow of ``values``, each (but NULL) encoded by its column's encoder."""
    parts = [b"", _INT16.pack(count)]
    append, length = parts.append, _INT32.pack
    for encode, value in zip(encoders, values, strict=True):
        if value is None:
            append(_NULL_FIELD)
        else:
            cell = encode(value)
            append(length(len(cell)))
            append(cell)
    body = b"".join(parts)
    return b"D" + length(len(body) + 4) + body


def command_complete(tag: str) -> bytes:
    return message(b"C", cstr(tag))


def notice_or_error(kind: bytes, fields: Sequence[tuple[str, str]]) -> bytes:
    body = b"".join(code.encode("ascii") + cstr(value) for code, value in fields)
    return message(kind, body + b"\0")


PARSE_COMPLETE = message(b"1")
BIND_COMPLETE = message(b"2")
CLOSE_COMPLETE = message(b"3")
NO_DATA = message(b"n")
PORTAL_SUSPENDED = message(b"s")
EMPTY_QUERY = message(b"I")
