"""One snapshot of the catalog: an in-memory SQLite database of pg_catalog and
information_schema, filled from the MongoDB database of a queryleaf session.

Collections are tables (relkind ``r``), views are views (``v``), indexes are indexes (``i``)
with their keys as columns; ``_id_`` is each table's primary key. A table's columns are the
top-level fields of a sample of its documents (sampling.profile_fields, the sample DESCRIBE
reads), ``_id`` first, each typed by the values seen (column_types.unify over the BSON types:
an int and a double make a double precision column; a string and a number, text).
Only the schema ``public`` holds them. Sampling is the expensive part: columns are filled only
for a statement that reads them (``Snapshot.ensure_columns``).
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import time
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import pymongo.errors
from pymongo.database import Database

from queryleaf.column_types import ColumnType
from queryleaf.errors import QueryLeafError
from queryleaf.introspection import SERVER_DATABASES, table_columns, user_collections
from queryleaf.pg.catalog import pgtypes, tables
from queryleaf.pg.catalog.settings import DEFAULT_SETTINGS, canonical
from queryleaf.plan import primary_key_index

PG_CATALOG_NAMESPACE = 11
PUBLIC_NAMESPACE = 2200
INFORMATION_SCHEMA_NAMESPACE = 13000
OWNER_OID = 10
BTREE_AM = 403
FIRST_USER_OID = 16384
PROFILE_MAX_AGE_S = 60.0  # as long as a sample is trusted elsewhere (sampling.MAX_AGE_S)


@dataclass
class Column:
    name: str
    type: ColumnType
    not_null: bool = False


@dataclass
class Index:
    oid: int
    name: str
    keys: list[tuple[str, Any]]  # (field path, direction or kind) as listIndexes gives them
    unique: bool
    primary: bool
    constraint_oid: int | None = None


@dataclass
class Relation:
    oid: int
    name: str
    kind: str  # r, v
    indexes: list[Index] = field(default_factory=list)
    columns: list[Column] | None = None  # None until sampled

    def attnum(self, path: str) -> int:
        """The column number of a top-level field; 0 (an expression) otherwise."""
        for number, column in enumerate(self.columns or [], start=1):
            if column.name == path:
                return number
        return 0


def _bool(raw: bytes) -> bool:
    return raw not in (b"0", b"")


sqlite3.register_converter("PG_BOOL", _bool)
sqlite3.register_converter("PG_TEXTARRAY", json.loads)
sqlite3.register_converter(
    "PG_TEXTVECTOR", lambda raw: " ".join(str(item) for item in json.loads(raw))
)


class ProfileCache:
    """Column profiles per collection, reused for PROFILE_MAX_AGE_S (a snapshot lives seconds;
    psql's ``\\d`` and a dashboard's refresh should not sample every collection each time)."""

    def __init__(self) -> None:
        self._columns: dict[str, tuple[float, list[Column]]] = {}

    def columns(self, db: Database, name: str, is_view: bool) -> list[Column]:
        cached = self._columns.get(name)
        if cached is not None and time.monotonic() - cached[0] <= PROFILE_MAX_AGE_S:
            return cached[1]
        columns = sampled_columns(db, name, is_view)
        self._columns[name] = (time.monotonic(), columns)
        return columns


def sampled_columns(db: Database, name: str, is_view: bool) -> list[Column]:
    """The relation's columns as the SQLAlchemy dialect and DESCRIBE see them
    (introspection.table_columns: a CREATE TABLE's declared columns, then the sampled fields)."""
    try:
        columns = table_columns(db, name)
    except (pymongo.errors.PyMongoError, QueryLeafError):
        return []  # dropped meanwhile, or unreadable: a relation without columns
    return [Column(c.name, c.type, not_null=not c.nullable) for c in columns]


class Snapshot:
    def __init__(
        self,
        db: Database,
        settings: MutableMapping[str, str],
        profiles: ProfileCache,
        register_functions: Callable[[sqlite3.Connection, Snapshot], None],
        read_mongodb: bool = True,
    ) -> None:
        self.db = db
        self.settings = settings
        self.profiles = profiles
        self.taken_at = time.monotonic()
        self.user = settings.get("user") or "queryleaf"
        self._oids = itertools.count(FIRST_USER_OID)
        self.read_mongodb = read_mongodb
        self.relations = self._read_relations() if read_mongodb else []
        self.by_oid = {r.oid: r for r in self.relations}
        self.indexes = {i.oid: (r, i) for r in self.relations for i in r.indexes}
        self.constraints = {
            i.constraint_oid: (r, i) for r in self.relations for i in r.indexes if i.constraint_oid
        }
        self.sqlite = sqlite3.connect(
            ":memory:", detect_types=sqlite3.PARSE_DECLTYPES, check_same_thread=False
        )
        self.sqlite.execute("ATTACH ':memory:' AS pg_catalog")
        self.sqlite.execute("ATTACH ':memory:' AS information_schema")
        register_functions(self.sqlite, self)
        self._create()
        if read_mongodb:
            self._fill_fixed()
            self._fill_relations()

    # -- reading MongoDB -------------------------------------------------------------------

    def _read_relations(self) -> list[Relation]:
        relations = []
        for info in user_collections(self.db):
            is_view = info.get("type") == "view"
            relation = Relation(next(self._oids), info["name"], "v" if is_view else "r")
            if not is_view:
                relation.indexes = self._read_indexes(info["name"])
            relations.append(relation)
        return relations

    def _read_indexes(self, collection: str) -> list[Index]:
        try:
            specs = list(self.db[collection].list_indexes())
        except pymongo.errors.PyMongoError:
            return []
        # The primary key: a CREATE TABLE's (its <table>_pkey index), else _id.
        primary_name = primary_key_index(collection)
        if all(spec["name"] != primary_name for spec in specs):
            primary_name = "_id_"
        indexes = []
        for spec in specs:
            primary = spec["name"] == primary_name
            index = Index(
                next(self._oids),
                spec["name"],
                list(spec["key"].items()),
                unique=primary or bool(spec.get("unique", False)),
                primary=primary,
            )
            if primary:
                index.constraint_oid = next(self._oids)
            indexes.append(index)
        return indexes

    def ensure_columns(self, oids: set[int] | None = None) -> None:
        """Sample the columns of the relations ``oids`` (None: every one) into pg_attribute and
        information_schema.columns, unless this snapshot already holds them."""
        missing = [
            r for r in self.relations if r.columns is None and (oids is None or r.oid in oids)
        ]
        if not missing:
            return
        for relation in missing:
            relation.columns = self.profiles.columns(self.db, relation.name, relation.kind == "v")
        self._fill_columns(missing)

    # -- filling SQLite --------------------------------------------------------------------

    def _create(self) -> None:
        for name, columns in tables.PG_CATALOG.items():
            self.sqlite.execute(tables.ddl("pg_catalog", name, columns))
        for name, columns in tables.INFORMATION_SCHEMA.items():
            self.sqlite.execute(tables.ddl("information_schema", name, columns))
        for name, body in tables.PG_CATALOG_VIEWS.items():
            self.sqlite.execute(f'CREATE VIEW pg_catalog."{name}" AS {body}')

    def insert(self, table: str, row: Mapping[str, Any]) -> None:
        schema = "information_schema" if table in tables.INFORMATION_SCHEMA else "pg_catalog"
        names = ", ".join(f'"{k}"' for k in row)
        marks = ", ".join("?" for _ in row)
        values = [json.dumps(v) if isinstance(v, list) else v for v in row.values()]
        self.sqlite.execute(f'INSERT INTO {schema}."{table}" ({names}) VALUES ({marks})', values)

    def _fill_fixed(self) -> None:
        for oid, name in (
            (PG_CATALOG_NAMESPACE, "pg_catalog"),
            (PUBLIC_NAMESPACE, "public"),
            (INFORMATION_SCHEMA_NAMESPACE, "information_schema"),
        ):
            self.insert("pg_namespace", {"oid": oid, "nspname": name, "nspowner": OWNER_OID})
            self.insert(
                "schemata",
                {"catalog_name": self.db.name, "schema_name": name, "schema_owner": self.user},
            )
        for pg_type in pgtypes.PG_TYPES:
            self.insert(
                "pg_type",
                {
                    "oid": pg_type.oid,
                    "typname": pg_type.name,
                    "typnamespace": PG_CATALOG_NAMESPACE,
                    "typowner": OWNER_OID,
                    "typlen": pg_type.length,
                    "typbyval": pg_type.length in (1, 2, 4, 8),
                    "typtype": "b",
                    "typcategory": pg_type.category,
                    "typispreferred": False,
                    "typisdefined": True,
                    "typdelim": ",",
                    "typrelid": 0,
                    "typelem": 0,
                    "typarray": pg_type.array_oid,
                    "typnotnull": False,
                    "typbasetype": 0,
                    "typtypmod": -1,
                    "typndims": 0,
                    "typcollation": 100 if pg_type.category == "S" else 0,
                },
            )
        self.insert("pg_am", {"oid": BTREE_AM, "amname": "btree", "amtype": "i"})
        self.insert(
            "pg_roles",
            {
                "oid": OWNER_OID,
                "rolname": self.user,
                "rolsuper": False,
                "rolinherit": True,
                "rolcreaterole": False,
                "rolcreatedb": False,
                "rolcanlogin": True,
                "rolreplication": False,
                "rolconnlimit": -1,
                "rolbypassrls": False,
            },
        )
        self.insert(
            "pg_collation",
            {"oid": 100, "collname": "default", "collnamespace": PG_CATALOG_NAMESPACE},
        )
        for number, name in enumerate(self._database_names(), start=1):
            self.insert(
                "pg_database",
                {
                    "oid": number,
                    "datname": name,
                    "datdba": OWNER_OID,
                    "encoding": 6,  # UTF8
                    "datlocprovider": "c",
                    "datistemplate": False,
                    "datallowconn": True,
                    "datconnlimit": -1,
                    "dattablespace": 1663,
                    "datcollate": "C.UTF-8",
                    "datctype": "C.UTF-8",
                },
            )
        for name, oid in tables.CATALOG_TABLE_OIDS.items():
            self._insert_class(oid, name, PG_CATALOG_NAMESPACE, "r")

    def fill_settings(self, settings: Mapping[str, str]) -> None:
        self.sqlite.execute('DELETE FROM pg_catalog."pg_settings"')
        values = {canonical(k): v for k, v in DEFAULT_SETTINGS.items()}
        values.update({canonical(k): v for k, v in settings.items()})
        for name, value in sorted(values.items()):
            self.insert(
                "pg_settings",
                {
                    "name": name,
                    "setting": value,
                    "context": "user",
                    "vartype": "string",
                    "source": "session",
                    "boot_val": DEFAULT_SETTINGS.get(name, value),
                    "reset_val": value,
                    "pending_restart": False,
                },
            )

    def _database_names(self) -> list[str]:
        try:
            names = sorted(self.db.client.list_database_names())
        except pymongo.errors.PyMongoError:
            names = []
        names = [n for n in names if n not in SERVER_DATABASES]
        return names if self.db.name in names else sorted([*names, self.db.name])

    def _insert_class(self, oid: int, name: str, namespace: int, kind: str, **extra: Any) -> None:
        row = {
            "oid": oid,
            "relname": name,
            "relnamespace": namespace,
            "reltype": 0,
            "reloftype": 0,
            "relowner": OWNER_OID,
            "relam": BTREE_AM if kind == "i" else (2 if kind == "r" else 0),
            "relfilenode": oid,
            "reltablespace": 0,
            "relpages": 0,
            "reltuples": -1,
            "relallvisible": 0,
            "reltoastrelid": 0,
            "relhasindex": False,
            "relisshared": False,
            "relpersistence": "p",
            "relkind": kind,
            "relnatts": 0,
            "relchecks": 0,
            "relhasrules": False,
            "relhastriggers": False,
            "relhassubclass": False,
            "relrowsecurity": False,
            "relforcerowsecurity": False,
            "relispopulated": True,
            "relreplident": "d" if kind == "r" else "n",
            "relispartition": False,
            "relrewrite": 0,
            "relfrozenxid": 0,
            "relminmxid": 0,
        }
        row.update(extra)
        self.insert("pg_class", row)

    def _fill_relations(self) -> None:
        self.insert("pg_am", {"oid": 2, "amname": "heap", "amtype": "t"})
        for relation in self.relations:
            self._insert_class(
                relation.oid,
                relation.name,
                PUBLIC_NAMESPACE,
                relation.kind,
                relhasindex=bool(relation.indexes),
            )
            self.insert(
                "tables",
                {
                    "table_catalog": self.db.name,
                    "table_schema": "public",
                    "table_name": relation.name,
                    "table_type": "VIEW" if relation.kind == "v" else "BASE TABLE",
                    "is_insertable_into": "NO" if relation.kind == "v" else "YES",
                    "is_typed": "NO",
                },
            )
            if relation.kind == "v":
                self.insert(
                    "views",
                    {
                        "table_catalog": self.db.name,
                        "table_schema": "public",
                        "table_name": relation.name,
                    },
                )
            for index in relation.indexes:
                self._insert_class(
                    index.oid, index.name, PUBLIC_NAMESPACE, "i", relnatts=len(index.keys)
                )
        self._fill_indexes()

    def _fill_indexes(self) -> None:
        self.sqlite.execute('DELETE FROM pg_catalog."pg_index"')
        self.sqlite.execute('DELETE FROM pg_catalog."pg_constraint"')
        for relation in self.relations:
            for index in relation.indexes:
                attnums = [relation.attnum(path) for path, _ in index.keys]
                self.insert(
                    "pg_index",
                    {
                        "indexrelid": index.oid,
                        "indrelid": relation.oid,
                        "indnatts": len(index.keys),
                        "indnkeyatts": len(index.keys),
                        "indisunique": index.unique,
                        "indnullsnotdistinct": False,
                        "indisprimary": index.primary,
                        "indisexclusion": False,
                        "indimmediate": True,
                        "indisclustered": False,
                        "indisvalid": True,
                        "indcheckxmin": False,
                        "indisready": True,
                        "indislive": True,
                        "indisreplident": False,
                        "indkey": attnums,
                        "indcollation": [0] * len(attnums),
                        "indclass": [0] * len(attnums),
                        "indoption": [1 if direction == -1 else 0 for _, direction in index.keys],
                    },
                )
                if index.constraint_oid is not None:
                    self.insert(
                        "pg_constraint",
                        {
                            "oid": index.constraint_oid,
                            "conname": index.name,
                            "connamespace": PUBLIC_NAMESPACE,
                            "contype": "p",
                            "condeferrable": False,
                            "condeferred": False,
                            "convalidated": True,
                            "conrelid": relation.oid,
                            "contypid": 0,
                            "conindid": index.oid,
                            "conparentid": 0,
                            "confrelid": 0,
                            "conislocal": True,
                            "coninhcount": 0,
                            "connoinherit": True,
                            "conkey": attnums,
                        },
                    )

    def _fill_columns(self, relations: list[Relation]) -> None:
        for relation in relations:
            columns = relation.columns or []
            self.sqlite.execute(
                'UPDATE pg_catalog."pg_class" SET relnatts = ? WHERE oid = ?',
                (len(columns), relation.oid),
            )
            for number, column in enumerate(columns, start=1):
                pg_type = pgtypes.PG_TYPE_OF_COLUMN[column.type]
                self.insert(
                    "pg_attribute",
                    {
                        "attrelid": relation.oid,
                        "attname": column.name,
                        "atttypid": pg_type.oid,
                        "attstattarget": -1,
                        "attlen": pg_type.length,
                        "attnum": number,
                        "attndims": 0,
                        "attcacheoff": -1,
                        "atttypmod": -1,
                        "attbyval": pg_type.length in (1, 2, 4, 8),
                        "attalign": "i",
                        "attstorage": "x" if pg_type.length == -1 else "p",
                        "attcompression": "",
                        "attnotnull": column.not_null,
                        "atthasdef": False,
                        "atthasmissing": False,
                        "attidentity": "",
                        "attgenerated": "",
                        "attisdropped": False,
                        "attislocal": True,
                        "attinhcount": 0,
                        "attcollation": 100 if pg_type.category == "S" else 0,
                    },
                )
                self.insert(
                    "columns",
                    {
                        "table_catalog": self.db.name,
                        "table_schema": "public",
                        "table_name": relation.name,
                        "column_name": column.name,
                        "ordinal_position": number,
                        "is_nullable": "NO" if column.not_null else "YES",
                        "data_type": pg_type.formatted,
                        "udt_catalog": self.db.name,
                        "udt_schema": "pg_catalog",
                        "udt_name": pg_type.name,
                        "is_identity": "NO",
                        "is_generated": "NEVER",
                        "is_updatable": "NO" if relation.kind == "v" else "YES",
                    },
                )
        self._fill_indexes()  # index keys become column numbers once the columns are known
