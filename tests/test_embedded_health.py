"""A server that cannot write is reported, by statements and by the launcher (a real full disk)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pymongo
import pytest

import queryleaf
from queryleaf import engine
from queryleaf.embedded.health import HEALTH_COLLECTION, add_log_hint
from queryleaf.embedded.paths import DataDir
from queryleaf.errors import EngineError, ExecutionError, ServerUnreachable

pytestmark = pytest.mark.slow  # real server processes


@pytest.fixture()
def small_disk(tmp_path: Path):
    """A 32 MB file system of its own (tmpfs), to fill up."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(
            "filling a disk needs a small tmpfs, and mounting one is not permitted here "
            f"({mounted.stderr.strip() or 'mount failed'})"
        )
    yield mountpoint
    with contextlib.suppress(OSError, ValueError, KeyError):
        record = json.loads((mountpoint / "data" / "server.json").read_text())
        os.kill(record["pid"], signal.SIGKILL)
    subprocess.run(["umount", "--lazy", str(mountpoint)], check=True)


def fill(directory: Path) -> None:
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        for chunk in (b"\0" * 1024 * 1024, b"\0" * 4096):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, chunk)
    finally:
        os.close(fd)


def test_a_full_disk_is_reported_and_the_server_revived_once_there_is_space(
    small_disk, monkeypatch
):
    monkeypatch.delenv("QUERYLEAF_URI", raising=False)
    # A connection's watchdog would restart the broken server in the background (and fail
    # while the disk is full); this test looks at what a statement and acquire() report.
    monkeypatch.setattr(engine.ServerLease, "start_watchdog", lambda self, *a, **k: None)
    data_dir = small_disk / "data"
    log = data_dir / "server.log"
    lease = engine.acquire(data_dir)
    try:
        with queryleaf.connect(data_dir=str(data_dir)) as ql:
            ql.execute("INSERT INTO notes (body) VALUES ('before')")
            fill(small_disk)
            with pytest.raises(ExecutionError) as info:
                for _ in range(1000):  # until the server's journal needs space it cannot get
                    ql.execute("INSERT INTO notes (body) VALUES (?)", ["x" * 100_000])
            message = info.value.message
            assert message.startswith("server error 1 (InternalError)")
            assert re.search(r"; only \d+\.\d MB free on its disk; ", message)
            assert message.endswith(f"see {log} for the reason")

            # The server still answers ping; the launcher does not hand it out.
            with pytest.raises(EngineError) as info:
                engine.acquire(data_dir)
            message = info.value.message
            # Its storage panicked: even authenticating (which reads the users) fails.
            assert f"(pid {lease.pid}) for {data_dir} answers but cannot serve requests" in message
            assert "server error 1 (InternalError)" in message
            assert re.search(r"only \d+\.\d MB free on its disk", message)
            assert f"see {log} for its reason (a full disk is a common one)" in message
            assert f"`kill {lease.pid}`" in message

            (small_disk / "filler").unlink()
            broken = lease.pid
            assert lease.revive() is False  # restarted, on the same port
            assert lease.pid != broken
            assert ql.execute("SELECT body FROM notes LIMIT 1").rows == [{"body": "before"}]
    finally:
        lease.release()


def test_a_server_that_answers_but_cannot_write_is_not_handed_out(small_disk):
    # A full disk before the storage failed: reads work; a write needing new space does not.
    data_dir = small_disk / "data"
    lease = engine.acquire(data_dir)
    try:
        with pymongo.MongoClient(lease.uri) as client:
            client.admin.drop_collection(HEALTH_COLLECTION)  # its next write creates a file
            fill(small_disk)
            with pytest.raises(EngineError) as info:
                engine.acquire(data_dir)
            assert client.admin.command("ping")["ok"] == 1
        message = info.value.message
        assert (
            f"(pid {lease.pid}) for {data_dir} answers but cannot write: server error 1" in message
        )
        assert f"see {data_dir / 'server.log'} for its reason" in message
    finally:
        lease.release()


@pytest.mark.parametrize(
    "error, hinted",
    [
        (ExecutionError("server error 1 (InternalError): internal server error", 1), True),
        (ExecutionError("out of disk space", 14031), True),
        (ExecutionError("E11000 duplicate key", 11000), False),
        (ExecutionError("view v does not exist"), False),
        (ServerUnreachable("cannot reach the MongoDB server", OSError()), False),
    ],
)
def test_only_failures_the_server_log_explains_point_to_it(tmp_path, error, hinted):
    dirs = DataDir(tmp_path)
    before = error.message
    add_log_hint(error, dirs)
    assert (error.message != before) is hinted
    if hinted:
        assert error.message == f"{before}; see {dirs.log} for the reason"
        add_log_hint(error, dirs)  # once only
        assert error.message == f"{before}; see {dirs.log} for the reason"
