"""The PostgreSQL wire server against the Python API, side by side (issue 12, item 4).

    .venv/bin/python bench/pg_bench.py [--quick] [--rounds N] [--json]

1. 10,000 rows — ``SELECT _id, name, qty, price FROM items`` read whole through psycopg 3 over
   the wire server (text format, and binary), against ``QueryLeaf.execute()`` iterating the same
   rows, alternating runs. Target: ratio <= 1.5.
2. point lookup — ``SELECT ... WHERE _id = %s`` through psycopg (extended protocol, a bound
   parameter) against ``QueryLeaf.execute(sql, [id])``: the median added latency. Target:
   <= 1 ms.

The wire server runs in this process (its own threads), in front of an ephemeral embedded
server, with --pg-trust on loopback. Not a test: prints a table (and ``--json``).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from machine import cpu_name, os_name  # noqa: E402  (bench/machine.py)

from queryleaf.api import QueryLeaf  # noqa: E402
from queryleaf.engine import start_ephemeral_server  # noqa: E402
from queryleaf.pg.server import PgServer  # noqa: E402

DATABASE = "pg_bench"
ROWS = 10_000
ROWS_SQL = "SELECT _id, name, qty, price FROM items"
LOOKUP_SQL = "SELECT _id, name, qty, price FROM items WHERE _id = {}"


def _median_ms(run: Callable[[], Any], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _side_by_side(a: Callable[[], Any], b: Callable[[], Any], rounds: int) -> tuple[float, float]:
    """Median ms of ``a`` and of ``b``, run alternately (so both see the same machine load)."""
    ta, tb = [], []
    for _ in range(rounds):
        ta.append(_median_ms(a, 1))
        tb.append(_median_ms(b, 1))
    return statistics.median(ta), statistics.median(tb)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rounds = args.rounds or (5 if args.quick else 21)
    lookups = 200 if args.quick else 2000

    server = start_ephemeral_server()
    ql = QueryLeaf(server.uri, DATABASE)
    pg = PgServer(lambda database: QueryLeaf(server.uri, database), "127.0.0.1", 0, trust=True)
    pg.start()
    try:
        ql.db.items.insert_many(
            [{"_id": i, "name": f"item {i}", "qty": i % 100, "price": i / 7} for i in range(ROWS)]
        )
        conn = psycopg.connect(
            host="127.0.0.1", port=pg.port, user="bench", dbname=DATABASE, autocommit=True
        )
        text_cur, binary_cur = conn.cursor(), conn.cursor(binary=True)

        def api_rows() -> int:
            return sum(1 for _ in ql.execute(ROWS_SQL))

        def wire_rows(cur: psycopg.Cursor) -> Callable[[], int]:
            return lambda: len(cur.execute(ROWS_SQL).fetchall())

        assert api_rows() == ROWS == wire_rows(text_cur)() == wire_rows(binary_cur)()
        api_ms, text_ms = _side_by_side(api_rows, wire_rows(text_cur), rounds)
        api_ms2, binary_ms = _side_by_side(api_rows, wire_rows(binary_cur), rounds)

        ids = iter(range(10**9))
        sql = LOOKUP_SQL.format("%s")
        api_sql = LOOKUP_SQL.format("?")

        def api_lookup() -> Any:
            return ql.execute(api_sql, [next(ids) % ROWS]).rows

        def wire_lookup() -> Any:
            return text_cur.execute(sql, (next(ids) % ROWS,)).fetchall()

        api_lookup_ms, wire_lookup_ms = _side_by_side(api_lookup, wire_lookup, lookups)
        conn.close()
    finally:
        pg.stop()
        ql.close()
        server.stop()

    results = {
        "machine": {"cpu": cpu_name(), "os": os_name(), "python": platform.python_version()},
        "rows_10000": {
            "api_ms": api_ms,
            "psycopg_text_ms": text_ms,
            "ratio_text": text_ms / api_ms,
            "api_ms_binary_run": api_ms2,
            "psycopg_binary_ms": binary_ms,
            "ratio_binary": binary_ms / api_ms2,
            "target": 1.5,
        },
        "point_lookup": {
            "api_ms": api_lookup_ms,
            "psycopg_ms": wire_lookup_ms,
            "added_ms": wire_lookup_ms - api_lookup_ms,
            "target_added_ms": 1.0,
        },
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    r, p = results["rows_10000"], results["point_lookup"]
    print(f"machine: {results['machine']}")
    print(f"{'measure':<34}{'API ms':>10}{'wire ms':>10}{'ratio/added':>14}{'target':>9}")
    print(f"{'10,000 rows, psycopg text':<34}{api_ms:>10.2f}{text_ms:>10.2f}"
          f"{r['ratio_text']:>13.2f}x{'<=1.5x':>9}")  # fmt: skip
    print(f"{'10,000 rows, psycopg binary':<34}{api_ms2:>10.2f}{binary_ms:>10.2f}"
          f"{r['ratio_binary']:>13.2f}x{'<=1.5x':>9}")  # fmt: skip
    print(f"{'point lookup (median)':<34}{api_lookup_ms:>10.3f}{wire_lookup_ms:>10.3f}"
          f"{p['added_ms']:>11.3f} ms{'<=1 ms':>9}")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
