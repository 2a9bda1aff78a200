"""A literal webhook_secret is stored (the worker signs with it) and never shown: not by EXPLAIN,
SHOW, the table functions, the CLI, worker logs or the messages of failing statements. Each
surface's text is searched for the secret."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import logging
import os
import subprocess
import sys
import threading

import pytest
from event_helpers import definition, log_rows, wait_for

from queryleaf import dbapi
from queryleaf.errors import QueryLeafError
from queryleaf.events import names
from queryleaf.events import options as opts
from queryleaf.secret import MASK, Secret, masked, reveal
from queryleaf.sql.redact import RedactedSql, scrub, secret_spans

SECRET = "hunter2-SECRET-xyz"
ALTERED = "swordfish-SECRET-abc"
FRAGMENTS = (SECRET, "hunter2-SEC", ALTERED, "swordfish-SEC")


def assert_hidden(text: str, where: str) -> None:
    for fragment in FRAGMENTS:
        assert fragment not in text, f"{where} shows the secret:\n{text}"


def _create(url: str, secret: str = SECRET, name: str = "hook") -> str:
    return (
        f"CREATE EVENT_SUBSCRIPTION {name} AS (watch_collections = 'orders',"
        f" deliver_to = '{url}', webhook_secret = '{secret}',"
        " max_retry_attempts = 1, retry_delay_ms = 10)"
    )


class _Verifier(http.server.BaseHTTPRequestHandler):
    """Checks each POST's signature against the server's ``key``; 500 for ``{"_id": 1}``."""

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        expected = "sha256=" + hmac.new(self.server.key.encode(), body, hashlib.sha256).hexdigest()
        signed = hmac.compare_digest(expected, self.headers.get("X-Queryleaf-Signature-256", ""))
        self.server.posts.append(signed)
        self.send_response(500 if b'"documentKey": {"_id": 1}' in body else 204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture()
def receiver():
    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Verifier)
    web.key = SECRET
    web.posts = []
    web.url = f"http://127.0.0.1:{web.server_port}/hook"
    threading.Thread(target=web.serve_forever, daemon=True).start()
    yield web
    web.shutdown()
    web.server_close()


# ------------------------------------------------------------------ EXPLAIN


def test_explain_shows_the_commands_with_the_secret_masked(ql):
    create = _create("https://example.com/hook")
    rows = ql.execute("EXPLAIN " + create).rows
    assert_hidden(repr(rows), "EXPLAIN CREATE")
    insert = next(r for r in rows if "insertOne" in r["mongosh"])
    assert "webhook_secret: '***'" in insert["mongosh"]
    assert '"webhook_secret": "***"' in insert["json"]
    # The plan carries the credential itself (what CREATE stores), displayed as '***'.
    (document,) = next(c for c in ql.explain(create).commands if "insert" in c)["documents"]
    assert isinstance(document["options"]["webhook_secret"], Secret)
    assert reveal(document["options"]["webhook_secret"]) == SECRET
    assert_hidden(repr(ql.explain(create).commands), "EXPLAIN commands")

    ql.execute(create)
    alter = f"ALTER EVENT_SUBSCRIPTION hook SET (webhook_secret = '{ALTERED}')"
    rows = ql.execute("EXPLAIN " + alter).rows
    assert_hidden(repr(rows), "EXPLAIN ALTER")
    assert "'options.webhook_secret': '***'" in rows[-1]["mongosh"]  # the catalog update
    # An env: reference is not a secret: shown as written.
    rows = ql.execute(
        "EXPLAIN ALTER EVENT_SUBSCRIPTION hook SET (webhook_secret = 'env:HOOK_SECRET')"
    ).rows
    assert "'options.webhook_secret': 'env:HOOK_SECRET'" in rows[-1]["mongosh"]


# ------------------------------------------------------------------ SHOW and table functions


def test_show_and_event_subscriptions_mask_a_literal_secret(ql):
    ql.execute(_create("https://example.com/hook"))
    ql.execute(_create("https://example.com/other", "env:HOOK_SECRET", name="by_env"))
    assert definition(ql, "hook")["options"]["webhook_secret"] == SECRET  # stored as written
    shown = {r["name"]: r for r in ql.execute("SHOW EVENT_SUBSCRIPTIONS FULL").rows}
    assert_hidden(repr(shown), "SHOW EVENT_SUBSCRIPTIONS FULL")
    assert shown["hook"]["options"]["webhook_secret"] == MASK
    assert shown["by_env"]["options"]["webhook_secret"] == "env:HOOK_SECRET"
    for query in (
        "SELECT * FROM EVENT_SUBSCRIPTIONS()",
        "SELECT name, options FROM EVENT_SUBSCRIPTIONS() ORDER BY name",
        "SELECT options.webhook_secret AS s FROM EVENT_SUBSCRIPTIONS()",
        "SELECT s.options AS o FROM EVENT_SUBSCRIPTIONS() AS s",
    ):
        assert_hidden(repr(ql.execute(query).rows), query)
    # Masked before the query's own stages: no filter can test the secret's characters.
    assert (
        ql.execute(
            f"SELECT name FROM EVENT_SUBSCRIPTIONS() WHERE options.webhook_secret = '{SECRET}'"
        ).rows
        == []
    )
    assert (
        ql.execute(
            "SELECT name FROM EVENT_SUBSCRIPTIONS() WHERE options.webhook_secret LIKE 'hunter%'"
        ).rows
        == []
    )
    ql.execute("CREATE VIEW subs AS SELECT name, options FROM EVENT_SUBSCRIPTIONS()")
    assert_hidden(repr(ql.execute("SELECT * FROM subs").rows), "a view")


def test_a_worker_signs_with_the_real_secret_and_shows_it_nowhere(ql, receiver, caplog):
    caplog.set_level(logging.DEBUG, logger="queryleaf")  # pymongo's own DEBUG logs: see docs
    ql.execute(_create(receiver.url))
    ql.db.orders.insert_many([{"_id": 1}, {"_id": 2}])  # 1 fails (HTTP 500), 2 is delivered
    stop = threading.Event()
    reports = []
    worker = threading.Thread(
        target=lambda: reports.append(ql.run_subscriptions(stop_event=stop, poll_interval=0.2)),
        daemon=True,
    )
    worker.start()
    try:
        wait_for(
            lambda: {r["processing_status"] for r in log_rows(ql)} == {"dead_letter", "completed"},
            what="both events handled",
        )
        active = ql.execute("SELECT * FROM ACTIVE_CHANGE_STREAMS()").rows
        assert [r["subscription_name"] for r in active] == ["hook"]
        assert_hidden(repr(active), "ACTIVE_CHANGE_STREAMS()")
    finally:
        stop.set()
        worker.join(20)
    assert receiver.posts == [True, True, True]  # 2 attempts of event 1, event 2: all signed
    for query in (
        "SELECT * FROM CHANGE_STREAM_EVENTS()",
        "SELECT * FROM DEAD_LETTER_EVENTS()",
        "SELECT * FROM EVENT_SUBSCRIPTIONS()",
    ):
        rows = ql.execute(query).rows
        assert rows
        assert_hidden(repr(rows), query)
    assert "HTTP 500" in caplog.text  # the failure is logged ...
    assert_hidden(caplog.text, "the worker's log")  # ... without the secret
    assert_hidden(repr(reports), "the worker's report")

    # After ALTER the worker signs with the new literal.
    ql.execute(f"ALTER EVENT_SUBSCRIPTION hook SET (webhook_secret = '{ALTERED}')")
    receiver.key, receiver.posts = ALTERED, []
    ql.db.orders.insert_one({"_id": 3})
    ql.run_subscriptions(poll_interval=0.2, idle_timeout=0.8)
    assert receiver.posts == [True]
    assert_hidden(caplog.text, "the worker's log")


# ------------------------------------------------------------------ failing statements


FAILING = [
    pytest.param(
        f"CREATE EVENT_SUBSCRIPTION s AS (deliver_to = 'https://x.org/h',"
        f" webhook_secret = '{SECRET}' oops)",
        "unexpected name 'oops'",
        id="syntax error after the secret",
    ),
    pytest.param(
        f"CREATE EVENT_SUBSCRIPTION s AS (deliver_to = 'https://x.org/h',"
        f" webhook_secret '{SECRET}')",
        "unexpected string '***'",
        id="the secret is the unexpected token",
    ),
    pytest.param(
        f"CREATE EVENT_SUBSCRIPTION s AS (deliver_to = 'https://x.org/h',"
        f" webhook_secret '{SECRET * 3}')",
        "unexpected string '***...'",
        id="the secret clipped in the message",
    ),
    pytest.param(
        f"CREATE EVENT_SUBSCRIPTION s AS (deliver_to = 'https://x.org/h',"
        f" webhook_secret = '{SECRET}",
        "unterminated string",
        id="unterminated secret",
    ),
    pytest.param(
        f"CREATE EVENT_SUBSCRIPTION s AS (deliver_to = 'https://x.org/h',"
        f" webhook_secret = '{SECRET}', bogus_option = 1)",
        "unknown subscription option",
        id="unknown option beside the secret",
    ),
    pytest.param(
        f"CREATE EVENT_SUBSCRIPTION s AS (deliver_to = 'https://x.org/h',"
        f" webhook_secret = '{SECRET}', batch_size = 'ten')",
        "expected integer",
        id="wrong type beside the secret",
    ),
    pytest.param(
        f"CREATE EVENT_SUBSCRIPTION s AS (webhook_secret = '{SECRET}')",
        "only applies to webhook targets",
        id="the secret itself is refused",
    ),
    pytest.param(
        f"CREATE EVENT_SUBSCRIPTION s AS (deliver_to = 'https://x.org/h',"
        f" webhook_secret = UPPER('{SECRET}'))",
        "must be a constant",
        id="not a constant",
    ),
    pytest.param(
        f"CREATE EVENT_SUBSCRIPTION s AS (deliver_to = 'https://x.org/h',"
        f" webhook_secret = '{SECRET}', webhook_secret = 'again-SECRET-xyz')",
        "given twice",
        id="given twice",
    ),
    pytest.param(
        f"CREATE EVENT_SUBSCRIPTION s AS (deliver_to = 'https://x.org/h',"
        f" webhook_secret = OBJECTID('{SECRET}'))",
        "is not a valid ObjectId",
        id="the planner quotes the value",
    ),
]


@pytest.mark.parametrize(("sql", "message"), FAILING)
def test_a_failing_statement_does_not_echo_the_secret(ql, sql, message):
    for attempt in (
        lambda: ql.execute(sql),
        lambda: ql.execute_script(f"SELECT 1; {sql}"),
        lambda: ql.explain(sql),
    ):
        with pytest.raises(QueryLeafError) as caught:
            attempt()
        error = caught.value
        assert message in str(error)
        shown = f"{error}\n{error!r}\n{error.sql}\n{getattr(error, 'token', '')}"
        assert_hidden(shown, "the error")
        assert "again-SECRET" not in shown
    with dbapi.connect(ql.uri, ql.database_name) as conn, pytest.raises(dbapi.DatabaseError) as db:
        conn.cursor().execute(sql)
    assert_hidden(str(db.value), "the DB-API error")


@pytest.mark.parametrize("script", [False, True])
def test_the_caret_stays_under_the_offending_token(ql, script):
    sql = (
        f"CREATE EVENT_SUBSCRIPTION s AS (deliver_to = 'https://x.org/h',\n"
        f"  webhook_secret = '{SECRET}', oops = 1,\n  x = 2)"
    )
    with pytest.raises(QueryLeafError) as caught:
        ql.execute_script(f"SELECT 1;\n{sql}") if script else ql.execute(sql)
    error = caught.value
    # The position is the one of the text as written ...
    line_number = 3 if script else 2
    column = sql.splitlines()[1].index("oops") + 1
    assert (error.position.line, error.position.column) == (line_number, column)
    # ... the excerpt shows the masked line with the caret under the same token.
    line, caret = error.excerpt().splitlines()
    assert line == "  webhook_secret = '***', oops = 1,"
    assert line[caret.index("^") :].startswith("oops")


def test_a_secret_over_several_lines_keeps_later_lines_in_place():
    sql = "ALTER EVENT_SUBSCRIPTION s SET (webhook_secret = 'a\nb\nc', bad)\nSELECT 1 oops"
    redacted = RedactedSql.of(sql)
    assert (
        redacted.text
        == "ALTER EVENT_SUBSCRIPTION s SET (webhook_secret = '***', bad)\nSELECT 1 oops"
    )
    assert redacted.locate(3, 5) == (1, 57)  # 'bad'
    assert redacted.locate(4, 10) == (2, 10)  # 'oops'
    assert redacted.locate(2, 1) == (1, 50)  # inside the secret: at its mask
    assert redacted.text.splitlines()[0][56:59] == "bad"


def test_what_counts_as_a_secret_literal():
    def masked_text(sql: str) -> str:
        return RedactedSql.of(sql).text

    # Quoted option names, any case, comments between, expressions holding several literals.
    assert (
        masked_text("ALTER EVENT_SUBSCRIPTION s SET (\"Webhook_Secret\" /* c */ = 'p')")
        == "ALTER EVENT_SUBSCRIPTION s SET (\"Webhook_Secret\" /* c */ = '***')"
    )
    assert (
        masked_text("x (WEBHOOK_SECRET = CONCAT('a', 'b'), description = 'kept')")
        == "x (WEBHOOK_SECRET = CONCAT('***', '***'), description = 'kept')"
    )
    assert (
        masked_text("x (webhook_secret = 'it''s', y = 'kept')")
        == "x (webhook_secret = '***', y = 'kept')"
    )
    # Not a secret: an env: reference, the option's name in a string or a comment.
    for kept in (
        "x (webhook_secret = 'env:HOOK')",
        "SELECT 'webhook_secret', 'v'",
        "SELECT 1 -- webhook_secret = 'v'\n, 'w'",
    ):
        assert masked_text(kept) == kept
    assert secret_spans("SELECT 1") == []


def test_scrub_masks_quoted_bare_and_clipped_forms():
    sql = f"x (webhook_secret = '{SECRET}')"
    assert scrub(f"unexpected string '{SECRET}'", sql) == "unexpected string '***'"
    assert scrub(f"bad value {SECRET}!", sql) == "bad value ***!"
    assert scrub(f"unexpected string '{SECRET[:10]}...'", sql) == "unexpected string '***...'"


def test_secret_values_display_as_the_mask():
    secret = Secret(SECRET)
    logged = "%s" % secret  # noqa: UP031 - what logging's %-formatting does
    assert (str(secret), repr(secret), f"{secret}", f"{secret:>5}", logged) == (
        MASK,
        repr(MASK),
        MASK,
        "  ***",
        MASK,
    )
    assert secret == SECRET and secret.encode() == SECRET.encode()
    assert reveal(Secret(secret)) == SECRET  # wrapping twice keeps the value
    assert masked({"a": [secret, 1], "b": "plain"}) == {"a": [MASK, 1], "b": "plain"}
    plain = {"a": [1], "b": "plain"}
    assert masked(plain) is plain


def test_declaring_an_option_secret_is_all_it_takes(ql, monkeypatch):
    """No surface names webhook_secret: they read the declaration (here: description)."""
    from queryleaf.sql import redact

    monkeypatch.setattr(opts, "SECRET_OPTIONS", opts.SECRET_OPTIONS | {"description"})
    monkeypatch.setattr(redact, "_SECRET_OPTIONS", redact._SECRET_OPTIONS | {"description"})
    create = (
        "CREATE EVENT_SUBSCRIPTION s AS (description = 'top-SECRET-desc',"
        " watch_collections = 'orders')"
    )
    assert "top-SECRET" not in repr(ql.execute("EXPLAIN " + create).rows)
    ql.execute(create)
    assert definition(ql, "s")["description"] == "top-SECRET-desc"
    assert "top-SECRET" not in repr(ql.execute("SELECT * FROM EVENT_SUBSCRIPTIONS()").rows)
    with pytest.raises(QueryLeafError) as caught:
        ql.execute("CREATE EVENT_SUBSCRIPTION t AS (description = 'top-SECRET-desc', x = 1)")
    assert "top-SECRET" not in str(caught.value)


def test_secret_options_are_not_copied_to_other_columns():
    from queryleaf.events.definition import METADATA

    assert opts.SECRET_OPTIONS == {"webhook_secret"}
    assert not opts.SECRET_OPTIONS & set(METADATA)
    assert set(names.subscription_rows(["name"])) == set()


# ------------------------------------------------------------------ the command line


@pytest.fixture()
def cli(server, dbname, tmp_path):
    def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("QUERYLEAF_URI", "QUERYLEAF_DB", "COLUMNS")
        }
        env["QUERYLEAF_DATA_DIR"] = str(tmp_path / "data")
        return subprocess.run(
            [sys.executable, "-m", "queryleaf", "--uri", server.uri, "--db", dbname, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=tmp_path,
        )

    return run


def _output(proc: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout + proc.stderr


def test_the_cli_never_prints_the_secret(cli, tmp_path):
    create = _create("https://example.com/hook")
    alter = f"ALTER EVENT_SUBSCRIPTION hook SET (webhook_secret = '{ALTERED}')"
    script = (
        f"EXPLAIN {create}; {create}; EXPLAIN {alter}; SHOW EVENT_SUBSCRIPTIONS;"
        " SELECT * FROM EVENT_SUBSCRIPTIONS()"
    )
    for fmt in ("table", "json", "csv"):
        proc = cli("--format", fmt, "-e", script if fmt == "table" else script.split("; ", 2)[2])
        assert proc.returncode == 0, _output(proc)
        assert "***" in proc.stdout
        assert_hidden(_output(proc), f"queryleaf --format {fmt} -e")
        proc = cli("--format", fmt, "explain", create)
        assert proc.returncode == 0 and "***" in proc.stdout, _output(proc)
        assert_hidden(_output(proc), f"queryleaf --format {fmt} explain")
    failing = [
        f"{create.replace('max_retry_attempts', 'nope')}",  # unknown option
        f"{create[:-1]} oops)",  # syntax error after the secret
        create.replace(f"'{SECRET}'", f"OBJECTID('{SECRET}')"),
    ]  # quoted by the planner
    for sql in failing:
        for args in (("-e", sql), ("explain", sql), ("-e", f"SELECT 1;\n{sql}")):
            proc = cli(*args)
            assert proc.returncode == 1 and "error" in proc.stderr, _output(proc)
            assert "'***'" in proc.stderr  # the excerpt, masked
            assert_hidden(_output(proc), f"queryleaf {args[0]} (failing)")
    path = tmp_path / "setup.sql"
    statement = create.replace(" deliver_to", "\n deliver_to").replace("max_retry", "bogus")
    path.write_text(f"SELECT 1;\n{statement};\n")  # the error on line 3, beside the secret
    proc = cli("run", str(path))
    assert proc.returncode == 1 and f"{path}:3:" in proc.stderr, _output(proc)
    assert "'***'" in proc.stderr
    assert_hidden(_output(proc), "queryleaf run")


def test_the_worker_command_logs_failures_without_the_secret(ql, cli, receiver):
    ql.execute(_create(receiver.url))
    ql.db.orders.insert_one({"_id": 1})  # answered 500: retried, then dead-lettered
    proc = cli("worker", "--idle-timeout", "1.5")
    assert proc.returncode == 0, _output(proc)
    assert "HTTP 500" in proc.stderr
    assert_hidden(_output(proc), "queryleaf worker")
    assert receiver.posts == [True, True]
