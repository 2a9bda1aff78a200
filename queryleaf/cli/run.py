"""Running SQL text non-interactively: ``queryleaf run FILE...`` and ``queryleaf -e SQL``.

Both stop at the first failing statement. Errors are reported with the line and column in the
text they came from (the file, for ``run``), like a compiler: ``path:3:7: error: message``.
A transaction still open when the text ends (BEGIN without COMMIT, or a statement failed inside
it) is rolled back; ending normally with one open is an error, since nothing was committed.
"""

from __future__ import annotations

from dataclasses import dataclass

from queryleaf.api import QueryLeaf
from queryleaf.cli.output import Printer, caret_excerpt
from queryleaf.errors import (
    ErrorCode,
    ExecutionError,
    Position,
    QueryLeafError,
    ScriptError,
    ServerUnreachable,
)
from queryleaf.result import QueryWarning, Result
from queryleaf.sql.parser import parse_script

EXIT_OK = 0
EXIT_SQL_ERROR = 1  # a statement failed (syntax, planning, execution) or a file is missing


@dataclass(frozen=True)
class LocatedError:
    """An error of a script, placed in the script's text."""

    message: str
    line: int | None = None
    column: int | None = None
    statement: int | None = None  # 1-based index of the failing statement, if known
    statements: int = 1  # how many statements the script holds (0 when it did not parse)
    excerpt: str = ""


def describe(exc: QueryLeafError) -> str:
    """The message of an error after its code (``QL2001: ...``), with MongoDB's code for server
    errors."""
    message = exc.coded_message
    if isinstance(exc, ExecutionError) and exc.code is not None and str(exc.code) not in message:
        message += f" (MongoDB error {exc.code}" + (f" {exc.code_name})" if exc.code_name else ")")
    return message


def locate(exc: QueryLeafError, text: str) -> LocatedError:
    """Where in ``text`` the error is: its own position, else the failing statement's start."""
    cause = exc.cause if isinstance(exc, ScriptError) else exc
    position = cause.position
    line, column = (position.line, position.column) if position else (None, None)
    index = exc.index if isinstance(exc, ScriptError) else None
    count = 0
    try:
        statements = parse_script(text)
        count = len(statements)
    except QueryLeafError:
        statements = []
    if line is None and index is not None and index < len(statements):
        line, column = statements[index].line, statements[index].column
    excerpt = caret_excerpt(text, line, column) if line is not None and column is not None else ""
    return LocatedError(
        describe(cause), line, column, None if index is None else index + 1, count, excerpt
    )


def file_headline(path: str, err: LocatedError) -> str:
    """``path:line:col: error: message`` (``path: error: message`` without a position)."""
    where = f"{path}:{err.line}:{err.column}" if err.line is not None else path
    return f"{where}: error: {err.message}"


def warning_headline(warning: QueryWarning, path: str | None) -> str:
    """``path:line:col: warning: message`` for files, ``warning at line L, column C: message``."""
    pos = warning.position
    if path:
        where = f"{path}:{pos.line}:{pos.column}" if pos else path
        return f"{where}: warning: {warning.message}"
    return f"warning at {pos}: {warning.message}" if pos else f"warning: {warning.message}"


def print_result(printer: Printer, result: Result, text: str, path: str | None) -> None:
    """A result, after its warnings (to stderr, as a compiler prints them)."""
    for warning in result.warnings:
        pos = warning.position
        excerpt = caret_excerpt(text, pos.line, pos.column) if pos else ""
        printer.warning(warning_headline(warning, path), excerpt)
    printer.result(result)


def text_headline(err: LocatedError) -> str:
    """``error in statement 2 at line 3, column 5: message`` for -e and the REPL."""
    head = "error"
    if err.statement is not None and err.statements > 1:
        head += f" in statement {err.statement}"
    if err.line is not None:
        head += f" at line {err.line}, column {err.column}"
    return f"{head}: {err.message}"


def connection_message(exc: Exception, uri: str | None = None) -> str:
    """A one-line message for a database that cannot be reached (or a URI that is invalid),
    after its error code."""
    from pymongo.errors import ConfigurationError

    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    detail = detail.split(", Timeout:")[0].split(" (configured timeouts:")[0]
    where = f" {redact(uri)}" if uri else ""
    if isinstance(exc, ConfigurationError):
        return f"{ErrorCode.INVALID_URI}: invalid MongoDB URI{where}: {detail}"
    at = f" at{where}" if uri else ""
    return f"{ErrorCode.SERVER_UNREACHABLE}: cannot reach MongoDB{at}: {detail}"


def redact(uri: str) -> str:
    """The URI without its password."""
    scheme, sep, rest = uri.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return uri
    credentials, _, host = rest.partition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else uri


class ConnectionLost(Exception):
    """The server became unreachable while running statements."""


def run_text(ql: QueryLeaf, text: str, printer: Printer, path: str | None = None) -> bool:
    """Run every statement of ``text``, print the results; on the first error print it and
    return False. ``path`` names the file the text came from (for ``file:line:col``).

    Raises ConnectionLost when the server cannot be reached.
    """
    try:
        results = _run_script(ql, text, printer, path)
    except QueryLeafError as exc:
        if isinstance(exc, ScriptError):
            for result in exc.results:  # results of the statements before the failure
                print_result(printer, result, text, path)
        cause = exc.cause if isinstance(exc, ScriptError) else exc
        if isinstance(cause, ServerUnreachable):
            raise ConnectionLost(connection_message(cause.cause, ql.uri)) from exc
        err = locate(exc, text)
        headline = file_headline(path, err) if path else text_headline(err)
        printer.error(headline, err.excerpt)
        return False
    for result in results:
        print_result(printer, result, text, path)
    return True


def _run_script(ql: QueryLeaf, text: str, printer: Printer, path: str | None) -> list[Result]:
    """``ql.execute_script(text)``; a live query's rows are printed as they arrive (the results
    of the statements before it first)."""
    from queryleaf.cli.live import is_live, print_live

    statements = ql.parse_script(text)
    if not any(is_live(p) for p in statements):
        return ql.execute_script(text)
    results: list[Result] = []
    for index, parsed in enumerate(statements):
        try:
            if is_live(parsed):
                for result in results:
                    print_result(printer, result, text, path)
                results = []
                print_live(ql, parsed, text, printer)
            else:
                results.append(ql.execute_parsed(parsed, text))
        except QueryLeafError as exc:
            start = Position(parsed.line, parsed.column)
            raise ScriptError(index, exc, results, start) from exc
    return results


def end_open_transaction(ql: QueryLeaf) -> None:
    """Roll back the transaction the statements left open."""
    try:
        ql.execute("ROLLBACK")
    except QueryLeafError:
        pass  # nothing open any more


def finish(ql: QueryLeaf, printer: Printer, ok: bool, where: str | None = None) -> bool:
    """After ``-e`` / ``run``: roll back a transaction left open, and say so. Returns whether
    everything went well (a text that ended normally inside a transaction did not)."""
    if not ql.in_transaction:
        return ok
    end_open_transaction(ql)
    head = f"{where}: error" if where else "error"
    if ok:
        printer.error(
            f"{head}: the statements ended inside a transaction (BEGIN without "
            "COMMIT): it was rolled back, nothing it changed was committed"
        )
    else:
        printer.error(
            f"{head}: the open transaction was rolled back: nothing it changed was committed"
        )
    return False
