"""How deeply the MongoDB commands of a plan nest, checked against what the server accepts.

MongoDB refuses BSON nested deeper than 200 levels (its ``bsonValidate``), and the encoders
on the way (the driver's, EXPLAIN's mongosh and JSON renderers) recurse once or a few times per
level. The SQL nesting limit (sql/limits.py) bounds the statement; a few constructs compile to
several levels each (a CASE used as a condition, a subquery's $lookup), so the compiled form
is checked as well: refused here, with the statement's position, rather than by the server.
"""

from __future__ import annotations

from typing import Any

from queryleaf import plan
from queryleaf.errors import PlanningError, Position

MAX_COMMAND_DEPTH = 200


def check_command_depth(p: plan.Plan, pos: Position | None) -> None:
    """Every plan's commands() is built from the statement alone (no I/O), so the commands
    checked are the ones EXPLAIN shows and the executor sends."""
    for command in p.commands():
        depth = nesting(command)
        if depth > MAX_COMMAND_DEPTH:
            raise PlanningError(
                f"statement nested too deeply: its MongoDB command nests {depth} "
                f"levels, MongoDB accepts {MAX_COMMAND_DEPTH} (see Limits in "
                "docs/semantics.md)",
                pos,
            )


def nesting(value: Any) -> int:
    """The levels of documents and arrays in ``value`` (a scalar: 0), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        current, depth = pop()
        if isinstance(current, dict):
            items: Any = current.values()
        elif isinstance(current, list | tuple):
            items = current
        else:
            continue
        if depth > deepest:
            deepest = depth
        for item in items:
            if isinstance(item, dict | list | tuple):
                push((item, depth + 1))
    return deepest
