"""Finds or starts the embedded SecantusDB server (a subprocess, reached over the wire only).

A data directory holds one server's storage and the bookkeeping that lets several processes
share it (docs/embedded.md):

    db/            WiredTiger storage (``secantusd-py --storage-path``)
    server.json    the running server: pid, port, started_at
    server.log     the server's stdout and stderr, appended at every start
    users/<pid>    one file per process holding a lease on the server
    lock           flock'ed while a process starts, adopts, or stops the server

``acquire()`` connects to the recorded server if it is alive and answers, else starts one;
``ServerLease.release()`` stops it when no live process uses it any more.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import platformdirs
import pymongo
from pymongo.errors import PyMongoError

from queryleaf.errors import EngineError

try:
    import fcntl
except ImportError:  # Windows: the embedded default is POSIX-only (docs/embedded.md)
    fcntl = None  # type: ignore[assignment]

SERVER_COMMAND = "secantusd-py"
DATA_DIR_ENV = "QUERYLEAF_DATA_DIR"
HOST = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
LOCK_TIMEOUT = 60.0
PING_TIMEOUT = 2.0
LOG_ROTATE_BYTES = 10 * 1024 * 1024
INSTALL_HINT = (
    "run `pip install 'queryleaf[embedded]'` or pass --uri / set QUERYLEAF_URI to use another MongoDB"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def server_executable() -> str:
    """Path of secantusd-py: beside this Python first (a venv), then on PATH."""
    beside = Path(sys.executable).parent / SERVER_COMMAND
    if beside.exists():
        return str(beside)
    found = shutil.which(SERVER_COMMAND)
    if not found:
        raise EngineError(f"the embedded server `{SERVER_COMMAND}` is not installed: {INSTALL_HINT}")
    return found


def server_uri(port: int) -> str:
    return f"mongodb://{HOST}:{port}/?directConnection=true"


def log_tail(log_path: str | Path | None, since: int = 0, lines: int = 3) -> str:
    """The last non-blank lines of a log (from byte ``since``), joined into one line."""
    if log_path is None:
        return ""
    try:
        with open(log_path, "rb") as f:
            f.seek(since)
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    kept = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(kept[-lines:])[-600:]


def wait_until_listening(
    port: int,
    proc: subprocess.Popen,
    timeout: float = START_TIMEOUT,
    log_path: str | Path | None = None,
    log_offset: int = 0,
) -> None:
    """Block until the server accepts TCP connections; EngineError if it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EngineError(_exited_at_start_message(proc.returncode, log_path, log_offset))
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    proc.kill()
    proc.wait()
    where = f"; see {log_path}" if log_path else ""
    raise EngineError(
        f"the embedded server did not listen on port {port} within {timeout:.0f}s{where}"
    )


def _exited_at_start_message(code: int, log_path: str | Path | None, since: int) -> str:
    message = f"the embedded server exited at start (code {code})"
    tail = log_tail(log_path, since)
    if "resource busy" in tail:
        message += (" because another secantusd-py uses the same --storage-path; stop that "
                    "process and retry")
    if log_path:
        message += f"; see {log_path}"
    return f"{message}: {tail}" if tail else message


# ---------------------------------------------------------------- ephemeral (tests)


@dataclass
class EphemeralServer:
    """A throw-away server (in-memory storage unless a path is given), e.g. for tests."""

    process: subprocess.Popen
    port: int

    @property
    def uri(self) -> str:
        return server_uri(self.port)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_ephemeral_server(
    storage_path: str = ":memory:",
    port: int | None = None,
    test_commands: bool = False,
    extra_args: tuple[str, ...] = (),
    log_path: str | None = None,
) -> EphemeralServer:
    port = port or free_port()
    args = [*_server_args(port, storage_path), *extra_args]
    if test_commands:
        args.append("--enable-test-commands")
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    offset = Path(log_path).stat().st_size if log_path else 0
    try:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    finally:
        if log_path:
            log.close()  # the child has its own copy
    wait_until_listening(port, proc, log_path=log_path, log_offset=offset)
    return EphemeralServer(proc, port)


def _server_args(port: int, storage_path: str) -> list[str]:
    return [server_executable(), "--host", HOST, "--port", str(port),
            "--storage-path", storage_path, "--log-level", "WARNING"]


# ---------------------------------------------------------------- the data directory


@dataclass(frozen=True)
class DataDir:
    """The files of one data directory (see the module docstring)."""

    root: Path

    @property
    def storage(self) -> Path:
        return self.root / "db"

    @property
    def record(self) -> Path:
        return self.root / "server.json"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    @property
    def users(self) -> Path:
        return self.root / "users"

    @property
    def lock(self) -> Path:
        return self.root / "lock"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """``data_dir``, else $QUERYLEAF_DATA_DIR, else the platform's user data dir; absolute."""
    chosen = data_dir or os.environ.get(DATA_DIR_ENV) or platformdirs.user_data_dir("queryleaf")
    return Path(chosen).expanduser().resolve()


def _prepare(data_dir: str | os.PathLike[str] | None) -> DataDir:
    dirs = DataDir(resolve_data_dir(data_dir))
    try:
        dirs.users.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EngineError(
            f"cannot create the data directory {dirs.root} ({exc.strerror}); "
            f"choose another with --data-dir or {DATA_DIR_ENV}"
        ) from exc
    return dirs


@contextlib.contextmanager
def _locked(dirs: DataDir, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Exclusive flock on the directory's lock file (released by the OS if we die)."""
    if fcntl is None:
        raise EngineError(
            "the embedded server needs Linux or macOS here; pass --uri / set QUERYLEAF_URI"
        )
    with open(dirs.lock, "a") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise EngineError(
                        f"another process has held {dirs.lock} for {timeout:.0f}s while "
                        "starting or stopping the server; retry, or stop that process"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


# ---------------------------------------------------------------- processes


def _pid_alive(pid: int) -> bool:
    """The process exists and is not a zombie (exited, not yet reaped by its parent)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    stat = Path(f"/proc/{pid}/stat")
    if stat.parent.exists():
        try:
            return stat.read_text().rpartition(")")[2].split()[0] != "Z"
        except (OSError, IndexError):
            return False
    return _ps(pid, "stat")[:1] != "Z"


def _command_line(pid: int) -> str | None:
    """The command line of ``pid``, or None where we cannot tell."""
    path = Path(f"/proc/{pid}/cmdline")
    if path.parent.exists():
        try:
            return path.read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            return None
    return _ps(pid, "command") or None


def _ps(pid: int, field: str) -> str:
    """One ``ps`` field of ``pid`` (systems without /proc, e.g. macOS); '' if unknown."""
    try:
        out = subprocess.run(["ps", "-o", f"{field}=", "-p", str(pid)],
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


@dataclass(frozen=True)
class ServerRecord:
    """What ``server.json`` says about the server of a data directory."""

    pid: int
    port: int
    started_at: float
    storage_path: str

    @property
    def uri(self) -> str:
        return server_uri(self.port)

    def is_alive(self) -> bool:
        """The pid runs and is our server (a reused pid is not)."""
        if not _pid_alive(self.pid):
            return False
        command = _command_line(self.pid)
        return command is None or f"--storage-path {self.storage_path} " in f"{command} "

    def answers(self, timeout: float = PING_TIMEOUT) -> bool:
        client: pymongo.MongoClient = pymongo.MongoClient(
            self.uri, serverSelectionTimeoutMS=int(timeout * 1000),
            connectTimeoutMS=int(timeout * 1000),
        )
        try:
            client.admin.command("ping")
            return True
        except PyMongoError:
            return False
        finally:
            client.close()


def _load_record(dirs: DataDir) -> ServerRecord | None:
    try:
        data = json.loads(dirs.record.read_text())
        return ServerRecord(int(data["pid"]), int(data["port"]), float(data["started_at"]),
                            str(data["storage_path"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def find_server(data_dir: str | os.PathLike[str] | None = None) -> ServerRecord | None:
    """The server recorded for ``data_dir`` if it is alive and answers, else None."""
    record = _load_record(DataDir(resolve_data_dir(data_dir)))
    if record is not None and record.is_alive() and record.answers():
        return record
    return None


def _running_server(dirs: DataDir) -> ServerRecord | None:
    """The recorded server if usable; None if there is none or the record is stale."""
    record = _load_record(dirs)
    if record is None or not record.is_alive():
        return None
    deadline = time.monotonic() + 3 * PING_TIMEOUT
    while time.monotonic() < deadline:
        if record.answers():
            return record
        if not record.is_alive():
            return None
    raise EngineError(
        f"the embedded server (pid {record.pid}) for {dirs.root} runs but does not answer on "
        f"port {record.port}; stop it (`kill {record.pid}`) and retry; its log is {dirs.log}"
    )


def _rotate_log(dirs: DataDir) -> None:
    with contextlib.suppress(OSError):
        if dirs.log.stat().st_size > LOG_ROTATE_BYTES:
            os.replace(dirs.log, dirs.log.with_name("server.log.1"))


def _start_server(dirs: DataDir) -> ServerRecord:
    """Start a detached server on a free port and record it. Call with the lock held."""
    _rotate_log(dirs)
    for attempt in range(3):
        port = free_port()
        try:
            proc = _launch(dirs, port)
            break
        except EngineError as exc:
            # Another program may have taken the port between free_port() and the bind.
            if attempt == 2 or "Address already in use" not in str(exc):
                raise
    _reap_in_background(proc)
    record = ServerRecord(proc.pid, port, time.time(), str(dirs.storage))
    _write_json(dirs.record, asdict(record))
    return record


def _launch(dirs: DataDir, port: int) -> subprocess.Popen:
    args = _server_args(port, str(dirs.storage))
    with open(dirs.log, "ab") as log:
        log.write(f"--- queryleaf: starting {' '.join(args)} at {time.ctime()}\n".encode())
        log.flush()
        offset = log.tell()
        # cwd = the data dir, so a secantusd.toml there configures the server;
        # a new session, so the server outlives us and ignores our terminal's Ctrl-C.
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=dirs.root, start_new_session=True)
    try:
        wait_until_listening(port, proc, log_path=dirs.log, log_offset=offset)
    except BaseException:
        # Also on Ctrl-C: an unrecorded server would hold the storage and block every restart.
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        raise
    return proc


def _reap_in_background(proc: subprocess.Popen) -> None:
    # Whoever stops the server may be another process; waiting here keeps it from lingering
    # as our zombie. If we exit first, init adopts and reaps it.
    threading.Thread(target=proc.wait, name=f"reap-secantusd-{proc.pid}", daemon=True).start()


def _stop_server(dirs: DataDir, record: ServerRecord) -> None:
    """SIGTERM, wait, SIGKILL; then forget the record. Call with the lock held."""
    for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, 5.0)):
        if not record.is_alive():
            break
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.pid, sig)
        deadline = time.monotonic() + wait
        while record.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
    dirs.record.unlink(missing_ok=True)


# ---------------------------------------------------------------- users and leases


def _register_user(dirs: DataDir, pinned: bool) -> None:
    path = dirs.users / str(os.getpid())
    if not pinned and path.exists():
        return  # keep what an earlier lease (perhaps pinned) wrote
    _write_json(path, {"pid": os.getpid(), "kind": "serve" if pinned else "client",
                       "since": time.time(), "command": " ".join(sys.argv)[:300]})


def _live_users(dirs: DataDir) -> list[int]:
    """Pids of processes registered as users; files of dead ones are removed."""
    alive = []
    for path in dirs.users.iterdir():
        if not path.name.isdigit():
            continue
        if _pid_alive(int(path.name)):
            alive.append(int(path.name))
        else:
            path.unlink(missing_ok=True)
    return alive


class _Holdings:
    """This process's leases, counted per data directory."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.counts: dict[Path, int] = {}
        self.atexit_registered = False

    def reset_after_fork(self) -> None:
        # A forked child inherits no leases: the parent's users/<pid> file is not its own.
        self.lock = threading.RLock()
        self.counts = {}


_holdings = _Holdings()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_holdings.reset_after_fork)


class ServerLease:
    """One use of the embedded server; ``release()`` when done (idempotent)."""

    def __init__(self, dirs: DataDir, record: ServerRecord):
        self.data_dir = dirs.root
        self.pid = record.pid
        self.port = record.port
        self.uri = record.uri
        self._dirs = dirs
        self._record = record
        self._owner = os.getpid()
        self._released = False

    def release(self) -> bool:
        """Give up this lease; True if that stopped the server (no live user left)."""
        if self._released or self._owner != os.getpid():
            return False
        self._released = True
        return _release_one(self._dirs)

    def __enter__(self) -> ServerLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "released" if self._released else "held"
        return f"<ServerLease {self.uri} dir={self.data_dir} {state}>"


def acquire(data_dir: str | os.PathLike[str] | None = None, *, pin: bool = False) -> ServerLease:
    """Connect to the server of ``data_dir`` (see resolve_data_dir), starting one if needed.

    ``pin`` marks this process as the directory's foreground server (``queryleaf serve``).
    """
    dirs = _prepare(data_dir)
    with _holdings.lock, _locked(dirs):
        record = _running_server(dirs)
        if record is None:
            dirs.record.unlink(missing_ok=True)  # stale, if any: its server is gone
            record = _start_server(dirs)
        _register_user(dirs, pin)
        _holdings.counts[dirs.root] = _holdings.counts.get(dirs.root, 0) + 1
        if not _holdings.atexit_registered:
            atexit.register(_release_all)
            _holdings.atexit_registered = True
    return ServerLease(dirs, record)


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
    with _locked(dirs):
        (dirs.users / str(os.getpid())).unlink(missing_ok=True)
        if _live_users(dirs):
            return False
        record = _load_record(dirs)
        if record is None:
            return False
        _stop_server(dirs, record)
        return True


def _release_all() -> None:
    """atexit: release whatever this process still holds."""
    with _holdings.lock:
        roots = list(_holdings.counts)
        _holdings.counts.clear()
    for root in roots:
        with contextlib.suppress(EngineError, OSError):
            _unregister(DataDir(root))


# ---------------------------------------------------------------- queryleaf serve


def serve(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    echo: Callable[[str], None] = lambda line: print(line, flush=True),
    stop: threading.Event | None = None,
) -> bool:
    """Run the directory's server in the foreground until SIGINT/SIGTERM (or ``stop`` is set).

    Starts or adopts the server, echoes one line with its URI, and on the way out stops it
    unless other processes still use it. Returns True if it stopped the server.
    """
    stop = stop or threading.Event()
    previous = _install_stop_handlers(stop)
    try:
        lease = acquire(data_dir, pin=True)
        try:
            echo(f"queryleaf serve: {lease.uri} (data dir {lease.data_dir}, server pid "
                 f"{lease.pid}); press Ctrl-C to stop")
            _wait_for_stop(lease, stop)
        finally:
            stopped = lease.release()
    finally:
        _restore_handlers(previous)
    return stopped


def _wait_for_stop(lease: ServerLease, stop: threading.Event) -> None:
    while not stop.wait(0.5):
        if not lease._record.is_alive():
            raise EngineError(
                f"the embedded server (pid {lease.pid}) exited unexpectedly; see "
                f"{lease._dirs.log}: {log_tail(lease._dirs.log)}"
            )


def _install_stop_handlers(stop: threading.Event) -> dict[int, object]:
    if threading.current_thread() is not threading.main_thread():
        return {}  # signals can only be caught on the main thread; rely on ``stop``
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, lambda *_: stop.set())
    return previous


def _restore_handlers(previous: dict[int, object]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)  # type: ignore[arg-type]
