"""Quoted identifiers are field names, never paths or operators: ``"a.b"`` is the field
literally called ``a.b``, ``"$comment"`` the field called ``$comment``; string literals and
parameters are values, whatever they contain."""

from __future__ import annotations

import pytest

DOCS = [
    {"_id": 1, "$comment": "x", "a.b": 5, "a": {"b": 7, "$c": 1}, "name": "$where", "$gt": 3},
    {"_id": 2, "$comment": "y", "a.b": 6, "a": {"b": 8, "$c": 2}, "name": "bob", "$gt": 1},
    {"_id": 3, "$comment": "x", "a.b": None, "name": "ann"},
]


@pytest.fixture()
def t(ql):
    ql.db.t.insert_many([dict(d) for d in DOCS])
    return ql


def ids(result) -> list:
    return [row["_id"] for row in result]


@pytest.mark.parametrize(
    "sql, expected",
    [
        ("SELECT _id FROM t WHERE \"$comment\" = 'x' ORDER BY _id", [1, 3]),
        ("SELECT _id FROM t WHERE `$comment` <> 'x'", [2]),
        ('SELECT _id FROM t WHERE "a.b" = 6', [2]),
        ("SELECT _id FROM t WHERE a.b = 7", [1]),
        ('SELECT _id FROM t WHERE a."$c" = 2', [2]),
        ('SELECT _id FROM t WHERE "$gt" > 2', [1]),
        ('SELECT _id FROM t WHERE "a.b" IS NULL', [3]),
        ('SELECT _id FROM t WHERE "$comment" IN (\'y\') OR "a.b" BETWEEN 5 AND 5', [1, 2]),
        ("SELECT _id FROM t WHERE \"$comment\" LIKE 'y%'", [2]),
        ("SELECT _id FROM t WHERE name = '$where'", [1]),
        ("SELECT _id FROM t WHERE name = '{\"$ne\": null}'", []),
    ],
)
def test_where_reads_quoted_names_as_fields(t, sql, expected):
    assert sorted(ids(t.execute(sql))) == expected


def test_select_group_and_order_by_quoted_names(t):
    rows = list(t.execute('SELECT _id, "$comment", "a.b", a.b, a."$c" FROM t ORDER BY "a.b" DESC'))
    assert rows[0] == {"_id": 2, "$comment": "y", "a.b": 6, "a.b_2": 8, "a.$c": 2}
    assert [r["_id"] for r in rows] == [2, 1, 3]
    grouped = list(
        t.execute(
            'SELECT "$comment", COUNT(*) AS n, SUM("$gt") AS s FROM t '
            'GROUP BY "$comment" ORDER BY "$comment"'
        )
    )
    assert grouped == [{"$comment": "x", "n": 2, "s": 3}, {"$comment": "y", "n": 1, "s": 1}]


def test_a_parameter_holding_an_operator_document_is_a_value(t):
    assert ids(t.execute('SELECT _id FROM t WHERE "$comment" = :p', {"p": {"$ne": None}})) == []
    assert ids(t.execute("SELECT _id FROM t WHERE name = :p", {"p": {"$ne": None}})) == []
    assert ids(t.execute('SELECT _id FROM t WHERE "$where" = :p', {"p": "true"})) == []
    assert ids(t.execute("SELECT _id FROM t WHERE name = :p", {"p": "$where"})) == [1]


def test_join_on_quoted_names(t):
    rows = t.execute(
        "SELECT x._id AS a, y._id AS b FROM t x JOIN t y "
        'ON x."$comment" = y."$comment" AND x._id < y._id'
    )
    assert [(r["a"], r["b"]) for r in rows] == [(1, 3)]


def test_delete_on_a_dollar_name_deletes_only_the_matching_rows(t):
    assert t.execute("DELETE FROM t WHERE \"$comment\" = 'x'").rowcount == 2
    assert [d["_id"] for d in t.db.t.find()] == [2]


def test_update_sets_and_reads_quoted_names(t):
    r = t.execute(
        'UPDATE t SET "$comment" = \'z\', "a.b" = "a.b" + 1, a."$c" = 9, '
        "\"$new\" = '$literal' WHERE _id = 1"
    )
    assert r.rowcount == 1
    doc = t.db.t.find_one({"_id": 1})
    assert doc["$comment"] == "z" and doc["a.b"] == 6 and doc["a"] == {"b": 7, "$c": 9}
    assert doc["$new"] == "$literal"
    assert t.db.t.find_one({"_id": 2})["$comment"] == "y"  # the others are untouched


@pytest.mark.parametrize("values", ["(10, 1, 2)", "(10, 1, 1 + 1)"])
def test_insert_into_quoted_names(t, values):
    t.execute(f'INSERT INTO t (_id, "$x", "p.q") VALUES {values}')
    assert t.db.t.find_one({"_id": 10}) == {"_id": 10, "$x": 1, "p.q": 2}


def test_insert_select_into_quoted_names(t):
    t.execute('INSERT INTO u (_id, "$x", "p.q") SELECT _id, "$comment", "a.b" FROM t WHERE _id = 2')
    assert t.db.u.find_one() == {"_id": 2, "$x": "y", "p.q": 6}


def test_subscription_filter_reads_a_quoted_name_as_a_field(ql):
    from queryleaf.events.planning import change_event_filter
    from queryleaf.planner.params import Bindings
    from queryleaf.sql.parser import parse

    stmt = parse('SELECT 1 FROM t WHERE full_document."$kind" = \'x\' AND "full_document".a = 1')
    match = change_event_filter(stmt.query.where, Bindings(stmt, {}))
    events = [
        {"_id": 1, "fullDocument": {"$kind": "x", "a": 1}},
        {"_id": 2, "fullDocument": {"$kind": "y", "a": 1}},
        {"_id": 3, "fullDocument": {"kind": "x", "a": 1}},
    ]
    ql.db.events.insert_many(events)
    assert [d["_id"] for d in ql.db.events.aggregate([{"$match": match}])] == [1]


def test_insert_select_star_stores_documents_as_they_are(t):
    t.execute("INSERT INTO copy SELECT * FROM t WHERE _id = 1")
    assert t.db.copy.find_one() == DOCS[0]  # "a.b" stays one field, not a.b nested
    t.execute("INSERT INTO pairs SELECT * FROM t x JOIN t y ON x._id = y._id WHERE x._id = 2")
    doc = t.db.pairs.find_one()
    assert doc["a.b"] == 6 and doc["a.b_2"] == 6 and doc["$comment_2"] == "y"


def test_group_by_a_quoted_name_puts_null_and_missing_in_one_group(ql):
    ql.db.g.insert_many([{"_id": 1}, {"_id": 2, "a.b": None}, {"_id": 3, "a.b": 1}])
    rows = ql.execute('SELECT "a.b" AS k, COUNT(*) AS n FROM g GROUP BY "a.b" ORDER BY k').rows
    assert rows == [{"k": None, "n": 2}, {"k": 1, "n": 1}]


def test_join_on_a_dotted_name_is_not_looked_up_as_a_path(ql):
    ql.db.j.insert_many([{"_id": 1}, {"_id": 2, "a.b": 0}])
    r = ql.execute('SELECT x._id AS l, y._id AS r FROM j x JOIN j y ON x."a.b" = y."a.b"')
    assert r.rows == [{"l": 2, "r": 2}]
