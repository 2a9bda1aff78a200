"""Seeing the event runtime from the terminal: ``\\watch`` and ``queryleaf top`` on a real
pseudo-terminal, and ``top``'s one frame off a terminal."""

from __future__ import annotations

import fcntl
import re
import struct
import subprocess
import sys
import termios
import threading

import pytest
from pymongo import MongoClient
from test_cli import Terminal, _env, _ok, _seed

import queryleaf
from queryleaf.cli.top import Snapshot, backlog, rate
from queryleaf.cli.watch import watchable

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>]")


def sized(term: Terminal, rows: int = 30, columns: int = 160) -> Terminal:
    fcntl.ioctl(term.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    return term


def plain(output: bytes) -> str:
    return ANSI.sub(b"", output).decode(errors="replace")


def test_watch_redraws_the_last_query_until_ctrl_c(server, dbname, tmp_path):
    _seed(server, dbname)
    term = sized(Terminal(server, dbname, tmp_path))
    try:
        term.read_until(f"{dbname}>".encode())
        term.write(b"\\watch\r")  # nothing ran yet
        term.read_until(b"no query has run yet")
        term.write(b"SELECT name, age FROM people;\r")
        term.read_until(b"1 row")
        term.write(b"\\watch 0.5\r")
        first = term.read_until(b"1 row")
        between = term.read_until(b"Every 0.5s")  # the second refresh
        second = term.read_until(b"1 row")
        term.write(b"\x03")  # Ctrl-C: back to the prompt, which still answers
        term.read_until(f"{dbname}>".encode())
        term.write(b"SELECT 2 AS two;\r")
        term.read_until(b"1 row")
        term.write(b"INSERT INTO people (name) VALUES ('x');\r")
        term.read_until(b"INSERT 1")
        term.write(b"\\watch\r")  # a write is not repeated
        term.read_until(b"\\watch repeats queries only, not INSERT")
        term.write(b"\\q\r")
        assert term.proc.wait(timeout=20) == 0
    finally:
        term.close()
        MongoClient(server.uri).drop_database(dbname)
    assert "Every 0.5s" in plain(first) and "SELECT name, age FROM people;" in plain(first)
    assert "cy" in plain(first) and "cy" in plain(second)
    assert b"\x1b[H\x1b[2J" in between  # redrawn in place: the screen cleared first


def test_only_reads_are_watched():
    assert watchable("SELECT 1; SHOW EVENT_SUBSCRIPTIONS; EXPLAIN SELECT 2") is None
    assert "not DELETE" in watchable("SELECT 1; DELETE FROM t")
    assert "not PAUSE" in watchable("PAUSE EVENT_SUBSCRIPTION s")
    assert watchable("SHOW TABLES; DESCRIBE t; SHOW INDEXES FROM t") is None
    assert "live query" in watchable("SELECT * FROM CHANGE_STREAM('o') EMIT CHANGES")


def _two_subscriptions(server, dbname):
    ql = queryleaf.connect(server.uri, database=dbname)
    ql.execute("CREATE EVENT_SUBSCRIPTION orders_feed AS (watch_collections = 'orders')")
    ql.execute("CREATE EVENT_SUBSCRIPTION users_feed AS (watch_collections = 'users')")
    return ql


def test_top_shows_the_subscriptions_and_their_worker_and_q_quits(server, dbname, tmp_path):
    ql = _two_subscriptions(server, dbname)
    stop = threading.Event()
    worker = threading.Thread(
        target=lambda: ql.run_subscriptions(
            subscriptions=["orders_feed"], stop_event=stop, poll_interval=0.2
        ),
        daemon=True,
    )
    worker.start()
    term = sized(Terminal(server, dbname, tmp_path, "top", "--interval", "0.5"))
    try:
        term.read_until(b"orders_feed", timeout=30)
        frames = plain(term.read_until(b" to quit", timeout=10))  # the next refresh
        frames += plain(term.read_until(b" to quit", timeout=10))
        term.write(b"q")
        assert term.proc.wait(timeout=20) == 0
    finally:
        term.close()
        stop.set()
        worker.join(20)
        ql.client.drop_database(dbname)
        ql.close()
    assert "users_feed" in frames and "SUBSCRIPTIONS" in frames
    assert re.search(r"orders_feed\s+active\s+running\s+0\.0\s+0\.0\s", frames)
    assert re.search(r"users_feed\s+active\s+none\s", frames)  # lag grows, no owner
    assert "WORKERS (holding leases)" in frames and ":" in frames.split("WORKERS")[1]


def test_top_off_a_terminal_prints_one_frame(server, dbname, tmp_path):
    ql = _two_subscriptions(server, dbname)
    command = [sys.executable, "-m", "queryleaf", "--uri", server.uri, "--db", dbname, "top"]
    try:
        proc = _ok(
            subprocess.run(command, capture_output=True, text=True, env=_env(tmp_path), timeout=60)
        )
    finally:
        ql.client.drop_database(dbname)
        ql.close()
    assert "orders_feed" in proc.stdout and "users_feed" in proc.stdout
    assert "(no worker holds a lease)" in proc.stdout


def test_repl_top_returns_to_the_prompt_on_ctrl_c(server, dbname, tmp_path):
    ql = _two_subscriptions(server, dbname)
    term = sized(Terminal(server, dbname, tmp_path))
    try:
        term.read_until(f"{dbname}>".encode())
        term.write(b"\\top\r")
        term.read_until(b"users_feed")
        term.write(b"\x03")
        term.read_until(f"{dbname}>".encode())
        term.write(b"\\q\r")
        assert term.proc.wait(timeout=20) == 0
    finally:
        term.close()
        ql.client.drop_database(dbname)
        ql.close()


def test_events_per_second_and_backlog_estimate():
    before = Snapshot(10.0, [{"name": "s", "events_received": 100}])
    now = Snapshot(12.0, [{"name": "s", "events_received": 150}])
    assert rate("events_received", now.subscriptions[0], before, now) == 25
    assert rate("events_received", now.subscriptions[0], None, now) is None
    row = {"resume_token_lag_seconds": 4.0, "events_received": 600, "age_seconds": 60}
    assert backlog(row, 25.0) == 100  # lag × the recent rate
    assert backlog(row, 0.0) == 40  # lag × the average since creation
    assert backlog({**row, "events_received": 0}, None) is None  # no rate known
    assert backlog({**row, "resume_token_lag_seconds": 0}, None) == 0
    assert pytest.approx(backlog(row, 0.5)) == 2
