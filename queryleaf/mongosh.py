"""Render command documents in mongosh syntax and as Extended JSON (for EXPLAIN)."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from typing import Any

from bson import ObjectId, Regex, json_util
from bson.decimal128 import Decimal128
from bson.timestamp import Timestamp

_PLAIN_KEY = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")

_VERBS = {
    "aggregate": "aggregate", "find": "find", "insert": "insertMany", "update": "updateMany",
    "delete": "deleteMany", "create": "createView", "drop": "drop",
}


def value(v: Any, indent: int = 0) -> str:
    """One BSON value in mongosh syntax."""
    pad = "  " * (indent + 1)
    end = "  " * indent
    if isinstance(v, dict | list | tuple):
        flat = _inline(v)
        if len(flat) + len(pad) <= 88:
            return flat
    if isinstance(v, dict):
        if not v:
            return "{}"
        items = [f"{pad}{_key(k)}: {value(x, indent + 1)}" for k, x in v.items()]
        return "{\n" + ",\n".join(items) + f"\n{end}}}"
    if isinstance(v, list | tuple):
        if not v:
            return "[]"
        if all(not isinstance(x, dict | list | tuple) for x in v):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return "[\n" + ",\n".join(pad + value(x, indent + 1) for x in v) + f"\n{end}]"
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, ObjectId):
        return f"ObjectId('{v}')"
    if isinstance(v, dt.datetime):
        return f"ISODate('{v.isoformat()}')"
    if isinstance(v, Decimal128 | Decimal):
        return f"NumberDecimal('{v}')"
    if isinstance(v, Timestamp):
        return f"Timestamp({{ t: {v.time}, i: {v.inc} }})"
    if isinstance(v, Regex):
        return f"/{v.pattern}/{v.flags if isinstance(v.flags, str) else ''}"
    if isinstance(v, re.Pattern):
        return f"/{v.pattern}/"
    if isinstance(v, str):
        return json.dumps(v)
    return repr(v)


def _inline(v: Any) -> str:
    if isinstance(v, dict):
        if not v:
            return "{}"
        return "{ " + ", ".join(f"{_key(k)}: {_inline(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_inline(x) for x in v) + "]"
    return value(v)


def _key(k: str) -> str:
    return k if _PLAIN_KEY.match(k) else json.dumps(k)


def command(cmd: dict[str, Any]) -> str:
    """A command document as the mongosh call a person would type."""
    verb, target = next(iter(cmd.items()))
    if verb == "aggregate":
        base = "db" if target in (None, 1) else f"db.{target}"
        return f"{base}.aggregate({value(cmd['pipeline'])})"
    if verb == "find":
        text = f"db.{target}.find({value(cmd.get('filter', {}))}"
        if cmd.get("projection") is not None:
            text += f", {value(cmd['projection'])}"
        text += ")"
        if cmd.get("sort"):
            text += f".sort({value(cmd['sort'])})"
        if cmd.get("skip"):
            text += f".skip({cmd['skip']})"
        if cmd.get("limit"):
            text += f".limit({cmd['limit']})"
        return text
    if verb == "insert":
        return f"db.{target}.insertMany({value(cmd['documents'])})"
    if verb == "update":
        u = cmd["updates"][0]
        return f"db.{target}.updateMany({value(u['q'])}, {value(u.get('u', {}))})"
    if verb == "delete":
        return f"db.{target}.deleteMany({value(cmd['deletes'][0]['q'])})"
    if verb == "create" and "viewOn" in cmd:
        return f"db.createView({json.dumps(target)}, {json.dumps(cmd['viewOn'])}, {value(cmd['pipeline'])})"
    if verb == "drop":
        return f"db.{target}.drop()"
    if verb == "watch":
        base = "db" if target is None else f"db.{target}"
        opts = {k: v for k, v in cmd.items() if k not in ("watch", "pipeline")}
        return f"{base}.watch({value(cmd.get('pipeline', []))}, {value(opts)})"
    return f"db.runCommand({value(cmd)})"


def to_json(cmd: dict[str, Any]) -> str:
    return json_util.dumps(cmd, json_options=json_util.RELAXED_JSON_OPTIONS, indent=2)
