"""Live windowed aggregation: memory and speed of queryleaf/live/windows.py (issue 11, item 2).

    .venv/bin/python bench/live_windows_bench.py [--events N] [--keys K] [--json]

Feeds N events (default 1,000,000) over K keys (default 10,000) into 1-second tumbling windows
with COUNT(*), SUM, AVG, MIN, MAX and COUNT(DISTINCT), 10,000 events per second of event time
(so a window closes every 10,000 events), once per emit mode. Memory: tracemalloc's current and
peak after 10 %, 50 % and 100 % of the events, in a run of its own (tracemalloc slows Python
down); flat figures mean closed windows are evicted. Speed: events/s in a run without tracing.
Pure Python, no server. Target (issue 11): memory flat over 1,000,000 events.

Not a test: prints a table (and ``--json``).
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine import cpu_name, os_name  # noqa: E402  (bench/machine.py)

from queryleaf.live.windows import AggregateSpec, Aggregator, LiveWindow  # noqa: E402

EVENTS_PER_SECOND = 10_000
AGGREGATES = [
    AggregateSpec("COUNT", None),
    AggregateSpec("SUM", "total"),
    AggregateSpec("AVG", "total"),
    AggregateSpec("MIN", "total"),
    AggregateSpec("MAX", "total"),
    AggregateSpec("COUNT", "customer", distinct=True),
]


def feed(emit: str, events: int, keys: int, checkpoints: list[int], traced: bool) -> dict[str, Any]:
    """Run the events through one Aggregator; memory at the checkpoints when ``traced``."""
    key_tuples = [(f"store-{k:05d}",) for k in range(keys)]
    customers = [f"customer-{c}" for c in range(1000)]
    gc.collect()
    if traced:
        tracemalloc.start()
    agg = Aggregator(LiveWindow("tumbling", size_ms=1000), AGGREGATES, emit)  # type: ignore[arg-type]
    start_ms = 1_700_000_000_000
    step = 1000 / EVENTS_PER_SECOND
    memory = []
    emitted = 0
    began = time.perf_counter()
    for i in range(events):
        t = start_ms + int(i * step)
        key = key_tuples[(i * 7919) % keys]
        values = {"total": (i * 31) % 997, "customer": customers[(i * 13) % 1000]}
        emitted += len(agg.add(t, key, values))
        if traced and i + 1 in checkpoints:
            current, peak = tracemalloc.get_traced_memory()
            memory.append({"events": i + 1, "current_mb": current / 2**20, "peak_mb": peak / 2**20})
    seconds = time.perf_counter() - began
    if traced:
        tracemalloc.stop()
    return {
        "emit": emit,
        "events_per_s": events / seconds,
        "rows_emitted": emitted,
        "open_windows": agg.open_windows,
        "open_rows": agg.open_rows,
        "late_events": agg.late_events,
        "memory": memory,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    checkpoints = sorted({max(1, args.events // 10), max(1, args.events // 2), args.events})
    results = []
    for emit in ("changes", "final"):
        speed = feed(emit, args.events, args.keys, checkpoints, traced=False)
        memory = feed(emit, args.events, args.keys, checkpoints, traced=True)
        speed["memory"] = memory["memory"]
        results.append(speed)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"machine: {cpu_name()}; {os_name()}; Python {platform.python_version()}")
    print(
        f"{args.events:,} events, {args.keys:,} keys, 1 s tumbling windows, "
        f"{EVENTS_PER_SECOND:,} events per second of event time; "
        "COUNT(*), SUM, AVG, MIN, MAX, COUNT(DISTINCT)"
    )
    for r in results:
        print(
            f"\nEMIT {r['emit'].upper()}: {r['events_per_s']:,.0f} events/s untraced, "
            f"{r['rows_emitted']:,} rows emitted, {r['open_windows']} window(s) / "
            f"{r['open_rows']:,} rows open at the end, {r['late_events']} late"
        )
        print(f"  {'events':>10} {'current MB':>11} {'peak MB':>9}")
        for m in r["memory"]:
            print(f"  {m['events']:>10,} {m['current_mb']:>11.1f} {m['peak_mb']:>9.1f}")


if __name__ == "__main__":
    main()
