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
from pymongo.errors import CollectionInvalid, OperationFailure

from queryleaf.events import names

OPTION: dict[str, Any] = {"changeStreamPreAndPostImages": {"enabled": True}}


def commands(collections: list[str]) -> list[dict[str, Any]]:
    """The commands (for EXPLAIN); an empty list of collections means every user collection."""
    targets = collections or ["<every collection of the database>"]
    return [{"collMod": name, **OPTION} for name in targets]


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
        return {"requested": True, "enabled": False, "collections": done,
                "message": f"pre- and post-images could not be enabled on {name!r}: "
                           f"{exc.details.get('errmsg', str(exc)) if exc.details else exc}"}
    return {"requested": True, "enabled": True, "collections": done, "message": None}


def _enable_one(db: Database, name: str) -> None:
    if name not in db.list_collection_names(filter={"name": name}):
        try:
            db.create_collection(name, **OPTION)
            return
        except CollectionInvalid:  # created meanwhile by someone else
            pass
    db.command("collMod", name, **OPTION)


def _user_collections(db: Database) -> list[str]:
    return sorted(
        name for name in db.list_collection_names(filter={"type": "collection"})
        if not names.is_reserved(name) and not name.startswith("system.")
    )
