"""The ``queryleaf://`` SQLAlchemy dialect: SQLAlchemy Core and pandas over queryleaf.dbapi.

    create_engine("queryleaf:///")                           # the embedded server, database "queryleaf"
    create_engine("queryleaf:///shop?data_dir=/srv/ql")      # embedded, another data directory
    create_engine("queryleaf://user:pw@db1:27017/shop?replicaSet=rs0")   # a MongoDB server

A URL with a host becomes the MongoDB URI ``mongodb://user:pw@host:port/shop?options`` (every
query option passed through, so ``authSource`` defaults to the database as in MongoDB's URIs);
without one the embedded server runs. Statements compile to queryleaf SQL (compiler.py).

Transactions: a connection commits every statement on its own (isolation level
``AUTOCOMMIT``, the default), because DDL (CREATE/DROP TABLE), which pandas and migrations mix
with writes, cannot run inside a MongoDB transaction. ``isolation_level="REPEATABLE READ"``
(snapshot isolation, as in PostgreSQL) (on the
engine or ``connection.execution_options``) runs each SQLAlchemy transaction as a MongoDB
transaction that ``commit()`` / ``rollback()`` ends (docs/connectors.md).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from sqlalchemy import exc
from sqlalchemy.engine import default, reflection
from sqlalchemy.engine.interfaces import (
    IsolationLevel,
    ReflectedCheckConstraint,
    ReflectedColumn,
    ReflectedForeignKeyConstraint,
    ReflectedIndex,
    ReflectedPrimaryKeyConstraint,
    ReflectedTableComment,
    ReflectedUniqueConstraint,
)
from sqlalchemy.engine.url import URL

from queryleaf import dbapi as queryleaf_dbapi
from queryleaf.errors import ServerUnreachable
from queryleaf.introspection import SERVER_DATABASES, TableColumn, table_columns, user_collections
from queryleaf.mongosh import to_mongosh
from queryleaf.plan import primary_key_index
from queryleaf.planner.sources import reserved
from queryleaf.sqlalchemy.compiler import (
    REFLECTED_TYPES,
    QueryLeafCompiler,
    QueryLeafDDLCompiler,
    QueryLeafIdentifierPreparer,
    QueryLeafTypeCompiler,
)
from queryleaf.sqlalchemy.datatypes import COLSPECS, declared_sqlalchemy_type

AUTOCOMMIT: IsolationLevel = "AUTOCOMMIT"
# A MongoDB transaction reads one snapshot: PostgreSQL's REPEATABLE READ is snapshot isolation too.
SNAPSHOT: IsolationLevel = "REPEATABLE READ"
EMBEDDED_OPTIONS = frozenset({"data_dir"})


def mongodb_uri(url: URL) -> str:
    """The MongoDB URI of a ``queryleaf://host...`` URL."""
    userinfo = ""
    if url.username is not None:
        userinfo = quote(url.username, safe="")
        if url.password is not None:
            userinfo += ":" + quote(str(url.password), safe="")
        userinfo += "@"
    host = url.host or ""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    port = f":{url.port}" if url.port is not None else ""
    options = urlencode(
        [(k, v) for k, vs in url.query.items() for v in (vs if isinstance(vs, tuple) else (vs,))]
    )
    return f"mongodb://{userinfo}{host}{port}/{quote(url.database or '', safe='')}" + (
        f"?{options}" if options else ""
    )


def _reflected_type(column: TableColumn) -> Any:
    declared = declared_sqlalchemy_type(column.declared) if column.declared else None
    return declared if declared is not None else REFLECTED_TYPES[column.type]()


def _queryleaf_connection(connection: Any) -> queryleaf_dbapi.Connection:
    return connection.connection.dbapi_connection


class QueryLeafDialect(default.DefaultDialect):
    name = "queryleaf"
    driver = "queryleaf"
    supports_statement_cache = True

    default_paramstyle = "named"
    statement_compiler = QueryLeafCompiler
    ddl_compiler = QueryLeafDDLCompiler
    type_compiler_cls = QueryLeafTypeCompiler
    preparer = QueryLeafIdentifierPreparer
    colspecs = COLSPECS

    supports_native_boolean = True
    supports_native_decimal = True
    supports_native_enum = False
    supports_alter = False
    supports_sequences = False
    supports_comments = False
    supports_default_values = False
    supports_default_metavalue = False
    supports_empty_insert = False
    supports_multivalues_insert = True
    use_insertmanyvalues = True
    use_insertmanyvalues_wo_returning = True  # one multi-row INSERT per page, not one per row
    insert_returning = False
    update_returning = False
    delete_returning = False
    postfetch_lastrowid = False
    supports_identity_columns = False
    supports_server_side_cursors = False
    supports_simple_order_by_label = True
    requires_name_normalize = False
    max_identifier_length = 255

    @classmethod
    def import_dbapi(cls) -> Any:
        return queryleaf_dbapi

    def create_connect_args(self, url: URL) -> tuple[list[Any], dict[str, Any]]:
        if url.host is None:
            unknown = sorted(set(url.query) - EMBEDDED_OPTIONS)
            if unknown or url.username is not None:
                raise exc.ArgumentError(
                    "queryleaf:/// runs the embedded server and takes only ?data_dir=...; "
                    f"got {', '.join(unknown) or 'a user name'} (a MongoDB server: "
                    "queryleaf://host:port/database?options)"
                )
            data_dir = url.query.get("data_dir")
            return [], {"uri": None, "database": url.database or None, "data_dir": data_dir}
        if "data_dir" in url.query:
            raise exc.ArgumentError(
                "data_dir is for the embedded server (queryleaf:///?data_dir=...), not for "
                f"queryleaf://{url.host}"
            )
        return [], {"uri": mongodb_uri(url), "database": url.database or None}

    # ------------------------------------------------------------ transactions
    def do_begin(self, dbapi_connection: Any) -> None:
        """Nothing to send: in SNAPSHOT the first statement opens the transaction."""

    def do_commit(self, dbapi_connection: Any) -> None:
        dbapi_connection.commit()  # a no-op in autocommit mode

    def do_rollback(self, dbapi_connection: Any) -> None:
        if not dbapi_connection.autocommit:  # AUTOCOMMIT: every statement committed already
            dbapi_connection.rollback()

    def get_isolation_level_values(self, dbapi_conn: Any) -> list[IsolationLevel]:
        return [AUTOCOMMIT, SNAPSHOT]

    def get_isolation_level(self, dbapi_connection: Any) -> IsolationLevel:
        return AUTOCOMMIT if dbapi_connection.autocommit else SNAPSHOT

    def set_isolation_level(self, dbapi_connection: Any, level: str) -> None:
        dbapi_connection.autocommit = level == AUTOCOMMIT

    def get_default_isolation_level(self, dbapi_conn: Any) -> IsolationLevel:
        return AUTOCOMMIT

    def is_disconnect(self, e: Exception, connection: Any, cursor: Any) -> bool:
        cause = e.__cause__
        return isinstance(e, queryleaf_dbapi.OperationalError) and isinstance(
            cause, ServerUnreachable
        )

    def _get_server_version_info(self, connection: Any) -> tuple[int, ...] | None:
        info = _queryleaf_connection(connection).queryleaf.client.server_info()
        return tuple(int(p) for p in info.get("versionArray", [])[:3]) or None

    def _get_default_schema_name(self, connection: Any) -> str:
        return _queryleaf_connection(connection).queryleaf.database_name

    # ------------------------------------------------------------ reflection
    def _db(self, connection: Any, schema: str | None) -> Any:
        """The database a schema names: the URL's by default, another database of the same
        server otherwise (a schema is a MongoDB database, as in get_schema_names)."""
        ql = _queryleaf_connection(connection).queryleaf
        if schema is None or schema == ql.database_name:
            return ql.db
        return ql.client[schema]

    @reflection.cache
    def get_schema_names(self, connection: Any, **kw: Any) -> list[str]:
        names = _queryleaf_connection(connection).queryleaf.client.list_database_names()
        return sorted(n for n in names if n not in SERVER_DATABASES)

    def _collections(self, connection: Any, schema: str | None) -> list[dict[str, Any]]:
        return user_collections(self._db(connection, schema))

    @reflection.cache
    def get_table_names(self, connection: Any, schema: str | None = None, **kw: Any) -> list[str]:
        infos = self._collections(connection, schema)
        return [i["name"] for i in infos if i.get("type", "collection") == "collection"]

    @reflection.cache
    def get_view_names(self, connection: Any, schema: str | None = None, **kw: Any) -> list[str]:
        return [i["name"] for i in self._collections(connection, schema) if i.get("type") == "view"]

    def get_view_definition(
        self, connection: Any, view_name: str, schema: str | None = None, **kw: Any
    ) -> str:
        """The view as MongoDB keeps it, in mongosh syntax (``db.createView(name, source,
        pipeline)``): queryleaf compiles a view's SQL into that pipeline and keeps no SQL."""
        db = self._check_table(connection, view_name, schema)
        views = list(db.list_collections(filter={"name": view_name, "type": "view"}))
        if not views:
            raise exc.NoSuchTableError(f"{view_name} is a table, not a view")
        options = views[0].get("options", {})
        view = {"create": view_name, "viewOn": options.get("viewOn")}
        return to_mongosh({**view, "pipeline": options.get("pipeline", [])})

    def has_table(
        self, connection: Any, table_name: str, schema: str | None = None, **kw: Any
    ) -> bool:
        if reserved(table_name) is not None or table_name.startswith("system."):
            return False
        db = self._db(connection, schema)
        return bool(list(db.list_collections(filter={"name": table_name})))

    def _check_table(self, connection: Any, table_name: str, schema: str | None) -> Any:
        if not self.has_table(connection, table_name, schema):
            raise exc.NoSuchTableError(table_name)
        return self._db(connection, schema)

    @reflection.cache
    def get_columns(
        self, connection: Any, table_name: str, schema: str | None = None, **kw: Any
    ) -> list[ReflectedColumn]:
        db = self._check_table(connection, table_name, schema)
        return [
            {
                "name": column.name,
                "type": _reflected_type(column),
                "nullable": column.nullable,
                "default": None,
                "autoincrement": False,
            }
            for column in table_columns(db, table_name)
        ]

    def _indexes(self, db: Any, table_name: str) -> list[dict[str, Any]]:
        info: dict[str, Any] = next(iter(db.list_collections(filter={"name": table_name})), {})
        if info.get("type") == "view":
            return []
        return list(db[table_name].list_indexes())

    @reflection.cache
    def get_pk_constraint(
        self, connection: Any, table_name: str, schema: str | None = None, **kw: Any
    ) -> ReflectedPrimaryKeyConstraint:
        """A declared PRIMARY KEY (its unique index), else ``_id``: every document's key."""
        db = self._check_table(connection, table_name, schema)
        key_index = primary_key_index(table_name)
        for index in self._indexes(db, table_name):
            if index["name"] == key_index:
                return {"constrained_columns": list(index["key"]), "name": key_index}
        return {"constrained_columns": ["_id"], "name": "_id_"}

    def get_foreign_keys(
        self, connection: Any, table_name: str, schema: str | None = None, **kw: Any
    ) -> list[ReflectedForeignKeyConstraint]:
        return []  # MongoDB has none

    @reflection.cache
    def get_indexes(
        self, connection: Any, table_name: str, schema: str | None = None, **kw: Any
    ) -> list[ReflectedIndex]:
        db = self._check_table(connection, table_name, schema)
        skip = {"_id_", primary_key_index(table_name)}  # reported as the primary key
        out: list[ReflectedIndex] = []
        for index in self._indexes(db, table_name):
            if index["name"] in skip:
                continue
            keys = index["key"]
            sorting = {k: ("desc",) for k, d in keys.items() if d == -1}
            entry: ReflectedIndex = {
                "name": index["name"],
                "column_names": list(keys),
                "unique": bool(index.get("unique", False)),
            }
            if sorting:
                entry["column_sorting"] = sorting
            out.append(entry)
        return out

    def get_unique_constraints(
        self, connection: Any, table_name: str, schema: str | None = None, **kw: Any
    ) -> list[ReflectedUniqueConstraint]:
        return []  # unique indexes are reported by get_indexes

    def get_check_constraints(
        self, connection: Any, table_name: str, schema: str | None = None, **kw: Any
    ) -> list[ReflectedCheckConstraint]:
        return []

    def get_table_comment(
        self, connection: Any, table_name: str, schema: str | None = None, **kw: Any
    ) -> ReflectedTableComment:
        return {"text": None}
