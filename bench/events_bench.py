"""Event subscriptions versus a bare pymongo ``watch`` loop, on the same server, same writes.

    .venv/bin/python bench/events_bench.py [--events N] [--quick] [--only fan_out ...]

Scenarios (each consumer gets its own run over the same kind of writes, one after the other,
so they do not compete for the server):

* backlog — N inserts are written first, then consumed from a position before them: the
  consumer's maximum rate. Bare loop: ``coll.watch()`` → count. Worker: one subscription with
  ``deliver_to = 'log'`` (event log + checkpoint per group) and ``'collection:...'``.
* live — a writer inserts N documents as fast as it can (batches of 10) while the consumer
  runs; time from the first write to the last event consumed.
* latency — one insert every 5 ms; write-to-handler latency (the document carries the writer's
  ``perf_counter``). Bare loop: when the event is returned. Worker: when a registered handler
  (``@ql.on``) is called.
* fan-out — 1, 10 and 100 subscriptions on one worker, all watching one collection, versus as
  many bare watch loops in threads.
* fan_out_filters — 10 and 100 subscriptions on one collection, each with one of 10 different
  ``event_filter`` values (so each wants a tenth of the 5,000 inserts): bare loops (each with its
  ``$match``), the worker unshared, shared with the filters in the client, shared with their
  union also on the server.
* metrics (only with ``--only metrics``) — the backlog consumed by a worker with a handler,
  with its Prometheus metrics off and on (``--metrics``: the endpoint scraped every 0.5 s,
  30 times more often than Prometheus's default, from another process), alternately on fresh
  servers; the medians of events/s and of the worker's CPU time per event, and their ratios
  (docs/operations.md, "Metrics").

Not a test: prints a table (and ``--json``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pymongo  # noqa: E402
from machine import cpu_name, os_name  # noqa: E402  (bench/machine.py)

import queryleaf  # noqa: E402
from queryleaf.engine import start_ephemeral_server  # noqa: E402
from queryleaf.events.endpoint import Endpoint  # noqa: E402
from queryleaf.events.observe import Monitor  # noqa: E402


def _start_time(client: pymongo.MongoClient, db: str) -> Any:
    with client.start_session() as session:
        client[db].command("ping", session=session)
        client[db]["__bench_mark"].insert_one({}, session=session)
        return session.operation_time


def write_backlog(coll: Any, n: int) -> None:
    for start in range(0, n, 500):
        coll.insert_many([{"i": i, "pad": "x" * 64} for i in range(start, min(n, start + 500))])


def write_live(coll: Any, n: int) -> None:
    for start in range(0, n, 10):
        coll.insert_many([{"i": i, "pad": "x" * 64} for i in range(start, min(n, start + 10))])


# ------------------------------------------------------------------ bare loop


def bare_consume(
    coll: Any,
    n: int,
    start_at: Any,
    on_event: Callable[[dict], None] | None = None,
    pipeline: list[dict[str, Any]] | None = None,
) -> dict[str, float]:
    """Receive ``n`` events from ``start_at``: seconds in all, and from the first event on."""
    started = time.perf_counter()
    first = None
    seen = 0
    with coll.watch(pipeline, start_at_operation_time=start_at, max_await_time_ms=200) as stream:
        while seen < n:
            event = stream.try_next()
            if event is None:
                continue
            if first is None:
                first = time.perf_counter()
            if on_event is not None:
                on_event(event)
            seen += 1
    end = time.perf_counter()
    return {
        "total": end - started,
        "steady": end - (first or started),
        "startup": (first or end) - started,
    }


# ------------------------------------------------------------------ the worker


def subscription(ql: Any, name: str, coll: str, deliver_to: str = "log") -> None:
    ql.execute(
        f"CREATE EVENT_SUBSCRIPTION {name} AS (watch_collections = '{coll}',"
        f" deliver_to = '{deliver_to}', full_document = 'default')"
    )


def worker_consume(ql: Any, n: int, monitor: Monitor | None = None) -> dict[str, float]:
    """Run a worker (default settings) until it has handled ``n`` events: seconds from its
    start, and from the first event taken from a stream, to the last one checkpointed (its
    shutdown afterwards is not counted)."""
    t0 = time.monotonic()
    report = ql.run_subscriptions(max_events=n, idle_timeout=30, monitor=monitor)
    if report.events != n:
        raise RuntimeError(f"worker handled {report.events} of {n} events ({report.reason})")
    first = report.first_event_at or t0
    last = report.last_event_at or first
    return {"total": last - t0, "steady": last - first, "startup": first - t0, "last_at": last}


# ------------------------------------------------------------------ scenarios


SINKS = {"log": "log", "collection": "collection:mirror"}


def backlog_run(uri: str, who: str, n: int) -> dict[str, float]:
    """``n`` inserts written first, then consumed by ``who`` (bare or a sink)."""
    with queryleaf.connect(uri, database="bench_backlog") as ql:
        if who == "bare":
            start = _start_time(ql.client, ql.database_name)
            write_backlog(ql.db.orders, n)
            return bare_consume(ql.db.orders, n, start)
        subscription(ql, "s", "orders", SINKS[who])
        write_backlog(ql.db.orders, n)
        return worker_consume(ql, n)


def _live_writer(uri: str, database: str, n: int, ready: Any, go: Any) -> None:
    """The application: its own process (as it would be), connected before the clock starts."""
    with pymongo.MongoClient(uri) as client:
        client[database].command("ping")
        ready.set()
        go.wait()
        write_live(client[database].orders, n)


def live_run(uri: str, who: str, n: int) -> dict[str, float]:
    """A writer process inserts ``n`` documents (batches of 10) while ``who`` consumes; time
    from the first write to the last event consumed."""
    context = multiprocessing.get_context("spawn")
    ready, go = context.Event(), context.Event()
    writer = context.Process(target=_live_writer, args=(uri, "bench_live", n, ready, go))
    writer.start()
    try:
        with queryleaf.connect(uri, database="bench_live") as ql:
            if who == "bare":
                start = _start_time(ql.client, ql.database_name)
            else:
                subscription(ql, "s", "orders", SINKS[who])
            if not ready.wait(60):
                raise RuntimeError("the writer process did not start")
            t0 = time.monotonic()
            go.set()
            if who == "bare":
                bare_consume(ql.db.orders, n, start)
                return {"total": time.monotonic() - t0}
            return {"total": worker_consume(ql, n)["last_at"] - t0}
    finally:
        writer.join(60)


def throughput(run: Callable[..., dict[str, float]], n: int) -> dict[str, dict[str, float]]:
    """Each consumer on its own fresh server (the embedded server's stream opening and oplog
    scans grow with its oplog, which would favour whoever runs first)."""
    return {who: fresh(run, who, n) for who in ("bare", *SINKS)}


def _paced_writes(coll: Any, n: int, every_s: float) -> None:
    next_at = time.perf_counter()
    for i in range(n):
        coll.insert_one({"i": i, "t": time.perf_counter()})
        next_at += every_s
        pause = next_at - time.perf_counter()
        if pause > 0:
            time.sleep(pause)


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50": statistics.median(ordered), "p99": q[98], "max": ordered[-1]}


def latency(uri: str, n: int) -> dict[str, dict[str, float]]:
    client = pymongo.MongoClient(uri)
    out: dict[str, dict[str, float]] = {}
    bare: list[float] = []
    db = client["bench_latency_bare"]
    start = _start_time(client, db.name)
    writer = threading.Thread(target=_paced_writes, args=(db.orders, n, 0.005))
    writer.start()
    bare_consume(
        db.orders,
        n,
        start,
        lambda e: bare.append((time.perf_counter() - e["fullDocument"]["t"]) * 1000),
    )
    writer.join()
    out["bare"] = _percentiles(bare)
    with queryleaf.connect(uri, database="bench_latency_worker") as ql:
        subscription(ql, "s", "orders")
        seen: list[float] = []
        ql.on("s")(lambda e: seen.append((time.perf_counter() - e["fullDocument"]["t"]) * 1000))
        stop = threading.Event()
        worker = threading.Thread(target=ql.run_subscriptions, kwargs={"stop_event": stop})
        worker.start()
        _wait(lambda: ql.db["__queryleaf_leases"].find_one({"_id": "s"}) is not None)
        writer = threading.Thread(target=_paced_writes, args=(ql.db.orders, n, 0.005))
        writer.start()
        writer.join()
        _wait(lambda: len(seen) >= n)
        stop.set()
        worker.join()
        out["worker"] = _percentiles(seen)
    client.close()
    return out


def fan_out_run(uri: str, who: str, k: int, per: int) -> float:
    """``k`` consumers of the same ``per`` inserts: bare loops in threads, or ``k``
    subscriptions on one worker. Events/s in total (including start-up)."""
    if who == "bare":
        with pymongo.MongoClient(uri, maxPoolSize=None) as client:
            start = _start_time(client, "bench_fan")
            write_backlog(client.bench_fan.orders, per)
            threads = [
                threading.Thread(target=bare_consume, args=(client.bench_fan.orders, per, start))
                for _ in range(k)
            ]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return k * per / (time.perf_counter() - t0)
    with queryleaf.connect(uri, database="bench_fan") as ql:
        for i in range(k):
            subscription(ql, f"s{i}", "orders")
        write_backlog(ql.db.orders, per)
        return k * per / worker_consume(ql, k * per)["total"]


GROUPS = 10  # fan-out with filters: subscription i wants the documents with g = i % GROUPS
SPREAD = GROUPS  # g = write number % SPREAD: with SPREAD > GROUPS, some writes nobody wants


def fan_out_filters_run(uri: str, who: str, k: int, per: int) -> float:
    """``k`` consumers on one collection, each with its own filter (``fullDocument.g`` = one of
    GROUPS values), of ``per`` inserts: bare loops (each filtering on the server), or ``k``
    subscriptions on one worker: unshared, shared with the filters in the client, shared with
    their union also on the server. Events/s in total (including start-up)."""
    each = per // SPREAD
    wanted = k * each
    if who == "bare":
        with pymongo.MongoClient(uri, maxPoolSize=None) as client:
            start = _start_time(client, "bench_fan")
            write_groups(client.bench_fan.orders, per)
            threads = [
                threading.Thread(
                    target=bare_consume,
                    args=(client.bench_fan.orders, each, start),
                    kwargs={"pipeline": [{"$match": {"fullDocument.g": i % GROUPS}}]},
                )
                for i in range(k)
            ]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return wanted / (time.perf_counter() - t0)
    from queryleaf.events import runner, sharing

    runner.SHARED_STREAMS = who != "unshared"
    sharing.SERVER_FILTER = who == "server filter"
    with queryleaf.connect(uri, database="bench_fan") as ql:
        for i in range(k):
            ql.execute(
                f"CREATE EVENT_SUBSCRIPTION s{i} AS (watch_collections = 'orders',"
                f" deliver_to = 'log', full_document = 'default',"
                f" event_filter = JSON_OBJECT('fullDocument.g', {i % GROUPS}))"
            )
        write_groups(ql.db.orders, per)
        return wanted / worker_consume(ql, wanted)["total"]


def write_groups(coll: Any, n: int) -> None:
    for start in range(0, n, 500):
        end = min(n, start + 500)
        coll.insert_many([{"i": i, "g": i % SPREAD, "pad": "x" * 64} for i in range(start, end)])


FILTER_MODES = ("bare", "unshared", "client filter", "server filter")


def fan_out_filters(k: int, writes: int) -> dict[str, Any]:
    return {
        "subscriptions": k,
        "writes": writes,
        **{who: fresh(fan_out_filters_run, who, k, writes) for who in FILTER_MODES},
    }


def fan_out(k: int, total: int) -> dict[str, float]:
    per = max(total // k, 20)
    return {
        "subscriptions": k,
        "events_each": per,
        **{who: fresh(fan_out_run, who, k, per) for who in ("bare", "worker")},
    }


SCENARIOS = ("backlog", "live", "latency", "fan_out", "fan_out_filters", "metrics")
DEFAULT_SCENARIOS = SCENARIOS[:-1]
SCRAPE_EVERY_S = 0.5
METRICS_ROUNDS = 7
METRICS_SCALE = 4  # the metrics scenario runs over --events x this
DURABLE = False  # --durable: storage on disk with durable commits, as the embedded default


def fresh(scenario: Callable[..., Any], *args: Any) -> Any:
    if not DURABLE:
        srv = start_ephemeral_server()
    else:
        storage = tempfile.mkdtemp(prefix="queryleaf-bench-")
        srv = start_ephemeral_server(storage_path=storage, extra_args=("--sync-on-commit",))
    try:
        return scenario(srv.uri, *args)
    finally:
        srv.stop()
        if DURABLE:
            shutil.rmtree(storage, ignore_errors=True)


def _wait(predicate: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("benchmark step timed out")
        time.sleep(0.01)


def _scrape(url: str, every_s: float, scraping: Any, stop: Any) -> None:
    """Prometheus's part, in a process of its own (its CPU is not the worker's)."""
    while True:
        with urllib.request.urlopen(url, timeout=5) as reply:
            reply.read()
        scraping.set()
        if stop.wait(every_s):
            return


def metrics_run(uri: str, monitored: bool, n: int) -> dict[str, float]:
    """A worker with a handler over a backlog of ``n``, with its metrics endpoint scraped every
    SCRAPE_EVERY_S (``monitored``) or without monitoring: events/s, and the CPU time of this
    process (the worker's threads) per event, which other jobs on the machine disturb less."""
    with queryleaf.connect(uri, database="bench_metrics") as ql:
        subscription(ql, "s", "orders")
        ql.on("s")(lambda event: None)
        write_backlog(ql.db.orders, n)
        monitor = endpoint = scraper = None
        context = multiprocessing.get_context("spawn")
        scraping, stop = context.Event(), context.Event()
        if monitored:
            monitor = Monitor()
            endpoint = Endpoint(monitor, "127.0.0.1", 0).start()
            url = "http://{}:{}/metrics".format(*endpoint.address)
            args = (url, SCRAPE_EVERY_S, scraping, stop)
            scraper = context.Process(target=_scrape, args=args)
            scraper.start()
            if not scraping.wait(60):  # started (its start-up is not the worker's cost)
                raise RuntimeError("the scraper process did not start")
        try:
            cpu = time.process_time()
            result = worker_consume(ql, n, monitor)
            cpu = time.process_time() - cpu
        finally:
            stop.set()
            if scraper is not None:
                scraper.join(10)
            if endpoint is not None:
                endpoint.close()
        return {"events_per_s": n / result["steady"], "cpu_us_per_event": cpu / n * 1e6}


def metrics_overhead(n: int, rounds: int) -> dict[str, Any]:
    """Metrics off and on, alternately, each on a fresh server: the medians of each."""
    runs: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    for _ in range(rounds):
        runs["off"].append(fresh(metrics_run, False, n))
        runs["on"].append(fresh(metrics_run, True, n))
    out: dict[str, Any] = {"rounds": rounds, "runs": runs}
    for key in ("events_per_s", "cpu_us_per_event"):
        off = statistics.median(run[key] for run in runs["off"])
        on = statistics.median(run[key] for run in runs["on"])
        out[key] = {"off": off, "on": on, "ratio": on / off}
    return out


# ------------------------------------------------------------------ main


def machine() -> str:
    return (
        f"{cpu_name()}, Python {platform.python_version()}, pymongo {pymongo.version}, {os_name()}"
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    parser.add_argument(
        "--durable",
        action="store_true",
        help="servers on disk with durable commits (the embedded default) instead of in memory",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=SCENARIOS,
        default=list(DEFAULT_SCENARIOS),
        help="run only these scenarios (metrics: only when named)",
    )
    parser.add_argument(
        "--filter-spread",
        type=int,
        default=GROUPS,
        help="fan_out_filters: documents get g = n %% SPREAD (> 10: some are wanted by nobody)",
    )
    parser.add_argument(
        "--metrics-rounds",
        type=int,
        default=METRICS_ROUNDS,
        help="metrics: rounds of (off, on) runs (the medians are reported)",
    )
    args, _ = parser.parse_known_args(argv)
    global DURABLE, SPREAD
    SPREAD = args.filter_spread
    DURABLE = args.durable
    n = 500 if args.quick else args.events
    results: dict[str, Any] = {
        "machine": machine(),
        "events": n,
        "storage": "disk, durable commits" if DURABLE else "memory",
    }
    # Every scenario (and fan-out size) on a fresh server: the embedded server's change streams
    # get slower as its oplog grows, which would otherwise favour whatever runs first.
    if "backlog" in args.only:
        results["backlog"] = throughput(backlog_run, n)
    if "live" in args.only:
        results["live"] = throughput(live_run, n)
    if "latency" in args.only:
        results["latency"] = fresh(latency, 200 if args.quick else 1000)
    if "fan_out" in args.only:
        results["fan_out"] = [
            fan_out(k, 1000 if args.quick else 5000)
            for k in ((1, 10) if args.quick else (1, 10, 100))
        ]
    if "fan_out_filters" in args.only:
        results["filter_spread"] = SPREAD
        results["fan_out_filters"] = [
            fan_out_filters(k, 1000 if args.quick else 5000)
            for k in ((10,) if args.quick else (10, 100))
        ]
    if "metrics" in args.only:
        # Long enough runs for several scrapes each (a run of 5,000 takes about half a second).
        results["metrics_events"] = n * METRICS_SCALE
        results["metrics"] = metrics_overhead(
            n * METRICS_SCALE, 2 if args.quick else args.metrics_rounds
        )
    report(results)
    if args.json:
        print(json.dumps(results, indent=2))
    return results


def report(r: dict[str, Any]) -> None:
    print(f"machine: {r['machine']}; server storage: {r['storage']}")
    n = r["events"]
    if "backlog" in r and "live" in r:
        _report_throughput(r, n)
    if "latency" in r:
        _report_latency(r)
    if "fan_out" in r:
        _report_fan_out(r)
    if "fan_out_filters" in r:
        _report_fan_out_filters(r)
    if "metrics" in r:
        _report_metrics(r)


def _report_metrics(r: dict[str, Any]) -> None:
    m = r["metrics"]
    print(
        f"\nmetrics overhead: backlog of {r['metrics_events']} events to a handler, {m['rounds']} rounds "
        f"(medians; metrics on: the endpoint scraped every {SCRAPE_EVERY_S}s)"
    )
    for key, label in (("events_per_s", "events/s"), ("cpu_us_per_event", "worker CPU µs/event")):
        row = m[key]
        runs = "  ".join(
            f"{which} " + ", ".join(f"{run[key]:.0f}" for run in m["runs"][which])
            for which in ("off", "on")
        )
        print(
            f"  {label:20} off {row['off']:8.1f}  on {row['on']:8.1f}  on/off {row['ratio']:.3f}"
            f"  ({runs})"
        )


def _report_fan_out_filters(r: dict[str, Any]) -> None:
    print(
        f"\nfan-out with a filter each ({GROUPS} different ones; wanted: {GROUPS} writes in "
        f"{r['filter_spread']}): events/s in total (delivered)"
    )
    for row in r["fan_out_filters"]:
        cells = "  ".join(f"{who} {row[who]:8.0f}" for who in FILTER_MODES)
        print(f"  {row['subscriptions']:4} subscriptions, {row['writes']} writes: {cells}")


def _report_throughput(r: dict[str, Any], n: int) -> None:
    print(f"\nthroughput, {n} inserts (events/s; ratio to the bare watch loop)")
    b = r["backlog"]
    for label, key in (
        ("backlog, from the first event on", "steady"),
        ("backlog, including start-up", "total"),
    ):
        bare = n / b["bare"][key]
        cells = "  ".join(
            f"{k} {n / b[k][key]:8.0f} ({b['bare'][key] / b[k][key]:.2f}x)" for k in SINKS
        )
        print(f"  {label:34} bare {bare:8.0f}  {cells}")
    live = r["live"]
    cells = "  ".join(
        f"{k} {n / live[k]['total']:8.0f} ({live['bare']['total'] / live[k]['total']:.2f}x)"
        for k in SINKS
    )
    print(
        f"  {'live writes (first write to last)':34} bare {n / live['bare']['total']:8.0f}  {cells}"
    )
    print(
        "  start-up (s, to the first event): "
        + "  ".join(f"{k} {b[k]['startup']:.3f}" for k in ("bare", *SINKS))
    )


def _report_latency(r: dict[str, Any]) -> None:
    lat = r["latency"]
    print("\nwrite-to-handler latency (ms)")
    for who in ("bare", "worker"):
        print(
            f"  {who:7} p50 {lat[who]['p50']:7.2f}  p99 {lat[who]['p99']:7.2f}  "
            f"max {lat[who]['max']:7.2f}"
        )
    print(
        f"  added   p50 {lat['worker']['p50'] - lat['bare']['p50']:7.2f}  "
        f"p99 {lat['worker']['p99'] - lat['bare']['p99']:7.2f}"
    )


def _report_fan_out(r: dict[str, Any]) -> None:
    print("\nfan-out: subscriptions on one worker vs as many bare loops (events/s, total)")
    for row in r["fan_out"]:
        print(
            f"  {row['subscriptions']:4} x {row['events_each']:5} events: bare "
            f"{row['bare']:8.0f}  worker {row['worker']:8.0f} "
            f"({row['worker'] / row['bare']:.2f}x)"
        )


if __name__ == "__main__":
    main()
