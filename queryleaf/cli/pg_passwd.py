"""``queryleaf pg-passwd NAME``: a users-file line for ``queryleaf serve --pg --pg-users FILE``."""

from __future__ import annotations

import sys

import click


@click.command("pg-passwd")
@click.argument("name")
@click.option(
    "--stdin", "from_stdin", is_flag=True, help="Read the password from stdin's first line."
)
def pg_passwd_command(name: str, from_stdin: bool) -> None:
    """Print NAME:SCRAM-SHA-256$... for a password (asked twice, not echoed): the line of a
    --pg-users file that lets NAME in without the file keeping the password."""
    from queryleaf.pg.auth import make_verifier

    if ":" in name or not name.strip():
        raise click.BadParameter("a user name cannot be empty or hold ':'", param_hint="NAME")
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise click.ClickException("the password is empty")
    click.echo(f"{name}:{make_verifier(password).text()}")
