"""SET, RESET, SHOW and DISCARD: the session's run-time parameters, kept by the wire server.

PostgreSQL clients set parameters on connect (``SET extra_float_digits = 3``, ``SET
application_name = ...``, ``SET datestyle``) and read some back (``SHOW
standard_conforming_strings``, ``SHOW TRANSACTION ISOLATION LEVEL``). queryleaf keeps every
value it is given, answers SHOW and ``current_setting()`` from them, and changes nothing in how
it runs statements: values are always sent as PostgreSQL's defaults below describe (ISO dates,
UTC, UTF8).
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping

from queryleaf.errors import ExecutionError

SERVER_VERSION = "15.0"  # the PostgreSQL whose catalog and protocol the server speaks
SERVER_VERSION_NUM = "150000"

# PostgreSQL's names (SHOW prints them so) and the values queryleaf reports.
DEFAULT_SETTINGS: dict[str, str] = {
    "server_version": SERVER_VERSION,
    "server_version_num": SERVER_VERSION_NUM,
    "server_encoding": "UTF8",
    "client_encoding": "UTF8",
    "DateStyle": "ISO, MDY",
    "IntervalStyle": "postgres",
    "TimeZone": "UTC",
    "integer_datetimes": "on",
    "standard_conforming_strings": "on",
    "is_superuser": "off",
    "transaction_isolation": "read committed",
    "default_transaction_isolation": "read committed",
    "transaction_read_only": "off",
    "default_transaction_read_only": "off",
    "in_hot_standby": "off",
    "search_path": '"$user", public',
    "extra_float_digits": "1",
    "application_name": "",
    "max_identifier_length": "63",
    "lc_collate": "C.UTF-8",
    "lc_ctype": "C.UTF-8",
    "lc_messages": "C.UTF-8",
    "lc_monetary": "C.UTF-8",
    "lc_numeric": "C.UTF-8",
    "lc_time": "C.UTF-8",
    "bytea_output": "hex",
    "client_min_messages": "notice",
    "statement_timeout": "0",
    "lock_timeout": "0",
    "idle_in_transaction_session_timeout": "0",
    "max_connections": "100",
    "block_size": "8192",
    "escape_string_warning": "on",
    "row_security": "on",
}

_CANONICAL = {name.lower(): name for name in DEFAULT_SETTINGS}

# SHOW forms that are queryleaf statements (SHOW TABLES...), not parameters.
QUERYLEAF_SHOWS = frozenset(
    {"tables", "collections", "views", "databases", "indexes", "columns", "event_subscriptions"}
)

_SET = re.compile(
    r"SET\s+(?:(?:SESSION|LOCAL)\s+)?(?P<name>[A-Za-z_][\w.]*)\s*(?:=|\bTO\b)\s*(?P<value>.*)",
    re.I | re.S,
)
_SET_TIME_ZONE = re.compile(
    r"SET\s+(?:(?:SESSION|LOCAL)\s+)?TIME\s+ZONE\s+(?P<value>.*)", re.I | re.S
)
_SET_NAMES = re.compile(r"SET\s+NAMES\s+(?P<value>.*)", re.I | re.S)
_SET_TRANSACTION = re.compile(
    r"SET\s+(?:SESSION\s+CHARACTERISTICS\s+AS\s+)?TRANSACTION\s+(?P<modes>.*)", re.I | re.S
)
_ISOLATION = re.compile(
    r"ISOLATION\s+LEVEL\s+(SERIALIZABLE|REPEATABLE\s+READ|READ\s+COMMITTED|READ\s+UNCOMMITTED)",
    re.I,
)
_RESET = re.compile(r"RESET\s+(?P<name>ALL|[A-Za-z_][\w.]*)\s*$", re.I | re.S)
_SHOW = re.compile(r"SHOW\s+(?P<name>.+?)\s*$", re.I | re.S)
_DISCARD = re.compile(r"DISCARD\s+(?P<what>ALL|PLANS|SEQUENCES|TEMP|TEMPORARY)\s*$", re.I)


def canonical(name: str) -> str:
    return _CANONICAL.get(name.lower(), name.lower())


def lookup(settings: MutableMapping[str, str], name: str) -> str | None:
    """The value of a parameter, whatever the case the client and the server wrote it in."""
    wanted = name.lower()
    for key, value in settings.items():
        if key.lower() == wanted:
            return value
    return DEFAULT_SETTINGS.get(canonical(name))


def assign(settings: MutableMapping[str, str], name: str, value: str) -> None:
    for key in [k for k in settings if k.lower() == name.lower()]:
        del settings[key]
    settings[canonical(name)] = value


_ITEM = re.compile(
    r"'(?P<single>(?:[^']|'')*)'|\"(?P<double>(?:[^\"]|\"\")*)\"|(?P<bare>[^,\s][^,]*)"
)


def _value(text: str) -> str:
    """A SET value as PostgreSQL keeps it: a list of items joined with ', ', quotes removed."""
    parts = []
    for item in _ITEM.finditer(text.strip().rstrip(";")):
        if item.group("single") is not None:
            parts.append(item.group("single").replace("''", "'"))
        elif item.group("double") is not None:
            parts.append(item.group("double"))
        else:
            parts.append(item.group("bare").strip())
    return ", ".join(parts)


def run_set(text: str, settings: MutableMapping[str, str], startup: dict[str, str]) -> str:
    """Carry out a SET statement; returns the command tag."""
    if match := _SET_TRANSACTION.fullmatch(text):
        level = _ISOLATION.search(match["modes"])
        if level:
            assign(settings, "transaction_isolation", " ".join(level[1].lower().split()))
        return "SET"
    if match := _SET_TIME_ZONE.fullmatch(text):
        assign(settings, "TimeZone", _value(match["value"]))
        return "SET"
    if match := _SET_NAMES.fullmatch(text):
        assign(settings, "client_encoding", _value(match["value"]))
        return "SET"
    match = _SET.fullmatch(text)
    if match is None:
        raise ExecutionError(f"SET: cannot read {text!r} (SET name = value is expected)")
    value = _value(match["value"])
    if value.upper() == "DEFAULT":
        _reset(settings, match["name"], startup)
    else:
        assign(settings, match["name"], value)
    return "SET"


def _reset(settings: MutableMapping[str, str], name: str, startup: dict[str, str]) -> None:
    for key in [k for k in settings if k.lower() == name.lower()]:
        del settings[key]
    for key, value in startup.items():
        if key.lower() == name.lower():
            settings[key] = value


def run_reset(text: str, settings: MutableMapping[str, str], startup: dict[str, str]) -> str:
    match = _RESET.fullmatch(text)
    if match is None:
        raise ExecutionError(f"RESET: cannot read {text!r} (RESET name or RESET ALL is expected)")
    if match["name"].upper() == "ALL":
        settings.clear()
        settings.update(startup)
    else:
        _reset(settings, match["name"], startup)
    return "RESET"


def run_discard(text: str, settings: MutableMapping[str, str], startup: dict[str, str]) -> str:
    match = _DISCARD.fullmatch(text)
    if match is None:
        raise ExecutionError(f"DISCARD: cannot read {text!r}")
    what = match["what"].upper()
    if what == "ALL":
        settings.clear()
        settings.update(startup)
    return f"DISCARD {'TEMP' if what == 'TEMPORARY' else what}"


def show_name(text: str) -> str | None:
    """The parameter a SHOW names (``transaction_isolation`` for SHOW TRANSACTION ISOLATION
    LEVEL, ``all``); None when the SHOW is one of queryleaf's own statements."""
    match = _SHOW.fullmatch(text)
    if match is None:
        return None
    name = " ".join(match["name"].split())
    if name.lower() == "transaction isolation level":
        return "transaction_isolation"
    if name.lower() == "time zone":
        return "TimeZone"
    if name.split()[0].lower() in QUERYLEAF_SHOWS or not re.fullmatch(r"[A-Za-z_][\w.]*", name):
        return None
    return name


def show(name: str, settings: MutableMapping[str, str]) -> tuple[list[str], list[tuple]]:
    if name.lower() == "all":
        names = {canonical(k): None for k in [*DEFAULT_SETTINGS, *settings]}
        rows = [(n, lookup(settings, n), "") for n in sorted(names, key=str.lower)]
        return ["name", "setting", "description"], rows
    value = lookup(settings, name)
    if value is None:
        raise ExecutionError(f'unrecognized configuration parameter "{name}"')
    return [canonical(name)], [(value,)]
