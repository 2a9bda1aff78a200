"""The statements that describe the database: SHOW TABLES / VIEWS / DATABASES / INDEXES,
DESCRIBE (SHOW COLUMNS FROM) and USE.

They are planned here (registered with the planner on import, as the event statements are) into
plans that run themselves with documented read-only commands: ``listCollections``,
``listDatabases``, ``listIndexes``, ``count`` and one ``$sample`` aggregation. USE is planned into
``UseDatabase``, which the connection (QueryLeaf) carries out, since it owns the database.

MongoDB keeps no schema, so DESCRIBE reports the fields of a sample of the documents (see
sampling.py): each field path with the BSON types seen and the share of sampled documents that
hold it. Other packages add what they know of a collection through ``register_describer`` (the
event runtime lists the subscriptions that watch it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pymongo.client_session import ClientSession
from pymongo.database import Database

from queryleaf import plan
from queryleaf.column_types import ColumnType, type_of_bson_names
from queryleaf.errors import ErrorCode, ExecutionError, PlanningError
from queryleaf.planner.params import Bindings
from queryleaf.planner.sources import reserved
from queryleaf.planner.statements import register_statement
from queryleaf.result import Result
from queryleaf.sampling import SAMPLE_SIZE, FieldProfile, profile_fields
from queryleaf.sql import ast

# A describer adds lines about one collection to DESCRIBE's footer (e.g. "watched by: ...").
Describer = Callable[[Database, str], list[str]]
_DESCRIBERS: list[Describer] = []


# MongoDB's own databases, not a user's: schemas the PostgreSQL catalog and the SQLAlchemy
# dialect do not list.
SERVER_DATABASES = frozenset({"admin", "local", "config"})


def register_describer(describer: Describer) -> None:
    _DESCRIBERS.append(describer)


def user_collections(db: Database) -> list[dict[str, Any]]:
    """The collections and views a user reads with SQL (not ``system.*``, not queryleaf's own
    system collections), sorted by name, as ``listCollections`` describes them."""
    infos = [
        dict(info)
        for info in db.list_collections()
        if not info["name"].startswith("system.") and reserved(info["name"]) is None
    ]
    return sorted(infos, key=lambda info: info["name"])


def _list(name: str, columns: list[str], rows: list[dict[str, Any]]) -> Result:
    return Result(columns=columns, rows=rows, rowcount=len(rows), statement=name)


@dataclass(frozen=True)
class ShowTables(plan.SelfRunning):
    views_only: bool = False

    def commands(self):
        return [{"listCollections": 1, "nameOnly": False}]

    def run(self, db: Database, session: ClientSession | None = None) -> Result:
        infos = user_collections(db)
        if not self.views_only:
            rows = [{"name": i["name"], "type": i.get("type", "collection")} for i in infos]
            return _list("SHOW TABLES", ["name", "type"], rows)
        rows = [
            {
                "name": i["name"],
                "view_on": i.get("options", {}).get("viewOn"),
                "pipeline": i.get("options", {}).get("pipeline"),
            }
            for i in infos
            if i.get("type") == "view"
        ]
        return _list("SHOW VIEWS", ["name", "view_on", "pipeline"], rows)


@dataclass(frozen=True)
class ShowDatabases(plan.SelfRunning):
    def commands(self):
        return [{"listDatabases": 1}]

    def run(self, db: Database, session: ClientSession | None = None) -> Result:
        rows = [
            {
                "name": info["name"],
                "size_on_disk": info.get("sizeOnDisk"),
                "current": info["name"] == db.name,
            }
            for info in sorted(db.client.list_databases(), key=lambda info: info["name"])
        ]
        return _list("SHOW DATABASES", ["name", "size_on_disk", "current"], rows)


def _index_rows(db: Database, collection: str) -> list[dict[str, Any]]:
    rows = []
    for index in db[collection].list_indexes():
        keys = ", ".join(
            name if direction == 1 else f"{name} {direction}"
            for name, direction in index["key"].items()
        )
        rows.append(
            {
                "table": collection,
                "name": index["name"],
                "keys": keys,
                "unique": bool(index.get("unique", False)),
            }
        )
    return rows


def _missing(name: str, db: Database) -> ExecutionError:
    return ExecutionError(
        f"unknown table {name}: no collection or view of that name in database {db.name}",
        error_code=ErrorCode.UNKNOWN_TABLE,
    )


def _info(db: Database, name: str) -> dict[str, Any]:
    info = next(iter(db.list_collections(filter={"name": name})), None)
    if info is None or reserved(name) is not None:
        raise _missing(name, db)
    return dict(info)


@dataclass(frozen=True)
class ShowIndexes(plan.SelfRunning):
    table: str | None = None

    def commands(self):
        names = [self.table] if self.table is not None else ["<each collection>"]
        return [{"listIndexes": name} for name in names]

    def run(self, db: Database, session: ClientSession | None = None) -> Result:
        if self.table is not None:
            if _info(db, self.table).get("type") == "view":
                tables = []
            else:
                tables = [self.table]
        else:
            tables = [i["name"] for i in user_collections(db) if i.get("type") != "view"]
        rows = [row for table in tables for row in _index_rows(db, table)]
        return _list("SHOW INDEXES", ["table", "name", "keys", "unique"], rows)


@dataclass(frozen=True)
class Describe(plan.SelfRunning):
    table: str

    def commands(self):
        return [
            {"listCollections": 1, "filter": {"name": self.table}},
            {"count": self.table},
            {"aggregate": self.table, "pipeline": [{"$sample": {"size": SAMPLE_SIZE}}]},
            {"listIndexes": self.table},
        ]

    def run(self, db: Database, session: ClientSession | None = None) -> Result:
        info = _info(db, self.table)
        is_view = info.get("type") == "view"
        collection = db[self.table]
        # A collection's count is its metadata; a view has none and is counted by reading it.
        count = collection.count_documents({}) if is_view else collection.estimated_document_count()
        fields = profile_fields(collection)
        rows = [_field_row(f, fields.documents) for f in fields.fields]
        footer = [_summary(self.table, info, count, fields.documents)]
        if not is_view:
            if declared := _declared_columns(info):
                footer.append("declared columns (CREATE TABLE): " + declared)
            indexes = _index_rows(db, self.table)
            footer.append("indexes: " + "; ".join(f"{i['name']} ({i['keys']})" for i in indexes))
        for describer in _DESCRIBERS:
            footer.extend(describer(db, self.table))
        result = _list("DESCRIBE", ["field", "types", "present"], rows)
        result.message = "\n".join(footer)
        return result


def _declared_columns(info: dict[str, Any]) -> str:
    """``id BIGINT NOT NULL, name VARCHAR(20)``: the columns a CREATE TABLE validator declares
    (empty for a collection without one)."""
    schema = info.get("options", {}).get("validator", {}).get("$jsonSchema", {})
    required = set(schema.get("required", []))
    parts = []
    for column, rule in (schema.get("properties") or {}).items():
        description = rule.get("description") if isinstance(rule, dict) else None
        if isinstance(description, str):
            parts.append(f"{column} {description}{' NOT NULL' if column in required else ''}")
    return ", ".join(parts)


@dataclass(frozen=True)
class TableColumn:
    name: str
    type: ColumnType
    nullable: bool
    # The type CREATE TABLE declared (``VARCHAR(20)``: the validator rule's description); None
    # for a field only seen in the sampled documents
    declared: str | None = None


def table_columns(db: Database, name: str) -> list[TableColumn]:
    """The top-level columns of a collection or view: those its validator declares (CREATE
    TABLE), in their order, then the other fields of the sample DESCRIBE reads, ``_id`` first."""
    info = _info(db, name)
    schema = info.get("options", {}).get("validator", {}).get("$jsonSchema", {})
    required = set(schema.get("required", []))
    columns: dict[str, TableColumn] = {}
    for column, rule in (schema.get("properties") or {}).items():
        types = rule.get("bsonType", []) if isinstance(rule, dict) else []
        types = [types] if isinstance(types, str) else list(types)
        nullable = column not in required and (not types or "null" in types)
        kind = type_of_bson_names(t for t in types if t != "null")
        description = rule.get("description") if isinstance(rule, dict) else None
        declared = description if isinstance(description, str) else None
        columns[column] = TableColumn(column, kind, nullable, declared)
    for field in profile_fields(db[name]).fields:
        if "." in field.path:
            continue
        if field.path not in columns:
            nullable = field.path != "_id"
            kind = type_of_bson_names(field.types)
            columns[field.path] = TableColumn(field.path, kind, nullable)
    return sorted(columns.values(), key=lambda c: c.name != "_id")


def _field_row(field: FieldProfile, documents: int) -> dict[str, Any]:
    share = 100 * field.documents / documents if documents else 0
    present = f"{share:.0f}%" if share >= 1 or share == 0 else "<1%"
    return {"field": field.path, "types": ", ".join(field.types), "present": present}


def _summary(name: str, info: dict[str, Any], count: int, sampled: int) -> str:
    kind = "view" if info.get("type") == "view" else "collection"
    head = f"{kind} {name}"
    if kind == "view":
        head += f" on {info.get('options', {}).get('viewOn')}"
    noun = "document" if count == 1 else "documents"
    sample = "all sampled" if sampled >= count else f"fields from a sample of {sampled}"
    return f"{head}: {count} {noun} ({sample})"


@dataclass(frozen=True)
class UseDatabase(plan.Plan):
    """USE: run by the connection (QueryLeaf), which switches its database; sends nothing."""

    database: str

    def commands(self):
        return [{"$comment": f"the connection's database becomes {self.database}"}]


# The characters MongoDB refuses in a database name (on any platform), and its length limit.
_BAD_DATABASE_CHARACTERS = '/\\. "$\0'
MAX_DATABASE_NAME_BYTES = 63


def _plan_use(statement: ast.Use, bindings: Bindings) -> UseDatabase:
    name = statement.database
    bad = sorted({c for c in name if c in _BAD_DATABASE_CHARACTERS})
    if not name or bad or len(name.encode()) > MAX_DATABASE_NAME_BYTES:
        shown = ", ".join(repr(c) for c in bad)
        why = f"it holds {shown}" if bad else "a name is 1 to 63 bytes"
        raise PlanningError(f"USE: {name!r} is not a valid database name ({why})", statement.pos)
    return UseDatabase(name)


register_statement(ast.ShowTables, lambda s, bindings: ShowTables())
register_statement(ast.ShowViews, lambda s, bindings: ShowTables(views_only=True))
register_statement(ast.ShowDatabases, lambda s, bindings: ShowDatabases())
register_statement(ast.ShowIndexes, lambda s, bindings: ShowIndexes(s.table))
register_statement(ast.Describe, lambda s, bindings: Describe(s.table))
register_statement(ast.Use, _plan_use)
