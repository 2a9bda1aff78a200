"""Render command documents in mongosh syntax and as Extended JSON (EXPLAIN shows both).

Unrecognised commands or options fall back to ``db.runCommand({...})``, which is always exact.
A ``Secret`` value (a literal credential) is rendered as ``'***'``: commands are shown, never
the credential they carry.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import re
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from bson import json_util
from bson.binary import Binary
from bson.code import Code
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.regex import Regex
from bson.timestamp import Timestamp

from queryleaf.secret import MASK, Secret, masked


def to_json(cmd: Mapping[str, Any]) -> str:
    """A command document as indented relaxed Extended JSON."""
    return json_util.dumps(masked(cmd), json_options=json_util.RELAXED_JSON_OPTIONS, indent=2)


_IDENT = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")
_COLLECTION_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_DB_METHODS = {
    "aggregate",
    "watch",
    "getName",
    "getCollection",
    "runCommand",
    "stats",
    "version",
    "createView",
    "createCollection",
    "getMongo",
    "help",
    "auth",
    "adminCommand",
}
_WIDTH = 80
_KNOWN_UPDATE_OPTIONS = ("upsert", "arrayFilters", "hint", "collation")


def to_mongosh(command: Mapping[str, Any]) -> str:
    """A database command document as the mongosh call that runs it.

    Unrecognised commands or options fall back to ``db.runCommand({...})``, which is always exact.
    A ``$db`` field (another database) becomes ``db.getSiblingDB(...)``; a ``$comment`` (an
    EXPLAIN note, never sent) that the command's renderer does not take becomes a ``//``
    comment after the call.
    """
    name = next(iter(command), None)
    render = _RENDERERS.get(name or "")
    text = render(command) if render else None
    if text is not None:
        return text
    note = command.get("$comment")
    sibling = command.get("$db")
    if note is not None or sibling is not None:
        command = {k: v for k, v in command.items() if k not in ("$comment", "$db")}
        text = render(command) if render else None
    if text is None:
        text = f"db.runCommand({_value(dict(command), 0)})"
    if sibling is not None:
        text = f"db.getSiblingDB({_str(str(sibling))}){text[2:]}"
    return text if note is None else f"{text}  // {note}"


def _coll(name: Any) -> str:
    if name == 1:
        return "db"
    if isinstance(name, str) and _COLLECTION_IDENT.match(name) and name not in _DB_METHODS:
        return f"db.{name}"
    return f"db.getCollection({_str(str(name))})"


def _call(target: str, method: str, *args: Any) -> str:
    prefix = f"{target}.{method}("
    return prefix + ", ".join(_value(a, 0, len(prefix)) for a in args) + ")"


def _only(command: Mapping[str, Any], allowed: set[str]) -> bool:
    return set(command) <= allowed


def _aggregate(cmd: Mapping[str, Any]) -> str | None:
    if not _only(
        cmd,
        {
            "aggregate",
            "pipeline",
            "cursor",
            "allowDiskUse",
            "hint",
            "collation",
            "let",
            "comment",
            "maxTimeMS",
        },
    ):
        return None
    pipeline = list(cmd.get("pipeline", []))
    options = {k: v for k, v in cmd.items() if k not in ("aggregate", "pipeline", "cursor")}
    if isinstance(cmd.get("cursor"), Mapping) and cmd["cursor"].get("batchSize") is not None:
        options["batchSize"] = cmd["cursor"]["batchSize"]
    target = _coll(cmd["aggregate"])
    if pipeline and isinstance(pipeline[0], Mapping) and "$changeStream" in pipeline[0]:
        stream_options = dict(pipeline[0]["$changeStream"])
        if stream_options.pop("allChangesForCluster", False):
            target = "db.getMongo()"
        args: list[Any] = [pipeline[1:]]
        if stream_options or options:
            args.append({**stream_options, **options})
        return _call(target, "watch", *args)
    return _call(target, "aggregate", pipeline, *([options] if options else []))


def _find(cmd: Mapping[str, Any]) -> str | None:
    if not _only(
        cmd,
        {"find", "filter", "projection", "sort", "skip", "limit", "hint", "collation", "batchSize"},
    ):
        return None
    args: list[Any] = [cmd.get("filter", {})]
    if cmd.get("projection") is not None:
        args.append(cmd["projection"])
    text = _call(_coll(cmd["find"]), "find", *args)
    for key in ("sort", "skip", "limit", "hint", "collation", "batchSize"):
        if key in cmd:
            text += f".{key}({_value(cmd[key], 0)})"
    return text


def _write_concern(cmd: Mapping[str, Any]) -> dict[str, Any]:
    return {"writeConcern": cmd["writeConcern"]} if "writeConcern" in cmd else {}


def _insert(cmd: Mapping[str, Any]) -> str | None:
    if not _only(cmd, {"insert", "documents", "ordered", "writeConcern"}):
        return None
    docs = list(cmd.get("documents", []))
    options = {"ordered": cmd["ordered"]} if "ordered" in cmd else {}
    options.update(_write_concern(cmd))
    if len(docs) == 1 and "ordered" not in options:
        return _call(_coll(cmd["insert"]), "insertOne", docs[0], *([options] if options else []))
    return _call(_coll(cmd["insert"]), "insertMany", docs, *([options] if options else []))


def _update(cmd: Mapping[str, Any]) -> str | None:
    if not _only(cmd, {"update", "updates", "ordered", "writeConcern"}):
        return None
    lines = []
    for u in cmd.get("updates", []):
        if not set(u) <= {"q", "u", "multi", *_KNOWN_UPDATE_OPTIONS}:
            return None
        options = {k: u[k] for k in _KNOWN_UPDATE_OPTIONS if k in u}
        options.update(_write_concern(cmd))
        method = "updateMany" if u.get("multi") else "updateOne"
        lines.append(
            _call(
                _coll(cmd["update"]),
                method,
                u.get("q", {}),
                u.get("u", {}),
                *([options] if options else []),
            )
        )
    return "\n".join(lines)


def _delete(cmd: Mapping[str, Any]) -> str | None:
    if not _only(cmd, {"delete", "deletes", "ordered", "writeConcern"}):
        return None
    lines = []
    for d in cmd.get("deletes", []):
        if not set(d) <= {"q", "limit", "hint", "collation"}:
            return None
        options = {k: d[k] for k in ("hint", "collation") if k in d}
        options.update(_write_concern(cmd))
        method = "deleteOne" if d.get("limit") == 1 else "deleteMany"
        lines.append(
            _call(_coll(cmd["delete"]), method, d.get("q", {}), *([options] if options else []))
        )
    return "\n".join(lines)


def _find_and_modify(cmd: Mapping[str, Any]) -> str | None:
    if not _only(cmd, {"findAndModify", "query", "update", "new", "writeConcern"}):
        return None
    options = {"returnDocument": "after"} if cmd.get("new") else {}
    options.update(_write_concern(cmd))
    return _call(
        _coll(cmd["findAndModify"]),
        "findOneAndUpdate",
        cmd.get("query", {}),
        cmd.get("update", {}),
        *([options] if options else []),
    )


def _list_collections(cmd: Mapping[str, Any]) -> str | None:
    if not _only(cmd, {"listCollections", "filter", "nameOnly"}):
        return None
    options = {"nameOnly": cmd["nameOnly"]} if "nameOnly" in cmd else {}
    return _call("db", "getCollectionInfos", cmd.get("filter", {}), *([options] if options else []))


def _create(cmd: Mapping[str, Any]) -> str:
    options = {k: v for k, v in cmd.items() if k not in ("create", "viewOn", "pipeline")}
    if "viewOn" in cmd:
        return _call(
            "db",
            "createView",
            cmd["create"],
            cmd["viewOn"],
            cmd.get("pipeline", []),
            *([options] if options else []),
        )
    return _call("db", "createCollection", cmd["create"], *([options] if options else []))


def _drop(cmd: Mapping[str, Any]) -> str | None:
    return f"{_coll(cmd['drop'])}.drop()" if _only(cmd, {"drop"}) else None


def _watch(cmd: Mapping[str, Any]) -> str:
    """The pseudo-command ``{watch: coll | None, pipeline: [...], ...options}`` of live queries."""
    options = {k: v for k, v in cmd.items() if k not in ("watch", "pipeline")}
    target = "db" if cmd["watch"] in (None, 1) else _coll(cmd["watch"])
    return _call(target, "watch", list(cmd.get("pipeline", [])), *([options] if options else []))


def _start_transaction(cmd: Mapping[str, Any]) -> str:
    """The fields the driver adds to a transaction's first command, as mongosh starts one."""
    options = {k: v for k, v in cmd.items() if k in ("readConcern", "writeConcern")}
    return _call("session", "startTransaction", options)


def _session_call(method: str) -> Callable[[Mapping[str, Any]], str]:
    return lambda cmd: f"session.{method}()"


_RENDERERS = {
    "watch": _watch,
    "aggregate": _aggregate,
    "find": _find,
    "insert": _insert,
    "update": _update,
    "delete": _delete,
    "create": _create,
    "drop": _drop,
    "findAndModify": _find_and_modify,
    "listCollections": _list_collections,
    "startTransaction": _start_transaction,
    "commitTransaction": _session_call("commitTransaction"),
    "abortTransaction": _session_call("abortTransaction"),
}


def _str(s: str) -> str:
    body = json.dumps(s, ensure_ascii=False)[1:-1].replace('\\"', '"').replace("'", "\\'")
    return f"'{body}'"


def _key(k: Any) -> str:
    k = str(k)
    return k if _IDENT.match(k) else _str(k)


def _regex_flags(flags: int | str) -> str:
    if isinstance(flags, str):
        return flags
    letters = {re.IGNORECASE: "i", re.MULTILINE: "m", re.DOTALL: "s", re.VERBOSE: "x"}
    return "".join(ch for bit, ch in letters.items() if flags & bit)


def _scalar(value: Any) -> str | None:
    """mongosh text for a non-container value (None when it is a container)."""
    if value is None:
        return "null"
    if isinstance(value, Secret):
        return _str(MASK)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Int64):
        return f"NumberLong('{int(value)}')"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, str):
        return _str(value)
    if isinstance(value, ObjectId):
        return f"ObjectId('{value}')"
    if isinstance(value, dt.datetime):
        value = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        stamp = value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(timespec="milliseconds")
        return f"ISODate('{stamp}Z')"
    if isinstance(value, Decimal | Decimal128):
        return f"NumberDecimal('{value}')"
    if isinstance(value, re.Pattern | Regex):
        pattern = value.pattern if isinstance(value.pattern, str) else value.pattern.decode()
        pattern = re.sub(r"(?<!\\)/", r"\/", pattern) or "(?:)"
        return f"/{pattern}/{_regex_flags(value.flags)}"
    if isinstance(value, uuid.UUID):
        return f"UUID('{value}')"
    if isinstance(value, Binary) and value.subtype == 4:
        return f"UUID('{uuid.UUID(bytes=bytes(value))}')"
    if isinstance(value, bytes):
        subtype = value.subtype if isinstance(value, Binary) else 0
        return f"BinData({subtype}, '{base64.b64encode(bytes(value)).decode()}')"
    if isinstance(value, Timestamp):
        return f"Timestamp({{ t: {value.time}, i: {value.inc} }})"
    if isinstance(value, MinKey):
        return "MinKey()"
    if isinstance(value, MaxKey):
        return "MaxKey()"
    if isinstance(value, Code):
        return f"Code({_str(str(value))})"
    if isinstance(value, Mapping | list | tuple):
        return None
    return _str(str(value))


def _value(value: Any, indent: int, column: int | None = None) -> str:
    """mongosh text for a value: on one line when it fits in 80 columns, else indented.

    ``indent`` is the indentation of the line the value starts on, ``column`` where it starts.
    """
    scalar = _scalar(value)
    if scalar is not None:
        return scalar
    if not value:
        return "{}" if isinstance(value, Mapping) else "[]"
    flat = _flat_within(value, _WIDTH - (indent if column is None else column))
    if flat is not None:
        return flat
    pad = " " * (indent + 2)
    if isinstance(value, Mapping):
        items = [
            f"{pad}{_key(k)}: {_value(v, indent + 2, indent + len(_key(k)) + 4)}"
            for k, v in value.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    items = [f"{pad}{_value(v, indent + 2)}" for v in value]
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"


def _flat_within(value: Any, room: int) -> str | None:
    """``value`` on one line if that takes at most ``room`` characters, else None. It stops
    as soon as the text is too long: measuring every subtree in full, level after level, would
    take time proportional to the size times the depth (seconds for a 10,000-term OR)."""
    out: list[str] = []
    return "".join(out) if _emit(value, out, [room]) else None


def _flat(value: Any) -> str:
    """``value`` on one line, however long."""
    out: list[str] = []
    _emit(value, out, [math.inf])
    return "".join(out)


def _emit(value: Any, out: list[str], left: list[float]) -> bool:
    """Append the one-line text of ``value``; False once more than ``left[0]`` characters are
    needed (each level takes at least two, so with a width this recursion is shallow)."""
    scalar = _scalar(value)
    if scalar is not None:
        return _put(scalar, out, left)
    if isinstance(value, Mapping):
        if not value:
            return _put("{}", out, left)
        if not _put("{ ", out, left):
            return False
        for i, (k, v) in enumerate(value.items()):
            if not (_put(f"{', ' if i else ''}{_key(k)}: ", out, left) and _emit(v, out, left)):
                return False
        return _put(" }", out, left)
    if not value:
        return _put("[]", out, left)
    if not _put("[ ", out, left):
        return False
    for i, v in enumerate(value):
        if not ((not i or _put(", ", out, left)) and _emit(v, out, left)):
            return False
    return _put(" ]", out, left)


def _put(text: str, out: list[str], left: list[float]) -> bool:
    left[0] -= len(text)
    out.append(text)
    return left[0] >= 0
