"""The ``queryleaf`` command line, driven as a subprocess against the session's embedded server."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from bson.decimal128 import Decimal128
from bson.objectid import ObjectId
from pymongo import MongoClient

import queryleaf
from queryleaf.cli.output import caret_excerpt
from queryleaf.mongosh import to_mongosh

OID = "65a1b2c3d4e5f60718293a4b"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def cli(server, dbname, tmp_path):
    """Run ``python -m queryleaf --uri <server> --db <dbname> ARGS...``; returns CompletedProcess."""

    def run(
        *args: str, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "queryleaf", "--uri", server.uri, "--db", dbname, *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_env(tmp_path),
            cwd=tmp_path,
        )

    yield run
    MongoClient(server.uri).drop_database(dbname)


def _env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("QUERYLEAF_URI", "QUERYLEAF_DB", "COLUMNS", "LINES", "NO_COLOR")
    }
    env["QUERYLEAF_DATA_DIR"] = str(tmp_path / "data")  # the REPL history goes there
    # The command runs the queryleaf these tests import (a checkout's, not another install's).
    source = str(Path(queryleaf.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [source, env.get("PYTHONPATH")]))
    return env


def _ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    assert "Traceback" not in proc.stderr
    return proc


def _failed(proc: subprocess.CompletedProcess, code: int = 1) -> subprocess.CompletedProcess:
    assert proc.returncode == code, (
        f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    assert "Traceback" not in proc.stderr
    return proc


def _seed(server, dbname: str) -> None:
    """A ``people`` collection (queries on a collection that does not exist are errors)."""
    MongoClient(server.uri)[dbname]["people"].insert_one({"name": "cy", "age": 7})


PEOPLE = (
    "INSERT INTO people (name, age, _id) VALUES "
    f"('ann', 31, OBJECTID('{OID}')), ('bob', 42, OBJECTID('65a1b2c3d4e5f60718293a4c'));"
)


# ---------------------------------------------------------------- -e and formats


def test_execute_table(cli):
    proc = _ok(cli("-e", PEOPLE + " SELECT _id, name, age, nickname FROM people ORDER BY age;"))
    out = proc.stdout
    assert re.match(r"INSERT 2 \(\d+\.\d ms\)\n", out)
    header = next(line for line in out.splitlines() if "name" in line)
    assert header.split() == ["_id", "name", "age", "nickname"]
    ann = next(line for line in out.splitlines() if "ann" in line)
    assert ann.split() == [OID, "ann", "31", "<null>"]
    assert re.search(r"^2 rows \(\d+\.\d ms\)$", out, re.M)


def test_execute_json(cli):
    _ok(cli("-e", PEOPLE))
    proc = _ok(
        cli(
            "--format",
            "json",
            "-e",
            "SELECT _id, name, age, nickname FROM people ORDER BY age; "
            "SELECT name FROM people WHERE age > 40;",
        )
    )
    first, second = (json.loads(line) for line in proc.stdout.splitlines())
    assert first == [
        {"_id": {"$oid": OID}, "name": "ann", "age": 31, "nickname": None},
        {"_id": {"$oid": "65a1b2c3d4e5f60718293a4c"}, "name": "bob", "age": 42, "nickname": None},
    ]
    assert second == [{"name": "bob"}]
    assert "2 rows" in proc.stderr  # status lines stay out of the data


def test_execute_csv(cli):
    proc = _ok(
        cli(
            "--format",
            "csv",
            "-e",
            PEOPLE + " SELECT name, age, people.nickname FROM people ORDER BY age;",
        )
    )
    assert proc.stdout.splitlines() == ["name,age,nickname", "ann,31,", "bob,42,"]
    assert re.match(r"INSERT 2 \(\d+\.\d ms\)\n2 rows", proc.stderr)


def test_execute_syntax_error(cli):
    proc = _failed(cli("-e", "SELECT name\nFROM people WHERE age >;"))
    assert "error at line 2, column 24: QL1001: unexpected ';'" in proc.stderr
    assert "FROM people WHERE age >;\n" + " " * 23 + "^" in proc.stderr


def test_connection_error_is_one_line(cli):
    proc = subprocess.run(
        [sys.executable, "-m", "queryleaf", "--uri", "notmongo://nowhere", "-e", "SELECT 1 AS x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    _failed(proc, 3)
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(
        "error: QL0002: invalid MongoDB URI"
    )


# ---------------------------------------------------------------- run


def test_run_files_in_order(cli, tmp_path):
    (tmp_path / "01_load.sql").write_text(f"-- load\n{PEOPLE}\n")
    (tmp_path / "02_query.sql").write_text("SELECT name FROM people\nWHERE age > 40;\n")
    proc = _ok(cli("--format", "csv", "run", "01_load.sql", "02_query.sql"))
    assert proc.stdout.splitlines() == ["name", "bob"]


def test_run_syntax_error_names_file_line_and_column(cli, tmp_path):
    path = tmp_path / "bad.sql"
    path.write_text("-- a comment\nSELECT 1 AS x;\nSELECT name FROM people WHERE;\n")
    proc = _failed(cli("run", str(path)))
    assert re.search(rf"^{re.escape(str(path))}:3:\d+: error: ", proc.stderr, re.M), proc.stderr
    assert "SELECT name FROM people WHERE;\n" in proc.stderr and "^" in proc.stderr


def test_run_stops_at_failing_statement_and_keeps_earlier_effects(cli, tmp_path, server, dbname):
    path = tmp_path / "dup.sql"
    path.write_text(
        "INSERT INTO t (_id, v) VALUES (1, 'first');\n\n"
        "-- the same _id again: the server refuses it\n"
        "INSERT INTO t (_id, v) VALUES (1, 'again');\n"
        "INSERT INTO t (_id, v) VALUES (2, 'never');\n"
    )
    proc = _failed(cli("run", str(path)))
    assert re.search(rf"^{re.escape(str(path))}:4:\d+: error: QL3002: ", proc.stderr, re.M), (
        proc.stderr
    )
    assert "INSERT INTO t (_id, v) VALUES (1, 'again');\n" in proc.stderr
    docs = list(MongoClient(server.uri)[dbname]["t"].find())
    assert docs == [{"_id": 1, "v": "first"}]


def test_run_planning_error_points_into_the_statement(cli, tmp_path):
    path = tmp_path / "plan.sql"
    path.write_text(PEOPLE + "\n\nSELECT name,\n       NO_SUCH_FUNCTION(age) FROM people;\n")
    proc = _failed(cli("run", str(path)))
    assert re.search(
        rf"^{re.escape(str(path))}:4:\d+: error: QL2004: unknown function "
        "NO_SUCH_FUNCTION",
        proc.stderr,
        re.M,
    ), proc.stderr


def test_error_codes_in_the_output_of_e(cli):
    proc = _failed(cli("-e", "SELECT name FROM no_such_table"))
    assert "error at line 1, column 18: QL2001: unknown table no_such_table" in proc.stderr
    proc = _failed(cli("-e", "PAUSE EVENT_SUBSCRIPTION nope"))
    assert "error at line 1, column 1: QL4001: no event subscription named 'nope'" in proc.stderr


def test_unknown_column_warning_goes_to_stderr_with_a_caret(cli, server, dbname):
    _seed(server, dbname)
    proc = _ok(cli("--format", "csv", "-e", "SELECT name, nmae FROM people;"))
    assert proc.stdout.splitlines() == ["name,nmae", "cy,"]
    assert (
        "warning at line 1, column 14: QL2002: unknown column nmae: no sampled document of people "
        "has it (it reads as NULL); did you mean name?\n"
        "SELECT name, nmae FROM people;\n             ^"
    ) in proc.stderr


def test_run_file_warning_names_file_line_and_column(cli, tmp_path, server, dbname):
    _seed(server, dbname)
    path = tmp_path / "warn.sql"
    path.write_text("SELECT name FROM people;\nSELECT agee FROM people;\n")
    proc = _ok(cli("run", str(path)))
    assert re.search(
        rf"^{re.escape(str(path))}:2:8: warning: QL2002: unknown column agee: .*did you "
        r"mean age\?$",
        proc.stderr,
        re.M,
    ), proc.stderr


def test_run_file_unknown_column_in_update_fails(cli, tmp_path, server, dbname):
    _seed(server, dbname)
    path = tmp_path / "trap.sql"
    path.write_text('UPDATE people SET name = "Jane";\n')
    proc = _failed(cli("run", str(path)))
    assert (
        f'{path}:1:26: error: QL2002: unknown column "Jane"; string literals use single quotes'
        in proc.stderr
    )
    assert MongoClient(server.uri)[dbname]["people"].find_one()["name"] == "cy"


def test_run_missing_file(cli, tmp_path):
    (tmp_path / "ok.sql").write_text(PEOPLE)
    proc = _failed(cli("run", "ok.sql", "nope.sql"))
    assert "nope.sql: error: no such file" in proc.stderr
    assert proc.stdout == ""  # nothing ran


def test_run_a_script_with_begin_and_rollback(cli, tmp_path, server, dbname):
    path = tmp_path / "txn.sql"
    path.write_text(
        "INSERT INTO t (_id) VALUES (1);\n"
        "BEGIN;\n"
        "INSERT INTO t (_id) VALUES (2);\n"
        "SELECT COUNT(*) AS n FROM t;\n"
        "ROLLBACK;\n"
        "SELECT COUNT(*) AS n FROM t;\n"
    )
    proc = _ok(cli("--format", "csv", "run", str(path)))
    assert proc.stdout.splitlines() == ["n", "2", "", "n", "1"]
    assert re.search(r"^BEGIN \(\d+\.\d ms\)$", proc.stderr, re.M)
    assert re.search(r"^ROLLBACK \(\d+\.\d ms\)$", proc.stderr, re.M)
    assert [d["_id"] for d in MongoClient(server.uri)[dbname]["t"].find()] == [1]


def test_run_that_fails_inside_a_transaction_commits_nothing(cli, tmp_path, server, dbname):
    path = tmp_path / "all_or_nothing.sql"
    path.write_text(
        "BEGIN;\nINSERT INTO t (_id) VALUES (1), (2);\nINSERT INTO t (_id) VALUES (2);\nCOMMIT;\n"
    )
    proc = _failed(cli("run", str(path)))
    assert re.search(
        rf"^{re.escape(str(path))}:3:1: error: QL3002: INSERT failed \(E11000 ", proc.stderr, re.M
    ), proc.stderr
    assert (
        f"{path}: error: the open transaction was rolled back: nothing it changed was committed"
    ) in proc.stderr
    assert MongoClient(server.uri)[dbname]["t"].count_documents({}) == 0


def test_execute_ending_inside_a_transaction_rolls_it_back(cli, server, dbname):
    proc = _failed(cli("-e", "BEGIN; INSERT INTO t (_id) VALUES (1);"))
    assert (
        "error: the statements ended inside a transaction (BEGIN without COMMIT): it was "
        "rolled back, nothing it changed was committed"
    ) in proc.stderr
    assert MongoClient(server.uri)[dbname]["t"].count_documents({}) == 0


# ---------------------------------------------------------------- REPL


def test_repl_through_a_pipe(cli):
    script = (
        PEOPLE + "\n"
        "SELECT name\n"
        "  FROM people\n"
        "  WHERE age > 40;\n"
        "SELECT name FROM people WHERE;\n"  # an error: reported, the REPL carries on
        "\\d\n"
        "SELECT name, age + 1 AS next_age FROM people WHERE name = 'ann';\n"
        "\\q\n"
        "SELECT 'never' AS x;\n"
    )
    proc = _ok(cli(input=script))
    lines = [line.split() for line in proc.stdout.splitlines()]
    assert ["bob"] in lines
    assert ["ann", "32"] in lines
    assert ["people", "collection"] in lines
    assert "never" not in proc.stdout
    assert "error at line 1, column" in proc.stderr and "^" in proc.stderr


def test_repl_prints_unknown_column_warnings(cli, server, dbname):
    _seed(server, dbname)
    proc = _ok(cli(input="SELECT nmae\n  FROM people;\n"))
    assert "warning at line 1, column 8: QL2002: unknown column nmae" in proc.stderr
    assert "<null>" in proc.stdout


def test_repl_leaving_with_an_open_transaction_rolls_it_back(cli, server, dbname):
    proc = _ok(
        cli(input="BEGIN;\nINSERT INTO t (_id) VALUES (1);\nSELECT COUNT(*) AS n FROM t;\n\\q\n")
    )
    assert ["1"] in [line.split() for line in proc.stdout.splitlines()]
    assert (
        "warning: the open transaction was rolled back on leaving the shell: nothing it "
        "changed was committed"
    ) in proc.stderr
    assert MongoClient(server.uri)[dbname]["t"].count_documents({}) == 0


def test_repl_last_statement_without_semicolon_runs(cli, server, dbname):
    _seed(server, dbname)
    proc = _ok(cli("--format", "json", input="SELECT name FROM people"))
    assert json.loads(proc.stdout) == [{"name": "cy"}]


def _controlling_terminal() -> None:
    """In the child, after its new session: make its terminal (stdin) the controlling one."""
    import fcntl
    import termios

    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """The shell on a pseudo-terminal: ``write`` keys, ``read_until`` a marker appears."""

    def __init__(
        self, server, dbname: str, tmp_path: Path, *args: str, size: tuple[int, int] | None = None
    ):
        pty = pytest.importorskip("pty")
        self.master, slave = pty.openpty()
        if size is not None:  # (lines, columns) of the window
            import fcntl
            import struct
            import termios

            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))
        env = _env(tmp_path) | {"TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "queryleaf", "--uri", server.uri, "--db", dbname, *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=tmp_path,
            start_new_session=True,
            preexec_fn=_controlling_terminal,  # Ctrl-C in cooked mode is SIGINT, as for a user
        )
        os.close(slave)
        self.seen = bytearray()
        self.consumed = 0  # output before this offset has been matched already

    def write(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def read_until(self, marker: bytes, timeout: float = 20) -> bytes:
        """Wait for ``marker``; returns the output before it since the last match."""
        deadline = time.monotonic() + timeout
        while (found := self.seen.find(marker, self.consumed)) < 0:
            ready, _, _ = select.select([self.master], [], [], max(deadline - time.monotonic(), 0))
            if not ready:
                raise AssertionError(
                    f"no {marker!r} in terminal output: {bytes(self.seen[-800:])!r}"
                )
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # the child closed the terminal
                chunk = b""
            if not chunk:
                raise AssertionError(
                    f"terminal closed before {marker!r}: {bytes(self.seen[-800:])!r}"
                )
            self.seen.extend(chunk)
        before = bytes(self.seen[self.consumed : found])
        self.consumed = found + len(marker)
        return before

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


def test_repl_on_a_terminal(server, dbname, tmp_path):
    _seed(server, dbname)
    term = Terminal(server, dbname, tmp_path)
    prompt = f"{dbname}>".encode()
    try:
        term.read_until(prompt)
        term.write(b"SELECT 41 + 1 AS answer\r")  # no ';' yet: a continuation line
        term.read_until(b"...>")
        term.write(b"FROM people;\r")
        term.read_until(b"1 row")
        term.write(b"SELECT 'discarded' AS gone\r")  # Ctrl-C drops the pending input
        term.read_until(b"...>")
        term.write(b"\x03")
        term.read_until(prompt)
        term.write(b"\\q\r")
        assert term.proc.wait(timeout=20) == 0
    finally:
        term.close()
        MongoClient(server.uri).drop_database(dbname)
    history = (tmp_path / "data" / "repl_history").read_text()
    assert "+SELECT 41 + 1 AS answer\n+FROM people;" in history
    assert "discarded" not in history


def test_repl_prompt_shows_the_transaction(server, dbname, tmp_path):
    term = Terminal(server, dbname, tmp_path)
    prompt, prompt_open, prompt_aborted = (f"{dbname}{m}>".encode() for m in ("", "*", "!"))
    try:
        term.read_until(prompt)
        term.write(b"BEGIN;\r")
        term.read_until(prompt_open)  # open
        term.write(b"INSERT INTO t (_id) VALUES (1);\r")
        term.read_until(prompt_open)
        term.write(b"INSERT INTO t (_id) VALUES (1);\r")  # fails: the transaction is aborted
        term.read_until(b"ROLLBACK to end it")
        term.read_until(prompt_aborted)
        term.write(b"ROLLBACK;\r")
        assert prompt_open not in term.read_until(prompt)
        term.write(b"START TRANSACTION;\r")
        term.read_until(prompt_open)
        term.write(b"INSERT INTO t (_id) VALUES (2);\r")
        term.read_until(prompt_open)
        term.write(b"\\q\r")
        term.read_until(b"the open transaction was rolled back on leaving the shell")
        assert term.proc.wait(timeout=20) == 0
    finally:
        term.close()
    assert MongoClient(server.uri)[dbname]["t"].count_documents({}) == 0
    MongoClient(server.uri).drop_database(dbname)


# ---------------------------------------------------------------- explain


def test_explain_prints_mongosh_and_json(cli, server, dbname):
    _seed(server, dbname)
    proc = _ok(cli("explain", "SELECT name FROM people WHERE age > 30"))
    assert "mongosh:" in proc.stdout and "JSON:" in proc.stdout
    assert re.search(r"^db\.people\.(find|aggregate)\(", proc.stdout, re.M)
    assert '"people"' in proc.stdout


def test_explain_json_format(cli, server, dbname):
    _seed(server, dbname)
    proc = _ok(cli("--format", "json", "explain", "DELETE FROM people WHERE name = 'ann'"))
    (command,) = json.loads(proc.stdout)
    assert command["delete"] == "people"


def test_explain_error(cli):
    proc = _failed(cli("explain", "SELECT FROM WHERE"))
    assert proc.stderr.startswith("error at line 1, column")


def test_serve_and_worker_are_listed(cli):
    proc = _ok(
        subprocess.run(
            [sys.executable, "-m", "queryleaf", "--help"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    )
    for name in ("run", "explain", "serve", "worker"):
        assert re.search(rf"^\s+{name}\s", proc.stdout, re.M)


# ---------------------------------------------------------------- mongosh rendering (no server)


def test_to_mongosh_find():
    cmd = {
        "find": "orders",
        "filter": {"status": "paid", "total": {"$gt": 10}},
        "projection": {"_id": 0, "total": 1},
        "sort": {"total": -1},
        "skip": 5,
        "limit": 10,
    }
    assert to_mongosh(cmd) == (
        "db.orders.find({ status: 'paid', total: { $gt: 10 } }, { _id: 0, total: 1 })"
        ".sort({ total: -1 }).skip(5).limit(10)"
    )


def test_to_mongosh_values_and_keys():
    when = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    cmd = {
        "insert": "o",
        "documents": [
            {"_id": ObjectId(OID), "at": when, "p": Decimal128("9.99"), "a.b": None, "it's": True}
        ],
    }
    assert to_mongosh(cmd) == (
        "db.o.insertOne({\n"
        f"  _id: ObjectId('{OID}'),\n"
        "  at: ISODate('2024-01-02T03:04:05.000Z'),\n"
        "  p: NumberDecimal('9.99'),\n"
        "  'a.b': null,\n"
        "  'it\\'s': true\n"
        "})"
    )


def test_to_mongosh_writes():
    assert to_mongosh(
        {"update": "t", "updates": [{"q": {"a": 1}, "u": {"$inc": {"n": 1}}, "multi": True}]}
    ) == ("db.t.updateMany({ a: 1 }, { $inc: { n: 1 } })")
    assert to_mongosh(
        {
            "update": "t",
            "updates": [
                {
                    "q": {},
                    "u": [{"$set": {"n": {"$add": ["$n", 1]}}}],
                    "multi": True,
                    "upsert": True,
                }
            ],
        }
    ) == ("db.t.updateMany({}, [ { $set: { n: { $add: [ '$n', 1 ] } } } ], { upsert: true })")
    assert to_mongosh({"delete": "t", "deletes": [{"q": {}, "limit": 0}]}) == "db.t.deleteMany({})"
    assert to_mongosh({"insert": "t", "documents": [{"a": 1}, {"a": 2}]}) == (
        "db.t.insertMany([ { a: 1 }, { a: 2 } ])"
    )


def test_to_mongosh_pipelines_and_fallbacks():
    pipeline = [
        {"$match": {"status": "paid"}},
        {"$group": {"_id": "$customer.name", "total": {"$sum": "$amount"}}},
        {"$sort": {"total": -1}},
    ]
    text = to_mongosh({"aggregate": "orders", "pipeline": pipeline, "cursor": {}})
    assert text.startswith("db.orders.aggregate([\n  { $match: { status: 'paid' } },\n")
    assert text.endswith("\n  { $sort: { total: -1 } }\n])")
    assert to_mongosh(
        {
            "aggregate": "orders",
            "pipeline": [
                {"$changeStream": {"fullDocument": "updateLookup"}},
                {"$match": {"operationType": "insert"}},
            ],
            "cursor": {},
        }
    ) == (
        "db.orders.watch([ { $match: { operationType: 'insert' } } ], "
        "{ fullDocument: 'updateLookup' })"
    )
    assert (
        to_mongosh({"find": "my-orders", "filter": {}}) == "db.getCollection('my-orders').find({})"
    )
    assert to_mongosh({"ping": 1}) == "db.runCommand({ ping: 1 })"
    assert to_mongosh({"find": "t", "filter": {}, "readConcern": {"level": "majority"}}) == (
        "db.runCommand({ find: 't', filter: {}, readConcern: { level: 'majority' } })"
    )


def test_to_mongosh_write_concern_notes_and_other_databases():
    wc = {"w": "majority", "j": True}
    assert to_mongosh(
        {"delete": "t", "deletes": [{"q": {"_id": "s"}, "limit": 1}], "writeConcern": wc}
    ) == ("db.t.deleteOne({ _id: 's' }, { writeConcern: { w: 'majority', j: true } })")
    assert to_mongosh(
        {"findAndModify": "t", "query": {"_id": 1}, "update": {"$set": {"a": 1}}, "new": True}
    ) == ("db.t.findOneAndUpdate({ _id: 1 }, { $set: { a: 1 } }, { returnDocument: 'after' })")
    assert to_mongosh({"listCollections": 1, "filter": {"name": "t"}, "nameOnly": True}) == (
        "db.getCollectionInfos({ name: 't' }, { nameOnly: true })"
    )
    # $db: another database; $comment: a note of EXPLAIN's, never sent.
    assert to_mongosh(
        {
            "find": "oplog.rs",
            "filter": {},
            "limit": 1,
            "$db": "local",
            "$comment": "the oldest entry",
        }
    ) == (
        "db.getSiblingDB('local').getCollection('oplog.rs').find({}).limit(1)  // the oldest entry"
    )
    assert to_mongosh({"collMod": "t", "$comment": "only when"}) == (
        "db.runCommand({ collMod: 't' })  // only when"
    )


def test_caret_excerpt():
    assert caret_excerpt("SELECT 1;\nSELECT x FRM t;\n", 2, 10) == "SELECT x FRM t;\n         ^"


def test_repl_history_file_is_private(tmp_path):
    from queryleaf.cli.repl import history_path

    old = tmp_path / "old"
    old.mkdir()
    (old / "repl_history").write_text("SELECT 1\n")
    (old / "repl_history").chmod(0o644)  # from before history files were made private
    for data_dir in (tmp_path / "new" / "dir", old):
        path = history_path(str(data_dir))
        assert path is not None and (path.stat().st_mode & 0o777) == 0o600
    assert ((tmp_path / "new" / "dir").stat().st_mode & 0o777) == 0o700
    assert (old / "repl_history").read_text() == "SELECT 1\n"
