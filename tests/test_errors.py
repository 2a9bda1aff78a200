"""Stable error codes: every error shows its code, the common errors have their own, and
docs/errors.md lists exactly the codes there are."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from bson import Timestamp
from pymongo.errors import OperationFailure

from queryleaf import (
    EngineError,
    ErrorCode,
    ExecutionError,
    ParameterError,
    PlanningError,
    QueryLeafError,
    ScriptError,
    SqlSyntaxError,
    SubscriptionError,
)
from queryleaf.errors import Position, ServerUnreachable
from queryleaf.events import failures
from queryleaf.planner import Catalog, plan_statement
from queryleaf.sql.parser import parse

DOC = Path(__file__).resolve().parent.parent / "docs" / "errors.md"

CLASS_DEFAULTS = {
    QueryLeafError: ErrorCode.API,
    SqlSyntaxError: ErrorCode.SYNTAX,
    PlanningError: ErrorCode.PLANNING,
    ExecutionError: ErrorCode.EXECUTION,
    SubscriptionError: ErrorCode.SUBSCRIPTION,
    ParameterError: ErrorCode.PARAMETER,
    EngineError: ErrorCode.ENGINE,
}


def _documented() -> dict[str, str]:
    """code → name, from the table of docs/errors.md."""
    rows = re.findall(r"^\| (QL\d{4}) \| (\w+) \|", DOC.read_text(encoding="utf-8"), re.M)
    return dict(rows)


def test_docs_list_every_code_and_only_those():
    assert _documented() == {code.value: code.name for code in ErrorCode}


def test_codes_are_unique_and_in_their_class_range():
    assert len({c.value for c in ErrorCode}) == len(ErrorCode)
    for cls, default in CLASS_DEFAULTS.items():
        assert cls.default_code == default
        assert default.value.endswith("000")
    for code in ErrorCode:
        assert re.fullmatch(r"QL\d{4}", code.value), code


def _error(
    sql: str, tables: frozenset[str] | None = None, params: dict | None = None
) -> QueryLeafError:
    with pytest.raises(QueryLeafError) as info:
        plan_statement(parse(sql), params, Catalog(tables))
    return info.value


@pytest.mark.parametrize(
    ("sql", "code", "text"),
    [
        ("SELECT FROM t", ErrorCode.UNEXPECTED_INPUT, "unexpected FROM"),
        ("SELECT a FROM t WHERE", ErrorCode.UNEXPECTED_INPUT, "unexpected end of input"),
        ("SELECT a # b FROM t", ErrorCode.UNEXPECTED_INPUT, "unexpected character"),
        ("SELECT 'abc FROM t", ErrorCode.SYNTAX, "unterminated string"),
        ("SELECT 99999999999999999999 AS x", ErrorCode.LIMIT_EXCEEDED, "out of range"),
        ("SELECT a FROM custmers", ErrorCode.UNKNOWN_TABLE, "unknown table custmers"),
        ("SELECT * FROM NOPE_EVENTS()", ErrorCode.UNKNOWN_TABLE, "unknown table function"),
        ("SELECT s.x FROM (SELECT a FROM t) s", ErrorCode.UNKNOWN_COLUMN, "has no column x"),
        ("SELECT x FROM a JOIN b ON a.k = b.k", ErrorCode.AMBIGUOUS_COLUMN, "ambiguous"),
        ("SELECT UPPR(a) FROM t", ErrorCode.UNKNOWN_FUNCTION, "unknown function UPPR"),
        ("SELECT a FROM t WHERE COUNT(*) > 1", ErrorCode.PLANNING, "not allowed in WHERE"),
        ("SELECT a FROM t WHERE a = :p", ErrorCode.PARAMETER, "no value for parameter :p"),
    ],
)
def test_each_error_has_its_code_first_in_str(sql, code, text):
    err = _error(sql, frozenset({"t", "a", "b"}), {} if ":" in sql else None)
    assert err.error_code == code
    assert text in err.message and not err.message.startswith("QL")
    assert str(err).startswith(f"{code}: ") and text in str(err).splitlines()[0]


def test_a_script_error_has_the_code_of_the_failing_statement(ql):
    ql.execute("INSERT INTO t (a) VALUES (1)")
    with pytest.raises(ScriptError) as info:
        ql.execute_script("SELECT 1 AS x; SELECT UPPR(a) FROM t")
    assert info.value.error_code == ErrorCode.UNKNOWN_FUNCTION
    assert str(info.value).startswith("QL2004: statement 2 failed: unknown function UPPR")


def test_server_errors_say_the_server_rejected_the_command(ql):
    ql.db.u.create_index("k", unique=True)
    ql.execute("INSERT INTO u (k) VALUES (1)")
    with pytest.raises(ExecutionError) as info:
        ql.execute("INSERT INTO u (k) VALUES (1)")
    assert info.value.error_code == ErrorCode.DUPLICATE_KEY and info.value.code == 11000
    assert str(info.value).startswith("QL3002: ")
    with pytest.raises(ExecutionError) as info:
        ql.execute("SELECT CAST(s AS INT) AS n FROM (SELECT 'abc' AS s) x")
    assert info.value.error_code == ErrorCode.SERVER_REJECTED and info.value.code is not None
    assert str(info.value).startswith("QL3001: ")


def test_execution_error_codes_follow_the_server_code():
    assert ExecutionError("x").error_code == ErrorCode.EXECUTION
    assert ExecutionError("x", 11001).error_code == ErrorCode.DUPLICATE_KEY
    assert ExecutionError("x", 241, "ConversionFailure").error_code == ErrorCode.SERVER_REJECTED
    lost = ServerUnreachable("cannot reach the MongoDB server", ConnectionError("down"))
    assert lost.error_code == ErrorCode.SERVER_UNREACHABLE and str(lost).startswith("QL3003: ")


def test_a_specific_code_overrides_the_class_default():
    err = PlanningError(
        "unknown table t", Position(1, 15), "SELECT * FROM t", error_code=ErrorCode.UNKNOWN_TABLE
    )
    assert (
        str(err)
        == "QL2001: unknown table t at line 1, column 15\nSELECT * FROM t\n" + " " * 14 + "^"
    )


def test_rows_streamed_twice(ql):
    ql.db.big.insert_many([{"i": i} for i in range(250)])  # more than one batch: streamed
    result = ql.execute("SELECT i FROM big")
    assert sum(1 for _ in result) == 250
    with pytest.raises(QueryLeafError) as info:
        list(result)
    assert info.value.error_code == ErrorCode.ROWS_ALREADY_STREAMED


def test_unknown_subscription(ql):
    with pytest.raises(SubscriptionError) as info:
        ql.execute("PAUSE EVENT_SUBSCRIPTION nope")
    assert info.value.error_code == ErrorCode.UNKNOWN_SUBSCRIPTION
    assert str(info.value).startswith("QL4001: no event subscription named 'nope'")


def test_failed_subscription_status_messages_start_with_the_code():
    lost = failures.HistoryLost("the start point is older than the oldest oplog entry")
    assert failures.failure_message("s", lost).startswith("QL4002: ")
    server_lost = OperationFailure("resume point lost", failures.HISTORY_LOST)
    assert failures.failure_message("s", server_lost).startswith("QL4002: ")
    ahead = failures.PositionAhead(Timestamp(200, 1), Timestamp(100, 1))
    assert failures.failure_message("s", ahead).startswith("QL4003: ")
    refused = OperationFailure("bad", 2, {"errmsg": "bad", "codeName": "BadValue"})
    assert failures.failure_message("s", refused).startswith("QL3001: bad (BadValue, code 2)")
    assert failures.failure_message("s", ValueError("boom")).startswith("QL4000: boom")
