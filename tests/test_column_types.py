"""Column types inferred from values: the one source of the DB-API type codes and the PostgreSQL
wire server's OIDs."""

import datetime as dt

from bson import Decimal128, Int64, ObjectId

from queryleaf.column_types import ColumnType, infer_column_types, infer_type, unify


def test_integers_are_32_bit_until_one_is_not():
    assert infer_type([1, None, 2]) is ColumnType.INTEGER
    assert infer_type([1, 2**31]) is ColumnType.BIGINT
    assert infer_type([Int64(1)]) is ColumnType.BIGINT


def test_numbers_widen_and_other_mixtures_are_text():
    assert infer_type([1, 2.5]) is ColumnType.DOUBLE
    assert infer_type([1.5, Decimal128("2.1")]) is ColumnType.DECIMAL
    assert infer_type([1, "a"]) is ColumnType.TEXT
    assert infer_type([True, 1]) is ColumnType.TEXT
    assert unify(None, ColumnType.BOOLEAN) is ColumnType.BOOLEAN


def test_each_kind_of_value():
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    rows = [{"b": True, "d": now, "j": {"x": 1}, "a": [1], "o": ObjectId(), "y": b"\x00"}]
    assert infer_column_types(["b", "d", "j", "a", "o", "y", "missing"], rows) == [
        ColumnType.BOOLEAN,
        ColumnType.TIMESTAMP,
        ColumnType.DOCUMENT,
        ColumnType.DOCUMENT,
        ColumnType.TEXT,
        ColumnType.BINARY,
        ColumnType.TEXT,
    ]


def test_the_planner_declares_what_an_expression_guarantees(ql):
    ql.execute("INSERT INTO t (a, s) VALUES (1, 'x'), (NULL, NULL)")
    result = ql.execute(
        "SELECT a, a > 0 AS big, COUNT(*) OVER () AS n, CAST(a AS DOUBLE) AS d, UPPER(s) AS u, "
        "s IS NULL AS missing FROM t ORDER BY a"
    )
    rows = result.rows
    assert result.declared_types == {
        "big": ColumnType.BOOLEAN,
        "d": ColumnType.DOUBLE,
        "u": ColumnType.TEXT,
        "missing": ColumnType.BOOLEAN,
    }
    assert [r["big"] for r in rows] == [None, True]  # the values agree with what is declared
    assert isinstance(rows[1]["d"], float)
    # a NULL-only first batch no longer hides the type
    empty = ql.execute("SELECT COUNT(*) AS n, a = 1 AS one FROM t WHERE a > 100 GROUP BY a")
    assert infer_column_types(empty.columns, empty.rows, empty.declared_types) == [
        ColumnType.BIGINT,
        ColumnType.BOOLEAN,
    ]


def test_declared_function_names_are_real_functions():
    from queryleaf.planner import functions
    from queryleaf.planner.result_types import _FUNCTION_TYPES

    assert set(_FUNCTION_TYPES) <= set(functions.FUNCTIONS) | set(functions.AGGREGATES)
