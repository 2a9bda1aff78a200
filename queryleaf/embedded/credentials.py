"""The embedded server's credential: generated once per data directory, kept in it (0600).

The server runs with ``--auth``; every queryleaf process of the directory's owner reads the
credential from ``credentials.json`` and puts it in the URI it connects with. The password is
never printed: the URIs shown to people go through ``redact_uri``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from urllib.parse import quote

from queryleaf.embedded.paths import DataDir, read_json, write_json

USER = "queryleaf"
AUTH_DB = "admin"
MECHANISM = "SCRAM-SHA-256"
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Credential:
    user: str
    password: str = field(repr=False)

    @property
    def principal(self) -> str:
        """The user's id in ``admin.system.users``."""
        return f"{AUTH_DB}.{self.user}"


def generate() -> Credential:
    return Credential(USER, secrets.token_urlsafe(32))


def load(dirs: DataDir) -> Credential | None:
    """The directory's credential; None if there is none yet (or the file is unusable)."""
    data = read_json(dirs.credentials)
    if data is None:
        return None
    user, password = data.get("user"), data.get("password")
    if not (isinstance(user, str) and user and isinstance(password, str) and password):
        return None
    return Credential(user, password)


def save(dirs: DataDir, credential: Credential) -> None:
    write_json(dirs.credentials, {"user": credential.user, "password": credential.password})


def plain_uri(port: int) -> str:
    """The server's address without a credential (enough for a ping, nothing else)."""
    return f"mongodb://{HOST}:{port}/?directConnection=true"


def client_uri(port: int, credential: Credential) -> str:
    user, password = quote(credential.user, safe=""), quote(credential.password, safe="")
    return (
        f"mongodb://{user}:{password}@{HOST}:{port}/?directConnection=true"
        f"&authSource={AUTH_DB}&authMechanism={MECHANISM}"
    )


def redact_uri(uri: str) -> str:
    """``uri`` with its password replaced by ``***``."""
    scheme, sep, rest = uri.partition("://")
    authority, slash, tail = rest.partition("/")
    userinfo, at, hosts = authority.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return uri
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{hosts}{slash}{tail}"
