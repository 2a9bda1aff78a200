"""queryleaf's errors as PostgreSQL ``ErrorResponse`` fields: a SQLSTATE code mapped from the
error code, the message, and the position (``P``: a 1-based character offset into the query
text, which psql uses to draw its caret under the offending character)."""

from __future__ import annotations

from queryleaf.errors import ErrorCode, QueryLeafError

# SQLSTATE codes (https://www.postgresql.org/docs/current/errcodes-appendix.html).
SYNTAX_ERROR = "42601"
FEATURE_NOT_SUPPORTED = "0A000"
QUERY_CANCELED = "57014"
PROTOCOL_VIOLATION = "08P01"
INVALID_PASSWORD = "28P01"
INVALID_AUTHORIZATION = "28000"
INTERNAL_ERROR = "XX000"
INVALID_CURSOR_NAME = "34000"
INVALID_STATEMENT_NAME = "26000"
INVALID_PARAMETER = "22023"
IN_FAILED_TRANSACTION = "25P02"
NO_ACTIVE_TRANSACTION = "25P01"
INVALID_SAVEPOINT = "3B001"

SQLSTATE: dict[ErrorCode, str] = {
    ErrorCode.API: INTERNAL_ERROR,
    ErrorCode.ROWS_ALREADY_STREAMED: INTERNAL_ERROR,
    ErrorCode.INVALID_URI: "08001",
    ErrorCode.LIVE_QUERY: FEATURE_NOT_SUPPORTED,
    ErrorCode.SYNTAX: SYNTAX_ERROR,
    ErrorCode.UNEXPECTED_INPUT: SYNTAX_ERROR,
    ErrorCode.LIMIT_EXCEEDED: "54000",  # program_limit_exceeded
    ErrorCode.PLANNING: FEATURE_NOT_SUPPORTED,
    ErrorCode.UNKNOWN_TABLE: "42P01",  # undefined_table
    ErrorCode.UNKNOWN_COLUMN: "42703",  # undefined_column
    ErrorCode.AMBIGUOUS_COLUMN: "42702",  # ambiguous_column
    ErrorCode.UNKNOWN_FUNCTION: "42883",  # undefined_function
    ErrorCode.EXECUTION: "58000",  # system_error: the server failed the statement
    ErrorCode.SERVER_REJECTED: "58000",
    ErrorCode.DUPLICATE_KEY: "23505",  # unique_violation
    ErrorCode.SERVER_UNREACHABLE: "08006",  # connection_failure
    ErrorCode.STATEMENT_TIMEOUT: QUERY_CANCELED,
    ErrorCode.TRANSACTION: "25000",  # invalid_transaction_state
    ErrorCode.SUBSCRIPTION: "42000",
    ErrorCode.UNKNOWN_SUBSCRIPTION: "42704",  # undefined_object
    ErrorCode.HISTORY_LOST: "58000",
    ErrorCode.POSITION_AHEAD: "58000",
    ErrorCode.LEASE_LOST: "58000",
    ErrorCode.PARAMETER: INVALID_PARAMETER,
    ErrorCode.ENGINE: "58000",
}


class PgError(Exception):
    """An error to send as an ErrorResponse (or a NoticeResponse with severity WARNING)."""

    def __init__(self, sqlstate: str, message: str, position: int | None = None):
        super().__init__(message)
        self.sqlstate = sqlstate
        self.message = message
        self.position = position  # 1-based character offset into the query text

    def fields(self, severity: str = "ERROR") -> list[tuple[str, str]]:
        fields = [("S", severity), ("V", severity), ("C", self.sqlstate), ("M", self.message)]
        if self.position is not None:
            fields.append(("P", str(self.position)))
        return fields


def from_queryleaf(exc: QueryLeafError, text: str | None, shift: int = 0) -> PgError:
    """The PgError of a queryleaf error about ``text`` (the statement as run), which begins
    ``shift`` characters into the query text the client sent."""
    sqlstate = SQLSTATE.get(exc.error_code, INTERNAL_ERROR)
    if exc.error_code is ErrorCode.TRANSACTION and "is aborted" in exc.message:
        sqlstate = IN_FAILED_TRANSACTION
    position = None
    if exc.position is not None and text is not None:
        position = shift + exc.position.offset + 1  # 1-based, in the client's query text
    return PgError(sqlstate, f"{exc.error_code}: {exc.message}", position)
