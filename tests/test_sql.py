"""Every statement kind executed against the embedded server, with SQL semantics checked."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from bson import ObjectId

from queryleaf import ExecutionError, PlanningError, ScriptError


@pytest.fixture()
def people(ql):
    ql.db.people.insert_many(
        [
            {
                "_id": 1,
                "name": "ann",
                "age": 30,
                "city": "Oslo",
                "tags": ["a", "b"],
                "address": {"zip": "0150"},
            },
            {"_id": 2, "name": "bob", "age": None, "city": "Rome", "tags": []},
            {"_id": 3, "name": "cy", "age": 25, "city": "Oslo"},
            {"_id": 4, "name": "dee", "age": 41},
            {"_id": 5, "name": "Eve", "city": None},
        ]
    )
    return ql


def names(result, column="name"):
    return sorted(r[column] for r in result)


def test_select_star_fills_missing_columns_with_null(people):
    r = people.execute("SELECT * FROM people ORDER BY _id")
    assert r.columns[0] == "_id" and set(r.columns) >= {"name", "age", "city", "tags"}
    assert r.rows[3]["city"] is None and r.rows[3]["tags"] is None
    assert r.rowcount == 5


def test_missing_and_null_are_both_null(people):
    r = people.execute("SELECT name, age FROM people WHERE age IS NULL")
    assert names(r.rows) == ["Eve", "bob"]
    assert all(row["age"] is None for row in r.rows)


def test_three_valued_logic_never_matches_null(people):
    assert names(people.execute("SELECT name FROM people WHERE age <> 30")) == ["cy", "dee"]
    assert names(people.execute("SELECT name FROM people WHERE NOT (age = 30)")) == ["cy", "dee"]
    assert names(people.execute("SELECT name FROM people WHERE age NOT IN (30, 41)")) == ["cy"]
    assert names(people.execute("SELECT name FROM people WHERE age NOT IN (30, NULL)")) == []
    assert names(
        people.execute("SELECT name FROM people WHERE NOT (age > 26 OR city = 'Rome')")
    ) == ["cy"]


def test_null_arithmetic_and_computed_filters(people):
    r = people.execute("SELECT name, age * 2 AS d FROM people WHERE age * 2 > 50 ORDER BY d")
    assert [(x["name"], x["d"]) for x in r] == [("ann", 60), ("dee", 82)]
    r = people.execute("SELECT name, age + NULL AS n, age / 0 AS z FROM people WHERE _id = 1")
    assert r.rows == [{"name": "ann", "n": None, "z": None}]


def test_nested_paths_and_array_indexes(people):
    r = people.execute(
        "SELECT p.name, p.address.zip AS zip, p.tags[1] AS second FROM people p "
        "WHERE p.address.zip = '0150'"
    )
    assert r.rows == [{"name": "ann", "zip": "0150", "second": "b"}]


def test_aggregates_ignore_null_and_count_col_counts_non_null(people):
    r = people.execute(
        "SELECT COUNT(*) AS n, COUNT(age) AS with_age, SUM(age) AS s, "
        "AVG(age) AS a, MIN(age) AS lo, MAX(name) AS hi, "
        "COUNT(DISTINCT city) AS cities FROM people"
    )
    assert r.rows == [
        {"n": 5, "with_age": 3, "s": 96, "a": 32.0, "lo": 25, "hi": "dee", "cities": 2}
    ]


def test_aggregate_over_no_rows_returns_one_row(people):
    r = people.execute(
        "SELECT COUNT(*) AS n, COUNT(age) AS c, SUM(age) AS s, AVG(age) AS a, "
        "MAX(age) AS m FROM people WHERE age > 100"
    )
    assert r.rows == [{"n": 0, "c": 0, "s": None, "a": None, "m": None}]
    r = people.execute("SELECT city, COUNT(*) AS n FROM people WHERE age > 100 GROUP BY city")
    assert r.rows == []


def test_group_by_merges_null_and_missing_and_honours_having(people):
    r = people.execute("SELECT city, COUNT(*) AS n FROM people GROUP BY city ORDER BY city")
    assert r.rows == [{"city": None, "n": 2}, {"city": "Oslo", "n": 2}, {"city": "Rome", "n": 1}]
    r = people.execute(
        "SELECT city, COUNT(*) AS n FROM people GROUP BY city HAVING COUNT(*) > 1 ORDER BY city"
    )
    assert r.rows == [{"city": None, "n": 2}, {"city": "Oslo", "n": 2}]


def test_group_by_ordinal_and_alias_and_expression(people):
    r = people.execute(
        "SELECT UPPER(city) AS c, COUNT(*) AS n FROM people GROUP BY c ORDER BY 2 DESC, 1"
    )
    assert r.rows[0] == {"c": None, "n": 2}
    assert {row["c"] for row in r} == {None, "OSLO", "ROME"}


def test_distinct_treats_null_and_missing_as_one(people):
    r = people.execute("SELECT DISTINCT city FROM people ORDER BY city")
    assert [x["city"] for x in r] == [None, "Oslo", "Rome"]


def test_order_by_nulls_and_limit_offset(people):
    r = people.execute("SELECT name FROM people ORDER BY age NULLS LAST, name LIMIT 3")
    assert [x["name"] for x in r] == ["cy", "ann", "dee"]
    r = people.execute("SELECT name FROM people ORDER BY age DESC NULLS FIRST, name")
    assert [x["name"] for x in r] == ["Eve", "bob", "dee", "ann", "cy"]
    r = people.execute("SELECT name FROM people ORDER BY _id LIMIT 2 OFFSET 3")
    assert [x["name"] for x in r] == ["dee", "Eve"]
    assert people.execute("SELECT name FROM people LIMIT 0").rows == []


def test_like_is_case_sensitive_and_ilike_is_not(people):
    assert names(people.execute("SELECT name FROM people WHERE name LIKE 'e%'")) == []
    assert names(people.execute("SELECT name FROM people WHERE name ILIKE 'e%'")) == ["Eve"]
    assert names(people.execute("SELECT name FROM people WHERE name LIKE '_o_'")) == ["bob"]
    assert names(people.execute("SELECT name FROM people WHERE name NOT LIKE '%e%'")) == [
        "ann",
        "bob",
        "cy",
    ]


def test_case_coalesce_concat(people):
    r = people.execute(
        "SELECT name, CASE WHEN age >= 30 THEN 'senior' WHEN age < 30 THEN "
        "'junior' ELSE 'unknown' END AS band, COALESCE(city, 'nowhere') AS c, "
        "name || '@' || city AS tag FROM people ORDER BY _id"
    )
    assert [(x["band"], x["c"], x["tag"]) for x in r] == [
        ("senior", "Oslo", "ann@Oslo"),
        ("unknown", "Rome", "bob@Rome"),
        ("junior", "Oslo", "cy@Oslo"),
        ("senior", "nowhere", None),
        ("unknown", "nowhere", None),
    ]


def test_parameters_named_and_positional(people):
    r = people.execute(
        "SELECT name FROM people WHERE city = :c AND age >= :a", {"c": "Oslo", "a": 26}
    )
    assert names(r) == ["ann"]
    r = people.execute("SELECT name FROM people WHERE name IN (?, ?)", ["bob", "x' OR 1=1 --"])
    assert names(r) == ["bob"]


def test_objectid_string_matches_both_forms(ql):
    oid = ObjectId()
    ql.db.things.insert_many([{"_id": oid, "n": 1}, {"_id": str(ObjectId()), "n": 2}])
    r = ql.execute(f"SELECT n FROM things WHERE _id = '{oid}'")
    assert r.rows == [{"n": 1}]
    r = ql.execute("SELECT n FROM things WHERE _id = OBJECTID(:h)", {"h": str(oid)})
    assert r.rows == [{"n": 1}]


def test_insert_values_nested_and_row_count(ql):
    r = ql.execute(
        "INSERT INTO users (name, address.city, tags, meta) VALUES "
        "('ann', 'Oslo', JSON_ARRAY('a', 'b'), JSON_OBJECT('vip', TRUE)), "
        "('bob', NULL, JSON_ARRAY(), NULL)"
    )
    assert r.rowcount == 2
    docs = list(ql.db.users.find({}, {"_id": 0}).sort("name"))
    assert docs == [
        {"name": "ann", "address": {"city": "Oslo"}, "tags": ["a", "b"], "meta": {"vip": True}},
        {"name": "bob", "address": {"city": None}, "tags": [], "meta": None},
    ]


def test_insert_computed_values_use_server_time(ql):
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    ql.execute("INSERT INTO log (kind, at, n) VALUES ('x', NOW(), 1 + 2)")
    doc = ql.db.log.find_one({}, {"_id": 0})
    assert doc["kind"] == "x" and doc["n"] == 3 and doc["at"] >= before


def test_insert_params_convert_to_bson(ql):
    when = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
    ql.execute(
        "INSERT INTO t (d, price, who) VALUES (:d, :p, :w)",
        {"d": when, "p": Decimal("9.99"), "w": {"id": 7, "tags": ["x"]}},
    )
    doc = ql.db.t.find_one({}, {"_id": 0})
    assert (
        doc["d"] == when and str(doc["price"]) == "9.99" and doc["who"] == {"id": 7, "tags": ["x"]}
    )


def test_insert_select(people):
    r = people.execute(
        "INSERT INTO oslo (who, years) SELECT name, age FROM people WHERE city = 'Oslo'"
    )
    assert r.rowcount == 2
    assert sorted(d["who"] for d in people.db.oslo.find()) == ["ann", "cy"]


def test_update_constant_and_pipeline(people):
    r = people.execute(
        "UPDATE people SET age = age + 1, name = CONCAT(name, '!'), "
        "address.zip = NULL WHERE city = 'Oslo'"
    )
    assert r.rowcount == 2
    r = people.execute("SELECT name, age, address FROM people WHERE city = 'Oslo' ORDER BY _id")
    assert r.rows == [
        {"name": "ann!", "age": 31, "address": {"zip": None}},
        {"name": "cy!", "age": 26, "address": {"zip": None}},
    ]
    r = people.execute("UPDATE people SET city = 'Paris' WHERE age IS NULL")
    assert r.rowcount == 2


def test_update_swap_sees_old_values(ql):
    ql.db.pair.insert_one({"a": 1, "b": 2})
    ql.execute("UPDATE pair SET a = b, b = a")
    assert ql.db.pair.find_one({}, {"_id": 0}) == {"a": 2, "b": 1}


def test_delete_with_computed_where_and_row_count(people):
    r = people.execute("DELETE FROM people WHERE LOWER(name) = 'eve'")
    assert r.rowcount == 1
    assert people.db.people.count_documents({}) == 4
    with pytest.raises(PlanningError):
        people.execute("DELETE FROM people WHERE name LIKE city")
    assert people.db.people.count_documents({}) == 4


def test_explain_shows_commands_without_running_them(people):
    r = people.explain("DELETE FROM people WHERE age > 1")
    assert r.rows[0]["mongosh"].startswith("db.people.deleteMany(")
    assert people.db.people.count_documents({}) == 5
    r = people.execute("EXPLAIN SELECT city, COUNT(*) FROM people GROUP BY city")
    assert "db.people.aggregate(" in r.rows[0]["mongosh"] and "$group" in r.rows[0]["json"]


def test_equality_filter_on_indexed_field_uses_the_index(people):
    people.db.people.create_index("name")
    p = people.explain("SELECT * FROM people WHERE name = 'ann'").commands[0]
    plan = people.db.command("explain", p, verbosity="queryPlanner")
    assert "IXSCAN" in str(plan["queryPlanner"]["winningPlan"])


def test_views(people):
    people.execute("CREATE VIEW oslo_people AS SELECT name, age FROM people WHERE city = 'Oslo'")
    assert names(people.execute("SELECT name FROM oslo_people")) == ["ann", "cy"]
    people.execute("CREATE OR REPLACE VIEW oslo_people AS SELECT name FROM people WHERE age > 40")
    assert names(people.execute("SELECT name FROM oslo_people")) == ["dee"]
    people.execute("DROP VIEW oslo_people")
    people.execute("DROP VIEW IF EXISTS oslo_people")
    with pytest.raises(ExecutionError, match="not a view"):
        people.execute("DROP VIEW people")
    with pytest.raises(ExecutionError, match="not a view"):
        people.execute("CREATE OR REPLACE VIEW people AS SELECT name FROM people")
    assert people.db.people.count_documents({}) == 5


def test_script_runs_in_order_and_stops_at_first_error(ql):
    with pytest.raises(ScriptError) as err:
        ql.execute_script("""
            INSERT INTO s (a) VALUES (1);
            -- a comment
            INSERT INTO s (a) VALUES (2);
            SELECT nope(a) FROM s;
            INSERT INTO s (a) VALUES (3);
        """)
    assert err.value.index == 2
    assert err.value.position.line == 5
    assert sorted(d["a"] for d in ql.db.s.find()) == [1, 2]
    results = ql.execute_script("SELECT COUNT(*) AS n FROM s; /* two */ SELECT MAX(a) AS m FROM s;")
    assert [r.rows for r in results] == [[{"n": 2}], [{"m": 2}]]


def test_server_errors_keep_code_and_message(ql):
    ql.db.u.create_index("k", unique=True)
    ql.execute("INSERT INTO u (k) VALUES (1)")
    with pytest.raises(ExecutionError) as err:
        ql.execute("INSERT INTO u (k) VALUES (2), (1)")
    assert err.value.code == 11000 and err.value.message.endswith(
        "row 1 was inserted, row 2 was not"
    )


def test_system_collections_are_read_only_through_sql(ql):
    with pytest.raises(PlanningError, match="system collection"):
        ql.execute("UPDATE __queryleaf_event_log SET x = 1")
    with pytest.raises(PlanningError, match="table function"):
        ql.execute("SELECT * FROM __queryleaf_event_log")


def test_date_functions(ql):
    ql.db.ev.insert_one(
        {
            "at": dt.datetime(2024, 3, 5, 14, 7, 9, tzinfo=dt.UTC),
            "end": dt.datetime(2024, 5, 4, 14, 7, 9, tzinfo=dt.UTC),
        }
    )
    r = ql.execute(
        "SELECT DATE_FORMAT(at, '%Y-%m-%d %H:00:00') AS h, YEAR(at) AS y, "
        "EXTRACT(MONTH FROM at) AS m, TIMESTAMPDIFF(MONTH, at, end) AS months, "
        "TIMESTAMPDIFF(HOUR, at, end) AS hours, DATEDIFF(end, at) AS days, "
        "DATE_ADD(at, INTERVAL 1 DAY) AS next_day, at - INTERVAL 7 MINUTE AS before "
        "FROM ev"
    )
    row = r.rows[0]
    assert row["h"] == "2024-03-05 14:00:00" and row["y"] == 2024 and row["m"] == 3
    assert row["months"] == 1 and row["hours"] == 1440 and row["days"] == 60
    assert row["next_day"].day == 6 and row["before"].minute == 0


def test_round_half_away_from_zero_and_cast(ql):
    r = ql.execute(
        "SELECT ROUND(2.5) AS a, ROUND(-2.5) AS b, ROUND(1.2345, 2) AS c, "
        "CAST('12' AS INT) AS i, CAST(3.14159 AS DECIMAL(10,2)) AS d, "
        "CAST(7 AS VARCHAR) AS s"
    )
    row = r.rows[0]
    assert (row["a"], row["b"], row["c"], row["i"], row["s"]) == (3, -3, 1.23, 12, "7")
    assert str(row["d"]) == "3.14"


def test_standard_call_forms_and_bare_current_timestamp(people):
    r = people.execute(
        "SELECT SUBSTRING(name FROM 2 FOR 1) AS s, TRIM(LEADING 'a' FROM name) AS t,"
        " CURRENT_TIMESTAMP IS NOT NULL AS now_known FROM people WHERE _id = 1"
    )
    assert r.rows == [{"s": "n", "t": "nn", "now_known": True}]


def test_rows_stream_once_and_rows_keeps_them(ql):
    ql.db.big.insert_many([{"i": i} for i in range(250)])
    r = ql.execute("SELECT i FROM big ORDER BY i")
    assert sum(1 for _ in r) == 250 and r.rowcount == 250
    with pytest.raises(Exception, match="already streamed"):
        list(r)
    r = ql.execute("SELECT * FROM big WHERE i < 3 ORDER BY i")
    assert r.columns == ["_id", "i"] and [row["i"] for row in r] == [0, 1, 2]
    assert [row["i"] for row in r] == [0, 1, 2]  # materialised by .columns: re-iterable


def test_repeat_and_space(ql):
    ql.db.t.insert_many([{"_id": 1, "s": "ab", "n": 3}, {"_id": 2, "s": "x", "n": 0}, {"_id": 3}])
    rows = ql.execute(
        "SELECT _id, REPEAT(s, n) AS r, SPACE(n) AS sp, CONCAT('[', SPACE(2), ']') AS b "
        "FROM t ORDER BY _id"
    ).rows
    assert rows == [
        {"_id": 1, "r": "ababab", "sp": "   ", "b": "[  ]"},
        {"_id": 2, "r": "", "sp": "", "b": "[  ]"},
        {"_id": 3, "r": None, "sp": None, "b": "[  ]"},
    ]
