"""The cost of durable commits on the embedded server: sync on commit (the default) against off.

    .venv/bin/python bench/durability_bench.py [--quick] [--rounds N] [--json]

Two embedded servers started the way queryleaf starts them (``engine.acquire``), each on a data
directory of its own on the disk under $TMPDIR: one with the default ``--sync-on-commit``, one
with ``QUERYLEAF_EMBEDDED_SYNC=off``. The same writes run on both, in alternating rounds:

* single-row INSERT statements through queryleaf (``ql.execute``), one commit each;
* 1,000-row INSERT statements (one ``INSERT ... VALUES`` of 1,000 rows);
* event-log batches: pymongo ``insert_many(ordered=False)`` of 100 documents shaped like the
  event log's rows, then one checkpoint upsert, as a worker writes a delivered group.

Prints the median time per operation on each server and their ratio. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pymongo  # noqa: E402
from machine import cpu_name, os_name  # noqa: E402  (bench/machine.py)

import queryleaf  # noqa: E402
from queryleaf import engine  # noqa: E402

MODES = ("on", "off")


def log_row(i: int) -> dict[str, Any]:
    """About the size and shape of an event log row."""
    now = datetime.now(UTC)
    return {
        "_id": f"bench:{i:012d}",
        "subscription_name": "bench",
        "event_id": f"{i:024x}",
        "event_type": "insert",
        "collection_name": "orders",
        "database_name": "shop",
        "document_key": {"_id": i},
        "event_timestamp": now,
        "cluster_time": now,
        "status": "delivered",
        "attempts": 1,
        "delivered_at": now,
        "correlation_id": f"corr-{i % 97}",
        "source_service": "checkout",
        "target_service": "billing",
        "interaction_type": "async",
        "error": None,
    }


class Target:
    """One embedded server and a queryleaf connection to it."""

    def __init__(self, root: Path, sync: str):
        previous = os.environ.get(engine.SYNC_ENV)
        os.environ[engine.SYNC_ENV] = sync
        try:
            self.lease = engine.acquire(root / f"sync-{sync}")
        finally:
            if previous is None:
                del os.environ[engine.SYNC_ENV]
            else:
                os.environ[engine.SYNC_ENV] = previous
        self.ql = queryleaf.connect(self.lease.uri, database="bench")
        self.log = self.ql.db["event_log"]
        self.checkpoints = self.ql.db["checkpoints"]
        self.next_id = 0

    def single_row(self) -> None:
        self.next_id += 1
        self.ql.execute(
            "INSERT INTO singles (n, name, price) VALUES (?, ?, ?)",
            [self.next_id, f"item {self.next_id}", 9.99],
        )

    def thousand_rows(self, statement: str) -> None:
        self.ql.execute(statement)

    def log_batch(self) -> None:
        start = self.next_id
        self.next_id += 100
        self.log.insert_many([log_row(i) for i in range(start, self.next_id)], ordered=False)
        self.checkpoints.update_one(
            {"_id": "bench"}, {"$set": {"position": self.next_id}}, upsert=True
        )

    def close(self) -> None:
        self.ql.close()
        self.lease.release()


def thousand_row_insert() -> str:
    values = ", ".join(f"({i}, 'item {i}', {i % 100}.5)" for i in range(1000))
    return f"INSERT INTO thousands (n, name, price) VALUES {values}"


def timed(action: Callable[[], object], times: int) -> list[float]:
    out = []
    for _ in range(times):
        started = time.perf_counter()
        action()
        out.append((time.perf_counter() - started) * 1000)
    return out


def fsync_ms(directory: Path, times: int = 200) -> float:
    """The median time of a small write and its fsync on this disk: what a synced commit adds."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        return statistics.median(timed(lambda: (os.write(fd, b"x" * 100), os.fsync(fd)), times))
    finally:
        os.close(fd)
        path.unlink()


def run(rounds: int, singles: int, thousands: int, batches: int) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="queryleaf-durability-bench-"))
    targets = {mode: Target(root, mode) for mode in MODES}
    statement = thousand_row_insert()
    samples: dict[str, dict[str, list[float]]] = {
        name: {mode: [] for mode in MODES} for name in ("single", "thousand", "batch")
    }
    fsync = fsync_ms(root)
    try:
        for round_ in range(rounds):
            # Alternate which server goes first, so neither always runs on a warmer machine.
            for mode in MODES if round_ % 2 == 0 else MODES[::-1]:
                t = targets[mode]
                samples["single"][mode] += timed(t.single_row, singles)
                samples["thousand"][mode] += timed(
                    lambda t=t: t.thousand_rows(statement), thousands
                )
                samples["batch"][mode] += timed(t.log_batch, batches)
    finally:
        for t in targets.values():
            t.close()
        shutil.rmtree(root, ignore_errors=True)
    return {
        "fsync_ms": fsync,
        **{
            name: {mode: statistics.median(v) for mode, v in by_mode.items()}
            for name, by_mode in samples.items()
        },
    }


LABELS = {
    "single": "single-row INSERT through queryleaf (ms per statement)",
    "thousand": "1,000-row INSERT through queryleaf (ms per statement)",
    "batch": "event-log batch: insert_many of 100 + checkpoint upsert (ms per batch)",
}


def report(results: dict[str, Any]) -> None:
    print(f"a 100-byte write + fsync on this disk: {results['fsync_ms']:.2f} ms (median)")
    print(f"{'median':<72}{'sync on':>9}{'sync off':>10}{'on/off':>8}")
    for name, label in LABELS.items():
        on, off = results[name]["on"], results[name]["off"]
        print(f"{label:<72}{on:>9.2f}{off:>10.2f}{on / off:>7.1f}x")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds (a smoke run)")
    parser.add_argument("--rounds", type=int, default=10, help="alternating rounds")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = parser.parse_args(argv)
    rounds = 2 if args.quick else args.rounds
    machine = {
        "cpu": cpu_name(),
        "os": os_name(),
        "python": platform.python_version(),
        "pymongo": pymongo.version,
        "storage": f"disk under {tempfile.gettempdir()}",
    }
    print(
        f"machine: {machine['cpu']}, {machine['os']}, Python {machine['python']}, "
        f"pymongo {machine['pymongo']}; storage: {machine['storage']}"
    )
    results = run(
        rounds,
        singles=20 if args.quick else 100,
        thousands=1 if args.quick else 3,
        batches=5 if args.quick else 20,
    )
    report(results)
    if args.json:
        print(json.dumps({"machine": machine, **results}, indent=2))
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
