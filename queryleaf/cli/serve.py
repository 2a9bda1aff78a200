"""``queryleaf serve``: keep the embedded server of a data directory running in the foreground;
with ``--pg``, also serve it (or the MongoDB of ``--uri``) over the PostgreSQL wire protocol."""

from __future__ import annotations

import signal
import threading
from typing import Any

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
@click.option(
    "--pg",
    "pg_address",
    metavar="[HOST:]PORT",
    is_flag=False,
    flag_value=f"127.0.0.1:{5433}",
    default=None,
    help="Also serve SQL over the PostgreSQL wire protocol (psql, psycopg, BI tools) on "
    "HOST:PORT (default 127.0.0.1:5433).",
)
@click.option(
    "--pg-users",
    type=click.Path(dir_okay=False, exists=True),
    help="Users file: name:password or name:SCRAM-SHA-256$... lines (queryleaf pg-passwd).",
)
@click.option(
    "--pg-trust", is_flag=True, help="No authentication (refused on non-loopback addresses)."
)
@click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True), help="TLS certificate.")
@click.option("--tls-key", type=click.Path(dir_okay=False, exists=True), help="TLS private key.")
@click.option(
    "--uri",
    default=None,
    help="With --pg: serve this MongoDB instead of the embedded server.",
)
@click.pass_context
def serve_command(
    ctx: click.Context,
    data_dir: str | None,
    print_uri: bool,
    pg_address: str | None,
    pg_users: str | None,
    pg_trust: bool,
    tls_cert: str | None,
    tls_key: str | None,
    uri: str | None,
) -> None:
    """Start (or adopt) the embedded server and keep it running until Ctrl-C or SIGTERM.

    Other queryleaf processes on the same data directory share it meanwhile; on the way out
    it is stopped unless some of them still use it. The line it prints hides the password;
    `queryleaf serve --print-uri` prints the URI with it. With --pg, clients of PostgreSQL
    connect to it too (docs/connectors.md); a client's database is the MongoDB database.
    """
    if data_dir is None and isinstance(ctx.obj, dict):
        data_dir = ctx.obj.get("data_dir")
    if pg_address is None:
        if uri or pg_users or pg_trust or tls_cert or tls_key:
            raise click.UsageError("--uri, --pg-users, --pg-trust and --tls-* go with --pg")
    else:
        from queryleaf.cli.pg_serve import PgOptions, make_pg, serve_pg

        timeout = ctx.obj.get("timeout") if isinstance(ctx.obj, dict) else None
        options = PgOptions(pg_address, pg_users, pg_trust, tls_cert, tls_key, timeout)
        if uri is None and isinstance(ctx.obj, dict):
            uri = ctx.obj.get("uri")  # queryleaf --uri X serve --pg, or QUERYLEAF_URI
        if uri is not None:
            target = uri
            serve_pg(options, lambda: target, _wait_for_signal)
            return
        current: dict[str, Any] = {}
        pg_server = make_pg(options, lambda: current["uri"])  # its errors before the server's
        announce_pg = _pg_announcer(pg_server, current)
        try:
            stopped = engine.serve(data_dir, announce=announce_pg)
        except EngineError as exc:
            raise click.ClickException(exc.coded_message) from exc
        finally:
            if "server" in current:
                current["server"].stop()
        click.echo(
            f"queryleaf serve: {'stopped the server' if stopped else 'left it running'}", err=True
        )
        return
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


def _pg_announcer(pg_server: Any, current: dict[str, Any]) -> Any:
    """The announce callback of the embedded server: the first time it starts the wire
    server, which always connects to the embedded server's current URI."""
    from queryleaf.cli.pg_serve import start_pg

    def announce(lease: engine.ServerLease) -> None:
        _describe(lease)
        current["uri"] = lease.uri
        if "server" not in current:
            current["server"] = start_pg(pg_server)

    return announce


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1):
        pass


if __name__ == "__main__":
    serve_command()
