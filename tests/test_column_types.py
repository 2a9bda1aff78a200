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
