"""Whether the embedded server makes every commit durable (``--sync-on-commit``).

On by default: an acknowledged write survives a crash of the server or the machine. Throwaway
data can opt out, explicitly: ``QUERYLEAF_EMBEDDED_SYNC=off`` in the environment of the process
that starts the server, or ``sync_on_commit = false`` under ``[storage]`` in the data
directory's ``secantusd.toml`` (the environment wins). The server's own flags override its
toml, so queryleaf reads that setting itself and leaves the flag out.
"""

from __future__ import annotations

import os
import tomllib

from queryleaf.embedded.paths import DataDir
from queryleaf.errors import EngineError

SYNC_ENV = "QUERYLEAF_EMBEDDED_SYNC"
_ON = {"on", "1", "true", "yes"}
_OFF = {"off", "0", "false", "no"}


def sync_on_commit(dirs: DataDir) -> bool:
    value = os.environ.get(SYNC_ENV, "").strip().lower()
    if value in _ON:
        return True
    if value in _OFF:
        return False
    if value:
        raise EngineError(f"{SYNC_ENV}={os.environ[SYNC_ENV]!r} is not a setting: use on or off")
    return _toml_setting(dirs) is not False


def _toml_setting(dirs: DataDir) -> bool | None:
    """``[storage] sync_on_commit`` of the directory's secantusd.toml, if it says so."""
    try:
        with open(dirs.config, "rb") as f:
            storage = tomllib.load(f).get("storage")
    except (OSError, tomllib.TOMLDecodeError):
        return None  # no file; a broken one is reported by the server itself at start
    value = storage.get("sync_on_commit") if isinstance(storage, dict) else None
    return value if isinstance(value, bool) else None


def server_flags(sync: bool) -> list[str]:
    return ["--sync-on-commit"] if sync else []
