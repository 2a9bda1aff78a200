"""Normalising values from the two engines and comparing results.

Normalisation (each a legitimate representation difference, see docs/testing.md):

- booleans: SQLite has none (``TRUE`` is 1), MongoDB returns ``bool`` → both become 0/1;
- numbers: int and float are equal when numerically equal (SQLite's ``ROUND`` and ``AVG`` return
  REAL, MongoDB may keep an int); floats compare with a relative tolerance;
- ``Decimal128`` / ``Decimal`` → float.

Results are compared as ordered lists when ORDER BY fixes the order of every row, as multisets
otherwise; with a partial ORDER BY the sequence of the sort-key columns must also agree.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from bson.decimal128 import Decimal128

REL_TOL = 1e-9
ABS_TOL = 1e-12


def norm(v: Any) -> Any:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, Decimal128):
        return float(v.to_decimal())
    if isinstance(v, Decimal):
        return float(v)
    return v


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def values_equal(a: Any, b: Any) -> bool:
    a, b = norm(a), norm(b)
    if a is None or b is None:
        return a is None and b is None
    if _is_number(a) and _is_number(b):
        if isinstance(a, int) and isinstance(b, int):
            return a == b
        return math.isclose(float(a), float(b), rel_tol=REL_TOL, abs_tol=ABS_TOL)
    if _is_number(a) or _is_number(b):
        return False
    return type(a) is type(b) and a == b


def rows_equal(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b, strict=True))


def same_multiset(expected: list[tuple[Any, ...]], actual: list[tuple[Any, ...]]) -> bool:
    """Multiset equality under ``values_equal`` (greedy matching; results are small)."""
    return len(expected) == len(actual) and is_sub_multiset(expected, actual)


def is_sub_multiset(part: list[tuple[Any, ...]], whole: list[tuple[Any, ...]]) -> bool:
    remaining = list(whole)
    for row in part:
        for k, other in enumerate(remaining):
            if rows_equal(row, other):
                del remaining[k]
                break
        else:
            return False
    return True


def same_sequence(expected: list[tuple[Any, ...]], actual: list[tuple[Any, ...]]) -> bool:
    return len(expected) == len(actual) and all(
        rows_equal(x, y) for x, y in zip(expected, actual, strict=True)
    )


def project(rows: list[tuple[Any, ...]], positions: list[int]) -> list[tuple[Any, ...]]:
    return [tuple(r[p] for p in positions) for r in rows]


def compare(
    expected: list[tuple[Any, ...]],
    actual: list[tuple[Any, ...]],
    *,
    ordered: bool = False,
    key_positions: list[int] | None = None,
) -> str | None:
    """None when the results agree, else a short description of the difference."""
    if ordered:
        if not same_sequence(expected, actual):
            return "ordered rows differ"
        return None
    if not same_multiset(expected, actual):
        return "rows differ (compared as multisets)"
    if key_positions and not same_sequence(
        project(expected, key_positions), project(actual, key_positions)
    ):
        return f"order of the ORDER BY key columns {key_positions} differs"
    return None
