"""The Python API: ``queryleaf.connect(...).execute(sql)``."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pymongo
import pymongo.errors
from pymongo.client_session import ClientSession

from queryleaf import engine, plan
from queryleaf.cancel import InFlight, StatementRunner, time_limit_error
from queryleaf.changestream.clients import Source
from queryleaf.clients import close_client
from queryleaf.columns import check_columns
from queryleaf.errors import ErrorCode, Position, QueryLeafError, ScriptError, TransactionError
from queryleaf.executor import Executor, server_error
from queryleaf.introspection import UseDatabase
from queryleaf.live.stream import LiveRows
from queryleaf.planner import Catalog, ColumnReference, plan_statement
from queryleaf.result import Result
from queryleaf.sampling import FieldSampler
from queryleaf.sql import ast
from queryleaf.sql.parser import parse, parse_script
from queryleaf.sql.walk import table_names
from queryleaf.transaction import Transaction, check_allowed

DEFAULT_DATABASE = "queryleaf"

Params = Mapping[str, Any] | Sequence[Any] | None


_CONTROL_NAMES: dict[type[plan.TransactionControl], str] = {
    plan.StartTransaction: "BEGIN",
    plan.CommitTransaction: "COMMIT",
    plan.AbortTransaction: "ROLLBACK",
}


class QueryLeaf:
    """A connection to one MongoDB database that runs queryleaf SQL.

    Statements commit one by one, unless a transaction is open: ``BEGIN`` ... ``COMMIT`` /
    ``ROLLBACK`` in SQL, or ``with ql.transaction(): ...``. With ``autobegin`` (the DB-API's
    ``autocommit=False``) a statement run with no transaction open first opens one.

    ``timeout`` (seconds, None for none; settable at any time) limits each statement: MongoDB
    stops it when it runs longer (QL3004). Ctrl-C while a statement runs in the main thread
    kills it on the server (see queryleaf/cancel.py) and raises ``StatementCancelled``, a
    KeyboardInterrupt.
    """

    def __init__(
        self,
        uri: str | None = None,
        database: str | None = None,
        data_dir: str | None = None,
        timeout: float | None = None,
    ):
        self.timeout = timeout
        uri = uri or os.environ.get("QUERYLEAF_URI") or None
        self.database_name = database or os.environ.get("QUERYLEAF_DB") or DEFAULT_DATABASE
        self._lease: engine.ServerLease | None = None
        self._transaction: Transaction | None = None
        self.autobegin = False
        if uri is None:
            self._lease = engine.acquire(data_dir)
            uri = self._lease.uri
        try:
            self._connect(uri)
        except Exception:
            self.close_lease()
            raise
        self.handlers: dict[str, Callable[..., Any]] = {}
        if self._lease is not None:
            # If the embedded server dies, start it again (on the same port, so the clients
            # reconnect by themselves): a long-lived process must not stall on a dead server.
            self._lease.start_watchdog(on_change=self._server_moved)

    def _connect(self, uri: str) -> None:
        options: dict[str, Any] = {"tz_aware": True}
        if "serverselectiontimeoutms" not in uri.lower():
            options["serverSelectionTimeoutMS"] = 10_000
        in_flight = InFlight()
        self.client: pymongo.MongoClient = pymongo.MongoClient(
            uri, event_listeners=[in_flight], **options
        )
        self._statements = StatementRunner(self.client, in_flight)
        self.uri = uri
        self.db = self.client[self.database_name]
        self._executor = Executor(self.db)
        self._fields = FieldSampler(self.db)

    def _server_moved(self, uri: str) -> None:
        """The embedded server was started again on another port: reconnect."""
        if self._transaction is not None:
            self._transaction.lose("the server was restarted, which aborts its transactions")
        old = self.client
        self._connect(uri)
        close_client(old)

    # ------------------------------------------------------------ statements
    def execute(self, sql: str, params: Params = None) -> Result:
        """Run exactly one statement; ``params`` binds ``:name`` / ``?`` placeholders."""
        return self._timed(sql, lambda: self._run(parse(sql), params))

    def stream(
        self,
        sql: str,
        params: Params = None,
        limit: int | None = None,
        timeout: float | None = None,
    ) -> LiveRows:
        """Run a live query (``SELECT ... FROM CHANGE_STREAM(...) ... EMIT CHANGES``): its rows
        as the changes arrive, from now (or its SINCE) until ``limit`` rows (or EMIT's LIMIT,
        the smaller), ``timeout`` seconds for the whole stream, or until the loop stops. The
        change stream opens here and closes when the rows end, the loop breaks, or on
        ``close()`` / leaving a ``with`` block (docs/streaming.md)."""
        try:
            return self._stream(parse(sql), params, limit, timeout)
        except QueryLeafError as exc:
            if exc.sql is None:
                exc.sql = sql
            raise

    def stream_parsed(
        self,
        parsed: ast.ParsedStatement,
        script: str,
        params: Params = None,
        limit: int | None = None,
        timeout: float | None = None,
    ) -> LiveRows:
        """``stream()`` for a live query of ``parse_script(script)`` (errors placed in it)."""
        try:
            return self._stream(parsed.statement, params, limit, timeout)
        except QueryLeafError as exc:
            if exc.sql is None:
                exc.sql = script
            raise

    def _stream(
        self, statement: ast.Statement, params: Params, limit: int | None, timeout: float | None
    ) -> LiveRows:
        if not isinstance(statement, ast.LiveQuery):
            raise QueryLeafError(
                "stream() runs live queries (SELECT ... FROM CHANGE_STREAM(...) ... "
                "EMIT CHANGES); use execute() for other statements",
                statement.pos,
                error_code=ErrorCode.LIVE_QUERY,
            )
        p = plan_statement(statement, params)
        assert isinstance(p, plan.LiveQuery)
        source = Source(self.uri, self.db)  # shared with the process's other streams of it
        return LiveRows(self.db, p, limit=limit, timeout=timeout, source=source)

    def execute_script(self, text: str) -> list[Result]:
        """Run ``;``-separated statements in order; stop at the first error (ScriptError)."""
        results: list[Result] = []
        for index, parsed in enumerate(self.parse_script(text)):
            try:
                results.append(self.execute_parsed(parsed, text))
            except QueryLeafError as exc:
                start = Position(parsed.line, parsed.column)
                raise ScriptError(index, exc, results, start) from exc
        return results

    def parse_script(self, text: str) -> list[ast.ParsedStatement]:
        """The statements of ``text``, for ``execute_parsed``; a syntax error aborts an open
        transaction, as a failing statement does."""
        try:
            return parse_script(text)
        except QueryLeafError as exc:
            self._statement_failed(exc)
            raise

    def execute_parsed(
        self, parsed: ast.ParsedStatement, script: str, params: Params = None
    ) -> Result:
        """Run one statement of ``parse_script(script)`` (errors are placed in ``script``);
        ``params`` binds its placeholders."""

        def run() -> Result:
            result = self._run(parsed.statement, params)
            result.rows  # noqa: B018 - read now: the next statement may change them
            return result

        return self._timed(script, run)

    def _timed(self, sql: str, run: Callable[[], Result]) -> Result:
        """``run()``, timed; its error gets the statement's text and aborts an open
        transaction."""
        started = time.perf_counter()
        try:
            result = run()
        except QueryLeafError as exc:
            self._statement_failed(exc)
            if exc.sql is None:
                exc.sql = sql
            engine.add_server_log_hint(exc, self._lease)
            raise
        result.elapsed_ms = (time.perf_counter() - started) * 1000
        return result

    def explain(self, sql: str, params: Params = None) -> Result:
        """The commands ``sql`` would run, without running them."""
        try:
            statement = parse(sql)
            if not isinstance(statement, ast.Explain):
                statement = ast.Explain(statement, statement.pos)
            p = plan_statement(statement, params, self._catalog(statement))
            return self._executor.run(p)  # runs nothing, in a transaction or not
        except QueryLeafError as exc:
            if exc.sql is None:
                exc.sql = sql  # as execute() does: the excerpt, secret literals masked
            raise

    def _catalog(self, statement: ast.Statement) -> Catalog:
        created = self._transaction.created if self._transaction is not None else ()
        return self._executor.catalog(table_names(statement), frozenset(created))

    def _run(self, statement: ast.Statement, params: Params) -> Result:
        control = isinstance(statement, ast.TransactionStatement)
        if self.autobegin and self._transaction is None and not control:
            self._begin(statement.pos)
        txn = self._transaction
        if txn is not None and not control:
            txn.check_usable(statement)
        references: list[ColumnReference] | None = (
            None if control or isinstance(statement, ast.Explain) else []
        )
        p = plan_statement(statement, params, self._catalog(statement), references)
        if isinstance(p, plan.LiveQuery):
            raise live_query_refused(statement)
        if isinstance(p, plan.TransactionControl):
            return self._control(p, statement.pos)
        if isinstance(p, UseDatabase):
            if txn is not None:
                check_allowed(statement, p)
            self.use(p.database)
            return Result(statement="USE", message=f"USE {p.database}")
        warnings = check_columns(references or [], self._fields)
        empty_columns = None
        if reads_whole_documents(p):
            assert isinstance(p, plan.Find | plan.Aggregate)
            collection = p.collection
            empty_columns = lambda: self._sampled_fields(collection)  # noqa: E731
        try:
            if txn is None:
                result = self._execute(p)
                result.columns_when_empty = empty_columns
            else:
                check_allowed(statement, p)
                try:
                    result = self._execute(p, txn.session)
                    result.columns_when_empty = empty_columns
                    result.rows  # noqa: B018 - read now: a transaction's cursors end with it
                except KeyboardInterrupt:
                    txn.cancel()
                    raise
                txn.wrote(p)
        finally:
            self._fields.written(p)
        result.warnings = warnings
        return result

    def _sampled_fields(self, collection: str) -> list[str]:
        sample = self._fields.sample(collection)
        return list(sample.fields) if sample is not None else []

    def use(self, database: str) -> None:
        """Run the following statements in ``database`` (SQL: ``USE database``); refused while a
        transaction is open, which belongs to the database it started in."""
        if self._transaction is not None:
            raise TransactionError("USE inside a transaction: COMMIT or ROLLBACK it first", None)
        self.database_name = database
        self.db = self.client[database]
        self._executor = Executor(self.db)
        self._fields = FieldSampler(self.db)

    def _execute(self, p: plan.Plan, txn_session: ClientSession | None = None) -> Result:
        """Run a plan: in a transaction's session, or in one of its own, ended with its rows
        (Ctrl-C ends it before killing the statement, so the driver cannot send it again)."""
        own = (
            None if txn_session is not None else self.client.start_session(causal_consistency=False)
        )
        session = txn_session or own
        try:
            result = self._statements.run(
                lambda comment: self._executor.run(p, session, comment), session, self.timeout
            )
        except QueryLeafError as exc:
            if own is not None:
                own.end_session()
            raise time_limit_error(exc, self.timeout) from exc.__cause__
        except BaseException:
            if own is not None:
                own.end_session()  # a no-op when the cancellation ended it already
            raise
        if own is not None:
            result.release_after(own.end_session)
        return result

    def cancel(self) -> int:
        """Stop the statement this connection is running in another thread (not the main
        one, where Ctrl-C does it) on the server; it fails with an error. Returns how many
        operations the server was told to kill."""
        return self._statements.cancel_running()

    # ------------------------------------------------------------ transactions
    @property
    def transaction_status(self) -> str:
        """``idle`` (no transaction), ``open``, or ``aborted`` (a statement failed inside it;
        statements are refused until ROLLBACK)."""
        if self._transaction is None:
            return "idle"
        return "aborted" if self._transaction.aborted else "open"

    @property
    def in_transaction(self) -> bool:
        return self._transaction is not None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """``with ql.transaction(): ...``: the statements of the block form one transaction,
        committed when the block ends normally and rolled back when it raises. Transactions do
        not nest, and BEGIN, COMMIT and ROLLBACK are refused inside the block."""
        txn = self._begin(None, managed=True)
        try:
            yield
        except BaseException:
            if self._transaction is txn:
                self._transaction = None
                txn.rollback()
            raise
        if self._transaction is txn:
            self._commit(None)

    def _control(self, p: plan.TransactionControl, position: Position | None) -> Result:
        name = _CONTROL_NAMES[type(p)]
        if self._transaction is not None and self._transaction.managed:
            raise TransactionError(
                f"{name} inside a `with ql.transaction()` block: the block "
                "commits when it ends, or rolls back when it raises",
                position,
            )
        if isinstance(p, plan.StartTransaction):
            self._begin(position)
        elif isinstance(p, plan.CommitTransaction):
            self._commit(position)
        else:
            self._rollback(position)
        return Result(statement=name, message=name)

    def _begin(self, position: Position | None, managed: bool = False) -> Transaction:
        if self._transaction is not None:
            raise TransactionError(
                "a transaction is already open, and transactions do not "
                "nest: COMMIT or ROLLBACK it first",
                position,
            )
        try:
            self._transaction = Transaction(self.client, managed)
        except pymongo.errors.PyMongoError as exc:
            raise server_error(exc) from exc
        return self._transaction

    def _open(self, name: str, position: Position | None) -> Transaction:
        """The open transaction, which COMMIT or ROLLBACK ends."""
        txn = self._transaction
        if txn is None:
            raise TransactionError(
                f"{name}: no transaction is open (outside BEGIN ... COMMIT "
                "every statement commits on its own)",
                position,
            )
        self._transaction = None
        return txn

    def _commit(self, position: Position | None) -> None:
        txn = self._open("COMMIT", position)
        if txn.aborted:
            txn.rollback()
            raise TransactionError(
                f"the transaction was aborted by an earlier error "
                f"({txn.failure}): it is rolled back, nothing was committed",
                position,
            )
        txn.commit()

    def _rollback(self, position: Position | None) -> None:
        self._open("ROLLBACK", position).rollback()

    def _statement_failed(self, exc: QueryLeafError) -> None:
        """PostgreSQL's rule: an error inside a transaction aborts it."""
        if self._transaction is not None:
            self._transaction.fail(exc)

    # ------------------------------------------------------------ subscriptions
    def on(self, subscription: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register a Python handler for a subscription (``deliver_to`` of that subscription)."""

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.handlers[subscription] = fn
            return fn

        return register

    def run_subscriptions(self, **kwargs: Any) -> Any:
        """Run every active subscription in this process until stopped (see events.worker)."""
        from queryleaf.events.worker import run_worker

        return run_worker(self, **kwargs)

    # ------------------------------------------------------------ lifecycle
    @property
    def embedded_data_dir(self) -> Path | None:
        """The data directory of the embedded server in use; None when connected by URI."""
        return self._lease.data_dir if self._lease is not None else None

    def close(self) -> None:
        """Close the connection; an open transaction is rolled back."""
        txn, self._transaction = self._transaction, None
        if txn is not None:
            txn.rollback()
        close_client(self.client)
        self.close_lease()

    def close_lease(self) -> None:
        if self._lease is not None:
            self._lease.release()
            self._lease = None

    def __enter__(self) -> QueryLeaf:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# Stages that keep a document's fields as they are: a SELECT * made only of these shows the
# collection's own fields, so an empty result can show them as its columns.
_WHOLE_DOCUMENT_STAGES = frozenset({"$match", "$sort", "$skip", "$limit"})


def reads_whole_documents(p: plan.Plan) -> bool:
    """Whether ``p`` is a ``SELECT *`` of one collection's documents, unchanged."""
    if isinstance(p, plan.Find):
        return p.columns is None and not p.projection
    if isinstance(p, plan.Aggregate):
        return p.columns is None and all(
            set(stage) <= _WHOLE_DOCUMENT_STAGES for stage in p.pipeline
        )
    return False


def live_query_refused(statement: ast.Statement) -> QueryLeafError:
    """execute() and the DB-API return finished results: a live query never finishes."""
    return QueryLeafError(
        "a live query (EMIT CHANGES) runs until stopped and returns rows as changes arrive: "
        "run it with QueryLeaf.stream(sql) (in the CLI: queryleaf -e, or the shell)",
        statement.pos,
        error_code=ErrorCode.LIVE_QUERY,
    )


def connect(
    uri: str | None = None,
    database: str | None = None,
    data_dir: str | None = None,
    timeout: float | None = None,
) -> QueryLeaf:
    """Connect to ``uri`` (any MongoDB), or with no URI to the embedded default server;
    ``timeout``: each statement's time limit in seconds (see QueryLeaf)."""
    return QueryLeaf(uri, database, data_dir, timeout)
