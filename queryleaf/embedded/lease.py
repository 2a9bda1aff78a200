"""Leases on a directory's server: acquire, revive (and a watchdog that does it), release.

``acquire()`` connects to the recorded server if it is usable, else starts one; the last
``ServerLease.release()`` among all processes stops it. ``revive()`` is for long-lived
processes: it brings a dead server back on the same port, so their clients reconnect.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pymongo

from queryleaf.embedded import credentials, health, users
from queryleaf.embedded.credentials import Credential, client_uri, redact_uri
from queryleaf.embedded.paths import DataDir, locked, prepare, resolve_data_dir
from queryleaf.embedded.server import ServerRecord, load_record, stop_server, usable_server
from queryleaf.errors import EngineError, QueryLeafError

log = logging.getLogger("queryleaf.engine")
WATCHDOG_INTERVAL = 2.0


class _Holdings:
    """This process's leases, counted per data directory."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.counts: dict[Path, int] = {}
        self.watching: set[ServerLease] = set()
        self.closing = False  # at exit: no watchdog may start a server any more
        self.atexit_registered = False

    def reset_after_fork(self) -> None:
        # A forked child inherits no leases: the parent's users/<pid> file is not its own.
        self.lock = threading.RLock()
        self.counts = {}
        self.watching = set()


_holdings = _Holdings()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_holdings.reset_after_fork)


class ServerLease:
    """One use of the embedded server; ``release()`` when done (idempotent).

    ``uri`` carries the directory's credential (its ``repr`` does not).
    """

    def __init__(
        self, dirs: DataDir, record: ServerRecord, credential: Credential, pinned: bool = False
    ):
        self.data_dir = dirs.root
        self.log_path = dirs.log
        self._dirs = dirs
        self._pinned = pinned
        self._owner = os.getpid()
        self._released = False
        self._revive_lock = threading.Lock()
        self._probe: pymongo.MongoClient | None = None
        self._watchdog: threading.Thread | None = None
        self._stop_watching = threading.Event()
        self._adopt(record, credential)

    def _adopt(self, record: ServerRecord, credential: Credential) -> None:
        self.pid = record.pid
        self.port = record.port
        self.uri = client_uri(record.port, credential)
        self._record = record

    def is_running(self) -> bool:
        """The leased server process still runs (it may have been restarted since)."""
        return self._record.is_alive()

    # ------------------------------------------------------------ surviving the server's death

    def revive(self) -> bool:
        """Make sure the server runs and answers; True if ``uri`` changed.

        Cheap when it does (a ping). Otherwise, under the directory lock: adopt the server
        another process has already started again, or start it again ourselves — on the same
        port, so every client holding ``uri`` reconnects by itself; the URI changes only if
        another program has taken that port meanwhile. A server whose storage fails is stopped
        and started again; one that runs but does not answer is left alone (EngineError): it
        may only be busy.
        """
        with self._revive_lock:
            if self._released or _holdings.closing:
                raise EngineError("this lease on the embedded server was released")
            if self._record.is_alive() and self._answers():
                return False
            before = self.uri
            with locked(self._dirs):
                record, credential = _guarded(
                    self._dirs,
                    lambda: usable_server(
                        self._dirs, restart_broken=True, probe_write=False, preferred_port=self.port
                    ),
                )
                users.register(self._dirs, self._pinned)
            if record.pid != self.pid:
                log.warning(
                    "the embedded server for %s was restarted: pid %d, port %d",
                    self.data_dir,
                    record.pid,
                    record.port,
                )
            self._adopt(record, credential)
            return self.uri != before

    def _answers(self) -> bool:
        if self._probe is None:
            self._probe = health.client(self.uri)
        if health.ping(self._probe).reply is health.Reply.OK:
            return True
        self._probe.close()
        self._probe = None  # the next one is made for the URI of then
        return False

    def start_watchdog(
        self, interval: float = WATCHDOG_INTERVAL, on_change: Callable[[str], None] | None = None
    ) -> None:
        """Call ``revive()`` every ``interval`` seconds in a daemon thread until release.
        ``on_change(new_uri)`` is called when the URI changed (clients must be rebuilt)."""
        if self._watchdog is not None:
            return
        _holdings.watching.add(self)
        self._watchdog = threading.Thread(
            target=self._watch,
            args=(interval, on_change),
            name=f"queryleaf-watchdog-{self.data_dir.name}",
            daemon=True,
        )
        self._watchdog.start()

    def _watch(self, interval: float, on_change: Callable[[str], None] | None) -> None:
        while not self._stop_watching.wait(interval):
            try:
                if self.revive() and on_change is not None:
                    on_change(self.uri)
            except EngineError as exc:
                if self._stop_watching.is_set():
                    return  # released meanwhile
                log.warning("embedded server watchdog: %s", exc.message)
            except Exception:
                log.exception("embedded server watchdog")

    # ------------------------------------------------------------ release

    def release(self) -> bool:
        """Give up this lease; True if that stopped the server (no live user left)."""
        if self._released or self._owner != os.getpid():
            return False
        self._stop_watchdog()
        with self._revive_lock:
            self._released = True
            if self._probe is not None:
                self._probe.close()
        return _release_one(self._dirs)

    def _stop_watchdog(self) -> None:
        self._stop_watching.set()
        if self._watchdog is not None and self._watchdog is not threading.current_thread():
            self._watchdog.join()
        _holdings.watching.discard(self)

    def add_log_hint(self, exc: QueryLeafError) -> None:
        """Point ``exc``, if the server failed it for a reason only its log tells, there."""
        health.add_log_hint(exc, self._dirs)

    def __enter__(self) -> ServerLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "released" if self._released else "held"
        return f"<ServerLease {redact_uri(self.uri)} dir={self.data_dir} {state}>"


def acquire(
    data_dir: str | os.PathLike[str] | None = None, *, pin: bool = False, watch: bool = False
) -> ServerLease:
    """Connect to the server of ``data_dir`` (see resolve_data_dir), starting one if needed.

    ``pin`` marks this process as the directory's foreground server (``queryleaf serve``);
    ``watch`` starts the lease's watchdog (``ServerLease.start_watchdog``).
    """
    dirs = prepare(data_dir)
    with _holdings.lock, locked(dirs):
        record, credential = _guarded(
            dirs, lambda: usable_server(dirs, restart_broken=False, probe_write=True)
        )
        users.register(dirs, pin)
        _holdings.counts[dirs.root] = _holdings.counts.get(dirs.root, 0) + 1
        if not _holdings.atexit_registered:
            atexit.register(_release_all)
            _holdings.atexit_registered = True
    lease = ServerLease(dirs, record, credential, pin)
    if watch:
        lease.start_watchdog()
    return lease


def _guarded(
    dirs: DataDir, start: Callable[[], tuple[ServerRecord, Credential]]
) -> tuple[ServerRecord, Credential]:
    try:
        return start()
    except OSError as exc:
        full = "; is the disk full?" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else ""
        raise EngineError(
            f"could not start or record the embedded server in {dirs.root} "
            f"({exc.strerror}: {exc.filename}){full}"
        ) from exc


def find_server(data_dir: str | os.PathLike[str] | None = None) -> ServerRecord | None:
    """The server recorded for ``data_dir`` if it is alive and answers, else None."""
    dirs = DataDir(resolve_data_dir(data_dir))
    record, credential = load_record(dirs), credentials.load(dirs)
    if record is None or credential is None or not record.is_alive():
        return None
    with health.client(client_uri(record.port, credential)) as mongo:
        return record if health.ping(mongo).reply is health.Reply.OK else None


def _release_one(dirs: DataDir) -> bool:
    with _holdings.lock:
        count = _holdings.counts.get(dirs.root, 0) - 1
        if count > 0:
            _holdings.counts[dirs.root] = count
            return False
        _holdings.counts.pop(dirs.root, None)
        return _unregister(dirs)


def _unregister(dirs: DataDir) -> bool:
    """Drop this process from the users; stop the server if nobody alive is left."""
    with locked(dirs):
        users.unregister(dirs)
        if users.live_users(dirs):
            return False
        record = load_record(dirs)
        if record is None:
            return False
        stop_server(dirs, record)
        return True


def _release_all() -> None:
    """atexit: release whatever this process still holds."""
    _holdings.closing = True
    for lease in list(_holdings.watching):
        lease._stop_watchdog()
    with _holdings.lock:
        roots = list(_holdings.counts)
        _holdings.counts.clear()
    for root in roots:
        with contextlib.suppress(EngineError, OSError):
            _unregister(DataDir(root))
