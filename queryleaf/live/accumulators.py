"""The running state of one aggregate over one group: COUNT, SUM, AVG, MIN, MAX, with DISTINCT.

Each accumulator takes values one at a time (``add``), absorbs another of its kind (``merge``,
for session windows that an event bridges) and gives its SQL result (``result``). SQL NULL
semantics as the SQL engine computes them (docs/semantics.md): NULL (None; a missing field is
passed as None) is ignored by every aggregate but COUNT(*); SUM, AVG, MIN and MAX over no
non-NULL value are NULL. SUM and AVG add numbers as ``$sum``/``$avg`` do: a value that is not
a number (a string, a boolean) is skipped, so SUM over strings only is 0 and AVG over them NULL;
integers sum to an integer (a double past 64 bits, as MongoDB's overflow does), a double makes
the sum a double, a Decimal128 makes it a Decimal128. AVG is a double, or a Decimal128 when a
decimal was averaged.
"""

from __future__ import annotations

import operator
from abc import ABC, abstractmethod
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from bson.decimal128 import Decimal128
from bson.int64 import Int64

from queryleaf.live.values import DECIMAL128_CONTEXT, as_decimal, canonical, sort_key, to_decimal128

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class Accumulator(ABC):
    """The interface every aggregate's state implements."""

    __slots__ = ()

    @abstractmethod
    def add(self, v: Any) -> None:
        """Take one value (None: NULL or missing)."""

    @abstractmethod
    def merge(self, other: Any) -> None:
        """Absorb ``other``, an accumulator of the same kind (merged session windows)."""

    @abstractmethod
    def result(self) -> Any:
        """The SQL result over the values taken so far."""


class CountRows(Accumulator):
    """COUNT(*): every event, whatever its values."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0

    def add(self, v: Any) -> None:
        self.n += 1

    def merge(self, other: CountRows) -> None:
        self.n += other.n

    def result(self) -> int:
        return self.n


class Count(Accumulator):
    """COUNT(x): the non-NULL values."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0

    def add(self, v: Any) -> None:
        if v is not None:
            self.n += 1

    def merge(self, other: Count) -> None:
        self.n += other.n

    def result(self) -> int:
        return self.n


class Sum(Accumulator):
    """SUM(x): integers, doubles and decimals kept apart so that each keeps its exactness."""

    __slots__ = ("ints", "floats", "decimals", "has_float", "numbers", "seen")

    def __init__(self) -> None:
        self.ints = 0
        self.floats = 0.0
        self.decimals: Decimal | None = None
        self.has_float = False
        self.numbers = 0  # how many numbers were added (AVG's divisor)
        self.seen = False  # whether any non-NULL value was added (SUM is NULL otherwise)

    def add(self, v: Any) -> None:
        if v is None:
            return
        self.seen = True
        t = type(v)
        if t is int or t is Int64:
            self.ints += v
        elif t is float:
            self.floats += v
            self.has_float = True
        elif t is Decimal128 or t is Decimal:
            d = as_decimal(v)
            self.decimals = d if self.decimals is None else DECIMAL128_CONTEXT.add(self.decimals, d)
        else:
            return  # not a number: $sum and $avg skip it
        self.numbers += 1

    def merge(self, other: Sum) -> None:
        self.ints += other.ints
        self.floats += other.floats
        self.has_float = self.has_float or other.has_float
        if other.decimals is not None:
            self.decimals = (
                other.decimals
                if self.decimals is None
                else DECIMAL128_CONTEXT.add(self.decimals, other.decimals)
            )
        self.numbers += other.numbers
        self.seen = self.seen or other.seen

    def total(self) -> Any:
        """The sum of the numbers added (0 when none were)."""
        if self.decimals is not None:
            total = DECIMAL128_CONTEXT.add(self.decimals, Decimal(self.ints))
            if self.has_float:
                total = DECIMAL128_CONTEXT.add(total, as_decimal(self.floats))
            return to_decimal128(total)
        if self.has_float:
            return self.ints + self.floats
        if not _INT64_MIN <= self.ints <= _INT64_MAX:
            return float(self.ints)
        return self.ints

    def result(self) -> Any:
        return self.total() if self.seen else None


class Avg(Sum):
    __slots__ = ()

    def result(self) -> Any:
        if not self.numbers:
            return None
        total = self.total()
        if type(total) is Decimal128:
            return to_decimal128(DECIMAL128_CONTEXT.divide(total.to_decimal(), self.numbers))
        return total / self.numbers


class Min(Accumulator):
    """MIN(x) in BSON order across types; integers (the common case) without a sort key."""

    __slots__ = ("best", "best_key")

    def __init__(self) -> None:
        self.best: Any = None
        self.best_key: tuple[Any, ...] | None = None

    _better = staticmethod(operator.lt)

    def add(self, v: Any) -> None:
        if v is None:
            return
        best = self.best
        if type(v) is int and type(best) is int:
            if self._better(v, best):
                self.best = v
                self.best_key = None
            return
        if best is None:  # the sort key waits until a comparison needs it
            self.best = v
            return
        key = sort_key(v)
        best_key = self.best_key
        if best_key is None:
            best_key = self.best_key = sort_key(best)
        if self._better(key, best_key):
            self.best, self.best_key = v, key

    def merge(self, other: Min) -> None:
        self.add(other.best)

    def result(self) -> Any:
        return self.best


class Max(Min):
    __slots__ = ()

    _better = staticmethod(operator.gt)


class CountDistinct(Accumulator):
    """COUNT(DISTINCT x): distinct non-NULL values, equal as MongoDB's ``$addToSet`` deems."""

    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values: set[Any] = set()

    def add(self, v: Any) -> None:
        if v is not None:
            self.values.add(canonical(v))

    def merge(self, other: CountDistinct) -> None:
        self.values |= other.values

    def result(self) -> int:
        return len(self.values)


class SumDistinct(Accumulator):
    """SUM(DISTINCT x) / AVG(DISTINCT x): a sum of the first of each set of equal values."""

    __slots__ = ("values", "sum")

    def __init__(self, average: bool) -> None:
        self.values: dict[Any, Any] = {}
        self.sum = Avg() if average else Sum()

    def add(self, v: Any) -> None:
        if v is None:
            return
        key = canonical(v)
        if key not in self.values:
            self.values[key] = v
            self.sum.add(v)

    def merge(self, other: SumDistinct) -> None:
        for v in other.values.values():
            self.add(v)

    def result(self) -> Any:
        return self.sum.result()


AGGREGATES = ("COUNT", "SUM", "AVG", "MIN", "MAX")


def accumulator_factory(name: str, counts_rows: bool, distinct: bool) -> Callable[[], Accumulator]:
    """A maker of fresh accumulators of aggregate ``name`` (COUNT(*) when ``counts_rows``);
    ValueError for an aggregate a live query cannot compute."""
    if name not in AGGREGATES:
        raise ValueError(
            f"{name} is not supported in a live aggregate; use {', '.join(AGGREGATES)}"
        )
    if counts_rows:
        if name != "COUNT":
            raise ValueError(f"{name}(*) is not an aggregate; only COUNT(*) counts rows")
        if distinct:
            raise ValueError("COUNT(DISTINCT *) is not an aggregate; name a value to count")
        return CountRows
    if name in ("MIN", "MAX"):  # DISTINCT changes nothing
        return Min if name == "MIN" else Max
    if distinct:
        if name == "COUNT":
            return CountDistinct
        return (lambda: SumDistinct(True)) if name == "AVG" else (lambda: SumDistinct(False))
    return {"COUNT": Count, "SUM": Sum, "AVG": Avg}[name]
