"""Closing a pymongo client without waiting on a server that is gone.

``MongoClient.close()`` first ends the client's server sessions, which waits for the server for
up to the server-selection timeout: a process whose server died or hangs would take that long
to exit. A client being closed has nothing left to lose, so the wait is bounded here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from pymongo import MongoClient

CLOSE_WAIT_S = 0.5


def close_client(client: MongoClient, wait_s: float = CLOSE_WAIT_S) -> None:
    """Close ``client``; if the server does not answer within ``wait_s``, leave the rest of the
    close to a background (daemon) thread."""
    close_within(client.close, wait_s, "queryleaf-close-client")


def close_within(close: Callable[[], object], wait_s: float = CLOSE_WAIT_S, name: str = "") -> None:
    """Run ``close`` (of a client, a cursor...) for at most ``wait_s`` seconds: past that, it
    goes on in a daemon thread; its errors (a server gone) are of no use to the closer."""

    def run() -> None:
        try:
            close()
        except Exception:  # noqa: BLE001 - closing what a gone server held
            pass

    closing = threading.Thread(target=run, name=name or "queryleaf-close", daemon=True)
    closing.start()
    closing.join(wait_s)
