"""``queryleaf worker``: run the stored event subscriptions until SIGINT/SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

import click

from queryleaf.errors import QueryLeafError


@click.command("worker")
@click.option("--subscription", "subscriptions", multiple=True, metavar="NAME",
              help="Run only this subscription (repeatable; default: every active one).")
@click.option("--idle-timeout", type=float, default=None, metavar="SECONDS",
              help="Exit after this many seconds without an event.")
@click.option("--max-events", type=int, default=None, metavar="N",
              help="Exit after handling N events.")
@click.option("--quiet", is_flag=True, help="Log warnings and errors only (no line per event).")
@click.pass_context
def worker_command(ctx: click.Context, subscriptions: tuple[str, ...],
                   idle_timeout: float | None, max_events: int | None, quiet: bool) -> None:
    """Run the active event subscriptions of the database (one change stream each).

    Every change is recorded in CHANGE_STREAM_EVENTS() and delivered per the subscription's
    deliver_to; the resume point is stored after each event. SIGINT/SIGTERM finish the event in
    hand, checkpoint and exit 0.
    """
    from queryleaf.cli.main import CliError, connection  # deferred: main imports us lazily
    from queryleaf.events.worker import run_worker

    obj: dict[str, Any] = ctx.obj if isinstance(ctx.obj, dict) else {}
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with connection(obj) as ql:
            click.echo(f"queryleaf worker: database {ql.database_name}; Ctrl-C to stop",
                       err=True)
            try:
                report = run_worker(ql, subscriptions=list(subscriptions) or None,
                                    stop_event=stop, idle_timeout=idle_timeout,
                                    max_events=max_events)
            except QueryLeafError as exc:
                raise CliError(exc.message) from exc
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo(f"queryleaf worker: stopped ({report.reason}) after {report.events} event(s)",
               err=True)


def main() -> None:
    """``python -m queryleaf.cli.worker``: the command on its own, configured by environment."""
    worker_command(obj={"uri": os.environ.get("QUERYLEAF_URI"),
                        "db": os.environ.get("QUERYLEAF_DB"),
                        "data_dir": os.environ.get("QUERYLEAF_DATA_DIR")})


if __name__ == "__main__":
    main()
