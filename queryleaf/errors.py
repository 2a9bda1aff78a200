"""The one error hierarchy of queryleaf, and its stable error codes (docs/errors.md).

Every error carries a code (``QL2001``) that names what went wrong independently of the
message's wording: ``str(error)`` and the CLI show it before the message. A class has a default
code (``QLn000``, the other errors of its kind); the most common errors raise with their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from queryleaf.sql.redact import RedactedSql, scrub


class ErrorCode(StrEnum):
    """The stable codes. The first digit is the kind of error: 0 the Python API, 1 syntax,
    2 planning, 3 execution, 4 event subscriptions, 5 parameters, 6 the embedded server.
    A code once published keeps its meaning; docs/errors.md lists every one (a test checks)."""

    API = "QL0000"
    ROWS_ALREADY_STREAMED = "QL0001"
    INVALID_URI = "QL0002"
    LIVE_QUERY = "QL0003"

    SYNTAX = "QL1000"
    UNEXPECTED_INPUT = "QL1001"
    LIMIT_EXCEEDED = "QL1002"

    PLANNING = "QL2000"
    UNKNOWN_TABLE = "QL2001"
    UNKNOWN_COLUMN = "QL2002"
    AMBIGUOUS_COLUMN = "QL2003"
    UNKNOWN_FUNCTION = "QL2004"

    EXECUTION = "QL3000"
    SERVER_REJECTED = "QL3001"
    DUPLICATE_KEY = "QL3002"
    SERVER_UNREACHABLE = "QL3003"
    STATEMENT_TIMEOUT = "QL3004"
    TRANSACTION = "QL3100"

    SUBSCRIPTION = "QL4000"
    UNKNOWN_SUBSCRIPTION = "QL4001"
    HISTORY_LOST = "QL4002"
    POSITION_AHEAD = "QL4003"
    LEASE_LOST = "QL4004"

    PARAMETER = "QL5000"

    ENGINE = "QL6000"


@dataclass(frozen=True)
class Position:
    """A place in SQL text: 1-based line and column, 0-based character offset."""

    line: int
    column: int
    offset: int = 0

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}"


class QueryLeafError(Exception):
    """Base class of every error queryleaf raises on purpose.

    ``sql`` is the statement the error is about with its secret literals masked (assigning
    it masks them, in the text and wherever the message quotes them: see sql/redact.py).
    ``position`` stays a place in the text as written; ``excerpt`` maps it into the masked one.
    ``error_code`` is the stable code (the class's ``default_code`` unless the raiser names a
    more specific one); ``message`` is the text without it.
    """

    default_code = ErrorCode.API

    def __init__(
        self,
        message: str,
        position: Position | None = None,
        sql: str | None = None,
        *,
        error_code: ErrorCode | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.error_code = error_code or self.default_code
        self.position = position
        self._source: RedactedSql | None = None
        self.sql = sql

    @property
    def sql(self) -> str | None:
        return self._source.text if self._source is not None else None

    @sql.setter
    def sql(self, text: str | None) -> None:
        self._source = RedactedSql.of(text) if text is not None else None
        if text is not None:
            self._scrub(lambda message: scrub(message, text))

    def _scrub(self, clean: Callable[[str], str]) -> None:
        """Mask the secret literals of the statement where this error's text quotes them."""
        self.message = clean(self.message)
        self.args = (self.message, *self.args[1:])

    def append(self, text: str) -> None:
        """Add to the message (what the error means for the transaction it happened in)."""
        self.message += text
        self.args = (self.message, *self.args[1:])

    def excerpt(self) -> str:
        """The offending line of the SQL with a caret under the position, or ''."""
        if self.position is None or self._source is None or not self._source.text:
            return ""
        line, column = self._source.locate(self.position.line, self.position.column)
        lines = self._source.text.splitlines() or [""]
        idx = min(max(line - 1, 0), len(lines) - 1)
        text = lines[idx]
        return f"{text}\n{' ' * max(column - 1, 0)}^"

    @property
    def coded_message(self) -> str:
        """``QL2001: message``: what the CLI prints."""
        return f"{self.error_code}: {self.message}"

    def __str__(self) -> str:
        where = f" at {self.position}" if self.position else ""
        body = f"{self.coded_message}{where}"
        ex = self.excerpt()
        return f"{body}\n{ex}" if ex else body


class SqlSyntaxError(QueryLeafError):
    """The text is not valid queryleaf SQL."""

    default_code = ErrorCode.SYNTAX

    def __init__(
        self,
        message: str,
        position: Position | None = None,
        sql: str | None = None,
        token: str | None = None,
        expected: tuple[str, ...] = (),
        *,
        error_code: ErrorCode | None = None,
    ):
        self.token = token
        self.expected = expected
        super().__init__(message, position, sql, error_code=error_code)

    def _scrub(self, clean: Callable[[str], str]) -> None:
        super()._scrub(clean)
        if self.token is not None:
            self.token = clean(self.token)


class PlanningError(QueryLeafError):
    """Valid syntax that queryleaf cannot compile (unknown name, inexpressible construct...)."""

    default_code = ErrorCode.PLANNING


class ParameterError(QueryLeafError):
    """A placeholder without a value, a value without a placeholder, or an unconvertible value."""

    default_code = ErrorCode.PARAMETER


class SubscriptionError(QueryLeafError):
    """An invalid event-subscription definition or operation."""

    default_code = ErrorCode.SUBSCRIPTION


class EngineError(QueryLeafError):
    """The embedded server could not be found, started or reached."""

    default_code = ErrorCode.ENGINE


class ExecutionError(QueryLeafError):
    """A statement failed while it ran. ``code`` and ``code_name`` are MongoDB's when the server
    rejected a command (then the error code says so: SERVER_REJECTED, or DUPLICATE_KEY), with its
    error labels (``TransientTransactionError``: running the whole transaction again may
    succeed)."""

    default_code = ErrorCode.EXECUTION

    def __init__(
        self,
        message: str,
        code: int | None = None,
        code_name: str | None = None,
        position: Position | None = None,
        sql: str | None = None,
        labels: frozenset[str] = frozenset(),
        *,
        error_code: ErrorCode | None = None,
    ):
        if error_code is None and code is not None:
            error_code = (
                ErrorCode.DUPLICATE_KEY
                if code in DUPLICATE_KEY_CODES
                else ErrorCode.SERVER_REJECTED
            )
        super().__init__(message, position, sql, error_code=error_code)
        self.code = code
        self.code_name = code_name
        self.labels = labels


class TransactionError(QueryLeafError):
    """BEGIN, COMMIT or ROLLBACK out of place (no transaction open, one already open), or a
    statement refused because the open transaction was aborted by an earlier error."""

    default_code = ErrorCode.TRANSACTION


DUPLICATE_KEY_CODES = (11000, 11001)  # MongoDB's: a unique index refused a write


class ServerUnreachable(ExecutionError):
    """The server could not be reached (or the connection was lost) while running a statement.
    ``cause`` is the driver's error."""

    default_code = ErrorCode.SERVER_UNREACHABLE

    def __init__(self, message: str, cause: Exception):
        super().__init__(message)
        self.cause = cause


class ScriptError(QueryLeafError):
    """A statement of a multi-statement script failed.

    ``index`` is the failing statement (0-based), ``statement_position`` where it starts in the
    script, ``cause`` the original error and ``results`` those of the statements that ran. Its
    error code is the cause's.
    """

    def __init__(
        self,
        index: int,
        cause: QueryLeafError,
        results: list | None = None,
        statement_position: Position | None = None,
    ):
        super().__init__(
            f"statement {index + 1} failed: {cause.message}",
            cause.position or statement_position,
            error_code=cause.error_code,
        )
        self._source = cause._source  # masked already, and places positions of the text as written
        self.index = index
        self.cause = cause
        self.results = results or []
        self.statement_position = statement_position
