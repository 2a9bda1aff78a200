"""Surviving the embedded server's death: revive() and the watchdog (real processes, SIGKILL)."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pymongo
import pytest
from embedded_helpers import (  # noqa: F401
    USER_SCRIPT,
    acquire_fixture,
    data_dir_fixture,
    read_line,
    running,
    spawn_fixture,
)
from pymongo.errors import PyMongoError

from queryleaf.embedded.process import port_available, wait_for_port

pytestmark = pytest.mark.slow  # real server processes


def record_quiet_port(data_dir: Path) -> int:
    """Record a dead server on a free port outside the range the system hands out for
    outgoing connections, so that acquire() starts there and, once the server is killed, no
    connection on this busy machine takes the port before revive() does."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    port = next(p for p in random.sample(range(20000, low), 200) if port_available(p))
    gone = subprocess.Popen(["true"])
    gone.wait()
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "server.json").write_text(
        json.dumps(
            {
                "pid": gone.pid,
                "port": port,
                "started_at": 0,
                "storage_path": str(data_dir / "db"),
                "auth": True,
            }
        )
    )
    return port


def kill_server(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while running(pid):
        assert time.monotonic() < deadline, f"server pid {pid} survived SIGKILL"
        time.sleep(0.05)


def find_when_back(client: pymongo.MongoClient, timeout: float = 30.0) -> list[dict]:
    """The documents of work.items, as soon as the client can read them again."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return list(client.work.items.find().sort("_id"))
        except PyMongoError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_revive_restarts_a_killed_server_on_its_port(data_dir, acquire):
    record_quiet_port(data_dir)
    lease = acquire()
    uri, killed = lease.uri, lease.pid
    with pymongo.MongoClient(uri, serverSelectionTimeoutMS=10_000) as client:
        client.work.items.insert_one({"_id": 1})
        kill_server(killed)
        assert lease.revive() is False  # same URI
        assert lease.uri == uri and lease.pid != killed and running(lease.pid)
        # The client from before the kill reconnects by itself and sees what was written.
        assert find_when_back(client) == [{"_id": 1}]
        client.work.items.insert_one({"_id": 2})
    assert lease.revive() is False  # running: nothing to do
    assert lease.release() is True


def test_revive_moves_to_another_port_only_when_its_own_is_taken(data_dir, acquire):
    record_quiet_port(data_dir)
    lease = acquire()
    old_uri, old_port = lease.uri, lease.port
    with pymongo.MongoClient(old_uri) as client:
        client.work.items.insert_one({"_id": 1})
    kill_server(lease.pid)
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        assert wait_for_port(old_port)
        squatter.bind(("127.0.0.1", old_port))
        squatter.listen()
        assert lease.revive() is True
    assert lease.port != old_port and lease.uri != old_uri
    with pymongo.MongoClient(lease.uri) as client:
        assert find_when_back(client) == [{"_id": 1}]


def test_revive_adopts_the_server_another_process_restarted(data_dir, acquire, spawn):
    record_quiet_port(data_dir)
    lease = acquire()
    kill_server(lease.pid)
    other = spawn("-c", USER_SCRIPT, str(lease.data_dir), "release")
    other_uri, other_pid = read_line(other).split()
    assert other_uri == lease.uri  # it started the server again on the recorded port

    assert lease.revive() is False
    assert lease.pid == int(other_pid)
    _, err = other.communicate("", timeout=30)
    assert other.returncode == 0, err
    assert running(lease.pid)  # we still use it
    assert lease.release() is True
    assert not running(int(other_pid))


def watchdogs() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("queryleaf-watchdog")]


def test_the_watchdog_brings_the_server_back_for_clients_holding_the_uri(data_dir, acquire):
    record_quiet_port(data_dir)
    lease = acquire()
    changes: list[str] = []
    lease.start_watchdog(interval=0.2, on_change=changes.append)
    client = pymongo.MongoClient(lease.uri, serverSelectionTimeoutMS=2_000)
    try:
        client.work.items.insert_one({"_id": 1})
        killed = lease.pid
        kill_server(killed)
        assert find_when_back(client) == [{"_id": 1}]
        client.work.items.insert_one({"_id": 2})
        deadline = time.monotonic() + 10  # the client may be back before revive() returns
        while lease.pid == killed and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lease.pid != killed and changes == []
    finally:
        client.close()
    assert len(watchdogs()) == 1
    assert lease.release() is True
    assert watchdogs() == []
    assert not running(lease.pid)


@pytest.mark.parametrize("where", ["release", "exit"])
def test_a_watchdog_does_not_outlive_its_lease(data_dir, spawn, where):
    # The watchdog must not start the server again once the process has let it go.
    script = (
        "import sys, time\n"
        "from queryleaf import engine\n"
        "lease = engine.acquire(sys.argv[1])\n"
        "lease.start_watchdog(0.05)\n"
        "print(lease.pid, flush=True)\n"
        "sys.stdin.read()\n"
        "if sys.argv[2] == 'release':\n"
        "    lease.release()\n"
        "    time.sleep(1)\n"  # many watchdog intervals
    )
    proc = spawn("-c", script, str(data_dir), where)
    pid = int(read_line(proc))
    _, err = proc.communicate("", timeout=30)
    assert proc.returncode == 0, err
    assert not running(pid)
    assert not (data_dir / "server.json").exists()
