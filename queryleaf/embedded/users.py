"""Who uses a directory's server: one ``users/<pid>`` file per process holding a lease."""

from __future__ import annotations

import errno
import os
import sys
import time

from queryleaf.embedded.paths import DataDir, write_json
from queryleaf.embedded.process import pid_alive
from queryleaf.errors import EngineError


def register(dirs: DataDir, pinned: bool) -> None:
    path = dirs.users / str(os.getpid())
    if not pinned and path.exists():
        return  # keep what an earlier lease (perhaps pinned) wrote
    try:
        write_json(
            path,
            {
                "pid": os.getpid(),
                "kind": "serve" if pinned else "client",
                "since": time.time(),
                "command": " ".join(sys.argv)[:300],
            },
        )
    except OSError as exc:
        full = "; is the disk full?" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else ""
        raise EngineError(f"cannot write {path} ({exc.strerror}){full}") from exc


def unregister(dirs: DataDir) -> None:
    (dirs.users / str(os.getpid())).unlink(missing_ok=True)


def live_users(dirs: DataDir) -> list[int]:
    """Pids of processes registered as users; files of dead ones are removed."""
    alive = []
    for path in dirs.users.iterdir():
        if not path.name.isdigit():
            continue
        if pid_alive(int(path.name)):
            alive.append(int(path.name))
        else:
            path.unlink(missing_ok=True)
    return alive


def others(dirs: DataDir) -> list[int]:
    """The live users other than this process."""
    return [pid for pid in live_users(dirs) if pid != os.getpid()]
