"""Rendering results, EXPLAIN commands and errors for the command line.

``table`` goes through rich (colour only on a terminal); ``json`` is Extended JSON (relaxed), one
array of row objects per result, one per line; ``csv`` is a header line and rows, results separated
by a blank line. In ``json`` and ``csv`` formats status lines (``INSERT 3 (5.1 ms)``) go to stderr
so that stdout holds only data.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import sys
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, TextIO

from bson import json_util
from bson.decimal128 import Decimal128
from bson.objectid import ObjectId
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from queryleaf.mongosh import to_mongosh
from queryleaf.result import Result
from queryleaf.secret import MASK, Secret
from queryleaf.sql.redact import RedactedSql

FORMATS = ("table", "json", "csv")
QUERY_STATEMENTS = ("SELECT", "WITH", "SHOW", "VALUES")
_JSON = json_util.RELAXED_JSON_OPTIONS


# ---------------------------------------------------------------- values


def _to_bson(value: Any) -> Any:
    """Make a value json_util can encode (Python Decimal → Decimal128, tuples → lists) and
    show (a Secret → its mask: the JSON encoder would read its characters)."""
    if isinstance(value, Secret):
        return MASK
    if isinstance(value, Decimal):
        return Decimal128(value)
    if isinstance(value, Mapping):
        return {str(k): _to_bson(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_bson(v) for v in value]
    return value


def to_json(value: Any, indent: int | None = None) -> str:
    """Extended JSON (relaxed); compact on one line unless ``indent`` is given."""
    return json_util.dumps(_to_bson(value), json_options=_JSON, indent=indent)


def _iso(value: dt.datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    spec = "milliseconds" if value.microsecond else "seconds"
    return value.isoformat(timespec=spec) + "Z"


def cell_text(value: Any) -> str:
    """A value as text for a table cell or a CSV field (NULL is handled by the caller)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, dt.datetime):
        return _iso(value)
    if isinstance(value, int | float | Decimal | Decimal128 | uuid.UUID):
        return str(value)
    if isinstance(value, Mapping | list | tuple):
        return to_json(value)
    try:
        return to_json(value)
    except TypeError:
        return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal | Decimal128) and not isinstance(value, bool)


# ---------------------------------------------------------------- results


def result_kind(result: Result) -> str:
    """'explain', 'rows' (a query, possibly empty) or 'status' (writes, DDL)."""
    if result.commands is not None:
        return "explain"
    if result.columns or result.rows:
        return "rows"
    if result.statement.strip().upper().startswith(QUERY_STATEMENTS):
        return "rows"
    return "status"


def result_columns(result: Result) -> list[str]:
    if result.columns:
        return list(result.columns)
    seen: dict[str, None] = {}
    for row in result.rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def status_line(result: Result) -> str:
    """``3 rows (12.4 ms)`` for queries; ``INSERT 3 (5.1 ms)`` or the message for the rest."""
    timing = f" ({result.elapsed_ms:.1f} ms)"
    if result_kind(result) == "rows":
        n = len(result.rows)
        counted = f"{n} row{'' if n == 1 else 's'}{timing}"
        # A message of a statement with rows is a footer (DESCRIBE: the count, the indexes...)
        return f"{result.message}\n{counted}" if result.message else counted
    if result.message:
        return result.message + timing
    words = result.statement.split()
    head = words[0].upper() if words else "OK"
    count = f" {result.rowcount}" if result.rowcount >= 0 else ""
    return f"{head}{count}{timing}"


class Printer:
    """Writes results and errors in one output format."""

    def __init__(self, fmt: str = "table", out: TextIO | None = None, err: TextIO | None = None):
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}")
        self.format = fmt
        self.out = out or sys.stdout
        self.console = _console(self.out)
        self.err_console = _console(err or sys.stderr)
        self._printed_data = False

    # results ----------------------------------------------------------
    def result(self, result: Result) -> None:
        kind = result_kind(result)
        if kind == "explain":
            self.explain(result.commands or [])
        elif kind == "rows":
            self.rows(result)
        else:
            self.status(status_line(result))

    def rows(self, result: Result) -> None:
        columns = result_columns(result)
        if self.format == "json":
            self._write(to_json([{c: row.get(c) for c in columns} for row in result.rows]))
        elif self.format == "csv":
            self._write_csv(columns, result.rows)
        else:
            if columns:
                self.table(rows_table(columns, result.rows))
            self.console.print(Text(status_line(result), style="dim"))
        if self.format != "table":
            self.err_console.print(Text(status_line(result), style="dim"))

    def table(self, table: Table) -> None:
        """Print a table; off a terminal without the padding at the ends of lines."""
        if self.console.is_terminal:
            self.console.print(table)
            return
        with self.console.capture() as captured:
            self.console.print(table)
        self._write("\n".join(line.rstrip() for line in captured.get().splitlines()))

    def status(self, line: str) -> None:
        console = self.console if self.format == "table" else self.err_console
        console.print(Text(line, style="dim" if self.format != "table" else ""))

    def explain(self, commands: list[dict[str, Any]]) -> None:
        if self.format == "json":
            self._write(to_json(commands))
            return
        if self.format == "csv":
            self._write_csv(
                ["mongosh", "json"],
                [{"mongosh": to_mongosh(c), "json": to_json(c)} for c in commands],
            )
            return
        for i, command in enumerate(commands, 1):
            if len(commands) > 1:
                self.console.print(Text(f"-- command {i} of {len(commands)}", style="bold"))
            self.console.print(Text("mongosh:", style="bold cyan"))
            self.console.print(Text(to_mongosh(command)), soft_wrap=True)
            self.console.print(Text("JSON:", style="bold cyan"))
            self.console.print(Text(to_json(command, indent=2)), soft_wrap=True)
            if i < len(commands):
                self.console.print()

    def _write(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def _write_csv(self, columns: list[str], rows: list[dict[str, Any]]) -> None:
        if self._printed_data:
            self.out.write("\n")
        writer = csv.writer(self.out, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else cell_text(row.get(c)) for c in columns])
        self.out.flush()
        self._printed_data = True

    # errors -----------------------------------------------------------
    def error(self, headline: str, excerpt: str = "") -> None:
        """A one-line error (``error: ...`` or ``file:3:7: error: ...``) and a caret excerpt."""
        self.err_console.print(Text(headline, style="bold red"), soft_wrap=True)
        if excerpt:
            self.err_console.print(Text(excerpt, style="yellow"), soft_wrap=True)

    def warning(self, headline: str, excerpt: str = "") -> None:
        """A one-line warning (``warning: ...`` or ``file:3:7: warning: ...``) and an excerpt."""
        self.err_console.print(Text(headline, style="bold yellow"), soft_wrap=True)
        if excerpt:
            self.err_console.print(Text(excerpt, style="yellow"), soft_wrap=True)

    def info(self, text: str) -> None:
        self.console.print(Text(text), soft_wrap=True)


def rows_table(columns: list[str], rows: list[dict[str, Any]]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in columns:
        numeric = any(_is_number(r.get(column)) for r in rows) and all(
            r.get(column) is None or _is_number(r.get(column)) for r in rows
        )
        table.add_column(column, justify="right" if numeric else "left", overflow="fold")
    for row in rows:
        table.add_row(
            *[
                Text("NULL", style="dim") if row.get(c) is None else Text(cell_text(row.get(c)))
                for c in columns
            ]
        )
    return table


def _console(stream: TextIO) -> Console:
    is_tty = hasattr(stream, "isatty") and stream.isatty()
    width = None
    if not is_tty:  # pipes and files: never wrap tables at 80 columns
        width = int(os.environ.get("COLUMNS", "0") or 0) or 4096
    return Console(
        file=stream, width=width, highlight=False, soft_wrap=False, emoji=False, markup=False
    )


# ---------------------------------------------------------------- errors


def caret_excerpt(text: str, line: int, column: int) -> str:
    """The ``line`` of ``text`` with a caret under ``column`` (both 1-based), or ''; secret
    literals masked (the caret stays under the same token)."""
    redacted = RedactedSql.of(text)
    line, column = redacted.locate(line, column)
    lines = redacted.text.splitlines()
    if not lines or line < 1:
        return ""
    source = lines[min(line, len(lines)) - 1].expandtabs(1)
    return f"{source}\n{' ' * max(column - 1, 0)}^"


# ---------------------------------------------------------------- mongosh
