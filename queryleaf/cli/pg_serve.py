"""``queryleaf serve --pg``: the options of the PostgreSQL wire server, and starting it."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass

import click

from queryleaf.api import QueryLeaf
from queryleaf.events import endpoint
from queryleaf.pg.auth import UsersFileError, load_users
from queryleaf.pg.server import DEFAULT_PORT, ConfigError, PgServer


@dataclass(frozen=True)
class PgOptions:
    address: str
    users_file: str | None
    trust: bool
    tls_cert: str | None
    tls_key: str | None
    timeout: float | None = None  # each statement's time limit (the global --timeout)


def parse_address(text: str) -> tuple[str, int]:
    """``[HOST:]PORT`` (``[::1]:5433`` for IPv6); HOST defaults to 127.0.0.1."""
    try:
        return endpoint.parse_address(text, DEFAULT_PORT, example=DEFAULT_PORT)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--pg") from None


def make_pg(options: PgOptions, uri: Callable[[], str]) -> PgServer:
    """The wire server of these options, not yet listening: every option is checked here
    (before the embedded server is started for it); each connection gets a QueryLeaf on
    ``uri()``'s server."""
    host, port = parse_address(options.address)
    if bool(options.tls_cert) != bool(options.tls_key):
        raise click.UsageError("--tls-cert and --tls-key go together")
    tls = None
    if options.tls_cert and options.tls_key:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(options.tls_cert, options.tls_key)
    try:
        users = load_users(options.users_file) if options.users_file else None
        return PgServer(
            lambda database: QueryLeaf(uri(), database, timeout=options.timeout),
            host,
            port,
            users,
            options.trust,
            tls,
        )
    except (UsersFileError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from exc


def start_pg(server: PgServer) -> PgServer:
    """Listen (and say where)."""
    try:
        server.start()
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {server.host}:{server.port}: {exc.strerror}"
        ) from exc
    auth = "no authentication: --pg-trust" if server.trust else "SCRAM-SHA-256"
    click.echo(
        f"queryleaf serve: PostgreSQL protocol on {server.host}:{server.port} ({auth}"
        f"{', TLS' if server.tls else ''})",
        err=True,
    )
    return server


def serve_pg(options: PgOptions, uri: Callable[[], str], wait: Callable[[], None]) -> None:
    """Serve the MongoDB of ``uri()`` until ``wait()`` returns (Ctrl-C or SIGTERM)."""
    server = start_pg(make_pg(options, uri))
    try:
        wait()
    finally:
        server.stop()
