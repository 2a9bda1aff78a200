"""The SQL engine against its baselines, side by side in one run (issue 3, item 10).

    .venv/bin/python bench/sql_bench.py [--quick] [--rounds N] [--json]

1. compile — ``parse`` + ``plan_statement`` (pure, no server) of the seed's statements and of a
   corpus of typical queries, median time per statement, against ``sqlglot.parse_one`` (parse
   only; ``read="mysql"`` where it parses) on the same text. Target: ratio <= 1.
2. execute — ``QueryLeaf.execute()`` of a query returning 10,000 rows (all rows iterated) and of
   a point lookup, against the same command written by hand with pymongo on the same server,
   alternating runs. Targets: <= 1.10x for the 10,000 rows; <= 0.5 ms added for the lookup.
3. memory — tracemalloc peak while iterating a fresh Result of 10,000 and of 100,000 rows, and
   while reading ``.rows`` (which keeps them).
4. joins and grouping (issue 9, item 3) — ``execute()`` of joins returning 100 and 1,000 rows
   and of a GROUP BY with COUNT/SUM/AVG over 10,000 orders and 1,000 customers (an index on
   each join key), against the pipeline a person would write with pymongo: ``$lookup`` with
   ``localField``/``foreignField`` + ``$unwind`` + ``$project``, and ``$group`` (alone, and with
   the ``$project`` that gives the same columns). Target: <= 1.2x. ``--only joins`` runs this
   section alone.

Not a test: prints a table (and ``--json``).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pymongo  # noqa: E402
from machine import cpu_name, os_name  # noqa: E402  (bench/machine.py)

import queryleaf  # noqa: E402
from queryleaf import plan as plans  # noqa: E402
from queryleaf.engine import start_ephemeral_server  # noqa: E402
from queryleaf.errors import QueryLeafError  # noqa: E402
from queryleaf.planner import plan_statement  # noqa: E402
from queryleaf.sql.parser import parse, parse_script  # noqa: E402

SEED = ROOT / "tests" / "golden" / "parser" / "seed-queryleaf-event-sql.sql"

# Typical statements: (name, SQL, parameters). Tables need not exist: planning is pure.
CORPUS: list[tuple[str, str, Any]] = [
    ("filter eq", "SELECT id, name, email FROM users WHERE status = 'active'", None),
    (
        "filter and/or",
        "SELECT id, total FROM orders WHERE (status = 'paid' OR status = 'shipped')"
        " AND total > 100 AND created_at >= '2024-01-01'",
        None,
    ),
    ("in list", "SELECT * FROM products WHERE category IN ('books', 'music', 'games')", None),
    (
        "like / is null",
        "SELECT id, name FROM users WHERE name LIKE 'A%' AND deleted_at IS NULL",
        None,
    ),
    (
        "between, order, limit",
        "SELECT id, total FROM orders WHERE total BETWEEN 10 AND 50 "
        "ORDER BY total DESC, id LIMIT 20 OFFSET 40",
        None,
    ),
    (
        "nested path",
        "SELECT id, address.city, address.geo.lat FROM users WHERE address.country = 'FR'",
        None,
    ),
    ("point lookup ?", "SELECT id, name, email FROM users WHERE id = ?", [42]),
    (
        "named params",
        "SELECT id, total FROM orders WHERE customer_id = :cid AND status = :st",
        {"cid": 7, "st": "paid"},
    ),
    ("count(*)", "SELECT COUNT(*) FROM orders WHERE status = 'paid'", None),
    (
        "group by / having",
        "SELECT customer_id, COUNT(*) AS n, SUM(total) AS spent FROM orders "
        "GROUP BY customer_id HAVING COUNT(*) > 5 ORDER BY spent DESC LIMIT 10",
        None,
    ),
    (
        "group by expr",
        "SELECT YEAR(created_at) AS y, MONTH(created_at) AS m, AVG(total) AS avg_total"
        " FROM orders GROUP BY YEAR(created_at), MONTH(created_at) ORDER BY y, m",
        None,
    ),
    (
        "count distinct",
        "SELECT category, COUNT(DISTINCT brand) AS brands, MIN(price) AS lo, "
        "MAX(price) AS hi FROM products GROUP BY category",
        None,
    ),
    (
        "case",
        "SELECT id, CASE WHEN total >= 1000 THEN 'large' WHEN total >= 100 THEN 'medium' "
        "ELSE 'small' END AS size FROM orders",
        None,
    ),
    (
        "string functions",
        "SELECT CONCAT(first_name, ' ', last_name) AS full_name, "
        "UPPER(SUBSTRING(email, 1, 3)) AS code, LENGTH(name) AS len FROM users "
        "WHERE LOWER(email) LIKE '%@example.com'",
        None,
    ),
    (
        "date functions",
        "SELECT id, DATE_FORMAT(created_at, '%Y-%m') AS month, "
        "DATEDIFF(shipped_at, created_at) AS days FROM orders "
        "WHERE created_at >= DATE_SUB(NOW(), INTERVAL 30 DAY)",
        None,
    ),
    (
        "inner join",
        "SELECT o.id, o.total, c.name FROM orders o JOIN customers c "
        "ON o.customer_id = c.id WHERE o.status = 'paid'",
        None,
    ),
    (
        "left join",
        "SELECT c.id, c.name, o.id AS order_id FROM customers c LEFT JOIN orders o "
        "ON o.customer_id = c.id AND o.status = 'open'",
        None,
    ),
    (
        "3-way join + group",
        "SELECT c.name, p.category, SUM(i.quantity * i.price) AS revenue "
        "FROM order_items i JOIN orders o ON i.order_id = o.id JOIN products p ON i.product_id = p.id"
        " JOIN customers c ON o.customer_id = c.id WHERE o.status = 'paid' "
        "GROUP BY c.name, p.category ORDER BY revenue DESC LIMIT 5",
        None,
    ),
    (
        "in subquery",
        "SELECT id, name FROM customers WHERE id IN "
        "(SELECT customer_id FROM orders WHERE total > 500)",
        None,
    ),
    (
        "exists",
        "SELECT c.id FROM customers c WHERE EXISTS "
        "(SELECT 1 FROM orders o WHERE o.customer_id = c.id AND o.total > 100)",
        None,
    ),
    (
        "scalar subquery",
        "SELECT id, total, (SELECT AVG(total) FROM orders) AS avg_total "
        "FROM orders WHERE total > (SELECT AVG(total) FROM orders)",
        None,
    ),
    (
        "derived table",
        "SELECT t.customer_id, t.n FROM (SELECT customer_id, COUNT(*) AS n "
        "FROM orders GROUP BY customer_id) AS t WHERE t.n > 3",
        None,
    ),
    (
        "cte",
        "WITH big AS (SELECT customer_id, SUM(total) AS spent FROM orders "
        "GROUP BY customer_id) SELECT customer_id, spent FROM big WHERE spent > 1000 "
        "ORDER BY spent DESC",
        None,
    ),
    (
        "two ctes",
        "WITH paid AS (SELECT id, created_at FROM orders WHERE status = 'paid'), "
        "per_day AS (SELECT DATE(created_at) AS d, COUNT(*) AS n FROM paid GROUP BY DATE(created_at))"
        " SELECT d, n FROM per_day ORDER BY d",
        None,
    ),
    (
        "union all",
        "SELECT id, 'user' AS kind FROM users WHERE created_at > '2024-01-01' "
        "UNION ALL SELECT id, 'admin' AS kind FROM admins",
        None,
    ),
    (
        "row_number",
        "SELECT id, customer_id, ROW_NUMBER() OVER (PARTITION BY customer_id "
        "ORDER BY created_at DESC) AS rn FROM orders",
        None,
    ),
    (
        "lag / running sum",
        "SELECT id, total, LAG(total, 1) OVER (ORDER BY created_at) AS prev, "
        "SUM(total) OVER (PARTITION BY customer_id ORDER BY created_at "
        "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running FROM orders",
        None,
    ),
    (
        "json access",
        "SELECT id, payload->>'$.user.id' AS uid, JSON_EXTRACT(payload, '$.amount') "
        "AS amount FROM events WHERE payload->>'$.type' = 'click'",
        None,
    ),
    (
        "insert values",
        "INSERT INTO users (id, name, email, status) VALUES "
        "(1, 'Ann', 'ann@example.com', 'active'), (2, 'Bob', 'bob@example.com', 'active')",
        None,
    ),
    (
        "insert select",
        "INSERT INTO archive (id, total) SELECT id, total FROM orders "
        "WHERE created_at < '2020-01-01'",
        None,
    ),
    (
        "update",
        "UPDATE users SET status = 'inactive', login_count = login_count + 1 "
        "WHERE last_login < '2023-01-01'",
        None,
    ),
    (
        "delete",
        "DELETE FROM sessions WHERE expires_at < NOW() AND user_id IN "
        "(SELECT id FROM users WHERE status = 'deleted')",
        None,
    ),
]


# ------------------------------------------------------------------ helpers


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1e3


def alternate(
    fns: dict[str, Callable[[], Any]], rounds: int, warmup: int = 2
) -> dict[str, list[float]]:
    """Run each function once per round, in turn (so slow drifts hit all alike); seconds."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def machine() -> dict[str, str]:
    import lark
    import sqlglot

    return {
        "cpu": cpu_name(),
        "os": os_name(),
        "python": platform.python_version(),
        "versions": f"lark {lark.__version__}, sqlglot {sqlglot.__version__}, "
        f"pymongo {pymongo.version}",
    }


# ------------------------------------------------------------------ 1. compile


def _sqlglot_parser(text: str) -> tuple[Callable[[], Any] | None, str]:
    """How sqlglot parses ``text``: (a function, note) — mysql dialect first."""
    import sqlglot
    from sqlglot import exp

    for read in ("mysql", None):
        try:
            tree = sqlglot.parse_one(text, read=read)
        except Exception:  # noqa: BLE001 - sqlglot errors are many; we only note them
            continue

        def run(read: str | None = read) -> Any:
            return sqlglot.parse_one(text, read=read)

        if isinstance(tree, exp.Command):
            return run, "sqlglot: unparsed (Command fallback), not compared"
        return run, "" if read else "sqlglot: default dialect"
    return None, "sqlglot cannot parse it"


def compile_one(name: str, text: str, params: Any, rounds: int) -> dict[str, Any]:
    note = ""
    try:
        plan_statement(parse(text), params)
    except QueryLeafError as exc:
        note = f"plan: {type(exc).__name__} (timed up to the error)"

    def ql_parse() -> Any:
        return parse(text)

    statement = parse(text)

    def ql_plan() -> Any:
        try:
            return plan_statement(statement, params)
        except QueryLeafError:
            return None

    def ql_both() -> Any:
        try:
            return plan_statement(parse(text), params)
        except QueryLeafError:
            return None

    fns: dict[str, Callable[[], Any]] = {"parse": ql_parse, "plan": ql_plan, "both": ql_both}
    glot, glot_note = _sqlglot_parser(text)
    if glot is not None:
        fns["sqlglot"] = glot
    times = alternate(fns, rounds)
    row = {
        "name": name,
        "chars": len(text),
        **{k: median_ms(v) for k, v in times.items()},
        "note": "; ".join(n for n in (note, glot_note) if n),
    }
    row.setdefault("sqlglot", None)
    return row


def compile_bench(rounds: int) -> dict[str, Any]:
    logging.getLogger("sqlglot").setLevel(logging.ERROR)  # its Command fallback warnings
    seed = []
    for i, st in enumerate(parse_script(SEED.read_text(encoding="utf-8")), 1):
        head = " ".join(st.text.split()[:3])
        seed.append(compile_one(f"seed {i}: {head}", st.text, None, rounds))
    corpus = [compile_one(name, sql, params, rounds * 4) for name, sql, params in CORPUS]
    return {"seed": seed, "corpus": corpus, "script": script_bench(rounds)}


def script_bench(rounds: int) -> dict[str, float]:
    """The whole seed file: parse_script, the reference path it replaced (Lark's parse tree with
    propagated positions, then the tree → AST transformer), and sqlglot.parse."""
    import sqlglot

    from queryleaf.sql import parser

    text = SEED.read_text(encoding="utf-8")
    times = alternate(
        {
            "parse_script": lambda: parse_script(text),
            "reference": lambda: parser._reference_script(text),
            "sqlglot": lambda: sqlglot.parse(text, read="mysql"),
        },
        rounds,
    )
    return {k: median_ms(v) for k, v in times.items()}


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:5.2f}x" if a is not None and b else "    -"


def report_compile(r: dict[str, Any]) -> None:
    script = r["script"]
    print(
        f"\n1. parse only, the whole seed file (4 statements, median ms): parse_script "
        f"{script['parse_script']:.2f}, its former path (Lark tree + transformer) "
        f"{script['reference']:.2f}, sqlglot.parse {script['sqlglot']:.2f} "
        f"({script['parse_script'] / script['sqlglot']:.2f}x)"
    )
    print("\n   parse + plan (pure) vs sqlglot.parse_one; median per statement, ms")
    print(
        f"  {'statement':38} {'chars':>5} {'parse':>7} {'plan':>7} {'both':>7} "
        f"{'sqlglot':>7} {'both/sg':>7}  note"
    )
    for group in ("seed", "corpus"):
        rows = r[group]
        for row in rows:
            sg = row["sqlglot"]
            print(
                f"  {row['name'][:38]:38} {row['chars']:5d} {row['parse']:7.3f} "
                f"{row['plan']:7.3f} {row['both']:7.3f} "
                f"{(f'{sg:7.3f}' if sg is not None else '      -')} "
                f"{_ratio(row['both'], sg):>7}  {row['note']}"
            )
        compared = [x for x in rows if x["sqlglot"] and "unparsed" not in x["note"]]
        total_ql = sum(x["both"] for x in compared)
        total_sg = sum(x["sqlglot"] for x in compared)
        geo = statistics.geometric_mean([x["both"] / x["sqlglot"] for x in compared])
        parse_geo = statistics.geometric_mean([x["parse"] / x["sqlglot"] for x in compared])
        print(
            f"  -- {group}: {len(compared)} statements sqlglot parses; sum {total_ql:.2f} ms vs "
            f"{total_sg:.2f} ms ({total_ql / total_sg:.2f}x); geometric mean of ratios "
            f"parse+plan {geo:.2f}x, parse alone {parse_geo:.2f}x"
        )


# ------------------------------------------------------------------ 2. execute

ROWS = 100_000
BIG_QUERY = "SELECT _id, n, name, price, cat FROM items10k"
POINT_ID = "SELECT _id, n, name, price FROM items WHERE _id = ?"
POINT_INDEXED = "SELECT _id, n, name, price FROM items WHERE code = ?"


def load(coll: Any, n: int) -> None:
    coll.drop()
    batch = []
    for i in range(n):
        batch.append(
            {
                "_id": i,
                "n": i,
                "cat": f"c{i % 10}",
                "name": f"item {i:06d}",
                "price": round(i * 0.37 % 1000, 2),
                "code": f"K{i:07d}",
                "tags": ["a", "b"] if i % 3 else [],
            }
        )
        if len(batch) == 5000:
            coll.insert_many(batch)
            batch = []
    if batch:
        coll.insert_many(batch)
    coll.create_index("code")


def by_hand(db: Any, p: plans.Plan) -> Callable[[], list[dict[str, Any]]]:
    """The planner's command written as a pymongo user would (same filter/projection/pipeline);
    iterates every document."""
    if isinstance(p, plans.Find):
        coll = db[p.collection]

        def run_find() -> list[dict[str, Any]]:
            return list(
                coll.find(p.filter, p.projection, sort=p.sort or None, skip=p.skip, limit=p.limit)
            )

        return run_find
    assert isinstance(p, plans.Aggregate)
    coll = db[p.collection]

    def run_aggregate() -> list[dict[str, Any]]:
        return list(coll.aggregate(p.pipeline))

    return run_aggregate


def _command(p: plans.Plan) -> str:
    return json.dumps(p.commands()[0], default=str)


def execute_bench(uri: str, rounds: int, lookups: int) -> dict[str, Any]:
    ql = queryleaf.connect(uri, database="bench")
    db = ql.db
    out: dict[str, Any] = {}
    try:
        load(db.items, ROWS)
        load(db.items10k, 10_000)
        # -- 10,000 rows
        p = plan_statement(parse(BIG_QUERY))
        hand = by_hand(db, p)

        def ql_big() -> int:
            return sum(1 for _ in ql.execute(BIG_QUERY))

        assert isinstance(p, plans.Find)
        items10k = db[p.collection]

        def hand_batched() -> list[dict[str, Any]]:
            return list(items10k.find(p.filter, p.projection, batch_size=1000))

        assert ql_big() == len(hand()) == len(hand_batched()) == 10_000
        times = alternate(
            {"queryleaf": ql_big, "pymongo": hand, "pymongo_batch1000": hand_batched}, rounds
        )
        out["big"] = {
            "sql": BIG_QUERY,
            "command": _command(p),
            **{k: median_ms(v) for k, v in times.items()},
        }
        out["big"]["breakdown"] = breakdown(ql, BIG_QUERY, None, rounds)
        out["big"]["client_us_per_row"] = client_cost(ql, p, hand(), rounds)
        # -- point lookups (by _id, by an indexed field)
        out["point"] = []
        for sql, key in ((POINT_ID, 4242), (POINT_INDEXED, "K0004242")):
            p = plan_statement(parse(sql), [key])
            hand = by_hand(db, p)

            def ql_point(sql: str = sql, key: Any = key) -> list[dict[str, Any]]:
                return list(ql.execute(sql, [key]))

            assert len(ql_point()) == len(hand()) == 1
            times = alternate({"queryleaf": ql_point, "pymongo": hand}, lookups, warmup=50)
            out["point"].append(
                {
                    "sql": sql,
                    "command": _command(p),
                    **{k: median_ms(v) for k, v in times.items()},
                    "breakdown": breakdown(ql, sql, [key], lookups),
                }
            )
        # -- memory
        out["memory"] = memory_bench(ql)
    finally:
        db.items.drop()
        db.items10k.drop()
        ql.close()
    return out


def breakdown(ql: Any, sql: str, params: Any, rounds: int) -> dict[str, float]:
    """Where execute() spends its time: the same steps as QueryLeaf.execute, timed one by one."""
    executor = ql._executor
    steps: dict[str, list[float]] = {"parse": [], "catalog": [], "plan": [], "run+iterate": []}
    for _ in range(rounds):
        t0 = time.perf_counter()
        statement = parse(sql)
        t1 = time.perf_counter()
        catalog = ql._catalog(statement)
        t2 = time.perf_counter()
        p = plan_statement(statement, params, catalog)
        t3 = time.perf_counter()
        for _row in executor.run(p):
            pass
        t4 = time.perf_counter()
        for name, dt in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            steps[name].append(dt)
    return {k: median_ms(v) for k, v in steps.items()}


def client_cost(ql: Any, p: plans.Plan, documents: list[dict[str, Any]], rounds: int) -> float:
    """queryleaf's own cost per row, without the server: a Result over documents already
    fetched (the executor's cursor replaced by the list), less iterating the list itself."""
    from queryleaf.executor import Executor

    class Prefetched(Executor):
        def cursor(self, plan: Any, *session_and_comment: Any) -> Any:
            return iter(documents)

    executor = Prefetched(ql.db)

    def through_result() -> int:
        return sum(1 for _ in executor.run(p))

    def bare() -> int:
        return sum(1 for _ in documents)

    times = alternate({"result": through_result, "bare": bare}, rounds)
    return (median_ms(times["result"]) - median_ms(times["bare"])) * 1e3 / len(documents)


def _peak(fn: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        value = fn()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return peak / 2**20, value


def memory_bench(ql: Any) -> list[dict[str, Any]]:
    rows = []
    for n in (10_000, 100_000):
        sql = f"SELECT _id, n, name, price, cat FROM items WHERE n < {n}"
        result = ql.execute(sql)
        streamed, count = _peak(lambda result=result: sum(1 for _ in result))
        assert count == n
        result = ql.execute(sql)
        kept, count = _peak(lambda result=result: len(result.rows))
        assert count == n
        projection = {"_id": 1, "n": 1, "name": 1, "price": 1, "cat": 1}
        cursor = ql.db.items.find({"n": {"$lt": n}}, projection)
        bare, count = _peak(lambda cursor=cursor: sum(1 for _ in cursor))
        assert count == n
        cursor = ql.db.items.find({"n": {"$lt": n}}, projection, batch_size=1000)
        batched, count = _peak(lambda cursor=cursor: sum(1 for _ in cursor))
        assert count == n
        rows.append(
            {
                "rows": n,
                "iterate_mib": streamed,
                "rows_mib": kept,
                "pymongo_iterate_mib": bare,
                "pymongo_batch1000_mib": batched,
            }
        )
    return rows


def report_execute(r: dict[str, Any]) -> None:
    big = r["big"]
    print("\n2. execute() vs hand-written pymongo, same server, alternating runs (median, ms)")
    print(f"  10,000 rows: {big['sql']}")
    print(f"    command: {big['command']}")
    added = big["queryleaf"] - big["pymongo"]
    print(
        f"    queryleaf {big['queryleaf']:8.2f}   pymongo {big['pymongo']:8.2f}   "
        f"ratio {big['queryleaf'] / big['pymongo']:.2f}x   (target <= 1.10x); "
        f"added {added:.2f} ms = {added * 1000 / 10_000:.2f} us/row"
    )
    print(
        f"    (pymongo with batch_size=1000: {big['pymongo_batch1000']:.2f}; queryleaf's own "
        f"cost without the server: {big['client_us_per_row']:.2f} us/row)"
    )
    print("    steps: " + ", ".join(f"{k} {v:.3f}" for k, v in big["breakdown"].items()))
    for point in r["point"]:
        print(f"  point lookup: {point['sql']}")
        print(f"    command: {point['command']}")
        added = point["queryleaf"] - point["pymongo"]
        catalog = point["breakdown"]["catalog"]
        print(
            f"    queryleaf {point['queryleaf']:8.3f}   pymongo {point['pymongo']:8.3f}   "
            f"added {added:.3f} ms   (target <= 0.5 ms; {added - catalog:.3f} ms without "
            f"the catalog round trip)"
        )
        print("    steps: " + ", ".join(f"{k} {v:.3f}" for k, v in point["breakdown"].items()))
    print("\n3. memory: tracemalloc peak (MiB) while reading all rows of a fresh result")
    print(
        f"  {'rows':>8} {'Result iterated':>16} {'Result.rows':>12} {'pymongo cursor':>15} "
        f"{'pymongo batch_size=1000':>24}"
    )
    for row in r["memory"]:
        print(
            f"  {row['rows']:8d} {row['iterate_mib']:16.2f} {row['rows_mib']:12.2f} "
            f"{row['pymongo_iterate_mib']:15.2f} {row['pymongo_batch1000_mib']:24.2f}"
        )


# ------------------------------------------------------------------ 4. joins and grouping

ORDERS, CUSTOMERS = 10_000, 1_000


def load_shop(db: Any) -> None:
    """Customers 0..999; order i belongs to customer i % 1000 (10 orders each)."""
    db.customers.drop()
    db.orders.drop()
    db.customers.insert_many(
        [
            {
                "_id": i,
                "name": f"customer {i:04d}",
                "tier": ("gold", "silver", "bronze")[i % 3],
                "email": f"c{i}@example.com",
            }
            for i in range(CUSTOMERS)
        ]
    )
    db.orders.insert_many(
        [
            {
                "_id": i,
                "customer_id": i % CUSTOMERS,
                "total": round(i * 0.37, 2),
                "status": ("paid", "open", "shipped")[i % 3],
                "note": f"order {i} of customer {i % CUSTOMERS}",
            }
            for i in range(ORDERS)
        ]
    )
    db.orders.create_index("customer_id")  # customers' join key is _id (always indexed)


def _join_by_hand(
    outer: str,
    where: dict[str, Any],
    inner: str,
    local: str,
    foreign: str,
    alias: str,
    left: bool,
    columns: dict[str, Any],
) -> tuple[str, list[Any]]:
    unwind: Any = (
        f"${alias}" if not left else {"path": f"${alias}", "preserveNullAndEmptyArrays": True}
    )
    return outer, [
        {"$match": where},
        {"$lookup": {"from": inner, "localField": local, "foreignField": foreign, "as": alias}},
        {"$unwind": unwind},
        {"$project": {"_id": 0, **columns}},
    ]


GROUP_STAGE = {
    "$group": {
        "_id": "$customer_id",
        "n": {"$sum": 1},
        "spent": {"$sum": "$total"},
        "avg_total": {"$avg": "$total"},
    }
}

# (name, SQL, hand-written (collection, pipeline)...); the first hand-written one is the baseline.
# Outer rows are chosen through an index (SecantusDB scans for a range on _id).
JOIN_CASES: list[tuple[str, str, list[tuple[str, list[Any]]]]] = [
    *[
        (
            f"join on _id, {n * 10:,} rows",
            "SELECT o._id AS id, o.total, c.name FROM orders o "
            f"JOIN customers c ON o.customer_id = c._id WHERE o.customer_id < {n}",
            [
                _join_by_hand(
                    "orders",
                    {"customer_id": {"$lt": n}},
                    "customers",
                    "customer_id",
                    "_id",
                    "c",
                    False,
                    {"id": "$_id", "total": 1, "name": "$c.name"},
                )
            ],
        )
        for n in (10, 100)
    ],
    *[
        (
            f"left join on customer_id, {n * 10:,} rows",
            "SELECT c.name, o.total FROM customers c "
            f"LEFT JOIN orders o ON o.customer_id = c._id WHERE c._id < {n}",
            [
                _join_by_hand(
                    "customers",
                    {"_id": {"$lt": n}},
                    "orders",
                    "_id",
                    "customer_id",
                    "o",
                    True,
                    {"name": 1, "total": "$o.total"},
                )
            ],
        )
        for n in (10, 100)
    ],
    (
        "comma join on customer_id, 1,000 rows",
        "SELECT c.name, o.total FROM customers c, "
        "orders o WHERE o.customer_id = c._id AND c._id < 100",
        [
            _join_by_hand(
                "customers",
                {"_id": {"$lt": 100}},
                "orders",
                "_id",
                "customer_id",
                "o",
                False,
                {"name": 1, "total": "$o.total"},
            )
        ],
    ),
    (
        "group by: COUNT, SUM, AVG",
        "SELECT customer_id, COUNT(*) AS n, SUM(total) AS spent, "
        "AVG(total) AS avg_total FROM orders GROUP BY customer_id",
        [
            ("orders", [GROUP_STAGE]),
            (
                "orders",
                [
                    GROUP_STAGE,
                    {
                        "$project": {
                            "_id": 0,
                            "customer_id": "$_id",
                            "n": 1,
                            "spent": 1,
                            "avg_total": 1,
                        }
                    },
                ],
            ),
        ],
    ),
    # SUM is the aggregate that needs more than its accumulator (NULL over no non-NULL value)
    (
        "group by: COUNT, AVG, MAX",
        "SELECT customer_id, COUNT(*) AS n, AVG(total) AS avg_total, "
        "MAX(total) AS top FROM orders GROUP BY customer_id",
        [
            (
                "orders",
                [
                    {
                        "$group": {
                            "_id": "$customer_id",
                            "n": {"$sum": 1},
                            "avg_total": {"$avg": "$total"},
                            "top": {"$max": "$total"},
                        }
                    }
                ],
            ),
            (
                "orders",
                [
                    {
                        "$group": {
                            "_id": "$customer_id",
                            "n": {"$sum": 1},
                            "avg_total": {"$avg": "$total"},
                            "top": {"$max": "$total"},
                        }
                    },
                    {
                        "$project": {
                            "_id": 0,
                            "customer_id": "$_id",
                            "n": 1,
                            "avg_total": 1,
                            "top": 1,
                        }
                    },
                ],
            ),
        ],
    ),
]


def joins_bench(uri: str, rounds: int, slow_rounds: int) -> list[dict[str, Any]]:
    """Each case: execute() against its hand-written pipelines, alternating runs. A case slower
    than a second per run (the pipeline-form joins before issue 9) runs ``slow_rounds``."""
    ql = queryleaf.connect(uri, database="bench_joins")
    db = ql.db
    out = []
    try:
        load_shop(db)
        for name, sql, hands in JOIN_CASES:

            def run_ql(sql: str = sql) -> int:
                return sum(1 for _ in ql.execute(sql))

            fns: dict[str, Callable[[], Any]] = {"queryleaf": run_ql}
            for i, (coll, pipeline) in enumerate(hands):
                fns[f"hand{i}"] = lambda c=db[coll], p=pipeline: list(c.aggregate(p))
            start = time.perf_counter()
            n = run_ql()
            once = time.perf_counter() - start
            assert all(len(fn()) == n for key, fn in fns.items() if key != "queryleaf"), name
            times = alternate(fns, rounds if once < 1 else slow_rounds, warmup=2 if once < 1 else 0)
            plan = plan_statement(parse(sql))
            out.append(
                {
                    "name": name,
                    "sql": sql,
                    "rows": n,
                    "command": _command(plan),
                    **{k: median_ms(v) for k, v in times.items()},
                }
            )
    finally:
        db.customers.drop()
        db.orders.drop()
        ql.close()
    return out


def report_joins(rows: list[dict[str, Any]]) -> None:
    print(
        f"\n4. joins and grouping vs hand-written pipelines ({ORDERS:,} orders, "
        f"{CUSTOMERS:,} customers; median ms)  target <= 1.20x"
    )
    for row in rows:
        hands = [k for k in row if k.startswith("hand")]
        ratios = "  ".join(f"{row['queryleaf'] / row[k]:5.2f}x" for k in hands)
        by_hand = "  ".join(f"{row[k]:8.2f}" for k in hands)
        print(
            f"  {row['name']:38} rows {row['rows']:5d}  queryleaf {row['queryleaf']:8.2f}  "
            f"by hand {by_hand}  ratio {ratios}"
        )
        print(f"    {row['sql']}")
        print(f"    command: {row['command']}")


# ------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds (a smoke run)")
    parser.add_argument("--rounds", type=int, default=25, help="rounds per measurement")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    parser.add_argument("--only", choices=["joins"], help="run one section")
    args = parser.parse_args(argv)
    rounds = 5 if args.quick else args.rounds
    results: dict[str, Any] = {"machine": machine()}
    print("machine: " + "; ".join(results["machine"].values()))
    if args.only is None:
        results["compile"] = compile_bench(rounds)
        report_compile(results["compile"])
    server = start_ephemeral_server()
    try:
        if args.only is None:
            results["execute"] = execute_bench(server.uri, rounds, 50 if args.quick else 400)
        results["joins"] = joins_bench(server.uri, rounds, 1 if args.quick else 3)
    finally:
        server.stop()
    if args.only is None:
        report_execute(results["execute"])
    report_joins(results["joins"])
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
