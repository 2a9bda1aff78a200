"""A worker whose server dies or hangs: it stops within its bound on SIGTERM, and
EVENT_SUBSCRIPTIONS() shows it as stale rather than running (docs/events.md "Operating a worker").
Slow tier: real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from event_helpers import wait_for
from pymongo import MongoClient

import queryleaf
from queryleaf.engine import start_ephemeral_server
from queryleaf.events import names

pytestmark = pytest.mark.slow

STOP_BOUND_S = 5.0  # docs/events.md "Stopping": a worker exits within 5 s of SIGTERM (+ a handler)


def _worker(uri: str, db: str, *args: str) -> subprocess.Popen:
    env = {**os.environ, "QUERYLEAF_URI": uri, "QUERYLEAF_DB": db}
    return subprocess.Popen(
        [sys.executable, "-m", "queryleaf", "worker", "--quiet", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )


def _worker_status(ql, name: str) -> dict:
    (row,) = ql.execute(
        "SELECT worker_status, worker_heartbeat_age_seconds AS age, worker_id "
        f"FROM EVENT_SUBSCRIPTIONS() WHERE name = '{name}'"
    ).rows
    return row


@pytest.mark.parametrize("fault", ["killed", "hanging"])
def test_sigterm_stops_a_worker_within_its_bound_when_the_server_is_gone(fault):
    srv = start_ephemeral_server()
    ql = queryleaf.connect(srv.uri, database="gone")
    worker = None
    try:
        ql.execute(
            "CREATE EVENT_SUBSCRIPTION s AS (watch_collections = 'orders',"
            " deliver_to = 'collection:mirror')"
        )
        worker = _worker(srv.uri, "gone")
        ql.db.orders.insert_many([{"_id": i} for i in range(20)])
        wait_for(lambda: ql.db.mirror.count_documents({}) == 20, 30, "the worker to run")
        if fault == "killed":
            srv.process.send_signal(signal.SIGKILL)  # connections refused from now on
        else:
            srv.process.send_signal(signal.SIGSTOP)  # connections accepted, never answered
        time.sleep(1.0)  # the worker is now waiting for the server
        started = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(30)
        took = time.monotonic() - started
        stderr = worker.stderr.read().decode() if worker.stderr else ""
        assert code == 0, stderr
        assert took <= STOP_BOUND_S + 1.0, f"stopping took {took:.1f}s"
        assert "could not checkpoint" in stderr or took < STOP_BOUND_S
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
        if srv.process.poll() is None:
            srv.process.send_signal(signal.SIGCONT)
        ql.close()
        srv.stop()


def test_a_worker_that_cannot_renew_its_lease_shows_as_stale(ql, server):
    ql.execute("CREATE EVENT_SUBSCRIPTION s AS (watch_collections = 'orders')")
    assert _worker_status(ql, "s")["worker_status"] == "none"
    worker = _worker(server.uri, ql.database_name, "--lease-seconds", "1.5")
    try:
        wait_for(lambda: _worker_status(ql, "s")["worker_status"] == "running", 30, "running")
        row = _worker_status(ql, "s")
        assert row["worker_id"] is not None and 0 <= row["age"] < 1.5
        worker.send_signal(signal.SIGSTOP)  # as cut off from its server: no more heartbeats
        row = wait_for(
            lambda: (r := _worker_status(ql, "s"))["worker_status"] == "stale" and r, 10, "stale"
        )
        assert row["age"] >= 1.5
        worker.send_signal(signal.SIGCONT)
        wait_for(lambda: _worker_status(ql, "s")["worker_status"] == "running", 10, "running")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
        assert _worker_status(ql, "s")["worker_status"] == "none"  # released
        assert ql.db[names.LEASES].count_documents({}) == 0
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGCONT)
            worker.kill()


def test_a_worker_on_the_embedded_default_restarts_its_dead_server_and_goes_on(tmp_path):
    """The worker's watchdog starts the killed server again (same data dir, same storage);
    its streams resume and nothing is lost. The test's own lease does not watch: only the
    worker can have brought the server back."""
    from queryleaf import engine

    data_dir = tmp_path / "data"
    lease = engine.acquire(data_dir)
    client = MongoClient(lease.uri, serverSelectionTimeoutMS=30_000)
    ql = queryleaf.connect(lease.uri, database="revive")
    env = {**os.environ, "QUERYLEAF_DATA_DIR": str(data_dir), "QUERYLEAF_DB": "revive"}
    env.pop("QUERYLEAF_URI", None)
    worker = None
    try:
        ql.execute(
            "CREATE EVENT_SUBSCRIPTION s AS (watch_collections = 'orders',"
            " deliver_to = 'collection:mirror')"
        )
        worker = subprocess.Popen(
            [sys.executable, "-m", "queryleaf", "worker", "--quiet"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )
        written = 0
        for _ in range(3):
            client.revive.orders.insert_many([{"_id": written + i} for i in range(20)])
            written += 20
            wait_for(
                lambda n=written, c=client: c.revive.mirror.count_documents({}) == n,
                30,
                "the worker to deliver",
            )
            dead = lease.pid
            os.kill(dead, signal.SIGKILL)
            wait_for(
                lambda d=dead: (r := engine.find_server(data_dir)) is not None and r.pid != d,
                30,
                "the worker to start the server again",
            )
            if lease.revive():  # adopt it; a new URI only if the old port was taken meanwhile
                client.close()
                client = MongoClient(lease.uri, serverSelectionTimeoutMS=30_000)
        client.revive.orders.insert_many([{"_id": written + i} for i in range(20)])
        written += 20
        wait_for(
            lambda: client.revive.mirror.count_documents({}) == written,
            30,
            "the worker to deliver after the restarts",
        )
        keys = sorted(d["documentKey"]["_id"] for d in client.revive.mirror.find())
        assert keys == list(range(written))
        definitions = client.revive[names.SUBSCRIPTIONS]
        wait_for(
            lambda: definitions.find_one({"_id": "s"})["events_processed"] >= written,
            30,
            "the checkpoint (it follows the delivery)",
        )
        doc = definitions.find_one({"_id": "s"})
        assert doc["status"] == "active" and doc["events_processed"] == written
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0, worker.stderr.read().decode() if worker.stderr else ""
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
        client.close()
        ql.close()
        lease.release()
