"""How results look in the table format: cut cells, the vertical view, NULL, CSV, the pager,
SHOW EVENT_SUBSCRIPTIONS at 120 columns, SELECT * columns, the banner and Result's repr."""

from __future__ import annotations

import io
import re

from event_helpers import drain
from pymongo import MongoClient
from test_cli import Terminal, cli  # noqa: F401  (the fixture)

from queryleaf.cli.banner import banner, uri_hosts
from queryleaf.cli.output import Printer, cell_text, csv_field
from queryleaf.cli.render import CUT, MIN_CUT_WIDTH
from queryleaf.result import Result

BIO = "a long biography that goes on " * 6


def shown(rows, columns, width=80, **settings) -> list[str]:
    out = io.StringIO()
    printer = Printer(out=out, width=width)
    for name, value in settings.items():
        setattr(printer, name, value)
    printer.result(Result(columns, rows, len(rows), "SELECT"))
    return out.getvalue().splitlines()


# ---------------------------------------------------------------- table and vertical view


def test_a_table_that_fits_is_printed_whole():
    lines = shown([{"name": "ann", "age": 31}], ["name", "age"])
    assert lines[0].split() == ["name", "age"]
    assert lines[2].split() == ["ann", "31"]
    assert re.fullmatch(r"1 row \(\d+\.\d ms\)", lines[-1])


def test_long_values_are_cut_with_a_marker_and_headers_kept_whole():
    rows = [{"name": "ann", "biography": BIO, "age": 31}]
    lines = shown(rows, ["name", "biography", "age"], width=60)
    assert lines[0].split() == ["name", "biography", "age"]
    assert len(lines) == 4  # header, rule, one row, footer: nothing folded
    assert all(len(line) <= 60 for line in lines)
    assert CUT in lines[2] and lines[2].split()[-1] == "31"


def test_a_row_too_wide_even_cut_is_shown_as_records():
    columns = [f"column_number_{i}" for i in range(6)]
    rows = [{c: f"value {i}" for i, c in enumerate(columns)}, dict.fromkeys(columns)]
    lines = shown(rows, columns, width=60)
    assert lines[0].startswith("-[ RECORD 1 ]-")
    assert lines[1] == "column_number_0 | value 0"
    assert lines[7].startswith("-[ RECORD 2 ]-")
    assert lines[8] == "column_number_0 | <null>"


def test_the_vertical_view_wraps_values_only_between_words():
    token = "x" * 70  # longer than the room beside the names: kept whole
    value = f"{BIO} {token} end"
    lines = shown([{"id": 1, "text": value}], ["id", "text"], width=50, expanded="on")
    assert lines[0].startswith("-[ RECORD 1 ]")
    body = [line.split(" | ", 1)[1] for line in lines[2:-1]]  # after the id line
    assert " ".join(body) == " ".join(value.split())  # every word kept, in order
    assert token in body
    assert all(len(line) <= 50 for line in lines if token not in line)


def test_expanded_off_prints_a_table_however_wide():
    columns = [f"column_number_{i}" for i in range(6)]
    lines = shown([dict.fromkeys(columns, 1)], columns, width=40, expanded="off")
    assert lines[0].split() == columns


def test_null_is_not_the_string_null():
    rows = [{"s": "NULL", "n": None, "e": ""}]
    assert shown(rows, ["s", "n", "e"])[2].split() == ["NULL", "<null>"]
    assert shown(rows, ["s", "n", "e"], null_text="∅")[2].split() == ["NULL", "∅"]


def test_line_breaks_in_a_cell_do_not_break_the_table():
    lines = shown([{"a": "one\ntwo", "b": 2}], ["a", "b"])
    assert lines[2].split() == ["one↵two", "2"]


def test_a_cut_keeps_at_least_min_cut_width_characters():
    columns = [f"c{i}" for i in range(8)]
    rows = [dict.fromkeys(columns, "y" * 40)]
    lines = shown(rows, columns, width=8 * (MIN_CUT_WIDTH + 2))
    assert lines[2].split()[0] == "y" * (MIN_CUT_WIDTH - 1) + CUT


# ---------------------------------------------------------------- CSV


def test_csv_tells_null_from_the_empty_string():
    assert [csv_field(v) for v in (None, "", "a,b", 'say "hi"', 3)] == [
        "",
        '""',
        '"a,b"',
        '"say ""hi"""',
        "3",
    ]
    out = io.StringIO()
    printer = Printer("csv", out=out, err=io.StringIO())
    rows = [{"a": 1, "b": ""}, {"a": 2, "b": None}]
    printer.result(Result(["a", "b"], rows, 2, "SELECT"))
    printer.result(Result(["a"], [], 0, "SELECT"))
    assert out.getvalue() == 'a,b\n1,""\n2,\n\na\n'


def test_csv_shell_output_is_only_data(cli):  # noqa: F811 (the fixture)
    proc = cli(
        "--format",
        "csv",
        input="INSERT INTO t (a, b) VALUES (1, ''), (2, NULL);\nSELECT a, b FROM t;\n\\d\n",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == 'a,b\n1,""\n2,\n\nname,type\nt,collection\n'


# ---------------------------------------------------------------- SELECT * columns


def test_select_star_columns_id_first_then_first_appearance(ql):
    ql.execute("INSERT INTO t (_id, b, a) VALUES (1, 1, 2)")
    ql.execute("INSERT INTO t (c, _id, b) VALUES (3, 2, 4)")
    assert ql.execute("SELECT * FROM t ORDER BY _id").columns == ["_id", "b", "a", "c"]
    assert ql.execute("SELECT * FROM t ORDER BY _id DESC").columns == ["_id", "c", "b", "a"]


def test_an_empty_select_star_has_the_sampled_columns(ql):
    ql.execute("INSERT INTO t (b, a) VALUES (1, 2)")
    result = ql.execute("SELECT * FROM t WHERE b > 5 ORDER BY a LIMIT 3")
    assert result.rows == [] and result.columns == ["_id", "b", "a"]
    assert shown(result.rows, result.columns)[0].split() == ["_id", "b", "a"]
    # A reshaped result is not the collection's documents: no columns are guessed.
    ql.execute("INSERT INTO u (k) VALUES (1)")
    joined = ql.execute("SELECT * FROM t JOIN u ON u.k = t.b WHERE t.b > 5")
    assert joined.rows == [] and joined.columns in ([], ["t", "u"])
    with ql.transaction():  # the rows are read inside it, the header still comes from the sample
        inside = ql.execute("SELECT * FROM t WHERE b > 5")
    assert inside.rows == [] and inside.columns == ["_id", "b", "a"]


# ---------------------------------------------------------------- SHOW EVENT_SUBSCRIPTIONS


SUBSCRIPTIONS = """
CREATE EVENT_SUBSCRIPTION inventory_events AS (
  subscription_id = 'inventory_management', service_name = 'inventory_service',
  watch_collections = JSON_ARRAY('orders'), event_types = JSON_ARRAY('insert', 'update'),
  description = 'Reserve stock for new and changed orders');
CREATE EVENT_SUBSCRIPTION analytics_events AS (
  subscription_id = 'realtime_analytics', service_name = 'analytics_service',
  watch_collections = JSON_ARRAY('users', 'orders', 'products'),
  description = 'Feed the real-time analytics pipeline');
"""


def test_show_event_subscriptions_fits_12_lines_at_120_columns(ql):
    ql.execute_script(SUBSCRIPTIONS)
    ql.execute("INSERT INTO orders (sku, quantity) VALUES ('kb-1', 1), ('ms-2', 2)")
    drain(ql, max_events=4)
    result = ql.execute("SHOW EVENT_SUBSCRIPTIONS")
    assert result.columns == [
        "name",
        "status",
        "service",
        "collections",
        "received",
        "processed",
        "failed",
        "dead_lettered",
        "lag_s",
        "owner",
    ]
    assert [r["name"] for r in result.rows] == ["analytics_events", "inventory_events"]
    assert all(r["received"] == 2 for r in result.rows)
    lines = shown(result.rows, result.columns, width=120)
    assert len(lines) <= 12 and "RECORD" not in lines[0], "\n".join(lines)
    assert all(len(line) <= 120 for line in lines)
    full = ql.execute("SHOW EVENT_SUBSCRIPTIONS FULL")
    assert full.columns == ql.execute("SELECT * FROM EVENT_SUBSCRIPTIONS()").columns
    assert {"options", "watch", "resume_token", "worker_status"} <= set(full.columns)


def test_a_change_stream_event_is_readable_as_a_record_at_120_columns(ql):
    ql.execute_script(SUBSCRIPTIONS)
    ql.execute("INSERT INTO orders (sku, quantity, note) VALUES ('kb-1', 1, 'gift wrap')")
    drain(ql, max_events=2)
    result = ql.execute("SELECT * FROM CHANGE_STREAM_EVENTS() LIMIT 1")
    lines = shown(result.rows, result.columns, width=120)
    assert lines[0].startswith("-[ RECORD 1 ]")
    names = max(len(c) for c in result.columns)
    assert len(lines) <= len(result.columns) * 2, "\n".join(lines)
    text = "\n".join(lines)
    for column in result.columns:
        value = result.rows[0][column]
        for word in (cell_text(value) if value is not None else "<null>").split():
            assert word in text, word  # never broken mid-token
    for line in lines[1:-1]:
        assert line[names : names + 3] in (" | ", " |")


# ---------------------------------------------------------------- banner and repr


def test_the_banner_names_the_server_and_its_version(ql):
    text = banner(ql)
    assert re.search(r"on MongoDB \d+\.\d+\.\d+ at 127\.0\.0\.1:\d+, database t\d+_", text)
    assert uri_hosts("mongodb://ann:secret@db1:27017,db2/shop?tls=true") == "db1:27017,db2"
    assert uri_hosts("mongodb+srv://ann:secret@cluster0.example.net/") == "cluster0.example.net"


def test_result_repr_says_what_it_holds(ql):
    assert repr(ql.execute("INSERT INTO t (a, b) VALUES (1, 2), (3, 4)")) == (
        "<Result INSERT: 2 affected>"
    )
    streamed = ql.execute("SELECT a, b FROM t")
    assert repr(streamed) == "<Result SELECT: rows not read yet; columns a, b>"
    assert len(streamed.rows) == 2  # the repr read nothing
    assert repr(streamed) == "<Result SELECT: 2 rows; columns a, b>"
    wide = Result([f"c{i}" for i in range(7)], [], 0, "SELECT")
    assert repr(wide) == "<Result SELECT: 0 rows; columns c0, c1, c2, c3, c4, … (7 in all)>"
    assert repr(ql.explain("SELECT a FROM t")) == "<Result EXPLAIN: 1 command>"


# ---------------------------------------------------------------- the shell on a terminal


def _seed_wide(server, dbname, rows=1):
    MongoClient(server.uri)[dbname]["wide"].insert_many(
        [
            {"_id": i, "name": f"n{i}", **{f"a_rather_long_field_{k}": k for k in range(5)}}
            for i in range(rows)
        ]
    )


def test_repl_vertical_view_auto_on_and_backslash_g(server, dbname, tmp_path):
    _seed_wide(server, dbname)
    term = Terminal(server, dbname, tmp_path, size=(40, 60))
    prompt = f"{dbname}>".encode()
    try:
        assert b"queryleaf " in term.read_until(prompt)  # the banner
        term.write(b"SELECT * FROM wide;\r")  # too wide for 60 columns: records
        assert b"-[ RECORD 1 ]" in term.read_until(b"1 row")
        term.read_until(prompt)
        term.write(b"SELECT _id, name FROM wide;\r")  # fits: a table
        assert b"RECORD" not in term.read_until(b"1 row")
        term.read_until(prompt)
        term.write(b"SELECT _id, name FROM wide\\G\r")  # \G: records for this statement
        out = term.read_until(b"1 row")
        assert b"-[ RECORD 1 ]" in out and b"name | n0" in out
        term.read_until(prompt)
        term.write(b"\\x on\r")
        term.read_until(b"expanded display is on")
        term.write(b"SELECT name FROM wide;\r")
        assert b"-[ RECORD 1 ]" in term.read_until(b"1 row")
        term.write(b"\\x off\r")
        term.read_until(b"expanded display is off")
        term.write(b"SELECT * FROM wide;\r")
        out = term.read_until(b"1 row")
        assert b"RECORD" not in out and b"a_rather_long_field_4" in out
        term.write(b"\\null (none)\r")
        term.read_until(b"NULL is shown as (none)")
        term.write(b"SELECT nothing FROM wide;\r")
        assert b"(none)" in term.read_until(b"1 row")
        term.write(b"\\q\r")
        assert term.proc.wait(timeout=20) == 0
    finally:
        term.close()
        MongoClient(server.uri).drop_database(dbname)


def test_repl_pages_tall_results_unless_the_pager_is_off(server, dbname, tmp_path):
    _seed_wide(server, dbname, rows=30)
    term = Terminal(server, dbname, tmp_path, size=(12, 100))
    prompt = f"{dbname}>".encode()
    try:
        term.read_until(prompt)
        term.write(b"\\pager sed s/^/PAGED:/\r")
        term.read_until(b"pager: sed")
        term.write(b"SELECT _id, name FROM wide ORDER BY _id;\r")  # 30 rows: paged
        out = term.read_until(b"30 rows")
        assert b"PAGED:" in out and b"PAGED: 29  n29" in out
        term.write(b"SELECT _id, name FROM wide WHERE _id < 3;\r")  # fits the screen
        assert b"PAGED" not in term.read_until(b"3 rows")
        term.write(b"\\pager off\r")
        term.read_until(b"pager: off")
        term.write(b"SELECT _id, name FROM wide ORDER BY _id;\r")
        out = term.read_until(b"30 rows")
        assert b"PAGED" not in out and b"29  n29" in out
        term.write(b"\\q\r")
        assert term.proc.wait(timeout=20) == 0
    finally:
        term.close()
        MongoClient(server.uri).drop_database(dbname)
