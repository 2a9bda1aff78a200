"""The REPL's completer on prompt_toolkit Documents, and its highlighting lexer."""

from __future__ import annotations

import pytest
from prompt_toolkit.completion import CompleteEvent, FuzzyCompleter
from prompt_toolkit.document import Document

from queryleaf.cli.completion import CatalogCache, SqlCompleter, SqlLexer, named_tables


@pytest.fixture()
def shop(ql):
    ql.db.orders.insert_many(
        [
            {"_id": 1, "status": "paid", "customer": {"name": "Ada", "tier": 2}},
            {"_id": 2, "total": 3, "customer": {"name": "Bob", "address": {"city": "Oslo"}}},
        ]
    )
    ql.db["odd name"].insert_one({"x": 1})
    ql.execute("CREATE VIEW paid AS SELECT _id FROM orders WHERE status = 'paid'")
    ql.execute(
        "CREATE EVENT_SUBSCRIPTION order_events AS (watch_collections = JSON_ARRAY('orders'), "
        "deliver_to = 'log')"
    )
    return ql


def complete(ql, text: str, fuzzy: bool = False) -> dict[str, str]:
    """display → meta of the completions at the end of ``text``."""
    completer = SqlCompleter(CatalogCache(ql))
    chosen = FuzzyCompleter(completer) if fuzzy else completer
    found = chosen.get_completions(Document(text), CompleteEvent(completion_requested=True))
    return {c.display_text: c.display_meta_text for c in found}


def test_tables_after_from(shop):
    found = complete(shop, "SELECT * FROM o")
    assert found["orders"] == "collection"
    assert "paid" not in found
    assert set(complete(shop, "SELECT * FROM ")) >= {"orders", "paid", "odd name"}
    assert complete(shop, "SELECT * FROM ")["paid"] == "view"
    assert complete(shop, "SELECT * FROM CH")["CHANGE_STREAM_EVENTS()"] == "system table"
    assert "orders" in complete(shop, "DESCRIBE ")
    assert "orders" in complete(shop, "\\d ")


def test_a_name_that_needs_quotes_is_quoted(shop):
    completer = SqlCompleter(CatalogCache(shop))
    doc = Document("SELECT * FROM od")
    (found,) = completer.get_completions(doc, CompleteEvent())
    assert found.text == '"odd name"'


def test_functions_have_their_signature(shop):
    found = complete(shop, "SELECT SUBS")
    assert found["SUBSTRING"].startswith("SUBSTRING(s, pos[, len])")
    assert complete(shop, "SELECT CONC")["CONCAT"].startswith("CONCAT(a, ...)")


def test_keywords(shop):
    assert complete(shop, "SEL")["SELECT"] == "keyword"
    assert "EVENT_SUBSCRIPTIONS" in complete(shop, "SHOW EV")


def test_fields_of_the_tables_in_the_statement(shop):
    found = complete(shop, "SELECT FROM orders WHERE st")
    assert found["status"] == "field of orders"


def test_nested_fields_after_a_dot(shop):
    assert complete(shop, "SELECT customer.") == {}  # no table named yet
    text = "SELECT o.customer.name FROM orders o WHERE customer."
    assert set(complete(shop, text)) == {"customer.name", "customer.tier", "customer.address"}
    assert set(complete(shop, "SELECT * FROM orders o WHERE o.customer.address.")) == {
        "o.customer.address.city"
    }


def test_subscriptions_after_event_subscription(shop):
    assert complete(shop, "PAUSE EVENT_SUBSCRIPTION ")["order_events"] == "subscription"
    assert "order_events" in complete(shop, "DROP EVENT_SUBSCRIPTION IF EXISTS ord")


def test_options_inside_create_event_subscription(shop):
    found = complete(shop, "CREATE EVENT_SUBSCRIPTION s AS (deliver_to = 'log', wat")
    assert "watch_collections" in found
    assert "SELECT" not in found
    found = complete(shop, "CREATE EVENT_SUBSCRIPTION s AS (")
    assert "deliver_to" in found


def test_databases_after_use(shop):
    assert shop.database_name in complete(shop, "USE ")


def test_fuzzy_matching(shop):
    assert "orders" in complete(shop, "SELECT * FROM ors", fuzzy=True)
    assert "SUBSTRING" in complete(shop, "SELECT sbstr", fuzzy=True)


def test_completion_never_raises(shop, monkeypatch):
    def fail(*args):
        raise RuntimeError("the server is gone")

    monkeypatch.setattr("queryleaf.introspection.user_collections", fail)
    assert "SELECT" in complete(shop, "SEL")  # a failed catalog read: no names, no error
    assert complete(shop, "SELECT * FROM o") == {}
    monkeypatch.setattr(CatalogCache, "tables", fail)
    assert complete(shop, "SELECT * FROM o") == {}  # an error in the completer itself


def test_named_tables_with_aliases():
    assert named_tables("SELECT * FROM orders o JOIN people AS p ON 1 WHERE") == {
        "orders": "orders",
        "o": "orders",
        "people": "people",
        "p": "people",
    }


def test_lexer_highlights_the_dialect():
    lexer = SqlLexer()
    fragments = lexer.fragments(
        "SELECT CONCAT(a, 'x;y') FROM t -- note\nSHOW EVENT_SUBSCRIPTIONS; REPLAY DEAD_LETTER_EVENTS"
    )
    styles = {text: style for style, text in fragments}
    assert styles["SELECT"] == "class:pygments.keyword"
    assert styles["EVENT_SUBSCRIPTIONS"] == "class:pygments.keyword"
    assert styles["DEAD_LETTER_EVENTS"] == "class:pygments.keyword"
    assert styles["CONCAT"] == "class:pygments.name.function"
    assert styles["'x;y'"] == "class:pygments.literal.string"
    assert styles["-- note"] == "class:pygments.comment"
    assert styles["a"] == ""
    get_line = lexer.lex_document(Document("SELECT '\nx' FROM t"))
    assert get_line(1)[0] == ("class:pygments.literal.string", "x'")
