"""EXPLAIN of a subscription statement lists exactly the commands the statement sends.

Each statement runs on a client whose CommandListener records what it sends; the recording is
compared, in order, with the statement's EXPLAIN: command names, target collections (and
database), and every field EXPLAIN shows (filters, updates, documents, pipelines, write
concern) equal, a ``<placeholder>`` standing for a value known only when it runs. What the
driver adds to every command (session, cluster time, retryable-write number, defaults) and its
cursor bookkeeping (getMore, killCursors) are not part of a statement's commands.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pymongo
import pytest
from pymongo import monitoring

from queryleaf.executor import Executor
from queryleaf.planner import plan_statement
from queryleaf.sql.parser import parse

BOOKKEEPING = {"getMore", "killCursors", "endSessions"}
# What the driver adds to a command; with a value, the only value it may have (a session's
# later commands read after its earlier writes: causal consistency).
DRIVER_FIELDS: dict[str, Any] = {
    "lsid": None,
    "$db": None,
    "$clusterTime": None,
    "$readPreference": None,
    "txnNumber": None,
    "ordered": True,
    "singleBatch": True,
    "upsert": False,
    "cursor": {},
    "readConcern": None,
}
STATEMENT_DEFAULTS = {"multi": False, "upsert": False}  # in each of updates / deletes

CREATE = (
    "CREATE EVENT_SUBSCRIPTION s AS (watch_collections = 'orders',"
    " event_types = JSON_ARRAY('insert', 'update'), deliver_to = 'collection:out')"
    " WHERE full_document.total > 10"
)


class Recorder(monitoring.CommandListener):
    def __init__(self) -> None:
        self.sent: list[monitoring.CommandStartedEvent] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.sent.append(event)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture()
def recorded(server, dbname):
    recorder = Recorder()
    client = pymongo.MongoClient(server.uri, event_listeners=[recorder], tz_aware=True)
    db = client[dbname]
    db.orders.insert_one({"_id": 1, "total": 5})
    yield db, recorder
    client.drop_database(dbname)
    client.close()


def _placeholder(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("<") and value.endswith(">")


def _same(explained: Any, sent: Any) -> bool:
    if _placeholder(explained):
        return True
    if isinstance(explained, dict):
        return (
            isinstance(sent, dict)
            and explained.keys() == sent.keys()
            and all(_same(value, sent[key]) for key, value in explained.items())
        )
    if isinstance(explained, list | tuple):
        if len(explained) == 1 and _placeholder(explained[0]):  # stands for the whole list
            return isinstance(sent, list)
        return (
            isinstance(sent, list)
            and len(explained) == len(sent)
            and all(_same(e, s) for e, s in zip(explained, sent, strict=True))
        )
    if isinstance(explained, str):  # a Secret is a str: sent as its characters
        return isinstance(sent, str) and explained == sent
    return type(explained) is type(sent) and explained == sent  # True is not 1 in BSON


def _statements_match(explained: list[dict], sent: list[dict]) -> bool:
    if len(explained) != len(sent):
        return False
    for e, s in zip(explained, sent, strict=True):
        extra = set(s) - set(e)
        if any(key not in STATEMENT_DEFAULTS or s[key] != STATEMENT_DEFAULTS[key] for key in extra):
            return False
        if set(e) - set(s) or not all(_same(value, s[key]) for key, value in e.items()):
            return False
    return True


def _matches(explained: dict[str, Any], event: monitoring.CommandStartedEvent, dbname: str) -> bool:
    sent = dict(event.command)
    name = next(iter(explained))
    if name != event.command_name or event.database_name != explained.get("$db", dbname):
        return False
    shown = {k: v for k, v in explained.items() if k not in ("$comment", "$db")}
    for key in set(sent) - set(shown):
        if key not in DRIVER_FIELDS or DRIVER_FIELDS[key] not in (None, sent[key]):
            return False
    if set(sent.get("readConcern", {})) - {"afterClusterTime"}:
        return False
    for key, value in shown.items():
        if key not in sent:
            return False
        if key in ("updates", "deletes"):
            if not _statements_match(value, sent[key]):
                return False
        elif not _same(value, sent[key]):
            return False
    return True


def _compare(
    explained: list[dict[str, Any]], sent: list[monitoring.CommandStartedEvent], dbname: str
) -> None:
    """Every sent command is the next one EXPLAIN lists; EXPLAIN may list more only where it
    says the command runs under a condition."""
    position = 0
    for command in explained:
        if position < len(sent) and _matches(command, sent[position], dbname):
            position += 1
        elif not str(command.get("$comment", "")).startswith("only when"):
            shown = sent[position].command if position < len(sent) else "nothing more"
            pytest.fail(f"EXPLAIN lists {command}\nbut the statement sent {shown}")
    assert position == len(sent), f"sent, not in EXPLAIN: {[e.command for e in sent[position:]]}"


def _run(db, sql: str) -> None:
    Executor(db).run(plan_statement(parse(sql)))


def _now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


STATEMENTS = {
    "create": ([], CREATE),
    "create with images": (
        [],
        "CREATE EVENT_SUBSCRIPTION s AS (watch_collections = 'orders',"
        " full_document_before_change = 'whenAvailable')",
    ),
    "alter": (
        [CREATE],
        "ALTER EVENT_SUBSCRIPTION s SET (batch_size = 50,"
        " full_document_before_change = 'whenAvailable', description = 'd')",
    ),
    "pause": ([CREATE], "PAUSE EVENT_SUBSCRIPTION s"),
    "resume": ([CREATE, "PAUSE EVENT_SUBSCRIPTION s"], "RESUME EVENT_SUBSCRIPTION s"),
    "reset to now": ([CREATE], "RESET EVENT_SUBSCRIPTION s TO NOW"),
    "reset to timestamp": ([CREATE], None),  # the time is taken when the test runs
    "replay": ([CREATE], "REPLAY DEAD_LETTER_EVENTS WHERE subscription_id = 's'"),
    "drop": ([CREATE], "DROP EVENT_SUBSCRIPTION s"),
}


@pytest.mark.parametrize("kind", list(STATEMENTS))
def test_explain_lists_exactly_the_commands_that_run(recorded, kind):
    db, recorder = recorded
    setup, sql = STATEMENTS[kind]
    if sql is None:
        sql = f"RESET EVENT_SUBSCRIPTION s TO TIMESTAMP '{_now_text()}'"
    for statement in setup:
        _run(db, statement)
    explained = plan_statement(parse("EXPLAIN " + sql)).commands()
    recorder.sent.clear()
    _run(db, sql)
    sent = [e for e in recorder.sent if e.command_name not in BOOKKEEPING]
    assert sent, "the statement sent nothing"
    _compare(explained, sent, db.name)
