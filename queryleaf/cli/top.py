"""``queryleaf top`` and ``\\top``: a live full-screen view of the event subscriptions.

Every second it reads ``EVENT_SUBSCRIPTIONS()`` and ``ACTIVE_CHANGE_STREAMS()`` with SQL (what
any client could read; nothing here knows the runtime's collections) and redraws: status,
events/s (the difference of the counters between two refreshes), lag, a backlog estimate,
retries, failures, dead letters, the lease owner and the workers' heartbeats. ``q`` or Ctrl-C
leaves. Off a terminal it prints one frame and returns.

Drawn with rich's ``Live`` on the alternate screen: the tables are rich tables like the shell's
results, and the loop is a plain "read, draw, wait for a key up to a second" — nothing a
prompt_toolkit application (an event loop, layouts, key bindings) would add to.
"""

from __future__ import annotations

import os
import select
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import click
from rich import box
from rich.console import Console, Group, JustifyMethod, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from queryleaf.api import QueryLeaf
from queryleaf.errors import QueryLeafError

DEFAULT_INTERVAL_S = 1.0
QUIT_KEYS = ("q", "Q")

SUBSCRIPTIONS_SQL = (
    "SELECT name, status, worker_status, events_received, events_processed, events_failed,"
    " events_retried, events_dead_lettered, resume_token_lag_seconds, worker_id,"
    " worker_heartbeat_age_seconds, TIMESTAMPDIFF(SECOND, created_at, NOW()) AS age_seconds"
    " FROM EVENT_SUBSCRIPTIONS() ORDER BY name"
)
WORKERS_SQL = (
    "SELECT worker_id, host, pid, COUNT(*) AS leases,"
    " TIMESTAMPDIFF(SECOND, MAX(heartbeat_at), NOW()) AS heartbeat_age_seconds,"
    " TIMESTAMPDIFF(SECOND, NOW(), MIN(expires_at)) AS expires_in_seconds"
    " FROM ACTIVE_CHANGE_STREAMS() GROUP BY worker_id, host, pid ORDER BY worker_id"
)


@dataclass
class Snapshot:
    """One reading of the system tables."""

    taken_at: float  # time.monotonic()
    subscriptions: list[dict[str, Any]] = field(default_factory=list)
    workers: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


def take(ql: QueryLeaf) -> Snapshot:
    snapshot = Snapshot(time.monotonic())
    try:
        snapshot.subscriptions = ql.execute(SUBSCRIPTIONS_SQL).rows
        snapshot.workers = ql.execute(WORKERS_SQL).rows
    except QueryLeafError as exc:
        snapshot.error = exc.coded_message
    return snapshot


def rate(counter: str, row: dict[str, Any], before: Snapshot | None, now: Snapshot) -> float | None:
    """Events per second of ``counter`` between two snapshots (None on the first)."""
    if before is None:
        return None
    earlier = next((r for r in before.subscriptions if r["name"] == row["name"]), None)
    elapsed = now.taken_at - before.taken_at
    if earlier is None or elapsed <= 0:
        return None
    return max((row.get(counter) or 0) - (earlier.get(counter) or 0), 0) / elapsed


def backlog(row: dict[str, Any], received_per_s: float | None) -> float | None:
    """About how many changes wait: the lag times the rate at which the subscription takes
    events — over the last refresh, else on average since its creation. None: no rate known."""
    lag = row.get("resume_token_lag_seconds")
    if lag is None:
        return None
    if lag == 0:
        return 0.0
    per_s = received_per_s or 0.0
    if not per_s and (row.get("age_seconds") or 0) > 0:
        per_s = (row.get("events_received") or 0) / row["age_seconds"]
    return lag * per_s if per_s else None


def render(
    database: str, now: Snapshot, before: Snapshot | None, interval: float | None
) -> RenderableType:
    """One frame; ``interval`` None: a single frame (off a terminal)."""
    title = Text.assemble(("queryleaf top", "bold"), f"  database {database}  ")
    title.append(f"{datetime.now():%Y-%m-%d %H:%M:%S}")
    if interval is not None:
        title.append(f"  every {interval:g}s  ")
        title.append("q", style="bold")
        title.append(" to quit")
    parts: list[RenderableType] = [title]
    if now.error:
        parts.append(Text(f"error: {now.error}", style="bold red"))
    parts += [Text(), subscriptions_table(now, before), Text(), workers_table(now), Text()]
    parts.append(
        Text(
            "events/s: events taken per second between two refreshes · backlog: ~ lag × "
            "events/s (else the average since creation) · standby workers hold no lease: "
            "their log names the holder",
            style="dim",
        )
    )
    return Group(*parts)


def subscriptions_table(now: Snapshot, before: Snapshot | None) -> Table:
    table = _table("SUBSCRIPTIONS")
    for name, justify in SUBSCRIPTION_HEADERS:
        table.add_column(name, justify=justify, no_wrap=True, overflow="ellipsis")
    for row in now.subscriptions:
        received = rate("events_received", row, before, now)
        processed = rate("events_processed", row, before, now)
        owner = row.get("worker_id") if row.get("worker_status") != "none" else None
        table.add_row(
            row["name"],
            Text(row.get("status") or "", style=STATUS_STYLE.get(row.get("status") or "", "")),
            Text(
                row.get("worker_status") or "",
                style=WORKER_STYLE.get(row.get("worker_status") or "", ""),
            ),
            _number(received, 1),
            _number(processed, 1),
            _seconds(row.get("resume_token_lag_seconds")),
            _estimate(backlog(row, received)),
            _number(row.get("events_retried"), 0),
            _number(row.get("events_failed"), 0),
            _number(row.get("events_dead_lettered"), 0),
            owner or "-",
            _seconds(row.get("worker_heartbeat_age_seconds")),
        )
    if not now.subscriptions:
        table.add_row("(no event subscriptions)", *[""] * (len(SUBSCRIPTION_HEADERS) - 1))
    return table


SUBSCRIPTION_HEADERS: tuple[tuple[str, JustifyMethod], ...] = (
    ("name", "left"),
    ("status", "left"),
    ("worker", "left"),
    ("recv/s", "right"),
    ("done/s", "right"),
    ("lag", "right"),
    ("backlog", "right"),
    ("retries", "right"),
    ("failed", "right"),
    ("dead", "right"),
    ("lease owner", "left"),
    ("heartbeat", "right"),
)
STATUS_STYLE = {"active": "green", "paused": "yellow", "failed": "bold red"}
WORKER_STYLE = {"running": "green", "stale": "bold red", "none": "dim"}


def workers_table(now: Snapshot) -> Table:
    table = _table("WORKERS (holding leases)")
    headers: tuple[tuple[str, JustifyMethod], ...] = (
        ("worker", "left"),
        ("host", "left"),
        ("pid", "right"),
        ("leases", "right"),
        ("heartbeat", "right"),
        ("expires in", "right"),
    )
    for name, justify in headers:
        table.add_column(name, justify=justify, no_wrap=True, overflow="ellipsis")
    for row in now.workers:
        expires = row.get("expires_in_seconds")
        table.add_row(
            row.get("worker_id") or "",
            row.get("host") or "",
            _number(row.get("pid"), 0),
            _number(row.get("leases"), 0),
            _seconds(row.get("heartbeat_age_seconds")),
            Text("expired", style="bold red")
            if expires is not None and expires < 0
            else _seconds(expires),
        )
    if not now.workers:
        table.add_row("(no worker holds a lease)", "", "", "", "", "")
    return table


def _table(title: str) -> Table:
    return Table(
        title=title,
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
    )


def _number(value: Any, digits: int) -> Text:
    if value is None:
        return Text("-", style="dim")
    return Text(f"{value:,.{digits}f}")


def _seconds(value: Any) -> Text:
    if value is None:
        return Text("-", style="dim")
    value = float(value)
    if value < 120:
        return Text(f"{value:.1f}s" if value < 10 else f"{value:.0f}s")
    if value < 7200:
        return Text(f"{value / 60:.0f}m")
    return Text(f"{value / 3600:.1f}h")


def _estimate(value: float | None) -> Text:
    return Text("?", style="dim") if value is None else Text(f"~{value:,.0f}")


@contextmanager
def single_keys(fd: int) -> Iterator[Callable[[float], str]]:
    """The terminal ``fd`` in cbreak mode (keys arrive one by one, Ctrl-C still interrupts);
    yields ``read(timeout)``: a key, or '' when none came within ``timeout`` seconds."""
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)

    def read(timeout: float) -> str:
        ready, _, _ = select.select([fd], [], [], max(timeout, 0.0))
        return os.read(fd, 32).decode(errors="replace") if ready else ""

    try:
        yield read
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def run_top(ql: QueryLeaf, console: Console, interval: float = DEFAULT_INTERVAL_S) -> None:
    """Show the view until ``q`` or Ctrl-C (one frame when not on a terminal)."""
    if not (console.is_terminal and sys.stdin.isatty()):
        console.print(render(ql.database_name, take(ql), None, None))
        return
    before: Snapshot | None = None
    try:
        with (
            single_keys(sys.stdin.fileno()) as read_key,
            Live(console=console, screen=True, auto_refresh=False) as live,
        ):
            while True:
                now = take(ql)
                live.update(render(ql.database_name, now, before, interval), refresh=True)
                before = now
                deadline = time.monotonic() + interval
                while (left := deadline - time.monotonic()) > 0:
                    if any(key in QUIT_KEYS for key in read_key(left)):
                        return
    except KeyboardInterrupt:
        return


@click.command("top")
@click.option(
    "--interval",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_INTERVAL_S,
    show_default=True,
    metavar="SECONDS",
    help="Refresh every SECONDS.",
)
@click.pass_context
def top_command(ctx: click.Context, interval: float) -> None:
    """Live view of the event subscriptions and their workers; q (or Ctrl-C) quits.

    Status, events/s, lag, backlog estimate, retries, failures, dead letters, lease owner and
    worker heartbeats, read from EVENT_SUBSCRIPTIONS() and ACTIVE_CHANGE_STREAMS(). Off a
    terminal, prints one frame.
    """
    from queryleaf.cli.main import _printer, connection  # deferred: main imports us lazily

    with connection(ctx.obj if isinstance(ctx.obj, dict) else {}) as ql:
        run_top(ql, _printer(ctx).console, interval)
