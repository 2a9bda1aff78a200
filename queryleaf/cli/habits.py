"""What users of other shells type out of habit, and the queryleaf way to say it.

psql, mysql, sqlite3 and mongosh users type ``show dbs``, ``.tables``, ``db.orders.find()`` or
``help``; the REPL answers those with a one-line hint instead of a syntax error. Statements that
are valid queryleaf SQL (``use shop``, ``show tables``) simply run, even without their ``;``.
"""

from __future__ import annotations

import re

# Whole inputs that run (or get their hint) at Enter without a ';'.
_ALONE = re.compile(
    r"(?is)\s*(use\s+\S+|show\s+(tables|collections|databases|dbs|views|indexes)|help"
    r"|\.\w+(\s+\S+)?|db(\.\w+)+\s*\(.*\)\s*)\s*;?\s*"
)
_MONGOSH_CALL = re.compile(r"(?is)\s*db\.(\w+)\.(\w+)\s*\(.*\)\s*;?\s*")
_DOT_COMMAND = re.compile(r"(?is)\s*\.(\w+)(?:\s+(\S+))?\s*;?\s*")

_DOT_HINTS = {
    "tables": "SHOW TABLES; (or \\dt)",
    "databases": "SHOW DATABASES; (or \\l)",
    "indexes": "SHOW INDEXES; (or \\di)",
    "indices": "SHOW INDEXES; (or \\di)",
    "help": "\\?",
    "quit": "\\q",
    "exit": "\\q",
    "mode": "\\format table|json|csv",
}
_WRITES = {
    "insert": "INSERT INTO {c} (...) VALUES (...);",
    "update": "UPDATE {c} SET ... WHERE ...;",
    "delete": "DELETE FROM {c} WHERE ...;",
    "remove": "DELETE FROM {c} WHERE ...;",
    "count": "SELECT COUNT(*) FROM {c};",
    "aggregate": "SELECT ... FROM {c} GROUP BY ...;",
    "drop": "there is no DROP TABLE; drop collections with mongosh",
    "getindexes": "SHOW INDEXES FROM {c}; (or \\di {c})",
}


def runs_alone(text: str) -> bool:
    """Whether ``text`` is an input that runs at Enter although it has no ``;``."""
    return _ALONE.fullmatch(text) is not None


def hint(text: str) -> str | None:
    """A one-line hint for an input from another shell's habits; None for anything else."""
    stripped = text.strip().rstrip(";").strip()
    lowered = stripped.lower()
    if lowered == "help":
        return "type \\? for help; statements are SQL and end with ';'"
    if re.fullmatch(r"show\s+dbs", lowered):
        return "in queryleaf: SHOW DATABASES; (or \\l)"
    call = _MONGOSH_CALL.fullmatch(text)
    if call is not None:
        collection, method = call.group(1), call.group(2).lower()
        for prefix, sql in _WRITES.items():
            if method.startswith(prefix):
                return f"queryleaf speaks SQL: {sql.format(c=collection)}"
        return f"queryleaf speaks SQL: SELECT * FROM {collection} WHERE ...;"
    dot = _DOT_COMMAND.fullmatch(text)
    if dot is not None:
        command, arg = dot.group(1).lower(), dot.group(2)
        if command == "schema":
            return f"in queryleaf: DESCRIBE {arg or 'name'}; (or \\d {arg or 'name'})"
        if command in _DOT_HINTS:
            return f"in queryleaf: {_DOT_HINTS[command]}"
        return "dot commands are sqlite3's; type \\? for queryleaf's commands"
    return None
