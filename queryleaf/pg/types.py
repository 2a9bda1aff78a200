"""PostgreSQL types of result columns, and values in their wire forms (text and binary).

A column's type is queryleaf's ``ColumnType`` (column_types.py infers it from the first rows);
here it becomes a type OID, and each value is encoded for the format the client asked for. A
value that does not fit its column's type (a later document holds a string where the first ones
held numbers) is sent in its text form in a text column, the form every value has; in binary
format it is an error of that statement. Bind parameters are decoded here too, by the OIDs the
client gave them: they become plain values (str, int, Decimal, datetime, documents...), bound
as BSON values by the planner, never spliced into the text.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import struct
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from bson import Binary, Decimal128, ObjectId, Timestamp, json_util

from queryleaf.column_types import ColumnType

# PostgreSQL's type OIDs (pg_type.oid; stable across versions).
BOOL, BYTEA, NAME, INT8, INT2, INT4, TEXT, OID, JSON = 16, 17, 19, 20, 21, 23, 25, 26, 114
FLOAT4, FLOAT8, UNKNOWN, BPCHAR, VARCHAR, DATE = 700, 701, 705, 1042, 1043, 1082
TIMESTAMP, TIMESTAMPTZ, NUMERIC, UUID, JSONB = 1114, 1184, 1700, 2950, 3802

OID_OF: dict[ColumnType, int] = {
    ColumnType.BOOLEAN: BOOL,
    ColumnType.INTEGER: INT4,
    ColumnType.BIGINT: INT8,
    ColumnType.DOUBLE: FLOAT8,
    ColumnType.DECIMAL: NUMERIC,
    ColumnType.TEXT: TEXT,
    ColumnType.TIMESTAMP: TIMESTAMPTZ,
    ColumnType.DOCUMENT: JSONB,
    ColumnType.BINARY: BYTEA,
}
SIZE_OF = {BOOL: 1, INT4: 4, INT8: 8, FLOAT8: 8, TIMESTAMPTZ: 8}  # others: -1 (variable)

PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
PG_EPOCH_DATE = dt.date(2000, 1, 1)
_JSON = json_util.RELAXED_JSON_OPTIONS


class WireValueError(Exception):
    """A value the requested format cannot carry, or a parameter that does not decode."""


# ---------------------------------------------------------------- values → text


def _json_ready(value: Any) -> Any:
    if isinstance(value, Decimal):
        return Decimal128(value)
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    return value


def json_text(value: Any) -> str:
    """A document or array as JSON (MongoDB's relaxed Extended JSON for its own types)."""
    return json_util.dumps(_json_ready(value), json_options=_JSON)


def _float_text(value: float) -> bytes:
    if math.isfinite(value):
        return repr(value).encode()
    return b"NaN" if math.isnan(value) else (b"Infinity" if value > 0 else b"-Infinity")


def _decimal_text(value: Decimal | Decimal128) -> bytes:
    number = value.to_decimal() if isinstance(value, Decimal128) else value
    if number.is_nan():
        return b"NaN"
    if number.is_infinite():
        return b"Infinity" if number > 0 else b"-Infinity"
    return str(number).encode()


def _timestamp_text(value: dt.datetime) -> bytes:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    # PostgreSQL's own form (ISO DateStyle, UTC): fractions without trailing zeros, "+00".
    value = value.astimezone(dt.UTC)
    text = value.strftime("%Y-%m-%d %H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return (text + "+00").encode()


def _other_text(value: Any) -> bytes:
    if isinstance(value, bool):
        return b"t" if value else b"f"
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, float):
        return _float_text(value)
    if isinstance(value, Decimal | Decimal128):
        return _decimal_text(value)
    if isinstance(value, dt.datetime):
        return _timestamp_text(value)
    if isinstance(value, Timestamp):
        return _timestamp_text(value.as_datetime())
    if isinstance(value, dt.date):
        return value.isoformat().encode()
    if isinstance(value, ObjectId | uuid.UUID):
        return str(value).encode()
    if isinstance(value, bytes | bytearray | Binary):
        return b"\\x" + bytes(value).hex().encode()
    if isinstance(value, Mapping | list | tuple):
        return json_text(value).encode()
    try:
        return json_text(value).encode()
    except TypeError:
        return str(value).encode()


_TEXT_BY_TYPE: dict[type, Callable[[Any], bytes]] = {
    str: lambda v: v.encode("utf-8", "surrogateescape"),
    int: lambda v: str(v).encode(),
    bool: lambda v: b"t" if v else b"f",
    float: _float_text,
    ObjectId: lambda v: str(v).encode(),
}


def text_of(value: Any) -> bytes:
    """The text form of a (non-NULL) value, whatever its column's type."""
    encode = _TEXT_BY_TYPE.get(type(value))
    return encode(value) if encode is not None else _other_text(value)


# ---------------------------------------------------------------- values → binary


def _int_binary(fmt: str, low: int, high: int) -> Callable[[Any], bytes]:
    packer = struct.Struct(fmt)

    def encode(value: Any) -> bytes:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _unfit(value, "an integer of this size")
        return packer.pack(value)

    return encode


def _float8_binary(value: Any) -> bytes:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _unfit(value, "a double")
    return struct.pack("!d", float(value))


def _bool_binary(value: Any) -> bytes:
    if not isinstance(value, bool):
        raise _unfit(value, "a boolean")
    return b"\x01" if value else b"\x00"


def _timestamptz_binary(value: Any) -> bytes:
    if isinstance(value, Timestamp):
        value = value.as_datetime()
    if not isinstance(value, dt.datetime):
        raise _unfit(value, "a timestamp")
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    delta = value - PG_EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return struct.pack("!q", micros)


def _bytea_binary(value: Any) -> bytes:
    if isinstance(value, uuid.UUID):
        return value.bytes
    if not isinstance(value, bytes | bytearray | Binary):
        raise _unfit(value, "bytes")
    return bytes(value)


def _jsonb_binary(value: Any) -> bytes:
    return b"\x01" + json_text(value).encode()


def _numeric_binary(value: Any) -> bytes:
    """PostgreSQL's numeric: base-10000 digits, weight, sign and display scale."""
    if isinstance(value, Decimal128):
        value = value.to_decimal()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        value = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    if not isinstance(value, Decimal):
        raise _unfit(value, "a number")
    if value.is_nan():
        return struct.pack("!hhHh", 0, 0, 0xC000, 0)
    if value.is_infinite():
        return struct.pack("!hhHh", 0, 0, 0xD000 if value > 0 else 0xF000, 0)
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    scale = max(-exponent, 0)
    text = "".join(map(str, digits))
    if -exponent > len(text):  # 0.0001: zeros between the point and the digits
        text = "0" * (-exponent - len(text)) + text
    if exponent > 0:
        text += "0" * exponent
        exponent = 0
    integer, fraction = (text[: len(text) + exponent], text[len(text) + exponent :])
    integer = integer.lstrip("0")
    integer = "0" * (-len(integer) % 4) + integer
    fraction = fraction + "0" * (-len(fraction) % 4)
    groups = [int(integer[i : i + 4]) for i in range(0, len(integer), 4)]
    weight = len(groups) - 1
    groups += [int(fraction[i : i + 4]) for i in range(0, len(fraction), 4)]
    while groups and groups[0] == 0:  # leading zero groups (a value below 1)
        groups.pop(0)
        weight -= 1
    while groups and groups[-1] == 0:
        groups.pop()
    if not groups:
        weight = 0
    head = struct.pack("!hhHh", len(groups), weight, 0x4000 if sign else 0, scale)
    return head + b"".join(struct.pack("!H", g) for g in groups)


def _text_binary(value: Any) -> bytes:
    return text_of(value)


BINARY_OF: dict[int, Callable[[Any], bytes]] = {
    BOOL: _bool_binary,
    INT4: _int_binary("!i", -(2**31), 2**31 - 1),
    INT8: _int_binary("!q", -(2**63), 2**63 - 1),
    FLOAT8: _float8_binary,
    NUMERIC: _numeric_binary,
    TEXT: _text_binary,
    TIMESTAMPTZ: _timestamptz_binary,
    JSONB: _jsonb_binary,
    BYTEA: _bytea_binary,
}


def _unfit(value: Any, what: str) -> WireValueError:
    return WireValueError(
        f"a {type(value).__name__} value cannot be sent as {what} in binary format "
        "(the column's type was inferred from its first rows): ask for text format"
    )


# ---------------------------------------------------------------- parameters


def _bool_from_text(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("t", "true", "yes", "y", "on", "1"):
        return True
    if lowered in ("f", "false", "no", "n", "off", "0"):
        return False
    raise WireValueError(f"invalid input for a boolean: {text!r}")


def _timestamp_from_text(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text.strip().replace(" ", "T", 1))
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _bytea_from_text(text: str) -> bytes:
    if text.startswith("\\x"):
        return bytes.fromhex(text[2:])
    return text.encode("latin-1").decode("unicode_escape").encode("latin-1")


def _numeric_from_text(text: str) -> Decimal:
    return Decimal(text.strip())


def _numeric_from_binary(data: bytes) -> Decimal:
    ndigits, weight, sign, scale = struct.unpack_from("!hhHh", data)
    if sign == 0xC000:
        return Decimal("NaN")
    if sign in (0xD000, 0xF000):
        return Decimal("Infinity" if sign == 0xD000 else "-Infinity")
    groups = struct.unpack_from(f"!{ndigits}H", data, 8)
    digits = "".join(f"{group:04d}" for group in groups)
    point = (weight + 1) * 4  # where the decimal point falls in the digits
    if point <= 0:
        digits, point = "0" * (1 - point) + digits, 1
    digits = digits.ljust(point + scale, "0")
    text = digits[:point] + ("." + digits[point : point + scale] if scale else "")
    return Decimal(("-" if sign == 0x4000 else "") + text)  # exact: no context rounding


def _timestamp_from_binary(data: bytes) -> dt.datetime:
    return PG_EPOCH + dt.timedelta(microseconds=struct.unpack("!q", data)[0])


_TEXT_PARAM: dict[int, Callable[[str], Any]] = {
    INT2: int,
    INT4: int,
    INT8: int,
    OID: int,
    FLOAT4: float,
    FLOAT8: float,
    NUMERIC: _numeric_from_text,
    BOOL: _bool_from_text,
    TIMESTAMPTZ: _timestamp_from_text,
    TIMESTAMP: _timestamp_from_text,
    DATE: lambda t: dt.date.fromisoformat(t.strip()),
    JSON: json.loads,
    JSONB: json.loads,
    BYTEA: _bytea_from_text,
    UUID: uuid.UUID,
}
_BINARY_PARAM: dict[int, Callable[[bytes], Any]] = {
    INT2: lambda d: struct.unpack("!h", d)[0],
    INT4: lambda d: struct.unpack("!i", d)[0],
    INT8: lambda d: struct.unpack("!q", d)[0],
    OID: lambda d: struct.unpack("!I", d)[0],
    FLOAT4: lambda d: struct.unpack("!f", d)[0],
    FLOAT8: lambda d: struct.unpack("!d", d)[0],
    NUMERIC: _numeric_from_binary,
    BOOL: lambda d: d != b"\x00",
    TIMESTAMPTZ: _timestamp_from_binary,
    TIMESTAMP: _timestamp_from_binary,
    DATE: lambda d: PG_EPOCH_DATE + dt.timedelta(days=struct.unpack("!i", d)[0]),
    JSON: lambda d: json.loads(d.decode()),
    JSONB: lambda d: json.loads(d[1:].decode()),
    BYTEA: bytes,
    UUID: lambda d: uuid.UUID(bytes=d),
    TEXT: lambda d: d.decode(),
    VARCHAR: lambda d: d.decode(),
    BPCHAR: lambda d: d.decode(),
    NAME: lambda d: d.decode(),
    UNKNOWN: lambda d: d.decode(),
    0: lambda d: d.decode(),
}


def decode_parameter(data: bytes | None, oid: int, binary: bool, number: int) -> Any:
    """One Bind parameter as a Python value. Text of an unknown type (OID 0, what psycopg sends
    for a str) stays a string: it is a value, whatever it looks like."""
    if data is None:
        return None
    try:
        if binary:
            decode = _BINARY_PARAM.get(oid)
            if decode is None:
                raise WireValueError(
                    f"parameter ${number}: binary format of type OID {oid} is not supported"
                )
            return decode(data)
        text = data.decode("utf-8")
        parse = _TEXT_PARAM.get(oid)
        return parse(text) if parse is not None else text
    except WireValueError:
        raise
    except (ValueError, TypeError, struct.error, UnicodeDecodeError) as exc:
        raise WireValueError(
            f"parameter ${number}: invalid value for type OID {oid}: {exc}"
        ) from exc
