"""Printing a live query's rows as they arrive (``-e``, ``run`` and the shell).

JSON: one object per line (relaxed Extended JSON), flushed at once, so the output pipes into
``jq``; CSV: the header, then a line per row; table: the header once, then a line per row, the
columns as wide as the header and the first row made them (longer cells are cut). The stream ends
at its LIMIT, at ``--timeout`` (which bounds the whole stream) or at Ctrl-C, which is a normal
end here (exit 0; the shell's prompt returns).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.cells import cell_len
from rich.text import Text

from queryleaf.api import Params, QueryLeaf
from queryleaf.cli import render
from queryleaf.cli.output import Printer, csv_field, to_json
from queryleaf.sql import ast

MIN_WIDTH = 8  # a table column's width at least (later rows may be wider: they are cut)


def is_live(parsed: ast.ParsedStatement) -> bool:
    return isinstance(parsed.statement, ast.LiveQuery)


def print_live(
    ql: QueryLeaf, parsed: ast.ParsedStatement, script: str, printer: Printer, params: Params = None
) -> None:
    """Stream the rows of a live query to ``printer`` until it ends or Ctrl-C."""
    rows = ql.stream_parsed(parsed, script, params, timeout=ql.timeout)
    columns = rows.plan.result_columns or []
    aggregation = rows.plan.aggregation
    in_place = (
        aggregation is not None
        and not aggregation.final
        and printer.format == "table"
        and printer.console.is_terminal
    )
    try:
        if in_place:
            LiveTable(printer, columns).show(rows)
        else:
            lines = LiveLines(printer, columns)
            for row in rows:
                lines.row(row)
    except KeyboardInterrupt:
        pass  # the user's way to stop watching
    finally:
        rows.close()
    printer.err_console.print(Text(f"({rows.rows_seen} rows; change stream closed)", style="dim"))


class LiveLines:
    """A row at a time, in the printer's format."""

    def __init__(self, printer: Printer, columns: list[str]):
        self.printer = printer
        self.columns = columns  # empty: SELECT *, the first row's fields
        self.widths: list[int] = []
        self.right: list[bool] = []

    def row(self, row: dict[str, Any]) -> None:
        if not self.columns:
            self.columns = list(row)
        fmt = self.printer.format
        if fmt == "json":
            self._write(to_json({c: row.get(c) for c in self.columns}))
        elif fmt == "csv":
            if not self.widths:
                self.widths = [0] * len(self.columns)
                self._write(",".join(csv_field(c) for c in self.columns))
            self._write(",".join(csv_field(row.get(c)) for c in self.columns))
        else:
            self._table_row(row)

    def _table_row(self, row: dict[str, Any]) -> None:
        cells = [render.one_line(self.printer.text(row.get(c))) for c in self.columns]
        if not self.widths:
            headers = [render.one_line(c) for c in self.columns]
            self.widths = [
                max(cell_len(h), cell_len(v), MIN_WIDTH)
                for h, v in zip(headers, cells, strict=True)
            ]
            self.right = [
                isinstance(row.get(c), int | float) and not isinstance(row.get(c), bool)
                for c in self.columns
            ]
            for line in render.table_lines(headers, [], self.widths, self.right):
                self._write(line)
        parts = zip(cells, self.widths, self.right, strict=True)
        self._write(
            render.GAP.join(render.pad(render.cut(t, w), w, r) for t, w, r in parts).rstrip()
        )

    def _write(self, line: str) -> None:
        out = self.printer.out
        out.write(line + "\n")
        out.flush()


class LiveTable:
    """A live aggregate's current rows as one table redrawn in place (rich Live): a row whose
    key and window were shown is updated where it stands; the newest rows that fit the
    terminal are shown."""

    def __init__(self, printer: Printer, columns: list[str]):
        self.printer = printer
        self.columns = columns
        self.current: dict[Any, dict[str, Any]] = {}

    def show(self, rows: Iterable[dict[str, Any]]) -> None:
        from rich.live import Live

        console = self.printer.console
        with Live(self._text(), console=console, auto_refresh=False, transient=False) as live:
            for row in rows:
                identity = getattr(row, "identity", None) or (len(self.current),)
                self.current[identity] = row  # a known row keeps its place
                live.update(self._text(), refresh=True)

    def _text(self) -> Text:
        height = max(self.printer.console.size.height - 4, 3)
        shown = list(self.current.values())[-height:]
        headers = [render.one_line(c) for c in self.columns]
        cells = [
            [render.one_line(self.printer.text(row.get(c))) for c in self.columns] for row in shown
        ]
        widths = render.fit_table(headers, cells, self.printer.console.size.width)
        widths = widths or render.natural_widths(headers, cells)
        right = [bool(shown) and isinstance(shown[-1].get(c), int | float) for c in self.columns]
        more = len(self.current) - len(shown)
        lines = render.table_lines(headers, cells, widths, right)
        if more:
            lines.append(f"({more} more rows above)")
        return Text("\n".join(lines))
