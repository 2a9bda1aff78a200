"""Running one statement so that Ctrl-C stops it on the server, within its time limit.

The statement runs in a worker thread while the calling (main) thread waits, so a Ctrl-C
(KeyboardInterrupt, which Python delivers to the main thread only) finds the main thread free to
stop it on the server, over another connection of the pool:

1. the statement's own session is ended first, so the driver cannot send its command again (a
   killed command fails, and pymongo retries a read or a retryable write that failed with a
   network error once: on a server that closes the connection to kill, as the embedded one does,
   that would run the statement a second time);
2. ``currentOp`` lists the operations, and ``killOp`` kills those of the statement: every command
   it sends carries ``comment: "queryleaf <statement id>"``; a server whose ``currentOp`` does
   not show the commands (the embedded server lists its connections, not their commands) is
   matched by the server connection the statement's command is waiting on;
3. ``StatementCancelled`` (a KeyboardInterrupt) is raised at once: the worker's outcome is
   dropped. The shell is usable again without waiting for the server.

A time limit is pymongo's ``timeout()`` around the statement: every command it sends carries
``maxTimeMS`` (the time left), and MongoDB stops it when the time is up (QL3004).
"""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import pymongo
import pymongo.errors
from pymongo import monitoring
from pymongo.client_session import ClientSession

from queryleaf.errors import ErrorCode, ExecutionError, QueryLeafError

T = TypeVar("T")

COMMENT_PREFIX = "queryleaf "
WAIT_STEP_S = 0.2  # how often the waiting thread wakes (a Ctrl-C interrupts the wait anyway)


def new_comment() -> str:
    """The tag of one statement's commands: unique, and recognisably queryleaf's."""
    return f"{COMMENT_PREFIX}{uuid.uuid4().hex}"


class StatementCancelled(KeyboardInterrupt):
    """Ctrl-C stopped a running statement. ``killed`` is how many operations the server was told
    to kill (0: the server no longer listed the statement, it had finished or never started)."""

    def __init__(self, killed: int):
        super().__init__(f"statement cancelled ({killed} operation(s) killed on the server)")
        self.killed = killed


class InFlight(monitoring.CommandListener):
    """Which server connection each statement thread waits on. pymongo publishes a command's
    events in the thread that sends it, so the thread identifies the statement."""

    def __init__(self) -> None:
        self._connections: dict[int, Any] = {}
        self._watched: set[int] = set()

    def watch(self) -> None:
        self._watched.add(threading.get_ident())

    def unwatch(self) -> None:
        ident = threading.get_ident()
        self._watched.discard(ident)
        self._connections.pop(ident, None)

    def connection_of(self, thread: threading.Thread) -> Any:
        return self._connections.get(thread.ident or 0)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        ident = threading.get_ident()
        if ident in self._watched:
            self._connections[ident] = event.server_connection_id

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._connections.pop(threading.get_ident(), None)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._connections.pop(threading.get_ident(), None)


def time_limit_error(exc: QueryLeafError, timeout: float | None) -> QueryLeafError:
    """The error of a statement that ran out of time (maxTimeMS expired on the server, or the
    driver gave up waiting) as QL3004; any other error unchanged."""
    cause = exc.__cause__
    if (
        timeout is None
        or not isinstance(cause, pymongo.errors.PyMongoError)
        or isinstance(cause, pymongo.errors.ServerSelectionTimeoutError)
        or not cause.timeout
    ):
        return exc
    code = cause.code if isinstance(cause, pymongo.errors.OperationFailure) else None
    error = ExecutionError(
        f"the statement exceeded its time limit of {timeout:g} s and was stopped (maxTimeMS)",
        code,
        "MaxTimeMSExpired" if code is not None else None,
        error_code=ErrorCode.STATEMENT_TIMEOUT,
    )
    error.__cause__ = cause
    return error


class _Worker:
    """One thread that runs statements handed to it, one at a time: starting a thread per
    statement costs more than a point lookup's whole budget. A worker whose statement was
    cancelled is retired once that statement returns (the next statement gets a new one)."""

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._loop, name="queryleaf-statement", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while (job := self.jobs.get()) is not None:
            job()

    def retire(self) -> None:
        self.jobs.put(None)


class StatementRunner:
    """Runs statements of one client: interruptible by Ctrl-C, and within a time limit."""

    def __init__(self, client: pymongo.MongoClient, in_flight: InFlight):
        self.client = client
        self.in_flight = in_flight
        self._worker: _Worker | None = None
        # The statement running in a thread other than the main one: what cancel_running()
        # stops (the PostgreSQL wire server's CancelRequest comes from another thread).
        self._running: tuple[threading.Thread, str, ClientSession | None] | None = None

    def run(
        self,
        work: Callable[[str], T],
        session: ClientSession | None,
        timeout: float | None,
    ) -> T:
        """``work(comment)`` sends the statement's commands, tagged with ``comment``, in
        ``session`` (ended on Ctrl-C: pass the statement's own, or a transaction's)."""
        comment = new_comment()
        if threading.current_thread() is not threading.main_thread():
            self.in_flight.watch()
            self._running = (threading.current_thread(), comment, session)
            try:
                with pymongo.timeout(timeout):  # no Ctrl-C outside the main thread
                    return work(comment)
            finally:
                self._running = None
                self.in_flight.unwatch()
        outcome: dict[str, Any] = {}
        done = threading.Event()

        def job() -> None:
            self.in_flight.watch()
            try:
                with pymongo.timeout(timeout):
                    outcome["value"] = work(comment)
            except BaseException as exc:  # handed to the waiting thread
                outcome["error"] = exc
            finally:
                self.in_flight.unwatch()
                done.set()

        worker = self._worker = self._worker or _Worker()
        worker.jobs.put(job)
        try:
            while not done.wait(WAIT_STEP_S):
                pass
        except KeyboardInterrupt:
            self._worker = None  # busy with the killed statement until the server answers
            worker.retire()
            killed = self.cancel(worker.thread, comment, session)
            raise StatementCancelled(killed) from None
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    def cancel_running(self) -> int:
        """Stop the statement a thread other than the main one is running, from any thread;
        returns how many operations were killed (0: none was running)."""
        running = self._running
        return self.cancel(*running) if running is not None else 0

    def cancel(self, worker: threading.Thread, comment: str, session: ClientSession | None) -> int:
        """Stop the statement on the server; returns how many operations were killed."""
        connection = self.in_flight.connection_of(worker)
        if session is not None and not session.in_transaction:
            session.end_session()  # before the kill: no command of it can be sent again
        try:
            reply = self.client.admin.command(
                {"currentOp": 1, "$ownOps": True, "command.comment": comment}
            )
            opids = [op["opid"] for op in reply.get("inprog", []) if _ours(op, comment, connection)]
            for opid in opids:
                self.client.admin.command("killOp", op=opid)
        except pymongo.errors.PyMongoError:
            return 0  # not allowed, or the server is gone: nothing more can be done from here
        return len(opids)


def _ours(op: dict[str, Any], comment: str, connection: Any) -> bool:
    """Whether ``currentOp``'s entry ``op`` is the statement's: its command carries the
    statement's comment, or (a server that does not show the command's fields) it runs on the
    connection the statement is waiting on."""
    if op.get("type", "op") != "op" or "opid" not in op:
        return False
    command = op.get("command") or {}
    if command.get("comment") == comment:
        return True
    return (
        connection is not None
        and "comment" not in command
        and op.get("connectionId") == connection
        and len(command) <= 1
    )
