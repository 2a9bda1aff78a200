"""Pre- and post-images: ``full_document``/``full_document_before_change`` = 'whenAvailable' or
'required' need ``changeStreamPreAndPostImages`` on the watched collections (MongoDB 6.0+).

A collection that does not exist yet is created with the option, so its first updates already
have images. A server that does not support the option is not an error: the outcome is recorded
in the subscription's ``pre_images`` field and events simply arrive without images
('whenAvailable') or fail on the server ('required').
"""

from __future__ import annotations

from typing import Any

from pymongo.database import Database
from pymongo.errors import OperationFailure

from queryleaf.events import names
from queryleaf.events.commands import Command, list_collections, noted, send

OPTION: dict[str, Any] = {"changeStreamPreAndPostImages": {"enabled": True}}
NAMESPACE_EXISTS = 48
USER_COLLECTIONS = {"type": "collection"}  # then without system. and queryleaf's own
EACH = "<each user collection listed above>"
EACH_WATCHED = "<each watched collection>"


def commands(collections: list[str] | None) -> list[Command]:
    """The commands ``enable`` sends; an empty list of collections means every user
    collection, None collections known only when it runs (stored ones)."""
    if collections is None:
        every = noted(list_collections(USER_COLLECTIONS), "only when it watches every collection")
        return [every, *_commands_for(EACH_WATCHED)]
    if not collections:
        return [list_collections(USER_COLLECTIONS), *_commands_for(EACH)]
    return [command for name in collections for command in _commands_for(name)]


def _commands_for(name: str) -> list[Command]:
    return [
        list_collections({"name": name}),
        noted(
            _coll_mod(name), "createCollection with the option instead when the list above is empty"
        ),
    ]


def _coll_mod(name: str) -> Command:
    return {"collMod": name, **OPTION}


def enable(db: Database, collections: list[str]) -> dict[str, Any]:
    """Enable images on ``collections`` (all existing user collections when empty).

    Returns the status document stored with the subscription:
    ``{requested: True, enabled: bool, collections: [...], message: str | None}``.
    """
    targets = collections or _user_collections(db)
    done: list[str] = []
    try:
        for name in targets:
            _enable_one(db, name)
            done.append(name)
    except OperationFailure as exc:
        return {
            "requested": True,
            "enabled": False,
            "collections": done,
            "message": f"pre- and post-images could not be enabled on {name!r}: "
            f"{exc.details.get('errmsg', str(exc)) if exc.details else exc}",
        }
    return {"requested": True, "enabled": True, "collections": done, "message": None}


def _enable_one(db: Database, name: str) -> None:
    listed, coll_mod = _commands_for(name)
    if not send(db, listed):
        try:
            send(db, {"create": name, **OPTION})
            return
        except OperationFailure as exc:
            if exc.code != NAMESPACE_EXISTS:  # created meanwhile by someone else: collMod
                raise
    send(db, coll_mod)


def _user_collections(db: Database) -> list[str]:
    return sorted(
        name
        for name in send(db, list_collections(USER_COLLECTIONS))
        if not names.is_reserved(name) and not name.startswith("system.")
    )
