"""One ephemeral embedded server per test session; each test gets a fresh database."""

from __future__ import annotations

import itertools
import os

import pytest

from queryleaf.engine import start_ephemeral_server

_counter = itertools.count()


@pytest.fixture(scope="session")
def server():
    srv = start_ephemeral_server(test_commands=True)
    os.environ["QUERYLEAF_TEST_URI"] = srv.uri
    yield srv
    srv.stop()


@pytest.fixture()
def dbname(request) -> str:
    base = "".join(c if c.isalnum() else "_" for c in request.node.name)[:40]
    return f"t{next(_counter)}_{base}"


@pytest.fixture()
def ql(server, dbname):
    import queryleaf

    conn = queryleaf.connect(server.uri, database=dbname)
    yield conn
    conn.client.drop_database(dbname)
    conn.close()
