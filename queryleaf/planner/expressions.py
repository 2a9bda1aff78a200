"""SQL expressions → MongoDB aggregation expressions, with SQL's NULL semantics.

Every compiled expression evaluates to the SQL value, NULL being BSON null. Missing fields read
as NULL. Comparisons and boolean connectives follow three-valued logic: they yield null when the
answer is unknown, and ``$match: {$expr: ...}`` keeps only rows where the answer is true.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from queryleaf.errors import PlanningError
from queryleaf.planner.comparisons import OPERATOR
from queryleaf.planner.constants import NotConstant, literal_value
from queryleaf.planner.params import Bindings
from queryleaf.planner.scope import Scope, display_path, is_outer_variable
from queryleaf.sql import ast
from queryleaf.sql.walk import child_list, field_names

AGGREGATES = frozenset(
    {
        "COUNT",
        "SUM",
        "AVG",
        "MIN",
        "MAX",
        "STDDEV",
        "STDDEV_POP",
        "STDDEV_SAMP",
        "STD",
        "GROUP_CONCAT",
        "JSON_ARRAYAGG",
        "JSON_OBJECTAGG",
    }
)


def is_field_path(v: Any) -> bool:
    """Whether a compiled expression is a field path of the row (``'$a.b'``, not ``'$$var'``)."""
    return isinstance(v, str) and v.startswith("$") and not v.startswith("$$")


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


def arithmetic_operand(v: Any) -> Any:
    """An operand of arithmetic: an outer column read through a ``$lookup`` variable is read as
    null when missing. The embedded server binds a variable to a missing field as a value that
    $add, $subtract, ... refuse; MongoDB documents null for a missing operand (same answer)."""
    return {"$ifNull": [v, None]} if is_outer_variable(v) else v


_NULL_PROPAGATING = {
    "$add",
    "$subtract",
    "$multiply",
    "$dateAdd",
    "$dateSubtract",
    "$toLower",
    "$toUpper",
    "$abs",
    "$floor",
    "$ceil",
    "$toDate",
    "$toLong",
}


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
    """``core`` when every operand is non-null, else null. The operands are simple values or
    read through variables (see ``bound``): each appears in the guard and in ``core``."""
    operands = [o for o in operands if not never_null(o)]
    if not operands:
        return core
    cond = (
        is_null_expr(operands[0])
        if len(operands) == 1
        else {"$or": [is_null_expr(o) for o in operands]}
    )
    return {"$cond": [cond, None, core]}


_SMALL = 8  # nodes: a value this small is written twice rather than bound to a variable


def is_simple(v: Any) -> bool:
    """Whether a compiled value is cheap to write twice: a constant, a field path or a variable,
    or a few operators over them (``{$multiply: ['$price', '$qty']}``)."""
    budget = _SMALL
    stack = [v]
    while stack:
        x = stack.pop()
        budget -= 1
        if budget < 0:
            return False
        if isinstance(x, dict):
            if list(x) != ["$literal"]:
                stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)
    return True


def bound(
    values: list[Any], build: Callable[[list[Any]], Any], prefix: str, pure: bool = True
) -> Any:
    """``build(values)``, where a value that is not simple and that the result reads more than
    once is read through a ``$let`` variable: written, and evaluated, once. Without this a null
    guard (the value in the test and in the result) doubles the size of every level of a nested
    expression: ``ABS(ABS(...))`` 30 deep would be gigabytes of BSON.

    ``build`` makes the body from the references; ``pure``: it only combines them with operators
    of its own, so it can be called again (with the values read once put back in place).
    Variables are named ``prefix`` + index; translators bind single letters, and a ``prefix``
    of ``ExprCompiler._fresh`` is unique, so no name is captured by an inner binding."""
    names: dict[str, Any] = {}
    refs = []
    for i, v in enumerate(values):
        if is_simple(v):
            refs.append(v)
        else:
            # Missing as null (the same to SQL): a variable bound to a missing field is not
            # accepted by every operator on every server (SecantusDB's $mod refuses it).
            names[f"{prefix}{i}"] = {"$ifNull": [v, None]} if may_be_missing(v) else v
            refs.append(f"$${prefix}{i}")
    body = build(refs)
    if not names:
        return body
    if pure:
        uses = _variable_uses(body, {f"$${n}" for n in names})
        once = {n for n in names if uses.get(f"$${n}", 0) <= 1}
        if once:
            for n in once:
                del names[n]
            body = build([values[i] if f"{prefix}{i}" in once else r for i, r in enumerate(refs)])
            if not names:
                return body
    return {"$let": {"vars": names, "in": body}}


# Operators whose result is a value or null, never missing (whatever their operands).
_NEVER_MISSING = frozenset(
    {
        "$eq",
        "$ne",
        "$gt",
        "$gte",
        "$lt",
        "$lte",
        "$cmp",
        "$and",
        "$or",
        "$not",
        "$in",
        "$add",
        "$subtract",
        "$multiply",
        "$divide",
        "$mod",
        "$abs",
        "$concat",
        "$toLower",
        "$toUpper",
        "$strLenCP",
        "$substrCP",
        "$isNumber",
        "$type",
        "$literal",
        "$size",
    }
)
# Operators whose result is one of these operand positions (a missing one stays missing).
_PASSES_ON = {
    "$cond": lambda a: a[1:] if isinstance(a, list) else [a.get("then"), a.get("else")],
    "$switch": lambda a: [b.get("then") for b in a.get("branches", [])] + [a.get("default")],
    "$let": lambda a: [a.get("in")],
    "$ifNull": lambda a: a[-1:],
}


def may_be_missing(v: Any) -> bool:
    """Whether the expression ``v`` may evaluate to missing (a field path that may be absent,
    or an operator that passes one on), as opposed to a value or null."""
    stack = [v]
    while stack:
        x = stack.pop()
        if isinstance(x, str):
            if x.startswith("$"):
                return True
        elif isinstance(x, dict) and len(x) == 1:
            ((op, args),) = x.items()
            if op in _PASSES_ON:
                stack.extend(_PASSES_ON[op](args))
            elif op not in _NEVER_MISSING:
                return True
        elif isinstance(x, dict):
            return True  # a document of fields: not looked into, so to be safe
    return False


def _variable_uses(body: Any, refs: set[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    stack = [body]
    while stack:
        x = stack.pop()
        if isinstance(x, str):
            if x in refs:
                counts[x] = counts.get(x, 0) + 1
        elif isinstance(x, dict):
            if list(x) != ["$literal"]:
                stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)
    return counts


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


_DIVISIONS: dict[str, Callable[[Any, Any], Any]] = {
    "/": lambda a, b: {"$divide": [a, b]},
    "DIV": lambda a, b: {"$trunc": [{"$divide": [a, b]}, 0]},
    "%": lambda a, b: {"$mod": [a, b]},
    "MOD": lambda a, b: {"$mod": [a, b]},
}
_BITWISE = frozenset({"&", "|", "^", "<<", ">>"})  # planner/bitwise.py
# Associative operators whose MongoDB counterpart takes any number of operands.
_VARIADIC = {"+": "$add", "*": "$multiply", "||": "$concat"}


def _variadic(operator: str, terms: list[Any]) -> Any:
    return terms[0] if len(terms) == 1 else {operator: terms}


_BOOLEAN_OPS = {"AND", "OR", "=", "<>", "<", "<=", ">", ">="}


def is_boolean(e: ast.Expr) -> bool:
    """Whether e is a predicate (its value is TRUE, FALSE or NULL by construction)."""
    if isinstance(e, ast.Literal):
        return e.value is None or isinstance(e.value, bool)
    if isinstance(e, ast.Binary):
        return e.op in _BOOLEAN_OPS
    if isinstance(e, ast.Unary):
        return e.op == "NOT"
    return isinstance(
        e,
        ast.InList
        | ast.InSubquery
        | ast.Quantified
        | ast.Between
        | ast.Like
        | ast.Regexp
        | ast.IsNull
        | ast.Exists,
    )


def nullable(e: ast.Expr) -> bool:
    """Whether e may evaluate to NULL (conservative: True unless known otherwise)."""
    stack = [e]  # NULL when any operand of a connective, comparison or unary operator may be
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Binary) and node.op in _BOOLEAN_OPS:
            stack += (node.right, node.left)
        elif isinstance(node, ast.Unary) and node.op != "~":  # ~ of a non-integer is NULL
            stack.append(node.operand)
        elif isinstance(node, ast.Literal):
            if node.value is None:
                return True
        elif isinstance(node, ast.IsNull | ast.Exists):
            continue
        elif not (isinstance(node, ast.FuncCall) and node.name == "COUNT" and node.over is None):
            return True
    return False


class ExprCompiler:
    """Compiles expressions in one scope.

    ``substitutions`` maps expressions already computed by an earlier stage (GROUP BY keys,
    aggregates) to the expression that reads them; ``grouped`` makes any other column reference
    an error (it is neither grouped nor aggregated).
    """

    def __init__(
        self,
        scope: Scope,
        bindings: Bindings,
        substitutions: dict[Any, Any] | None = None,
        grouped: bool = False,
        subquery: Callable[[ast.Expr, ExprCompiler], Any] | None = None,
    ):
        self.scope = scope
        self.bindings = bindings
        self.substitutions = substitutions or {}
        self.grouped = grouped
        self.subquery = subquery
        self._keys: dict[int, tuple[ast.Node, Any]] = {}
        # A subquery node compiled twice (e.g. ``(SELECT ...) BETWEEN a AND b`` reads it twice)
        # reads the field of one $lookup.
        self._subqueries: dict[int, tuple[ast.Node, Any]] = {}
        # Nodes whose value is already bound to a variable (see ``_reading``).
        self._fixed: dict[int, tuple[ast.Node, Any]] = {}
        self._names = 0

    # ------------------------------------------------------------ entry points
    def compile(self, e: ast.Expr) -> Any:
        if self._fixed:
            fixed = self._fixed.get(id(e))
            if fixed is not None and fixed[0] is e:
                return fixed[1]
        if self.substitutions:
            key = self.key(e)
            if key in self.substitutions:
                return self.substitutions[key]
        method = getattr(self, "_" + type(e).__name__.lower(), None)
        if method is None:
            raise PlanningError(f"{type(e).__name__} expressions are not supported here", e.pos)
        return method(e)

    def computed(self, node: ast.Expr) -> bool:
        """``node`` has a value already: a GROUP BY key or aggregate of an earlier stage, or a
        value being read through a variable. A chain of operators is not split there, so
        ``(a + b) + c`` grouped by ``a + b`` adds c to the key."""
        fixed = self._fixed.get(id(node)) if self._fixed else None
        if fixed is not None and fixed[0] is node:
            return True
        op = getattr(node, "op", None)
        # Cheap first: only a substitution of this operator can match (keys of chains would
        # otherwise be built for every prefix of a long chain).
        if op is None or not any(
            isinstance(k, tuple) and len(k) > 1 and k[1] == op for k in self.substitutions
        ):
            return False
        return self.key(node) in self.substitutions

    def truth(self, e: ast.Expr) -> Any:
        """An expression that is truthy exactly when ``e`` is TRUE (NULL and FALSE are not).

        Used where SQL only keeps TRUE rows (WHERE via $expr, HAVING, CASE WHEN): a comparison
        whose nullable side sorts lowest needs no NULL guard there, which keeps pipelines short.
        """
        if self.substitutions:
            key = self.key(e)
            if key in self.substitutions:
                return self.substitutions[key]
        if isinstance(e, ast.Binary) and e.op in ("AND", "OR"):
            parts = [self.truth(p) for p in flatten(e, e.op, self.computed)]
            return {"$and" if e.op == "AND" else "$or": parts}
        if isinstance(e, ast.Unary) and e.op == "NOT":
            return {"$eq": [self.condition(e.operand), False]}
        if not is_boolean(e):
            return {"$eq": [self.condition(e), True]}
        if isinstance(e, ast.Binary) and e.op in OPERATOR and not _has_interval(e):
            a, b = self.compile(e.left), self.compile(e.right)
            op = e.op
            # null/missing sort below every value: `a = b`, `a > b`, `a >= b` are false for a
            # NULL a when b is not NULL (and symmetrically), as SQL wants in this context.
            low_ok = {
                "=": (True, True),
                ">": (True, False),
                ">=": (True, False),
                "<": (False, True),
                "<=": (False, True),
                "<>": (False, False),
            }[op]
            guard_a = not (never_null(a) or (low_ok[0] and never_null(b)))
            guard_b = not (never_null(b) or (low_ok[1] and never_null(a)))

            def compare(refs: list[Any]) -> Any:
                guards = [
                    not_null_expr(r) for r, g in zip(refs, (guard_a, guard_b), strict=True) if g
                ]
                core = {OPERATOR[op]: refs}
                return {"$and": [*guards, core]} if guards else core

            if not (guard_a or guard_b):
                return compare([a, b])
            return bound([a, b], compare, "t")
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
        # Post-order over the nodes without a key yet (an explicit stack: long chains are deep).
        stack: list[tuple[ast.Node, bool]] = [(e, False)]
        while stack:
            node, ready = stack.pop()
            if not ready:
                known = self._keys.get(id(node))
                if known is not None and known[0] is node:
                    continue
                if isinstance(node, ast.Column):
                    self._keys[id(node)] = (node, ("column", self.scope.resolve(node)))
                elif isinstance(
                    node,
                    ast.Query | ast.ScalarSubquery | ast.Exists | ast.InSubquery | ast.Quantified,
                ):
                    self._keys[id(node)] = (node, node)
                else:
                    stack.append((node, True))
                    kids = _chain_operands(node) or child_list(node)
                    stack.extend((c, False) for c in reversed(kids))
                continue
            operands = _chain_operands(node)
            if operands:  # flat, as compiled: a nested key would be as deep as the chain
                key: Any = (
                    "chain",
                    node.op,  # type: ignore[attr-defined]
                    tuple(self._keys[id(o)][1] for o in operands),
                )
            else:
                key = (
                    type(node).__name__,
                    *(self._field_key(getattr(node, name)) for name in field_names(type(node))),
                )
            self._keys[id(node)] = (node, key)
        return self._keys[id(e)][1]

    def _field_key(self, value: Any) -> Any:
        """The key of a field whose nodes have keys already."""
        if isinstance(value, tuple):
            return tuple(self._field_key(x) for x in value)
        if isinstance(value, ast.Node):
            return self._keys[id(value)][1]
        return value

    # ------------------------------------------------------------ leaves
    def _literal(self, e: ast.Literal | ast.Param) -> Any:
        return literal(literal_value(e, self.bindings))

    _param = _literal

    def _column(self, e: ast.Column) -> Any:
        if self.grouped:
            raise PlanningError(
                f"column {display_path(e.parts)} must appear in GROUP BY or be used in an "
                "aggregate function",
                e.pos,
            )
        return self.scope.expression(self.scope.resolve(e))

    def _star(self, e: ast.Star) -> Any:
        raise PlanningError("* is only allowed in COUNT(*) and the select list", e.pos)

    # ------------------------------------------------------------ operators
    def _unary(self, e: ast.Unary) -> Any:
        if e.op == "-":
            return {"$multiply": [-1, arithmetic_operand(self.compile(e.operand))]}
        if e.op == "+":
            return self.compile(e.operand)
        if e.op == "NOT":
            v = self.condition(e.operand)
            if not nullable(e.operand):
                return {"$not": [v]}
            return self._negate(v)
        if e.op == "~":
            from queryleaf.planner.bitwise import compile_bit_not

            return compile_bit_not(self, e)
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
        if op in _VARIADIC and isinstance(e.left, ast.Binary) and e.left.op == op:
            return self._chain(e)
        if op in _BITWISE:
            from queryleaf.planner.bitwise import compile_bitwise

            return compile_bitwise(self, e)
        a, b = self.compile(e.left), self.compile(e.right)
        if op in OPERATOR:
            nullable_sides = (nullable(e.left), nullable(e.right))

            def compare(refs: list[Any]) -> Any:
                operands = [r for r, n in zip(refs, nullable_sides, strict=True) if n]
                return null_guard(operands, {OPERATOR[op]: refs})

            return bound([a, b], compare, "t") if any(nullable_sides) else compare([a, b])
        if op in ("+", "-", "*") or op in _DIVISIONS:
            a, b = arithmetic_operand(a), arithmetic_operand(b)
        if op == "+":
            return {"$add": [a, b]}
        if op == "-":
            return {"$subtract": [a, b]}
        if op == "*":
            return {"$multiply": [a, b]}
        if op in _DIVISIONS:  # NULL, not an error, for a zero divisor
            return bound(
                [a, b],
                lambda refs: {"$cond": [{"$eq": [refs[1], 0]}, None, _DIVISIONS[op](*refs)]},
                "d",
            )
        if op == "||":
            return {"$concat": [to_text(a, e.left), to_text(b, e.right)]}
        raise PlanningError(f"unknown operator {op}", e.pos)

    def _chain(self, e: ast.Binary) -> Any:
        """A left-deep chain of one associative operator (``a + b + c``, ``x || y || z``): one
        n-ary operator over every operand, so a chain of any length neither recurses nor nests.
        An INTERVAL operand of ``+`` applies to what the chain added up before it."""
        links = []
        node: ast.Expr = e
        while True:
            assert isinstance(node, ast.Binary)
            links.append(node.right)
            node = node.left
            if not (isinstance(node, ast.Binary) and node.op == e.op) or self.computed(node):
                break
        operands = [node, *reversed(links)]
        operator = _VARIADIC[e.op]
        if e.op == "||":
            return {operator: [to_text(self.compile(o), o) for o in operands]}
        if e.op != "+" or not any(isinstance(o, ast.Interval) for o in operands):
            return {operator: [arithmetic_operand(self.compile(o)) for o in operands]}
        from queryleaf.planner.functions import date_add

        first, rest = operands[0], operands[1:]
        if isinstance(first, ast.Interval):  # INTERVAL 1 DAY + d + ...
            terms = [date_add(self, self.compile(rest[0]), first, 1)]
            rest = rest[1:]
        else:
            terms = [self.compile(first)]
        for operand in rest:
            if isinstance(operand, ast.Interval):
                terms = [date_add(self, _variadic(operator, terms), operand, 1)]
            else:
                terms.append(self.compile(operand))
        return _variadic(operator, terms)

    def condition(self, e: ast.Expr) -> Any:
        """``e`` as a truth value: booleans as they are; as in MySQL and SQLite a number is
        true when not zero; other values (strings, documents) are false; NULL stays NULL."""
        v = self.compile(e)
        if is_boolean(e):
            return v
        return {
            "$let": {
                "vars": {"c": v},
                "in": {
                    "$switch": {
                        "branches": [
                            {"case": is_null_expr("$$c"), "then": None},
                            {"case": {"$isNumber": "$$c"}, "then": {"$ne": ["$$c", 0]}},
                        ],
                        "default": {"$eq": ["$$c", True]},
                    }
                },
            }
        }

    def _connective(self, e: ast.Binary) -> Any:
        parts = flatten(e, e.op, self.computed)
        compiled = [self.condition(p) for p in parts]
        if not any(nullable(p) for p in parts):
            return {"$and" if e.op == "AND" else "$or": compiled}
        decisive = e.op == "OR"  # OR: any true decides; AND: any false decides
        return bound(
            compiled,
            lambda refs: {
                "$cond": [
                    {"$or": [{"$eq": [c, decisive]} for c in refs]},
                    decisive,
                    {"$cond": [{"$or": [is_null_expr(c) for c in refs]}, None, not decisive]},
                ]
            },
            "p",
        )

    def _inlist(self, e: ast.InList) -> Any:
        v = self.compile(e.expr)
        if all(isinstance(i, ast.Literal | ast.Param) for i in e.items):
            items = [self.compile(i) for i in e.items]
            present = [c for c in items if c is not None]
            if len(present) == len(items):

                def core(ref: Any) -> Any:
                    found = {"$in": [ref, present]}
                    return {"$not": [found]} if e.negated else found
            else:  # a NULL in the list: a miss is unknown, not false

                def core(ref: Any) -> Any:
                    return {"$cond": [{"$in": [ref, present]}, not e.negated, None]}

            if not nullable(e.expr):
                return core(v)
            return bound([v], lambda refs: null_guard(refs, core(refs[0])), "i")

        def ors(refs: list[Any]) -> Any:
            chain = ast.Binary("=", e.expr, e.items[0], e.pos)
            for item in e.items[1:]:
                chain = ast.Binary("OR", chain, ast.Binary("=", e.expr, item, e.pos), e.pos)
            with self._reading(e.expr, refs[0]):
                return self.compile(chain)

        result = bound([v], ors, self._fresh("i"), pure=False)
        return self._negate(result) if e.negated else result

    def _negate(self, v: Any) -> Any:
        return bound([v], lambda refs: null_guard(refs, {"$not": [refs[0]]}), "n")

    def _between(self, e: ast.Between) -> Any:
        def both(refs: list[Any]) -> Any:
            conjunction = ast.Binary(
                "AND",
                ast.Binary(">=", e.expr, e.low, e.pos),
                ast.Binary("<=", e.expr, e.high, e.pos),
                e.pos,
            )
            with self._reading(e.expr, refs[0]):
                return self.compile(conjunction)

        result = bound([self.compile(e.expr)], both, self._fresh("b"), pure=False)
        return self._negate(result) if e.negated else result

    def _fresh(self, prefix: str) -> str:
        """A variable prefix no other binding of this compiler uses: the body of a
        ``_reading`` binding compiles subexpressions, which must not capture its name."""
        self._names += 1
        return f"{prefix}{self._names}_"

    @contextlib.contextmanager
    def _reading(self, node: ast.Expr, value: Any) -> Iterator[None]:
        """Within the block, ``node`` compiles to ``value`` (the variable holding its value):
        an operand that a rewrite repeats (BETWEEN's, a CASE operand) is compiled once."""
        saved = self._fixed.get(id(node))
        self._fixed[id(node)] = (node, value)
        try:
            yield
        finally:
            if saved is None:
                del self._fixed[id(node)]
            else:
                self._fixed[id(node)] = saved

    def _like(self, e: ast.Like) -> Any:
        pattern = self.constant_string(e.pattern, "LIKE pattern")
        escape = None
        if e.escape is not None:
            escape = self.constant_string(e.escape, "ESCAPE")
            if len(escape) != 1:
                raise PlanningError("ESCAPE must be a single character", e.escape.pos)
        v = self.compile(e.expr)
        match = {
            "$regexMatch": {
                "input": "$$s",
                "regex": like_to_regex(pattern, escape),
                "options": "si" if e.case_insensitive else "s",
            }
        }
        return _string_match(v, match, e.negated)

    def _regexp(self, e: ast.Regexp) -> Any:
        pattern = self.constant_string(e.pattern, "REGEXP pattern")
        v = self.compile(e.expr)
        return _string_match(v, {"$regexMatch": {"input": "$$s", "regex": pattern}}, e.negated)

    def _isnull(self, e: ast.IsNull) -> Any:
        v = self.compile(e.expr)
        return not_null_expr(v) if e.negated else is_null_expr(v)

    def _case(self, e: ast.Case) -> Any:
        def switch(refs: list[Any]) -> Any:
            branches = []
            for w in e.whens:
                if e.operand is None:
                    test = self.truth(w.condition)
                else:
                    with self._reading(e.operand, refs[0]):
                        test = self.truth(ast.Binary("=", e.operand, w.condition, w.pos))
                branches.append({"case": test, "then": self.compile(w.result)})
            # CASE ... ELSE CASE WHEN ... END END: the inner branches continue the same
            # $switch, so such a chain is one level of any length.
            tail = e.else_
            while isinstance(tail, ast.Case) and tail.operand is None:
                branches += [
                    {"case": self.truth(w.condition), "then": self.compile(w.result)}
                    for w in tail.whens
                ]
                tail = tail.else_
            default = self.compile(tail) if tail is not None else None
            return {"$switch": {"branches": branches, "default": default}}

        if e.operand is None:
            return switch([None])
        return bound([self.compile(e.operand)], switch, self._fresh("k"), pure=False)

    def _cast(self, e: ast.Cast) -> Any:
        from queryleaf.planner.functions import compile_cast

        return compile_cast(self, e)

    def _extract(self, e: ast.Extract) -> Any:
        from queryleaf.planner.functions import compile_extract

        return compile_extract(self, e)

    def _interval(self, e: ast.Interval) -> Any:
        raise PlanningError(
            "INTERVAL is only allowed added to or subtracted from a date "
            "(e.g. NOW() - INTERVAL 1 HOUR) or in DATE_ADD/DATE_SUB",
            e.pos,
        )

    def _jsonarrow(self, e: ast.JsonArrow) -> Any:
        from queryleaf.planner.functions import json_path_get

        return json_path_get(self.compile(e.expr), e.path, e.pos)

    def _funccall(self, e: ast.FuncCall) -> Any:
        if e.over is not None:
            raise PlanningError(
                f"window function {e.name}(...) OVER (...) is not supported yet", e.pos
            )
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
    _quantified = _scalarsubquery

    # ------------------------------------------------------------ helpers
    def constant_string(self, e: ast.Expr | None, what: str) -> str:
        try:
            value = literal_value(e, self.bindings) if e is not None else None
        except NotConstant:
            value = None
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


def path_set(base: Any, parts: tuple[str, ...] | list[str], value: Any) -> Any:
    """``base`` (a document expression) with ``value`` stored at ``parts``, each part a field
    name taken literally ($setField): for names an update path cannot hold ($-prefixed,
    dotted). Documents missing on the way are created, as ``$set`` does."""
    head, rest = parts[0], parts[1:]
    if rest:
        inner = {"$ifNull": [{"$getField": {"field": {"$literal": head}, "input": "$$d"}}, {}]}
        value = path_set(inner, rest, value)
        return {
            "$let": {
                "vars": {"d": base},
                "in": {"$setField": {"field": {"$literal": head}, "input": "$$d", "value": value}},
            }
        }
    return {"$setField": {"field": {"$literal": head}, "input": base, "value": value}}


def _has_interval(e: ast.Binary) -> bool:
    return isinstance(e.left, ast.Interval) or isinstance(e.right, ast.Interval)


_CHAINED = frozenset({"AND", "OR", *_VARIADIC})


def _chain_operands(node: ast.Node) -> list[ast.Expr] | None:
    """The operands of a left-deep chain of AND, OR, +, * or || (at least three), else None."""
    if not (
        isinstance(node, ast.Binary)
        and node.op in _CHAINED
        and isinstance(node.left, ast.Binary)
        and node.left.op == node.op
    ):
        return None
    rights = []
    current: ast.Expr = node
    while isinstance(current, ast.Binary) and current.op == node.op:
        rights.append(current.right)
        current = current.left
    return [current, *reversed(rights)]


def flatten(
    e: ast.Expr, op: str, whole: Callable[[ast.Expr], bool] | None = None
) -> list[ast.Expr]:
    """The operands of a chain of ``op`` (AND, OR), in order: ``a AND b AND c`` → a, b, c;
    a node below ``e`` for which ``whole`` says so stays one operand."""
    out, stack = [], [e]
    while stack:
        node = stack.pop()
        if (
            isinstance(node, ast.Binary)
            and node.op == op
            and (node is e or whole is None or not whole(node))
        ):
            stack += (node.right, node.left)
        else:
            out.append(node)
    return out


def _string_match(v: Any, match: dict[str, Any], negated: bool) -> Any:
    """A pattern test of v, for strings only: NULL for NULL and for non-strings, so that
    neither LIKE nor NOT LIKE holds for a number (as in a WHERE filter)."""
    test = {
        "$cond": [
            {"$eq": [{"$type": "$$s"}, "string"]},
            {"$not": [match]} if negated else match,
            None,
        ]
    }
    return {"$let": {"vars": {"s": v}, "in": {"$cond": [is_null_expr("$$s"), None, test]}}}


def to_text(v: Any, e: ast.Expr) -> Any:
    """A value as a string for concatenation / pattern matching (NULL stays NULL)."""
    if isinstance(e, ast.Literal) and isinstance(e.value, str):
        return v
    return {"$toString": v}
