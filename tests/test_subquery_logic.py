"""IN / NOT IN / ANY / SOME / ALL over subqueries follow SQL's three-valued logic exactly.

Every operator and quantifier is checked against SQLite (the oracle of the differential tests)
over left values that are numbers, NULL and missing, and subqueries that are empty, hold
NULLs, hold duplicates or only NULL. SQLite has no ANY/ALL: it answers the standard's
definition written with EXISTS.
"""

from __future__ import annotations

import sqlite3

import pytest

LEFT = [1, None, 3, 5, "missing"]
SETS = {"b": [1, 2], "c": [1, None], "e": [], "f": [3, 3], "g": [None]}
OPS = ["=", "<>", "<", "<=", ">", ">="]


@pytest.fixture()
def both(ql):
    lite = sqlite3.connect(":memory:")
    lite.execute("CREATE TABLE a (_id, x)")
    lite.executemany(
        "INSERT INTO a VALUES (?, ?)",
        [(i, None if v == "missing" else v) for i, v in enumerate(LEFT)],
    )
    ql.db.a.insert_many(
        [{"_id": i} if v == "missing" else {"_id": i, "x": v} for i, v in enumerate(LEFT)]
    )
    for name, values in SETS.items():
        lite.execute(f"CREATE TABLE {name} (y)")
        lite.executemany(f"INSERT INTO {name} VALUES (?)", [(v,) for v in values])
        if values:
            ql.db[name].insert_many([{"y": v} for v in values])
        else:
            ql.db.create_collection(name)
    return ql, lite


def _standard(op: str, quantifier: str, table: str) -> str:
    """``x op ANY|ALL (SELECT y FROM table)`` as the standard defines it, for SQLite."""
    empty, decisive = ("0", f"x {op} y") if quantifier == "ANY" else ("1", f"NOT (x {op} y)")
    other = "0" if quantifier == "ANY" else "1"
    return (
        f"CASE WHEN NOT EXISTS (SELECT 1 FROM {table}) THEN {empty} "
        f"WHEN EXISTS (SELECT 1 FROM {table} WHERE {decisive}) THEN {1 - int(empty)} "
        f"WHEN EXISTS (SELECT 1 FROM {table} WHERE (x {op} y) IS NULL) THEN NULL "
        f"ELSE {other} END"
    )


def _truth(values) -> list:
    return [None if v is None else int(v) for v in values]


@pytest.mark.parametrize("quantifier", ["ANY", "SOME", "ALL"])
@pytest.mark.parametrize("op", OPS)
def test_quantified_comparisons_match_the_standard(both, op, quantifier):
    ql, lite = both
    standard = "ALL" if quantifier == "ALL" else "ANY"
    for table in SETS:
        sql = f"SELECT _id, x {op} {quantifier} (SELECT y FROM {table}) AS r FROM a ORDER BY _id"
        got = _truth(r["r"] for r in ql.execute(sql))
        expected = _truth(
            r[0]
            for r in lite.execute(f"SELECT {_standard(op, standard, table)} FROM a ORDER BY _id")
        )
        assert got == expected, (sql, got, expected)
        where = f"SELECT _id FROM a WHERE x {op} {quantifier} (SELECT y FROM {table})"
        assert sorted(r["_id"] for r in ql.execute(where)) == [
            i for i, v in enumerate(expected) if v == 1
        ], where


@pytest.mark.parametrize("negated", [False, True])
def test_in_subquery_matches_sqlite(both, negated):
    ql, lite = both
    word = "NOT IN" if negated else "IN"
    for table in SETS:
        sql = f"SELECT _id, x {word} (SELECT y FROM {table}) AS r FROM a ORDER BY _id"
        got = _truth(r["r"] for r in ql.execute(sql))
        expected = _truth(r[1] for r in lite.execute(sql))
        assert got == expected, (sql, got, expected)


def test_not_in_with_a_null_or_missing_value_deletes_and_updates_nothing_sql_keeps(both):
    ql, lite = both
    # x NOT IN (1, 2) is NULL for NULL and missing x: those rows stay.
    assert ql.execute("UPDATE a SET flag = 1 WHERE x NOT IN (SELECT y FROM b)").rowcount == 2
    assert sorted(d["_id"] for d in ql.db.a.find({"flag": 1})) == [2, 3]
    assert ql.execute("DELETE FROM a WHERE x NOT IN (SELECT y FROM b)").rowcount == 2
    assert sorted(d["_id"] for d in ql.db.a.find()) == [0, 1, 4]


def test_quantifier_words_stay_usable_as_column_names(ql):
    ql.db.t.insert_one({"any": 1, "some": 2, "all": 3})
    assert list(ql.execute("SELECT `any` + some AS s FROM t WHERE 3 = `all`")) == [{"s": 3}]
