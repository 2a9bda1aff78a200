"""``queryleaf worker``: run the stored event subscriptions until SIGINT/SIGTERM."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import urllib.error
import urllib.request
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
@click.option(
    "--metrics",
    "metrics_address",
    default=None,
    metavar="[HOST:]PORT",
    help="Serve /metrics (Prometheus), /healthz and /readyz on this address "
    "(127.0.0.1 when only a port is given; default: off).",
)
@click.option(
    "--check",
    is_flag=True,
    help="Do not run: print whether the subscriptions are ready (JSON) and exit 0 if so, 1 if "
    "not, 2 if MongoDB does not answer. With --metrics, asks the worker serving there.",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one JSON object per line (time, level, worker_id, subscription, event_id, "
    "message, error).",
)
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
    metrics_address: str | None,
    check: bool,
    log_format: str,
) -> None:
    """Run the active event subscriptions of the database (one change stream each).

    Every change is recorded in CHANGE_STREAM_EVENTS() and delivered per the subscription's
    deliver_to; the resume point is stored after each event (or batch). Each subscription is
    run by one worker at a time (a lease in the database); start several workers for
    failover. SIGINT/SIGTERM finish the event in hand, checkpoint, release the leases and exit
    0; a second signal exits at once. Operating it: docs/operations.md.
    """
    from queryleaf.cli.main import CliError, connection  # deferred: main imports us lazily
    from queryleaf.events import logs
    from queryleaf.events.endpoint import Endpoint, parse_address
    from queryleaf.events.lease import new_worker_id
    from queryleaf.events.observe import Monitor
    from queryleaf.events.worker import run_worker

    obj: dict[str, Any] = ctx.obj if isinstance(ctx.obj, dict) else {}
    try:
        address = None if metrics_address is None else parse_address(metrics_address)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--metrics") from exc
    if check:
        ctx.exit(_check(obj, address, list(subscriptions) or None))
    worker_id = new_worker_id()
    logs.configure(log_format, logging.WARNING if quiet else logging.INFO, worker_id)
    monitor = Monitor() if address is not None else None

    def say(message: str) -> None:
        """A line for the operator: on stderr, or a log record when every line must be JSON."""
        if log_format == "json":
            logging.getLogger(logs.LOGGER).info(message)
        else:
            click.echo(message, err=True)

    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if stop.is_set():
            logging.getLogger("queryleaf.worker").warning("second signal: exiting at once")
            os._exit(128 + signum)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    endpoint = None
    try:
        if monitor is not None and address is not None:
            try:
                endpoint = Endpoint(monitor, *address).start()
            except OSError as exc:
                raise CliError(f"--metrics {metrics_address}: {exc.strerror or exc}") from exc
        with connection(obj) as ql:
            say(f"queryleaf worker: database {ql.database_name}; Ctrl-C to stop")
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
                    worker_id=worker_id,
                    monitor=monitor,
                )
            except QueryLeafError as exc:
                raise CliError(exc.coded_message) from exc
            except ValueError as exc:  # a malformed duration or lease time
                raise CliError(str(exc)) from exc
    finally:
        if endpoint is not None:
            endpoint.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    say(f"queryleaf worker: stopped ({report.reason}) after {report.events} event(s)")


def _check(obj: dict[str, Any], address: tuple[str, int] | None, only: list[str] | None) -> int:
    """``--check``: readiness from the worker at ``address`` (its /readyz), else from the
    database; prints the JSON answer; 0 ready, 1 not ready, 2 unreachable."""
    from queryleaf.cli.main import connection
    from queryleaf.events import health

    if address is not None:
        ok, body = _ask_worker(*address)
    else:
        with connection(obj) as ql:
            ok, body = health.check_database(ql.db, only)
    click.echo(json.dumps(body))
    if ok:
        return 0
    reasons = body.get("reasons") or []
    unreachable = {"database_unreachable", "worker_unreachable"}
    return 2 if any(r.get("reason") in unreachable for r in reasons) else 1


def _ask_worker(host: str, port: int) -> tuple[bool, dict[str, Any]]:
    from queryleaf.events import health

    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:  # noqa: S310 - http only
            return True, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return False, json.loads(exc.read() or b"{}")
    except OSError as exc:
        return health.answer([health.reason(None, "worker_unreachable", f"{url}: {exc}")], "ready")


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
