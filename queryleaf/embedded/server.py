"""The directory's one server: its record (``server.json``), and starting, checking, stopping it.

Every function here expects the directory lock to be held (``paths.locked``).
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import asdict, dataclass

from queryleaf.embedded import bootstrap, credentials, durability, health, users
from queryleaf.embedded.credentials import Credential, client_uri
from queryleaf.embedded.health import Reply
from queryleaf.embedded.paths import DataDir, make_everything_private, read_json, write_json
from queryleaf.embedded.process import (
    PortTaken,
    command_line,
    free_port,
    launch,
    log_note,
    log_tail,
    pid_alive,
    reap_in_background,
    rotate_log,
    stop_pid,
    stop_process,
    wait_for_port,
)
from queryleaf.errors import EngineError


@dataclass(frozen=True)
class ServerRecord:
    """What ``server.json`` says about the server of a data directory."""

    pid: int
    port: int
    started_at: float
    storage_path: str
    # False: started by a queryleaf from before the credential, without authentication.
    auth: bool = False
    sync_on_commit: bool = False

    def is_alive(self) -> bool:
        """The pid runs and is our server (a reused pid is not)."""
        if not pid_alive(self.pid):
            return False
        command = command_line(self.pid)
        return command is None or f"--storage-path {self.storage_path} " in f"{command} "


def load_record(dirs: DataDir) -> ServerRecord | None:
    data = read_json(dirs.record)
    if data is None:
        return None
    try:
        return ServerRecord(
            int(data["pid"]),
            int(data["port"]),
            float(data["started_at"]),
            str(data["storage_path"]),
            data.get("auth") is True,
            data.get("sync_on_commit") is True,
        )
    except (KeyError, TypeError, ValueError):
        return None


def usable_server(
    dirs: DataDir, *, restart_broken: bool, probe_write: bool, preferred_port: int | None = None
) -> tuple[ServerRecord, Credential]:
    """The recorded server if it is usable, else a new one: on the recorded port (or
    ``preferred_port``) if it is free, so clients holding the old URI reconnect by themselves.

    A server that runs but does not answer is an EngineError; one that answers with errors (its
    storage failed) too, or with ``restart_broken`` it is stopped and started again. With ``probe_write``, a
    server that answers but cannot write is an EngineError. A server that does not take the
    directory's credential (one started by a queryleaf from before it, or the file was lost)
    is restarted unless others use it.
    """
    record = load_record(dirs)
    if record is not None and record.is_alive():
        credential = credentials.load(dirs)
        answer = health.Answer(Reply.REJECTED)
        if record.auth and credential is not None:
            answer = health.wait_for_answer(client_uri(record.port, credential), record.is_alive)
        if answer.reply is Reply.OK and credential is not None:
            if probe_write and (
                reason := health.write_failure(client_uri(record.port, credential))
            ):
                raise health.unusable_error(dirs, record.pid, reason)
            return record, credential
        if record.is_alive():
            # Never killed for being silent, not even by a watchdog: a server busy for a few
            # seconds is not a dead one, and every process of the directory watches it.
            if answer.reply is Reply.SILENT:
                raise EngineError(
                    f"the embedded server (pid {record.pid}) for {dirs.root} runs but does not "
                    f"answer on port {record.port}; stop it (`kill {record.pid}`) and retry; "
                    f"its log is {dirs.log}"
                )
            if answer.reply is Reply.FAILING and not restart_broken:
                raise health.unusable_error(
                    dirs, record.pid, answer.reason, "serve requests (its storage fails)"
                )
        if answer.reply is Reply.REJECTED:
            _refuse_if_shared(dirs, record)
        stop_server(dirs, record)
    dirs.record.unlink(missing_ok=True)  # stale, if any: its server is gone
    return start_server(dirs, record.port if record else preferred_port)


def _refuse_if_shared(dirs: DataDir, record: ServerRecord) -> None:
    using = users.others(dirs)
    if not using:
        return
    why = (
        "was started by an older queryleaf, without authentication"
        if not record.auth
        else f"does not accept the credential in {dirs.credentials} (was it replaced or deleted?)"
    )
    raise EngineError(
        f"the embedded server (pid {record.pid}) for {dirs.root} {why}, and processes "
        f"{', '.join(map(str, using))} use it; stop them or the server (`kill {record.pid}`) "
        "and retry: it is then restarted with a credential"
    )


def start_server(
    dirs: DataDir, preferred_port: int | None = None
) -> tuple[ServerRecord, Credential]:
    """Start the directory's server with ``--auth`` and record it; provision the credential
    first if the directory has none, or the storage does not know it."""
    make_everything_private(dirs)
    rotate_log(dirs)
    sync = durability.sync_on_commit(dirs)
    flags = durability.server_flags(sync)
    port = preferred_port if preferred_port and wait_for_port(preferred_port) else free_port()
    credential = credentials.load(dirs)
    provisioned = None
    if credential is None:
        provisioned = bootstrap.provision(dirs, port, flags)
        credential = provisioned.credential
    proc, port = _launch(dirs, port, [*flags, "--auth"])
    try:
        answer = health.wait_for_answer(client_uri(port, credential), lambda: proc.poll() is None)
        if answer.reply is Reply.REJECTED and provisioned is None:
            # The storage does not know the credential (db/ was replaced or deleted).
            stop_process(proc, port)
            provisioned = bootstrap.provision(dirs, port, flags)
            credential = provisioned.credential
            proc, port = _launch(dirs, port, [*flags, "--auth"])
            answer = health.wait_for_answer(
                client_uri(port, credential), lambda: proc.poll() is None
            )
        if answer.reply is not Reply.OK:
            state = (
                f"{answer.reply.value} {answer.reason}".strip()
                if proc.poll() is None
                else f"exited (code {proc.returncode})"
            )
            raise EngineError(
                f"the embedded server started on port {port} but {state}; see "
                f"{dirs.log}: {log_tail(dirs.log)}"
            )
        if provisioned is not None:
            _drop_intruders(dirs, client_uri(port, credential), provisioned.allowed_users)
        record = ServerRecord(
            proc.pid, port, time.time(), str(dirs.storage), auth=True, sync_on_commit=sync
        )
        write_json(dirs.record, asdict(record))
    except BaseException:
        stop_process(proc, port)  # an unrecorded server would hold the storage and block restarts
        raise
    reap_in_background(proc)
    return record, credential


def _launch(dirs: DataDir, port: int, flags: list[str]) -> tuple[subprocess.Popen, int]:
    for attempt in range(3):
        try:
            return launch(dirs, port, flags), port
        except PortTaken:
            # Another program took the port between our check and the server's bind.
            if attempt == 2:
                raise
            port = free_port()
    raise AssertionError("unreachable")


def _drop_intruders(dirs: DataDir, uri: str, allowed: frozenset[str]) -> None:
    with health.client(uri) as mongo:
        dropped = bootstrap.drop_intruders(mongo, allowed)
    if dropped:
        log_note(
            dirs,
            f"dropped users created by someone else while the server was being "
            f"provisioned: {', '.join(dropped)}",
        )


def stop_server(dirs: DataDir, record: ServerRecord) -> None:
    """SIGTERM, wait, SIGKILL; then forget the record."""
    if record.is_alive():
        # Its identity is checked once: an exiting process's command line reads empty.
        stop_pid(record.pid, lambda: pid_alive(record.pid), record.port)
    dirs.record.unlink(missing_ok=True)
