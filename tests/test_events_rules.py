"""Pure rules of event subscriptions: option validation and event_filter normalization."""

from __future__ import annotations

import pytest

from queryleaf.errors import Position, SubscriptionError
from queryleaf.events import images, names, options
from queryleaf.events.filters import FilterError, normalize_filter
from queryleaf.events.plans import CreateSubscription
from queryleaf.events.retry import RetryPolicy
from queryleaf.events.watch import WatchSpec

SEED_FILTER = {
    "operationType": {"$in": ["insert", "update"]},
    "$or": [
        {"operationType": "insert"},
        {
            "operationType": "update",
            "updateDescription.updatedFields": {
                "$or": [
                    {"email": {"$exists": True}},
                    {"status": {"$exists": True}},
                    {"subscription_tier": {"$exists": True}},
                ]
            },
        },
    ],
}
SEED_FILTER_NORMALIZED = {
    "operationType": {"$in": ["insert", "update"]},
    "$or": [
        {"operationType": "insert"},
        {
            "operationType": "update",
            "$or": [
                {"updateDescription.updatedFields.email": {"$exists": True}},
                {"updateDescription.updatedFields.status": {"$exists": True}},
                {"updateDescription.updatedFields.subscription_tier": {"$exists": True}},
            ],
        },
    ],
}


# ------------------------------------------------------------------ normalization


def test_seed_filter_is_normalized():
    assert normalize_filter(SEED_FILTER) == SEED_FILTER_NORMALIZED


def test_normalization_is_idempotent_and_keeps_valid_filters():
    assert normalize_filter(SEED_FILTER_NORMALIZED) == SEED_FILTER_NORMALIZED
    plain = {
        "fullDocument.total": {"$gt": 5},
        "ns.coll": {"$in": ["a"]},
        "fullDocument.items": {"$elemMatch": {"$or": [{"a": 1}, {"b": 2}]}},
        "documentKey": {"_id": 1},
        "$expr": {"$gt": ["$a", 1]},
    }
    assert normalize_filter(plain) == plain


def test_operators_in_scoped_branches_apply_to_the_path():
    assert normalize_filter({"price": {"$or": [{"$lt": 5}, {"$gt": 100}]}}) == {
        "$or": [{"price": {"$lt": 5}}, {"price": {"$gt": 100}}]
    }


def test_other_operators_stay_on_the_path_and_nesting_recurses():
    got = normalize_filter(
        {"a": {"$exists": True, "$and": [{"b": {"$nor": [{"c": 1}, {"d": {"$gt": 2}}]}}]}}
    )
    assert got == {
        "a": {"$exists": True},
        "$and": [{"$nor": [{"a.b.c": 1}, {"a.b.d": {"$gt": 2}}]}],
    }


def test_not_over_a_logical_operator_becomes_nor():
    assert normalize_filter({"u": {"$not": {"$or": [{"x": 1}, {"y": 2}]}}}) == {
        "$nor": [{"$or": [{"u.x": 1}, {"u.y": 2}]}]
    }


def test_colliding_clauses_are_combined_with_and():
    got = normalize_filter({"$or": [{"a": 1}, {"b": 1}], "u": {"$or": [{"x": 1}, {"y": 1}]}})
    assert got == {"$and": [{"$or": [{"a": 1}, {"b": 1}]}, {"$or": [{"u.x": 1}, {"u.y": 1}]}]}


@pytest.mark.parametrize(
    "bad",
    [
        {"u": {"$or": [{"$expr": {"$eq": [1, 1]}}]}},
        {"u": {"$or": []}},
        {"u": {"$or": ["x"]}},
    ],
)
def test_unnormalizable_filters_are_errors(bad):
    with pytest.raises(FilterError):
        normalize_filter(bad)


# ------------------------------------------------------------------ options


def test_defaults_fill_every_option_and_subscription_id_defaults_to_the_name():
    got = options.validate("orders_sub", {})
    assert set(got) == set(options.VALID_NAMES)
    assert got["subscription_id"] == "orders_sub"
    assert got["deliver_to"] == "log"
    assert got["watch_collections"] == []
    assert got["max_retry_attempts"] == 3


def test_unknown_option_names_position_suggestion_and_valid_options():
    where = Position(7, 3, 120)
    with pytest.raises(SubscriptionError) as info:
        options.validate("s", {"servce_name": "x"}, {"servce_name": where})
    err = info.value
    assert err.position == where
    assert "'servce_name'" in err.message
    assert "did you mean 'service_name'" in err.message
    for name in ("watch_collections", "event_filter", "deliver_to", "processing_timeout_ms"):
        assert name in err.message


@pytest.mark.parametrize(
    "option, value, expected",
    [
        ("max_retry_attempts", "three", "integer"),
        ("max_retry_attempts", True, "integer"),
        ("batch_size", 0, "at least 1"),
        ("preserve_order", 1, "TRUE or FALSE"),
        ("watch_collections", 5, "JSON_ARRAY"),
        ("watch_collections", ["__queryleaf_event_log"], "system collection"),
        ("event_types", ["insert", "upsert"], "'update'"),
        ("event_filter", "operationType = 'insert'", "JSON_OBJECT"),
        ("full_document", "updatelookup", "did you mean 'updateLookup'"),
        ("full_document_before_change", "on", "'whenAvailable'"),
        ("deliver_to", "ftp://x", "'collection:<name>'"),
        ("deliver_to", "python:mod", "python:<module>:<function>"),
    ],
)
def test_wrong_values_name_the_option_and_what_is_valid(option, value, expected):
    with pytest.raises(SubscriptionError) as info:
        options.validate("s", {option: value}, {option: Position(2, 5)})
    assert f"option {option!r}" in info.value.message
    assert expected in info.value.message
    assert info.value.position == Position(2, 5)


@pytest.mark.parametrize(
    "target",
    [
        "log",
        "collection:audit",
        "https://example.com/hook",
        "python:my_pkg.hooks:on_event",
        "handler:audit",
    ],
)
def test_deliver_to_forms(target):
    assert options.validate("s", {"deliver_to": target})["deliver_to"] == target


def test_single_string_is_accepted_for_list_options():
    got = options.validate("s", {"watch_collections": "users", "event_types": "insert"})
    assert got["watch_collections"] == ["users"] and got["event_types"] == ["insert"]


# ------------------------------------------------------------------ watch pipeline, EXPLAIN


def test_watch_spec_shapes():
    one = WatchSpec.build(options.validate("s", {"watch_collections": ["users"]}))
    assert one.collection == "users" and one.pipeline == []
    many = WatchSpec.build(
        options.validate("s", {"watch_collections": ["a", "b", "a"], "event_types": ["insert"]})
    )
    assert many.collection is None
    assert many.pipeline == [
        {"$match": {"ns.coll": {"$in": ["a", "b"]}}},
        {"$match": {"operationType": {"$in": ["insert"]}}},
    ]
    every = WatchSpec.build(options.validate("s", {}))
    assert every.pipeline == [{"$match": {"ns.coll": {"$not": {"$regex": "^__queryleaf_"}}}}]


def _first(commands, name):
    return next(c for c in commands if name in c)


def test_create_explain_shows_the_normalized_filter_and_the_watch():
    plan = CreateSubscription.build(
        "s",
        {
            "watch_collections": ["users"],
            "event_filter": SEED_FILTER,
            "full_document_before_change": "whenAvailable",
        },
    )
    commands = plan.commands()
    coll_mod = _first(commands, "collMod")
    assert (
        coll_mod["collMod"] == "users"
        and coll_mod["changeStreamPreAndPostImages"]
        == (images.OPTION["changeStreamPreAndPostImages"])
    )
    insert = _first(commands, "insert")
    assert insert["insert"] == names.SUBSCRIPTIONS
    assert insert["documents"][0]["event_filter"] == SEED_FILTER_NORMALIZED
    assert insert["documents"][0]["event_filter_as_written"] == SEED_FILTER
    watch = _first(commands, "aggregate")
    assert watch["aggregate"] == "users"
    assert watch["pipeline"][0]["$changeStream"]["fullDocumentBeforeChange"] == "whenAvailable"
    assert watch["pipeline"][1] == {"$match": SEED_FILTER_NORMALIZED}


def test_retry_policy_delays():
    policy = RetryPolicy(max_retry_attempts=3, retry_delay_ms=100, exponential_backoff=True)
    assert policy.attempts == 4
    assert [policy.delay(n) for n in (1, 2, 3)] == [0.1, 0.2, 0.4]
    flat = RetryPolicy(3, 100, False, dead_letter_queue_enabled=False)
    assert [flat.delay(n) for n in (1, 2, 3)] == [0.1, 0.1, 0.1]
    assert flat.exhausted_status == "failed"


def test_sql_where_joins_the_watch_pipeline_after_event_filter():
    where = {"fullDocument.total": {"$gt": 100}}
    plan = CreateSubscription.build(
        "big_orders",
        {"watch_collections": ["orders"], "event_filter": {"operationType": "insert"}},
        where=where,
    )
    watch = _first(plan.commands(), "aggregate")
    assert watch["pipeline"][1:] == [{"$match": {"operationType": "insert"}}, {"$match": where}]
