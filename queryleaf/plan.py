"""Plan objects: what the planner produces and the executor runs. Pure data, no I/O (a
``SelfRunning`` plan, which a plug-in package defines, carries its own ``run``).

Every plan knows how to describe itself as the MongoDB commands it stands for, which is what
EXPLAIN prints (``commands()``: a list of (mongosh text, JSON-able dict)).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from queryleaf.column_types import ColumnType

if TYPE_CHECKING:
    from pymongo.client_session import ClientSession
    from pymongo.database import Database

    from queryleaf.errors import Position
    from queryleaf.result import Result


@dataclass(frozen=True)
class OutputColumn:
    """A column of a SELECT result: its display name and the key it has in result documents."""

    name: str
    key: str
    # The value at ``key`` is a whole document (``t.*`` of a schemaless table): its fields
    # become columns, in document order, after the columns before it.
    spread: bool = False
    # The SQL type every value of the column has, when the planner knows it (result_types.py);
    # None: the values tell (column_types.py).
    type: ColumnType | None = None


def unique_name(name: str, taken: set[str] | dict[str, object]) -> str:
    """``name``, or ``name_2``, ``name_3``... when a result column already has it (rows are
    dictionaries: every column needs its own name)."""
    unique, n = name, 2
    while unique in taken:
        unique, n = f"{name}_{n}", n + 1
    return unique


class Plan(ABC):
    # Whether the commands may run inside a transaction (with its session). Off unless a plan
    # says so: catalog changes (views, subscriptions) cannot be part of one.
    transactional: ClassVar[bool] = False

    @abstractmethod
    def commands(self) -> list[dict[str, Any]]:
        """The server commands this plan runs, as JSON-able command documents."""


@dataclass(frozen=True)
class Aggregate(Plan):
    transactional: ClassVar[bool] = True

    collection: str
    pipeline: list[dict[str, Any]]
    columns: tuple[OutputColumn, ...] | None  # None: SELECT * (columns come from the documents)

    def commands(self):
        return [{"aggregate": self.collection, "pipeline": self.pipeline, "cursor": {}}]


@dataclass(frozen=True)
class Find(Plan):
    transactional: ClassVar[bool] = True

    collection: str
    filter: dict[str, Any]
    projection: dict[str, Any] | None
    sort: list[tuple[str, int]] = field(default_factory=list)
    skip: int = 0
    limit: int = 0
    columns: tuple[OutputColumn, ...] | None = None

    def commands(self):
        cmd: dict[str, Any] = {"find": self.collection, "filter": self.filter}
        if self.projection is not None:
            cmd["projection"] = self.projection
        if self.sort:
            cmd["sort"] = dict(self.sort)
        if self.skip:
            cmd["skip"] = self.skip
        if self.limit:
            cmd["limit"] = self.limit
        return [cmd]


@dataclass(frozen=True)
class Insert(Plan):
    """INSERT ... VALUES. With ``compute`` set, the rows are first computed by the server
    (a database-level aggregate over ``$documents``) and then inserted."""

    transactional: ClassVar[bool] = True

    collection: str
    documents: list[dict[str, Any]]
    compute: list[dict[str, Any]] | None = None

    def commands(self):
        if self.compute is not None:
            return [
                {"aggregate": 1, "pipeline": self.compute, "cursor": {}},
                {"insert": self.collection, "documents": ["<the documents computed above>"]},
            ]
        return [{"insert": self.collection, "documents": self.documents}]


@dataclass(frozen=True)
class InsertSelect(Plan):
    """INSERT ... SELECT: the query's rows inserted as documents, in batches.

    ``columns`` are the target field paths (in the order of the query's columns); empty means
    the query's column names (a dotted column name such as ``customer.name`` is nested).
    """

    transactional: ClassVar[bool] = True

    collection: str
    source: Aggregate | Find
    columns: tuple[tuple[str, ...], ...] = ()  # field names, each taken literally

    def commands(self):
        return [
            *self.source.commands(),
            {"insert": self.collection, "documents": ["<the rows of the query above>"]},
        ]


@dataclass(frozen=True)
class Update(Plan):
    """UPDATE. With ``id_query`` (a WHERE holding subqueries, which update filters cannot run),
    the query first selects the ``_id`` of the rows to change and the update filters on them."""

    transactional: ClassVar[bool] = True

    collection: str
    filter: dict[str, Any]
    update: dict[str, Any] | list[dict[str, Any]]  # operator document or pipeline
    id_query: Aggregate | None = None

    def commands(self):
        first = self.id_query.commands() if self.id_query else []
        q = {"_id": {"$in": "<the _id values selected above>"}} if self.id_query else self.filter
        return [
            *first,
            {"update": self.collection, "updates": [{"q": q, "u": self.update, "multi": True}]},
        ]


@dataclass(frozen=True)
class Delete(Plan):
    transactional: ClassVar[bool] = True

    collection: str
    filter: dict[str, Any]
    id_query: Aggregate | None = None

    def commands(self):
        first = self.id_query.commands() if self.id_query else []
        q = {"_id": {"$in": "<the _id values selected above>"}} if self.id_query else self.filter
        return [*first, {"delete": self.collection, "deletes": [{"q": q, "limit": 0}]}]


@dataclass(frozen=True)
class CreateView(Plan):
    """CREATE [OR REPLACE] VIEW. Replacing drops and recreates an existing view (restoring it
    if the new definition is refused); a collection of that name is never dropped."""

    name: str
    source: str
    pipeline: list[dict[str, Any]]
    or_replace: bool = False

    def commands(self):
        create = {"create": self.name, "viewOn": self.source, "pipeline": self.pipeline}
        if self.or_replace:
            return [{"drop": self.name, "$comment": "only when it is a view"}, create]
        return [create]


@dataclass(frozen=True)
class DropView(Plan):
    name: str
    if_exists: bool = False

    def commands(self):
        return [{"drop": self.name}]


@dataclass(frozen=True)
class CreateTable(Plan):
    """CREATE TABLE: a collection whose validator checks the declared columns
    (planner/create_table.py), and the unique index of its PRIMARY KEY (``key``)."""

    name: str
    validator: dict[str, Any]
    key: tuple[str, ...] = ()
    if_not_exists: bool = False
    position: Position | None = None

    def commands(self):
        create = {
            "create": self.name,
            "validator": self.validator,
            "validationLevel": "strict",
            "validationAction": "error",
        }
        if not self.key:
            return [create]
        index = {"key": dict.fromkeys(self.key, 1), "name": self.key_index, "unique": True}
        return [create, {"createIndexes": self.name, "indexes": [index]}]

    @property
    def key_index(self) -> str:
        return primary_key_index(self.name)


def primary_key_index(table: str) -> str:
    """The name of the unique index of a table's PRIMARY KEY (PostgreSQL's constraint name)."""
    return f"{table}_pkey"


@dataclass(frozen=True)
class DropTable(Plan):
    name: str
    if_exists: bool = False
    position: Position | None = None

    def commands(self):
        return [{"drop": self.name}]


@dataclass(frozen=True)
class LiveAggregation:
    """The client's part of a live aggregate query (planner/live_aggregation.py): the rows of the
    change stream carry the group keys (``keys``), the aggregates' arguments and the event time;
    queryleaf/live/windows.py aggregates them per key and ``window`` (None: running since the
    start), and each aggregate row becomes a result row through ``outputs`` (name, function of
    the keys, aggregates ``g0``... and window bounds) where ``having`` holds. ``final``: EMIT
    FINAL (a window's rows once, when it closes)."""

    window: Any
    aggregates: tuple[Any, ...]
    keys: tuple[str, ...]
    final: bool
    outputs: tuple[tuple[str, Callable[[dict[str, Any]], Any]], ...]
    having: Callable[[dict[str, Any]], bool] | None
    description: list[str]


@dataclass(frozen=True)
class LiveQuery(Plan):
    """A live query (``... FROM CHANGE_STREAM(...) EMIT CHANGES``): a change stream on
    ``collections`` (one: that collection's ``watch``; several: the database's, filtered on
    ``ns.coll`` in ``pipeline``; none: the whole database's) whose ``pipeline`` runs after
    ``$changeStream`` on the server and keeps ``_id`` (the resume token), then rows by
    ``columns`` (None: every field but ``_id``) in the client, which also stops after ``limit``
    rows. ``start``: the ``$changeStream`` start option (``startAtOperationTime`` or
    ``startAfter``; empty: now). queryleaf/live/ runs it (``QueryLeaf.stream``)."""

    collections: tuple[str, ...]
    pipeline: list[dict[str, Any]]
    columns: tuple[OutputColumn, ...] | None
    full_document: str | None = None  # None: the server's default (no lookup)
    full_document_before_change: str | None = None  # None: off
    start: dict[str, Any] = field(default_factory=dict)
    limit: int | None = None
    start_pos: Any = field(default=None, compare=False)  # where SINCE is (errors point there)
    aggregation: LiveAggregation | None = None  # GROUP BY / aggregates / WINDOW: in the client
    # Why it reads a change stream of its own; None: it reads the process's shared stream of its
    # namespace and runs ``pipeline`` in the client (changestream/client_pipeline.py).
    own_stream_reason: str | None = None

    @property
    def database_wide(self) -> bool:
        return len(self.collections) != 1

    @property
    def result_columns(self) -> list[str] | None:
        """The names of the rows' columns (None: SELECT *, each change's fields)."""
        if self.aggregation is not None:
            return [name for name, _ in self.aggregation.outputs]
        return None if self.columns is None else [c.name for c in self.columns]

    def change_stream_options(self) -> dict[str, Any]:
        """The ``$changeStream`` stage's options."""
        options: dict[str, Any] = {}
        if self.full_document is not None:
            options["fullDocument"] = self.full_document
        if self.full_document_before_change is not None:
            options["fullDocumentBeforeChange"] = self.full_document_before_change
        options.update(self.start)
        return options

    def commands(self):
        client = ["rows by column name (resume token dropped)"]
        if self.own_stream_reason is None:
            stream = "shared change stream (the pipeline runs in the client on its events)"
        else:
            stream = f"own change stream: {self.own_stream_reason}"
        if self.aggregation is not None:
            client = [*self.aggregation.description, "then the select list"]
            if self.aggregation.final:
                client.append("each window's rows once, when it closes (EMIT FINAL)")
        if self.limit is not None:
            client.append(f"stop after {self.limit} rows and close the stream (EMIT ... LIMIT)")
        return [
            {
                "aggregate": 1 if self.database_wide else self.collections[0],
                "pipeline": [{"$changeStream": self.change_stream_options()}, *self.pipeline],
                "cursor": {},
                "$comment": "a change stream: the pipeline runs on the server for each change; "
                "in the client: " + "; ".join(client) + "; " + stream,
            }
        ]


class SelfRunning(Plan):
    """A plan that runs itself: the statements a package plugs into the planner (event
    subscriptions, registered through planner/statements.py) bring their own way to run, and
    the executor only calls ``run``. ``commands()`` must list exactly the commands ``run``
    sends (a value known only when it runs shown as a ``<placeholder>``), since EXPLAIN shows
    them."""

    @abstractmethod
    def run(self, db: Database, session: ClientSession | None = None) -> Result:
        """Run the plan against ``db``; with ``session`` (only for ``transactional`` plans)
        every command is part of that session's transaction."""


@dataclass(frozen=True)
class Explain(Plan):
    """EXPLAIN: show the inner plan's commands without running them."""

    transactional: ClassVar[bool] = True

    inner: Plan

    def commands(self):
        return self.inner.commands()


# ---------------------------------------------------------------- transactions
#
# A transaction is a MongoDB client session's transaction: BEGIN sends nothing (the driver
# starts the transaction with its first statement's command, adding the session, the
# transaction number, ``startTransaction`` and the read concern); COMMIT and ROLLBACK are the
# ``commitTransaction`` / ``abortTransaction`` admin commands of that session.

READ_CONCERN = "snapshot"  # every read of the transaction sees one point in time
WRITE_CONCERN = "majority"  # a committed transaction is not rolled back by a failover


class TransactionControl(Plan):
    """BEGIN, COMMIT, ROLLBACK: run by the connection (QueryLeaf), which owns the session."""


@dataclass(frozen=True)
class StartTransaction(TransactionControl):
    def commands(self):
        return [
            {
                "startTransaction": True,
                "readConcern": {"level": READ_CONCERN},
                "writeConcern": {"w": WRITE_CONCERN},
                "$comment": "the session's settings, not a command: the driver sends "
                "startTransaction and readConcern with the first command of the "
                "transaction, writeConcern with commitTransaction",
            }
        ]


@dataclass(frozen=True)
class CommitTransaction(TransactionControl):
    def commands(self):
        return [{"commitTransaction": 1, "writeConcern": {"w": WRITE_CONCERN}}]


@dataclass(frozen=True)
class AbortTransaction(TransactionControl):
    def commands(self):
        return [{"abortTransaction": 1}]
