"""Is the server usable: does it answer, accept our credential, and write?

A server whose storage failed (a full disk panics WiredTiger) still answers ``ping``, so a
ping alone would hand every new client a server on which each statement fails. The launcher
also writes one small document (``admin.queryleaf_health``: the admin database never shows in
a user's ``SHOW TABLES``).
"""

from __future__ import annotations

import contextlib
import enum
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymongo
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

from queryleaf.embedded.paths import DataDir
from queryleaf.errors import EngineError, ExecutionError, QueryLeafError, ServerUnreachable

PING_TIMEOUT = 2.0
ANSWER_WAIT = 3 * PING_TIMEOUT
WRITE_TIMEOUT = 10.0
HEALTH_DB, HEALTH_COLLECTION = "admin", "queryleaf_health"
AUTHENTICATION_FAILED = 18
# Server-side failures whose reason is only in the server's log (a full disk among them).
SERVER_FAULT_CODES = {1, 14031}  # InternalError, OutOfDiskSpace
LOW_DISK_BYTES = 256 * 1024 * 1024


class Reply(enum.Enum):
    OK = "ok"
    SILENT = "does not answer"
    REJECTED = "rejects the credential"
    FAILING = "fails"  # answers with errors: its storage failed (authenticating reads it)


@dataclass(frozen=True)
class Answer:
    reply: Reply
    reason: str = ""  # the server's error, when FAILING


def client(
    uri: str, timeout: float = PING_TIMEOUT, reply_timeout: float | None = None, **options: Any
) -> pymongo.MongoClient:
    ms = int(timeout * 1000)
    return pymongo.MongoClient(
        uri,
        serverSelectionTimeoutMS=ms,
        connectTimeoutMS=ms,
        socketTimeoutMS=int((reply_timeout or timeout) * 1000),
        **options,
    )


def ping(mongo: pymongo.MongoClient) -> Answer:
    """One authenticated ping (the driver authenticates the connection first)."""
    try:
        mongo.admin.command("ping")
        return Answer(Reply.OK)
    except OperationFailure as exc:
        if exc.code == AUTHENTICATION_FAILED:
            return Answer(Reply.REJECTED)
        return Answer(Reply.FAILING, server_error(exc))
    except PyMongoError:
        return Answer(Reply.SILENT)


def wait_for_answer(uri: str, alive: Callable[[], bool], wait: float = ANSWER_WAIT) -> Answer:
    """Ping until the server answers (well or not), rejects us, dies, or ``wait`` seconds
    pass."""
    deadline = time.monotonic() + wait
    with client(uri) as mongo:
        while True:
            answer = ping(mongo)
            if answer.reply is not Reply.SILENT or time.monotonic() > deadline or not alive():
                return answer


def write_failure(uri: str) -> str | None:
    """Why a small upsert fails on the server at ``uri``; None if it succeeds."""
    with client(uri, reply_timeout=WRITE_TIMEOUT) as mongo:
        try:
            mongo[HEALTH_DB][HEALTH_COLLECTION].update_one(
                {"_id": "probe"}, {"$set": {"at": time.time()}}, upsert=True
            )
        except ConnectionFailure as exc:
            return f"the connection failed during a write ({str(exc).splitlines()[0][:200]})"
        except PyMongoError as exc:
            return server_error(exc)
    return None


def server_error(exc: PyMongoError) -> str:
    details = getattr(exc, "details", None) or {}
    code, name = getattr(exc, "code", None), details.get("codeName", "")
    message = details.get("errmsg") or str(exc).splitlines()[0][:200]
    return f"server error {code} ({name}): {message}" if code else message


def unusable_error(dirs: DataDir, pid: int, reason: str, what: str = "write") -> EngineError:
    """The server answers, but fails what it is asked (``what``): name it, point at its log,
    and say how to recover."""
    return EngineError(
        f"the embedded server (pid {pid}) for {dirs.root} answers but cannot {what}: {reason}; "
        f"{_disk_note(dirs.storage)}see {dirs.log} for its reason (a full disk is a common "
        f"one). Free some space, then stop the server (`kill {pid}`): the next queryleaf "
        "process starts it again"
    )


def add_log_hint(exc: QueryLeafError, dirs: DataDir) -> None:
    """Point a server-side failure of a statement at the server's log (in place)."""
    if (
        not isinstance(exc, ExecutionError)
        or isinstance(exc, ServerUnreachable)
        or exc.code not in SERVER_FAULT_CODES
        or str(dirs.log) in exc.message
    ):
        return
    exc.message = f"{exc.message}; {_disk_note(dirs.storage)}see {dirs.log} for the reason"
    exc.args = (exc.message,)


def _disk_note(path: Path) -> str:
    """'only N MB free on its disk; ' when the file system of ``path`` is nearly full."""
    with contextlib.suppress(OSError):
        free = shutil.disk_usage(path if path.exists() else path.parent).free
        if free < LOW_DISK_BYTES:
            return f"only {free / 1024 / 1024:.1f} MB free on its disk; "
    return ""
