"""Live queries: write-to-row latency of ``QueryLeaf.stream`` against a bare pymongo ``watch``
loop, side by side on one server (issue 11, item 5: within the bare loop's p99 + 5 ms).

    .venv/bin/python bench/live_bench.py [--events N] [--json]

A writer inserts one document every 5 ms carrying its ``perf_counter`` at the write; each
consumer runs on its own (one after the other, so they never compete) and records, per change,
the time from the write to the moment it has the row: the bare loop when ``try_next`` returns
the event, the live query when ``for row in ql.stream(...)`` yields the row. The live query
reads ``full_document.t`` (so it asks for ``updateLookup``, as a real query would) and filters
in the change stream — on the process's shared stream (the default) and on a stream of its own.

Then the fan-out: ten live queries on one collection in one process, each reading every insert
of a burst (``insert_many`` batches of 100, as fast as the server takes them), on one shared
change stream against ten streams of their own: rows per second in total, side by side.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pymongo  # noqa: E402
from machine import cpu_name, os_name  # noqa: E402  (bench/machine.py)

import queryleaf  # noqa: E402
from queryleaf.engine import start_ephemeral_server  # noqa: E402
from queryleaf.live import sharing as live_sharing  # noqa: E402

INTERVAL_S = 0.005
SHARED = "ql.stream (shared stream)"
OWN = "ql.stream (own stream)"
LIVE_SQL = (
    "SELECT full_document.t AS t FROM CHANGE_STREAM('{coll}') "
    "WHERE operation_type = 'insert' EMIT CHANGES LIMIT {n}"
)


def writer(coll, n: int, started: threading.Event) -> threading.Thread:
    def run() -> None:
        started.wait()
        time.sleep(0.2)
        for i in range(n):
            coll.insert_one({"i": i, "t": time.perf_counter()})
            time.sleep(INTERVAL_S)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def bare(uri: str, db: str, n: int) -> list[float]:
    client = pymongo.MongoClient(uri)
    coll = client[db]["bare"]
    started = threading.Event()
    thread = writer(client[db]["bare"], n, started)
    latencies = []
    with coll.watch(max_await_time_ms=500) as stream:
        started.set()
        while len(latencies) < n:
            event = stream.try_next()
            if event is not None:
                latencies.append(time.perf_counter() - event["fullDocument"]["t"])
    thread.join()
    client.close()
    return latencies


def live(uri: str, db: str, n: int, shared: bool = True) -> list[float]:
    live_sharing.SHARED_STREAMS = shared
    ql = queryleaf.connect(uri, database=db)
    started = threading.Event()
    thread = writer(ql.db["live"], n, started)
    latencies = []
    rows = ql.stream(LIVE_SQL.format(coll="live", n=n))
    assert rows.shared == shared
    started.set()
    for row in rows:
        latencies.append(time.perf_counter() - row["t"])
    thread.join()
    ql.close()
    return latencies


def fan_out(uri: str, db: str, n: int, queries: int, shared: bool) -> dict[str, float]:
    """``queries`` live queries reading the same ``n`` inserts: rows per second in total."""
    live_sharing.SHARED_STREAMS = shared
    coll = f"fan_{'shared' if shared else 'own'}"
    conns = [queryleaf.connect(uri, database=db) for _ in range(queries)]
    sql = LIVE_SQL.format(coll=coll, n=n)
    streams = [ql.stream(sql, timeout=120) for ql in conns]
    assert all(rows.shared == shared for rows in streams)
    counts = [0] * queries

    def consume(index: int) -> None:
        for _ in streams[index]:
            counts[index] += 1

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(queries)]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    for first in range(0, n, 100):
        conns[0].db[coll].insert_many(
            [{"i": i, "t": 0.0} for i in range(first, min(first + 100, n))], ordered=False
        )
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    for ql in conns:
        ql.close()
    assert counts == [n] * queries
    return {"rows_per_s": round(queries * n / elapsed), "inserts_per_s": round(n / elapsed)}


def summary(latencies: list[float]) -> dict[str, float]:
    ms = sorted(x * 1000 for x in latencies)
    q = statistics.quantiles(ms, n=100)
    return {"p50_ms": round(q[49], 2), "p99_ms": round(q[98], 2), "max_ms": round(ms[-1], 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--fan-out-events", type=int, default=20_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    srv = start_ephemeral_server()
    try:
        results = {
            "bare watch loop": summary(bare(srv.uri, "live_bench", args.events)),
            SHARED: summary(live(srv.uri, "live_bench", args.events)),
            OWN: summary(live(srv.uri, "live_bench_own", args.events, shared=False)),
        }
        fan = {
            "one shared stream": fan_out(srv.uri, "fan_bench", args.fan_out_events, 10, True),
            "ten own streams": fan_out(srv.uri, "fan_bench", args.fan_out_events, 10, False),
        }
    finally:
        srv.stop()
    target = results["bare watch loop"]["p99_ms"] + 5
    ok = max(results[SHARED]["p99_ms"], results[OWN]["p99_ms"]) <= target
    if args.json:
        out = {"results": results, "target_p99_ms": target, "met": ok, "fan_out_10": fan}
        print(json.dumps(out, indent=2))
        return
    print(f"{cpu_name()}, {os_name()}, Python {platform.python_version()}")
    print(f"{args.events} inserts, one every {INTERVAL_S * 1000:.0f} ms; write-to-row latency")
    print(f"{'consumer':<26} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, r in results.items():
        print(f"{name:<26} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['max_ms']:>8}")
    print(f"target: live p99 <= bare p99 + 5 ms = {target:.2f} ms: {'met' if ok else 'NOT met'}")
    print(f"\n10 live queries on one collection, {args.fan_out_events} inserts each reads")
    print(f"{'streams':<24} {'rows/s':>10} {'inserts/s':>10}")
    for name, r in fan.items():
        print(f"{name:<24} {r['rows_per_s']:>10} {r['inserts_per_s']:>10}")


if __name__ == "__main__":
    main()
