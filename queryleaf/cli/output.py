"""Rendering results, EXPLAIN commands and errors for the command line.

``table`` is laid out by queryleaf.cli.render (a table that fits the width, or one record per
block: ``expanded``), NULL shown as ``null_text``, through a pager when it is taller than the
terminal; ``json`` is Extended JSON (relaxed), one array of row objects per result, one per line;
``csv`` is a header line and rows, results separated by a blank line, NULL an empty field and the
empty string ``""``. In ``json`` and ``csv`` formats status lines (``INSERT 3 (5.1 ms)``) go to
stderr so that stdout holds only data.
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, TextIO

from bson import json_util
from bson.decimal128 import Decimal128
from bson.objectid import ObjectId
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from queryleaf.cli import render
from queryleaf.mongosh import to_mongosh
from queryleaf.result import Result
from queryleaf.secret import MASK, Secret
from queryleaf.sql.redact import RedactedSql

FORMATS = ("table", "json", "csv")
EXPANDED = ("auto", "on", "off")  # the vertical record view: when a row does not fit, always, never
DEFAULT_PAGER = "less -SRXF"
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

    def __init__(
        self,
        fmt: str = "table",
        out: TextIO | None = None,
        err: TextIO | None = None,
        width: int | None = None,
    ):
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}")
        self.format = fmt
        self.out = out or sys.stdout
        self.console = _console(self.out)
        self.err_console = _console(err or sys.stderr)
        self._printed_data = False
        self._width = width
        self.expanded = "auto"
        self.null_text = render.NULL_TEXT
        self.pager: str | None = None  # the pager command; None: never page
        self._vertical_once = False

    @property
    def width(self) -> int:
        return self._width or self.console.width

    @contextmanager
    def vertical(self) -> Iterator[None]:
        """The vertical view for what is printed inside the block (the shell's ``\\G``)."""
        self._vertical_once = True
        try:
            yield
        finally:
            self._vertical_once = False

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
        self.records(result_columns(result), result.rows, status_line(result))
        if self.format != "table":
            self.err_console.print(Text(status_line(result), style="dim"))

    def records(self, columns: list[str], rows: list[dict[str, Any]], footer: str = "") -> None:
        """Rows in the output format; in the table format a table when it fits (or ``expanded``
        is off), else the vertical view, through the pager when taller than the terminal."""
        if self.format == "json":
            self._write(to_json([{c: row.get(c) for c in columns} for row in rows]))
            return
        if self.format == "csv":
            self._write_csv(columns, rows)
            return
        lines = self.layout(columns, rows) if columns else []
        if footer:
            lines.append(footer)
        if self._should_page(len(lines)) and self._page(lines):
            return
        if not self.console.is_terminal:
            if lines:
                self._write("\n".join(lines))
            return
        for i, line in enumerate(lines):
            style = "dim" if footer and i == len(lines) - 1 else ""
            self.console.print(Text(line, style=style), soft_wrap=True)

    def layout(self, columns: list[str], rows: list[dict[str, Any]]) -> list[str]:
        """The lines of the table or of the vertical view (no footer)."""
        if self._vertical_once or self.expanded == "on":
            return self._vertical(columns, rows)
        headers = [render.one_line(c) for c in columns]
        cells = [[render.one_line(self.text(row.get(c))) for c in columns] for row in rows]
        widths = render.fit_table(headers, cells, self.width)
        if widths is None:
            if self.expanded == "auto":
                return self._vertical(columns, rows)
            widths = render.natural_widths(headers, cells)
        right = [_numeric(c, rows) for c in columns]
        return render.table_lines(headers, cells, widths, right)

    def _vertical(self, columns: list[str], rows: list[dict[str, Any]]) -> list[str]:
        cells = [[self.text(row.get(c)) for c in columns] for row in rows]
        return render.vertical_lines([render.one_line(c) for c in columns], cells, self.width)

    def text(self, value: Any) -> str:
        """A value as the table format shows it (NULL as ``null_text``)."""
        return self.null_text if value is None else cell_text(value)

    def _should_page(self, height: int) -> bool:
        return (
            self.pager is not None
            and self.format == "table"
            and self.console.is_terminal
            and height > self.console.height - 1  # the prompt takes a line too
        )

    def _page(self, lines: list[str]) -> bool:
        """Show ``lines`` through the pager; False (and the pager off) if it cannot start."""
        assert self.pager is not None
        self.out.flush()
        try:
            proc = subprocess.Popen(shlex.split(self.pager), stdin=subprocess.PIPE, text=True)
        except (OSError, ValueError) as exc:
            self.error(f"error: cannot start the pager {self.pager!r} ({exc}); pager off")
            self.pager = None
            return False
        try:
            proc.communicate("\n".join(lines) + "\n")
        except BrokenPipeError:  # the user left the pager before reading everything
            pass
        while True:  # Ctrl-C belongs to the pager (less handles it), as in psql
            try:
                proc.wait()
                return True
            except KeyboardInterrupt:
                continue

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
        self.out.write(",".join(csv_field(c) for c in columns) + "\n")
        for row in rows:
            self.out.write(",".join(csv_field(row.get(c)) for c in columns) + "\n")
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


def csv_field(value: Any) -> str:
    """One CSV field (RFC 4180): NULL is empty, the empty string ``""``; quoted when needed."""
    if value is None:
        return ""
    text = cell_text(value)
    if text == "" or any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _numeric(column: str, rows: list[dict[str, Any]]) -> bool:
    """Numbers are right-aligned: a column with a number and nothing but numbers and NULLs."""
    values = [r.get(column) for r in rows]
    return any(_is_number(v) for v in values) and all(v is None or _is_number(v) for v in values)


def rows_table(columns: list[str], rows: list[dict[str, Any]]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in columns:
        table.add_column(
            column,
            justify="right" if _numeric(column, rows) else "left",
            no_wrap=True,
            overflow="ellipsis",
        )
    for row in rows:
        table.add_row(
            *[
                Text(render.NULL_TEXT, style="dim")
                if row.get(c) is None
                else Text(render.one_line(cell_text(row.get(c))))
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
