"""The ``queryleaf`` command: global options, ``-e``, the REPL, and the subcommands.

Exit status: 0 success, 1 a statement failed (or a file is missing), 2 wrong usage,
3 the database could not be reached (or the embedded server not started), 130 interrupted.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from queryleaf.cli.output import FORMATS, Printer

if TYPE_CHECKING:
    from queryleaf.api import QueryLeaf

EXIT_CONNECTION = 3
EXIT_INTERRUPTED = 130

# Subcommands written in their own modules, imported only when used.
LAZY_COMMANDS = {
    "serve": "queryleaf.cli.serve:serve_command",
    "pg-passwd": "queryleaf.cli.pg_passwd:pg_passwd_command",
    "top": "queryleaf.cli.top:top_command",
    "worker": "queryleaf.cli.worker:worker_command",
}


class CliError(click.ClickException):
    """An expected failure: printed as one line (``error: ...``), no traceback."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click's is per class; this one varies

    def show(self, file: Any = None) -> None:
        click.secho(f"error: {self.message}", err=True, fg="red")


# Options of the group that are not global settings (they are no settings for a subcommand).
NOT_GLOBAL = frozenset({"sql", "version", "help"})
# Global options a subcommand has no use for (every other one is accepted after it too).
NOT_FOR_COMMAND = {
    "serve": frozenset({"uri", "db", "format"}),
    "pg-passwd": frozenset({"uri", "db", "format", "data_dir"}),
    "worker": frozenset({"format"}),
    "top": frozenset({"format"}),
}


class LazyGroup(click.Group):
    """A group whose ``serve``, ``top`` and ``worker`` commands are imported on first use, and
    whose global options are accepted after the subcommand as well (``queryleaf run --format
    json``)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS and cmd_name not in self.commands:
            command: click.Command | None = _load_command(cmd_name, LAZY_COMMANDS[cmd_name])
        else:
            command = super().get_command(ctx, cmd_name)
        if command is not None:
            _accept_global_options(self, command)
        return command


def _accept_global_options(group: click.Group, command: click.Command) -> None:
    """Give ``command`` a copy of each global option it has no option of its own for. A copy
    given on the command line overrides the group's value (``ctx.obj``); otherwise it is
    silent, so the group's default and environment variable stay in force."""
    taken = {name for param in command.params for name in param.opts}
    skip = NOT_FOR_COMMAND.get(command.name or "", frozenset())
    for param in group.params:
        if not isinstance(param, click.Option) or param.name in NOT_GLOBAL | skip:
            continue
        if any(name in taken for name in param.opts):
            continue
        command.params.append(
            click.Option(
                param.opts + param.secondary_opts,
                type=param.type,
                metavar=param.metavar,
                is_flag=param.is_flag,
                multiple=param.multiple,
                help=param.help,
                expose_value=False,
                callback=_override_global,
            )
        )
        taken.update(param.opts)


def _override_global(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    from click.core import ParameterSource

    if ctx.get_parameter_source(param.name or "") is ParameterSource.COMMANDLINE:
        ctx.ensure_object(dict)[param.name] = _setting(value)


def _setting(value: Any) -> Any:
    """An empty option (``--db ''``) is the same as none."""
    return None if value == "" else value


def _load_command(name: str, spec: str) -> click.Command:
    module_name, _, attr = spec.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except ModuleNotFoundError as exc:
        reason = (
            "it is not part of this installation"
            if exc.name == module_name
            else f"module {exc.name} is missing"
        )
    except (ImportError, AttributeError) as exc:
        reason = f"{type(exc).__name__}: {exc}"

    def unavailable(**_: Any) -> None:
        raise CliError(f"`queryleaf {name}` is not available: {reason}")

    return click.Command(
        name,
        callback=unavailable,
        help="(not available in this installation)",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )


@contextmanager
def connection(obj: dict[str, Any]) -> Iterator[QueryLeaf]:
    """Connect with the global options; connection problems become one-line errors."""
    from pymongo.errors import ConnectionFailure, PyMongoError

    import queryleaf
    from queryleaf.cli.reach import ping
    from queryleaf.cli.run import ConnectionLost, connection_message
    from queryleaf.errors import EngineError, ErrorCode

    try:
        ql = queryleaf.connect(
            obj.get("uri"), obj.get("db"), obj.get("data_dir"), obj.get("timeout")
        )
    except EngineError as exc:
        raise CliError(exc.coded_message, EXIT_CONNECTION) from exc
    except PyMongoError as exc:
        raise CliError(connection_message(exc, obj.get("uri")), EXIT_CONNECTION) from exc
    try:
        try:
            ping(ql.client)
        except PyMongoError as exc:
            raise CliError(connection_message(exc, ql.uri), EXIT_CONNECTION) from exc
        yield ql
    except ConnectionLost as exc:
        raise CliError(str(exc), EXIT_CONNECTION) from exc
    except ConnectionFailure as exc:
        raise CliError(connection_message(exc, ql.uri), EXIT_CONNECTION) from exc
    except PyMongoError as exc:
        raise CliError(f"{ErrorCode.EXECUTION}: MongoDB error: {exc}") from exc
    except KeyboardInterrupt:
        raise CliError("interrupted", EXIT_INTERRUPTED) from None
    finally:
        ql.close()


def _printer(ctx: click.Context) -> Printer:
    return Printer(ctx.obj["format"])


@click.group(
    cls=LazyGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--uri",
    envvar="QUERYLEAF_URI",
    metavar="URI",
    help="MongoDB to use [env QUERYLEAF_URI]; default: the embedded server.",
)
@click.option(
    "--db",
    envvar="QUERYLEAF_DB",
    metavar="NAME",
    help="Database [env QUERYLEAF_DB; default: queryleaf].",
)
@click.option(
    "--data-dir",
    envvar="QUERYLEAF_DATA_DIR",
    metavar="DIR",
    type=click.Path(file_okay=False),
    help="Data directory of the embedded server and the REPL history "
    "[env QUERYLEAF_DATA_DIR; default: the user data dir].",
)
@click.option(
    "--format",
    "format",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="Output format of results.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Time limit of each statement (maxTimeMS); \\timeout changes it in the shell.",
)
@click.option(
    "-e",
    "--execute",
    "sql",
    metavar="SQL",
    help="Run SQL (one or more ';'-separated statements), print results and exit.",
)
@click.version_option(package_name="queryleaf", prog_name="queryleaf")
@click.pass_context
def cli(ctx: click.Context, sql: str | None, **settings: Any) -> None:
    """queryleaf: SQL for MongoDB, with change-stream event subscriptions.

    With no subcommand and no -e, opens the interactive shell (or reads statements from stdin
    when it is not a terminal).
    """
    ctx.ensure_object(dict)
    # Each global option by its name (a subcommand may override them: _accept_global_options).
    ctx.obj.update({name: _setting(value) for name, value in settings.items()})
    if sql is not None:
        if ctx.invoked_subcommand is not None:
            raise click.UsageError("-e/--execute cannot be combined with a subcommand")
        ctx.exit(execute_text(ctx, sql))
    if ctx.invoked_subcommand is None:
        from queryleaf.cli.repl import run_repl

        with connection(ctx.obj) as ql:
            ctx.exit(run_repl(ql, _printer(ctx), ctx.obj["data_dir"]))


def execute_text(ctx: click.Context, sql: str) -> int:
    from queryleaf.cli.run import EXIT_OK, EXIT_SQL_ERROR, finish, run_text

    printer = _printer(ctx)
    with connection(ctx.obj) as ql:
        ok = finish(ql, printer, run_text(ql, sql, printer))
        return EXIT_OK if ok else EXIT_SQL_ERROR


@cli.command("run")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option(
    "-v",
    "--var",
    "variables",
    multiple=True,
    metavar="NAME=VALUE",
    help="Bind the :NAME placeholders to VALUE (JSON when it is JSON, else text). Repeatable.",
)
@click.option("--echo", is_flag=True, help="Print each statement before its result.")
@click.option(
    "--check",
    is_flag=True,
    help="Only compile the files, with no database; say what only the database can check.",
)
@click.option(
    "--continue-on-error",
    is_flag=True,
    help="Run on after a failing statement; end with a summary (exit 1 if any failed).",
)
@click.option(
    "--single-transaction",
    is_flag=True,
    help="Run all the files in one transaction: committed if every statement succeeds.",
)
@click.pass_context
def run_command(
    ctx: click.Context,
    files: tuple[str, ...],
    variables: tuple[str, ...],
    echo: bool,
    check: bool,
    continue_on_error: bool,
    single_transaction: bool,
) -> None:
    """Run SQL files in order (- reads stdin); stop at the first error (FILE:LINE:COL)."""
    from queryleaf.cli.batch import RunOptions, check_files, run_files
    from queryleaf.cli.variables import parse_variables

    if single_transaction and continue_on_error:
        raise click.UsageError(
            "--single-transaction is all or nothing: it cannot be combined with --continue-on-error"
        )
    options = RunOptions(parse_variables(variables), echo, continue_on_error, single_transaction)
    if check:
        ctx.exit(check_files(list(files), _printer(ctx), options))
    with connection(ctx.obj) as ql:
        ctx.exit(run_files(ql, list(files), _printer(ctx), options))


@cli.command("explain")
@click.argument("sql", nargs=-1, required=True)
@click.pass_context
def explain_command(ctx: click.Context, sql: tuple[str, ...]) -> None:
    """Show the MongoDB commands a statement would run (mongosh syntax and JSON)."""
    from queryleaf.cli.run import EXIT_SQL_ERROR, locate, text_headline
    from queryleaf.errors import QueryLeafError

    text = " ".join(sql)
    printer = _printer(ctx)
    with connection(ctx.obj) as ql:
        try:
            result = ql.explain(text)
        except QueryLeafError as exc:
            err = locate(exc, text)
            printer.error(text_headline(err), err.excerpt)
            ctx.exit(EXIT_SQL_ERROR)
        printer.explain(result.commands or [])
