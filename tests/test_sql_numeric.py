"""MySQL's numeric catalogue against the embedded server: trigonometry, logarithms and their
domains (NULL outside, NaN kept), BIT_LENGTH, BIT_COUNT and the bitwise operators on signed
64-bit integers."""

from __future__ import annotations

import math

import pytest
from bson import Decimal128, Int64

from queryleaf import PlanningError

NAN = float("nan")
INF = float("inf")


def one(ql, sql, params=None):
    """The single value of a one-row, one-column answer."""
    rows = ql.execute(sql, params).rows
    assert len(rows) == 1, rows
    (value,) = rows[0].values()
    return value


def same(actual, expected):
    if isinstance(actual, Decimal128):
        actual = float(actual.to_decimal())
    if expected is None or actual is None:
        return actual is expected
    if isinstance(expected, float) and math.isnan(expected):
        return isinstance(actual, float) and math.isnan(actual)
    if isinstance(actual, float) and math.isnan(actual):
        return False
    return math.isclose(actual, expected, rel_tol=1e-12, abs_tol=1e-15)


@pytest.fixture()
def nums(ql):
    """One document per interesting value of x: numbers, NULL, missing, NaN, infinities."""
    values = {
        "zero": 0,
        "half": 0.5,
        "one": 1,
        "neg": -1,
        "two": 2,
        "big": 2.5,
        "minus2": -2,
        "nan": NAN,
        "inf": INF,
        "ninf": -INF,
        "dnan": Decimal128("NaN"),
        "dhalf": Decimal128("0.5"),
        "null": None,
    }
    docs = [{"_id": k, "x": v} for k, v in values.items()] + [{"_id": "missing"}]
    ql.db.nums.insert_many(docs)
    return ql


def column(ql, expr):
    """{_id: value of expr} over the nums table."""
    return {r["_id"]: r["v"] for r in ql.execute(f"SELECT _id, {expr} AS v FROM nums").rows}


# ---------------------------------------------------------------- trigonometry


def _domain(fn, lo=-INF, hi=INF, finite=False):
    """fn over the test values as MySQL answers: NULL outside [lo, hi] (and for infinities when
    ``finite``), NaN for NaN, NULL for NULL and missing."""

    def value(x):
        if x is None:
            return None
        x = float(x.to_decimal()) if isinstance(x, Decimal128) else x
        if math.isnan(x):
            return NAN
        if (finite and math.isinf(x)) or not lo <= x <= hi:
            return None
        return fn(x)

    return value


def _cot(x):
    return None if math.tan(x) == 0 else 1 / math.tan(x)


CASES = [
    ("SIN(x)", _domain(math.sin, finite=True)),
    ("COS(x)", _domain(math.cos, finite=True)),
    ("TAN(x)", _domain(math.tan, finite=True)),
    ("COT(x)", _domain(_cot, finite=True)),
    ("ASIN(x)", _domain(math.asin, -1, 1)),
    ("ACOS(x)", _domain(math.acos, -1, 1)),
    ("ATAN(x)", _domain(math.atan)),
    ("ATAN(x, 2)", _domain(lambda x: math.atan2(x, 2))),
    ("ATAN2(1, x)", _domain(lambda x: math.atan2(1, x))),
    ("DEGREES(x)", _domain(math.degrees)),
    ("RADIANS(x)", _domain(math.radians)),
    ("SQRT(x)", _domain(math.sqrt, 0)),
    ("LN(x)", _domain(math.log, math.ulp(0))),
    ("LOG(x)", _domain(math.log, math.ulp(0))),
    ("LOG10(x)", _domain(math.log10, math.ulp(0))),
    ("LOG2(x)", _domain(math.log2, math.ulp(0))),
    ("LOG(2, x)", _domain(lambda x: math.log(x, 2), math.ulp(0))),
    ("SIGN(x)", _domain(lambda x: (x > 0) - (x < 0))),
]


@pytest.mark.parametrize(("expr", "expected"), CASES, ids=[c[0] for c in CASES])
def test_math_functions_domains_nan_and_null(nums, expr, expected):
    docs = {d["_id"]: d.get("x") for d in nums.db.nums.find()}
    got = column(nums, expr)
    wrong = {k: (got[k], expected(x)) for k, x in docs.items() if not same(got[k], expected(x))}
    assert not wrong, wrong


def test_nan_survives_every_guard(nums):
    """Regression: guards such as "NULL for x <= 0" compared in BSON order, where NaN sorts
    below every number, and turned NaN into NULL (SIGN(NaN) was -1)."""
    for fn in ("SQRT", "LN", "LOG", "LOG10", "LOG2", "ASIN", "ACOS", "SIGN", "SIN", "COT"):
        got = column(nums, f"{fn}(x)")
        assert same(got["nan"], NAN) and same(got["dnan"], NAN), (fn, got["nan"], got["dnan"])


def test_log_with_a_nan_operand_is_nan_even_with_a_bad_other_operand(nums):
    # $log checks its base before its argument: LOG(-1, NaN) must not reach the server's error.
    got = column(nums, "LOG(x, -1)")
    assert same(got["nan"], NAN) and got["two"] is None and got["null"] is None
    got = column(nums, "LOG(-1, x)")
    assert same(got["nan"], NAN) and got["two"] is None
    got = column(nums, "LOG(x, 8)")
    assert got["two"] == pytest.approx(3) and got["one"] is None and got["zero"] is None


def test_mysql_domain_answers(ql):
    ql.db.t.insert_one({"_id": 1})
    row = ql.execute(
        "SELECT ASIN(2) AS a, ACOS(-1.5) AS b, COT(0) AS c, LOG2(8) AS d, "
        "LOG(1, 8) AS e, PI() AS f, ATAN(1, 0) AS g, DEGREES(PI()) AS h, "
        "RADIANS(180) AS i FROM t"
    ).rows[0]
    assert row["a"] is None and row["b"] is None and row["c"] is None and row["e"] is None
    assert row["d"] == 3 and row["f"] == math.pi and row["g"] == pytest.approx(math.pi / 2)
    assert row["h"] == pytest.approx(180) and row["i"] == pytest.approx(math.pi)


def test_math_functions_take_the_right_number_of_arguments(ql):
    ql.db.t.insert_one({"_id": 1})
    for sql in (
        "SELECT ATAN() FROM t",
        "SELECT ATAN(1, 2, 3) FROM t",
        "SELECT ATAN2(1) FROM t",
        "SELECT PI(1) FROM t",
        "SELECT COT(1, 2) FROM t",
    ):
        with pytest.raises(PlanningError, match="argument"):
            ql.execute(sql)


# ---------------------------------------------------------------- BIT_LENGTH, BIT_COUNT


def test_bit_length_counts_utf8_bits(ql):
    ql.db.t.insert_many(
        [
            {"_id": 1, "s": "héllo"},
            {"_id": 2, "s": ""},
            {"_id": 3, "s": None},
            {"_id": 4},
            {"_id": 5, "s": 123},
        ]
    )
    got = {r["_id"]: r["v"] for r in ql.execute("SELECT _id, BIT_LENGTH(s) AS v FROM t").rows}
    assert got == {1: 48, 2: 0, 3: None, 4: None, 5: 24}


BIT_COUNT_VALUES = [
    0,
    1,
    7,
    255,
    256,
    -1,
    -2,
    2**31 - 1,
    -(2**31),
    2**32,
    2**53 + 1,
    2**62,
    2**63 - 1,
    -(2**63),
    0x5555555555555555,
    -0x123456789ABCDEF,
]


def test_bit_count_of_64_bit_integers(ql):
    ql.db.t.insert_many([{"_id": i, "x": Int64(v)} for i, v in enumerate(BIT_COUNT_VALUES)])
    got = {r["_id"]: r["v"] for r in ql.execute("SELECT _id, BIT_COUNT(x) AS v FROM t").rows}
    assert got == {i: bin(v & (2**64 - 1)).count("1") for i, v in enumerate(BIT_COUNT_VALUES)}
    assert one(ql, "SELECT BIT_COUNT(-1) FROM t WHERE _id = 0") == 64  # computed at plan time


def test_bit_count_of_non_integers_is_null(ql):
    ql.db.t.insert_many(
        [
            {"_id": 1, "x": 4.0},
            {"_id": 2, "x": 2.5},
            {"_id": 3, "x": "7"},
            {"_id": 4, "x": True},
            {"_id": 5, "x": NAN},
            {"_id": 6, "x": 1e19},
            {"_id": 7, "x": Decimal128("6")},
            {"_id": 8},
        ]
    )
    got = {r["_id"]: r["v"] for r in ql.execute("SELECT _id, BIT_COUNT(x) AS v FROM t").rows}
    assert got == {1: 1, 2: None, 3: None, 4: None, 5: None, 6: None, 7: 2, 8: None}


# ---------------------------------------------------------------- bitwise operators


def _wrap(v):
    v &= 2**64 - 1
    return v - 2**64 if v >= 2**63 else v


def shift_left(x, n):
    if n < 0:
        return shift_right(x, -n)
    return 0 if n >= 64 else _wrap(x << n)


def shift_right(x, n):
    if n < 0:
        return shift_left(x, -n)
    return x >> min(n, 64)


OPERATORS = {
    "&": lambda x, y: x & y,
    "|": lambda x, y: x | y,
    "^": lambda x, y: x ^ y,
    "<<": shift_left,
    ">>": shift_right,
}
OPERANDS = [
    0,
    1,
    -1,
    5,
    -6,
    255,
    2**31,
    2**53 + 1,
    2**62 + 7,
    2**63 - 1,
    -(2**63),
    0x0123456789ABCDEF,
    -0x0FEDCBA987654321,
]
COUNTS = [-65, -64, -63, -5, -1, 0, 1, 2, 10, 11, 12, 31, 32, 52, 53, 62, 63, 64, 65, 200]


@pytest.fixture()
def pairs(ql):
    docs = [{"_id": f"{x},{y}", "x": Int64(x), "y": Int64(y)} for x in OPERANDS for y in OPERANDS]
    ql.db.pairs.insert_many(docs)
    return ql


@pytest.mark.parametrize("op", ["&", "|", "^"])
def test_and_or_xor_of_64_bit_integers(pairs, op):
    rows = pairs.execute(f"SELECT x, y, x {op} y AS v FROM pairs").rows
    wrong = [(r["x"], r["y"], r["v"]) for r in rows if r["v"] != OPERATORS[op](r["x"], r["y"])]
    assert not wrong


def test_bitwise_not(pairs):
    rows = pairs.execute("SELECT x, ~x AS v, ~~x AS w FROM pairs").rows
    assert all(r["v"] == ~r["x"] and r["w"] == r["x"] for r in rows)


@pytest.mark.parametrize("op", ["<<", ">>"])
def test_shifts_by_constant_counts_wrap_like_sqlite(ql, op):
    ql.db.t.insert_many([{"_id": i, "x": Int64(x)} for i, x in enumerate(OPERANDS)])
    select = ", ".join(f"x {op} {n} AS s{k}" for k, n in enumerate(COUNTS))
    for r in ql.execute(f"SELECT x, {select} FROM t").rows:
        for k, n in enumerate(COUNTS):
            assert r[f"s{k}"] == OPERATORS[op](r["x"], n), (r["x"], op, n)


@pytest.mark.parametrize("op", ["<<", ">>"])
def test_shifts_by_counts_computed_per_row(ql, op):
    docs = [{"_id": f"{x},{n}", "x": Int64(x), "n": n} for x in OPERANDS for n in COUNTS]
    ql.db.t.insert_many(docs)
    rows = ql.execute(f"SELECT x, n, x {op} n AS v, 3 {op} n AS w FROM t").rows
    wrong = [
        (r["x"], r["n"], r["v"], r["w"])
        for r in rows
        if (r["v"], r["w"]) != (OPERATORS[op](r["x"], r["n"]), OPERATORS[op](3, r["n"]))
    ]
    assert not wrong


def test_constant_bitwise_expressions_are_computed_at_plan_time(ql):
    ql.db.t.insert_one({"_id": 1})
    row = ql.execute(
        "SELECT 5 & 3 AS a, 5 | 3 AS b, 5 ^ 3 AS c, ~5 AS d, 1 << 63 AS e, "
        "-8 >> 1 AS f, 1 << 64 AS g, -1 >> 64 AS h, 1 << -1 AS i, "
        "~NULL AS j, 1 & NULL AS k, NULL << 2 AS l, 4.0 & 5 AS m FROM t"
    ).rows[0]
    assert row == {
        "a": 1,
        "b": 7,
        "c": 6,
        "d": -6,
        "e": -(2**63),
        "f": -4,
        "g": 0,
        "h": -1,
        "i": 0,
        "j": None,
        "k": None,
        "l": None,
        "m": 4,
    }


def test_precedence_is_mysqls(ql):
    ql.db.t.insert_one({"_id": 1, "one": 1, "two": 2, "three": 3, "five": 5})
    row = ql.execute(
        "SELECT one | two & three AS a, five & three << one AS b, "
        "one + one << two AS c, two * three ^ one AS d, -two ^ one AS e, "
        "~one + one AS f, 'a' || 'b' AS g, two | one = 3 AS h FROM t"
    ).rows[0]
    # a = 1 | (2 & 3); b = 5 & (3 << 1); c = (1 + 1) << 2; d = 2 * (3 ^ 1); e = (-2) ^ 1
    assert row == {"a": 3, "b": 4, "c": 8, "d": 4, "e": -1, "f": -1, "g": "ab", "h": True}


def test_null_missing_and_non_integer_operands_give_null(ql):
    ql.db.t.insert_many(
        [
            {"_id": 1, "x": None},
            {"_id": 2},
            {"_id": 3, "x": 2.5},
            {"_id": 4, "x": "6"},
            {"_id": 5, "x": True},
            {"_id": 6, "x": NAN},
            {"_id": 7, "x": 1e19},
            {"_id": 8, "x": INF},
            {"_id": 9, "x": 6.0},
            {"_id": 10, "x": Decimal128("6")},
            {"_id": 11, "x": Int64(6)},
        ]
    )
    got = {
        r["_id"]: (r["a"], r["o"], r["x"], r["n"], r["l"], r["r"], r["c"])
        for r in ql.execute(
            "SELECT _id, x & 3 AS a, x | 1 AS o, x ^ 1 AS x, ~x AS n, x << 1 AS l, x >> 1 AS r, "
            "1 << x AS c FROM t"
        ).rows
    }
    six = (2, 7, 7, -7, 12, 3, 64)
    assert got == {**{i: (None,) * 7 for i in range(1, 9)}, 9: six, 10: six, 11: six}


def test_bitwise_conditions_in_where(ql):
    ql.db.t.insert_many([{"_id": i, "flags": i} for i in range(8)] + [{"_id": 8}])
    r = ql.execute("SELECT _id FROM t WHERE flags & 4 = 4 AND flags >> 1 & 1 = 0 ORDER BY _id")
    assert [x["_id"] for x in r] == [4, 5]
    r = ql.execute("SELECT _id FROM t WHERE NOT (flags | 1 = 1) ORDER BY _id")
    assert [x["_id"] for x in r] == [2, 3, 4, 5, 6, 7]


@pytest.mark.parametrize(
    ("sql", "column"),
    [
        ("SELECT a & 1.5 FROM t", 12),
        ("SELECT 'x' | a FROM t", 8),
        ("SELECT ~TRUE FROM t", 9),
        ("SELECT a << 0.5 FROM t", 13),
        ("SELECT BIT_COUNT('7') FROM t", 18),
        ("SELECT a ^ 1e30 FROM t", 12),
    ],
)
def test_non_integer_constants_are_planning_errors(ql, sql, column):
    ql.db.t.insert_one({"_id": 1, "a": 1})
    with pytest.raises(PlanningError, match="takes integers") as info:
        ql.execute(sql)
    assert info.value.position.column == column


def test_parameters_are_checked_like_literals(ql):
    ql.db.t.insert_one({"_id": 1, "a": 6})
    assert one(ql, "SELECT a & :m FROM t", {"m": 3}) == 2
    with pytest.raises(PlanningError, match="takes integers"):
        ql.execute("SELECT a & :m FROM t", {"m": 2.5})


def test_bitwise_not_of_a_predicate_is_null_not_false(ql):
    # ~ of a boolean (not an integer) is NULL, so comparisons over it are unknown: the planner
    # must not take ~(predicate) for a never-NULL value and drop the NULL guards.
    ql.db.t.insert_one({"_id": 1, "x": 5})
    row = ql.execute(
        "SELECT ~(x IS NULL) AS a, NOT (~(x IS NULL) = 0) AS b, "
        "~(x IS NULL) = 0 OR FALSE AS c FROM t"
    ).rows[0]
    assert row == {"a": None, "b": None, "c": None}


def test_a_constant_beyond_64_bits_is_a_planning_error(ql):
    ql.db.t.insert_one({"_id": 1, "a": 1})
    with pytest.raises(PlanningError, match="not a 64-bit integer"):
        ql.execute("SELECT a & -~9223372036854775807 FROM t")  # -(-2^63)
