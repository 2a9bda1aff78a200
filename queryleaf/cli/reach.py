"""Reaching the server at start-up: a refused connection fails in about a second.

pymongo keeps trying a server until the server-selection timeout (10 s) runs out, whatever the
reason it cannot connect. A port with nothing listening refuses at once, and waiting longer
rarely changes that: when every server of the URI has refused for ``REFUSED_FOR_S``, the
connection fails with the driver's error (the same message as after the timeout). Other
failures (no answer, DNS, TLS) still wait for the full timeout, as a slow network may need it.
"""

from __future__ import annotations

import errno
import time

import pymongo
import pymongo.errors

REFUSED_FOR_S = 0.5  # two of the driver's checks (it retries every 0.5 s)
POLL_S = 0.05


def _refused(error: Exception | None) -> bool:
    text = str(error) if error is not None else ""
    return f"[Errno {errno.ECONNREFUSED}]" in text or "actively refused" in text


def ping(client: pymongo.MongoClient, patience_s: float = 10.0) -> None:
    """``ping`` the server; raises the driver's error, early when every server refuses."""
    started = time.monotonic()
    refused_since: float | None = None
    while time.monotonic() - started < patience_s:
        servers = list(client.topology_description.server_descriptions().values())
        if any(server.is_server_type_known for server in servers):
            break
        if servers and all(_refused(server.error) for server in servers):
            refused_since = refused_since or time.monotonic()
            if time.monotonic() - refused_since >= REFUSED_FOR_S:
                error = servers[0].error
                assert error is not None
                raise error
        else:
            refused_since = None
        time.sleep(POLL_S)
    client.admin.command("ping")
