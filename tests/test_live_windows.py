"""The live aggregation engine (queryleaf/live/windows.py, docs/streaming.md#windows): window
kinds, watermark, grace and late events, EMIT CHANGES and FINAL, running aggregates, SQL NULL
semantics and bounded state. Pure Python: no server."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal
from typing import Any

import pytest
from bson import ObjectId
from bson.decimal128 import Decimal128
from hypothesis import given, settings
from hypothesis import strategies as st

from queryleaf.live.values import canonical, sort_key
from queryleaf.live.windows import AggregateSpec, Aggregator, LiveWindow, Update

COUNT = AggregateSpec("COUNT", None)
ALL = [
    COUNT,
    AggregateSpec("COUNT", "x"),
    AggregateSpec("SUM", "x"),
    AggregateSpec("AVG", "x"),
    AggregateSpec("MIN", "x"),
    AggregateSpec("MAX", "x"),
    AggregateSpec("COUNT", "x", distinct=True),
]


def tumbling(size: int, grace: int = 0) -> LiveWindow:
    return LiveWindow("tumbling", size_ms=size, grace_ms=grace)


def rows(updates: list[Update]) -> list[tuple[Any, ...]]:
    return [(u.key, u.window_start_ms, u.window_end_ms, u.values, u.final) for u in updates]


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (dict(kind="tumbling"), "SIZE of a TUMBLING window must be positive"),
        (dict(kind="hopping", size_ms=10), "ADVANCE BY of a HOPPING window must be positive"),
        (dict(kind="hopping", size_ms=10, advance_ms=20), "must not exceed its SIZE"),
        (dict(kind="session"), "inactivity gap of a SESSION window must be positive"),
        (dict(kind="tumbling", size_ms=10, grace_ms=-1), "GRACE PERIOD must not be negative"),
        (dict(kind="sliding", size_ms=10), "unknown window kind"),
    ],
)
def test_invalid_windows_are_value_errors(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LiveWindow(**spec)


def test_emit_final_without_a_window_is_refused() -> None:
    with pytest.raises(ValueError, match="EMIT FINAL needs a WINDOW"):
        Aggregator(None, [COUNT], "final")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (AggregateSpec("STDDEV", "x"), "STDDEV is not supported in a live aggregate"),
        (AggregateSpec("SUM", None), r"SUM\(\*\) is not an aggregate"),
        (AggregateSpec("COUNT", None, distinct=True), r"COUNT\(DISTINCT \*\)"),
    ],
)
def test_unsupported_aggregates_are_value_errors(spec: AggregateSpec, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Aggregator(None, [spec], "changes")


# ---------------------------------------------------------------- tumbling


def test_tumbling_emit_changes_returns_the_updated_row_per_event() -> None:
    agg = Aggregator(tumbling(1000), ALL, "changes")
    assert rows(agg.add(1500, ("a",), {"x": 2})) == [
        (("a",), 1000, 2000, (1, 1, 2, 2.0, 2, 2, 1), False)
    ]
    assert rows(agg.add(1600, ("a",), {"x": 4})) == [
        (("a",), 1000, 2000, (2, 2, 6, 3.0, 2, 4, 2), False)
    ]
    assert rows(agg.add(1700, ("b",), {})) == [
        (("b",), 1000, 2000, (1, 0, None, None, None, None, 0), False)
    ]
    # the window [1000, 2000) closes at 2000: EMIT CHANGES emits nothing more for it
    assert rows(agg.add(2000, ("a",), {"x": 1})) == [
        (("a",), 2000, 3000, (1, 1, 1, 1.0, 1, 1, 1), False)
    ]
    assert agg.open_windows == 1


def test_tumbling_emit_final_emits_each_row_once_when_its_window_closes() -> None:
    agg = Aggregator(tumbling(1000), [COUNT, AggregateSpec("SUM", "x")], "final")
    assert agg.add(10, ("a",), {"x": 1}) == []
    assert agg.add(20, ("b",), {"x": 2}) == []
    assert agg.add(999, ("a",), {"x": 3}) == []
    closed = agg.add(1000, ("a",), {"x": 5})
    assert rows(closed) == [
        (("a",), 0, 1000, (2, 4), True),
        (("b",), 0, 1000, (1, 2), True),
    ]
    assert agg.add(1001, ("a",), {"x": 5}) == []  # nothing is emitted twice
    assert rows(agg.advance(2000)) == [(("a",), 1000, 2000, (2, 10), True)]
    assert agg.open_windows == 0 and agg.open_rows == 0


def test_windows_are_aligned_to_the_epoch() -> None:
    agg = Aggregator(tumbling(60_000), [COUNT], "changes")
    t = 1_700_000_123_456
    [u] = agg.add(t, (), {})
    assert u.window_start_ms == t - t % 60_000 and u.window_end_ms == u.window_start_ms + 60_000


def test_advance_closes_windows_on_a_quiet_stream() -> None:
    agg = Aggregator(tumbling(1000), [COUNT], "final")
    agg.add(100, ("a",), {})
    assert agg.advance(999) == []
    assert agg.open_windows == 1
    assert rows(agg.advance(1000)) == [(("a",), 0, 1000, (1,), True)]
    assert agg.open_windows == 0
    assert agg.advance(500) == []  # the watermark never goes back
    assert agg.watermark_ms == 1000


def test_advance_evicts_windows_with_emit_changes_too() -> None:
    agg = Aggregator(tumbling(1000), [COUNT], "changes")
    agg.add(100, ("a",), {})
    assert agg.advance(5000) == []
    assert agg.open_windows == 0


def test_grace_keeps_a_window_open_for_late_events() -> None:
    agg = Aggregator(tumbling(1000, grace=500), [COUNT], "final")
    agg.add(900, ("a",), {})
    assert agg.add(1200, ("a",), {}) == []  # [0, 1000) stays open until 1500
    assert agg.add(950, ("a",), {}) == []  # out of order, within the grace period: counted
    assert agg.late_events == 0
    closed = agg.add(1500, ("a",), {})
    assert rows(closed) == [(("a",), 0, 1000, (2,), True)]
    assert agg.add(999, ("a",), {}) == []  # its window has closed: late
    assert agg.late_events == 1
    assert rows(agg.advance(2500)) == [(("a",), 1000, 2000, (2,), True)]


def test_late_events_are_dropped_and_counted_without_grace() -> None:
    agg = Aggregator(tumbling(1000), [COUNT], "changes")
    agg.add(1500, ("a",), {})
    assert agg.add(999, ("a",), {}) == []
    assert agg.add(1000, ("a",), {}) != []  # in the open window [1000, 2000)
    assert agg.late_events == 1


def test_open_windows_stay_bounded() -> None:
    agg = Aggregator(tumbling(1000), ALL, "changes")
    most = 0
    for i in range(20_000):
        agg.add(i * 10, (i % 50,), {"x": i})
        most = max(most, agg.open_windows)
    assert most == 1
    assert agg.open_rows == 50


# ---------------------------------------------------------------- hopping


def test_hopping_event_counts_in_every_window_that_holds_it() -> None:
    agg = Aggregator(LiveWindow("hopping", size_ms=300, advance_ms=100), [COUNT], "changes")
    assert [(u.window_start_ms, u.window_end_ms) for u in agg.add(250, (), {})] == [
        (0, 300),
        (100, 400),
        (200, 500),
    ]


def test_hopping_size_need_not_be_a_multiple_of_the_advance() -> None:
    agg = Aggregator(LiveWindow("hopping", size_ms=250, advance_ms=100), [COUNT], "final")
    closed = [u for t in (1000, 1120, 1240, 1260) for u in agg.add(t, (), {})]
    closed += agg.advance(10_000)
    assert [(u.window_start_ms, u.window_end_ms, u.values) for u in closed] == [
        (800, 1050, (1,)),
        (900, 1150, (2,)),
        (1000, 1250, (3,)),
        (1100, 1350, (3,)),
        (1200, 1450, (2,)),
    ]


def test_hopping_event_late_for_some_windows_counts_in_the_others() -> None:
    agg = Aggregator(LiveWindow("hopping", size_ms=200, advance_ms=100), [COUNT], "changes")
    agg.add(250, (), {})  # closes [0, 200)
    updates = agg.add(150, (), {})  # belongs to [0, 200) (closed) and [100, 300)
    assert [(u.window_start_ms, u.values) for u in updates] == [(100, (2,))]
    assert agg.late_events == 1


# ---------------------------------------------------------------- session


def session(gap: int, grace: int = 0) -> LiveWindow:
    return LiveWindow("session", gap_ms=gap, grace_ms=grace)


def test_session_bounds_are_its_first_and_last_event() -> None:
    agg = Aggregator(session(100), [COUNT], "final")
    for t in (1000, 1050, 1150):  # 1150 - 1050 = 100: within the gap (inclusive)
        agg.add(t, ("u",), {})
    assert agg.add(1250, ("v",), {}) == []  # another key: its own sessions
    assert agg.advance(1250) == []  # closes only when the watermark passes 1150 + 100
    assert rows(agg.advance(1251)) == [(("u",), 1000, 1150, (3,), True)]
    assert rows(agg.flush()) == [(("v",), 1250, 1250, (1,), False)]


def test_session_gap_exceeded_starts_a_new_session() -> None:
    agg = Aggregator(session(100), [COUNT], "final")
    agg.add(0, ("u",), {})
    closed = agg.add(101, ("u",), {})
    assert rows(closed) == [(("u",), 0, 0, (1,), True)]
    assert agg.open_windows == 1


def test_an_event_bridging_two_sessions_merges_them() -> None:
    agg = Aggregator(session(100, grace=1000), ALL, "changes")
    agg.add(0, ("u",), {"x": 1})
    agg.add(200, ("u",), {"x": 5})
    assert agg.open_windows == 2
    updates = agg.add(100, ("u",), {"x": 1})
    # the session that started at 200 no longer exists; the one that starts at 0 now ends at 200
    assert [(u.window_start_ms, u.window_end_ms, u.retracted) for u in updates] == [
        (200, 200, True),
        (0, 200, False),
    ]
    assert updates[-1].values == (3, 3, 7, 7 / 3, 1, 5, 2)
    assert agg.open_windows == 1


def test_an_early_event_moves_a_session_start_and_retracts_the_old_row() -> None:
    agg = Aggregator(session(100, grace=1000), [COUNT], "changes")
    agg.add(500, ("u",), {})
    updates = agg.add(450, ("u",), {})
    assert [(u.window_start_ms, u.window_end_ms, u.retracted) for u in updates] == [
        (500, 500, True),
        (450, 500, False),
    ]


def test_session_merges_emit_no_retraction_with_emit_final() -> None:
    agg = Aggregator(session(100, grace=1000), [COUNT], "final")
    for t in (0, 200, 100):
        assert agg.add(t, ("u",), {}) == []
    assert rows(agg.advance(10_000)) == [(("u",), 0, 200, (3,), True)]


def test_late_session_events_are_dropped() -> None:
    agg = Aggregator(session(100, grace=50), [COUNT], "changes")
    agg.add(1000, ("u",), {})
    assert agg.add(849, ("v",), {}) == []  # its session [849, 849] closed at 1000
    assert agg.late_events == 1
    assert agg.add(850, ("v",), {}) != []  # still open at 1000 = 850 + 100 + 50
    assert agg.add(900, ("u",), {})[-1].values == (2,)  # extends the open session of u


def test_sessions_are_evicted() -> None:
    agg = Aggregator(session(10), [COUNT], "changes")
    for i in range(10_000):
        agg.add(i * 5, (i % 7,), {})
    agg.advance(10_000 * 5 + 100)
    assert agg.open_windows == 0 and agg._sessions == {} and agg._closing == []


# ---------------------------------------------------------------- running aggregates


def test_running_aggregate_emits_the_key_row_per_event_and_keeps_every_key() -> None:
    agg = Aggregator(None, [COUNT, AggregateSpec("SUM", "x")], "changes")
    assert rows(agg.add(0, ("a",), {"x": 1})) == [(("a",), None, None, (1, 1), False)]
    assert rows(agg.add(10**12, ("b",), {"x": 2})) == [(("b",), None, None, (1, 2), False)]
    assert rows(agg.add(5, ("a",), {"x": 3})) == [(("a",), None, None, (2, 4), False)]
    assert agg.advance(10**13) == [] and agg.late_events == 0
    assert agg.open_rows == 2 and agg.open_windows == 0
    assert agg.flush() == []


def test_group_keys_are_equal_as_in_mongodb() -> None:
    agg = Aggregator(None, [COUNT], "changes")
    agg.add(0, (1, None), {})
    assert rows(agg.add(0, (1.0, None), {})) == [((1, None), None, None, (2,), False)]
    assert agg.add(0, (Decimal128("1.00"), None), {})[0].values == (3,)
    assert agg.add(0, (True, None), {})[0].values == (1,)  # a boolean is not 1
    assert agg.add(0, ({"a": [1]}, None), {})[0].values == (1,)
    assert agg.add(0, ({"a": [1.0]}, None), {})[0].values == (2,)


# ---------------------------------------------------------------- values


def running(spec: AggregateSpec, *xs: Any) -> Any:
    agg = Aggregator(None, [spec], "changes")
    out: Any = None
    for x in xs:
        out = agg.add(0, (), {} if x is _MISSING else {"x": x})[0].values[0]
    return out


_MISSING = object()


@pytest.mark.parametrize(
    ("name", "xs", "expected"),
    [
        ("COUNT", [None, _MISSING, 1], 1),
        ("SUM", [None, _MISSING], None),
        ("AVG", [None], None),
        ("MIN", [_MISSING], None),
        ("MAX", [None, None], None),
        ("SUM", [1, 2, None], 3),
        ("SUM", [2**62, 2**62], float(2**63)),  # past 64 bits: a double, as MongoDB
        ("SUM", ["a", "b"], 0),  # not numbers: skipped, as $sum (but not NULL: they are values)
        ("AVG", ["a", 4], 4.0),
        ("SUM", [True, 1], 1),
        ("AVG", [1, 2], 1.5),
        ("MIN", [3, "a", None, 2.5], 2.5),
        ("MAX", [3, "a", None, 2.5], "a"),  # strings sort after numbers
        ("MAX", [dt.datetime(2020, 1, 1), True, {"a": 1}], dt.datetime(2020, 1, 1)),
        ("MIN", [float("nan"), -1e308], float("nan")),  # NaN below every number, as BSON
        ("MAX", [1, Decimal128("1.5"), 1.25], Decimal128("1.5")),
        ("MIN", [ObjectId("0" * 24), [1], {"b": 1}], {"b": 1}),
    ],
)
def test_aggregate_values(name: str, xs: list[Any], expected: Any) -> None:
    got = running(AggregateSpec(name, "x"), *xs)
    if isinstance(expected, float) and expected != expected:
        assert got != got
    else:
        assert got == expected and type(got) is type(expected)


def test_sum_keeps_the_type_of_its_numbers() -> None:
    s = AggregateSpec("SUM", "x")
    assert type(running(s, 1, 2)) is int
    assert running(s, 1, 0.5) == 1.5
    assert running(s, 1, Decimal128("0.1"), 0.5) == Decimal128("1.6")
    assert running(s, Decimal128("0.1"), Decimal128("0.2")) == Decimal128("0.3")
    assert running(AggregateSpec("AVG", "x"), 1, Decimal128("2")) == Decimal128("1.5")


def test_count_distinct_counts_equal_values_once_even_unhashable_ones() -> None:
    d = AggregateSpec("COUNT", "x", distinct=True)
    assert running(d, 1, 1.0, Decimal128("1"), True, "1", None) == 3
    assert running(d, {"a": [1, 2]}, {"a": [1, 2.0]}, {"a": [2, 1]}, [1], [1]) == 3
    assert running(d, {"a": 1, "b": 2}, {"b": 2, "a": 1}) == 2  # BSON documents are ordered
    assert running(d, float("nan"), Decimal128("NaN")) == 1
    assert running(AggregateSpec("SUM", "x", distinct=True), 1, 1.0, 2, None) == 3
    assert running(AggregateSpec("AVG", "x", distinct=True), 1, 1, 3) == 2.0


def test_bson_order_and_equality() -> None:
    ordered = [None, float("nan"), -1, Decimal128("0.5"), 1, "B", "a", {"a": 1}, [0], b"x"]
    ordered += [ObjectId(), False, True, dt.datetime(1970, 1, 1)]
    assert sorted(reversed(ordered), key=sort_key) == ordered
    assert canonical(Decimal("2.50")) == canonical(2.5)
    aware = dt.datetime(2020, 1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert canonical(aware) == canonical(dt.datetime(2020, 1, 1))


# ---------------------------------------------------------------- properties


events = st.lists(
    st.tuples(
        st.integers(0, 5_000),  # event time
        st.sampled_from(["a", "b", "c"]),
        st.one_of(st.none(), st.integers(-5, 5), st.floats(-5, 5, allow_nan=False)),
    ),
    max_size=60,
)


SPECS = [COUNT, *(AggregateSpec(n, "x") for n in ("COUNT", "SUM", "MIN", "MAX"))]


@settings(max_examples=200, deadline=None)
@given(events, st.sampled_from([(1000, 1000), (1000, 250), (700, 300)]), st.integers(0, 800))
def test_fixed_windows_equal_a_brute_force_grouping_of_the_events_not_late(
    evs: list[tuple[int, str, Any]], size_advance: tuple[int, int], grace: int
) -> None:
    size, advance = size_advance
    kind = "tumbling" if size == advance else "hopping"
    agg = Aggregator(LiveWindow(kind, size, advance, grace_ms=grace), SPECS, "final")

    def starts_of(t: int) -> range:
        return range(t - t % advance, t - size, -advance)

    # by hand: each event counts in those of its windows still open when it arrives
    out: list[Update] = []
    per: dict[tuple[str, int], list[Any]] = defaultdict(list)
    watermark, late = -1, 0
    for t, k, x in evs:
        watermark = max(watermark, t)
        open_starts = [s for s in starts_of(t) if s + size + grace > watermark]
        late += len(open_starts) < len(starts_of(t))
        for s in open_starts:
            per[(k, s)].append(x)
        out += agg.add(t, (k,), {"x": x})
    out += agg.advance(10**9)
    assert agg.late_events == late
    assert agg.open_windows == 0
    expected = {}
    for g, xs in per.items():
        nn = [x for x in xs if x is not None]
        expected[g] = (
            len(xs),
            len(nn),
            sum(nn) if nn else None,
            min(nn, default=None),
            max(nn, default=None),
        )
    got = {(u.key[0], u.window_start_ms): u.values for u in out}
    assert all(u.final and u.window_end_ms == u.window_start_ms + size for u in out)
    assert len(got) == len(out)  # each row once
    assert got.keys() == expected.keys()
    for g in got:
        assert got[g][:2] == expected[g][:2] and got[g][3:] == expected[g][3:]
        assert got[g][2] == pytest.approx(expected[g][2])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3_000), st.sampled_from(["a", "b"])), max_size=40),
    st.integers(1, 400),
)
def test_in_order_sessions_equal_a_brute_force_split_on_gaps(
    evs: list[tuple[int, str]], gap: int
) -> None:
    evs = sorted(evs)  # in order, nothing is late: sessions are the runs split where gap exceeded
    agg = Aggregator(session(gap), [COUNT], "final")
    out = [u for t, k in evs for u in agg.add(t, (k,), {})] + agg.advance(10**9)
    expected = []
    for key in ("a", "b"):
        times = [t for t, k in evs if k == key]
        run: list[int] = []
        for t in times:
            if run and t - run[-1] > gap:
                expected.append(((key,), run[0], run[-1], (len(run),)))
                run = []
            run.append(t)
        if run:
            expected.append(((key,), run[0], run[-1], (len(run),)))
    got = [(u.key, u.window_start_ms, u.window_end_ms, u.values) for u in out]
    assert sorted(got) == sorted(expected)
    assert agg.late_events == 0


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 2_000), st.sampled_from(["a", "b"])), max_size=40),
    st.integers(1, 300),
)
def test_out_of_order_sessions_with_ample_grace_equal_the_in_order_ones(
    evs: list[tuple[int, str]], gap: int
) -> None:
    def final_rows(order: list[tuple[int, str]]) -> list[Any]:
        agg = Aggregator(session(gap, grace=10**6), [COUNT], "final")
        for t, k in order:
            agg.add(t, (k,), {})
        return sorted(
            (u.key, u.window_start_ms, u.window_end_ms, u.values) for u in agg.advance(10**8)
        )

    assert final_rows(evs) == final_rows(sorted(evs))


@settings(max_examples=100, deadline=None)
@given(events)
def test_emit_changes_last_update_of_each_row_equals_emit_final(
    evs: list[tuple[int, str, Any]],
) -> None:
    spec = tumbling(1000, grace=300)
    changes, final = Aggregator(spec, ALL, "changes"), Aggregator(spec, ALL, "final")
    last: dict[Any, tuple[Any, ...]] = {}
    finals: list[Update] = []
    for t, k, x in evs:
        for u in changes.add(t, (k,), {"x": x}):
            last[(u.key, u.window_start_ms)] = u.values
        finals += final.add(t, (k,), {"x": x})
    finals += final.advance(10**9)
    assert {(u.key, u.window_start_ms): u.values for u in finals} == last
    assert changes.late_events == final.late_events
