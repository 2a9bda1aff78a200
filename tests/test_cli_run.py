"""``queryleaf run`` for scripts and CI, driven as a subprocess (a pseudo-terminal for the
progress line and Ctrl-C)."""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
import test_cli
from pymongo import MongoClient
from test_cli import _env, _failed, _ok

cli = test_cli.cli  # the fixture: python -m queryleaf --uri <server> --db <dbname> ARGS...

PEOPLE = "INSERT INTO people (_id, name, age) VALUES (1, 'ann', 31), (2, 'bob', 42);\n"


def _write(tmp_path: Path, name: str, text: str) -> str:
    (tmp_path / name).write_text(text)
    return name


# ---------------------------------------------------------------- output as it runs


def test_a_file_runs_before_the_next_is_read(server, dbname, tmp_path):
    """The first file's result is out while the command still waits for its stdin."""
    _write(tmp_path, "first.sql", "SELECT 1 AS one;\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "queryleaf", "--uri", server.uri, "--db", dbname]
        + ["run", "first.sql", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(tmp_path),
        cwd=tmp_path,
    )
    try:
        seen = _read_until(proc.stdout.fileno(), b"1 row")
        assert b"-- first.sql:1\n" in seen and proc.poll() is None
        stdout, stderr = proc.communicate(b"SELECT 2 AS two;", timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert b"-- <stdin>:1\n" in stdout and b"two" in stdout


def test_headers_and_echo(cli, tmp_path):
    path = _write(
        tmp_path,
        "q.sql",
        PEOPLE + "\n-- who is old\nSELECT name\n  FROM people\n WHERE age > 40;\n",
    )
    proc = _ok(cli("run", "--echo", path))
    assert proc.stdout.startswith(f"-- q.sql:1\n{PEOPLE.strip()}\nINSERT 2 (")
    assert "\n\n-- q.sql:4\nSELECT name\n  FROM people\n WHERE age > 40;\nname\n" in proc.stdout
    # in json and csv formats stdout holds only data: headers go to stderr with the status lines
    query = _write(tmp_path, "query.sql", "SELECT name FROM people WHERE age > 40;\n")
    proc = _ok(cli("run", "--format", "csv", query))
    assert proc.stdout.splitlines() == ["name", "bob"]
    assert "-- query.sql:1\n" in proc.stderr


# ---------------------------------------------------------------- -v


def test_variables_bind_placeholders_as_values(cli, tmp_path, server, dbname):
    _ok(cli("-e", PEOPLE))
    path = _write(
        tmp_path,
        "v.sql",
        "SELECT name FROM people WHERE age > :min ORDER BY name;\n"
        "SELECT :who AS who, :flag AS flag, :doc AS doc, :text AS text, :nan AS nan;\n"
        "SELECT COUNT(*) AS n FROM people WHERE age = :op;\n",
    )
    proc = _ok(
        cli(
            "run",
            "--format",
            "json",
            path,
            "-v",
            "min=35",
            "--var",
            "who=ann",
            "-v",
            "flag=true",
            "-v",
            'doc={"a": [1, null]}',
            "-v",
            'text="42"',
            "-v",
            "nan=NaN",
            "-v",
            'op={"$gt": 1}',
            "-v",
            "unused=1",
        )
    )
    old, values, count = (json.loads(line) for line in proc.stdout.splitlines())
    assert old == [{"name": "bob"}]
    assert values == [
        {"who": "ann", "flag": True, "doc": {"a": [1, None]}, "text": "42", "nan": "NaN"}
    ]
    assert count == [{"n": 0}]  # a document, never the operator $gt
    assert "warning: -v unused: no statement has a placeholder :unused" in proc.stderr


def test_missing_variable_is_an_error_at_its_placeholder(cli, tmp_path):
    path = _write(tmp_path, "m.sql", "SELECT 1 AS x;\nSELECT :nope AS y;\n")
    proc = _failed(cli("run", path))
    assert "m.sql:2:8: error: QL" in proc.stderr and "no value for parameter :nope" in proc.stderr
    proc = _failed(cli("run", path, "-v", "bad"), 2)
    assert "expected NAME=VALUE" in proc.stderr


# ---------------------------------------------------------------- --check


def test_check_compiles_offline_and_says_what_it_could_not_check(tmp_path):
    path = _write(
        tmp_path,
        "c.sql",
        "SELECT 1 + 1 AS two;\n"
        "SELECT name FROM people WHERE age > :min;\n"
        "UPDATE people SET age = age + 1;\n"
        "CREATE EVENT_SUBSCRIPTION s AS (watch_collections = 'users');\n"
        "SELECT NO_SUCH_FUNCTION(1) AS x;\n"
        "CREATE EVENT_SUBSCRIPTION s2 AS (watch_collections = 'users', no_such_option = 1);\n",
    )
    bad = _write(tmp_path, "bad.sql", "SELECT 1 AS x;\nSELECT FROM;\n")
    started = time.monotonic()
    # no database: the URI points nowhere, and nothing may try to reach it
    proc = _failed(
        _run(tmp_path, "--uri", "mongodb://127.0.0.1:9", "run", "--check", path, bad, "-v", "min=3")
    )
    assert time.monotonic() - started < 20
    out = proc.stdout.splitlines()
    assert out[0] == "c.sql:1: ok"
    assert out[1] == (
        "c.sql:2: ok (not checked offline: that table people exists; columns age, name "
        "against the documents of people)"
    )
    assert out[2].startswith("c.sql:3: ok (not checked offline: that table people exists")
    assert out[3] == (
        "c.sql:4: ok (not checked offline: the server's check of the subscription's change stream)"
    )
    assert "c.sql:5:8: error: QL2004: unknown function NO_SUCH_FUNCTION" in proc.stderr
    assert re.search(r"^c\.sql:6:\d+: error: .*no_such_option", proc.stderr, re.M), proc.stderr
    assert re.search(r"^bad\.sql:2:\d+: error: QL1001", proc.stderr, re.M), proc.stderr
    assert "summary: 4 statements compiled ok, 3 failed:\n  c.sql:5:8: error:" in proc.stderr
    ok = _ok(
        _run(
            tmp_path,
            "--uri",
            "mongodb://127.0.0.1:9",
            "run",
            "--check",
            _write(tmp_path, "good.sql", "SELECT 1 AS x;\n"),
        )
    )
    assert "summary: 1 statement compiled ok, 0 failed" in ok.stderr


def test_check_with_single_transaction_refuses_what_cannot_run_in_one(tmp_path):
    path = _write(tmp_path, "t.sql", "BEGIN;\nCREATE VIEW v AS SELECT 1 AS x;\n")
    proc = _failed(_run(tmp_path, "run", "--check", "--single-transaction", path))
    assert "t.sql:1:1: error: QL2000: BEGIN cannot be used in a single transaction" in proc.stderr
    assert "t.sql:2:1: error: QL2000: CREATE VIEW cannot run inside a transaction" in proc.stderr


# ---------------------------------------------------------------- --continue-on-error, stdin


def test_continue_on_error_runs_on_and_ends_with_a_summary(cli, tmp_path, server, dbname):
    path = _write(
        tmp_path,
        "k.sql",
        "INSERT INTO t (_id) VALUES (1);\n"
        "INSERT INTO t (_id) VALUES (1);\n"
        "SELECT NO_SUCH_FUNCTION(1) AS x;\n"
        "INSERT INTO t (_id) VALUES (2);\n",
    )
    bad = _write(tmp_path, "bad.sql", "SELEC 1;\n")
    proc = _failed(
        cli("run", "--continue-on-error", path, bad, "-", input="INSERT INTO t (_id) VALUES (3)")
    )
    summary = proc.stderr[proc.stderr.index("summary:") :].splitlines()
    assert summary[0] == "summary: 3 statements ran ok, 3 failed:"
    assert [line.split(": error: ")[0] for line in summary[1:]] == [
        "  k.sql:2:1",
        "  k.sql:3:8",
        "  bad.sql:1:1",
    ]
    assert "QL3002: INSERT failed" in summary[1] and "QL1001" in summary[3]
    ids = sorted(d["_id"] for d in MongoClient(server.uri)[dbname]["t"].find())
    assert ids == [1, 2, 3]
    # without the option the run stops at the first failure
    MongoClient(server.uri)[dbname]["t"].delete_many({})
    _failed(cli("run", path))
    assert [d["_id"] for d in MongoClient(server.uri)[dbname]["t"].find()] == [1]


def test_stdin(cli):
    proc = _ok(cli("run", "--format", "json", "-", input="SELECT 6 * 7 AS answer"))
    assert json.loads(proc.stdout) == [{"answer": 42}]


# ---------------------------------------------------------------- --single-transaction


def test_single_transaction_commits_all_files(cli, tmp_path, server, dbname):
    one = _write(tmp_path, "1.sql", "INSERT INTO t (_id) VALUES (1);\n")
    two = _write(
        tmp_path, "2.sql", "INSERT INTO t (_id) VALUES (2);\nSELECT COUNT(*) AS n FROM t;\n"
    )
    proc = _ok(cli("run", "--single-transaction", "--format", "csv", one, two))
    assert proc.stdout.splitlines() == ["n", "2"]  # the second file sees the first's insert
    assert "COMMIT: 3 statements in one transaction" in proc.stderr
    assert MongoClient(server.uri)[dbname]["t"].count_documents({}) == 2


def test_single_transaction_failure_commits_nothing(cli, tmp_path, server, dbname):
    one = _write(tmp_path, "1.sql", "INSERT INTO t (_id) VALUES (1);\n")
    two = _write(tmp_path, "2.sql", "INSERT INTO t (_id) VALUES (2), (1);\n")
    proc = _failed(cli("run", "--single-transaction", one, two))
    assert re.search(r"^2\.sql:1:1: error: QL3002: INSERT failed", proc.stderr, re.M)
    assert "error: --single-transaction: rolled back, nothing was committed" in proc.stderr
    assert MongoClient(server.uri)[dbname]["t"].count_documents({}) == 0


def test_single_transaction_refuses_before_anything_runs(cli, tmp_path, server, dbname):
    one = _write(tmp_path, "1.sql", "INSERT INTO t (_id) VALUES (1);\n")
    two = _write(tmp_path, "2.sql", "COMMIT;\nCREATE VIEW v AS SELECT _id FROM t;\n")
    proc = _failed(cli("run", "--single-transaction", one, two))
    assert "2.sql:1:1: error: QL2000: COMMIT cannot be used in a single transaction" in proc.stderr
    assert "2.sql:2:1: error: QL2000: CREATE VIEW cannot run inside a transaction" in proc.stderr
    assert "error: --single-transaction: nothing ran" in proc.stderr
    assert proc.stdout == ""
    assert MongoClient(server.uri)[dbname]["t"].count_documents({}) == 0
    proc = _failed(cli("run", "--single-transaction", "--continue-on-error", one), 2)
    assert "cannot be combined with --continue-on-error" in proc.stderr


# ---------------------------------------------------------------- global options


def test_global_options_after_the_subcommand(cli, tmp_path, server, dbname):
    path = _write(tmp_path, "g.sql", "INSERT INTO t (_id) VALUES (1);\nSELECT _id FROM t;\n")
    other = dbname + "_other"
    try:
        proc = _ok(cli("run", "--format", "json", "--db", other, path))
        assert json.loads(proc.stdout) == [{"_id": 1}]
        assert MongoClient(server.uri)[other]["t"].count_documents({}) == 1
        assert "t" not in MongoClient(server.uri)[dbname].list_collection_names()
        proc = _ok(cli("explain", "--format", "json", "--db", other, "SELECT _id FROM t"))
        assert json.loads(proc.stdout)[0]["find"] == "t"
    finally:
        MongoClient(server.uri).drop_database(other)
    help_text = _ok(cli("run", "--help")).stdout
    for option in ("--uri", "--db", "--data-dir", "--format", "--var", "--check"):
        assert option in help_text


# ---------------------------------------------------------------- a terminal


class Pty:
    """``queryleaf ARGS`` with stdin, stdout and stderr on a pseudo-terminal that is its
    controlling terminal (so Ctrl-C is a real SIGINT)."""

    def __init__(self, args: list[str], tmp_path: Path):
        pty = pytest.importorskip("pty")
        import fcntl
        import termios

        self.master, slave = pty.openpty()

        def controlling_terminal() -> None:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "queryleaf", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=_env(tmp_path) | {"TERM": "xterm"},
            cwd=tmp_path,
            preexec_fn=controlling_terminal,
        )
        os.close(slave)
        self.seen = b""

    def read_until(self, marker: bytes, timeout: float = 30) -> bytes:
        self.seen += _read_until(self.master, marker, timeout, self.seen)
        return self.seen

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


def _read_until(fd: int, marker: bytes, timeout: float = 30, before: bytes = b"") -> bytes:
    deadline = time.monotonic() + timeout
    seen = b""
    while marker not in before + seen:
        ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
        if not ready:
            raise AssertionError(f"no {marker!r} in {seen[-800:]!r}")
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            chunk = b""
        if not chunk:
            raise AssertionError(f"closed before {marker!r}: {seen[-800:]!r}")
        seen += chunk
    return seen


def test_progress_line_on_a_terminal_only_and_results_as_they_come(cli, server, dbname, tmp_path):
    path = _write(tmp_path, "p.sql", "SELECT 1 AS x;\nSELECT 2 AS y;\n")
    term = Pty(["--uri", server.uri, "--db", dbname, "run", path], tmp_path)
    try:
        out = term.read_until(b"running p.sql:2")
        out = term.read_until(b"1 row (", timeout=30)
        assert term.proc.wait(timeout=30) == 0
    finally:
        term.close()
    assert re.search(rb"running p\.sql:1 SELECT 1 AS x \d+\.\ds\r\x1b\[2K", out), out
    # the first statement's result is out before the second starts
    assert out.index(b"1 row (") < out.index(b"running p.sql:2")
    piped = _ok(cli("run", path))
    assert "running" not in piped.stderr and "\x1b" not in piped.stderr + piped.stdout


def test_ctrl_c_shows_what_completed_and_exits_130(server, dbname, tmp_path):
    path = _write(tmp_path, "done.sql", "SELECT 'finished' AS first;\n")
    # after done.sql, `-` reads the terminal: Ctrl-C comes while it waits
    term = Pty(["--uri", server.uri, "--db", dbname, "run", path, "-"], tmp_path)
    try:
        term.read_until(b"1 row")
        time.sleep(0.3)
        os.write(term.master, b"\x03")
        out = term.read_until(b"failed")
        assert term.proc.wait(timeout=30) == 130
    finally:
        term.close()
    assert b"finished" in out and b"-- done.sql:1" in out
    assert b"interrupted: 1 statement ran ok, 0 failed" in out


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "queryleaf", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(tmp_path),
        cwd=tmp_path,
    )
