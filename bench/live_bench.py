"""Live queries: write-to-row latency of ``QueryLeaf.stream`` against a bare pymongo ``watch``
loop, side by side on one server (issue 11, item 5: within the bare loop's p99 + 5 ms).

    .venv/bin/python bench/live_bench.py [--events N] [--json]

A writer inserts one document every 5 ms carrying its ``perf_counter`` at the write; each
consumer runs on its own (one after the other, so they never compete) and records, per change,
the time from the write to the moment it has the row: the bare loop when ``try_next`` returns
the event, the live query when ``for row in ql.stream(...)`` yields the row. The live query
reads ``full_document.t`` (so it asks for ``updateLookup``, as a real query would) and filters
in the change stream.
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

INTERVAL_S = 0.005
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


def live(uri: str, db: str, n: int) -> list[float]:
    ql = queryleaf.connect(uri, database=db)
    started = threading.Event()
    thread = writer(ql.db["live"], n, started)
    latencies = []
    rows = ql.stream(LIVE_SQL.format(coll="live", n=n))
    started.set()
    for row in rows:
        latencies.append(time.perf_counter() - row["t"])
    thread.join()
    ql.close()
    return latencies


def summary(latencies: list[float]) -> dict[str, float]:
    ms = sorted(x * 1000 for x in latencies)
    q = statistics.quantiles(ms, n=100)
    return {"p50_ms": round(q[49], 2), "p99_ms": round(q[98], 2), "max_ms": round(ms[-1], 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    srv = start_ephemeral_server()
    try:
        results = {
            "bare watch loop": summary(bare(srv.uri, "live_bench", args.events)),
            "ql.stream (live query)": summary(live(srv.uri, "live_bench", args.events)),
        }
    finally:
        srv.stop()
    target = results["bare watch loop"]["p99_ms"] + 5
    ok = results["ql.stream (live query)"]["p99_ms"] <= target
    if args.json:
        print(json.dumps({"results": results, "target_p99_ms": target, "met": ok}, indent=2))
        return
    print(f"{cpu_name()}, {os_name()}, Python {platform.python_version()}")
    print(f"{args.events} inserts, one every {INTERVAL_S * 1000:.0f} ms; write-to-row latency")
    print(f"{'consumer':<24} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, r in results.items():
        print(f"{name:<24} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['max_ms']:>8}")
    print(f"target: live p99 <= bare p99 + 5 ms = {target:.2f} ms: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
