"""SQL expressions → MongoDB aggregation expressions, with SQL's NULL semantics.

Every compiled expression evaluates to the SQL value, NULL being BSON null. Missing fields read
as NULL. Comparisons and boolean connectives follow three-valued logic: they yield null when the
answer is unknown, and ``$match: {$expr: ...}`` keeps only rows where the answer is true.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from queryleaf.errors import PlanningError
from queryleaf.planner.params import Bindings
from queryleaf.planner.scope import Scope, display_path
from queryleaf.sql import ast
from queryleaf.sql.walk import field_names

AGGREGATES = frozenset({
    "COUNT", "SUM", "AVG", "MIN", "MAX", "STDDEV", "STDDEV_POP", "STDDEV_SAMP", "STD",
    "GROUP_CONCAT", "JSON_ARRAYAGG", "JSON_OBJECTAGG",
})


def dotted(parts: tuple[str | int, ...]) -> str:
    """A path in query-language form: ``items.0.price``."""
    return ".".join(str(p) for p in parts)


def is_null_expr(v: Any) -> dict:
    """True when v is NULL or missing (missing sorts below null in BSON order)."""
    return {"$lte": [v, None]}


def not_null_expr(v: Any) -> dict:
    return {"$gt": [v, None]}


def literal(value: Any) -> Any:
    """A constant as an aggregation expression (strings starting with $ and documents quoted)."""
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, str) and value.startswith("$"):
        return {"$literal": value}
    if isinstance(value, dict | list):
        return {"$literal": value}
    return value


_NULL_PROPAGATING = {"$add", "$subtract", "$multiply", "$dateAdd", "$dateSubtract", "$toLower",
                     "$toUpper", "$abs", "$floor", "$ceil", "$toDate", "$toLong"}


def never_null(v: Any) -> bool:
    """Whether a compiled expression certainly evaluates to a non-null value."""
    if v is None:
        return False
    if isinstance(v, str):
        return not v.startswith("$") or v == "$$NOW"
    if isinstance(v, bool | int | float) or not isinstance(v, dict | list):
        return True
    if isinstance(v, list):
        return True
    if len(v) != 1:
        return False
    op, args = next(iter(v.items()))
    if op == "$literal":
        return args is not None
    if op in _NULL_PROPAGATING:
        if isinstance(args, dict):
            args = list(args.values())
        return all(never_null(a) for a in (args if isinstance(args, list) else [args]))
    return False


def null_guard(operands: list[Any], core: Any) -> Any:
    """``core`` when every operand is non-null, else null."""
    operands = [o for o in operands if not never_null(o)]
    if not operands:
        return core
    cond = is_null_expr(operands[0]) if len(operands) == 1 else {
        "$or": [is_null_expr(o) for o in operands]}
    return {"$cond": [cond, None, core]}


def like_to_regex(pattern: str, escape: str | None = None) -> str:
    """A SQL LIKE pattern as an anchored regular expression."""
    out = ["^"]
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if escape and c == escape and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if c == "%":
            out.append(".*")
        elif c == "_":
            out.append(".")
        else:
            out.append(re.escape(c))
        i += 1
    # `$` would also match before a final newline (PCRE and Python alike): end of text instead.
    out.append(r"(?![\s\S])")
    return "".join(out)


_COMPARE = {"=": "$eq", "<>": "$ne", "<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte"}


_BOOLEAN_OPS = {"AND", "OR", "=", "<>", "<", "<=", ">", ">="}


def is_boolean(e: ast.Expr) -> bool:
    """Whether e is a predicate (its value is TRUE, FALSE or NULL by construction)."""
    if isinstance(e, ast.Literal):
        return e.value is None or isinstance(e.value, bool)
    if isinstance(e, ast.Binary):
        return e.op in _BOOLEAN_OPS
    if isinstance(e, ast.Unary):
        return e.op == "NOT"
    return isinstance(e, ast.InList | ast.InSubquery | ast.Between | ast.Like | ast.Regexp
                      | ast.IsNull | ast.Exists)


def nullable(e: ast.Expr) -> bool:
    """Whether e may evaluate to NULL (conservative: True unless known otherwise)."""
    if isinstance(e, ast.Literal):
        return e.value is None
    if isinstance(e, ast.IsNull | ast.Exists):
        return False
    if isinstance(e, ast.FuncCall) and e.name == "COUNT" and e.over is None:
        return False
    if isinstance(e, ast.Binary) and e.op in ("AND", "OR", "=", "<>", "<", "<=", ">", ">="):
        return nullable(e.left) or nullable(e.right)
    if isinstance(e, ast.Unary):
        return nullable(e.operand)
    return True


class ExprCompiler:
    """Compiles expressions in one scope.

    ``substitutions`` maps expressions already computed by an earlier stage (GROUP BY keys,
    aggregates) to the expression that reads them; ``grouped`` makes any other column reference
    an error (it is neither grouped nor aggregated).
    """

    def __init__(self, scope: Scope, bindings: Bindings,
                 substitutions: dict[Any, Any] | None = None, grouped: bool = False,
                 subquery: Callable[[ast.Expr], Any] | None = None):
        self.scope = scope
        self.bindings = bindings
        self.substitutions = substitutions or {}
        self.grouped = grouped
        self.subquery = subquery
        self._keys: dict[int, tuple[ast.Node, Any]] = {}
        # A subquery node compiled twice (e.g. ``(SELECT ...) BETWEEN a AND b`` reads it twice)
        # reads the field of one $lookup.
        self._subqueries: dict[int, tuple[ast.Node, Any]] = {}

    # ------------------------------------------------------------ entry points
    def compile(self, e: ast.Expr) -> Any:
        if self.substitutions:
            key = self.key(e)
            if key in self.substitutions:
                return self.substitutions[key]
        method = getattr(self, "_" + type(e).__name__.lower(), None)
        if method is None:
            raise PlanningError(f"{type(e).__name__} expressions are not supported here", e.pos)
        return method(e)

    def truth(self, e: ast.Expr) -> Any:
        """An expression that is truthy exactly when ``e`` is TRUE (NULL and FALSE are not).

        Used where SQL only keeps TRUE rows (WHERE via $expr, HAVING, CASE WHEN): a comparison
        whose nullable side sorts lowest needs no NULL guard there, which keeps pipelines short.
        """
        key = self.key(e)
        if key in self.substitutions:
            return self.substitutions[key]
        if isinstance(e, ast.Binary) and e.op in ("AND", "OR"):
            parts = [self.truth(p) for p in flatten(e, e.op)]
            return {"$and" if e.op == "AND" else "$or": parts}
        if isinstance(e, ast.Unary) and e.op == "NOT":
            return {"$eq": [self.condition(e.operand), False]}
        if not is_boolean(e):
            return {"$eq": [self.condition(e), True]}
        if isinstance(e, ast.Binary) and e.op in _COMPARE and not _has_interval(e):
            a, b = self.compile(e.left), self.compile(e.right)
            op = e.op
            guards = []
            # null/missing sort below every value: `a = b`, `a > b`, `a >= b` are false for a
            # NULL a when b is not NULL (and symmetrically), as SQL wants in this context.
            low_ok = {"=": (True, True), ">": (True, False), ">=": (True, False),
                      "<": (False, True), "<=": (False, True), "<>": (False, False)}[op]
            if not (never_null(a) or (low_ok[0] and never_null(b))):
                guards.append(not_null_expr(a))
            if not (never_null(b) or (low_ok[1] and never_null(a))):
                guards.append(not_null_expr(b))
            core = {_COMPARE[op]: [a, b]}
            return {"$and": [*guards, core]} if guards else core
        return self.compile(e)

    def key(self, e: ast.Expr) -> Any:
        """The identity of an expression for substitution: its structure with every column
        replaced by what it resolves to (so ``o.total`` and ``total`` are the same key).
        Memoised per node: compile() asks for the key of every subexpression."""
        if not isinstance(e, ast.Node):
            return e
        cached = self._keys.get(id(e))
        if cached is not None and cached[0] is e:
            return cached[1]
        if isinstance(e, ast.Column):
            key: Any = ("column", self.scope.resolve(e))
        elif isinstance(e, ast.Query | ast.ScalarSubquery | ast.Exists | ast.InSubquery):
            key = e
        else:
            key = (type(e).__name__, *(self._field_key(getattr(e, name))
                                       for name in field_names(type(e))))
        self._keys[id(e)] = (e, key)
        return key

    def _field_key(self, value: Any) -> Any:
        if isinstance(value, tuple):
            return tuple(self._field_key(x) for x in value)
        return self.key(value)

    # ------------------------------------------------------------ leaves
    def _literal(self, e: ast.Literal) -> Any:
        return literal(e.value)

    def _param(self, e: ast.Param) -> Any:
        return literal(self.bindings.value(e))

    def _column(self, e: ast.Column) -> Any:
        if self.grouped:
            raise PlanningError(
                f"column {display_path(e.parts)} must appear in GROUP BY or be used in an "
                "aggregate function", e.pos)
        return self.scope.expression(self.scope.resolve(e))

    def _star(self, e: ast.Star) -> Any:
        raise PlanningError("* is only allowed in COUNT(*) and the select list", e.pos)

    # ------------------------------------------------------------ operators
    def _unary(self, e: ast.Unary) -> Any:
        v = self.compile(e.operand)
        if e.op == "-":
            return {"$multiply": [-1, v]}
        if e.op == "+":
            return v
        if e.op == "NOT":
            v = self.condition(e.operand)
            core = {"$not": [v]}
            return null_guard([v], core) if nullable(e.operand) else core
        raise PlanningError(f"unknown unary operator {e.op}", e.pos)

    def _binary(self, e: ast.Binary) -> Any:
        op = e.op
        if op in ("AND", "OR"):
            return self._connective(e)
        if op in ("+", "-") and isinstance(e.right, ast.Interval):
            from queryleaf.planner.functions import date_add

            return date_add(self, self.compile(e.left), e.right, 1 if op == "+" else -1)
        if op == "+" and isinstance(e.left, ast.Interval):
            from queryleaf.planner.functions import date_add

            return date_add(self, self.compile(e.right), e.left, 1)
        a, b = self.compile(e.left), self.compile(e.right)
        if op in _COMPARE:
            operands = [x for x, n in ((a, e.left), (b, e.right)) if nullable(n)]
            return null_guard(operands, {_COMPARE[op]: [a, b]})
        if op == "+":
            return {"$add": [a, b]}
        if op == "-":
            return {"$subtract": [a, b]}
        if op == "*":
            return {"$multiply": [a, b]}
        if op == "/":
            return {"$cond": [{"$eq": [b, 0]}, None, {"$divide": [a, b]}]}
        if op == "DIV":
            return {"$cond": [{"$eq": [b, 0]}, None, {"$trunc": [{"$divide": [a, b]}, 0]}]}
        if op in ("%", "MOD"):
            return {"$cond": [{"$eq": [b, 0]}, None, {"$mod": [a, b]}]}
        if op == "||":
            return {"$concat": [to_text(a, e.left), to_text(b, e.right)]}
        raise PlanningError(f"unknown operator {op}", e.pos)

    def condition(self, e: ast.Expr) -> Any:
        """``e`` as a truth value: booleans as they are; as in MySQL and SQLite a number is
        true when not zero; other values (strings, documents) are false; NULL stays NULL."""
        v = self.compile(e)
        if is_boolean(e):
            return v
        return {"$let": {"vars": {"c": v}, "in": {"$switch": {"branches": [
            {"case": is_null_expr("$$c"), "then": None},
            {"case": {"$isNumber": "$$c"}, "then": {"$ne": ["$$c", 0]}}],
            "default": {"$eq": ["$$c", True]}}}}}

    def _connective(self, e: ast.Binary) -> Any:
        parts = flatten(e, e.op)
        compiled = [self.condition(p) for p in parts]
        if not any(nullable(p) for p in parts):
            return {"$and" if e.op == "AND" else "$or": compiled}
        decisive = e.op == "OR"  # OR: any true decides; AND: any false decides
        return {"$cond": [
            {"$or": [{"$eq": [c, decisive]} for c in compiled]},
            decisive,
            {"$cond": [{"$or": [is_null_expr(c) for c in compiled]}, None, not decisive]},
        ]}

    def _inlist(self, e: ast.InList) -> Any:
        v = self.compile(e.expr)
        items = [self.compile(i) for i in e.items]
        if all(isinstance(i, ast.Literal | ast.Param) for i in e.items):
            present = [c for c in items if c is not None]
            found = {"$in": [v, present]}
            if len(present) == len(items):
                core = {"$not": [found]} if e.negated else found
            else:  # a NULL in the list: a miss is unknown, not false
                core = {"$cond": [found, not e.negated, None]}
            return null_guard([v], core) if nullable(e.expr) else core
        ors = ast.Binary("=", e.expr, e.items[0], e.pos)
        for item in e.items[1:]:
            ors = ast.Binary("OR", ors, ast.Binary("=", e.expr, item, e.pos), e.pos)
        result = self.compile(ors)
        return self._negate(result) if e.negated else result

    def _negate(self, v: Any) -> Any:
        return null_guard([v], {"$not": [v]})

    def _between(self, e: ast.Between) -> Any:
        both = ast.Binary("AND", ast.Binary(">=", e.expr, e.low, e.pos),
                          ast.Binary("<=", e.expr, e.high, e.pos), e.pos)
        result = self.compile(both)
        return self._negate(result) if e.negated else result

    def _like(self, e: ast.Like) -> Any:
        pattern = self.constant_string(e.pattern, "LIKE pattern")
        escape = self.constant_string(e.escape, "ESCAPE") if e.escape is not None else None
        if escape is not None and len(escape) != 1:
            raise PlanningError("ESCAPE must be a single character", e.escape.pos)
        v = self.compile(e.expr)
        match = {"$regexMatch": {"input": "$$s", "regex": like_to_regex(pattern, escape),
                                 "options": "si" if e.case_insensitive else "s"}}
        return _string_match(v, match, e.negated)

    def _regexp(self, e: ast.Regexp) -> Any:
        pattern = self.constant_string(e.pattern, "REGEXP pattern")
        v = self.compile(e.expr)
        return _string_match(v, {"$regexMatch": {"input": "$$s", "regex": pattern}}, e.negated)

    def _isnull(self, e: ast.IsNull) -> Any:
        v = self.compile(e.expr)
        return not_null_expr(v) if e.negated else is_null_expr(v)

    def _case(self, e: ast.Case) -> Any:
        branches = []
        for w in e.whens:
            cond = w.condition if e.operand is None else ast.Binary("=", e.operand, w.condition,
                                                                     w.pos)
            branches.append({"case": self.truth(cond), "then": self.compile(w.result)})
        default = self.compile(e.else_) if e.else_ is not None else None
        return {"$switch": {"branches": branches, "default": default}}

    def _cast(self, e: ast.Cast) -> Any:
        from queryleaf.planner.functions import compile_cast

        return compile_cast(self, e)

    def _extract(self, e: ast.Extract) -> Any:
        from queryleaf.planner.functions import compile_extract

        return compile_extract(self, e)

    def _interval(self, e: ast.Interval) -> Any:
        raise PlanningError("INTERVAL is only allowed added to or subtracted from a date "
                            "(e.g. NOW() - INTERVAL 1 HOUR) or in DATE_ADD/DATE_SUB", e.pos)

    def _jsonarrow(self, e: ast.JsonArrow) -> Any:
        from queryleaf.planner.functions import json_path_get

        return json_path_get(self.compile(e.expr), e.path, e.pos)

    def _funccall(self, e: ast.FuncCall) -> Any:
        if e.over is not None:
            raise PlanningError(f"window function {e.name}(...) OVER (...) is not supported yet",
                                e.pos)
        if e.name in AGGREGATES:
            raise PlanningError(f"aggregate {e.name}(...) is not allowed here", e.pos)
        from queryleaf.planner.functions import compile_function

        return compile_function(self, e)

    def _scalarsubquery(self, e: ast.ScalarSubquery) -> Any:
        if self.subquery is None:
            raise PlanningError("subqueries are not supported here", e.pos)
        cached = self._subqueries.get(id(e))
        if cached is None:
            cached = self._subqueries[id(e)] = (e, self.subquery(e, self))
        return cached[1]

    _exists = _scalarsubquery
    _insubquery = _scalarsubquery

    # ------------------------------------------------------------ helpers
    def constant_string(self, e: ast.Expr | None, what: str) -> str:
        if isinstance(e, ast.Literal) and isinstance(e.value, str):
            return e.value
        if isinstance(e, ast.Param):
            value = self.bindings.value(e)
            if isinstance(value, str):
                return value
        raise PlanningError(f"{what} must be a constant string", e.pos if e else None)


_SIMPLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def path_get(base: Any, parts: tuple[str | int, ...] | list[str | int]) -> Any:
    """Read ``parts`` (field names, array indexes) below the value of ``base``."""
    expr = base
    run: list[str] = []

    def flush(e: Any) -> Any:
        if not run:
            return e
        if all(_SIMPLE_NAME.match(n) for n in run):
            out = {"$let": {"vars": {"v": e}, "in": "$$v." + ".".join(run)}}
        else:
            out = e
            for n in run:
                out = {"$getField": {"field": {"$literal": n}, "input": out}}
        run.clear()
        return out

    for p in parts:
        if isinstance(p, int):
            expr = {"$arrayElemAt": [flush(expr), p]}
        else:
            run.append(p)
    return flush(expr)


def _has_interval(e: ast.Binary) -> bool:
    return isinstance(e.left, ast.Interval) or isinstance(e.right, ast.Interval)


def flatten(e: ast.Expr, op: str) -> list[ast.Expr]:
    """The operands of a chain of ``op`` (AND, OR), in order: ``a AND b AND c`` → a, b, c."""
    out, stack = [], [e]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Binary) and node.op == op:
            stack += (node.right, node.left)
        else:
            out.append(node)
    return out


def _string_match(v: Any, match: dict[str, Any], negated: bool) -> Any:
    """A pattern test of v, for strings only: NULL for NULL and for non-strings, so that
    neither LIKE nor NOT LIKE holds for a number (as in a WHERE filter)."""
    test = {"$cond": [{"$eq": [{"$type": "$$s"}, "string"]},
                      {"$not": [match]} if negated else match, None]}
    return {"$let": {"vars": {"s": v}, "in": {"$cond": [is_null_expr("$$s"), None, test]}}}


def to_text(v: Any, e: ast.Expr) -> Any:
    """A value as a string for concatenation / pattern matching (NULL stays NULL)."""
    if isinstance(e, ast.Literal) and isinstance(e.value, str):
        return v
    return {"$toString": v}
