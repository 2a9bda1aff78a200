"""Passwords of the PostgreSQL wire server: SCRAM-SHA-256 (RFC 7677), as PostgreSQL does it.

The users file (``--pg-users FILE``) has one ``name:password`` or ``name:SCRAM-SHA-256$...``
line per user (blank lines and ``#`` comments are skipped). A verifier line keeps no password:
``queryleaf pg-passwd NAME`` makes one, in PostgreSQL's own format
(``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>``, base64), so a verifier taken from
``pg_authid`` works too. The client proves it knows the password without sending it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path

from scramp import ScramMechanism  # type: ignore[import-untyped]

MECHANISM = "SCRAM-SHA-256"
ITERATIONS = 4096  # PostgreSQL's default (scram_iterations)
_SCRAM = ScramMechanism(MECHANISM)


class UsersFileError(Exception):
    """The users file cannot be read or has an invalid line."""


class AuthenticationFailed(Exception):
    """Wrong password, unknown user, or a broken exchange."""


@dataclass(frozen=True)
class Verifier:
    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int

    def text(self) -> str:
        b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
        return (
            f"{MECHANISM}${self.iterations}:{b64(self.salt)}"
            f"${b64(self.stored_key)}:{b64(self.server_key)}"
        )


def make_verifier(password: str, iterations: int = ITERATIONS) -> Verifier:
    salt, stored_key, server_key, count = _SCRAM.make_auth_info(
        password, iteration_count=iterations
    )
    return Verifier(salt, stored_key, server_key, count)


def parse_verifier(text: str) -> Verifier:
    try:
        mechanism, rest = text.split("$", 1)
        head, keys = rest.split("$", 1)
        iterations, salt = head.split(":", 1)
        stored_key, server_key = keys.split(":", 1)
        if mechanism != MECHANISM:
            raise ValueError(mechanism)
        return Verifier(
            base64.b64decode(salt, validate=True),
            base64.b64decode(stored_key, validate=True),
            base64.b64decode(server_key, validate=True),
            int(iterations),
        )
    except ValueError as exc:
        raise UsersFileError(f"not a {MECHANISM} verifier: {text[:40]!r}") from exc


def load_users(path: str | Path) -> dict[str, Verifier]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsersFileError(f"cannot read the users file {path}: {exc.strerror}") from exc
    users: dict[str, Verifier] = {}
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, secret = line.partition(":")
        if not sep or not name or not secret:
            raise UsersFileError(f"{path}, line {number}: expected name:password or name:verifier")
        try:
            users[name] = (
                parse_verifier(secret)
                if secret.startswith(f"{MECHANISM}$")
                else make_verifier(secret)
            )
        except UsersFileError as exc:
            raise UsersFileError(f"{path}, line {number}: {exc}") from exc
    if not users:
        raise UsersFileError(f"the users file {path} names no user")
    return users


class ScramExchange:
    """The server's side of one SCRAM-SHA-256 exchange (RFC 5802) for the user of the startup
    message. libpq sends an empty user name in its first message (the startup message has it),
    which scramp's server refuses, so the exchange is written out here on hashlib and hmac;
    scramp makes the verifiers. An unknown user gets the same exchange with a random verifier
    and fails at its end: no answer tells which users exist."""

    def __init__(self, verifier: Verifier | None):
        self.known = verifier is not None
        self.verifier = verifier or make_verifier(base64.b64encode(os.urandom(18)).decode())
        self._gs2 = ""
        self._client_first_bare = ""
        self._server_first = ""
        self._nonce = ""

    def first(self, client_first: str) -> str:
        gs2_flag, sep, rest = client_first.partition(",")
        authzid, sep2, bare = rest.partition(",")
        if not (sep and sep2) or gs2_flag not in ("n", "y") or authzid:
            raise AuthenticationFailed("unsupported SCRAM client-first message")
        attributes = _attributes(bare)
        client_nonce = attributes.get("r", "")
        if not client_nonce:
            raise AuthenticationFailed("SCRAM client-first message without a nonce")
        self._gs2 = f"{gs2_flag},{authzid},"
        self._client_first_bare = bare
        self._nonce = client_nonce + base64.b64encode(os.urandom(18)).decode()
        salt = base64.b64encode(self.verifier.salt).decode()
        self._server_first = f"r={self._nonce},s={salt},i={self.verifier.iterations}"
        return self._server_first

    def final(self, client_final: str) -> str:
        without_proof, sep, proof_text = client_final.rpartition(",p=")
        attributes = _attributes(without_proof)
        if not sep or attributes.get("r") != self._nonce:
            raise AuthenticationFailed("SCRAM client-final message does not match the exchange")
        if attributes.get("c") != base64.b64encode(self._gs2.encode()).decode():
            raise AuthenticationFailed("SCRAM channel binding does not match")
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        v = self.verifier
        signature = hmac.new(v.stored_key, auth_message, hashlib.sha256).digest()
        try:
            proof = base64.b64decode(proof_text, validate=True)
        except ValueError as exc:
            raise AuthenticationFailed("invalid SCRAM proof") from exc
        if len(proof) != len(signature):
            raise AuthenticationFailed("invalid SCRAM proof")
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        matches = hmac.compare_digest(hashlib.sha256(client_key).digest(), v.stored_key)
        if not (matches and self.known):
            raise AuthenticationFailed("password authentication failed")
        server_signature = hmac.new(v.server_key, auth_message, hashlib.sha256).digest()
        return f"v={base64.b64encode(server_signature).decode()}"


def _attributes(message: str) -> dict[str, str]:
    pairs = (part.split("=", 1) for part in message.split(",") if "=" in part)
    return {name: value for name, value in pairs}
