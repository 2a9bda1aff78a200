"""The embedded default server: start, share, reference-count, stop (real secantusd-py processes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pymongo
import pytest
from embedded_helpers import (  # noqa: F401
    USER_SCRIPT,
    acquire_fixture,
    assert_stopped,
    data_dir_fixture,
    password_of,
    ping,
    read_line,
    running,
    spawn_fixture,
)

from queryleaf import engine
from queryleaf.embedded import process
from queryleaf.errors import EngineError


def test_acquire_starts_a_recorded_server_that_answers(data_dir, acquire):
    lease = acquire()
    assert lease.uri.startswith("mongodb://queryleaf:")
    assert f"@127.0.0.1:{lease.port}/?directConnection=true&authSource=admin" in lease.uri
    assert ping(lease.uri)
    record = json.loads((data_dir / "server.json").read_text())
    assert (record["pid"], record["port"]) == (lease.pid, lease.port)
    assert record["auth"] is True and record["sync_on_commit"] is True
    command = Path(f"/proc/{lease.pid}/cmdline").read_bytes().split(b"\0")
    assert b"--auth" in command and b"--sync-on-commit" in command
    assert (data_dir / "db" / "WiredTiger").exists()
    assert (data_dir / "users" / str(os.getpid())).exists()
    assert engine.find_server(data_dir).pid == lease.pid

    assert lease.release() is True
    assert_stopped(data_dir, lease.pid)
    assert not (data_dir / "users" / str(os.getpid())).exists()
    assert lease.release() is False  # idempotent


def test_two_leases_in_one_process_share_one_server(data_dir, acquire):
    first, second = acquire(), acquire()
    assert (first.uri, first.pid) == (second.uri, second.pid)
    assert first.release() is False
    assert ping(second.uri)
    assert second.release() is True
    assert_stopped(data_dir, second.pid)


def test_two_processes_share_one_server_until_both_leave(data_dir, spawn):
    # Started together, so they race for the lock: exactly one of them starts the server.
    releaser = spawn("-c", USER_SCRIPT, str(data_dir), "release")
    forgetter = spawn("-c", USER_SCRIPT, str(data_dir), "exit")
    uri_a, pid_a = read_line(releaser).split()
    uri_b, pid_b = read_line(forgetter).split()
    assert (uri_a, pid_a) == (uri_b, pid_b)
    assert len(list((data_dir / "users").iterdir())) == 2

    releaser.communicate("", timeout=20)
    assert releaser.returncode == 0
    assert ping(uri_a)

    _, err = forgetter.communicate("", timeout=30)  # released by atexit
    assert forgetter.returncode == 0, err
    assert_stopped(data_dir, int(pid_a))
    assert list((data_dir / "users").iterdir()) == []


@pytest.mark.parametrize("case", ["dead pid", "reused pid"])
def test_a_stale_record_is_replaced_on_its_port(data_dir, acquire, case):
    if case == "dead pid":
        gone = subprocess.Popen(["true"])
        gone.wait()
        stale_pid = gone.pid
    else:  # the recorded pid now belongs to an unrelated process, which must survive
        bystander = subprocess.Popen(["sleep", "60"])
        stale_pid = bystander.pid
    (data_dir / "users").mkdir(parents=True)
    (data_dir / "users" / "999999999").write_text("{}")  # a user that died without releasing
    stale_port = engine.free_port()
    (data_dir / "server.json").write_text(
        json.dumps(
            {
                "pid": stale_pid,
                "port": stale_port,
                "started_at": 0,
                "storage_path": str(data_dir / "db"),
                "auth": True,
            }
        )
    )

    lease = acquire()
    assert lease.pid != stale_pid
    assert lease.port == stale_port  # clients still holding the old URI reconnect by themselves
    assert ping(lease.uri)
    assert lease.release() is True  # the dead user does not keep it alive
    assert_stopped(data_dir, lease.pid)
    if case == "reused pid":
        assert running(stale_pid)
        bystander.kill()
        bystander.wait()


def test_data_persists_across_stop_and_start(data_dir, acquire):
    lease = acquire()
    client: pymongo.MongoClient = pymongo.MongoClient(lease.uri)
    client.keep.things.insert_one({"_id": 1, "name": "kept"})
    client.close()
    first_pid = lease.pid
    assert lease.release() is True
    assert_stopped(data_dir, first_pid)

    lease = acquire()
    assert lease.pid != first_pid
    with pymongo.MongoClient(lease.uri) as client:
        assert client.keep.things.find_one({"_id": 1}) == {"_id": 1, "name": "kept"}


# `queryleaf serve` as the CLI group calls it, with the group's --data-dir in ctx.obj.
SERVE_FROM_GROUP = """
import sys
from queryleaf.cli.serve import serve_command
serve_command(args=sys.argv[2:], obj={"data_dir": sys.argv[1]})
"""


def start_serve(
    spawn, data_dir: Path, *options: str, via_group: bool = False
) -> tuple[subprocess.Popen, str]:
    """Start `queryleaf serve`; returns it and the first line it prints on stdout."""
    if via_group:
        proc = spawn("-c", SERVE_FROM_GROUP, str(data_dir), *options)
    else:
        proc = spawn("-m", "queryleaf.cli.serve", "--data-dir", str(data_dir), *options)
    line = read_line(proc)
    assert line, proc.stderr.read() if proc.poll() is not None else ""
    return proc, line.rstrip("\n")


def test_serve_outlives_other_users_and_stops_on_sigterm(data_dir, acquire, spawn):
    server, line = start_serve(spawn, data_dir)
    lease = acquire()
    assert password_of(lease.uri) not in line
    assert engine.redact_uri(lease.uri) in line and "queryleaf serve --print-uri" in line
    assert lease.release() is False  # pinned by serve
    assert ping(lease.uri)

    server.send_signal(signal.SIGTERM)
    _, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    assert "stopped the server" in err
    assert_stopped(data_dir, lease.pid)


def test_serve_leaves_the_server_to_remaining_users(data_dir, acquire, spawn):
    server, _ = start_serve(spawn, data_dir, via_group=True)
    lease = acquire()
    server.send_signal(signal.SIGINT)
    _, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    assert "left it running" in err
    assert ping(lease.uri)
    assert lease.release() is True
    assert_stopped(data_dir, lease.pid)


def test_serve_print_uri_serves_when_no_one_else_keeps_the_server(data_dir, spawn):
    server, uri = start_serve(spawn, data_dir, "--print-uri")
    with pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
        client.kept.things.insert_one({"_id": 1})  # the credential is in the URI
        assert client.kept.list_collection_names() == ["things"]
    record = json.loads((data_dir / "server.json").read_text())
    assert f":{record['port']}/" in uri
    server.send_signal(signal.SIGTERM)
    out, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    assert out == ""  # the URI was the only line on stdout
    assert "serving" in err and "stopped the server" in err
    assert_stopped(data_dir, record["pid"])


def test_serve_print_uri_returns_at_once_when_others_keep_the_server(data_dir, acquire, spawn):
    lease = acquire()
    printer = spawn("-m", "queryleaf.cli.serve", "--data-dir", str(data_dir), "--print-uri")
    out, err = printer.communicate(timeout=30)
    assert printer.returncode == 0, err
    assert out == f"{lease.uri}\n"
    assert lease.release() is True  # serve --print-uri did not become a user


def test_missing_server_executable_says_what_to_do(data_dir, monkeypatch):
    monkeypatch.setattr(process, "SERVER_COMMAND", "secantusd-py-not-installed")
    with pytest.raises(EngineError) as info:
        engine.acquire(data_dir)
    message = str(info.value)
    assert "\n" not in message
    assert "pip install 'queryleaf[embedded]'" in message and "QUERYLEAF_URI" in message
    assert not (data_dir / "server.json").exists()
    assert list((data_dir / "users").iterdir()) == []


def test_server_exiting_at_start_reports_its_log(data_dir, tmp_path, monkeypatch):
    fake = tmp_path / "fake-secantusd"
    fake.write_text("#!/bin/sh\necho 'starting'\necho 'fatal: storage is corrupt' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr(process, "server_executable", lambda: str(fake))
    with pytest.raises(EngineError) as info:
        engine.acquire(data_dir)
    message = str(info.value)
    assert "\n" not in message
    assert "exited at start (code 3)" in message
    assert "fatal: storage is corrupt" in message and str(data_dir / "server.log") in message
    assert not (data_dir / "server.json").exists()
    assert not (data_dir / "credentials.json").exists()


def test_data_dir_comes_from_argument_then_env_then_platform(tmp_path, monkeypatch):
    monkeypatch.delenv(engine.DATA_DIR_ENV, raising=False)
    assert engine.resolve_data_dir().name == "queryleaf"
    monkeypatch.setenv(engine.DATA_DIR_ENV, str(tmp_path / "from-env"))
    assert engine.resolve_data_dir() == tmp_path / "from-env"
    assert engine.resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
