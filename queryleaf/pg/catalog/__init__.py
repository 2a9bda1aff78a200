"""PLACEHOLDER of the pgcatalog branch's module (issue 12): only what psql -c and psycopg need
to connect (SET, SHOW, version(), current_database(), current_schema()). The real catalog
(pg_catalog, information_schema, psql's \\d...) replaces this file when that branch is merged;
the contract (answer, CatalogSession, CatalogAnswer) is the same."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from queryleaf.api import QueryLeaf
from queryleaf.column_types import ColumnType

SERVER_VERSION = "16.0"


@dataclass
class CatalogSession:
    queryleaf: QueryLeaf
    settings: dict[str, str] = field(default_factory=dict)


@dataclass
class CatalogAnswer:
    columns: list[str]
    types: list[ColumnType]
    rows: list[tuple]
    tag: str


_SET = re.compile(
    r"^\s*SET\s+(?:SESSION\s+|LOCAL\s+)?(\w+)\s*(?:=|\bTO\b)\s*(.+?)\s*;?\s*$", re.I | re.S
)
_SHOW = re.compile(r"^\s*SHOW\s+(\w+)\s*;?\s*$", re.I)
_FUNCTION = re.compile(
    r"^\s*SELECT\s+(?:pg_catalog\.)?(version|current_database|current_schema)\s*\(\s*\)\s*;?\s*$",
    re.I,
)


def answer(sql: str, params: Sequence[Any], session: CatalogSession) -> CatalogAnswer | None:
    if m := _SET.match(sql):
        session.settings[m.group(1).lower()] = m.group(2).strip("'\"")
        return CatalogAnswer([], [], [], "SET")
    if (m := _SHOW.match(sql)) and m.group(1).lower() not in ("tables", "views", "databases"):
        name = m.group(1).lower()
        value = session.settings.get(name, SERVER_VERSION if name == "server_version" else "")
        return CatalogAnswer([name], [ColumnType.TEXT], [(value,)], "SHOW")
    if m := _FUNCTION.match(sql):
        name = m.group(1).lower()
        value = {
            "version": f"PostgreSQL {SERVER_VERSION} (queryleaf)",
            "current_database": session.queryleaf.database_name,
            "current_schema": "public",
        }[name]
        return CatalogAnswer([name], [ColumnType.TEXT], [(value,)], "SELECT 1")
    return None
