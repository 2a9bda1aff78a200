"""The server commands of the subscription statements: built as documents, sent as built.

Each statement builds every command it sends as a command document, which is also what EXPLAIN
prints; ``send`` hands that very document to the pymongo method that sends exactly this command
(so retryable writes, write errors and sessions behave as pymongo's). A value known only when
the statement runs (the time, a cluster time, a stored field) is a ``<placeholder>`` in
EXPLAIN and the real value when sent. A ``$comment`` is a note for EXPLAIN, never sent.

The driver adds what every command carries (``lsid``, ``$db``, ``$clusterTime``, retryable
writes' ``txnNumber``, ``ordered``, ``upsert: false``, ``singleBatch``) and runs the cursor
bookkeeping (``getMore``, ``killCursors``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymongo import ReturnDocument
from pymongo.client_session import ClientSession
from pymongo.database import Database
from pymongo.write_concern import WriteConcern

from queryleaf.events.durable import DURABLE_DOCUMENT

Command = dict[str, Any]

WRITE_CONCERN = DURABLE_DOCUMENT  # every write: see durable.py


def find_one(
    collection: str,
    filter: dict[str, Any],
    projection: dict[str, Any] | None = None,
    *,
    sort: dict[str, Any] | None = None,
    database: str | None = None,
) -> Command:
    command: Command = {"find": collection, "filter": filter}
    if sort is not None:
        command["sort"] = sort
    if projection is not None:
        command["projection"] = projection
    command["limit"] = 1
    if database is not None:
        command["$db"] = database
    return command


def insert_one(collection: str, document: dict[str, Any]) -> Command:
    return {"insert": collection, "documents": [document], "writeConcern": WRITE_CONCERN}


def update(
    collection: str, query: dict[str, Any], change: dict[str, Any], *, multi: bool = False
) -> Command:
    statement: dict[str, Any] = {"q": query, "u": change}
    if multi:
        statement["multi"] = True
    return {"update": collection, "updates": [statement], "writeConcern": WRITE_CONCERN}


def delete(collection: str, query: dict[str, Any], *, multi: bool = False) -> Command:
    return {
        "delete": collection,
        "deletes": [{"q": query, "limit": 0 if multi else 1}],
        "writeConcern": WRITE_CONCERN,
    }


def find_and_update(collection: str, query: dict[str, Any], change: dict[str, Any]) -> Command:
    """findAndModify returning the document as updated."""
    return {
        "findAndModify": collection,
        "query": query,
        "update": change,
        "new": True,
        "writeConcern": WRITE_CONCERN,
    }


def create_index(
    collection: str, key: dict[str, int], name: str, *, unique: bool = False
) -> Command:
    index: dict[str, Any] = {"key": key, "name": name}
    if unique:
        index["unique"] = True
    return {"createIndexes": collection, "indexes": [index], "writeConcern": WRITE_CONCERN}


def list_collections(filter: dict[str, Any]) -> Command:
    return {"listCollections": 1, "filter": filter, "nameOnly": True}


def noted(command: Command, note: str) -> Command:
    """``command`` with a note for EXPLAIN (a command that runs only under a condition, or
    what its reply is for)."""
    return {**command, "$comment": note}


def send(db: Database, command: Mapping[str, Any], session: ClientSession | None = None) -> Any:
    """Send ``command`` (built above) through the pymongo method that sends exactly it.

    Returns what that method returns: the document (or None) for ``find`` and
    ``findAndModify``, the write's result object, the names for ``listCollections``, the
    reply for the others.
    """
    name = next(iter(command))
    target = db.client[command["$db"]] if "$db" in command else db
    if "writeConcern" in command:
        target = target.with_options(write_concern=WriteConcern(**command["writeConcern"]))
    if name == "listCollections":
        return target.list_collection_names(filter=command["filter"], session=session)
    if name in ("collMod", "create"):
        return target.command(
            {k: v for k, v in command.items() if k != "$comment"}, session=session
        )
    collection = target[command[name]]
    if name == "find":
        if command.get("limit") != 1:
            raise ValueError("send() runs finds of one document")
        sort = list(command["sort"].items()) if "sort" in command else None
        return collection.find_one(
            command["filter"], command.get("projection"), sort=sort, session=session
        )
    if name == "insert":
        (document,) = command["documents"]
        return collection.insert_one(document, session=session)
    if name == "update":
        ((query, change, multi),) = [
            (u["q"], u["u"], u.get("multi", False)) for u in command["updates"]
        ]
        if multi:
            return collection.update_many(query, change, session=session)
        return collection.update_one(query, change, session=session)
    if name == "delete":
        ((query, limit),) = [(d["q"], d["limit"]) for d in command["deletes"]]
        if limit == 1:
            return collection.delete_one(query, session=session)
        return collection.delete_many(query, session=session)
    if name == "findAndModify":
        after = ReturnDocument.AFTER if command.get("new") else ReturnDocument.BEFORE
        return collection.find_one_and_update(
            command["query"], command["update"], return_document=after, session=session
        )
    if name == "createIndexes":
        (index,) = command["indexes"]
        options = {k: v for k, v in index.items() if k != "key"}
        return collection.create_index(list(index["key"].items()), session=session, **options)
    raise ValueError(f"send() does not run {name} commands")
