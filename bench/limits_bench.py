"""Limits: how parse + plan time grows with the size of extreme statements (issue 8, item 6).

    .venv/bin/python bench/limits_bench.py [--quick] [--rounds N] [--json]

Each shape at two sizes ten times apart, side by side in one run: ``parse`` + ``plan_statement``
(pure, no server; best of N rounds, a fresh parse each round) and the ratio of the large size's
time to the small one's — about 10 when the time is linear, about 100 when it is quadratic.
Shapes: an IN list of integer literals (10,000 / 100,000 items); as many ``?`` placeholders,
bound to integers; an OR chain of comparisons (1,000 / 10,000 terms); an unterminated string
literal (100,000 / 1,000,000 characters: a syntax error, timed up to the error). Beside each,
``sqlglot.parse_one`` on the same text (parse only, as in sql_bench.py) where it parses.
Target (issue 8): 100,000 literals or placeholders in under 1 s.

Not a test: prints a table (and ``--json``).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine import cpu_name, os_name  # noqa: E402  (bench/machine.py)

from queryleaf.errors import QueryLeafError  # noqa: E402
from queryleaf.planner import plan_statement  # noqa: E402
from queryleaf.sql.parser import parse  # noqa: E402

Shape = Callable[[int], tuple[str, Any]]


def in_list(n: int) -> tuple[str, Any]:
    return "SELECT a FROM t WHERE a IN (" + ", ".join(str(i) for i in range(n)) + ")", None


def placeholders(n: int) -> tuple[str, Any]:
    return "SELECT a FROM t WHERE a IN (" + ", ".join("?" * n) + ")", list(range(n))


def or_chain(n: int) -> tuple[str, Any]:
    return "SELECT a FROM t WHERE " + " OR ".join(f"a = {i}" for i in range(n)), None


def unterminated(n: int) -> tuple[str, Any]:
    return "SELECT 'x" + "y" * (n - 1), None


# (name, shape, small size, large size)
SHAPES: list[tuple[str, Shape, int, int]] = [
    ("IN list of literals", in_list, 10_000, 100_000),
    ("? placeholders", placeholders, 10_000, 100_000),
    ("OR chain", or_chain, 1_000, 10_000),
    ("unterminated string", unterminated, 100_000, 1_000_000),
]


def compile_seconds(sql: str, params: Any, rounds: int) -> tuple[float, str]:
    """Best time of parse + plan over ``rounds``; the outcome (a plan, or the error class)."""
    best = float("inf")
    outcome = ""
    for _ in range(rounds):
        gc.collect()
        started = time.perf_counter()
        try:
            plan_statement(parse(sql), params)
            outcome = "planned"
        except QueryLeafError as exc:
            outcome = type(exc).__name__
        best = min(best, time.perf_counter() - started)
    return best, outcome


def sqlglot_seconds(sql: str, rounds: int) -> float | None:
    import sqlglot

    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        try:
            sqlglot.parse_one(sql, read="mysql")
        except Exception:  # noqa: BLE001 - sqlglot's errors are many; a failed parse counts
            return None
        best = min(best, time.perf_counter() - started)
    return best


def run(rounds: int, with_sqlglot: bool) -> list[dict[str, Any]]:
    rows = []
    for name, shape, small, large in SHAPES:
        row: dict[str, Any] = {"shape": name, "sizes": [small, large]}
        for size in (small, large):
            sql, params = shape(size)
            seconds, outcome = compile_seconds(sql, params, rounds)
            row[f"queryleaf_{size}"] = seconds
            row["outcome"] = outcome
            row[f"sqlglot_{size}"] = sqlglot_seconds(sql, rounds) if with_sqlglot else None
        row["ratio"] = row[f"queryleaf_{large}"] / row[f"queryleaf_{small}"]
        rows.append(row)
    return rows


def machine() -> dict[str, str]:
    import lark

    return {
        "cpu": cpu_name(),
        "os": os_name(),
        "python": platform.python_version(),
        "versions": f"lark {lark.__version__}",
    }


def _seconds(value: float | None) -> str:
    return f"{value:8.3f}" if value is not None else "       -"


def report(rows: list[dict[str, Any]]) -> None:
    print(
        "\nparse + plan (pure), best of the rounds, seconds; ratio = large / small "
        "(linear ~10, quadratic ~100)"
    )
    print(
        f"  {'shape':22} {'sizes':>17} {'small':>8} {'large':>8} {'ratio':>6}  "
        f"{'sqlglot small':>13} {'sqlglot large':>13}  outcome"
    )
    for row in rows:
        small, large = row["sizes"]
        print(
            f"  {row['shape']:22} {small:>8,}/{large:<8,} "
            f"{_seconds(row[f'queryleaf_{small}'])} {_seconds(row[f'queryleaf_{large}'])} "
            f"{row['ratio']:6.1f}  {_seconds(row[f'sqlglot_{small}']):>13} "
            f"{_seconds(row[f'sqlglot_{large}']):>13}  {row['outcome']}"
        )


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round, no sqlglot")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per measurement")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = parser.parse_args(argv)
    logging.getLogger("sqlglot").setLevel(logging.ERROR)
    parse("SELECT 1")  # the parser is built (or loaded from its cache) before any timing
    info = machine()
    print("machine: " + "; ".join(info.values()))
    rows = run(1 if args.quick else args.rounds, with_sqlglot=not args.quick)
    report(rows)
    if args.json:
        print(json.dumps({"machine": info, "limits": rows}, indent=2))
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
