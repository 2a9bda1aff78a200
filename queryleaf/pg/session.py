"""One wire connection's session: its QueryLeaf, prepared statements and portals.

Every statement goes first to the catalog (PostgreSQL-only statements: pg_catalog queries, SET,
SHOW...), then to the few statements this module answers itself (cursors: DECLARE, FETCH, CLOSE;
COPY, refused; COMMIT or ROLLBACK with no transaction open, a warning as in PostgreSQL), and
otherwise to queryleaf. A query's rows stream from the server cursor to the socket: the first
rows are read to infer the column types of the RowDescription, the rest are sent as they come,
so memory does not grow with the result. The session is used by its connection's thread only;
``cancel()`` alone comes from another thread (a CancelRequest).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from queryleaf.api import QueryLeaf
from queryleaf.column_types import infer_column_types
from queryleaf.errors import ErrorCode, QueryLeafError
from queryleaf.live.stream import LiveRows
from queryleaf.pg import messages as m
from queryleaf.pg.catalog import CatalogSession, answer
from queryleaf.pg.errors import (
    FEATURE_NOT_SUPPORTED,
    INVALID_CURSOR_NAME,
    INVALID_PARAMETER,
    INVALID_SAVEPOINT,
    INVALID_STATEMENT_NAME,
    NO_ACTIVE_TRANSACTION,
    PROTOCOL_VIOLATION,
    QUERY_CANCELED,
    PgError,
    from_queryleaf,
)
from queryleaf.pg.rows import EMPTY, Command, Outcome, Rows, conform, encoders, fields, rows_of
from queryleaf.pg.types import (
    TEXT,
    WireValueError,
    decode_parameter,
)
from queryleaf.result import Result
from queryleaf.sql import ast
from queryleaf.sql.parser import parse
from queryleaf.sql.split import split
from queryleaf.sql.walk import walk

WARNING = "01000"

# Statements whose columns a Describe of the statement finds by running them (reads only).
_DESCRIBABLE = (
    ast.QueryStatement,
    ast.Explain,
    ast.ShowTables,
    ast.ShowViews,
    ast.ShowDatabases,
    ast.ShowIndexes,
    ast.Describe,
)
# Statements that return no rows: Describe answers NoData without running them.
_NO_ROWS = (
    ast.Insert,
    ast.Update,
    ast.Delete,
    ast.TransactionStatement,
    ast.Use,
    ast.CreateView,
    ast.DropView,
)
_NAME = r'("(?:[^"]|"")+"|[A-Za-z_][\w$]*)'
_END_OF_STATEMENT = r"\s*;?\s*$"
_DECLARE = re.compile(
    rf"\s*DECLARE\s+{_NAME}\s+(?:BINARY\s+)?(?:(?:ASENSITIVE|INSENSITIVE)\s+)?"
    r"(?:(?:NO\s+)?SCROLL\s+)?CURSOR\s+(?:(?:WITH|WITHOUT)\s+HOLD\s+)?FOR\s+",
    re.I,
)
_FETCH = re.compile(
    rf"\s*FETCH\s+(?:(?:FORWARD|NEXT)\s+)?(ALL|\d+)?\s*(?:(?:FROM|IN)\s+)?{_NAME}"
    + _END_OF_STATEMENT,
    re.I,
)
_CLOSE = re.compile(rf"\s*CLOSE\s+(ALL|{_NAME}){_END_OF_STATEMENT}", re.I)
_DEALLOCATE = re.compile(rf"\s*DEALLOCATE\s+(?:PREPARE\s+)?(ALL|{_NAME}){_END_OF_STATEMENT}", re.I)
_COPY = re.compile(r"\s*COPY\b", re.I)
_END = re.compile(
    r"\s*(COMMIT|END|ROLLBACK|ABORT)(?:\s+(?:WORK|TRANSACTION))?" + _END_OF_STATEMENT, re.I
)
# MongoDB's transactions have no savepoints. Clients set them around reads (psycopg's type
# lookups, SQLAlchemy's nested transactions): setting and releasing one is harmless, and rolling
# back to one is exact while nothing was written since it was set; otherwise it is refused.
_SAVEPOINT = re.compile(rf"\s*SAVEPOINT\s+({_NAME}){_END_OF_STATEMENT}", re.I)
_RELEASE = re.compile(rf"\s*RELEASE\s+(?:SAVEPOINT\s+)?({_NAME}){_END_OF_STATEMENT}", re.I)
_ROLLBACK_TO = re.compile(
    rf"\s*ROLLBACK\s+(?:WORK\s+|TRANSACTION\s+)?TO\s+(?:SAVEPOINT\s+)?({_NAME})"
    + _END_OF_STATEMENT,
    re.I,
)
# Statements that change the catalog, which queryleaf never does inside a transaction. PostgreSQL
# clients send them inside one (pandas' to_sql, migrations): as MySQL does, they commit the open
# transaction first; a new one is opened after them, so the client's transaction goes on.
_CATALOG_CHANGE = re.compile(r"\s*(?:CREATE|DROP)\s+(?:TABLE|VIEW)\b", re.I)
_WRITE_TAGS = ("INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER")
# BEGIN with PostgreSQL's transaction modes, which MongoDB's transactions do not have: ignored
# (a transaction reads one snapshot, as REPEATABLE READ does).
_BEGIN = re.compile(
    r"\s*(?:BEGIN|START\s+TRANSACTION)(?:\s+(?:WORK|TRANSACTION))?"
    r"(?:\s*,?\s*(?:ISOLATION\s+LEVEL\s+(?:SERIALIZABLE|REPEATABLE\s+READ|READ\s+COMMITTED"
    r"|READ\s+UNCOMMITTED)|READ\s+WRITE|READ\s+ONLY|(?:NOT\s+)?DEFERRABLE))*" + _END_OF_STATEMENT,
    re.I,
)


def _unquote(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name.lower()


@dataclass
class Prepared:
    sql: str
    param_oids: list[int]
    statement: ast.Statement | None  # None: not queryleaf SQL (the catalog may answer it)
    shape: Rows | None = None  # the columns a Describe of the statement announced


@dataclass
class Portal:
    prepared: Prepared
    params: list[Any]
    result_formats: list[int]
    outcome: Outcome | None = None
    sent: int = 0
    done: bool = False


class PgSession:
    """The statements, portals and cursors of one connection, run on its own QueryLeaf.
    ``send`` takes each backend message (the connection buffers them), ``flush`` sends what is
    buffered at once."""

    def __init__(
        self,
        ql: QueryLeaf,
        settings: dict[str, str],
        send: Callable[[bytes], None],
        flush: Callable[[], None],
    ):
        self.ql = ql
        self.catalog = CatalogSession(queryleaf=ql, settings=settings)
        self.send = send
        self.flush = flush
        self.statements: dict[str, Prepared] = {}
        self.portals: dict[str, Portal] = {}
        self.cancelled = False
        self._live: LiveRows | None = None
        self.writes = 0  # statements that wrote (rolling back to a savepoint is exact if none)
        self.savepoints: dict[str, int] = {}  # name -> ``writes`` when it was set

    # ------------------------------------------------------------ status and cancel
    def status(self) -> bytes:
        return {"idle": b"I", "open": b"T"}.get(self.ql.transaction_status, b"E")

    def cancel(self) -> None:
        """Stop what the connection is running (from another thread): the server kills the
        running command, a streaming result stops at its next row, a live query closes."""
        self.cancelled = True
        live = self._live
        if live is not None:
            live.close()
        self.ql.cancel()

    def close(self) -> None:
        """The connection ended: its live query's stream and its QueryLeaf close with it."""
        live, self._live = self._live, None
        if live is not None:
            live.close()
        self._keep_portals(lambda p: False)
        self.ql.close()

    # ------------------------------------------------------------ simple protocol
    def simple_query(self, text: str) -> None:
        self.cancelled = False
        pieces = split(text)
        if not pieces:
            self.send(m.EMPTY_QUERY)
        for piece in pieces:
            try:
                outcome = self.run(piece.text, [], piece.offset)
                if isinstance(outcome, Rows):
                    self.send(m.row_description(fields(outcome, [])))
                    self._send_rows(outcome, [], 0, 0)
                else:
                    self._complete(outcome)
            except PgError as exc:
                self.send_error(exc)
                break

    # ------------------------------------------------------------ extended protocol
    def parse_message(self, name: str, sql: str, oids: list[int]) -> None:
        if name and name in self.statements:
            raise PgError("42P05", f'prepared statement "{name}" already exists')
        try:
            statement: ast.Statement | None = parse(sql)
        except QueryLeafError:
            statement = None  # the catalog may answer it; if not, running it says why
        self.statements[name] = Prepared(sql, oids, statement)
        self.send(m.PARSE_COMPLETE)

    def bind(
        self,
        portal_name: str,
        statement_name: str,
        formats: list[int],
        values: list[bytes | None],
        result_formats: list[int],
    ) -> None:
        prepared = self._statement(statement_name)
        if len(formats) not in (0, 1, len(values)):
            raise PgError(PROTOCOL_VIOLATION, "Bind has a wrong number of parameter formats")
        params = []
        for i, value in enumerate(values):
            oid = prepared.param_oids[i] if i < len(prepared.param_oids) else 0
            binary = (formats[i] if len(formats) > 1 else formats[0] if formats else 0) == 1
            try:
                params.append(decode_parameter(value, oid, binary, i + 1))
            except WireValueError as exc:
                raise PgError("22P02", str(exc)) from exc
        if portal_name in self.portals and portal_name:
            raise PgError("42P03", f'portal "{portal_name}" already exists')
        self._release(self.portals.get(portal_name))  # the unnamed portal is replaced
        self.portals[portal_name] = Portal(prepared, params, result_formats)
        self.send(m.BIND_COMPLETE)

    def describe(self, kind: str, name: str) -> None:
        if kind == "S":
            prepared = self._statement(name)
            count = _parameter_count(prepared)
            oids = [*prepared.param_oids, *[0] * count][:count]
            self.send(m.parameter_description([oid or TEXT for oid in oids]))
            shape = self._shape(prepared, count)
            if shape is None:
                self.send(m.NO_DATA)
            else:
                self.send(m.row_description(fields(shape, [])))
            return
        portal = self._portal(name)
        if portal.outcome is None and isinstance(portal.prepared.statement, _NO_ROWS):
            self.send(m.NO_DATA)
            return
        outcome = self._start(portal)
        if isinstance(outcome, Rows):
            self.send(m.row_description(fields(outcome, portal.result_formats)))
        else:
            self.send(m.NO_DATA)

    def execute(self, name: str, max_rows: int) -> None:
        # No reset of ``cancelled`` here: a Describe of the portal may have run the query
        # already, and a cancel during it still stops this Execute (Sync resets it).
        portal = self._portal(name)
        outcome = self._start(portal)
        if isinstance(outcome, Command):
            self._complete(outcome)
            return
        if portal.done:
            self.send(m.command_complete(f"{outcome.tag} 0"))
            return
        portal.sent, portal.done = self._send_rows(
            outcome, portal.result_formats, max_rows, portal.sent
        )

    def close_message(self, kind: str, name: str) -> None:
        if kind == "S":
            self.statements.pop(name, None)
        else:
            self._release(self.portals.pop(name, None))
        self.send(m.CLOSE_COMPLETE)

    def sync(self) -> None:
        """The end of an extended-protocol exchange: outside a transaction its portals end
        (their server cursors are released); DECLAREd cursors stay until CLOSE."""
        self.cancelled = False  # a cancel that came after the statement ended is spent
        if not self.ql.in_transaction:
            self._keep_portals(lambda p: isinstance(p.outcome, Rows) and p.outcome.cursor)

    def _keep_portals(self, keep: Callable[[Portal], Any]) -> None:
        for name in [name for name, portal in self.portals.items() if not keep(portal)]:
            self._release(self.portals.pop(name))

    def _release(self, portal: Portal | None) -> None:
        """A portal ends: a live query's change stream closes with it."""
        if portal is None or not isinstance(portal.outcome, Rows) or portal.outcome.live is None:
            return
        live = portal.outcome.live
        live.close()
        if self._live is live:
            self._live = None

    def _statement(self, name: str) -> Prepared:
        prepared = self.statements.get(name)
        if prepared is None:
            raise PgError(INVALID_STATEMENT_NAME, f'prepared statement "{name}" does not exist')
        return prepared

    def _portal(self, name: str) -> Portal:
        portal = self.portals.get(name)
        if portal is None:
            raise PgError(INVALID_CURSOR_NAME, f'portal "{name}" does not exist')
        return portal

    def _start(self, portal: Portal) -> Outcome:
        if portal.outcome is None:
            outcome = self.run(portal.prepared.sql, portal.params, 0)
            shape = portal.prepared.shape
            if shape is not None and isinstance(outcome, Rows):
                outcome = conform(outcome, shape)
            portal.outcome = outcome
        return portal.outcome

    def _shape(self, prepared: Prepared, count: int) -> Rows | None:
        """The columns of a statement's rows before it is bound (Describe of a statement, which
        clients such as pgx and lib/pq use to read the rows of its portals): the query is run
        with every parameter NULL and its first rows give the columns and types; its portals
        then send their rows in that shape. None when that cannot be known without running
        something other than a query."""
        if prepared.shape is None:
            nulls = [None] * count
            outcome: Outcome | None = None
            try:
                if prepared.statement is None:
                    catalog = answer(prepared.sql, nulls, self.catalog)
                    if catalog is not None and catalog.columns:
                        outcome = Rows(catalog.columns, catalog.types, iter(()))
                elif isinstance(prepared.statement, _DESCRIBABLE):
                    outcome = self._queryleaf(prepared.sql, nulls, 0, notify=False)
            except PgError:
                return None  # the statement says why when it runs
            if isinstance(outcome, Rows):
                prepared.shape = Rows(outcome.columns, outcome.types, iter(()))
        return prepared.shape

    # ------------------------------------------------------------ running a statement
    def run(self, sql: str, params: Sequence[Any], shift: int) -> Outcome:
        """Run one statement (``shift``: where it starts in the client's query text, for the
        error positions)."""
        if not split(sql):
            return Command(EMPTY)
        catalog = answer(sql, params, self.catalog)
        if catalog is not None:
            if not catalog.columns:
                return Command(catalog.tag)
            word = catalog.tag.split()[0] if catalog.tag else "SELECT"
            return Rows(catalog.columns, catalog.types, iter(catalog.rows), word)
        own = self._own_statement(sql, params, shift)
        if own is not None:
            return own
        if self.ql.in_transaction and _CATALOG_CHANGE.match(sql):
            return self._commit_around(sql, params, shift)
        return self._queryleaf(sql, params, shift)

    def _commit_around(self, sql: str, params: Sequence[Any], shift: int) -> Outcome:
        """A catalog change in a transaction (see _CATALOG_CHANGE): commit, run, begin again."""
        self._queryleaf("COMMIT", [], shift)
        try:
            outcome = self._queryleaf(sql, params, shift)
        finally:
            self._queryleaf("BEGIN", [], shift)
        word = " ".join(sql.split()[:2]).upper()
        notice = (
            f"{word} committed the open transaction first and ran on its own (MongoDB changes "
            "its catalog outside transactions; as in MySQL, it commits implicitly); what follows "
            "runs in a new transaction"
        )
        if isinstance(outcome, Command):
            outcome.notices.append(notice)
        return outcome

    def _own_statement(self, sql: str, params: Sequence[Any], shift: int) -> Outcome | None:
        if _COPY.match(sql):
            raise PgError(
                FEATURE_NOT_SUPPORTED,
                "COPY is not supported by queryleaf's PostgreSQL server: use INSERT (many rows "
                "per statement, or executemany) to load data, and SELECT to read it",
            )
        if deallocated := _DEALLOCATE.match(sql):  # psycopg sends it after DDL
            if deallocated.group(1).upper() == "ALL":
                self.statements.clear()
                return Command("DEALLOCATE ALL")
            name = _unquote(deallocated.group(1))
            if self.statements.pop(name, None) is None:
                raise PgError(INVALID_STATEMENT_NAME, f'prepared statement "{name}" does not exist')
            return Command("DEALLOCATE")
        if declared := _DECLARE.match(sql):
            name = _unquote(declared.group(1))
            query = self._queryleaf(sql[declared.end() :], params, shift + declared.end())
            if not isinstance(query, Rows):
                raise PgError(INVALID_CURSOR_NAME, "DECLARE CURSOR needs a query that returns rows")
            query.cursor = True
            portal = Portal(Prepared(sql, [], None), [], [], query)
            self.portals[name] = portal
            return Command("DECLARE CURSOR")
        if fetched := _FETCH.match(sql):
            count_text, name = fetched.group(1), _unquote(fetched.group(2))
            cursor = self.portals.get(name)
            if cursor is None or not isinstance(cursor.outcome, Rows):
                raise PgError(INVALID_CURSOR_NAME, f'cursor "{name}" does not exist')
            source = cursor.outcome
            limit = None if (count_text or "").upper() == "ALL" else int(count_text or 1)
            rows = source.rows if limit is None else itertools.islice(source.rows, limit)
            return Rows(source.columns, source.types, iter(rows), "FETCH")
        if closed := _CLOSE.match(sql):
            if closed.group(1).upper() == "ALL":
                self._keep_portals(lambda p: not _is_cursor(p))
            else:
                name = _unquote(closed.group(1))
                if not _is_cursor(self.portals.get(name)):
                    raise PgError(INVALID_CURSOR_NAME, f'cursor "{name}" does not exist')
                self._release(self.portals.pop(name))
            return Command("CLOSE CURSOR")
        if savepoint := self._savepoint(sql):
            return savepoint
        if ended := _END.match(sql):
            commit = ended.group(1).upper() in ("COMMIT", "END")
            if not self.ql.in_transaction:
                return Command(
                    "COMMIT" if commit else "ROLLBACK", ["there is no transaction in progress"]
                )
            self._queryleaf("COMMIT" if commit else "ROLLBACK", [], shift)
            return Command("COMMIT" if commit else "ROLLBACK")
        if _BEGIN.match(sql):
            if self.ql.in_transaction:  # as PostgreSQL: a warning, the transaction goes on
                return Command("BEGIN", ["there is already a transaction in progress"])
            self._queryleaf("BEGIN", [], shift)
            return Command("BEGIN")
        return None

    def _savepoint(self, sql: str) -> Command | None:
        """SAVEPOINT, RELEASE and ROLLBACK TO (see _SAVEPOINT); None for other statements."""
        if named := _SAVEPOINT.match(sql):
            if not self.ql.in_transaction:
                raise PgError(NO_ACTIVE_TRANSACTION, "SAVEPOINT can only be used in transactions")
            self.savepoints[_unquote(named.group(1))] = self.writes
            return Command("SAVEPOINT")
        for pattern, tag in ((_RELEASE, "RELEASE"), (_ROLLBACK_TO, "ROLLBACK")):
            if named := pattern.match(sql):
                name = _unquote(named.group(1))
                if name not in self.savepoints:
                    raise PgError(INVALID_SAVEPOINT, f'savepoint "{name}" does not exist')
                if tag == "ROLLBACK" and (
                    self.savepoints[name] != self.writes or self.ql.transaction_status == "aborted"
                ):
                    raise PgError(
                        FEATURE_NOT_SUPPORTED,
                        f'cannot roll back to savepoint "{name}": MongoDB transactions have no '
                        "savepoints, and this one has written (or failed) since it was set; "
                        "ROLLBACK the whole transaction",
                    )
                if tag == "RELEASE":
                    del self.savepoints[name]
                return Command(tag)
        return None

    def _queryleaf(
        self, sql: str, params: Sequence[Any], shift: int, notify: bool = True
    ) -> Outcome:
        try:
            result = self.ql.execute(sql, list(params))
        except QueryLeafError as exc:
            if self.cancelled:
                raise _cancelled() from exc
            if exc.error_code is ErrorCode.LIVE_QUERY:
                return self._live_rows(sql, params, shift)
            raise from_queryleaf(exc, sql, shift) from exc
        except Exception as exc:
            if self.cancelled:  # the driver, its session ended under it, fails its own way
                raise _cancelled() from exc
            raise
        notices = [str(w) for w in result.warnings]
        if result.statement.startswith(_WRITE_TAGS):
            self.writes += 1
            self.catalog.changed()
        if not self.ql.in_transaction:
            self.savepoints.clear()
        if not result.returns_rows:
            return Command(_tag(result), notices)
        for notice in notices if notify else ():
            self._notice(notice)
        return rows_of(result)

    def _live_rows(self, sql: str, params: Sequence[Any], shift: int) -> Rows:
        try:
            live = self.ql.stream(sql, list(params))
        except QueryLeafError as exc:
            raise from_queryleaf(exc, sql, shift) from exc
        self._live = live
        columns = live.plan.result_columns
        first = list(itertools.islice(live, 1))
        if columns is None:
            columns = list(first[0]) if first else []
        types = infer_column_types(columns, first)
        rows = (tuple(row.get(c) for c in columns) for row in itertools.chain(first, live))
        return Rows(columns, types, rows, live=live)

    # ------------------------------------------------------------ sending
    def _send_rows(
        self, outcome: Rows, formats: list[int], max_rows: int, already: int
    ) -> tuple[int, bool]:
        """Send rows (all, or up to ``max_rows``); (rows sent in all, whether they ended)."""
        row_encoders = encoders(outcome, formats)
        count = len(row_encoders)
        sent = 0
        send = self.send
        flush_each = outcome.live is not None
        try:
            for row in outcome.rows:
                if self.cancelled:
                    raise _cancelled()
                send(m.data_row(row_encoders, row, count))
                if flush_each:
                    self.flush()  # a live row goes out at once
                sent += 1
                if sent == max_rows:
                    self.send(m.PORTAL_SUSPENDED)
                    return already + sent, False
        except QueryLeafError as exc:
            if self.cancelled:
                raise _cancelled() from exc
            raise from_queryleaf(exc, None) from exc
        except WireValueError as exc:
            raise PgError(INVALID_PARAMETER, str(exc)) from exc
        except Exception as exc:
            if self.cancelled:
                raise _cancelled() from exc
            raise
        if outcome.live is not None:
            self._live = None
            if self.cancelled:  # the cancel closed the stream, which ended the rows
                raise _cancelled()
        total = already + sent
        self.send(m.command_complete(f"{outcome.tag} {total}"))
        return total, True

    def _complete(self, outcome: Command) -> None:
        for notice in outcome.notices:
            self._notice(notice)
        self.send(m.EMPTY_QUERY if outcome.tag == EMPTY else m.command_complete(outcome.tag))

    def _notice(self, text: str) -> None:
        self.send(m.notice_or_error(b"N", PgError(WARNING, text).fields("WARNING")))

    def send_error(self, exc: PgError) -> None:
        self.send(m.notice_or_error(b"E", exc.fields()))


def _cancelled() -> PgError:
    return PgError(QUERY_CANCELED, "canceling statement due to user request")


def _is_cursor(portal: Portal | None) -> bool:
    return portal is not None and isinstance(portal.outcome, Rows) and portal.outcome.cursor


def _parameter_count(prepared: Prepared) -> int:
    if prepared.statement is None:
        numbers = [int(n) for n in re.findall(r"\$(\d+)", prepared.sql)]
        return max([len(prepared.param_oids), *numbers])
    indexes = [
        n.index
        for n in walk(prepared.statement)
        if isinstance(n, ast.Param) and n.index is not None
    ]
    return max([len(prepared.param_oids), *(i + 1 for i in indexes)])


def _tag(result: Result) -> str:
    kind = (result.statement or "OK").upper()
    if kind == "INSERT":
        return f"INSERT 0 {max(result.rowcount, 0)}"
    if kind in ("UPDATE", "DELETE"):
        return f"{kind} {max(result.rowcount, 0)}"
    return kind
