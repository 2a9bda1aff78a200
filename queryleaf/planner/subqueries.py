"""Subqueries in expressions → a $lookup per subquery and the expression reading its result.

Scalar subqueries yield their single value (more than one row is a run-time error, as in SQL),
EXISTS whether a row exists, and IN / NOT IN follow three-valued logic: a miss is unknown when
the subquery yields a NULL. Outer columns read by the subquery are bound with ``let``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from queryleaf.errors import PlanningError
from queryleaf.planner.comparisons import COMPLEMENT, OPERATOR
from queryleaf.planner.expressions import ExprCompiler, is_field_path, is_null_expr
from queryleaf.planner.lowering import as_aggregate
from queryleaf.sql import ast

if TYPE_CHECKING:
    from queryleaf.planner.context import Context


def subquery_lookup(
    e: ast.Expr, compiler: ExprCompiler, ctx: Context
) -> tuple[dict[str, Any], Any, str]:
    """The $lookup stage, the expression reading the subquery's value, the temporary field."""
    from queryleaf.planner.select import plan_with_lets

    query = e.query  # type: ignore[attr-defined]
    sub, lets = plan_with_lets(query, ctx, outer=compiler.scope)
    agg = as_aggregate(sub)
    lets = {name: _after_grouping(value, compiler, e) for name, value in lets.items()}
    field_name = ctx.fresh("__sq")
    stages = list(agg.pipeline)
    rows = f"${field_name}"
    if isinstance(e, ast.Exists):
        stages += [{"$limit": 1}, {"$project": {"_id": 1}}]
        result: Any = {"$gt": [{"$size": rows}, 0]}
    else:
        if agg.columns is None or len(agg.columns) != 1:
            raise PlanningError(
                "a subquery used as a value must return exactly one column", query.pos
            )
        key = agg.columns[0].key
        if isinstance(e, ast.InSubquery | ast.Quantified):
            if isinstance(e, ast.InSubquery):  # x IN (q) is x = ANY (q)
                op, negate = "=", e.negated
            elif e.quantifier == "ALL":  # x op ALL (q) is NOT (x (not op) ANY (q))
                op, negate = COMPLEMENT[e.op], True
            else:
                op, negate = e.op, False
            needle = ctx.fresh("needle")
            lets[needle] = compiler.compile(e.expr)
            stages += _any_stages(op, f"${key}", f"$${needle}")
            result = _any_result(rows, lets[needle])
            if negate:
                result = {
                    "$let": {
                        "vars": {"f": result},
                        "in": {"$cond": [is_null_expr("$$f"), None, {"$not": ["$$f"]}]},
                    }
                }
        else:
            stages.append({"$limit": 2})
            # A non-constant conversion failure is how a pipeline raises a run-time error.
            too_many = {
                "$toInt": {
                    "$concat": [
                        "scalar subquery returned more than one row: ",
                        {"$toString": {"$size": rows}},
                    ]
                }
            }
            result = {
                "$switch": {
                    "branches": [{"case": {"$gt": [{"$size": rows}, 1]}, "then": too_many}],
                    # No row is NULL (not missing, which arithmetic refuses on some servers).
                    "default": {
                        "$ifNull": [
                            {
                                "$getField": {
                                    "field": {"$literal": key},
                                    "input": {"$arrayElemAt": [rows, 0]},
                                }
                            },
                            None,
                        ]
                    },
                }
            }
    lookup: dict[str, Any] = {}
    if agg.collection is not None:
        lookup["from"] = agg.collection
    if lets:
        lookup["let"] = lets
    lookup["pipeline"] = stages
    lookup["as"] = field_name
    return {"$lookup": lookup}, result, field_name


def _any_stages(op: str, value: str, needle: str) -> list[dict[str, Any]]:
    """Stages after the subquery's own for ``needle op ANY (rows)``: one row that says whether
    some row compares TRUE (``hit``) and whether some comparison is unknown (``nulls``)."""
    holds: Any = {"$eq": [value, needle]}  # equal to a needle that is not NULL: not NULL
    if op != "=":
        holds = {"$and": [{"$gt": [value, None]}, {OPERATOR[op]: [needle, value]}]}
    # Only rows that compare TRUE or are NULL matter; for a NULL needle every row does (the
    # answer is NULL unless there are no rows).
    return [
        {"$match": {"$expr": {"$or": [holds, is_null_expr(value), is_null_expr(needle)]}}},
        {"$group": {"_id": None, "hit": {"$max": holds}, "nulls": {"$max": is_null_expr(value)}}},
    ]


def _any_result(rows: str, needle: Any) -> Any:
    """Three-valued ``needle op ANY (rows)``: FALSE over no rows, NULL for a NULL needle, TRUE
    when a row compares TRUE, NULL when a row is NULL, FALSE otherwise."""
    return {
        "$let": {
            "vars": {"g": {"$arrayElemAt": [rows, 0]}},
            "in": {
                "$switch": {
                    "branches": [
                        {"case": {"$eq": [{"$ifNull": ["$$g", None]}, None]}, "then": False},
                        {"case": is_null_expr(needle), "then": None},
                        {"case": "$$g.hit", "then": True},
                        {"case": "$$g.nulls", "then": None},
                    ],
                    "default": False,
                }
            },
        }
    }


def _after_grouping(value: Any, compiler: ExprCompiler, e: ast.Expr) -> Any:
    """An outer column a correlated subquery reads, as the enclosing row holds it: after GROUP
    BY a grouped column lives in the group's key (its substitution), and any other column of the
    row no longer exists, an error as in SQL (it would silently read NULL)."""
    if not compiler.grouped:
        return value
    for key, grouped in compiler.substitutions.items():
        if (
            isinstance(key, tuple)
            and key
            and key[0] == "column"
            and compiler.scope.expression(key[1]) == value
        ):
            return grouped
    if is_field_path(value):
        raise PlanningError(
            f"a subquery of a grouped query reads {value[1:]}, which is neither "
            "grouped nor aggregated: add it to GROUP BY",
            e.pos,
        )
    return value
