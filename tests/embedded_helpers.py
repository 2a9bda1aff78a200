"""Helpers and fixtures for the tests of the embedded server (real secantusd-py processes).

A test module uses the fixtures by importing them: ``from embedded_helpers import
acquire_fixture`` provides ``acquire``.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
from pathlib import Path

import pymongo
import pytest

from queryleaf import engine

# A user of the server in another process: acquire, print the URI and server pid, wait for
# stdin to close, then release (or, with "exit", leave it to the atexit handler).
USER_SCRIPT = """
import sys
from queryleaf import engine
lease = engine.acquire(sys.argv[1])
print(lease.uri, lease.pid, flush=True)
sys.stdin.read()
if sys.argv[2] == "release":
    lease.release()
"""


def running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # the process may vanish between the two checks
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def ping(uri: str) -> bool:
    client: pymongo.MongoClient = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)
    try:
        return client.admin.command("ping")["ok"] == 1
    finally:
        client.close()


def read_line(proc: subprocess.Popen, timeout: float = 30.0) -> str:
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise AssertionError(f"no output from pid {proc.pid} within {timeout}s")
    return proc.stdout.readline()


@pytest.fixture(name="data_dir")
def data_dir_fixture(tmp_path: Path):
    path = tmp_path / "data"
    yield path
    # Whatever the test did, leave no server behind.
    with contextlib.suppress(OSError, ValueError, KeyError, ProcessLookupError):
        os.kill(json.loads((path / "server.json").read_text())["pid"], signal.SIGKILL)


@pytest.fixture(name="acquire")
def acquire_fixture(data_dir: Path):
    leases: list[engine.ServerLease] = []

    def _acquire(where: Path = data_dir) -> engine.ServerLease:
        lease = engine.acquire(where)
        leases.append(lease)
        return lease

    yield _acquire
    for lease in leases:
        lease.release()


@pytest.fixture(name="spawn")
def spawn_fixture(tmp_path: Path):
    procs: list[subprocess.Popen] = []

    def _spawn(*args: str) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, *args],
            stdin=subprocess.PIPE,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        return proc

    yield _spawn
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def assert_stopped(data_dir: Path, pid: int) -> None:
    assert not running(pid), f"server pid {pid} still runs"
    assert not (data_dir / "server.json").exists(), "server.json is still there"


def password_of(uri: str) -> str:
    return uri.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
