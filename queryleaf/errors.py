"""The one error hierarchy of queryleaf (DESIGN.md §6)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from queryleaf.sql.redact import RedactedSql, scrub


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
    """

    def __init__(self, message: str, position: Position | None = None, sql: str | None = None):
        super().__init__(message)
        self.message = message
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

    def __str__(self) -> str:
        where = f" at {self.position}" if self.position else ""
        body = f"{self.message}{where}"
        ex = self.excerpt()
        return f"{body}\n{ex}" if ex else body


class SqlSyntaxError(QueryLeafError):
    """The text is not valid queryleaf SQL."""

    def __init__(
        self,
        message: str,
        position: Position | None = None,
        sql: str | None = None,
        token: str | None = None,
        expected: tuple[str, ...] = (),
    ):
        self.token = token
        self.expected = expected
        super().__init__(message, position, sql)

    def _scrub(self, clean: Callable[[str], str]) -> None:
        super()._scrub(clean)
        if self.token is not None:
            self.token = clean(self.token)


class PlanningError(QueryLeafError):
    """Valid syntax that queryleaf cannot compile (unknown name, inexpressible construct...)."""


class ParameterError(QueryLeafError):
    """A placeholder without a value, a value without a placeholder, or an unconvertible value."""


class SubscriptionError(QueryLeafError):
    """An invalid event-subscription definition or operation."""


class EngineError(QueryLeafError):
    """The embedded server could not be found, started or reached."""


class ExecutionError(QueryLeafError):
    """The server rejected a command; keeps MongoDB's code and message, and its error labels
    (``TransientTransactionError``: running the whole transaction again may succeed)."""

    def __init__(self, message: str, code: int | None = None, code_name: str | None = None,
                 position: Position | None = None, sql: str | None = None,
                 labels: frozenset[str] = frozenset()):
        super().__init__(message, position, sql)
        self.code = code
        self.code_name = code_name
        self.labels = labels


class TransactionError(QueryLeafError):
    """BEGIN, COMMIT or ROLLBACK out of place (no transaction open, one already open), or a
    statement refused because the open transaction was aborted by an earlier error."""


class ServerUnreachable(ExecutionError):
    """The server could not be reached (or the connection was lost) while running a statement.
    ``cause`` is the driver's error."""

    def __init__(self, message: str, cause: Exception):
        super().__init__(message)
        self.cause = cause


class ScriptError(QueryLeafError):
    """A statement of a multi-statement script failed.

    ``index`` is the failing statement (0-based), ``statement_position`` where it starts in the
    script, ``cause`` the original error and ``results`` those of the statements that ran.
    """

    def __init__(self, index: int, cause: QueryLeafError, results: list | None = None,
                 statement_position: Position | None = None):
        super().__init__(f"statement {index + 1} failed: {cause.message}",
                         cause.position or statement_position)
        self._source = cause._source  # masked already, and places positions of the text as written
        self.index = index
        self.cause = cause
        self.results = results or []
        self.statement_position = statement_position
