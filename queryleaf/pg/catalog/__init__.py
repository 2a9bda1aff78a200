"""The PostgreSQL catalog the wire server answers: SET / RESET / SHOW / DISCARD, the session
functions clients select on connect (``version()``, ``current_schema()``...), and queries of
pg_catalog and information_schema (psql's ``\\d``, SQLAlchemy's inspection, DBeaver, Grafana).

The wire server calls ``answer`` for every statement: an ordinary query is turned away by one
regular-expression search (microseconds, see tests/test_pg_catalog.py), and ``None`` tells the
server to run it through queryleaf. A catalog query runs on a snapshot of the catalog in an
in-memory SQLite database (snapshot.py), translated from PostgreSQL by sqlglot (translate.py).
docs/connectors.md ("Catalog") lists what is answered.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlglot.errors
from sqlglot import exp

from queryleaf.column_types import ColumnType, infer_type
from queryleaf.errors import ExecutionError
from queryleaf.pg.catalog import functions, settings, tables, translate
from queryleaf.pg.catalog.settings import DEFAULT_SETTINGS, SERVER_VERSION
from queryleaf.pg.catalog.snapshot import ProfileCache, Snapshot

if TYPE_CHECKING:
    from queryleaf.api import QueryLeaf

__all__ = [
    "DEFAULT_SETTINGS",  # what ParameterStatus should report (server_version, DateStyle...)
    "SERVER_VERSION",
    "CatalogAnswer",
    "CatalogSession",
    "answer",
]

SNAPSHOT_MAX_AGE_S = 2.0  # one client's burst of catalog queries (psql's \d sends 9) shares one

# Words only a catalog statement holds (lower case). A statement holding none of them, and not
# starting with SET, RESET, SHOW or DISCARD, is not one: the common case, decided in about a
# microsecond (substring searches of the lower-cased text; a regular expression took ten).
_MARKERS = (
    "pg_",
    "information_schema",
    "version(",
    "current_schema",
    "current_database",
    "current_user",
    "current_setting",
    "current_catalog",
    "current_role",
    "session_user",
    "set_config",
    "to_reg",
    "_privilege",
    "obj_description",
    "format_type",
    "quote_ident",
)
_COMMANDS = ("set", "reset", "show", "discard")
_FIRST_WORD = re.compile(r"[(\s]*([A-Za-z]+)")
_LEADING_COMMENTS = re.compile(r"^(?:\s+|--[^\n]*\n?|/\*.*?\*/)*", re.S)

# Functions a FROM-less SELECT may call to be answered here (``SELECT version()``).
SESSION_FUNCTIONS = frozenset(
    {
        "version",
        "current_database",
        "current_catalog",
        "current_schema",
        "current_schemas",
        "current_user",
        "session_user",
        "current_role",
        "user",
        "current_setting",
        "set_config",
        "pg_backend_pid",
        "pg_is_in_recovery",
        "inet_server_addr",
        "inet_server_port",
        "inet_client_addr",
        "pg_postmaster_start_time",
        "to_regtype",
        "to_regclass",
        "pg_encoding_to_char",
        "has_table_privilege",
        "has_schema_privilege",
        "has_database_privilege",
        "pg_database_size",
        "pg_size_pretty",
        "quote_ident",
        "format_type",
        "obj_description",
    }
)


@dataclass
class _SessionState:
    startup: dict[str, str] | None = None  # the settings as the connection started: RESET's
    snapshot: Snapshot | None = None
    bare: Snapshot | None = None  # no MongoDB reads: for FROM-less function selects
    profiles: ProfileCache = field(default_factory=ProfileCache)


@dataclass
class CatalogSession:
    queryleaf: QueryLeaf
    settings: dict[str, str]
    _state: _SessionState = field(default_factory=_SessionState, repr=False, compare=False)

    def changed(self) -> None:
        """The connection wrote or changed the catalog: its next catalog query reads the
        database again (so pandas' has_table sees the table its CREATE TABLE just made)."""
        self._state.snapshot = None
        self._state.profiles = ProfileCache()


@dataclass
class CatalogAnswer:
    columns: list[str]
    types: list[ColumnType]
    rows: list[tuple]
    tag: str


def answer(sql: str, params: Sequence[Any], session: CatalogSession) -> CatalogAnswer | None:
    """The answer to a catalog statement; None when ``sql`` is not one (queryleaf runs it)."""
    lowered = sql.lower()
    head = lowered.lstrip()
    if head.startswith(("/*", "--")):
        head = _LEADING_COMMENTS.sub("", head, count=1)
    if not head.startswith(_COMMANDS) and not any(marker in lowered for marker in _MARKERS):
        return None
    text = _LEADING_COMMENTS.sub("", sql, count=1).strip().rstrip(";").strip()
    state = session._state
    if state.startup is None:
        state.startup = dict(session.settings)
    word = _FIRST_WORD.match(text)
    first = word.group(1).upper() if word else ""
    if first == "SET":
        return _command(settings.run_set(text, session.settings, state.startup))
    if first == "RESET":
        return _command(settings.run_reset(text, session.settings, state.startup))
    if first == "DISCARD":
        return _command(settings.run_discard(text, session.settings, state.startup))
    if first == "SHOW":
        name = settings.show_name(text)
        if name is None:
            return None
        columns, rows = settings.show(name, session.settings)
        return CatalogAnswer(columns, [ColumnType.TEXT] * len(columns), rows, "SHOW")
    if first not in ("SELECT", "WITH"):
        return None
    return _select(text, params, session)


def _command(tag: str) -> CatalogAnswer:
    return CatalogAnswer([], [], [], tag)


def _select(text: str, params: Sequence[Any], session: CatalogSession) -> CatalogAnswer | None:
    try:
        tree = translate.parse(text)
    except sqlglot.errors.SqlglotError:
        return None  # not PostgreSQL sqlglot reads: queryleaf's own syntax, or an error it reports
    reads_catalog = _reads_catalog(tree)
    if reads_catalog is None:
        return None
    snapshot = _snapshot(session, with_data=reads_catalog)
    lowered = text.lower()
    if "pg_attribute" in lowered or "information_schema.columns" in lowered:
        snapshot.ensure_columns(_named_relations(snapshot, tree, params))
    if "pg_settings" in lowered:
        snapshot.fill_settings(session.settings)
    sqlite_text = translate.to_sqlite(tree)
    # A parameter the caller has no value for yet (a Describe before Bind) is NULL: the
    # columns are right, the rows are not wanted.
    numbers = {
        int(p.this.name)
        for p in tree.find_all(exp.Parameter)
        if p.this is not None and p.this.name.isdigit()
    }
    bound = {
        f"p{n}": _bind(params[n - 1]) if n <= len(params) else None
        for n in numbers | set(range(1, len(params) + 1))
    }
    try:
        cursor = snapshot.sqlite.execute(sqlite_text, bound)
        rows = cursor.fetchall()
    except sqlite3.Error as exc:
        raise ExecutionError(
            f"catalog query not supported ({exc}); docs/connectors.md lists what is"
        ) from exc
    names = _output_names(tree) or [d[0] for d in cursor.description]
    if len(names) != len(cursor.description):
        names = [d[0] for d in cursor.description]
    rows = _arrays(_booleans(tree, rows))
    types = [infer_type(row[i] for row in rows) for i in range(len(names))]
    return CatalogAnswer(names, types, [tuple(row) for row in rows], f"SELECT {len(rows)}")


def _reads_catalog(tree: exp.Expr) -> bool | None:
    """True: the statement reads catalog tables; False: it only calls session functions; None:
    it is not a catalog statement (it reads a collection, or calls what queryleaf knows)."""
    if not isinstance(tree, exp.Query):
        return None
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    catalog = other = False
    for table in tree.find_all(exp.Table):
        if isinstance(table.this, exp.Func):  # a function in FROM: PostgreSQL's, or queryleaf's
            other = other or not _catalog_table_function(table.this)
            continue
        if not isinstance(table.this, exp.Identifier) or table.name in ctes:
            continue
        schema = table.db.lower()
        if schema == "information_schema" and table.name in tables.INFORMATION_SCHEMA:
            catalog = True
        elif schema in ("", "pg_catalog") and table.name in tables.CATALOG_NAMES:
            catalog = True
        else:
            other = True
    if other:
        return None
    if catalog:
        return True
    called = {_function_name(node) for node in tree.find_all(exp.Func)}
    called |= {c.name.lower() for c in tree.find_all(exp.Column) if c.name.lower() == "user"}
    return False if called & SESSION_FUNCTIONS else None


def _catalog_table_function(node: exp.Func) -> bool:
    """generate_series(), unnest(), string_to_array() in FROM (Grafana's pickers); anything
    else there is a queryleaf table function (EVENT_SUBSCRIPTIONS()...)."""
    if isinstance(node, exp.GenerateSeries | exp.Explode | exp.StringToArray):
        return True
    return isinstance(node, exp.Anonymous) and node.name.lower() in (
        "generate_series",
        "string_to_array",
    )


def _function_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return node.name.lower()
    for kind, name in translate.FUNCTIONS_BY_CLASS.items():
        if type(node) is kind:
            return name
    return node.sql_name().lower()


def _snapshot(session: CatalogSession, with_data: bool) -> Snapshot:
    state = session._state
    db = session.queryleaf.db
    if not with_data:
        if state.bare is None or state.bare.db.name != db.name:
            state.bare = Snapshot(db, session.settings, state.profiles, functions.register, False)
        return state.bare
    current = state.snapshot
    if (
        current is None
        or current.db.name != db.name
        or time.monotonic() - current.taken_at > SNAPSHOT_MAX_AGE_S
    ):
        current = Snapshot(db, session.settings, state.profiles, functions.register)
        state.snapshot = current
    return current


def _named_relations(snapshot: Snapshot, tree: exp.Expr, params: Sequence[Any]) -> set[int] | None:
    """The relations a query names by OID or name (psql's ``\\d orders`` reads its OID,
    SQLAlchemy's ``relname IN ($n)``), so only their columns are sampled; None: all of them."""
    values = {literal.name for literal in tree.find_all(exp.Literal)}
    values |= {str(_bind(p)) for p in params if p is not None}
    named = {r.oid for r in snapshot.relations if r.name in values or str(r.oid) in values}
    return named or None


def _bind(value: Any) -> Any:
    """A parameter as SQLite compares it with the catalog's columns: the wire server passes
    text, and an OID arrives as '16385'."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,18}", value):
        return int(value)
    return value


def _projections(tree: exp.Expr) -> list[exp.Expr]:
    while isinstance(tree, exp.SetOperation):
        tree = tree.this
    return list(tree.expressions) if isinstance(tree, exp.Select) else []


def _output_names(tree: exp.Expr) -> list[str] | None:
    """The column names PostgreSQL gives the select list (None when it holds a ``*``)."""
    names = []
    for node in _projections(tree):
        if isinstance(node, exp.Alias):
            names.append(node.alias)
            continue
        if isinstance(node, exp.Star) or (
            isinstance(node, exp.Column) and isinstance(node.this, exp.Star)
        ):  # * or t.*
            return None
        names.append(_output_name(node))
    return names


def _output_name(node: exp.Expr) -> str:
    if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Func):
        node = node.expression
    if isinstance(node, exp.Column):
        return node.name
    if isinstance(node, exp.Cast):
        inner = _output_name(node.this)
        return inner if inner != "?column?" else translate.type_name(node.to)
    if isinstance(node, exp.Func):
        return _function_name(node)
    return "?column?"


_BOOLEAN_EXPRESSIONS = (
    exp.Predicate,
    exp.Not,
    exp.Boolean,
    exp.And,
    exp.Or,
    exp.In,
    exp.Is,
    exp.LogicalAnd,
    exp.LogicalOr,
)


def _arrays(rows: list[Any]) -> list[Any]:
    """Arrays a function computed arrive marked (functions.ARRAY_MARK): send them as lists."""
    mark = functions.ARRAY_MARK
    return [
        tuple(json.loads(v[1:]) if isinstance(v, str) and v.startswith(mark) else v for v in row)
        for row in rows
    ]


def _booleans(tree: exp.Expr, rows: list[Any]) -> list[Any]:
    """SQLite computes a comparison as 0 or 1; PostgreSQL's client expects a boolean."""
    flags = []
    for node in _projections(tree):
        inner = node.unalias() if isinstance(node, exp.Alias) else node
        flags.append(isinstance(inner, _BOOLEAN_EXPRESSIONS))
    if not any(flags):
        return rows
    return [
        tuple(
            (bool(v) if v is not None else None) if i < len(flags) and flags[i] else v
            for i, v in enumerate(row)
        )
        for row in rows
    ]
