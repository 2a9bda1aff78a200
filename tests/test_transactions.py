"""Transactions (BEGIN / COMMIT / ROLLBACK, ``with ql.transaction()``) and what a write that
fails partway says it applied, against the embedded server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

import queryleaf
from queryleaf.errors import (
    ExecutionError,
    PlanningError,
    QueryLeafError,
    ScriptError,
    TransactionError,
)


@pytest.fixture()
def other(server, dbname):
    """A second connection to the same database: sees only what was committed."""
    conn = queryleaf.connect(server.uri, database=dbname)
    yield conn
    conn.close()


def ids(ql, table: str = "t") -> list:
    """The rows as a statement of ``ql`` sees them (inside its transaction, if one is open)."""
    return [r["_id"] for r in ql.execute(f"SELECT _id FROM {table} ORDER BY _id").rows]


def stored(conn, table: str = "t") -> list:
    """The committed rows (read outside any transaction)."""
    return sorted(d["_id"] for d in conn.db[table].find())


@contextmanager
def failing(ql, command: str, code: int, labels: tuple[str, ...] = ()) -> Iterator[None]:
    """The server fails the next ``command`` with ``code`` (MongoDB's failCommand failpoint)."""
    ql.client.admin.command(
        "configureFailPoint",
        "failCommand",
        mode={"times": 1},
        data={"failCommands": [command], "errorCode": code, "errorLabels": list(labels)},
    )
    try:
        yield
    finally:
        ql.client.admin.command("configureFailPoint", "failCommand", mode="off")


# ---------------------------------------------------------------- commit and rollback


def test_commit_makes_the_writes_visible_together(ql, other):
    ql.execute("INSERT INTO t (_id) VALUES (1)")
    assert ql.execute("BEGIN").message == "BEGIN"
    assert ql.transaction_status == "open"
    ql.execute("INSERT INTO t (_id) VALUES (2), (3)")
    ql.execute("UPDATE t SET v = 'x' WHERE _id = 1")
    ql.execute("DELETE FROM t WHERE _id = 3")
    assert ids(ql) == [1, 2]  # the transaction reads its own writes
    assert ql.execute("SELECT v FROM t WHERE _id = 1").scalar() == "x"
    assert stored(other) == [1]  # nobody else sees them yet
    assert other.execute("SELECT v FROM t WHERE _id = 1").scalar() is None
    assert ql.execute("COMMIT WORK").message == "COMMIT"
    assert ql.transaction_status == "idle"
    assert stored(other) == [1, 2]
    assert other.execute("SELECT v FROM t WHERE _id = 1").scalar() == "x"


def test_rollback_leaves_nothing(ql, other):
    ql.execute("INSERT INTO t (_id, v) VALUES (1, 'kept')")
    ql.execute("START TRANSACTION")
    ql.execute("INSERT INTO t (_id) VALUES (2)")
    ql.execute("UPDATE t SET v = 'changed'")
    ql.execute("DELETE FROM t WHERE _id = 1")
    assert ids(ql) == [2]
    assert ql.execute("ROLLBACK").message == "ROLLBACK"
    assert ids(ql) == [1] == stored(other)
    assert ql.execute("SELECT v FROM t").scalar() == "kept"


def test_a_script_with_begin_and_rollback(ql):
    results = ql.execute_script(
        "INSERT INTO t (_id) VALUES (1);\n"
        "BEGIN;\n"
        "INSERT INTO t (_id) VALUES (2);\n"
        "SELECT COUNT(*) AS n FROM t;\n"
        "ROLLBACK;\n"
        "SELECT COUNT(*) AS n FROM t;\n"
    )
    assert [r.message for r in results] == ["INSERT 1", "BEGIN", "INSERT 1", None, "ROLLBACK", None]
    assert results[3].scalar() == 2 and results[5].scalar() == 1


def test_a_table_created_inside_the_transaction_can_be_read_in_it(ql, other):
    ql.execute("BEGIN")
    ql.execute("INSERT INTO fresh (a) VALUES (1)")
    assert ql.execute("SELECT a FROM fresh").rows == [{"a": 1}]
    ql.execute("INSERT INTO fresh2 (a) SELECT a + 1 FROM fresh")
    assert ql.execute("SELECT a FROM fresh2").rows == [{"a": 2}]
    ql.execute("COMMIT")
    assert other.execute("SELECT a FROM fresh2").rows == [{"a": 2}]


def test_rows_of_a_query_are_read_before_the_transaction_ends(ql):
    ql.db.t.insert_many([{"_id": i} for i in range(2500)])  # several cursor batches
    ql.execute("BEGIN")
    result = ql.execute("SELECT _id FROM t")
    ql.execute("COMMIT")
    assert len(list(result)) == 2500


def test_parameters_and_explain_inside_a_transaction(ql):
    ql.execute("BEGIN")
    ql.execute("INSERT INTO t (_id, v) VALUES (:id, :v)", {"id": 1, "v": "a"})
    assert ql.execute("SELECT v FROM t WHERE _id = ?", [1]).scalar() == "a"
    explained = ql.execute("EXPLAIN CREATE VIEW w AS SELECT v FROM t")  # runs nothing
    assert explained.rows[0]["mongosh"].startswith("db.createView('w', 't'")
    ql.execute("COMMIT")
    assert ql.execute("SELECT v FROM t").scalar() == "a"


def test_explain_shows_the_session_commands(ql):
    assert ql.execute("EXPLAIN BEGIN").rows[0]["mongosh"] == (
        "session.startTransaction({\n  readConcern: { level: 'snapshot' },\n"
        "  writeConcern: { w: 'majority' }\n})"
    )
    assert ql.execute("EXPLAIN COMMIT").rows[0]["mongosh"] == "session.commitTransaction()"
    assert ql.execute("EXPLAIN ROLLBACK").rows[0]["mongosh"] == "session.abortTransaction()"
    assert ql.transaction_status == "idle"


def test_reads_see_one_snapshot(ql, other):
    ql.execute("INSERT INTO t (_id) VALUES (1)")
    ql.execute("BEGIN")
    assert ids(ql) == [1]
    other.execute("INSERT INTO t (_id) VALUES (2)")  # committed after the snapshot was taken
    assert ids(ql) == [1]
    ql.execute("COMMIT")
    assert ids(ql) == [1, 2]


def test_close_rolls_back_an_open_transaction(server, dbname, ql):
    conn = queryleaf.connect(server.uri, database=dbname)
    conn.execute("BEGIN")
    conn.execute("INSERT INTO t (_id) VALUES (1)")
    conn.close()
    assert ql.db.t.count_documents({}) == 0


# ---------------------------------------------------------------- misuse


def test_begin_inside_a_transaction_is_an_error_that_keeps_it_open(ql, other):
    ql.execute("BEGIN")
    ql.execute("INSERT INTO t (_id) VALUES (1)")
    with pytest.raises(TransactionError, match="already open, and transactions do not nest"):
        ql.execute("BEGIN")
    assert ql.transaction_status == "open"
    ql.execute("COMMIT")
    assert stored(other) == [1]


@pytest.mark.parametrize("statement", ["COMMIT", "ROLLBACK"])
def test_commit_or_rollback_without_a_transaction(ql, statement):
    with pytest.raises(TransactionError) as caught:
        ql.execute(statement)
    assert caught.value.message.startswith(f"{statement}: no transaction is open")
    assert (caught.value.position.line, caught.value.position.column) == (1, 1)


# ---------------------------------------------------------------- statements refused inside one


REFUSED = [
    ("CREATE VIEW v AS SELECT _id FROM t", "CREATE VIEW cannot run inside a transaction", 1),
    ("DROP VIEW IF EXISTS v", "DROP VIEW cannot run inside a transaction", 1),
    (
        "CREATE EVENT_SUBSCRIPTION s AS (watch_collections = JSON_ARRAY('t'), "
        "deliver_to = 'collection:out')",
        "CREATE EVENT_SUBSCRIPTION cannot run inside",
        1,
    ),
    ("PAUSE EVENT_SUBSCRIPTION s", "PAUSE EVENT_SUBSCRIPTION cannot run inside", 1),
    ("SHOW EVENT_SUBSCRIPTIONS", "SHOW EVENT_SUBSCRIPTIONS cannot run inside", 1),
    ("REPLAY DEAD_LETTER_EVENTS", "REPLAY DEAD_LETTER_EVENTS cannot run inside", 1),
    (
        "SELECT COUNT(*) FROM t, CHANGE_STREAM_EVENTS() e",
        "CHANGE_STREAM_EVENTS() cannot be read inside a transaction",
        25,
    ),
]


@pytest.mark.parametrize(("sql", "message", "column"), REFUSED, ids=[r[0][:40] for r in REFUSED])
def test_statements_that_cannot_run_inside_a_transaction(ql, other, sql, message, column):
    ql.execute("INSERT INTO t (_id) VALUES (1)")
    ql.execute("BEGIN")
    ql.execute("INSERT INTO t (_id) VALUES (2)")
    with pytest.raises(ScriptError) as caught:
        ql.execute_script(f"SELECT 1 AS x;\n{sql}")
    cause = caught.value.cause
    assert isinstance(cause, PlanningError)
    assert cause.message.startswith(message), cause.message
    assert "the transaction is aborted" in cause.message
    assert (cause.position.line, cause.position.column) == (2, column)
    assert ql.transaction_status == "aborted"
    ql.execute("ROLLBACK")
    assert stored(other) == [1]
    assert other.db.list_collection_names(filter={"name": "v"}) == []
    assert other.db["__queryleaf_subscriptions"].count_documents({}) == 0


def test_an_error_aborts_the_transaction_until_rollback(ql, other):
    ql.execute("INSERT INTO t (_id) VALUES (1)")
    ql.execute("BEGIN")
    ql.execute("INSERT INTO t (_id) VALUES (2)")
    with pytest.raises(ExecutionError) as caught:
        ql.execute("INSERT INTO t (_id) VALUES (1)")
    assert "duplicate key" in caught.value.message
    assert caught.value.message.endswith(
        "the transaction is aborted and nothing it changed will be committed: ROLLBACK to end it"
    )
    assert ql.transaction_status == "aborted"
    for statement in ("SELECT _id FROM t", "INSERT INTO t (_id) VALUES (9)"):
        with pytest.raises(
            TransactionError,
            match="current transaction is aborted, statements are refused until ROLLBACK",
        ) as refused:
            ql.execute(statement)
        assert "duplicate key" in refused.value.message  # names what aborted it
    ql.execute("ROLLBACK")
    assert ids(ql) == [1] == stored(other)


def test_a_planning_error_aborts_the_transaction_too(ql):
    ql.db.t.insert_one({"_id": 1})
    ql.execute("BEGIN")
    with pytest.raises(PlanningError, match="unknown function NOPE"):
        ql.execute("SELECT NOPE(_id) FROM t")
    assert ql.transaction_status == "aborted"
    with pytest.raises(
        TransactionError,
        match="aborted by an earlier error .*: it is rolled back, nothing was committed",
    ):
        ql.execute("COMMIT")
    assert ql.transaction_status == "idle"


def test_a_script_that_fails_inside_its_transaction_commits_nothing(ql, other):
    with pytest.raises(ScriptError) as caught:
        ql.execute_script(
            "BEGIN;\nINSERT INTO t (_id) VALUES (1), (2);\nINSERT INTO t (_id) VALUES (2);\nCOMMIT;"
        )
    assert caught.value.index == 2
    assert ql.transaction_status == "aborted"
    ql.execute("ROLLBACK")
    assert stored(other) == []


def test_a_transient_error_says_the_transaction_may_be_run_again(ql):
    ql.db.t.insert_one({"_id": 1})
    ql.execute("BEGIN")
    with failing(ql, "update", 112, ("TransientTransactionError",)):
        with pytest.raises(ExecutionError) as caught:
            ql.execute("UPDATE t SET v = 1")
    assert caught.value.code == 112 and "TransientTransactionError" in caught.value.labels
    assert (
        "TransientTransactionError: running the whole transaction again may succeed"
        in caught.value.message
    )
    ql.execute("ROLLBACK")


def test_a_write_conflict_between_two_transactions(ql, other):
    ql.execute("INSERT INTO t (_id, v) VALUES (1, 0)")
    ql.execute("BEGIN")
    other.execute("BEGIN")
    ql.execute("UPDATE t SET v = 1 WHERE _id = 1")
    with pytest.raises(ExecutionError) as caught:
        other.execute("UPDATE t SET v = 2 WHERE _id = 1")
    assert caught.value.code_name == "WriteConflict"
    assert "TransientTransactionError" in caught.value.message
    ql.execute("COMMIT")
    other.execute("ROLLBACK")
    assert ql.execute("SELECT v FROM t").scalar() == 1


def test_a_failed_commit_says_nothing_was_committed(ql, other):
    ql.execute("BEGIN")
    ql.execute("INSERT INTO t (_id) VALUES (1)")
    with failing(ql, "commitTransaction", 251, ("TransientTransactionError",)):
        with pytest.raises(ExecutionError) as caught:
            ql.execute("COMMIT")
    assert caught.value.message.startswith("COMMIT failed (server error 251")
    assert "the transaction was rolled back, nothing it changed was committed" in str(caught.value)
    assert ql.transaction_status == "idle"
    assert stored(other) == []


# ---------------------------------------------------------------- with ql.transaction()


def test_with_transaction_commits_when_the_block_ends(ql, other):
    with ql.transaction():
        ql.execute("INSERT INTO t (_id) VALUES (1)")
        assert stored(other) == []
    assert ql.transaction_status == "idle"
    assert stored(other) == [1]


def test_with_transaction_rolls_back_when_the_block_raises(ql, other):
    with pytest.raises(RuntimeError, match="boom"):
        with ql.transaction():
            ql.execute("INSERT INTO t (_id) VALUES (1)")
            raise RuntimeError("boom")
    assert ql.transaction_status == "idle"
    assert stored(other) == []


def test_with_transaction_does_not_nest(ql, other):
    with pytest.raises(TransactionError, match="transactions do not nest"):
        with ql.transaction():
            ql.execute("INSERT INTO t (_id) VALUES (1)")
            with ql.transaction():
                pass
    assert stored(other) == []  # the outer block raised: rolled back
    ql.execute("BEGIN")
    with pytest.raises(TransactionError, match="already open"):
        with ql.transaction():
            pass
    ql.execute("ROLLBACK")


def test_sql_transaction_statements_are_refused_inside_the_block(ql, other):
    with ql.transaction():
        ql.execute("INSERT INTO t (_id) VALUES (1)")
        for statement in ("COMMIT", "ROLLBACK", "BEGIN"):
            with pytest.raises(
                TransactionError, match=f"{statement} inside a `with ql.transaction\\(\\)` block"
            ):
                ql.execute(statement)
        assert ql.transaction_status == "open"
    assert stored(other) == [1]


def test_with_transaction_whose_statement_failed_commits_nothing(ql, other):
    with pytest.raises(TransactionError, match="aborted by an earlier error"):
        with ql.transaction():
            ql.execute("INSERT INTO t (_id) VALUES (1)")
            with pytest.raises(QueryLeafError) as caught:
                ql.execute("INSERT INTO t (_id) VALUES (1)")
            assert "ROLLBACK to end it" not in caught.value.message  # the block ends it
    assert stored(other) == []


# ---------------------------------------------------------------- partial failure


def test_insert_says_which_rows_were_inserted(ql):
    ql.execute("INSERT INTO t (_id) VALUES (3)")
    with pytest.raises(ExecutionError) as caught:
        ql.execute("INSERT INTO t (_id, v) VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd'), (5, 'e')")
    message = caught.value.message
    assert message.startswith("INSERT failed at row 3 of 5 (E11000 duplicate key error")
    assert message.endswith("): rows 1-2 were inserted, rows 3-5 were not")
    assert caught.value.code == 11000
    assert ids(ql) == [1, 2, 3]


@pytest.mark.parametrize(
    ("values", "tail"),
    [
        ("(1), (2)", "): no row was inserted, rows 1-2 were not"),
        ("(2), (1)", "): row 1 was inserted, row 2 was not"),
        ("(1)", "): the row was not inserted"),
    ],
)
def test_insert_failure_at_the_edges(ql, values, tail):
    ql.execute("INSERT INTO t (_id) VALUES (1)")
    with pytest.raises(ExecutionError) as caught:
        ql.execute(f"INSERT INTO t (_id) VALUES {values}")
    assert caught.value.message.endswith(tail), caught.value.message


def test_insert_of_computed_rows_says_which_rows_were_inserted(ql):
    ql.execute("INSERT INTO t (_id) VALUES (2)")
    with pytest.raises(
        ExecutionError,
        match=r"^QL3002: INSERT failed at row 2 of 3 \(.*\): row 1 was "
        r"inserted, rows 2-3 were not$",
    ):
        ql.execute("INSERT INTO t (_id, at) VALUES (1, NOW()), (1 + 1, NOW()), (3, NOW())")
    assert ids(ql) == [1, 2]


def test_insert_inside_a_transaction_is_all_or_nothing(ql, other):
    ql.execute("INSERT INTO t (_id) VALUES (3)")
    ql.execute("BEGIN")
    with pytest.raises(ExecutionError) as caught:
        ql.execute("INSERT INTO t (_id) VALUES (1), (2), (3), (4)")
    assert caught.value.message.startswith("INSERT failed at row 3 of 4 (E11000")
    assert "were inserted" not in caught.value.message
    ql.execute("ROLLBACK")
    assert stored(other) == [3]


def test_update_that_fails_partway_says_rows_may_have_changed(ql):
    ql.db.t.create_index("k", unique=True)
    ql.db.t.insert_many([{"_id": i, "k": i} for i in range(1, 5)])
    with pytest.raises(ExecutionError) as caught:
        ql.execute("UPDATE t SET k = 9")
    message = caught.value.message
    assert message.startswith("UPDATE failed (server error 11000: ")
    assert message.endswith(
        "): some rows may already have been changed (MongoDB applies it row "
        "by row and does not report how many rows it applied before the "
        "error); run it inside a transaction (BEGIN ... COMMIT) to make it "
        "all-or-nothing"
    )
    assert ql.db.t.count_documents({"k": 9}) == 1  # indeed: one row was changed


def test_update_inside_a_transaction_is_all_or_nothing(ql):
    ql.db.t.create_index("k", unique=True)
    ql.db.t.insert_many([{"_id": i, "k": i} for i in range(1, 5)])
    ql.execute("BEGIN")
    with pytest.raises(ExecutionError) as caught:
        ql.execute("UPDATE t SET k = 9")
    assert "may already have been changed" not in caught.value.message
    ql.execute("ROLLBACK")
    assert ql.db.t.count_documents({"k": 9}) == 0


def test_delete_that_fails_says_rows_may_have_been_deleted(ql):
    ql.db.t.insert_many([{"_id": i} for i in range(3)])
    with failing(ql, "delete", 50, ()), pytest.raises(ExecutionError) as caught:
        ql.execute("DELETE FROM t WHERE _id > 0")
    assert caught.value.message.startswith("DELETE failed (server error 50")
    assert "some rows may already have been deleted" in caught.value.message


def test_update_with_a_subquery_that_fails_says_rows_may_have_changed(ql):
    ql.db.t.insert_many([{"_id": i} for i in range(3)])
    ql.db.u.insert_one({"_id": 1})
    with failing(ql, "update", 50, ()), pytest.raises(ExecutionError) as caught:
        ql.execute("UPDATE t SET v = 1 WHERE _id IN (SELECT _id FROM u)")
    assert "some rows may already have been changed" in caught.value.message
