"""PostgreSQL's functions that catalog queries call, as SQLite functions over one snapshot.

Each returns what PostgreSQL would for the objects queryleaf has: no column defaults, no
comments, no sequences, one user who may do anything. Arrays are JSON texts (see tables.py).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import TYPE_CHECKING, Any, overload

from queryleaf.pg.catalog import pgtypes, tables
from queryleaf.pg.catalog.settings import SERVER_VERSION, assign, lookup
from queryleaf.pg.catalog.snapshot import (
    INFORMATION_SCHEMA_NAMESPACE,
    PG_CATALOG_NAMESPACE,
    PUBLIC_NAMESPACE,
)

if TYPE_CHECKING:
    from queryleaf.pg.catalog.snapshot import Snapshot


def version_string() -> str:
    try:
        ours = package_version("queryleaf")
    except PackageNotFoundError:
        ours = "dev"
    return f"PostgreSQL {SERVER_VERSION} (queryleaf {ours} on MongoDB), 64-bit"


# Marks an array a function computed (array_agg, ARRAY[...]), so the answer sends it as a
# list: a stored array column is read back as a list by its declared type (tables.py).
ARRAY_MARK = "\x1e"


def marked_array(items: list[Any]) -> str:
    return ARRAY_MARK + json.dumps(items)


def _array(value: Any) -> list[Any] | None:
    if value is None:
        return None
    if isinstance(value, str) and value.startswith(ARRAY_MARK):
        value = value[1:]
    if isinstance(value, str) and value.startswith("["):
        loaded = json.loads(value)
        return loaded if isinstance(loaded, list) else [loaded]
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return [item for item in value[1:-1].split(",") if item]
    return [value]


def _truthy(value: Any) -> bool:
    return value not in (None, 0, "0", "f", "false", "off", False)


@overload
def quote_ident(name: str) -> str: ...
@overload
def quote_ident(name: None) -> None: ...
def quote_ident(name: str | None) -> str | None:
    if name is None:
        return None
    if re.fullmatch(r"[a-z_][a-z0-9_$]*", name):
        return name
    return '"' + name.replace('"', '""') + '"'


class _ArrayAgg:
    """array_agg(value ORDER BY key): SQLite 3.40 has no ordered aggregates."""

    def __init__(self) -> None:
        self.items: list[tuple[Any, Any]] = []

    def step(self, value: Any, key: Any) -> None:
        self.items.append((key, value))

    def finalize(self) -> str:
        ordered = sorted(
            self.items, key=lambda kv: (kv[0] is None, kv[0] if kv[0] is not None else 0)
        )
        return marked_array([value for _, value in ordered])


class _BoolAnd:
    def __init__(self) -> None:
        self.result: bool | None = None

    def step(self, value: Any) -> None:
        if value is not None:
            self.result = (self.result is not False) and _truthy(value)

    def finalize(self) -> bool | None:
        return self.result


class _BoolOr(_BoolAnd):
    def step(self, value: Any) -> None:
        if value is not None:
            self.result = bool(self.result) or _truthy(value)


def register(sqlite: sqlite3.Connection, snapshot: Snapshot) -> None:
    settings = snapshot.settings

    def regclass(value: Any) -> Any:
        """``'name'::regclass`` is the relation's OID; ``oid::regclass`` prints its name."""
        if value is None:
            return None
        if isinstance(value, str) and not value.isdigit():
            name = value.split(".")[-1].strip('"')
            if name in tables.CATALOG_TABLE_OIDS:
                return tables.CATALOG_TABLE_OIDS[name]
            found = next((r.oid for r in snapshot.relations if r.name == name), None)
            return found
        oid = int(value)
        if oid in snapshot.by_oid:
            return quote_ident(snapshot.by_oid[oid].name)
        if oid in snapshot.indexes:
            return quote_ident(snapshot.indexes[oid][1].name)
        names = {v: k for k, v in tables.CATALOG_TABLE_OIDS.items()}
        return names.get(oid, str(oid))

    def regtype(value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str) and not value.isdigit():
            return to_regtype(value)
        return pgtypes.format_type(int(value))

    def to_regtype(name: str | None) -> int | None:
        if name is None:
            return None
        found = pgtypes.BY_NAME.get(name.lower().removeprefix("pg_catalog."))
        return found.oid if found else None

    def regnamespace(value: Any) -> Any:
        names = {
            PG_CATALOG_NAMESPACE: "pg_catalog",
            PUBLIC_NAMESPACE: "public",
            INFORMATION_SCHEMA_NAMESPACE: "information_schema",
        }
        if isinstance(value, str) and not value.isdigit():
            return {v: k for k, v in names.items()}.get(value)
        return None if value is None else names.get(int(value), str(value))

    def table_is_visible(oid: Any) -> bool:
        return oid is not None and (
            int(oid) in snapshot.by_oid
            or int(oid) in snapshot.indexes
            or int(oid) in tables.CATALOG_TABLE_OIDS.values()
        )

    def indexdef(oid: Any, column: Any = 0, pretty: Any = None) -> str | None:
        if oid is None or int(oid) not in snapshot.indexes:
            return None
        relation, index = snapshot.indexes[int(oid)]
        keys = [
            quote_ident(path) + (" DESC" if direction == -1 else "")
            for path, direction in index.keys
        ]
        if column and int(column) > 0:
            return index.keys[int(column) - 1][0] if int(column) <= len(keys) else ""
        unique = "UNIQUE " if index.unique else ""
        return (
            f"CREATE {unique}INDEX {quote_ident(index.name)} ON public.{quote_ident(relation.name)}"
            f" USING btree ({', '.join(keys)})"
        )

    def constraintdef(oid: Any, pretty: Any = None) -> str | None:
        if oid is None or int(oid) not in snapshot.constraints:
            return None
        _, index = snapshot.constraints[int(oid)]
        return f"PRIMARY KEY ({', '.join(quote_ident(path) for path, _ in index.keys)})"

    def array_to_string(value: Any, separator: str, null_text: str | None = None) -> str | None:
        items = _array(value)
        if items is None:
            return None
        shown = [str(i) if i is not None else null_text for i in items]
        return separator.join(s for s in shown if s is not None)

    def array_upper(value: Any, dimension: Any = 1) -> int | None:
        items = _array(value)
        return len(items) if items else None

    def array_lower(value: Any, dimension: Any = 1) -> int | None:
        return 1 if _array(value) else None

    def subscript(value: Any, index: Any) -> Any:
        items = _array(value)
        if items is None or index is None or not 1 <= int(index) <= len(items):
            return None
        return items[int(index) - 1]

    def series(start: Any, stop: Any, step: Any = 1) -> str:
        if start is None or stop is None:
            return "[]"
        return json.dumps(list(range(int(start), int(stop) + 1, int(step or 1))))

    def regexp(pattern: str | None, value: Any) -> bool | None:
        if pattern is None or value is None:
            return None
        return re.search(pattern, str(value)) is not None

    def regexp_i(value: Any, pattern: str | None) -> bool | None:
        if pattern is None or value is None:
            return None
        return re.search(pattern, str(value), re.I) is not None

    def string_to_array(text: str | None, separator: str | None, null: Any = None) -> Any:
        if text is None:
            return None
        items = list(text) if separator is None else text.split(separator) if text else []
        return marked_array([None if item == null else item for item in items])

    def parse_ident(text: str | None, strict: Any = True) -> Any:
        if text is None:
            return None
        parts = re.findall(r'"((?:[^"]|"")*)"|([^.]+)', text)
        return marked_array([q.replace('""', '"') if q else bare.lower() for q, bare in parts])

    def set_config(name: str, value: str, is_local: Any = False) -> str:
        assign(settings, name, value)
        return value

    def current_setting(name: str, missing_ok: Any = False) -> str | None:
        return lookup(settings, name)

    def user() -> str:
        return snapshot.user

    functions: dict[str, tuple[int, Callable[..., Any]]] = {
        "version": (0, version_string),
        "current_database": (0, lambda: snapshot.db.name),
        "current_catalog": (0, lambda: snapshot.db.name),
        "current_schema": (0, lambda: "public"),
        "current_schemas": (
            -1,
            lambda *args: marked_array(
                ["pg_catalog", "public"] if args and _truthy(args[0]) else ["public"]
            ),
        ),
        "current_user": (0, user),
        "session_user": (0, user),
        "user": (0, user),
        "current_role": (0, user),
        "current_setting": (-1, current_setting),
        "set_config": (3, set_config),
        "pg_backend_pid": (0, lambda: os.getpid() % 100_000 * 10_000 + id(settings) % 10_000),
        "pg_is_in_recovery": (0, lambda: False),
        "inet_server_addr": (0, lambda: None),
        "inet_server_port": (0, lambda: None),
        "inet_client_addr": (0, lambda: None),
        "pg_postmaster_start_time": (0, lambda: None),
        "pg_get_userbyid": (1, lambda oid: snapshot.user),
        "pg_encoding_to_char": (1, lambda encoding: "UTF8"),
        "pg_char_to_encoding": (1, lambda name: 6),
        "pg_table_is_visible": (1, table_is_visible),
        "pg_type_is_visible": (1, lambda oid: True),
        "pg_function_is_visible": (1, lambda oid: True),
        "pg_collation_is_visible": (1, lambda oid: True),
        "pg_relation_is_publishable": (1, lambda oid: False),
        "format_type": (2, pgtypes.format_type),
        "pg_get_expr": (-1, lambda expr, relation=None, pretty=None: expr),
        "pg_get_indexdef": (-1, indexdef),
        "pg_get_constraintdef": (-1, constraintdef),
        "pg_get_serial_sequence": (2, lambda table, column: None),
        "pg_get_statisticsobjdef_columns": (1, lambda oid: None),
        "pg_get_viewdef": (-1, lambda *args: None),
        "pg_get_partkeydef": (1, lambda oid: None),
        "pg_get_function_result": (1, lambda oid: None),
        "pg_get_function_arguments": (1, lambda oid: None),
        "obj_description": (-1, lambda *args: None),
        "col_description": (2, lambda *args: None),
        "shobj_description": (2, lambda *args: None),
        "has_table_privilege": (-1, lambda *args: True),
        "has_schema_privilege": (-1, lambda *args: True),
        "has_database_privilege": (-1, lambda *args: True),
        "has_column_privilege": (-1, lambda *args: True),
        "pg_has_role": (-1, lambda *args: True),
        "pg_database_size": (1, lambda oid: 0),
        "pg_relation_size": (-1, lambda *args: 0),
        "pg_total_relation_size": (1, lambda oid: 0),
        "pg_table_size": (1, lambda oid: 0),
        "pg_indexes_size": (1, lambda oid: 0),
        "pg_size_pretty": (1, lambda size: f"{int(size or 0)} bytes"),
        "quote_ident": (1, quote_ident),
        "regclass": (1, regclass),
        "to_regclass": (1, lambda name: regclass(name)),
        "regtype": (1, regtype),
        "to_regtype": (1, to_regtype),
        "regnamespace": (1, regnamespace),
        "pg_bool": (1, lambda v: None if v is None else _truthy(v)),
        "array_to_string": (-1, array_to_string),
        "array_upper": (-1, array_upper),
        "array_lower": (-1, array_lower),
        "array_length": (-1, array_upper),
        "cardinality": (1, lambda v: len(_array(v) or [])),
        "pg_subscript": (2, subscript),
        "string_to_array": (-1, string_to_array),
        "parse_ident": (-1, parse_ident),
        "pg_array": (-1, lambda *items: marked_array(list(items))),
        "pg_json": (1, lambda v: None if _array(v) is None else json.dumps(_array(v))),
        "pg_series": (-1, series),
        "regexp": (2, regexp),
        "pg_regexp_i": (2, regexp_i),
        "json_build_object": (
            -1,
            lambda *kv: json.dumps(dict(zip(kv[::2], kv[1::2], strict=False))),
        ),
    }
    for name, (arity, function) in functions.items():
        sqlite.create_function(name, arity, function)
    sqlite.create_aggregate("pg_array_agg", 2, _ArrayAgg)  # type: ignore[arg-type]
    sqlite.create_aggregate("bool_and", 1, _BoolAnd)  # type: ignore[arg-type]
    sqlite.create_aggregate("bool_or", 1, _BoolOr)  # type: ignore[arg-type]
