"""PEP 249 (DB-API 2.0) facade over the same planner and executor.

    import queryleaf.dbapi as db
    conn = db.connect()                      # embedded default, or connect("mongodb://...")
    cur = conn.cursor()
    cur.execute("SELECT name FROM users WHERE age > :age", {"age": 30})
    cur.fetchall()                           # [('ann',), ...]

By default every statement commits on its own (autocommit): ``commit()`` is then a no-op and
``rollback()`` raises NotSupportedError. ``connect(..., autocommit=False)`` (or setting
``conn.autocommit = False``) runs statements in a transaction that the first statement opens
and ``commit()`` / ``rollback()`` end (a MongoDB session transaction; see docs/semantics.md,
"Transactions and partial failure"). ``close()`` rolls an open transaction back.

``cursor.description`` gives each column's name and type code, a ``column_types.ColumnType``:
the one the planner knows (a comparison, COUNT, a CAST), else the one inferred from the values
of the result (TEXT when every value is NULL); the type objects
``STRING``, ``NUMBER``, ``DATETIME`` and ``BINARY`` compare equal to the type codes of their family.
Values are the ones the Python API returns, except that BSON decimals are ``decimal.Decimal``.

A statement that reads a column no sampled document has issues a ``Warning`` through the
``warnings`` module (``warnings.simplefilter("error", Warning)`` makes it raise).
"""

from __future__ import annotations

import builtins
import datetime as _dt
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from bson import Decimal128

from queryleaf import errors
from queryleaf.api import QueryLeaf
from queryleaf.column_types import DBAPI_FAMILY, ColumnType, infer_column_types

apilevel = "2.0"
threadsafety = 1  # threads may share the module, not connections
paramstyle = "named"  # :name; qmark (?) is accepted too


# ---------------------------------------------------------------- exceptions (PEP 249 names)
class Warning(builtins.Warning):  # noqa: A001 - the name is fixed by PEP 249
    """Important warnings (PEP 249), issued with ``warnings.warn``: e.g. a column that no
    sampled document has (``Result.warnings``)."""


class Error(Exception):
    """Base of the DB-API errors. ``error_code`` is queryleaf's stable code (docs/errors.md)
    when the error comes from queryleaf."""

    error_code: str | None = None


class InterfaceError(Error):
    """Misuse of the interface (e.g. a closed connection)."""


class DatabaseError(Error):
    """An error of the database or the statement."""


class DataError(DatabaseError):
    """A value the database cannot hold."""


class OperationalError(DatabaseError):
    """The server cannot be reached or started."""


class IntegrityError(DatabaseError):
    """A unique index or a table's declared columns (CREATE TABLE) refused a write."""


class InternalError(DatabaseError):
    """An internal inconsistency."""


class ProgrammingError(DatabaseError):
    """Invalid SQL, an unknown name, a wrong parameter."""


class NotSupportedError(DatabaseError):
    """A feature queryleaf does not have (e.g. rollback in autocommit mode)."""


# A unique index refused a write (11000, 11001); a table's validator refused a row (121), as
# PostgreSQL's NOT NULL and CHECK violations are integrity errors.
INTEGRITY_CODES = (11000, 11001, 121)


def _translate(exc: errors.QueryLeafError) -> DatabaseError:
    if isinstance(exc, errors.SqlSyntaxError | errors.PlanningError | errors.ParameterError):
        cls: type[DatabaseError] = ProgrammingError
    elif isinstance(exc, errors.EngineError | errors.ServerUnreachable):
        cls = OperationalError
    elif isinstance(exc, errors.ExecutionError) and exc.code in INTEGRITY_CODES:
        cls = IntegrityError
    elif isinstance(exc, errors.ExecutionError) and "TransientTransactionError" in exc.labels:
        cls = OperationalError  # a write conflict: running the transaction again may succeed
    elif isinstance(exc, errors.TransactionError):
        cls = InternalError  # psycopg's class for "current transaction is aborted"
    else:
        cls = DatabaseError
    err = cls(str(exc))
    err.error_code = exc.error_code
    err.__cause__ = exc
    return err


# ---------------------------------------------------------------- type objects
Date = _dt.date
Time = _dt.time
Timestamp = _dt.datetime
Binary = bytes


def DateFromTicks(ticks: float) -> _dt.date:  # noqa: N802 - PEP 249 name
    return _dt.datetime.fromtimestamp(ticks, _dt.UTC).date()


def TimeFromTicks(ticks: float) -> _dt.time:  # noqa: N802
    return _dt.datetime.fromtimestamp(ticks, _dt.UTC).time()


def TimestampFromTicks(ticks: float) -> _dt.datetime:  # noqa: N802
    return _dt.datetime.fromtimestamp(ticks, _dt.UTC)


class DBAPITypeObject:
    """A PEP 249 type object: equal to the ``cursor.description`` type codes (ColumnTypes) of
    its family (``NUMBER == ColumnType.BIGINT``); see column_types.DBAPI_FAMILY."""

    def __init__(self, family: str):
        self.family = family
        self.types = frozenset(t for t, f in DBAPI_FAMILY.items() if f == family)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DBAPITypeObject):
            return other.family == self.family
        return other in self.types

    def __hash__(self) -> int:
        return hash(self.family)

    def __repr__(self) -> str:
        return self.family


STRING = DBAPITypeObject("STRING")
BINARY = DBAPITypeObject("BINARY")
NUMBER = DBAPITypeObject("NUMBER")
DATETIME = DBAPITypeObject("DATETIME")
ROWID = DBAPITypeObject("ROWID")  # no column type: _id is an ObjectId (TEXT) or any value


# ---------------------------------------------------------------- connection and cursor
def connect(
    uri: str | None = None,
    database: str | None = None,
    data_dir: str | None = None,
    autocommit: bool = True,
) -> Connection:
    try:
        return Connection(QueryLeaf(uri, database, data_dir), autocommit)
    except errors.QueryLeafError as exc:
        raise _translate(exc) from exc


class Connection:
    def __init__(self, ql: QueryLeaf, autocommit: bool = True):
        self._ql: QueryLeaf | None = ql
        ql.autobegin = not autocommit

    @property
    def queryleaf(self) -> QueryLeaf:
        if self._ql is None:
            raise InterfaceError("the connection is closed")
        return self._ql

    def cursor(self) -> Cursor:
        return Cursor(self)

    @property
    def autocommit(self) -> bool:
        """False: statements run in a transaction that commit() or rollback() ends."""
        return not self.queryleaf.autobegin

    @autocommit.setter
    def autocommit(self, value: bool) -> None:
        if self.queryleaf.in_transaction:
            raise ProgrammingError(
                "a transaction is open: commit() or rollback() it before changing autocommit"
            )
        self.queryleaf.autobegin = not value

    def commit(self) -> None:
        """Commit the open transaction (none in autocommit mode: nothing to do)."""
        if self.queryleaf.in_transaction:
            self._end("COMMIT")

    def rollback(self) -> None:
        ql = self.queryleaf
        if ql.in_transaction:
            self._end("ROLLBACK")
        elif not ql.autobegin:
            raise NotSupportedError(
                "the connection is in autocommit mode: every statement was "
                "committed when it ran (connect(..., autocommit=False) for "
                "transactions)"
            )
        # else: no statement since the last commit() or rollback(), nothing to undo

    def _end(self, statement: str) -> None:
        try:
            self.queryleaf.execute(statement)
        except errors.QueryLeafError as exc:
            raise _translate(exc) from exc

    def close(self) -> None:
        if self._ql is not None:
            self._ql.close()
            self._ql = None

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _decimals_as_python(rows: list[tuple], types: list[ColumnType]) -> list[tuple]:
    """BSON decimals as ``decimal.Decimal`` (PEP 249's type for exact numbers)."""
    at = [i for i, t in enumerate(types) if t is ColumnType.DECIMAL]

    def convert(row: tuple) -> tuple:
        values = list(row)
        for i in at:
            if isinstance(values[i], Decimal128):
                values[i] = values[i].to_decimal()
        return tuple(values)

    return [convert(row) for row in rows]


class Cursor:
    arraysize = 1
    lastrowid = None  # PEP 249's optional extension: MongoDB has no row ids to report

    def __init__(self, connection: Connection):
        self.connection = connection
        self.description: list[tuple] | None = None
        self.rowcount = -1
        self._rows: list[tuple] = []
        self._next = 0
        self._closed = False

    def execute(
        self, operation: str, parameters: Mapping[str, Any] | Sequence[Any] | None = None
    ) -> Cursor:
        if self._closed:
            raise InterfaceError("the cursor is closed")
        try:
            result = self.connection.queryleaf.execute(operation, parameters)
            rows = result.rows  # read here: reading can fail too (a server-side error)
        except errors.QueryLeafError as exc:
            raise _translate(exc) from exc
        for warning in result.warnings:
            warnings.warn(str(warning), Warning, stacklevel=2)
        if result.statement in ("SELECT", "EXPLAIN"):  # a result set, maybe empty
            columns = result.columns
            types = infer_column_types(columns, rows, result.declared_types)
            self.description = [
                (c, t, None, None, None, None, True) for c, t in zip(columns, types, strict=True)
            ]
            self._rows = [tuple(r[c] for c in columns) for r in rows]
            if ColumnType.DECIMAL in types:
                self._rows = _decimals_as_python(self._rows, types)
        else:
            self.description = None
            self._rows = []
        self._next = 0
        self.rowcount = result.rowcount
        return self

    def executemany(
        self, operation: str, seq_of_parameters: Sequence[Mapping[str, Any] | Sequence[Any]]
    ) -> Cursor:
        total = 0
        for params in seq_of_parameters:
            self.execute(operation, params)
            total += max(self.rowcount, 0)
        self.rowcount = total
        return self

    def fetchone(self) -> tuple | None:
        self._check_rows()
        if self._next >= len(self._rows):
            return None
        row = self._rows[self._next]
        self._next += 1
        return row

    def fetchmany(self, size: int | None = None) -> list[tuple]:
        self._check_rows()
        n = self.arraysize if size is None else size
        rows = self._rows[self._next : self._next + n]
        self._next += len(rows)
        return rows

    def fetchall(self) -> list[tuple]:
        self._check_rows()
        rows = self._rows[self._next :]
        self._next = len(self._rows)
        return rows

    def __iter__(self) -> Iterator[tuple]:
        while (row := self.fetchone()) is not None:
            yield row

    def _check_rows(self) -> None:
        if self.description is None:
            raise ProgrammingError("the last statement returned no rows")

    def setinputsizes(self, sizes: Any) -> None:
        return None

    def setoutputsize(self, size: Any, column: Any = None) -> None:
        return None

    def close(self) -> None:
        self._closed = True
        self._rows = []
