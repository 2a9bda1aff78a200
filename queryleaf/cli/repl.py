"""The interactive shell: ``queryleaf`` with no subcommand.

On a terminal it is a prompt_toolkit session (history, SQL highlighting, multi-line editing);
with stdin from a pipe or file it reads lines without prompts. The semantics are the same:

- input accumulates until a line ends with ``;`` (or the input is a meta command), then runs
  as a script (several statements are fine);
- errors are printed with their position and a caret, and the shell carries on;
- ``\\q``, ``quit``, ``exit`` or end of input (Ctrl-D) leave with status 0, rolling back a
  transaction left open (and saying so);
- Ctrl-C discards the current input, or kills the running statement on the server;
- the prompt shows a transaction: ``queryleaf*>`` while one is open, ``queryleaf!>`` once a
  statement failed in it (statements are refused until ROLLBACK), as psql does.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from queryleaf.api import QueryLeaf
from queryleaf.cancel import StatementCancelled
from queryleaf.cli.output import FORMATS, Printer, rows_table
from queryleaf.cli.run import ConnectionLost, end_open_transaction, run_text

PROMPT = "queryleaf> "
# The prompt by transaction status (QueryLeaf.transaction_status), psql's markers.
PROMPTS = {"idle": PROMPT, "open": "queryleaf*> ", "aborted": "queryleaf!> "}
CONTINUATION = "...> "
HISTORY_FILE = "repl_history"

HELP = """\
Statements end with ';' and may span several lines. Meta commands (at the start of an input):
  \\?  \\h         this help
  \\d             list the collections and views of the database
  \\format [FMT]  show or set the output format (table, json, csv)
  \\timeout [SECONDS|off]  show or set each statement's time limit
  \\q  quit  exit leave (so does Ctrl-D); Ctrl-C discards the current input
"""


def is_quit(text: str) -> bool:
    return text.strip().rstrip(";").strip().lower() in ("\\q", "quit", "exit")


def is_complete(text: str) -> bool:
    """Whether ``text`` is a whole input: empty, a meta command, or ending with ``;``."""
    stripped = text.strip()
    return not stripped or stripped.startswith("\\") or is_quit(stripped) or stripped.endswith(";")


class Repl:
    """Runs what the user typed; independent of where the input comes from."""

    def __init__(self, ql: QueryLeaf, printer: Printer):
        self.ql = ql
        self.printer = printer

    def prompt(self) -> str:
        return PROMPTS[self.ql.transaction_status]

    def leave(self) -> int:
        """End the session: a transaction left open is rolled back, and the user is told."""
        if self.ql.in_transaction:
            end_open_transaction(self.ql)
            self.printer.error(
                "warning: the open transaction was rolled back on leaving the "
                "shell: nothing it changed was committed"
            )
        return 0

    def handle(self, text: str) -> bool:
        """Run one complete input. Returns False when the user asked to leave."""
        stripped = text.strip()
        if not stripped:
            return True
        if is_quit(stripped):
            return False
        if stripped.startswith("\\"):
            self.meta(stripped)
            return True
        try:
            run_text(self.ql, text, self.printer)
        except ConnectionLost as exc:
            self.printer.error(f"error: {exc}")
        except KeyboardInterrupt as exc:
            self.printer.error(cancelled_message(exc))
        return True

    def meta(self, command: str) -> None:
        name, _, arg = command.rstrip(";").partition(" ")
        arg = arg.strip()
        if name in ("\\?", "\\h", "\\help"):
            self.printer.info(HELP.rstrip())
        elif name == "\\d":
            self.list_collections()
        elif name == "\\format":
            self.set_format(arg)
        elif name == "\\timeout":
            self.set_timeout(arg)
        else:
            self.printer.error(f"error: unknown command {name}; type \\? for help")

    def list_collections(self) -> None:
        from pymongo.errors import PyMongoError

        from queryleaf.events.names import is_reserved

        try:
            infos = list(self.ql.db.list_collections())
        except PyMongoError as exc:
            self.printer.error(f"error: {exc}")
            return
        rows = sorted(
            (
                {"name": i["name"], "type": i.get("type", "collection")}
                for i in infos
                if not is_reserved(i["name"]) and not i["name"].startswith("system.")
            ),
            key=lambda r: r["name"],
        )
        if not rows:
            self.printer.info(f"no collections in database {self.ql.database_name}")
            return
        self.printer.table(rows_table(["name", "type"], rows))

    def set_format(self, fmt: str) -> None:
        if not fmt:
            self.printer.info(f"format: {self.printer.format}")
        elif fmt not in FORMATS:
            self.printer.error(f"error: unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
        else:
            self.printer.format = fmt

    def set_timeout(self, arg: str) -> None:
        if arg.lower() == "off":
            self.ql.timeout = None
        elif arg:
            try:
                seconds = float(arg)
            except ValueError:
                seconds = 0.0
            if not seconds > 0 or seconds == float("inf"):
                self.printer.error(f"error: \\timeout takes seconds (> 0) or off, not {arg!r}")
                return
            self.ql.timeout = seconds
        limit = self.ql.timeout
        self.printer.info(f"timeout: {'off' if limit is None else f'{limit:g} s'}")


def cancelled_message(exc: KeyboardInterrupt) -> str:
    """What Ctrl-C did to the running statement (see queryleaf/cancel.py)."""
    if not isinstance(exc, StatementCancelled):
        return "cancelled"
    if exc.killed:
        return "cancelled: the statement was killed on the server"
    return "cancelled: the server no longer listed the statement (it had finished)"


def run_lines(repl: Repl, lines: Iterable[str]) -> int:
    """The shell without a terminal: statements from ``lines`` (e.g. a pipe), no prompts."""
    buffer: list[str] = []
    for line in lines:
        buffer.append(line)
        text = "".join(buffer)
        if is_complete(text):
            buffer.clear()
            if not repl.handle(text):
                return repl.leave()
    rest = "".join(buffer)
    if rest.strip():  # a last statement without ';' still runs
        repl.handle(rest)
    return repl.leave()


def history_path(data_dir: str | None) -> Path | None:
    """The history file, in the data directory (created if needed); None if unusable."""
    from queryleaf.engine import resolve_data_dir

    try:
        root = resolve_data_dir(data_dir)
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = root / HISTORY_FILE
        # Private, like the rest of the data directory: statements may hold data or secrets.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        os.chmod(path, 0o600)
    except OSError:
        return None
    return path


def run_terminal(repl: Repl, history: Path | None) -> int:
    """The interactive shell on a terminal."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory, InMemoryHistory
    from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
    from prompt_toolkit.lexers import PygmentsLexer
    from pygments.lexers.sql import SqlLexer

    bindings = KeyBindings()

    @bindings.add("enter")
    def _enter(
        event: KeyPressEvent,
    ) -> None:  # run when the input is complete, else start a new line
        buffer = event.current_buffer
        if is_complete(buffer.text):
            buffer.validate_and_handle()
        else:
            buffer.insert_text("\n")

    session: PromptSession[str] = PromptSession(
        history=FileHistory(str(history)) if history else InMemoryHistory(),
        multiline=True,
        key_bindings=bindings,
        prompt_continuation=lambda width, line, wrap: CONTINUATION.rjust(width),
        lexer=PygmentsLexer(SqlLexer),
    )
    repl.printer.info(
        f"queryleaf on {repl.ql.database_name}; statements end with ';', \\? for help, \\q to quit"
    )
    while True:
        try:
            text = session.prompt(repl.prompt())
        except KeyboardInterrupt:
            continue
        except EOFError:
            return repl.leave()
        if not repl.handle(text):
            return repl.leave()


def run_repl(
    ql: QueryLeaf, printer: Printer, data_dir: str | None, stdin: TextIO | None = None
) -> int:
    """``queryleaf`` with no subcommand: interactive on a terminal, line-reading otherwise."""
    stdin = stdin or sys.stdin
    repl = Repl(ql, printer)
    if stdin.isatty() and sys.stdout.isatty():
        return run_terminal(repl, history_path(data_dir))
    return run_lines(repl, stdin)
