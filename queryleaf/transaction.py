"""A connection's open transaction: a MongoDB client session's transaction, and its state.

It follows PostgreSQL: a statement that fails inside a transaction aborts it (the server's
transaction is aborted at once), and every later statement is refused until ROLLBACK ("current
transaction is aborted"). Reads use read concern ``snapshot`` (one point in time for the whole
transaction) and the commit write concern ``majority`` (a committed transaction survives a
failover); see plan.READ_CONCERN / plan.WRITE_CONCERN.
"""

from __future__ import annotations

import pymongo
import pymongo.errors
from pymongo.client_session import ClientSession
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from queryleaf import plan
from queryleaf.errors import (
    ExecutionError,
    PlanningError,
    QueryLeafError,
    ServerUnreachable,
    TransactionError,
)
from queryleaf.executor import error_labels, server_error
from queryleaf.sql import ast
from queryleaf.sql.walk import walk

NO_SUCH_TRANSACTION = 251  # MongoDB's code when the server no longer has the transaction
TRANSIENT = "TransientTransactionError"
UNKNOWN_COMMIT = "UnknownTransactionCommitResult"

_CATALOG = "it changes the database catalog, which queryleaf never does inside a transaction"
_EVENTS = "event subscriptions and their system tables live outside transactions"
_READS_CATALOG = "MongoDB does not list collections, indexes or databases inside a transaction"
_OUTSIDE: dict[type[ast.Statement], tuple[str, str]] = {
    ast.ShowTables: ("SHOW TABLES", _READS_CATALOG),
    ast.ShowViews: ("SHOW VIEWS", _READS_CATALOG),
    ast.ShowDatabases: ("SHOW DATABASES", _READS_CATALOG),
    ast.ShowIndexes: ("SHOW INDEXES", _READS_CATALOG),
    ast.Describe: ("DESCRIBE", _READS_CATALOG),
    ast.Use: ("USE", "a transaction belongs to the database it started in"),
    ast.CreateView: ("CREATE VIEW", _CATALOG),
    ast.DropView: ("DROP VIEW", _CATALOG),
    ast.CreateTable: ("CREATE TABLE", _CATALOG),
    ast.DropTable: ("DROP TABLE", _CATALOG),
    ast.CreateSubscription: ("CREATE EVENT_SUBSCRIPTION", _EVENTS),
    ast.AlterSubscription: ("ALTER EVENT_SUBSCRIPTION", _EVENTS),
    ast.DropSubscription: ("DROP EVENT_SUBSCRIPTION", _EVENTS),
    ast.PauseSubscription: ("PAUSE EVENT_SUBSCRIPTION", _EVENTS),
    ast.ResumeSubscription: ("RESUME EVENT_SUBSCRIPTION", _EVENTS),
    ast.ResetSubscription: ("RESET EVENT_SUBSCRIPTION", _EVENTS),
    ast.ShowSubscriptions: ("SHOW EVENT_SUBSCRIPTIONS", _EVENTS),
    ast.ReplayDeadLetters: ("REPLAY DEAD_LETTER_EVENTS", _EVENTS),
}


def check_allowed(statement: ast.Statement, p: plan.Plan) -> None:
    """Refuse, with its position, a statement that cannot be part of a transaction.

    A plan runs in one only when it says so (``transactional``), so a new kind of statement is
    refused until it is known to be safe. EXPLAIN runs nothing and is always allowed.
    """
    if isinstance(statement, ast.Explain):
        return
    name, reason = _OUTSIDE.get(type(statement), ("this statement", _CATALOG))
    if not p.transactional or isinstance(statement, ast.ShowSubscriptions):
        raise PlanningError(f"{name} cannot run inside a transaction ({reason})", statement.pos)
    for node in walk(statement):
        if isinstance(node, ast.TableFunction):
            raise PlanningError(
                f"{node.name}() cannot be read inside a transaction ({_EVENTS})", node.pos
            )


class Transaction:
    """One open transaction of a connection. ``managed``: owned by a ``with ql.transaction()``
    block, which alone ends it (SQL BEGIN, COMMIT and ROLLBACK are refused inside it)."""

    def __init__(self, client: pymongo.MongoClient, managed: bool = False):
        self.session: ClientSession = client.start_session()
        self.session.start_transaction(
            read_concern=ReadConcern(plan.READ_CONCERN),
            write_concern=WriteConcern(plan.WRITE_CONCERN),
        )
        self.managed = managed
        self.failure: str | None = None  # the message of the error that aborted it
        # Collections its inserts wrote: a new one exists for its later statements although
        # listCollections (run outside the transaction) does not show it yet.
        self.created: set[str] = set()

    @property
    def aborted(self) -> bool:
        return self.failure is not None

    def check_usable(self, statement: ast.Statement) -> None:
        if self.failure is not None:
            raise TransactionError(
                "current transaction is aborted, statements are refused "
                f"until ROLLBACK (it was aborted by: {self.failure})",
                statement.pos,
            )

    def wrote(self, p: plan.Plan) -> None:
        if isinstance(p, plan.Insert | plan.InsertSelect):
            self.created.add(p.collection)

    def fail(self, exc: QueryLeafError) -> None:
        """A statement inside the transaction failed: abort it, and say so in the error."""
        if self.failure is not None or isinstance(exc, TransactionError):
            return  # already aborted; or BEGIN/COMMIT/ROLLBACK misused, which changes nothing
        self.failure = exc.message
        self._abort()
        exc.append(self._consequence(exc))

    def lose(self, reason: str) -> None:
        """The server dropped the transaction (it restarted): later statements are refused."""
        if self.failure is None:
            self.failure = reason

    def cancel(self) -> None:
        """A statement was interrupted (Ctrl-C): what it did is unknown, so abort."""
        if self.failure is None:
            self.failure = "a statement was cancelled"
            self._abort()

    def _consequence(self, exc: QueryLeafError) -> str:
        text = "; the transaction is aborted and nothing it changed will be committed"
        if not self.managed:
            text += ": ROLLBACK to end it"
        if isinstance(exc, ExecutionError):
            if exc.code == NO_SUCH_TRANSACTION:
                text += (
                    " (the server no longer has the transaction: MongoDB aborts one that "
                    "stays open longer than transactionLifetimeLimitSeconds, 60 s by "
                    "default)"
                )
            if TRANSIENT in exc.labels:
                text += f" ({TRANSIENT}: running the whole transaction again may succeed)"
        return text

    def commit(self) -> None:
        """Commit; on failure the error says whether anything was committed."""
        try:
            self.session.commit_transaction()
        except pymongo.errors.PyMongoError as exc:
            raise _commit_error(exc) from exc
        finally:
            self.session.end_session()

    def rollback(self) -> None:
        self._abort()
        try:
            self.session.end_session()
        except pymongo.errors.PyMongoError:
            pass  # its client is closed already (the server moved): nothing left to end

    def _abort(self) -> None:
        if self.session.in_transaction:
            try:
                self.session.abort_transaction()
            except pymongo.errors.PyMongoError:
                pass  # the server aborts it anyway: on error, at timeout, or when it restarts


def _commit_error(exc: pymongo.errors.PyMongoError) -> ExecutionError:
    error = server_error(exc)
    if UNKNOWN_COMMIT in error_labels(exc):
        message = (
            "COMMIT failed and its outcome is unknown: the transaction may or may not "
            f"have been committed ({error.message}); check the data before running it "
            "again"
        )
    else:
        message = (
            f"COMMIT failed ({error.message}): the transaction was rolled back, nothing "
            "it changed was committed"
        )
        if TRANSIENT in error_labels(exc):
            message += f" ({TRANSIENT}: running the whole transaction again may succeed)"
    if isinstance(error, ServerUnreachable):
        return ServerUnreachable(message, error.cause)
    return ExecutionError(message, error.code, error.code_name, labels=error.labels)
