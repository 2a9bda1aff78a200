"""Planner output for representative statements, checked against readable golden JSON files.

Set QUERYLEAF_UPDATE_GOLDEN=1 to rewrite the files after an intended change; review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from bson import json_util

from queryleaf import plan
from queryleaf.errors import ParameterError, PlanningError
from queryleaf.planner import plan_statement
from queryleaf.sql.parser import parse

GOLDEN = Path(__file__).parent / "golden" / "planner"

CASES = {
    "select_star": "SELECT * FROM orders",
    "select_find_filter_sort": "SELECT name, status FROM orders WHERE total > 100 AND status = "
    "'paid' ORDER BY total DESC LIMIT 10",
    "select_nested_path": "SELECT o.customer.name, o.items[0].price AS first_price FROM orders o "
    "WHERE o.customer.city = 'Oslo'",
    "three_valued_not": "SELECT id FROM t WHERE x <> 1 AND NOT (y = 2) AND z NOT IN (3, 4)",
    "is_null_and_like": "SELECT id FROM t WHERE a IS NULL OR b IS NOT NULL OR c LIKE 'ab%_'",
    "expr_filter": "SELECT id FROM t WHERE price * qty > 100",
    "count_variants": "SELECT COUNT(*), COUNT(x), COUNT(DISTINCT x), SUM(x) FROM t",
    "group_having": "SELECT status, COUNT(*) AS n, AVG(total) AS avg_total FROM orders "
    "GROUP BY status HAVING COUNT(*) > 1 ORDER BY n DESC",
    "group_by_ordinal_alias": "SELECT customer.city AS city, SUM(total) AS s FROM orders "
    "GROUP BY city ORDER BY 2 DESC",
    "distinct": "SELECT DISTINCT status FROM orders ORDER BY status",
    "join_count_prunes": "SELECT COUNT(*) AS n FROM orders o JOIN customers c "
    "ON o.customer_id = c._id WHERE c.tier = 'gold'",
    "order_nulls_last": "SELECT name FROM t ORDER BY score NULLS LAST, name DESC",
    "order_by_expression": "SELECT name FROM t ORDER BY LENGTH(name) DESC LIMIT 3 OFFSET 1",
    "case_concat": "SELECT CASE WHEN total > 100 THEN 'big' ELSE 'small' END AS size, "
    "name || '!' AS shout FROM orders",
    "no_from": "SELECT 1 + 2 AS three, NOW() AS now",
    "objectid_filter": "SELECT * FROM users WHERE _id = '507f1f77bcf86cd799439011'",
    "insert_values": "INSERT INTO users (name, address.city, tags) VALUES ('ann', 'Oslo', "
    "JSON_ARRAY('a', 'b')), ('bob', NULL, JSON_ARRAY())",
    "insert_document": "INSERT INTO users VALUES (JSON_OBJECT('name', 'cy', 'age', 3))",
    "insert_computed": "INSERT INTO events (kind, at) VALUES ('login', NOW())",
    "update_constant": "UPDATE users SET status = 'active', address.zip = NULL WHERE name = 'ann'",
    "update_pipeline": "UPDATE users SET visits = visits + 1, name = CONCAT(name, '!') "
    "WHERE age >= 18",
    "delete_filter": "DELETE FROM users WHERE status IN ('gone', 'banned')",
    "change_stream_events": "SELECT subscription_id, event_type, COUNT(*) AS n FROM "
    "CHANGE_STREAM_EVENTS() GROUP BY subscription_id, event_type",
    "change_stream_events_of_one_subscription": "SELECT e.event_type, e.last_error FROM "
    "CHANGE_STREAM_EVENTS() e WHERE e.subscription_id = 'audit' "
    "AND e.processing_status <> 'completed'",
    "seed_style_analytics": "SELECT subscription_id, "
    "COUNT(CASE WHEN processing_status = 'completed' THEN 1 END) AS done, "
    "ROUND(COUNT(CASE WHEN processing_status = 'completed' THEN 1 END) * 100.0 / COUNT(*), 2)"
    " AS success_rate, DATE_FORMAT(event_timestamp, '%Y-%m-%d %H:00:00') AS hour_bucket "
    "FROM CHANGE_STREAM_EVENTS() WHERE event_timestamp >= DATE_SUB(NOW(), INTERVAL 24 HOUR) "
    "GROUP BY subscription_id, DATE_FORMAT(event_timestamp, '%Y-%m-%d %H:00:00')",
}


def commands_of(sql: str, params=None) -> list:
    p = plan_statement(parse(sql), params)
    return json.loads(json_util.dumps(p.commands(), json_options=json_util.RELAXED_JSON_OPTIONS))


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_plan(name):
    sql = CASES[name]
    actual = {"sql": sql, "commands": commands_of(sql)}
    path = GOLDEN / f"{name}.json"
    if os.environ.get("QUERYLEAF_UPDATE_GOLDEN") or not path.exists():
        path.write_text(json.dumps(actual, indent=2) + "\n")
    assert json.loads(path.read_text()) == actual


def test_plain_field_filters_use_the_query_language():
    p = plan_statement(parse("SELECT * FROM t WHERE a = 1 AND b > 2"))
    assert isinstance(p, plan.Find)
    assert p.filter == {"a": 1, "b": {"$gt": 2}}


def test_not_equal_excludes_null_and_missing():
    p = plan_statement(parse("SELECT * FROM t WHERE a <> 1"))
    assert p.filter == {"a": {"$nin": [1, None]}}


def test_not_in_with_null_in_list_matches_nothing():
    p = plan_statement(parse("SELECT * FROM t WHERE a NOT IN (1, NULL)"))
    assert p.filter == {"$expr": False}


def test_having_is_never_dropped():
    p = plan_statement(parse("SELECT a, COUNT(*) FROM t GROUP BY a HAVING COUNT(*) > 2"))
    stages = [next(iter(s)) for s in p.pipeline]
    assert stages == ["$group", "$match", "$project"]


def test_aggregate_without_group_by_always_returns_a_row():
    p = plan_statement(parse("SELECT COUNT(*) FROM t"))
    assert "$facet" in p.pipeline[0]


def test_params_are_bound_as_values_not_text():
    p = plan_statement(parse("SELECT * FROM t WHERE name = :n"), {"n": "x' OR '1'='1"})
    assert p.filter == {"name": "x' OR '1'='1"}


def test_qmark_params():
    p = plan_statement(parse("SELECT * FROM t WHERE a = ? AND b = ?"), [1, "two"])
    assert p.filter == {"a": 1, "b": "two"}


@pytest.mark.parametrize(
    "sql,params,message",
    [
        ("SELECT * FROM t WHERE a = :x", {}, "no value for parameter :x"),
        ("SELECT * FROM t WHERE a = :x", {"x": 1, "y": 2}, ":y is not used"),
        ("SELECT * FROM t WHERE a = ?", [1, 2], "1 ? placeholder(s) but 2 value(s)"),
        ("SELECT * FROM t WHERE a = :x", {"x": object()}, "cannot convert object"),
    ],
)
def test_parameter_errors(sql, params, message):
    with pytest.raises(
        ParameterError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")
    ):
        plan_statement(parse(sql), params)


@pytest.mark.parametrize(
    "sql,message,column",
    [
        ("SELECT b FROM t GROUP BY a", "column b must appear in GROUP BY", 8),
        ("SELECT a FROM t WHERE COUNT(*) > 1", "not allowed in WHERE", 23),
        ("SELECT NOPE(a) FROM t", "unknown function NOPE", 8),
        ("SELECT LOWR(a) FROM t", "did you mean LOWER", 8),
        ("SELECT a FROM t ORDER BY 3", "ORDER BY position 3 is not in the select list", 26),
        ("SELECT a FROM t LIMIT -1", "LIMIT must be a non-negative integer", 23),
        ("SELECT DISTINCT a FROM t ORDER BY b", "must appear in the select list", 35),
        ("UPDATE t SET _id = 1", "_id cannot be changed", 14),
        ("UPDATE t SET a = 1, a = 2", "appears twice", 21),
        ("INSERT INTO t (a, b) VALUES (1)", "2 column(s) but a row has 1", 30),
        ("INSERT INTO t (a) VALUES (b)", "VALUES cannot refer to columns", 27),
        ("DELETE FROM __queryleaf_event_log", "system collection", 1),
        ("SELECT * FROM NOPE_EVENTS()", "unknown table function", 15),
        ("SELECT DATE_FORMAT(d, '%Q') FROM t", "specifier %Q is not supported", 23),
    ],
)
def test_planning_errors_name_the_construct_and_position(sql, message, column):
    with pytest.raises(PlanningError) as err:
        plan_statement(parse(sql))
    assert message in err.value.message
    assert err.value.position is not None and err.value.position.column == column


def test_update_or_delete_where_never_becomes_match_all():
    p = plan_statement(parse("DELETE FROM t WHERE LOWER(name) = 'x'"))
    assert p.filter and "$expr" in json.dumps(p.filter)
    with pytest.raises(PlanningError):
        plan_statement(parse("DELETE FROM t WHERE name LIKE other_column"))
