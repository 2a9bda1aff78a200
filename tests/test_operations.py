"""Operating workers: the Prometheus metrics, /healthz and /readyz, ``queryleaf worker --check``
and ``--log-format json``, the shipped alert rules and dashboard (docs/operations.md). The
Prometheus test runs Debian's ``prometheus`` against a worker (slow; skipped without it)."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from bson import Timestamp
from event_helpers import definition, log_rows, wait_for
from prometheus_client.parser import text_string_to_metric_families

from queryleaf.events import names
from queryleaf.events.endpoint import Endpoint, parse_address
from queryleaf.events.logs import LOGGER, JsonFormatter, SubscriptionLog, fields
from queryleaf.events.observe import Monitor

ROOT = Path(__file__).resolve().parents[1]
OPERATIONS = ROOT / "examples" / "operations"
LABELS = {"subscription", "status", "le", "version", "python_version", "worker_id"}


class MonitoredWorker:
    """A worker running in a thread with its metrics endpoint on a free loopback port."""

    def __init__(self, ql, **kwargs):
        self.monitor = Monitor()
        self.endpoint = Endpoint(self.monitor, "127.0.0.1", 0).start()
        self.stop_event = threading.Event()
        kwargs.setdefault("poll_interval", 0.2)
        self.thread = threading.Thread(
            target=ql.run_subscriptions,
            kwargs={"stop_event": self.stop_event, "monitor": self.monitor, **kwargs},
            daemon=True,
        )
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.endpoint.address
        return f"http://{host}:{port}"

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as reply:
                return reply.status, reply.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, text = self.get("/metrics")
        assert status == 200
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def value(self, name: str, **labels: str) -> float | None:
        return self.samples().get((name, tuple(sorted(labels.items()))))

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(20)
        self.endpoint.close()
        assert not self.thread.is_alive()

    def __enter__(self) -> MonitoredWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def ready(worker: MonitoredWorker) -> bool:
    return worker.get("/readyz")[0] == 200


# ------------------------------------------------------------------ metrics


def test_metrics_count_per_subscription_and_the_lag_is_event_subscriptions(ql):
    ql.execute(
        "CREATE EVENT_SUBSCRIPTION orders_feed AS (watch_collections = 'orders',"
        " max_retry_attempts = 1, retry_delay_ms = 10)"
    )
    attempts: dict[int, int] = {}

    def handler(event):
        key = event["documentKey"]["_id"]
        attempts[key] = attempts.get(key, 0) + 1
        if key == 2 and attempts[key] == 1:
            raise RuntimeError("once")  # retried, then completed
        if key == 3:
            raise RuntimeError("always")  # dead-lettered after its retry

    ql.on("orders_feed")(handler)
    with MonitoredWorker(ql) as worker:
        wait_for(lambda: ready(worker), what="/readyz 200")
        ql.db.orders.insert_many([{"_id": i} for i in range(1, 6)])
        label = {"subscription": "orders_feed"}
        wait_for(
            lambda: worker.value("queryleaf_subscription_events_received_total", **label) == 5,
            what="5 events counted",
        )
        samples = worker.samples()

        def value(name: str, **labels: str) -> float | None:
            return samples.get((name, tuple(sorted({**label, **labels}.items()))))

        assert value("queryleaf_subscription_events_processed_total") == 4
        assert value("queryleaf_subscription_events_failed_total") == 1
        assert value("queryleaf_subscription_events_dead_lettered_total") == 1
        assert value("queryleaf_subscription_events_retried_total") == 2
        assert value("queryleaf_subscription_processing_duration_seconds_count") == 5
        assert value("queryleaf_subscription_processing_duration_seconds_bucket", le="+Inf") == 5
        assert value("queryleaf_subscription_batch_size_sum") == 5
        assert value("queryleaf_subscription_stream_opens_total") == 1
        assert value("queryleaf_subscription_history_loss_stops_total") == 0
        assert value("queryleaf_subscription_lease_held") == 1
        assert value("queryleaf_subscription_streaming") == 1
        assert value("queryleaf_subscription_worker_running") == 1
        assert value("queryleaf_subscription_status", status="active") == 1
        assert value("queryleaf_subscription_status", status="failed") == 0
        assert samples[("queryleaf_worker_up", ())] == 1
        assert samples[("queryleaf_worker_database_up", ())] == 1
        assert 0 <= samples[("queryleaf_worker_heartbeat_age_seconds", ())] < 5
        assert ("queryleaf_worker_committer_queued_events", ()) in samples
        (build,) = [key for key in samples if key[0] == "queryleaf_build_info"]
        assert dict(build[1])["version"]
        # Bounded labels only: no event ids, document keys or errors.
        assert {k for _, labels in samples for k, _ in labels} <= LABELS

        # The lag gauge is EVENT_SUBSCRIPTIONS().resume_token_lag_seconds, whatever it is.
        ql.db[names.SUBSCRIPTIONS].update_one(
            {"_id": "orders_feed"}, {"$set": {"resume_token_lag_seconds": 42.5}}
        )
        (row,) = ql.execute(
            "SELECT resume_token_lag_seconds FROM EVENT_SUBSCRIPTIONS() WHERE name = 'orders_feed'"
        ).rows
        assert worker.value("queryleaf_subscription_lag_seconds", **label) == pytest.approx(
            row["resume_token_lag_seconds"]
        )
    # Counted before: the definition's own counters agree.
    doc = definition(ql, "orders_feed")
    assert (doc["events_received"], doc["events_dead_lettered"]) == (5, 1)


def test_the_dashboard_and_the_alert_rules_use_only_exported_metrics(ql):
    ql.execute("CREATE EVENT_SUBSCRIPTION feed AS (watch_collections = 'orders')")
    ql.on("feed")(lambda event: None)
    with MonitoredWorker(ql) as worker:
        ql.db.orders.insert_one({"_id": 1})
        wait_for(
            lambda: (
                worker.value("queryleaf_subscription_events_processed_total", subscription="feed")
                == 1
            ),
            what="the event counted",
        )
        exported = {name for name, _ in worker.samples()}
        families = {f.name for f in text_string_to_metric_families(worker.get("/metrics")[1])}
    # The reference table in docs/operations.md lists every metric, and only those.
    table = (ROOT / "docs" / "operations.md").read_text().split("## Metrics", 1)[1]
    documented = set(re.findall(r"^\| `(queryleaf_[a-z_]+)` \|", table, re.MULTILINE))
    assert {name.removesuffix("_total") for name in documented} == families
    dashboard = json.loads((OPERATIONS / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(exprs) >= 10
    rules = (OPERATIONS / "alerts.yml").read_text()
    exprs += re.findall(r"^\s+expr: (.+)$", rules, re.MULTILINE)
    for expr in exprs:
        used = set(re.findall(r"\bqueryleaf_[a-z_]+", expr))
        assert used, expr
        assert used <= exported, (expr, used - exported)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian: prometheus) absent")
def test_promtool_accepts_the_alert_rules():
    proc = subprocess.run(
        ["promtool", "check", "rules", str(OPERATIONS / "alerts.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 6 rules found" in proc.stdout


# ------------------------------------------------------------------ health


def test_readyz_reports_a_subscription_stopped_by_lost_history(ql):
    ql.execute("CREATE EVENT_SUBSCRIPTION ahead AS (watch_collections = 'orders')")
    ql.execute("CREATE EVENT_SUBSCRIPTION fine AS (watch_collections = 'orders')")
    with MonitoredWorker(ql) as worker:
        wait_for(lambda: ready(worker), what="/readyz 200")
        assert worker.get("/healthz") == (200, '{"status": "ok"}\n')
    # The stored position is ahead of the server's newest write (as after a restore): the
    # position is no longer usable, as when it left the oplog (QL4003).
    future = Timestamp(int(time.time()) + 86_400, 1)
    ql.db[names.SUBSCRIPTIONS].update_one(
        {"_id": "ahead"}, {"$set": {"checkpoint_cluster_time": future}}
    )
    ql.db.orders.insert_one({"_id": 1})
    with MonitoredWorker(ql) as worker:
        status, body = wait_for(
            lambda: (
                (answer := worker.get("/readyz"))[0] == 503
                and "history_lost" in answer[1]
                and answer
            ),
            what="/readyz 503",
        )
        reasons = json.loads(body)["reasons"]
        assert [(r["subscription"], r["reason"]) for r in reasons] == [("ahead", "history_lost")]
        assert reasons[0]["message"].startswith("QL4003")
        assert worker.get("/healthz")[0] == 200  # alive: a restart would not help
        label = {"subscription": "ahead"}
        assert worker.value("queryleaf_subscription_history_loss_stops_total", **label) == 1
        assert worker.value("queryleaf_subscription_status", status="failed", **label) == 1
        assert worker.value("queryleaf_subscription_streaming", **label) == 0

        ql.execute("RESET EVENT_SUBSCRIPTION ahead TO NOW")  # the remedy: ready again
        wait_for(lambda: ready(worker), what="/readyz 200 after RESET")


def test_readyz_reports_a_lost_lease(ql):
    ql.execute("CREATE EVENT_SUBSCRIPTION leased AS (watch_collections = 'orders')")
    with MonitoredWorker(ql, lease_seconds=0.6) as worker:
        wait_for(lambda: ready(worker), what="/readyz 200")
        # Another worker takes the lease (as after this one stalled past the lease time).
        later = datetime.now(UTC) + timedelta(hours=1)
        ql.db[names.LEASES].update_one(
            {"_id": "leased"}, {"$set": {"worker_id": "elsewhere:1:abc", "expires_at": later}}
        )
        ql.db[names.SUBSCRIPTIONS].update_one(
            {"_id": "leased"}, {"$set": {"worker_id": "elsewhere:1:abc"}}
        )
        status, body = wait_for(
            lambda: (answer := worker.get("/readyz"))[0] == 503 and answer, what="/readyz 503"
        )
        (reason,) = json.loads(body)["reasons"]
        assert (reason["subscription"], reason["reason"]) == ("leased", "lease_lost")
        label = {"subscription": "leased"}
        assert worker.value("queryleaf_subscription_lease_losses_total", **label) == 1
        assert worker.value("queryleaf_subscription_lease_held", **label) == 0


def test_taking_over_an_expired_lease_is_counted(ql):
    ql.execute("CREATE EVENT_SUBSCRIPTION orphan AS (watch_collections = 'orders')")
    expired = datetime.now(UTC) - timedelta(seconds=5)
    ql.db[names.LEASES].insert_one(
        {"_id": "orphan", "worker_id": "crashed:1:abc", "expires_at": expired}
    )
    with MonitoredWorker(ql) as worker:
        wait_for(lambda: ready(worker), what="/readyz 200")
        label = {"subscription": "orphan"}
        assert worker.value("queryleaf_subscription_lease_takeovers_total", **label) == 1
        assert worker.value("queryleaf_subscription_lease_held", **label) == 1


def test_healthz_and_readyz_fail_once_the_worker_stopped(ql):
    worker = MonitoredWorker(ql)
    wait_for(lambda: ready(worker), what="/readyz 200")
    worker.stop_event.set()
    worker.thread.join(20)
    try:
        status, body = worker.get("/healthz")
        assert status == 503 and json.loads(body)["reasons"][0]["reason"] == "not_running"
        assert worker.value("queryleaf_worker_up") == 0
    finally:
        worker.endpoint.close()


def test_parse_address():
    assert parse_address("9464") == ("127.0.0.1", 9464)
    assert parse_address("0.0.0.0:9464") == ("0.0.0.0", 9464)
    assert parse_address("[::1]:9464") == ("::1", 9464)
    with pytest.raises(ValueError, match="HOST:]PORT"):
        parse_address("localhost:http")


# ------------------------------------------------------------------ the command line


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def worker_env(server, dbname) -> dict[str, str]:
    return {**os.environ, "QUERYLEAF_URI": server.uri, "QUERYLEAF_DB": dbname}


def test_the_cli_worker_serves_metrics_logs_json_and_check_tells_readiness(
    ql, server, dbname, tmp_path
):
    ql.execute(
        "CREATE EVENT_SUBSCRIPTION audit AS (watch_collections = 'orders',"
        " deliver_to = 'collection:audit_copy')"
    )
    env = worker_env(server, dbname)
    check = [sys.executable, "-m", "queryleaf.cli.worker", "--check"]
    proc = subprocess.run(check, capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1, proc.stderr  # nobody runs it yet
    assert json.loads(proc.stdout)["reasons"][0]["reason"] == "no_worker"

    port = free_port()
    log_path = tmp_path / "worker.log"
    with open(log_path, "w") as log:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "queryleaf.cli.worker",
                "--metrics",
                str(port),
                "--log-format",
                "json",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=env,
        )
    try:
        url = f"http://127.0.0.1:{port}"

        def get(path: str) -> int:
            try:
                with urllib.request.urlopen(url + path, timeout=5) as reply:
                    return reply.status
            except urllib.error.HTTPError as exc:
                return exc.code
            except OSError:
                return 0

        wait_for(lambda: get("/readyz") == 200, 30, "the worker's /readyz")
        ql.db.orders.insert_one({"_id": "a"})
        wait_for(lambda: ql.db.audit_copy.count_documents({}) == 1, 30, "the copy")
        proc = subprocess.run(check, capture_output=True, text=True, env=env, timeout=60)
        assert (proc.returncode, json.loads(proc.stdout)) == (0, {"status": "ready"})
        asked = subprocess.run(
            [*check, "--metrics", str(port)], capture_output=True, text=True, env=env, timeout=60
        )
        assert (asked.returncode, json.loads(asked.stdout)) == (0, {"status": "ready"})
        with urllib.request.urlopen(url + "/metrics", timeout=5) as reply:
            assert "queryleaf_subscription_events_processed_total" in reply.read().decode()
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    assert lines and all({"time", "level", "worker_id", "message"} <= set(line) for line in lines)
    (event,) = [line for line in lines if line.get("event_id")]
    assert event["subscription"] == "audit" and event["level"] == "info"
    (row,) = log_rows(ql, subscription_id="audit")
    assert event["event_id"] == row["event_id"]  # as in CHANGE_STREAM_EVENTS()
    assert len({line["worker_id"] for line in lines}) == 1

    gone = subprocess.run(
        [*check, "--metrics", str(port)], capture_output=True, text=True, env=env, timeout=60
    )
    assert gone.returncode == 2
    assert json.loads(gone.stdout)["reasons"][0]["reason"] == "worker_unreachable"


# ------------------------------------------------------------------ a real Prometheus


def prometheus_config(tmp_path: Path, target: str, rules: Path) -> Path:
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  evaluation_interval: 1s\n"
        f"rule_files: ['{rules}']\n"
        "scrape_configs:\n"
        "  - job_name: queryleaf-worker\n"
        f"    static_configs: [{{targets: ['{target}']}}]\n"
    )
    return config


def fast_lag_rule(tmp_path: Path) -> Path:
    """The shipped rules, the lag alert's threshold and ``for:`` shortened for a test."""
    text = (OPERATIONS / "alerts.yml").read_text()
    lag = re.search(r"- alert: QueryleafSubscriptionLagHigh\n(.*?)\n\n", text, re.DOTALL)
    assert lag is not None
    fast = lag.group(0).replace("> 60", "> 2").replace("for: 5m", "for: 2s")
    assert fast != lag.group(0)
    rules = tmp_path / "alerts.yml"
    rules.write_text(text.replace(lag.group(0), fast))
    return rules


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("prometheus") is None,
    reason="the prometheus binary is absent (Debian: apt-get install prometheus; CI installs it)",
)
def test_prometheus_scrapes_a_worker_and_fires_the_lag_alert(ql, tmp_path):
    ql.execute("CREATE EVENT_SUBSCRIPTION slow AS (watch_collections = 'orders')")
    ql.on("slow")(lambda event: time.sleep(0.25))  # slower than the writes below
    port = free_port()
    with MonitoredWorker(ql) as worker:
        target = "{}:{}".format(*worker.endpoint.address)
        config = prometheus_config(tmp_path, target, fast_lag_rule(tmp_path))
        prometheus = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        api = f"http://127.0.0.1:{port}/api/v1/"

        def query(path: str, **params: str) -> dict:
            try:
                url = api + path + ("?" + urllib.parse.urlencode(params) if params else "")
                with urllib.request.urlopen(url, timeout=5) as reply:
                    return json.loads(reply.read())["data"]
            except OSError:
                return {}

        try:
            up = wait_for(
                lambda: query("query", query="queryleaf_worker_up").get("result"),
                60,
                "Prometheus to scrape the worker",
                0.5,
            )
            assert up[0]["value"][1] == "1"
            stop_writing = threading.Event()

            def write() -> None:
                i = 0
                while not stop_writing.is_set():
                    ql.db.orders.insert_one({"_id": i})
                    i += 1
                    time.sleep(0.05)

            writer = threading.Thread(target=write, daemon=True)
            writer.start()
            try:

                def firing() -> list:
                    alerts = query("alerts").get("alerts") or []
                    return [
                        a
                        for a in alerts
                        if a["labels"]["alertname"] == "QueryleafSubscriptionLagHigh"
                        and a["state"] == "firing"
                    ]

                (alert,) = wait_for(firing, 60, "the lag alert to fire", 0.5)
                assert alert["labels"]["subscription"] == "slow"
                assert float(alert["value"]) > 2
            finally:
                stop_writing.set()
                writer.join(5)
            processed = query(
                "query", query='queryleaf_subscription_events_processed_total{subscription="slow"}'
            )["result"]
            assert float(processed[0]["value"][1]) > 0
        finally:
            prometheus.terminate()
            prometheus.wait(20)


def test_json_log_lines_carry_the_fields_and_the_traceback():
    formatter = JsonFormatter("host:1:abc")
    log = SubscriptionLog("orders_feed")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep()
    logging.getLogger(LOGGER).addHandler(keep)
    try:
        log.warning("retry %d", 1, extra=fields(event_id="82AB", error="boom"))
        try:
            raise ValueError("bad handler")
        except ValueError:
            log.exception("stopped")
    finally:
        logging.getLogger(LOGGER).removeHandler(keep)
    first, second = (json.loads(formatter.format(record)) for record in records)
    assert first["message"] == "retry 1" and first["level"] == "warning"
    assert (first["worker_id"], first["subscription"]) == ("host:1:abc", "orders_feed")
    assert (first["event_id"], first["error"]) == ("82AB", "boom")
    assert datetime.fromisoformat(first["time"]).tzinfo is not None
    assert "ValueError: bad handler" in second["error"] and "event_id" not in second
