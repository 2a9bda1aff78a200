"""``\\watch [seconds]`` in the shell: run the last query again every few seconds, redrawn in
place (psql's ``\\watch``, the screen cleared as ``watch(1)`` does), until Ctrl-C.

Only reads are repeated (queries, ``SHOW``, ``EXPLAIN``): re-running an INSERT every two seconds
is never what was meant. The watch stops at the first error, which stays on the screen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from rich.text import Text

from queryleaf.api import QueryLeaf
from queryleaf.cli.output import Printer
from queryleaf.cli.run import run_text
from queryleaf.errors import QueryLeafError
from queryleaf.sql import ast
from queryleaf.sql.parser import parse_script

DEFAULT_INTERVAL_S = 2.0
READS = (
    ast.QueryStatement,
    ast.ShowSubscriptions,
    ast.ShowTables,
    ast.ShowViews,
    ast.ShowDatabases,
    ast.ShowIndexes,
    ast.Describe,
    ast.Explain,
)
CLEAR_SCREEN = "\x1b[H\x1b[2J\x1b[3J"  # home, clear the screen and the scroll-back


def watchable(text: str) -> str | None:
    """Why ``text`` cannot be watched, or None when every statement of it only reads."""
    try:
        statements = parse_script(text)
    except QueryLeafError:
        return "the last input did not parse"
    for parsed in statements:
        if isinstance(parsed.statement, ast.LiveQuery):
            return "a live query (EMIT CHANGES) shows the changes as they come: run it again"
        if not isinstance(parsed.statement, READS):
            return (
                f"\\watch repeats queries only, not {parsed.text.split()[0].upper()} "
                "(it would run it again every interval)"
            )
    return None


def header(text: str, interval: float, now: datetime) -> str:
    """``Every 2s  2025-06-01 12:00:03  SELECT ...  (Ctrl-C to stop)``."""
    first = " ".join(text.split())
    if len(first) > 60:
        first = first[:59] + "…"
    return f"Every {interval:g}s  {now:%Y-%m-%d %H:%M:%S}  {first}  (Ctrl-C to stop)"


def watch(
    ql: QueryLeaf,
    printer: Printer,
    text: str,
    interval: float,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Run ``text`` every ``interval`` seconds until Ctrl-C (or an error); returns then."""
    in_place = printer.format == "table" and printer.console.is_terminal
    try:
        while True:
            started = time.monotonic()
            if in_place:
                printer.out.write(CLEAR_SCREEN)
                printer.out.flush()
            printer.console.print(Text(header(text, interval, datetime.now()), style="bold"))
            if not run_text(ql, text, printer):
                return
            if not in_place:
                printer.console.print()
            sleep(max(interval - (time.monotonic() - started), 0.0))
    except KeyboardInterrupt:
        printer.console.print()
