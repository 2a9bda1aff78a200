"""Running a relational ``Select`` on both engines and comparing (as ``compare`` does for the
single-table queries), plus a check of queryleaf's result column names: an aliased item has its
alias, a bare column its name (``_id`` stays ``_id`` through derived tables and CTEs; duplicates
may get a suffix such as ``_id_2``), and ``SELECT *`` returns no column SQLite does not have (no
internal name leaks)."""

from __future__ import annotations

from typing import Any

from .compare import compare, is_sub_multiset
from .engines import Answer, Database
from .relations import RCol, Select


def report(
    problem: str,
    data: dict[str, list[dict[str, Any]]],
    ql_sql: str,
    lite_sql: str,
    expected: Any,
    actual: Any,
) -> str:
    tables = "\n".join(f"  {p} ({len(rows)} rows): {rows}" for p, rows in data.items())
    return (
        f"{problem}\n  queryleaf SQL: {ql_sql}\n  SQLite SQL:    {lite_sql}\n{tables}\n"
        f"  SQLite:    {expected}\n  queryleaf: {actual}"
    )


def _names_problem(q: Select, expected: Answer, actual: Answer) -> str | None:
    if q.star:
        leaked = [c for c in actual.columns if c not in expected.columns]
        return f"SELECT * returned columns SQLite does not have: {leaked}" if leaked else None
    if len(expected.columns) != len(actual.columns):
        return f"column count differs: {expected.columns} vs {actual.columns}"
    for it, name in zip(q.items, actual.columns, strict=True):
        want = it.alias or (it.expr.name if isinstance(it.expr, RCol) else None)
        if want and name != want and not (it.alias is None and name.startswith(want + "_")):
            return f"result column {name!r} should be named {want!r}"
    return None


def _run(db: Database, ql_sql: str, lite_sql: str, star: bool) -> tuple[Answer, Answer]:
    expected = db.sqlite(lite_sql)
    try:
        actual, docs = db.mongo(ql_sql)
    except Exception as exc:  # an error is a difference too: SQLite answered
        raise AssertionError(
            f"queryleaf failed: {type(exc).__name__}: {exc}\n"
            f"  queryleaf SQL: {ql_sql}\n  SQLite SQL:    {lite_sql}\n"
            f"  SQLite: {expected.rows}"
        ) from None
    if star:  # match by name: queryleaf leaves out fields no document holds
        actual = Answer(actual.columns, [tuple(r.get(n) for n in expected.columns) for r in docs])
    return expected, actual


def check_select(db: Database, data: dict[str, list[dict[str, Any]]], q: Select) -> None:
    """Run ``q`` on both engines; raise AssertionError with a report when they disagree."""
    total = bool(q.order_by) and q.total_order
    ql_sql = db.resolve(q.render("ql"))
    unordered_limit = q.limited and not total
    lite_sql = db.resolve(q.render("lite", limits=not unordered_limit))
    expected, actual = _run(db, ql_sql, lite_sql, q.star)
    problem = _names_problem(q, expected, actual)
    if problem is None and unordered_limit:
        n = max(0, len(expected.rows) - (q.offset or 0))
        if q.limit is not None:
            n = min(n, q.limit)
        if len(actual.rows) != n:
            problem = f"LIMIT/OFFSET: expected {n} row(s), got {len(actual.rows)}"
        elif not is_sub_multiset(actual.rows, expected.rows):
            problem = "LIMIT/OFFSET: rows that are not in the answer without LIMIT/OFFSET"
        lite_sql += "  (no LIMIT/OFFSET)"
    elif problem is None:
        problem = compare(
            expected.rows, actual.rows, ordered=total, key_positions=None if total else q.key_prefix
        )
    if problem:
        raise AssertionError(report(problem, data, ql_sql, lite_sql, expected.rows, actual.rows))


def check_text(
    db: Database,
    data: dict[str, list[dict[str, Any]]],
    sql: str,
    lite_sql: str | None = None,
    *,
    ordered: bool = False,
    star: bool = False,
) -> None:
    """Run hand-written SQL (with ``@A@``-style placeholders) on both engines."""
    ql_sql = db.resolve(sql)
    lite_sql = db.resolve(lite_sql or sql)
    expected, actual = _run(db, ql_sql, lite_sql, star)
    problem = (
        f"column count differs: {expected.columns} vs {actual.columns}"
        if not star and len(expected.columns) != len(actual.columns)
        else None
    )
    if star and (leaked := [c for c in actual.columns if c not in expected.columns]):
        problem = f"SELECT * returned columns SQLite does not have: {leaked}"
    problem = problem or compare(expected.rows, actual.rows, ordered=ordered)
    if problem:
        raise AssertionError(report(problem, data, ql_sql, lite_sql, expected.rows, actual.rows))
