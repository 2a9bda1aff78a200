"""Provisioning the credential: the server's one user, created before it runs with ``--auth``.

SecantusDB has no localhost exception and no way to declare users in its configuration: a
user is created with ``createUser`` on a server running *without* ``--auth``, which is then
restarted with it. That bootstrap run must not be usable by other local users, so it requires
mutual TLS with a certificate made for this run only (``openssl``, in a private temporary
directory deleted afterwards): a client without that key cannot complete the TLS handshake,
so nobody else can send it a command. Without ``openssl`` the bootstrap run listens on plain
loopback for the fraction of a second it takes (the residual risk docs/embedded.md describes);
users that appear in that window are dropped once the server runs with ``--auth``
(``drop_intruders``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymongo
from pymongo.errors import PyMongoError

from queryleaf.embedded import health
from queryleaf.embedded.credentials import AUTH_DB, Credential, generate, plain_uri, save
from queryleaf.embedded.paths import DataDir, open_private
from queryleaf.embedded.process import launch, log_note, stop_process
from queryleaf.errors import EngineError

OPENSSL = "openssl"
CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Provisioned:
    credential: Credential
    # The users the storage may hold afterwards: ours and those it had before the bootstrap.
    allowed_users: frozenset[str]


@dataclass(frozen=True)
class _Tls:
    """A self-signed certificate, used as the server's certificate, the CA it trusts for
    client certificates, and the one client certificate."""

    cert: Path
    key: Path
    cert_and_key: Path

    def server_args(self) -> list[str]:
        return [
            "--tls-cert-file",
            str(self.cert),
            "--tls-key-file",
            str(self.key),
            "--tls-ca-file",
            str(self.cert),
            "--tls-require-client-cert",
        ]

    def client_options(self) -> dict[str, Any]:
        # The certificate is pinned as the only CA, so its name does not matter.
        return {
            "tls": True,
            "tlsCAFile": str(self.cert),
            "tlsCertificateKeyFile": str(self.cert_and_key),
            "tlsAllowInvalidHostnames": True,
        }


def provision(dirs: DataDir, port: int, flags: Sequence[str]) -> Provisioned:
    """Give the storage our user with a new password, and keep that credential in the
    directory. The server must not be running. ``flags`` are the server's other flags."""
    fresh = not (dirs.storage / "WiredTiger").exists()
    credential = generate()
    with tempfile.TemporaryDirectory(prefix=".bootstrap-", dir=dirs.root) as tmp:
        tls = _certificate(Path(tmp))
        log_note(
            dirs,
            "creating the server's user over mutual TLS"
            if tls
            else f"creating the server's user over plain loopback (no usable `{OPENSSL}`)",
        )
        opened = time.monotonic()
        proc = launch(dirs, port, [*flags, *(tls.server_args() if tls else [])], detach=False)
        try:
            options = tls.client_options() if tls else {}
            with health.client(plain_uri(port), CONNECT_TIMEOUT, **options) as mongo:
                before = set() if fresh else _user_ids(mongo)
                _set_user(mongo, credential)
        except PyMongoError as exc:
            raise EngineError(
                f"could not create the embedded server's user ({str(exc).splitlines()[0][:200]})"
                f"; see {dirs.log}"
            ) from exc
        finally:
            stop_process(proc, port)
            if not tls:
                log_note(
                    dirs,
                    f"the bootstrap server listened without authentication for "
                    f"{time.monotonic() - opened:.2f}s",
                )
    save(dirs, credential)
    return Provisioned(credential, frozenset({*before, credential.principal}))


def drop_intruders(mongo: pymongo.MongoClient, allowed: frozenset[str]) -> list[str]:
    """Drop the users not in ``allowed`` (created by someone else during a plain bootstrap)."""
    dropped = []
    for user in mongo[AUTH_DB]["system.users"].find({}, {"user": 1, "db": 1}):
        if user["_id"] not in allowed:
            mongo[user["db"]].command("dropUser", user["user"])
            dropped.append(user["_id"])
    return dropped


def _set_user(mongo: pymongo.MongoClient, credential: Credential) -> None:
    # The user exists when a directory is provisioned again (its credential file was lost).
    exists = mongo[AUTH_DB].command("usersInfo", credential.user)["users"]
    mongo[AUTH_DB].command(
        "updateUser" if exists else "createUser",
        credential.user,
        pwd=credential.password,
        roles=[{"role": "root", "db": AUTH_DB}],
    )


def _user_ids(mongo: pymongo.MongoClient) -> set[str]:
    return {user["_id"] for user in mongo[AUTH_DB]["system.users"].find({}, {"_id": 1})}


def _certificate(tmp: Path) -> _Tls | None:
    """A throwaway certificate and key in ``tmp``; None if openssl is missing or fails."""
    openssl = shutil.which(OPENSSL)
    if openssl is None:
        return None
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    try:
        subprocess.run(
            [
                openssl,
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=queryleaf-bootstrap",
                "-keyout",
                str(key),
                "-out",
                str(cert),
            ],
            check=True,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
            umask=0o077,
        )
        both = tmp / "cert-and-key.pem"
        with os.fdopen(open_private(both, os.O_WRONLY | os.O_TRUNC), "w") as f:
            f.write(cert.read_text() + key.read_text())
    except (OSError, subprocess.SubprocessError):
        return None
    return _Tls(cert, key, both)
