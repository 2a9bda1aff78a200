"""Evaluation of constant expressions (INSERT values, subscription options) at plan time.

Only literals, parameters, unary minus, JSON_OBJECT, JSON_ARRAY, OBJECTID('hex') and TRUE/FALSE
are constants; anything else (NOW(), arithmetic on columns...) is computed by the server.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from bson import ObjectId

from queryleaf.errors import PlanningError
from queryleaf.planner.params import Bindings
from queryleaf.sql import ast


class NotConstant(Exception):
    def __init__(self, node: ast.Node):
        super().__init__(type(node).__name__)
        self.node = node


def literal_value(e: ast.Expr, bindings: Bindings) -> Any:
    """The value of a literal or a parameter (the one place that reads them; a DECIMAL literal
    is a double, as the server computes), or NotConstant."""
    if isinstance(e, ast.Literal):
        value = e.value
    elif isinstance(e, ast.Param):
        value = bindings.value(e)
    else:
        raise NotConstant(e)
    return float(value) if isinstance(value, Decimal) else value


def constant(e: ast.Expr, bindings: Bindings) -> Any:
    """The Python/BSON value of a constant expression, or NotConstant."""
    if isinstance(e, ast.Literal | ast.Param):
        return literal_value(e, bindings)
    if isinstance(e, ast.Unary) and e.op in ("-", "+"):
        v = constant(e.operand, bindings)
        if isinstance(v, int | float) and not isinstance(v, bool):
            return -v if e.op == "-" else v
        raise NotConstant(e)
    if isinstance(e, ast.FuncCall) and e.over is None and not e.distinct:
        if e.name == "JSON_ARRAY":
            return [constant(a, bindings) for a in e.args]
        if e.name == "JSON_OBJECT":
            if len(e.args) % 2:
                raise PlanningError(
                    "JSON_OBJECT needs key/value pairs (an even number of arguments)", e.pos
                )
            out = {}
            for k, v in zip(e.args[::2], e.args[1::2], strict=True):
                key = constant(k, bindings)
                if not isinstance(key, str):
                    raise PlanningError("JSON_OBJECT keys must be strings", k.pos)
                out[key] = constant(v, bindings)
            return out
        if e.name == "OBJECTID" and len(e.args) == 1:
            v = constant(e.args[0], bindings)
            if not isinstance(v, str) or not ObjectId.is_valid(v):
                raise PlanningError(f"{v!r} is not a valid ObjectId (24 hex digits)", e.pos)
            return ObjectId(v)
    raise NotConstant(e)
