"""The interactive shell: ``queryleaf`` with no subcommand.

On a terminal it is a prompt_toolkit session (history, SQL highlighting, multi-line editing);
with stdin from a pipe or file it reads lines without prompts. The semantics are the same:

- input accumulates until a line ends with ``;`` or ``\\G`` (or the input is a meta command),
  then runs as a script (several statements are fine); ``\\G`` shows its results as records;
- errors are printed with their position and a caret, and the shell carries on;
- ``\\q``, ``quit``, ``exit`` or end of input (Ctrl-D) leave with status 0, rolling back a
  transaction left open (and saying so);
- Ctrl-C discards the current input, or kills the running statement on the server;
- the prompt names the database and shows a transaction: ``shop*>`` while one is open,
  ``shop!>`` once a statement failed in it (statements are refused until ROLLBACK), as psql does.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from queryleaf.api import QueryLeaf
from queryleaf.cancel import StatementCancelled
from queryleaf.cli.banner import banner
from queryleaf.cli.describe import SHORTHANDS, shorthand
from queryleaf.cli.habits import hint, runs_alone
from queryleaf.cli.output import DEFAULT_PAGER, EXPANDED, FORMATS, Printer
from queryleaf.cli.run import ConnectionLost, end_open_transaction, run_text
from queryleaf.cli.seconds import positive_seconds
from queryleaf.sql.split import is_complete as statements_complete

# The prompt's marker after the database name by transaction status
# (QueryLeaf.transaction_status), psql's.
PROMPT_MARKERS = {"idle": "", "open": "*", "aborted": "!"}
VERTICAL_END = "\\G"  # MySQL's terminator: this input's results one record per block
CONTINUATION = "...> "
HISTORY_FILE = "repl_history"

HELP = """\
Statements end with ';' (or \\G: results as one record per block) and may span several lines.
Meta commands (at the start of an input):
  \\?  \\h               this help
  \\d [NAME]            list the tables (collections and views), or describe one (DESCRIBE NAME)
  \\dt  \\dv             list the tables (SHOW TABLES), the views (SHOW VIEWS)
  \\di [NAME]           list the indexes (SHOW INDEXES [FROM NAME])
  \\ds                  list the event subscriptions (SHOW EVENT_SUBSCRIPTIONS)
  \\l                   list the databases (SHOW DATABASES)
  \\c DB                use database DB (USE DB)
  \\format [FMT]        show or set the output format (table, json, csv)
  \\x [on|off|auto]     records one per block: always, never, when a row is too wide (default)
  \\null [TEXT]         show or set how NULL is shown (default <null>)
  \\pager [on|off|CMD]  page results taller than the terminal (default $PAGER or less -SRXF)
  \\watch [SEC]         run the last query again every SEC seconds (default 2) until Ctrl-C
  \\timeout [SEC|off]   show or set each statement's time limit (maxTimeMS)
  \\top                 live view of the event subscriptions and their workers (q to quit)
  \\q  quit  exit       leave (so does Ctrl-D); Ctrl-C discards the current input
"""


def is_quit(text: str) -> bool:
    return text.strip().rstrip(";").strip().lower() in ("\\q", "quit", "exit")


def is_complete(text: str) -> bool:
    """Whether ``text`` is a whole input: empty, a meta command, a habit of another shell, or
    ending with a ``;`` or ``\\G`` that is not inside a string, quoted name or comment."""
    stripped = text.strip()
    return (
        not stripped
        or stripped.startswith("\\")
        or is_quit(stripped)
        or runs_alone(stripped)
        or statements_complete(text)
        or stripped.endswith(VERTICAL_END)
    )


class Repl:
    """Runs what the user typed; independent of where the input comes from."""

    def __init__(self, ql: QueryLeaf, printer: Printer):
        self.ql = ql
        self.printer = printer
        self.last_input = ""  # the last statements run, for \watch

    def prompt(self) -> str:
        return f"{self.ql.database_name}{PROMPT_MARKERS[self.ql.transaction_status]}> "

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
        if (habit := hint(stripped)) is not None:
            self.printer.info(habit)
            return True
        self.last_input = text
        try:
            if stripped.endswith(VERTICAL_END):  # ';' in its place keeps every position
                with self.printer.vertical():
                    run_text(self.ql, stripped[: -len(VERTICAL_END)] + ";", self.printer)
            else:
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
        elif name == "\\format":
            self.set_format(arg)
        elif name == "\\x":
            self.set_expanded(arg)
        elif name == "\\null":
            self.set_null(arg)
        elif name == "\\pager":
            self.set_pager(arg)
        elif name == "\\watch":
            self.watch(arg)
        elif name == "\\top":
            self.top(arg)
        elif (sql := shorthand(name, arg)) is not None:
            self.handle(sql)
        elif name in SHORTHANDS:
            self.printer.error(f"error: {name} {'needs a name' if not arg else 'takes no name'}")
        elif name == "\\timeout":
            self.set_timeout(arg)
        else:
            self.printer.error(f"error: unknown command {name}; type \\? for help")

    def watch(self, arg: str) -> None:
        from queryleaf.cli.watch import DEFAULT_INTERVAL_S, watch, watchable

        try:
            interval = positive_seconds(arg, DEFAULT_INTERVAL_S)
        except ValueError as exc:
            self.printer.error(f"error: \\watch {exc}")
            return
        if not self.last_input.strip():
            self.printer.error("error: \\watch: no query has run yet")
            return
        refused = watchable(self.last_input)
        if refused:
            self.printer.error(f"error: {refused}")
            return
        try:
            watch(self.ql, self.printer, self.last_input, interval)
        except ConnectionLost as exc:
            self.printer.error(f"error: {exc}")

    def top(self, arg: str) -> None:
        from queryleaf.cli.top import DEFAULT_INTERVAL_S, run_top

        try:
            interval = positive_seconds(arg, DEFAULT_INTERVAL_S)
        except ValueError as exc:
            self.printer.error(f"error: \\top {exc}")
            return
        try:
            run_top(self.ql, self.printer.console, interval)
        except ConnectionLost as exc:
            self.printer.error(f"error: {exc}")

    def set_format(self, fmt: str) -> None:
        if not fmt:
            self.printer.info(f"format: {self.printer.format}")
        elif fmt not in FORMATS:
            self.printer.error(f"error: unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
        else:
            self.printer.format = fmt

    def set_expanded(self, mode: str) -> None:
        """``\\x`` alone switches the vertical view on, or off when it is on (as psql)."""
        mode = mode.lower() or ("off" if self.printer.expanded == "on" else "on")
        if mode not in EXPANDED:
            self.printer.error(f"error: unknown \\x mode {mode!r}; choose one of on, off, auto")
            return
        self.printer.expanded = mode
        self.printer.info(f"expanded display is {mode}")

    def set_null(self, text: str) -> None:
        if text:
            self.printer.null_text = text
        self.printer.info(f"NULL is shown as {self.printer.null_text}")

    def set_pager(self, arg: str) -> None:
        if arg.lower() == "off":
            self.printer.pager = None
        elif arg.lower() == "on":
            self.printer.pager = default_pager()
        elif arg:
            self.printer.pager = arg
        state = f"{self.printer.pager} (when a result is taller than the terminal)"
        self.printer.info(f"pager: {state if self.printer.pager else 'off'}")

    def set_timeout(self, arg: str) -> None:
        if arg.lower() == "off":
            self.ql.timeout = None
        elif arg:
            try:
                self.ql.timeout = positive_seconds(arg, 0)
            except ValueError as exc:
                self.printer.error(f"error: \\timeout {exc} (or off)")
                return
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


def default_pager() -> str:
    return os.environ.get("PAGER") or DEFAULT_PAGER


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

    from queryleaf.cli.completion import SqlLexer, changes_catalog, completer

    bindings = KeyBindings()
    sql_completer, catalog = completer(repl.ql)

    @bindings.add("enter")
    def _enter(
        event: KeyPressEvent,
    ) -> None:  # run when the input is complete, else start a new line
        buffer = event.current_buffer
        state = buffer.complete_state
        if state is not None and state.current_completion is not None:
            buffer.apply_completion(state.current_completion)  # Enter picks the completion
            return
        if is_complete(buffer.text):
            buffer.validate_and_handle()
        else:
            buffer.insert_text("\n")

    session: PromptSession[str] = PromptSession(
        history=FileHistory(str(history)) if history else InMemoryHistory(),
        multiline=True,
        key_bindings=bindings,
        prompt_continuation=lambda width, line, wrap: CONTINUATION.rjust(width),
        lexer=SqlLexer(),
        completer=sql_completer,
        complete_while_typing=False,
    )
    repl.printer.pager = default_pager()
    repl.printer.info(banner(repl.ql))
    while True:
        try:
            text = session.prompt(repl.prompt())
        except KeyboardInterrupt:
            continue
        except EOFError:
            return repl.leave()
        if not repl.handle(text):
            return repl.leave()
        if changes_catalog(text):
            catalog.invalidate()


def run_repl(
    ql: QueryLeaf, printer: Printer, data_dir: str | None, stdin: TextIO | None = None
) -> int:
    """``queryleaf`` with no subcommand: interactive on a terminal, line-reading otherwise."""
    stdin = stdin or sys.stdin
    repl = Repl(ql, printer)
    if stdin.isatty() and sys.stdout.isatty():
        return run_terminal(repl, history_path(data_dir))
    return run_lines(repl, stdin)
