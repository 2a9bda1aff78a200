"""The shell's first line: which server (embedded at its data directory, or the URI's hosts,
never its credentials), its version, and the database."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from queryleaf.api import QueryLeaf

HINT = "statements end with ';' (or \\G for one record per block), \\? for help, \\q to quit"


def banner(ql: QueryLeaf) -> str:
    return f"queryleaf {_own_version()} on {server_name(ql)}, database {ql.database_name}\n{HINT}"


def server_name(ql: QueryLeaf) -> str:
    """``MongoDB 7.0.4 at db1.example:27017`` or ``the embedded server at DIR (...)``."""
    info = _build_info(ql)
    mongo = f"MongoDB {info['version']}" if info.get("version") else "MongoDB"
    data_dir = ql.embedded_data_dir
    if data_dir is None:
        return f"{mongo} at {uri_hosts(ql.uri)}"
    engine = f"SecantusDB {info['secantusVersion']}, " if info.get("secantusVersion") else ""
    return f"the embedded server at {data_dir} ({engine}{mongo} compatible)"


def uri_hosts(uri: str) -> str:
    """The host list of a MongoDB URI, without user, password, database or options."""
    rest = uri.partition("://")[2] or uri
    authority = rest.split("/", 1)[0].split("?", 1)[0]
    return authority.rpartition("@")[2]


def _build_info(ql: QueryLeaf) -> dict[str, Any]:
    from pymongo.errors import PyMongoError

    try:
        return dict(ql.client.admin.command("buildInfo"))
    except PyMongoError:  # the banner is no reason to fail: the statements will say why
        return {}


def _own_version() -> str:
    try:
        return version("queryleaf")
    except PackageNotFoundError:
        return "(development)"
