"""``queryleaf run FILE...``: SQL files for scripts and CI.

Each statement's result is printed as soon as it finishes, under a ``-- file:line`` header
(with ``--echo``, followed by the statement). Errors are reported like a compiler's,
``file:line:col: error: message`` and the line with a caret. By default the run stops at the
first failing statement; ``--continue-on-error`` runs on and ends with a summary.
``--single-transaction`` compiles every statement first (nothing runs if one cannot run inside a
transaction) and runs them all in one, committed only if every one succeeds. ``--check`` only
compiles (no database: queryleaf/offline.py). ``-`` reads standard input.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.text import Text

from queryleaf.api import QueryLeaf
from queryleaf.cli.live import is_live, print_live
from queryleaf.cli.output import Printer, caret_excerpt
from queryleaf.cli.progress import progress_line
from queryleaf.cli.run import (
    EXIT_OK,
    EXIT_SQL_ERROR,
    ConnectionLost,
    connection_message,
    describe,
    finish,
    print_result,
)
from queryleaf.cli.variables import params_for
from queryleaf.errors import QueryLeafError, ServerUnreachable
from queryleaf.offline import check_offline
from queryleaf.sql import ast
from queryleaf.sql.parser import parse_script
from queryleaf.sql.redact import RedactedSql

STDIN = "-"


@dataclass(frozen=True)
class RunOptions:
    variables: dict[str, Any] = field(default_factory=dict)
    echo: bool = False
    continue_on_error: bool = False
    single_transaction: bool = False


@dataclass(frozen=True)
class Script:
    """A file's text and its statements."""

    name: str  # the path as given, ``<stdin>`` for ``-``
    text: str
    statements: list[ast.ParsedStatement]


class Failed(Exception):
    """A file could not be read or parsed (already reported)."""


def display_name(path: str) -> str:
    return "<stdin>" if path == STDIN else path


class Report:
    """Errors as a compiler prints them, and the count of what succeeded and failed."""

    def __init__(self, printer: Printer):
        self.printer = printer
        self.ok = 0
        self.failures: list[str] = []  # the headline of each error
        self.used: set[str] = set()  # the -v variables some statement used

    def error(self, name: str, text: str, exc: QueryLeafError, start: tuple[int, int]) -> None:
        position = exc.position
        line, column = (position.line, position.column) if position else start
        headline = f"{name}:{line}:{column}: error: {describe(exc)}"
        self.printer.error(headline, caret_excerpt(text, line, column))
        self.failures.append(headline.splitlines()[0])

    def problem(self, headline: str) -> None:
        self.printer.error(headline)
        self.failures.append(headline)

    def summary(self, verb: str = "ran", head: str = "summary") -> None:
        """``summary: 5 statements ran ok, 2 failed:`` and the failures, one a line."""
        noun = "statement" if self.ok == 1 else "statements"
        line = f"{head}: {self.ok} {noun} {verb} ok, {len(self.failures)} failed"
        if self.failures:
            self.printer.error(line + ":", "\n".join(f"  {f}" for f in self.failures))
        else:
            self.printer.err_console.print(Text(line), soft_wrap=True)

    def unused(self, variables: dict[str, Any]) -> None:
        for name in sorted(set(variables) - self.used):
            self.printer.warning(f"warning: -v {name}: no statement has a placeholder :{name}")


def missing_files(paths: list[str], printer: Printer) -> bool:
    missing = [p for p in paths if p != STDIN and not Path(p).is_file()]
    for path in missing:
        printer.error(f"{path}: error: no such file")
    return bool(missing)


def load(path: str, report: Report) -> Script:
    """Read and parse a file; errors are reported, then raise Failed."""
    name = display_name(path)
    try:
        text = sys.stdin.read() if path == STDIN else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        report.problem(f"{name}: error: cannot read file: {exc}")
        raise Failed from exc
    try:
        return Script(name, text, parse_script(text))
    except QueryLeafError as exc:
        report.error(name, text, exc, (1, 1))
        raise Failed from exc


# ---------------------------------------------------------------- run


class Runner:
    def __init__(self, ql: QueryLeaf, printer: Printer, options: RunOptions):
        self.ql = ql
        self.printer = printer
        self.options = options
        self.report = Report(printer)
        self.running = ""  # file:line of the statement running, for an interruption

    def statement(self, script: Script, parsed: ast.ParsedStatement) -> bool:
        """Run one statement and print its result (or its error); returns whether it ran."""
        where = f"{script.name}:{parsed.line}"
        self.heading(where, parsed)
        params = params_for(parsed.statement, self.options.variables)
        self.report.used.update(params or ())
        self.running = where
        try:
            if is_live(parsed):  # rows as they arrive, until LIMIT, --timeout or Ctrl-C
                print_live(self.ql, parsed, script.text, self.printer, params)
                self.report.ok += 1
                return True
            with progress_line(f"{where} {parsed.text}"):
                result = self.ql.execute_parsed(parsed, script.text, params)
        except QueryLeafError as exc:
            if isinstance(exc, ServerUnreachable):
                raise ConnectionLost(connection_message(exc.cause, self.ql.uri)) from exc
            self.report.error(script.name, script.text, exc, (parsed.line, parsed.column))
            return False
        finally:
            self.running = ""
        print_result(self.printer, result, script.text, script.name)
        self.report.ok += 1
        return True

    def heading(self, where: str, parsed: ast.ParsedStatement) -> None:
        if self.printer.format == "table" and (self.report.ok or self.report.failures):
            self.printer.status("")
        self.printer.status(f"-- {where}")
        if self.options.echo:
            self.printer.status(RedactedSql.of(parsed.text).text + ";")

    def files(self, paths: list[str]) -> bool:
        """Each file in turn (read when its turn comes: ``-`` may be a terminal)."""
        for path in paths:
            try:
                script = load(path, self.report)
            except Failed:
                if self.options.continue_on_error:
                    continue
                return False
            for parsed in script.statements:
                if not self.statement(script, parsed) and not self.options.continue_on_error:
                    return False
        return not self.report.failures

    def one_transaction(self, paths: list[str]) -> bool:
        """Every statement of every file in one transaction, checked before any runs."""
        scripts = self.compile(paths)
        if scripts is None:
            self.printer.error("error: --single-transaction: nothing ran")
            return False
        try:
            with self.ql.transaction():
                for script in scripts:
                    for parsed in script.statements:
                        if not self.statement(script, parsed):
                            raise _RolledBack
        except _RolledBack:
            self.printer.error("error: --single-transaction: rolled back, nothing was committed")
            return False
        except QueryLeafError as exc:  # the COMMIT
            if isinstance(exc, ServerUnreachable):
                raise ConnectionLost(connection_message(exc.cause, self.ql.uri)) from exc
            self.report.problem(f"error: {describe(exc)}")
            return False
        self.printer.status(f"COMMIT: {self.report.ok} statements in one transaction")
        return True

    def compile(self, paths: list[str]) -> list[Script] | None:
        """Read and compile every file (offline); None when something failed (reported)."""
        scripts: list[Script] = []
        for path in paths:
            try:
                script = load(path, self.report)
            except Failed:
                continue
            for parsed in script.statements:
                params = params_for(parsed.statement, self.options.variables)
                try:
                    check_offline(parsed.statement, params, in_transaction=True)
                except QueryLeafError as exc:
                    self.report.error(script.name, script.text, exc, (parsed.line, parsed.column))
            scripts.append(script)
        return None if self.report.failures else scripts


class _RolledBack(Exception):
    pass


def run_files(ql: QueryLeaf, paths: list[str], printer: Printer, options: RunOptions) -> int:
    """``queryleaf run``; returns the exit status."""
    if missing_files(paths, printer):
        return EXIT_SQL_ERROR
    runner = Runner(ql, printer, options)
    try:
        if options.single_transaction:
            ok = runner.one_transaction(paths)
        else:
            ok = finish(ql, printer, runner.files(paths), display_name(paths[-1]))
    except KeyboardInterrupt:
        where = f" at {runner.running}" if runner.running else ""
        runner.report.summary(head=f"interrupted{where}")
        raise
    runner.report.unused(options.variables)
    if options.continue_on_error:
        runner.report.summary()
    return EXIT_OK if ok and not runner.report.failures else EXIT_SQL_ERROR


# ---------------------------------------------------------------- --check


def check_files(paths: list[str], printer: Printer, options: RunOptions) -> int:
    """``queryleaf run --check``: compile every statement of every file, with no database."""
    if missing_files(paths, printer):
        return EXIT_SQL_ERROR
    report = Report(printer)
    for path in paths:
        try:
            script = load(path, report)
        except Failed:
            continue
        for parsed in script.statements:
            params = params_for(parsed.statement, options.variables)
            report.used.update(params or ())
            try:
                checked = check_offline(parsed.statement, params, options.single_transaction)
            except QueryLeafError as exc:
                report.error(script.name, script.text, exc, (parsed.line, parsed.column))
                continue
            report.ok += 1
            gaps = "; ".join(checked.unchecked)
            note = f" (not checked offline: {gaps})" if gaps else ""
            printer.info(f"{script.name}:{parsed.line}: ok{note}")
    report.unused(options.variables)
    report.summary("compiled")
    return EXIT_SQL_ERROR if report.failures else EXIT_OK
