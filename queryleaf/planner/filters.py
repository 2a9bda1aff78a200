"""WHERE predicates → query-language filters ($match), so that indexes can serve them.

A predicate compiles to a filter matching exactly the rows where it is TRUE (three-valued logic:
NULL/unknown rows are excluded, also under NOT). Comparisons of a plain field with a constant
become query operators; anything else becomes ``$expr`` over the aggregation expression.

MongoDB's query operators compare array fields element-wise (``{tags: 'a'}`` matches
``tags: ['a', 'b']``); queryleaf keeps that rule for plain-field filters (documented).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from bson import ObjectId, Regex
from bson.decimal128 import Decimal128

from queryleaf.planner.comparisons import COMPLEMENT, FLIPPED, OPERATOR
from queryleaf.planner.constants import NotConstant, literal_value
from queryleaf.planner.expressions import ExprCompiler, flatten, like_to_regex
from queryleaf.planner.scope import field_path
from queryleaf.sql import ast

_SCALARS = (str, int, float, bool, dt.datetime, ObjectId, Decimal128)

NOTHING: dict[str, Any] = {"$expr": False}


def and_filters(parts: list[dict[str, Any]]) -> dict[str, Any]:
    flat: list[dict[str, Any]] = []
    for p in parts:
        flat.extend(p["$and"] if list(p) == ["$and"] else [p] if p else [])
    # Field conditions on distinct fields merge into one document (where the first of them
    # was), and so do distinct operators on one field (`n >= 5 AND n < 9` is {n: {$gte: 5,
    # $lt: 9}}: a range some servers serve from an index only in this form). Operators ($expr,
    # $or...) and other repeated fields stay separate conditions.
    merged: dict[str, Any] = {}
    parts = []
    for p in flat:
        if any(
            k.startswith("$") or (k in merged and not _mergeable(merged[k], v))
            for k, v in p.items()
        ):
            parts.append(p)
        else:
            if not merged:
                parts.append(merged)
            for k, v in p.items():
                merged[k] = {**merged[k], **v} if k in merged else v
    if not parts:
        return {}
    if len(parts) == 1:
        return parts[0]
    return {"$and": parts}


def _mergeable(a: Any, b: Any) -> bool:
    """Two conditions on one field that can share its operator document: distinct query
    operators (their conjunction), none of them the $regex/$options pair."""
    return (
        isinstance(a, dict)
        and isinstance(b, dict)
        and bool(a)
        and bool(b)
        and all(k.startswith("$") and k not in ("$regex", "$options") for k in (*a, *b))
        and not set(a) & set(b)
    )


class FilterCompiler:
    def __init__(self, exprs: ExprCompiler):
        self.exprs = exprs

    def match(self, e: ast.Expr) -> dict[str, Any]:
        """A filter for the rows where ``e`` is TRUE."""
        return self._filter(e, negate=False)

    # ------------------------------------------------------------ recursion
    def _filter(self, e: ast.Expr, negate: bool) -> dict[str, Any]:
        while isinstance(e, ast.Unary) and e.op == "NOT":
            e, negate = e.operand, not negate
        if isinstance(e, ast.Binary) and e.op in ("AND", "OR"):
            # one call per operand of the whole chain: recursion only where AND and OR nest
            parts = [self._filter(x, negate) for x in flatten(e, e.op, self.exprs.computed)]
            conjunctive = (e.op == "AND") != negate
            if conjunctive:
                return and_filters(parts)
            return {
                "$or": [
                    p for part in parts for p in (part["$or"] if list(part) == ["$or"] else [part])
                ]
            }
        simple = self._simple(e, negate)
        if simple is not None:
            return simple
        if negate:
            return {"$expr": {"$eq": [self.exprs.compile(e), False]}}
        return {"$expr": self.exprs.truth(e)}

    def _path(self, e: ast.Expr) -> str | None:
        if not isinstance(e, ast.Column) or self.exprs.grouped:
            return None
        if self.exprs.key(e) in self.exprs.substitutions:
            return None
        resolved = self.exprs.scope.resolve(e)
        if resolved.variable is not None:
            return None
        return field_path(resolved.path)

    def _constant(self, e: ast.Expr) -> tuple[bool, Any]:
        try:
            v = literal_value(e, self.exprs.bindings)
        except NotConstant:
            return False, None
        if v is None or isinstance(v, _SCALARS):
            return True, v
        return False, None

    def _simple(self, e: ast.Expr, negate: bool) -> dict[str, Any] | None:
        """Query-language form of a comparison of a plain field with constants, or None."""
        if isinstance(e, ast.Binary) and e.op in FLIPPED:
            path, (ok, v) = self._path(e.left), self._constant(e.right)
            op = e.op
            if path is None:
                path, (ok, v) = self._path(e.right), self._constant(e.left)
                op = FLIPPED[op]
            if path is None or not ok:
                return None
            if v is None:  # comparison with NULL is never true
                return NOTHING
            return self._compare(path, COMPLEMENT[op] if negate else op, v)
        if isinstance(e, ast.IsNull):
            path = self._path(e.expr)
            if path is None:
                return None
            is_null = e.negated == negate
            return {path: None} if is_null else {path: {"$ne": None}}
        if isinstance(e, ast.InList):
            path = self._path(e.expr)
            consts = [self._constant(i) for i in e.items]
            if path is None or not all(ok for ok, _ in consts):
                return None
            values = [v for _, v in consts if v is not None]
            has_null = len(values) < len(consts)
            values = self._id_forms(path, values)
            if e.negated == negate:
                return {path: {"$in": values}}
            if has_null:  # x NOT IN (..., NULL) is never true
                return NOTHING
            return {path: {"$nin": [*values, None]}}
        if isinstance(e, ast.Between):
            path = self._path(e.expr)
            (ok1, lo), (ok2, hi) = self._constant(e.low), self._constant(e.high)
            if path is None or not (ok1 and ok2):
                return None
            if lo is None or hi is None:
                return None
            if e.negated == negate:
                return {path: {"$gte": lo, "$lte": hi}}
            return {"$or": [{path: {"$lt": lo}}, {path: {"$gt": hi}}]}
        if isinstance(e, ast.Like):
            path = self._path(e.expr)
            ok, pattern = self._constant(e.pattern)
            if path is None or not ok or not isinstance(pattern, str):
                return None
            escape = None
            if e.escape is not None:
                ok, escape = self._constant(e.escape)
                if not ok or not isinstance(escape, str) or len(escape) != 1:
                    return None
            regex = Regex(like_to_regex(pattern, escape), "si" if e.case_insensitive else "s")
            if e.negated == negate:
                return {path: regex}
            return {path: {"$type": "string", "$not": regex}}
        if isinstance(e, ast.Column):
            path = self._path(e)
            if path is None:
                return None
            # TRUE, or a non-zero number (MySQL/SQLite); FALSE or zero for NOT.
            if negate:
                return {path: {"$in": [False, 0]}}
            return {"$or": [{path: True}, {path: {"$type": "number", "$ne": 0}}]}
        if isinstance(e, ast.Literal) and isinstance(e.value, bool):
            return {} if e.value != negate else NOTHING
        return None

    def _compare(self, path: str, op: str, v: Any) -> dict[str, Any]:
        forms = self._id_forms(path, [v])
        if op == "=":
            if len(forms) > 1:
                return {path: {"$in": forms}}
            return {path: v} if not isinstance(v, dict) else {path: {"$eq": v}}
        if op == "<>":
            return {path: {"$nin": [*forms, None]}}
        return {path: {OPERATOR[op]: v}}

    @staticmethod
    def _id_forms(path: str, values: list[Any]) -> list[Any]:
        """_id compared with a 24-hex string matches the ObjectId and the string."""
        if path != "_id":
            return values
        out: list[Any] = []
        for v in values:
            out.append(v)
            if isinstance(v, str) and ObjectId.is_valid(v):
                out.append(ObjectId(v))
        return out
