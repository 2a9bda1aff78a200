"""Event subscriptions versus a bare pymongo ``watch`` loop, on the same server, same writes.

    .venv/bin/python bench/events_bench.py [--events N] [--quick]

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

Not a test: prints a table (and ``--json``).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pymongo  # noqa: E402
from machine import cpu_name, os_name  # noqa: E402  (bench/machine.py)

import queryleaf  # noqa: E402
from queryleaf.engine import start_ephemeral_server  # noqa: E402


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


def bare_consume(coll: Any, n: int, start_at: Any, on_event: Callable[[dict], None] | None = None
                 ) -> float:
    """Seconds to receive ``n`` events from ``start_at``."""
    started = time.perf_counter()
    seen = 0
    with coll.watch(start_at_operation_time=start_at, max_await_time_ms=200) as stream:
        while seen < n:
            event = stream.try_next()
            if event is None:
                continue
            if on_event is not None:
                on_event(event)
            seen += 1
    return time.perf_counter() - started


# ------------------------------------------------------------------ the worker


def subscription(ql: Any, name: str, coll: str, deliver_to: str = "log") -> None:
    ql.execute(f"CREATE EVENT_SUBSCRIPTION {name} AS (watch_collections = '{coll}',"
               f" deliver_to = '{deliver_to}', full_document = 'default')")


def worker_consume(ql: Any, n: int) -> float:
    started = time.perf_counter()
    report = ql.run_subscriptions(max_events=n, poll_interval=0.05, idle_timeout=30)
    elapsed = time.perf_counter() - started
    if report.events != n:
        raise RuntimeError(f"worker handled {report.events} of {n} events ({report.reason})")
    return elapsed


# ------------------------------------------------------------------ scenarios


def backlog(uri: str, n: int) -> dict[str, float]:
    client = pymongo.MongoClient(uri)
    out: dict[str, float] = {}
    db = client["bench_backlog_bare"]
    start = _start_time(client, db.name)
    write_backlog(db.orders, n)
    out["bare"] = n / bare_consume(db.orders, n, start)
    for sink in ("log", "collection"):
        name = f"bench_backlog_{sink}"
        with queryleaf.connect(uri, database=name) as ql:
            subscription(ql, "s", "orders", "log" if sink == "log" else "collection:mirror")
            write_backlog(ql.db.orders, n)
            out[sink] = n / worker_consume(ql, n)
    client.close()
    return out


def live(uri: str, n: int) -> dict[str, float]:
    client = pymongo.MongoClient(uri)
    out: dict[str, float] = {}
    db = client["bench_live_bare"]
    start = _start_time(client, db.name)
    writer = threading.Thread(target=write_live, args=(db.orders, n))
    t0 = time.perf_counter()
    writer.start()
    bare_consume(db.orders, n, start)
    out["bare"] = n / (time.perf_counter() - t0)
    writer.join()
    for sink in ("log", "collection"):
        name = f"bench_live_{sink}"
        with queryleaf.connect(uri, database=name) as ql:
            subscription(ql, "s", "orders", "log" if sink == "log" else "collection:mirror")
            writer = threading.Thread(target=write_live, args=(ql.db.orders, n))
            t0 = time.perf_counter()
            writer.start()
            worker_consume(ql, n)
            out[sink] = n / (time.perf_counter() - t0)
            writer.join()
    client.close()
    return out


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
    bare_consume(db.orders, n, start,
                 lambda e: bare.append((time.perf_counter() - e["fullDocument"]["t"]) * 1000))
    writer.join()
    out["bare"] = _percentiles(bare)
    with queryleaf.connect(uri, database="bench_latency_worker") as ql:
        subscription(ql, "s", "orders")
        seen: list[float] = []
        ql.on("s")(lambda e: seen.append((time.perf_counter() - e["fullDocument"]["t"]) * 1000))
        stop = threading.Event()
        worker = threading.Thread(target=ql.run_subscriptions,
                                  kwargs={"stop_event": stop, "poll_interval": 0.05})
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


def fan_out(uri: str, k: int, total: int) -> dict[str, float]:
    client = pymongo.MongoClient(uri, maxPoolSize=None)
    per = max(total // k, 20)
    db = client[f"bench_fan_bare_{k}"]
    start = _start_time(client, db.name)
    write_backlog(db.orders, per)
    threads = [threading.Thread(target=bare_consume, args=(db.orders, per, start))
               for _ in range(k)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bare_rate = k * per / (time.perf_counter() - t0)
    with queryleaf.connect(uri, database=f"bench_fan_worker_{k}") as ql:
        for i in range(k):
            subscription(ql, f"s{i}", "orders")
        write_backlog(ql.db.orders, per)
        worker_rate = k * per / worker_consume(ql, k * per)
    client.close()
    return {"subscriptions": k, "events_each": per, "bare": bare_rate, "worker": worker_rate}


def fresh(scenario: Callable[..., Any], *args: Any) -> Any:
    srv = start_ephemeral_server()
    try:
        return scenario(srv.uri, *args)
    finally:
        srv.stop()


def _wait(predicate: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("benchmark step timed out")
        time.sleep(0.01)


# ------------------------------------------------------------------ main


def machine() -> str:
    return (f"{cpu_name()}, Python {platform.python_version()}, pymongo {pymongo.version}, "
            f"{os_name()}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = parser.parse_args(argv)
    n = 500 if args.quick else args.events
    results: dict[str, Any] = {"machine": machine(), "events": n}
    # Every scenario (and fan-out size) on a fresh server: the embedded server's change streams
    # get slower as its oplog grows, which would otherwise favour whatever runs first.
    results["backlog"] = fresh(backlog, n)
    results["live"] = fresh(live, n)
    results["latency"] = fresh(latency, 200 if args.quick else 1000)
    results["fan_out"] = [fresh(fan_out, k, 1000 if args.quick else 5000)
                          for k in ((1, 10) if args.quick else (1, 10, 100))]
    report(results)
    if args.json:
        print(json.dumps(results, indent=2))
    return results


def report(r: dict[str, Any]) -> None:
    print(f"machine: {r['machine']}")
    print(f"\nthroughput, {r['events']} inserts (events/s; ratio to the bare watch loop)")
    for scenario in ("backlog", "live"):
        row = r[scenario]
        cells = "  ".join(f"{k} {row[k]:8.0f} ({row[k] / row['bare']:.2f}x)"
                          for k in ("log", "collection"))
        print(f"  {scenario:8} bare {row['bare']:8.0f}  {cells}")
    lat = r["latency"]
    print("\nwrite-to-handler latency (ms)")
    for who in ("bare", "worker"):
        print(f"  {who:7} p50 {lat[who]['p50']:7.2f}  p99 {lat[who]['p99']:7.2f}  "
              f"max {lat[who]['max']:7.2f}")
    print(f"  added   p50 {lat['worker']['p50'] - lat['bare']['p50']:7.2f}  "
          f"p99 {lat['worker']['p99'] - lat['bare']['p99']:7.2f}")
    print("\nfan-out: subscriptions on one worker vs as many bare loops (events/s, total)")
    for row in r["fan_out"]:
        print(f"  {row['subscriptions']:4} x {row['events_each']:5} events: bare "
              f"{row['bare']:8.0f}  worker {row['worker']:8.0f} "
              f"({row['worker'] / row['bare']:.2f}x)")


if __name__ == "__main__":
    main()
