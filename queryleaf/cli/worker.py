"""``queryleaf worker``: run the stored event subscriptions until SIGINT/SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

import click

from queryleaf.errors import QueryLeafError
from queryleaf.events.lanes import DEFAULT_CONCURRENCY


@click.command("worker")
@click.option(
    "--subscription",
    "subscriptions",
    multiple=True,
    metavar="NAME",
    help="Run only this subscription (repeatable; default: every active one).",
)
@click.option(
    "--idle-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Exit after this many seconds without an event.",
)
@click.option(
    "--max-events",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Exit after handling N events.",
)
@click.option(
    "--lease-seconds",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Lease time: a crashed worker's subscriptions are taken over by another "
    "worker after this long (default $QUERYLEAF_LEASE_SECONDS or 15).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 256),
    default=DEFAULT_CONCURRENCY,
    show_default=True,
    help="Threads per subscription with preserve_order = false.",
)
@click.option(
    "--log-retention",
    default=None,
    metavar="DURATION",
    help="Keep CHANGE_STREAM_EVENTS() rows this long after completion (e.g. 7d, "
    "12h, 3600, off; default $QUERYLEAF_EVENT_LOG_RETENTION or the existing "
    "TTL index, else 7d).",
)
@click.option(
    "--dead-letter-retention",
    default=None,
    metavar="DURATION",
    help="Keep DEAD_LETTER_EVENTS() rows this long (default "
    "$QUERYLEAF_DEAD_LETTER_RETENTION or the existing TTL index, else 30d).",
)
@click.option("--quiet", is_flag=True, help="Log warnings and errors only (no line per event).")
@click.pass_context
def worker_command(
    ctx: click.Context,
    subscriptions: tuple[str, ...],
    idle_timeout: float | None,
    max_events: int | None,
    lease_seconds: float | None,
    concurrency: int,
    log_retention: str | None,
    dead_letter_retention: str | None,
    quiet: bool,
) -> None:
    """Run the active event subscriptions of the database (one change stream each).

    Every change is recorded in CHANGE_STREAM_EVENTS() and delivered per the subscription's
    deliver_to; the resume point is stored after each event (or batch). Each subscription is
    run by one worker at a time (a lease in the database); start several workers for
    failover. SIGINT/SIGTERM finish the event in hand, checkpoint, release the leases and exit
    0; a second signal exits at once.
    """
    from queryleaf.cli.main import CliError, connection  # deferred: main imports us lazily
    from queryleaf.events.worker import run_worker

    obj: dict[str, Any] = ctx.obj if isinstance(ctx.obj, dict) else {}
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if stop.is_set():
            logging.getLogger("queryleaf.worker").warning("second signal: exiting at once")
            os._exit(128 + signum)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with connection(obj) as ql:
            click.echo(f"queryleaf worker: database {ql.database_name}; Ctrl-C to stop", err=True)
            try:
                report = run_worker(
                    ql,
                    subscriptions=list(subscriptions) or None,
                    stop_event=stop,
                    idle_timeout=idle_timeout,
                    max_events=max_events,
                    lease_seconds=lease_seconds,
                    concurrency=concurrency,
                    log_retention=log_retention,
                    dead_letter_retention=dead_letter_retention,
                )
            except QueryLeafError as exc:
                raise CliError(exc.coded_message) from exc
            except ValueError as exc:  # a malformed duration or lease time
                raise CliError(str(exc)) from exc
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo(
        f"queryleaf worker: stopped ({report.reason}) after {report.events} event(s)", err=True
    )


def main() -> None:
    """``python -m queryleaf.cli.worker``: the command on its own, configured by environment."""
    worker_command(
        obj={
            "uri": os.environ.get("QUERYLEAF_URI"),
            "db": os.environ.get("QUERYLEAF_DB"),
            "data_dir": os.environ.get("QUERYLEAF_DATA_DIR"),
        }
    )


if __name__ == "__main__":
    main()
