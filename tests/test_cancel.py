"""Ctrl-C kills the running statement on the server; time limits; a refused connection fails
fast (issue 10, item 4; docs/cli.md "Cancelling and time limits").

On the embedded server ``killOp`` closes the connection of the operation (its ``currentOp``
lists connections, not their commands): what is observable is that the kill is sent for the
statement's connection, that the statement is not sent again, and that the next one answers.
"""

from __future__ import annotations

import _thread
import errno
import subprocess
import sys
import threading
import time
from typing import Any

import pymongo
import pytest
from pymongo import MongoClient, monitoring

import queryleaf
import queryleaf.api
from queryleaf.cancel import COMMENT_PREFIX, StatementCancelled
from queryleaf.errors import ErrorCode, ExecutionError
from tests.test_cli import Terminal, _env

# A join the embedded server takes seconds to compute (1000 x 1000 / 7 pairs).
SLOW = "SELECT COUNT(*) AS n FROM big a JOIN big b ON a.g = b.g"
ROWS = 1000


class Recorder(monitoring.CommandListener):
    """Every command a client starts, with the time and the server connection it went to."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, str, dict[str, Any], Any]] = []

    def commands(self, name: str) -> list[tuple[float, str, dict[str, Any], Any]]:
        return [c for c in self.sent if c[1] == name]

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.sent.append(
            (time.monotonic(), event.command_name, dict(event.command), event.server_connection_id)
        )

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture()
def recorded(server, dbname, monkeypatch):
    """A QueryLeaf whose client records its commands, on a database with a ``big`` table."""
    recorder = Recorder()
    real = pymongo.MongoClient

    def client(*args: Any, event_listeners: list | None = None, **kwargs: Any):
        return real(*args, event_listeners=[*(event_listeners or []), recorder], **kwargs)

    monkeypatch.setattr(queryleaf.api.pymongo, "MongoClient", client)
    ql = queryleaf.connect(server.uri, database=dbname)
    monkeypatch.setattr(queryleaf.api.pymongo, "MongoClient", real)
    ql.db.big.insert_many([{"_id": i, "g": i % 7} for i in range(ROWS)])
    yield ql, recorder
    ql.client.drop_database(dbname)
    ql.close()


def _statement_commands(recorder: Recorder) -> list[tuple[float, str, dict[str, Any], Any]]:
    return [
        c
        for c in recorder.sent
        if str(c[2].get("comment", "")).startswith(COMMENT_PREFIX) and c[1] == "aggregate"
    ]


def _no_aggregate_running(server) -> bool:
    ops = MongoClient(server.uri).admin.command("currentOp")["inprog"]
    return not any(op.get("op") == "aggregate" and op.get("active") for op in ops)


def test_ctrl_c_kills_the_statement_on_the_server(recorded, server):
    ql, recorder = recorded
    pressed: list[float] = []
    threading.Timer(
        0.5, lambda: pressed.append(time.monotonic()) or _thread.interrupt_main()
    ).start()
    with pytest.raises(StatementCancelled) as cancelled:
        ql.execute(SLOW)
    assert cancelled.value.killed == 1
    (sent,) = _statement_commands(recorder)
    (kill,) = recorder.commands("killOp")
    # The kill names the statement's operation (the embedded server's opid is the connection
    # it runs on), and it is sent within a second of the Ctrl-C.
    assert kill[2]["op"] == sent[3]
    assert kill[0] - pressed[0] < 1.0
    # The next statement answers at once, while the killed one is not sent again.
    started = time.monotonic()
    assert ql.execute("SELECT COUNT(*) AS n FROM big").rows == [{"n": ROWS}]
    assert time.monotonic() - started < 2.0
    time.sleep(1.0)  # the driver would have retried the read by now
    assert len(_statement_commands(recorder)) == 2  # the killed statement and the COUNT
    assert _statement_commands(recorder)[0] is sent


def test_ctrl_c_in_a_transaction_aborts_it(recorded):
    ql, _ = recorded
    ql.execute("INSERT INTO t (_id) VALUES (0)")
    ql.execute("BEGIN")
    ql.execute("INSERT INTO t (_id) VALUES (1)")
    threading.Timer(0.5, _thread.interrupt_main).start()
    with pytest.raises(KeyboardInterrupt):
        ql.execute(SLOW)
    assert ql.transaction_status == "aborted"
    ql.execute("ROLLBACK")
    assert ql.execute("SELECT COUNT(*) AS n FROM t").rows == [{"n": 1}]


def test_every_command_of_a_statement_carries_the_time_limit_and_one_tag(recorded):
    ql, recorder = recorded
    ql.timeout = 30
    ql.execute("UPDATE big SET h = 1 WHERE g = 3")
    ql.execute("SELECT _id FROM big WHERE g = 2 LIMIT 1")
    ql.execute("INSERT INTO other (_id) VALUES (1)")
    ql.execute("DELETE FROM other WHERE _id = 1")
    for name in ("update", "find", "insert", "delete"):
        (command,) = [c[2] for c in recorder.commands(name) if "comment" in c[2]]
        assert 0 < command["maxTimeMS"] <= 30_000, name
        assert command["comment"].startswith(COMMENT_PREFIX)
    comments = [c[2]["comment"] for c in recorder.sent if "comment" in c[2]]
    assert len(set(comments)) == len(comments) == 4  # one tag per statement
    ql.timeout = None
    ql.execute("SELECT _id FROM big WHERE g = 2 LIMIT 1")
    assert "maxTimeMS" not in recorder.commands("find")[-1][2]


def test_a_statement_over_its_time_limit_is_a_clear_error(recorded, server):
    ql, _ = recorded
    ql.timeout = 0.3
    started = time.monotonic()
    with pytest.raises(ExecutionError) as caught:
        ql.execute(SLOW)
    assert caught.value.error_code == ErrorCode.STATEMENT_TIMEOUT
    assert "exceeded its time limit of 0.3 s" in str(caught.value)
    assert time.monotonic() - started < 5.0
    ql.timeout = None  # the connection still answers (a limit of 0.3 s is tight for any scan)
    assert ql.execute("SELECT COUNT(*) AS n FROM big").rows == [{"n": ROWS}]


def test_the_timeout_option_of_connect(server, dbname):
    with queryleaf.connect(server.uri, database=dbname, timeout=2.5) as ql:
        assert ql.timeout == 2.5
        assert ql.execute("SELECT 1 AS x").rows == [{"x": 1}]


# ---------------------------------------------------------------- the shell and the CLI


def test_ctrl_c_in_the_shell_kills_the_statement(server, dbname, tmp_path):
    MongoClient(server.uri)[dbname]["big"].insert_many(
        [{"_id": i, "g": i % 7} for i in range(ROWS)]
    )
    term = Terminal(server, dbname, tmp_path)
    try:
        term.read_until(f"{dbname}>".encode())
        term.write(SLOW.encode() + b";\r")
        time.sleep(0.8)
        assert not _no_aggregate_running(server)  # it runs
        sent = time.monotonic()
        term.write(b"\x03")  # Ctrl-C, typed: the pty is the shell's controlling terminal
        term.read_until(b"cancelled: the statement was killed on the server")
        term.read_until(f"{dbname}>".encode())
        assert time.monotonic() - sent < 2.0
        term.write(b"SELECT COUNT(*) AS n FROM big;\r")
        term.read_until(b"1 row", timeout=10)
        term.write(b"\\timeout 0.3\r")
        term.read_until(b"timeout: 0.3 s")
        term.write(SLOW.encode() + b";\r")
        term.read_until(b"QL3004: the statement exceeded its time limit of 0.3 s")
        term.write(b"\\timeout off\r")
        term.read_until(b"timeout: off")
        term.write(b"\\q\r")
        assert term.proc.wait(timeout=20) == 0
    finally:
        term.close()
        MongoClient(server.uri).drop_database(dbname)
    deadline = time.monotonic() + 10  # the killed statement was not sent again
    while not _no_aggregate_running(server) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _no_aggregate_running(server)


def test_timeout_option_of_the_cli(server, dbname, tmp_path):
    MongoClient(server.uri)[dbname]["big"].insert_many(
        [{"_id": i, "g": i % 7} for i in range(ROWS)]
    )
    proc = subprocess.run(
        [sys.executable, "-m", "queryleaf", "--uri", server.uri, "--db", dbname]
        + ["--timeout", "0.3", "-e", SLOW],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(tmp_path),
    )
    MongoClient(server.uri).drop_database(dbname)
    assert proc.returncode == 1, proc.stderr
    assert "QL3004: the statement exceeded its time limit of 0.3 s" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_refused_connection_fails_fast(tmp_path):
    from queryleaf.engine import free_port

    port = free_port()  # nothing listens on it
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "queryleaf", "--uri", f"mongodb://127.0.0.1:{port}"]
        + ["-e", "SELECT 1 AS x"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(tmp_path),
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 3
    assert proc.stderr == (
        f"error: QL3003: cannot reach MongoDB at mongodb://127.0.0.1:{port}: "
        f"127.0.0.1:{port}: [Errno {errno.ECONNREFUSED}] Connection refused\n"
    )
    assert elapsed < 5.0  # the whole command, interpreter start included (~1.5 s measured)
