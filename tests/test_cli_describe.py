"""The REPL's shorthands (\\d NAME, \\dt, \\l, \\c ...), other shells' habits, and statement
splitting that respects strings, quoted names and comments."""

from __future__ import annotations

import json

import pytest
from pymongo import MongoClient

from queryleaf.cli.describe import shorthand
from queryleaf.cli.habits import hint, runs_alone
from queryleaf.cli.repl import is_complete
from tests import test_cli
from tests.test_cli import _ok, _seed

cli = test_cli.cli  # the fixture that runs the command line


def test_shorthands_are_statements():
    assert shorthand("\\d", "") == "SHOW TABLES"
    assert shorthand("\\d", "orders") == "DESCRIBE orders"
    assert shorthand("\\d", "my orders") == 'DESCRIBE "my orders"'
    assert shorthand("\\di", "select") == 'SHOW INDEXES FROM "select"'
    assert shorthand("\\c", "shop") == "USE shop"
    assert shorthand("\\c", "") is None
    assert shorthand("\\l", "") == "SHOW DATABASES"
    assert shorthand("\\x", "") is None


def test_repl_describes_and_switches_database(cli, server, dbname):
    _seed(server, dbname)
    other = dbname + "_x"
    MongoClient(server.uri)[other].things.insert_one({"a": 1})
    script = f"\\d people\n\\dt\n\\l\n\\c {other}\n\\dt\nuse {dbname}\n\\di people\n"
    proc = _ok(cli("--format", "json", input=script))
    described, tables, databases, other_tables, indexes = (
        json.loads(line) for line in proc.stdout.splitlines()
    )
    assert {"field": "name", "types": "string", "present": "100%"} in described
    assert tables == [{"name": "people", "type": "collection"}]
    assert {r["name"] for r in databases} >= {dbname, other}
    assert other_tables == [{"name": "things", "type": "collection"}]
    assert indexes[0]["name"] == "_id_"
    assert "collection people: 1 document (all sampled)\nindexes: _id_ (_id)\n" in proc.stderr
    MongoClient(server.uri).drop_database(other)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("show dbs", "SHOW DATABASES; (or \\l)"),
        (".tables", "SHOW TABLES; (or \\dt)"),
        (".schema orders", "DESCRIBE orders; (or \\d orders)"),
        ("db.orders.find({status: 'paid'})", "SELECT * FROM orders WHERE ...;"),
        ("db.orders.insertOne({a: 1})", "INSERT INTO orders (...) VALUES (...);"),
        ("help", "type \\? for help"),
    ],
)
def test_habits_get_a_hint(typed, expected):
    assert runs_alone(typed)
    found = hint(typed)
    assert found is not None and expected in found


def test_sql_gets_no_hint():
    assert hint("SELECT * FROM db.orders") is None
    assert hint("use shop") is None
    assert runs_alone("use shop") and runs_alone("SHOW tables")
    assert not runs_alone("SELECT 1")


def test_repl_prints_hints(cli):
    proc = _ok(cli(input="show dbs\n.tables\nSELECT 1 AS one;\n"))
    assert "in queryleaf: SHOW DATABASES; (or \\l)" in proc.stdout
    assert "in queryleaf: SHOW TABLES; (or \\dt)" in proc.stdout
    assert "1 row" in proc.stdout
    assert "error" not in proc.stderr


@pytest.mark.parametrize(
    "text",
    [
        "SELECT 'a;\n",
        "SELECT 'a;\nb';",  # complete: the string closed, then ';'
        'SELECT "x;\n',
        "SELECT `x;\n",
        "SELECT 1 -- no end;\n",
        "SELECT /* ; */ 1",
        "SELECT 1 /* ;\n",
    ],
)
def test_semicolons_inside_tokens_do_not_end_input(text):
    assert is_complete(text) == text.endswith("';")


def test_repl_runs_a_string_holding_a_semicolon_at_a_line_end(cli):
    script = "SELECT 'first;\nsecond' AS s;\nSELECT 2 AS n; -- done\n"
    proc = _ok(cli("--format", "json", input=script))
    first, second = (json.loads(line) for line in proc.stdout.splitlines())
    assert first == [{"s": "first;\nsecond"}]
    assert second == [{"n": 2}]


def test_tab_completes_tables_and_nested_fields_on_a_terminal(server, dbname, tmp_path):
    MongoClient(server.uri)[dbname]["clients"].insert_one({"customer": {"name": "Ada"}})
    term = test_cli.Terminal(server, dbname, tmp_path)
    try:
        term.read_until(f"{dbname}>".encode())
        term.write(b"SELECT customer FROM cli\t")
        term.read_until(b"ents")  # the screen is redrawn from the cursor: only the rest shows
        term.write(b" WHERE customer.na")
        term.read_until(b"customer.na")  # the echo, before asking for completions
        term.write(b"\t")
        term.read_until(b"me")
        term.write(b" = 'Ada';\r")
        term.read_until(b"1 row")
        term.write(b"\\q\r")
        assert term.proc.wait(timeout=20) == 0
    finally:
        term.close()
        MongoClient(server.uri).drop_database(dbname)
    history = (tmp_path / "data" / "repl_history").read_text()
    assert "+SELECT customer FROM clients WHERE customer.name = 'Ada';" in history
