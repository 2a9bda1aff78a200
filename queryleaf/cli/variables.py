"""``queryleaf run -v name=value``: values for the ``:name`` placeholders of the statements.

A value is read as JSON when it is JSON — ``42``, ``1.5``, ``true``, ``null``, ``"42"``,
``{"a": [1, 2]}`` — and as text otherwise (``-v status=open`` is the string ``'open'``). NaN and
Infinity are text too. Like every parameter it is bound as a value: never spliced into the SQL,
never read as an operator or a field path (``-v f='{"$gt": 1}'`` is a document with a field
``$gt``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

import click

from queryleaf.sql import ast
from queryleaf.sql.walk import walk

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")  # as in the grammar's NAMED_PARAM


def parse_variables(assignments: Iterable[str]) -> dict[str, Any]:
    """``["n=3", "s=open"]`` → ``{"n": 3, "s": "open"}``; the last of a name given twice wins."""
    variables: dict[str, Any] = {}
    for assignment in assignments:
        name, sep, text = assignment.partition("=")
        if not sep or not _NAME.match(name):
            raise click.BadParameter(
                f"{assignment!r}: expected NAME=VALUE, NAME a parameter name (letters, digits, _)",
                param_hint="'-v' / '--var'",
            )
        variables[name] = json_or_text(text)
    return variables


def json_or_text(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_not_a_number)
    except ValueError:
        return text


def _not_a_number(constant: str) -> Any:
    raise ValueError(constant)  # NaN, Infinity: kept as text


def named_placeholders(statement: ast.Statement) -> set[str]:
    return {n.name for n in walk(statement) if isinstance(n, ast.Param) and n.name is not None}


def params_for(statement: ast.Statement, variables: dict[str, Any]) -> dict[str, Any] | None:
    """The variables ``statement`` uses (a missing one is the planner's error, with its
    position); None when it has no ``:name`` placeholder."""
    names = named_placeholders(statement)
    if not names:
        return None
    return {name: variables[name] for name in names if name in variables}
