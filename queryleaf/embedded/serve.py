"""``queryleaf serve``: keep a directory's server running in the foreground."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from queryleaf.embedded import credentials, health, users
from queryleaf.embedded.credentials import client_uri, redact_uri
from queryleaf.embedded.lease import ServerLease, acquire
from queryleaf.embedded.paths import locked, prepare
from queryleaf.embedded.server import load_record


def describe(lease: ServerLease) -> str:
    """The line ``queryleaf serve`` prints: the URI without its password."""
    return (
        f"queryleaf serve: {redact_uri(lease.uri)} (data dir {lease.data_dir}, server pid "
        f"{lease.pid}; the URI with its password: queryleaf serve --print-uri); "
        "press Ctrl-C to stop"
    )


def shared_server_uri(data_dir: str | os.PathLike[str] | None = None) -> str | None:
    """The URI (with the credential) of the directory's server if it runs, answers and other
    live processes use it (so it stays up without us); else None."""
    dirs = prepare(data_dir)
    with locked(dirs):
        record, credential = load_record(dirs), credentials.load(dirs)
        if (
            record is None
            or credential is None
            or not record.auth
            or not record.is_alive()
            or not users.others(dirs)
        ):
            return None
        uri = client_uri(record.port, credential)
        with health.client(uri) as mongo:
            return uri if health.ping(mongo).reply is health.Reply.OK else None


def serve(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    announce: Callable[[ServerLease], None] = lambda lease: print(describe(lease), flush=True),
    stop: threading.Event | None = None,
) -> bool:
    """Run the directory's server in the foreground until SIGINT/SIGTERM (or ``stop`` is set).

    Starts or adopts the server and calls ``announce`` once it is ready (again if it had to be
    restarted on another port). A server that exits meanwhile is started again. On the way
    out it is stopped unless other processes still use it. Returns True if it stopped it.
    """
    stop = stop or threading.Event()
    previous = _install_stop_handlers(stop)
    try:
        lease = acquire(data_dir, pin=True)
        try:
            announce(lease)
            _keep_running(lease, stop, announce)
        finally:
            stopped = lease.release()
    finally:
        _restore_handlers(previous)
    return stopped


def _keep_running(
    lease: ServerLease, stop: threading.Event, announce: Callable[[ServerLease], None]
) -> None:
    """Wait for ``stop``; a server that exits meanwhile is started again (same port)."""
    while not stop.wait(0.5):
        if not lease.is_running() and lease.revive():
            announce(lease)


# what signal.signal takes and gives back
_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


def _install_stop_handlers(stop: threading.Event) -> dict[signal.Signals, _Handler]:
    if threading.current_thread() is not threading.main_thread():
        return {}  # signals can only be caught on the main thread; rely on ``stop``
    previous: dict[signal.Signals, _Handler] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, lambda *_: stop.set())
    return previous


def _restore_handlers(previous: dict[signal.Signals, _Handler]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)
