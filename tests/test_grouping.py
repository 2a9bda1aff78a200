"""GROUP BY's cheaper forms keep SQL's answers: keys without $ifNull (one key is the _id, several
an array: null and missing fall into one group either way) and SUM's NULL over no non-NULL value
told by a $max beside the $sum. (The SQLite differential test covers the same on random data.)
"""

from __future__ import annotations

from queryleaf.planner import plan_statement
from queryleaf.sql.parser import parse

ROWS = [
    {"_id": 1, "k": 1, "j": "a", "x": 2},
    {"_id": 2, "k": None, "j": "a", "x": None},
    {"_id": 3, "j": "a"},
    {"_id": 4, "k": 1.0, "x": "text"},
    {"_id": 5, "k": 1, "j": None, "x": 3.5},
    {"_id": 6, "k": "s", "x": "only text"},
    {"_id": 7, "k": [1, 2], "x": 1},
]


def _rows(ql, sql):
    return sorted((tuple(r.values()) for r in ql.execute(sql)), key=repr)


def test_group_keys_need_no_ifnull():
    one = plan_statement(parse("SELECT k, COUNT(*) FROM t GROUP BY k")).pipeline[0]["$group"]
    two = plan_statement(parse("SELECT k, j, COUNT(*) FROM t GROUP BY k, j")).pipeline[0]["$group"]
    assert one["_id"] == "$k" and two["_id"] == ["$k", "$j"]


def test_null_and_missing_keys_form_one_group(ql):
    ql.db.t.insert_many(ROWS)
    assert _rows(ql, "SELECT k, COUNT(*) AS n FROM t GROUP BY k") == sorted(
        [(None, 2), (1, 3), ("s", 1), ([1, 2], 1)], key=repr
    )
    assert _rows(ql, "SELECT k, j, COUNT(*) AS n FROM t GROUP BY k, j") == sorted(
        [(1, "a", 1), (None, "a", 2), (1, None, 2), ("s", None, 1), ([1, 2], None, 1)], key=repr
    )
    # the keys are read back from the group for HAVING and ORDER BY too
    assert [
        tuple(r.values())
        for r in ql.execute(
            "SELECT j, k, COUNT(*) AS n FROM t GROUP BY k, j HAVING j IS NOT NULL ORDER BY k"
        )
    ] == [("a", None, 2), ("a", 1, 1)]


def test_sum_is_null_only_without_a_non_null_value(ql):
    ql.db.t.insert_many(ROWS)
    # k NULL: x is NULL or missing -> NULL; k 's': only text -> 0 ($sum skips text, as before)
    assert _rows(ql, "SELECT k, SUM(x) AS s FROM t GROUP BY k") == sorted(
        [(None, None), (1, 5.5), ("s", 0), ([1, 2], 1)], key=repr
    )
    assert _rows(ql, "SELECT SUM(x) AS s FROM t WHERE x IS NULL") == [(None,)]
    assert _rows(ql, "SELECT SUM(x) AS s FROM t WHERE _id > 100") == [(None,)]
