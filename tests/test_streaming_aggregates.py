"""Live aggregate queries (GROUP BY / aggregates / WINDOW over CHANGE_STREAM): the split
between the server and the client, and the rows of ``QueryLeaf.stream`` against the real
server. The window engine's semantics (every window kind, grace, late events) are tested on
their own in tests/test_live_windows.py."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict

from test_cli import _env
from test_streaming import later

from queryleaf.planner import plan_statement
from queryleaf.sql.parser import parse

ORDERS = [
    {"status": "new", "total": 10},
    {"status": "paid", "total": 5},
    {"status": "new", "total": None},
    {"status": "new", "total": 7},
    {"status": "paid"},
]


def _write(ql):
    for doc in ORDERS:
        ql.db.orders.insert_one(dict(doc))


def test_the_server_computes_keys_and_arguments_per_change_the_client_aggregates():
    p = plan_statement(
        parse(
            "SELECT full_document.status AS status, COUNT(*) AS n, SUM(full_document.total) AS s"
            " FROM CHANGE_STREAM('orders') GROUP BY status HAVING COUNT(*) > 1 EMIT CHANGES"
        )
    )
    project = p.pipeline[-1]["$project"]
    assert project["_id"] == 1 and {"k0", "a0"} <= set(project)
    assert "$group" not in json.dumps(p.pipeline)
    assert p.aggregation is not None and p.aggregation.window is None
    comment = p.commands()[0]["$comment"]
    assert "group by full_document.status" in comment and "having COUNT(*) > 1" in comment


def test_a_running_aggregate_emits_each_keys_updated_row(ql):
    ql.db.create_collection("orders")
    sql = (
        "SELECT full_document.status AS status, COUNT(*) AS n, COUNT(full_document.total) AS c,"
        " SUM(full_document.total) AS s, AVG(full_document.total) AS a,"
        " MAX(full_document.total) - MIN(full_document.total) AS spread"
        " FROM CHANGE_STREAM('orders') WHERE operation_type = 'insert'"
        " GROUP BY full_document.status EMIT CHANGES LIMIT 5"
    )
    with ql.stream(sql, timeout=20) as rows:
        later(lambda: _write(ql))
        got = list(rows)
    assert len(got) == 5  # one updated row per change
    last = {}
    for row in got:
        last[row["status"]] = row
    assert last["new"] == {"status": "new", "n": 3, "c": 2, "s": 17, "a": 8.5, "spread": 3}
    assert last["paid"] == {"status": "paid", "n": 2, "c": 1, "s": 5, "a": 5.0, "spread": 0}
    # SUM over no non-NULL value is NULL: the first 'paid' row had 5; a NULL-only group would
    # have None (the engine's own tests cover it).
    assert got[2] == {"status": "new", "n": 2, "c": 1, "s": 10, "a": 10.0, "spread": 0}


def test_tumbling_windows_emit_final_rows_when_they_close_on_a_quiet_stream(ql):
    ql.db.create_collection("orders")
    sql = (
        "SELECT full_document.status AS status, WINDOW_START, WINDOW_END, COUNT(*) AS n,"
        " SUM(full_document.total) AS revenue"
        " FROM CHANGE_STREAM('orders') WINDOW TUMBLING (SIZE 1 SECOND)"
        " GROUP BY full_document.status HAVING COUNT(*) >= 1 EMIT FINAL"
    )
    counts: dict[str, int] = defaultdict(int)
    revenue: dict[str, int] = defaultdict(int)
    with ql.stream(sql, timeout=6) as rows:
        later(lambda: _write(ql))
        for row in rows:  # no write after the last order: time alone closes its window
            assert (row["WINDOW_END"] - row["WINDOW_START"]).total_seconds() == 1
            assert (row.window_start, row.window_end, row.final) == (
                row["WINDOW_START"],
                row["WINDOW_END"],
                True,
            )
            assert row["WINDOW_START"].microsecond == 0
            counts[row["status"]] += row["n"]
            revenue[row["status"]] += row["revenue"] or 0
            if sum(counts.values()) == len(ORDERS):
                break
    assert dict(counts) == {"new": 3, "paid": 2}
    assert dict(revenue) == {"new": 17, "paid": 5}


def test_group_by_alone_and_expressions_over_aggregates(ql):
    ql.db.create_collection("orders")
    sql = (
        "SELECT full_document.status AS status, ROUND(SUM(full_document.total) * 1.0 / COUNT(*), 2)"
        " AS per_order, CASE WHEN COUNT(*) > 2 THEN 'busy' ELSE 'quiet' END AS load"
        " FROM CHANGE_STREAM('orders') GROUP BY status EMIT CHANGES LIMIT 5"
    )
    with ql.stream(sql, timeout=20) as rows:
        later(lambda: _write(ql))
        got = list(rows)
    assert got[-2] == {"status": "new", "per_order": 5.67, "load": "busy"}
    assert got[-1] == {"status": "paid", "per_order": 2.5, "load": "quiet"}
    keys_only = "SELECT full_document.status FROM CHANGE_STREAM('orders') GROUP BY 1 EMIT CHANGES"
    assert plan_statement(parse(keys_only)).aggregation is not None


def test_the_cli_prints_aggregate_rows_as_json_lines(server, dbname, tmp_path):
    from pymongo import MongoClient

    client = MongoClient(server.uri)
    client[dbname].create_collection("orders")
    sql = (
        "SELECT full_document.status AS status, COUNT(*) AS n FROM CHANGE_STREAM('orders') "
        "GROUP BY full_document.status EMIT CHANGES LIMIT 3"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "queryleaf", "--uri", server.uri, "--db", dbname]
        + ["--format", "json", "--timeout", "30", "-e", sql],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(tmp_path),
    )
    try:
        first_line = ""

        def write():
            for doc in ORDERS[:3]:
                client[dbname].orders.insert_one(dict(doc))

        later(write, delay=1.5)
        first_line = proc.stdout.readline()
        rest = proc.stdout.read()
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
    finally:
        proc.kill()
        client.drop_database(dbname)
        client.close()
    lines = [json.loads(line) for line in (first_line + rest).splitlines()]
    assert lines == [
        {"status": "new", "n": 1},
        {"status": "paid", "n": 1},
        {"status": "new", "n": 2},
    ]


def test_the_shell_redraws_a_live_aggregate_in_place_until_ctrl_c(server, dbname, tmp_path):
    import time

    from test_cli import Terminal

    import queryleaf

    client = queryleaf.connect(server.uri, database=dbname)
    client.db.create_collection("orders")
    term = Terminal(server, dbname, tmp_path)
    prompt = f"{dbname}>".encode()
    try:
        term.read_until(prompt)
        term.write(
            b"SELECT full_document.status AS status, COUNT(*) AS n FROM CHANGE_STREAM('orders')"
            b" GROUP BY full_document.status EMIT CHANGES;\r"
        )
        time.sleep(1.5)
        for status in ("new", "paid", "new"):
            client.db.orders.insert_one({"status": status})
        screen = term.read_until(b"paid").decode(errors="replace")
        term.read_until(b"\x1b")  # the next redraw: 'new' counted twice, in its first place
        time.sleep(0.5)
        term.write(b"\x03")
        rest = term.read_until(b"change stream closed").decode(errors="replace")
        assert "status" in screen
        final = rest.rsplit("status", 1)[-1]
        assert final.index("new") < final.index("paid")  # updated where it stands
        assert " 2" in final.split("new", 1)[1].split("\n", 1)[0]
        term.read_until(prompt)
        term.write(b"\\q\r")
        assert term.proc.wait(timeout=20) == 0
    finally:
        term.close()
        client.client.drop_database(dbname)
        client.close()


def test_the_sql_of_docs_streaming_parses():
    import re
    from pathlib import Path

    from queryleaf.sql.parser import parse_script

    text = (Path(__file__).parents[1] / "docs" / "streaming.md").read_text()
    blocks = re.findall(r"```sql\n(.*?)```", text, re.S)
    assert len(blocks) >= 3
    for block in blocks:
        parse_script(block)


def test_late_events_are_counted_on_the_rows(ql):
    ql.db.create_collection("orders")
    sql = (
        "SELECT COUNT(*) AS n FROM CHANGE_STREAM('orders') WINDOW TUMBLING (SIZE 1 SECOND) "
        "EMIT CHANGES LIMIT 1"
    )
    with ql.stream(sql, timeout=20) as rows:
        later(lambda: ql.db.orders.insert_one({}))
        assert list(rows) == [{"n": 1}]
        assert rows.late_events == 0
