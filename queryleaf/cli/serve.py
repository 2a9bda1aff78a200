"""``queryleaf serve``: keep the embedded server of a data directory running in the foreground."""

from __future__ import annotations

import click

from queryleaf import engine
from queryleaf.errors import EngineError


@click.command("serve")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help=f"Data directory of the embedded server (default: ${engine.DATA_DIR_ENV}, "
    "else the user data dir).",
)
@click.option(
    "--print-uri",
    is_flag=True,
    help="Print only the server's URI with its password (for mongosh, Compass...) on stdout. "
    "Returns at once if other processes keep the server running; otherwise starts it and "
    "keeps it running like plain serve.",
)
@click.pass_context
def serve_command(ctx: click.Context, data_dir: str | None, print_uri: bool) -> None:
    """Start (or adopt) the embedded server and keep it running until Ctrl-C or SIGTERM.

    Other queryleaf processes on the same data directory share it meanwhile; on the way out
    it is stopped unless some of them still use it. The line it prints hides the password;
    `queryleaf serve --print-uri` prints the URI with it.
    """
    if data_dir is None and isinstance(ctx.obj, dict):
        data_dir = ctx.obj.get("data_dir")
    try:
        if print_uri and (uri := engine.shared_server_uri(data_dir)):
            click.echo(uri)
            return
        stopped = engine.serve(data_dir, announce=_print_uri if print_uri else _describe)
    except EngineError as exc:
        raise click.ClickException(exc.coded_message) from exc
    if stopped:
        click.echo("queryleaf serve: stopped the server", err=True)
    else:
        click.echo(
            "queryleaf serve: other processes still use the server; left it running", err=True
        )


def _describe(lease: engine.ServerLease) -> None:
    click.echo(engine.describe(lease))


def _print_uri(lease: engine.ServerLease) -> None:
    click.echo(lease.uri)  # the only line on stdout: $(queryleaf serve --print-uri)
    click.echo(
        f"queryleaf serve: serving {lease.data_dir} (server pid {lease.pid}); press Ctrl-C to stop",
        err=True,
    )


if __name__ == "__main__":
    serve_command()
