"""Finds or starts the embedded SecantusDB server (a subprocess, reached over the wire only).

The public API of the embedded default server (docs/embedded.md); the implementation is the
``queryleaf.embedded`` package. ``acquire()`` connects to the data directory's server if it is
usable, else starts one; ``ServerLease.release()`` stops it when no live process uses it any
more; ``ServerLease.revive()`` / ``start_watchdog()`` bring it back if it dies.
"""

from __future__ import annotations

from queryleaf.embedded.credentials import redact_uri
from queryleaf.embedded.durability import SYNC_ENV
from queryleaf.embedded.lease import ServerLease, acquire, find_server
from queryleaf.embedded.paths import DATA_DIR_ENV, resolve_data_dir
from queryleaf.embedded.process import EphemeralServer, free_port, start_ephemeral_server
from queryleaf.embedded.serve import describe, serve, shared_server_uri
from queryleaf.embedded.server import ServerRecord
from queryleaf.errors import QueryLeafError

__all__ = [
    "DATA_DIR_ENV",
    "SYNC_ENV",
    "EphemeralServer",
    "ServerLease",
    "ServerRecord",
    "acquire",
    "add_server_log_hint",
    "describe",
    "find_server",
    "free_port",
    "redact_uri",
    "resolve_data_dir",
    "serve",
    "shared_server_uri",
    "start_ephemeral_server",
]


def add_server_log_hint(exc: QueryLeafError, lease: ServerLease | None) -> None:
    """On the embedded server, point a statement's server-side failure (InternalError, out of
    disk space) at the server's log, whose reason the error itself does not carry."""
    if lease is not None:
        lease.add_log_hint(exc)
