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
@click.pass_context
def serve_command(ctx: click.Context, data_dir: str | None) -> None:
    """Start (or adopt) the embedded server and keep it running until Ctrl-C or SIGTERM.

    Other queryleaf processes on the same data directory share it meanwhile; on the way out
    it is stopped unless some of them still use it.
    """
    if data_dir is None and isinstance(ctx.obj, dict):
        data_dir = ctx.obj.get("data_dir")
    try:
        stopped = engine.serve(data_dir, echo=click.echo)
    except EngineError as exc:
        raise click.ClickException(exc.message) from exc
    if stopped:
        click.echo("queryleaf serve: stopped the server", err=True)
    else:
        click.echo("queryleaf serve: other processes still use the server; left it running",
                   err=True)


if __name__ == "__main__":
    serve_command()
