"""Statements planned by the packages that own them.

A package that adds statements to the language (the event runtime adds the subscription
statements when queryleaf is imported) registers a planning function per AST node type here;
the planner looks the statement's type up and knows nothing of the package. The function gets
the statement and its parameter bindings and returns the plan (usually a ``plan.SelfRunning``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from queryleaf import plan
from queryleaf.planner.params import Bindings
from queryleaf.sql import ast

StatementPlanner = Callable[[Any, Bindings], plan.Plan]
S = TypeVar("S", bound=ast.Statement)

_PLANNERS: dict[type[ast.Statement], StatementPlanner] = {}


def register_statement(node_type: type[S], planner: Callable[[S, Bindings], plan.Plan]) -> None:
    _PLANNERS[node_type] = planner


def statement_planner(node_type: type[ast.Statement]) -> StatementPlanner | None:
    return _PLANNERS.get(node_type)
