"""secantusd-py as a process: find it, start it, wait for it to listen, tell if it runs, stop it.

The server is a separate (GPL) program; queryleaf only runs it and talks to it over the wire.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from queryleaf.embedded.credentials import HOST, plain_uri
from queryleaf.embedded.paths import DataDir, append_private
from queryleaf.errors import EngineError

SERVER_COMMAND = "secantusd-py"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
PORT_RELEASE_WAIT = 3.0
LOG_ROTATE_BYTES = 10 * 1024 * 1024
INSTALL_HINT = "run `pip install 'queryleaf[embedded]'` or pass --uri / set QUERYLEAF_URI to use another MongoDB"
# secantus's switch for its own test suite: storage without a journal. Never for user data.
NON_DURABLE_ENV = "SECANTUS_TEST_FAST_STORAGE"


class PortTaken(EngineError):
    """The server could not bind its port: another program listens there."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_available(port: int) -> bool:
    """Whether the server could bind ``port`` now. Like the server, with SO_REUSEADDR: a port
    left in TIME_WAIT by a killed server is available, one with a listener is not."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def wait_for_port(port: int, timeout: float = PORT_RELEASE_WAIT) -> bool:
    """Whether ``port`` can be bound, waiting up to ``timeout`` for it. The connections of a
    killed server keep its port for a moment after it dies (until their peers acknowledge its
    FIN), and SO_REUSEADDR does not cover them."""
    deadline = time.monotonic() + timeout
    while not port_available(port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def server_executable() -> str:
    """Path of secantusd-py: beside this Python first (a venv), then on PATH."""
    beside = Path(sys.executable).parent / SERVER_COMMAND
    if beside.exists():
        return str(beside)
    found = shutil.which(SERVER_COMMAND)
    if not found:
        raise EngineError(
            f"the embedded server `{SERVER_COMMAND}` is not installed: {INSTALL_HINT}"
        )
    return found


def server_args(port: int, storage_path: str, *extra: str) -> list[str]:
    return [
        server_executable(),
        "--host",
        HOST,
        "--port",
        str(port),
        "--storage-path",
        storage_path,
        "--log-level",
        "WARNING",
        *extra,
    ]


# ---------------------------------------------------------------- the log


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


def log_note(dirs: DataDir, text: str) -> None:
    """A line of queryleaf's own in the server log (what it started, and why)."""
    with contextlib.suppress(OSError), append_private(dirs.log) as log:
        log.write(f"--- queryleaf: {text} at {time.ctime()}\n".encode())


def rotate_log(dirs: DataDir) -> None:
    with contextlib.suppress(OSError):
        if dirs.log.stat().st_size > LOG_ROTATE_BYTES:
            os.replace(dirs.log, dirs.log.with_name("server.log.1"))


# ---------------------------------------------------------------- starting


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
            raise _exited_at_start(proc.returncode, log_path, log_offset)
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    stop_process(proc, port)
    where = f"; see {log_path}" if log_path else ""
    raise EngineError(
        f"the embedded server did not listen on port {port} within {timeout:.0f}s{where}"
    )


def _exited_at_start(code: int, log_path: str | Path | None, since: int) -> EngineError:
    message = f"the embedded server exited at start (code {code})"
    tail = log_tail(log_path, since)
    error = EngineError
    if "resource busy" in tail:
        message += (
            " because another secantusd-py uses the same --storage-path; stop that "
            "process and retry"
        )
    elif "Address already in use" in tail:
        error = PortTaken
        message += " because another program listens on its port"
    if log_path:
        message += f"; see {log_path}"
    return error(f"{message}: {tail}" if tail else message)


def launch(
    dirs: DataDir, port: int, extra: Sequence[str] = (), *, detach: bool = True
) -> subprocess.Popen:
    """Start secantusd-py on the directory's storage and wait until it listens.

    Its files are private (umask 077), its output goes to ``server.log``, and its working
    directory is the data dir, so a ``secantusd.toml`` there configures it. ``detach`` puts
    it in a session of its own: it outlives us and ignores our terminal's Ctrl-C.
    """
    args = server_args(port, str(dirs.storage), *extra)
    env = {k: v for k, v in os.environ.items() if k != NON_DURABLE_ENV}
    with append_private(dirs.log) as log:
        log.write(f"--- queryleaf: starting {' '.join(args)} at {time.ctime()}\n".encode())
        log.flush()
        offset = log.tell()
        proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=dirs.root,
            env=env,
            umask=0o077,
            start_new_session=detach,
        )
    try:
        wait_until_listening(port, proc, log_path=dirs.log, log_offset=offset)
    except BaseException:
        # Also on Ctrl-C: an unrecorded server would hold the storage and block every restart.
        stop_process(proc, port)
        raise
    return proc


def reap_in_background(proc: subprocess.Popen) -> None:
    # Whoever stops the server may be another process; waiting here keeps it from lingering
    # as our zombie. If we exit first, init adopts and reaps it.
    threading.Thread(target=proc.wait, name=f"reap-secantusd-{proc.pid}", daemon=True).start()


def stop_process(
    proc: subprocess.Popen, port: int | None = None, timeout: float = STOP_TIMEOUT
) -> None:
    """SIGTERM a server we started and still wait for; SIGKILL after ``timeout``."""
    if proc.poll() is None:
        listener = _listening_inode(port)
        proc.terminate()
        try:
            _wait_for_exit(proc.pid, lambda: proc.poll() is None, listener, port, timeout)
            proc.wait(0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def stop_pid(pid: int, is_alive: Callable[[], bool], port: int | None = None) -> None:
    """SIGTERM, wait, SIGKILL a server some process started (``is_alive`` tells it is ours)."""
    listener = _listening_inode(port)
    for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, 5.0)):
        if not is_alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        _wait_for_exit(pid, is_alive, listener, port, wait)


def _wait_for_exit(
    pid: int, is_alive: Callable[[], bool], listener: str | None, port: int | None, timeout: float
) -> None:
    """Wait until the server exits. On SIGTERM it closes its listening socket, then waits 2 s
    for its accept() thread, which only a new connection wakes; so connect, but only once the
    socket has left its file table (where /proc shows it): a connection arriving before the
    signal is handled can make the server miss the signal."""
    deadline = time.monotonic() + timeout
    while is_alive() and time.monotonic() < deadline:
        if listener is not None and port is not None and not _holds(pid, listener):
            with contextlib.suppress(OSError), socket.create_connection((HOST, port), 0.1):
                pass
        time.sleep(0.02)


def _listening_inode(port: int | None) -> str | None:
    """The inode of the socket listening on ``HOST:port``, from /proc/net/tcp; None where
    there is no /proc (macOS) or nothing listens."""
    if port is None:
        return None
    local = f"0100007F:{port:04X}"  # 127.0.0.1, as /proc/net/tcp writes it
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) > 9 and fields[1] == local and fields[3] == "0A":  # 0A: LISTEN
            return fields[9]
    return None


def _holds(pid: int, inode: str) -> bool:
    """Whether process ``pid`` still has socket ``inode`` among its open files."""
    target = f"socket:[{inode}]"
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                return True
    return False


# ---------------------------------------------------------------- is it running


def pid_alive(pid: int) -> bool:
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


def command_line(pid: int) -> str | None:
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
        out = subprocess.run(
            ["ps", "-o", f"{field}=", "-p", str(pid)], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


# ---------------------------------------------------------------- ephemeral (tests)


@dataclass
class EphemeralServer:
    """A throw-away server (in-memory storage unless a path is given, no auth), e.g. for tests."""

    process: subprocess.Popen
    port: int

    @property
    def uri(self) -> str:
        return plain_uri(self.port)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        stop_process(self.process, self.port, timeout)


def start_ephemeral_server(
    storage_path: str = ":memory:",
    port: int | None = None,
    test_commands: bool = False,
    extra_args: tuple[str, ...] = (),
    log_path: str | None = None,
) -> EphemeralServer:
    port = port or free_port()
    args = [*server_args(port, storage_path), *extra_args]
    if test_commands:
        args.append("--enable-test-commands")
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    offset = Path(log_path).stat().st_size if log_path else 0
    try:
        proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    finally:
        if not isinstance(log, int):  # a file, not DEVNULL
            log.close()  # the child has its own copy
    wait_until_listening(port, proc, log_path=log_path, log_offset=offset)
    return EphemeralServer(proc, port)
