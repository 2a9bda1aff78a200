"""The seed's microservices scenario on the embedded default server.

Declares the seed's subscriptions in SQL, runs a worker, writes users and orders with SQL, then
reads the event log and a seed-style analytics query back with SQL. The inventory service's
handler rejects oversized orders, so one event is retried and ends in the dead-letter queue.

Run it with `make demo` (or `python examples/demo.py [--uri mongodb://...]`).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

from rich.console import Console

import queryleaf
from queryleaf.cli.output import Printer

HERE = Path(__file__).parent
DATABASE = "queryleaf_demo"
console = Console()
printer = Printer()  # the command line's table format: NULL, cut cells and records alike

SUBSCRIPTIONS = """
CREATE EVENT_SUBSCRIPTION inventory_events AS (
  subscription_id = 'inventory_management',
  service_name = 'inventory_service',
  watch_collections = JSON_ARRAY('orders'),
  event_types = JSON_ARRAY('insert', 'update'),
  max_retry_attempts = 2,
  retry_delay_ms = 50,
  exponential_backoff = true,
  dead_letter_queue_enabled = true,
  description = 'Reserve stock for new and changed orders'
);

CREATE EVENT_SUBSCRIPTION analytics_events AS (
  subscription_id = 'realtime_analytics',
  service_name = 'analytics_service',
  watch_collections = JSON_ARRAY('users', 'orders', 'products'),
  event_types = JSON_ARRAY('insert', 'update', 'delete'),
  description = 'Feed the real-time analytics pipeline'
);
"""

WRITES = """
INSERT INTO users (name, email, status, subscription_tier) VALUES
  ('Ada', 'ada@example.com', 'active', 'pro'),
  ('Grace', 'grace@example.com', 'active', 'free'),
  ('Linus', 'linus@example.com', 'pending', 'free');

INSERT INTO products (sku, name, stock) VALUES ('kb-1', 'Keyboard', 40), ('ms-2', 'Mouse', 90);

INSERT INTO orders (order_id, customer, sku, quantity, order_total, correlation_id) VALUES
  ('o-1', 'Ada', 'kb-1', 1, 89.90, 'checkout-1'),
  ('o-2', 'Grace', 'ms-2', 2, 39.80, 'checkout-2'),
  ('o-3', 'Linus', 'kb-1', 500, 44950.00, 'checkout-3');

UPDATE users SET subscription_tier = 'pro' WHERE name = 'Grace';
UPDATE users SET last_login = NOW() WHERE name = 'Ada';
UPDATE orders SET status = 'paid' WHERE order_id IN ('o-1', 'o-2');
DELETE FROM products WHERE sku = 'ms-2';
"""

EVENT_LOG = """
SELECT subscription_id, event_type, collection_name, processing_status, retry_count,
       processing_duration_ms, last_error
FROM CHANGE_STREAM_EVENTS()
ORDER BY event_timestamp, subscription_id
"""

ANALYTICS = """
SELECT subscription_id, service_name, event_type,
       COUNT(*) AS events,
       COUNT(CASE WHEN processing_status = 'completed' THEN 1 END) AS completed,
       COUNT(CASE WHEN processing_status = 'dead_letter' THEN 1 END) AS dead_lettered,
       SUM(retry_count) AS retries,
       ROUND(COUNT(CASE WHEN processing_status = 'completed' THEN 1 END) * 100.0 / COUNT(*), 1)
         AS success_rate_percent,
       ROUND(AVG(processing_duration_ms), 2) AS avg_processing_ms
FROM CHANGE_STREAM_EVENTS()
WHERE event_timestamp >= DATE_SUB(NOW(), INTERVAL 1 HOUR)
GROUP BY subscription_id, service_name, event_type
ORDER BY subscription_id, event_type
"""

DEAD_LETTERS = """
SELECT subscription_id, event_type, collection_name, attempts, error
FROM DEAD_LETTER_EVENTS()
"""


def show(title: str, result: queryleaf.Result) -> None:
    console.print(f"[bold cyan]{title}[/bold cyan]")
    printer.result(result)
    console.print()


def reserve_stock(event: dict) -> None:
    """The inventory service's handler: oversized orders fail (and end as dead letters)."""
    order = event.get("fullDocument") or {}
    if order.get("quantity", 0) > 100:
        raise ValueError(f"cannot reserve {order['quantity']} x {order.get('sku')}")


def wait_for(ql: queryleaf.QueryLeaf, expected: int, timeout: float = 30.0) -> None:
    """Until the worker has finished `expected` events (or timeout)."""
    deadline = time.monotonic() + timeout
    sql = (
        "SELECT COUNT(*) AS n FROM CHANGE_STREAM_EVENTS() "
        "WHERE processing_status IN ('completed', 'failed', 'dead_letter')"
    )
    while time.monotonic() < deadline:
        if ql.execute(sql).scalar() >= expected:
            return
        time.sleep(0.2)
    raise SystemExit(f"the worker did not finish {expected} events within {timeout:.0f}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uri", help="a MongoDB URI (default: the embedded server)")
    parser.add_argument("--data-dir", help="data directory of the embedded server")
    args = parser.parse_args(argv)

    started = time.monotonic()
    with queryleaf.connect(args.uri, database=DATABASE, data_dir=args.data_dir) as ql:
        console.print(f"[bold]queryleaf demo[/bold] on {ql.uri} (database {DATABASE})\n")
        ql.client.drop_database(DATABASE)

        # The seed's own subscription statement, verbatim, plus two more services.
        ql.execute_script((HERE / "seed" / "01_user_service_subscription.sql").read_text())
        ql.execute_script(SUBSCRIPTIONS)
        ql.on("inventory_events")(reserve_stock)
        show(
            "EVENT SUBSCRIPTIONS",
            ql.execute(
                "SELECT name, subscription_id, service_name, status FROM EVENT_SUBSCRIPTIONS() "
                "ORDER BY name"
            ),
        )

        # Changes made before any worker runs are not lost: subscriptions start at CREATE.
        ql.execute("INSERT INTO users (name, email, status) VALUES ('Early', 'e@x.io', 'new')")

        stop = threading.Event()
        worker = threading.Thread(
            target=ql.run_subscriptions, kwargs={"stop_event": stop}, daemon=True
        )
        worker.start()
        for result in ql.execute_script(WRITES):
            console.print(f"[green]{result.message}[/green]")
        console.print()

        # user_lifecycle_events: 4 inserts + 2 matching updates (status/email/tier changes or
        # insert; last_login alone does not match its event_filter); inventory: 3 inserts +
        # 2 updates; analytics: 4 user inserts + 2 products + 3 orders + 4 updates + 1 delete.
        wait_for(ql, expected=5 + 5 + 14)
        stop.set()
        worker.join(timeout=15)

        show("CHANGE_STREAM_EVENTS()", ql.execute(EVENT_LOG))
        show("Event processing by subscription and event type (last hour)", ql.execute(ANALYTICS))
        show("DEAD_LETTER_EVENTS()", ql.execute(DEAD_LETTERS))
    console.print(f"[bold green]demo finished in {time.monotonic() - started:.1f}s[/bold green]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
