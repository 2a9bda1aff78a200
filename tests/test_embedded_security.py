"""A private embedded server: private files, a credential, and upgrading directories made
before them (real secantusd-py processes)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pymongo
import pytest
from embedded_helpers import acquire_fixture, data_dir_fixture, password_of, running  # noqa: F401
from pymongo.errors import OperationFailure, PyMongoError

from queryleaf import engine
from queryleaf.embedded import bootstrap
from queryleaf.embedded.durability import SYNC_ENV, sync_on_commit
from queryleaf.embedded.paths import DataDir
from queryleaf.errors import EngineError

pytestmark = pytest.mark.slow  # real server processes

UNAUTHORIZED = 13
AUTHENTICATION_FAILED = 18


def anonymous(port: int) -> pymongo.MongoClient:
    return pymongo.MongoClient(
        f"mongodb://127.0.0.1:{port}/?directConnection=true", serverSelectionTimeoutMS=5000
    )


def assert_private(data_dir: Path) -> None:
    assert data_dir.stat().st_mode & 0o777 == 0o700
    for path in data_dir.rglob("*"):
        mode = path.lstat().st_mode & 0o777
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"


def assert_refused_without_credential(port: int) -> None:
    with anonymous(port) as client:
        assert client.admin.command("ping")["ok"] == 1  # the handshake needs no credential
        for attempt in (
            client.list_database_names,
            client.shop.list_collection_names,
            client.shop.orders.find_one,
            lambda: client.shop.orders.insert_one({}),
        ):
            with pytest.raises(OperationFailure) as info:
                attempt()
            assert info.value.code == UNAUTHORIZED


def test_files_are_private_and_the_server_requires_the_credential(data_dir, acquire):
    lease = acquire()
    with pymongo.MongoClient(lease.uri) as client:
        client.shop.orders.insert_one({"_id": 1, "card": "4111"})
    assert_private(data_dir)
    assert_refused_without_credential(lease.port)
    wrong = lease.uri.replace(password_of(lease.uri), "not-the-password")
    with (
        pymongo.MongoClient(wrong, serverSelectionTimeoutMS=5000) as client,
        pytest.raises(OperationFailure) as info,
    ):
        client.admin.command("ping")
    assert info.value.code == AUTHENTICATION_FAILED

    password = password_of(lease.uri)
    assert password not in repr(lease)
    stored = json.loads((data_dir / "credentials.json").read_text())
    assert stored == {"user": "queryleaf", "password": password}
    for path in data_dir.rglob("*"):  # the credential file is the only place it is kept
        if path.is_file() and path.name != "credentials.json":
            assert password.encode() not in path.read_bytes(), path


OTHER_USER_SCRIPT = """
import json, os, sys
import pymongo
from pymongo.errors import OperationFailure, PyMongoError

data_dir, port = sys.argv[1], int(sys.argv[2])
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
report = {"uid": os.getuid()}

def attempt(name, action):
    try:
        action()
        report[name] = "allowed"
    except OSError as exc:
        report[name] = f"denied: {exc.strerror}"
    except OperationFailure as exc:
        report[name] = f"refused: {exc.code}"
    except PyMongoError as exc:
        report[name] = f"failed: {type(exc).__name__}"

attempt("list the data dir", lambda: os.listdir(data_dir))
for name in ("server.json", "credentials.json", "server.log", "db/WiredTiger.wt"):
    attempt(f"read {name}", lambda name=name: open(os.path.join(data_dir, name), "rb").read())
client = pymongo.MongoClient(f"mongodb://127.0.0.1:{port}/?directConnection=true",
                             serverSelectionTimeoutMS=5000)
attempt("ping", lambda: client.admin.command("ping"))
attempt("listDatabases", client.list_database_names)
attempt("listCollections", client.shop.list_collection_names)
attempt("find", client.shop.orders.find_one)
print(json.dumps(report))
"""


@pytest.fixture()
def shared_parent():
    """A directory every user may enter, so that only the data dir's own modes keep another
    user out (pytest's tmp_path is inside a directory private to root)."""
    parent = Path(tempfile.mkdtemp(prefix="queryleaf-other-user-"))
    parent.chmod(0o755)
    yield parent
    with contextlib.suppress(OSError, ValueError, KeyError):
        os.kill(json.loads((parent / "data" / "server.json").read_text())["pid"], signal.SIGKILL)
    shutil.rmtree(parent, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="running a process as another user needs root")
def test_another_user_can_neither_read_the_files_nor_query_the_server(shared_parent, acquire):
    lease = acquire(shared_parent / "data")
    with pymongo.MongoClient(lease.uri) as client:
        client.shop.orders.insert_one({"_id": 1, "card": "4111"})
    # The other user is nobody (65534); it starts as root only to import its modules.
    other = subprocess.run(
        [sys.executable, "-c", OTHER_USER_SCRIPT, str(lease.data_dir), str(lease.port)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    assert other.returncode == 0, other.stderr
    report = json.loads(other.stdout)
    assert report == {
        "uid": 65534,
        "list the data dir": "denied: Permission denied",
        "read server.json": "denied: Permission denied",
        "read credentials.json": "denied: Permission denied",
        "read server.log": "denied: Permission denied",
        "read db/WiredTiger.wt": "denied: Permission denied",
        "ping": "allowed",
        "listDatabases": f"refused: {UNAUTHORIZED}",
        "listCollections": f"refused: {UNAUTHORIZED}",
        "find": f"refused: {UNAUTHORIZED}",
    }


def test_a_data_dir_from_before_the_credential_is_upgraded(data_dir, acquire):
    # What an older queryleaf left: readable files, and its server (no authentication)
    # still running and recorded, with the user's data.
    data_dir.mkdir(mode=0o755)
    (data_dir / "users").mkdir(mode=0o755)
    legacy = engine.start_ephemeral_server(
        str(data_dir / "db"), log_path=str(data_dir / "server.log")
    )
    with pymongo.MongoClient(legacy.uri) as client:
        client.shop.orders.insert_one({"_id": 1})
    (data_dir / "server.json").write_text(
        json.dumps(
            {
                "pid": legacy.process.pid,
                "port": legacy.port,
                "started_at": 0,
                "storage_path": str(data_dir / "db"),
            }
        )
    )
    (data_dir / "server.json").chmod(0o644)
    assert (data_dir / "db" / "WiredTiger.wt").stat().st_mode & 0o044

    # Another process still uses it: it is left alone, and the error says what to do.
    user = subprocess.Popen(["sleep", "60"])
    (data_dir / "users" / str(user.pid)).write_text("{}")
    try:
        with pytest.raises(EngineError) as info:
            acquire()
        assert "older queryleaf, without authentication" in info.value.message
        assert f"kill {legacy.process.pid}" in info.value.message
        assert running(legacy.process.pid)
    finally:
        user.kill()
        user.wait()

    lease = acquire()
    assert not running(legacy.process.pid)
    assert lease.port == legacy.port  # restarted where its clients look for it
    with pymongo.MongoClient(lease.uri) as client:
        assert client.shop.orders.find_one() == {"_id": 1}
    assert_private(data_dir)
    assert_refused_without_credential(lease.port)


@pytest.mark.parametrize("lost", ["credentials.json", "db"])
def test_a_lost_credential_or_storage_gets_a_new_credential(data_dir, acquire, lost):
    lease = acquire()
    with pymongo.MongoClient(lease.uri) as client:
        client.shop.orders.insert_one({"_id": 1})
    before = password_of(lease.uri)
    lease.release()
    if lost == "db":
        shutil.rmtree(data_dir / "db")
    else:
        (data_dir / "credentials.json").unlink()

    lease = acquire()
    assert password_of(lease.uri) != before
    with pymongo.MongoClient(lease.uri) as client:
        expected = [] if lost == "db" else [{"_id": 1}]
        assert list(client.shop.orders.find()) == expected
    assert_refused_without_credential(lease.port)


def attempt_during_bootstrap(monkeypatch, *client_options: dict) -> list[str]:
    """While the bootstrap creates our user, other clients try to create their own."""
    attempts: list[str] = []
    set_user = bootstrap._set_user

    def set_user_while_others_try(mongo: pymongo.MongoClient, credential) -> None:
        port = mongo.address[1]
        for options in client_options:
            with pymongo.MongoClient(
                f"mongodb://127.0.0.1:{port}/?directConnection=true",
                serverSelectionTimeoutMS=1000,
                **options,
            ) as other:
                try:
                    other.admin.command("createUser", "intruder", pwd="x", roles=["root"])
                    attempts.append("created")
                except PyMongoError as exc:
                    attempts.append(type(exc).__name__)
        set_user(mongo, credential)

    monkeypatch.setattr(bootstrap, "_set_user", set_user_while_others_try)
    return attempts


def users_of(uri: str) -> list[str]:
    with pymongo.MongoClient(uri) as client:
        return [user["_id"] for user in client.admin["system.users"].find()]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
def test_the_bootstrap_takes_no_commands_from_others(data_dir, acquire, monkeypatch):
    attempts = attempt_during_bootstrap(
        monkeypatch, {}, {"tls": True, "tlsAllowInvalidCertificates": True}
    )
    lease = acquire()
    assert attempts == ["ServerSelectionTimeoutError", "ServerSelectionTimeoutError"]
    assert users_of(lease.uri) == ["admin.queryleaf"]
    assert "creating the server's user over mutual TLS" in (data_dir / "server.log").read_text()
    assert not list(data_dir.glob(".bootstrap-*"))  # the certificate and key are gone


def test_without_openssl_users_created_during_the_bootstrap_are_dropped(
    data_dir, acquire, monkeypatch
):
    monkeypatch.setattr(bootstrap, "OPENSSL", "openssl-not-installed")
    attempts = attempt_during_bootstrap(monkeypatch, {})
    lease = acquire()
    assert attempts == ["created"]  # the residual window docs/embedded.md describes
    assert users_of(lease.uri) == ["admin.queryleaf"]
    log = (data_dir / "server.log").read_text()
    assert "over plain loopback" in log and "listened without authentication for" in log
    assert "dropped users created by someone else" in log and "admin.intruder" in log


def test_commits_are_synced_unless_explicitly_turned_off(tmp_path, monkeypatch):
    dirs = DataDir(tmp_path)
    monkeypatch.delenv(SYNC_ENV, raising=False)
    assert sync_on_commit(dirs) is True
    (tmp_path / "secantusd.toml").write_text("[storage]\nsync_on_commit = false\n")
    assert sync_on_commit(dirs) is False
    monkeypatch.setenv(SYNC_ENV, "on")
    assert sync_on_commit(dirs) is True
    (tmp_path / "secantusd.toml").unlink()
    monkeypatch.setenv(SYNC_ENV, "OFF")
    assert sync_on_commit(dirs) is False
    monkeypatch.setenv(SYNC_ENV, "sometimes")
    with pytest.raises(
        EngineError, match=f"{SYNC_ENV}='sometimes' is not a setting: use on or off"
    ):
        sync_on_commit(dirs)


def test_a_server_started_with_sync_off_runs_without_it(data_dir, acquire, monkeypatch):
    monkeypatch.setenv(SYNC_ENV, "off")
    lease = acquire()
    assert b"--sync-on-commit" not in Path(f"/proc/{lease.pid}/cmdline").read_bytes()
    assert json.loads((data_dir / "server.json").read_text())["sync_on_commit"] is False
