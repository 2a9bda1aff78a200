"""Generic traversal of AST nodes."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator

from queryleaf.sql import ast


@functools.cache
def field_names(cls: type) -> tuple[str, ...]:
    """The fields of an AST class that can hold child nodes (all but ``pos``), cached."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.name != "pos")


def children(node: object) -> Iterator[object]:
    """Direct child nodes of an AST node (through tuples of nodes)."""
    if not isinstance(node, ast.Node):
        return
    for name in field_names(type(node)):
        value = getattr(node, name)
        if isinstance(value, tuple):
            for item in value:
                if isinstance(item, tuple):
                    yield from (x for x in item if isinstance(x, ast.Node))
                elif isinstance(item, ast.Node):
                    yield item
        elif isinstance(value, ast.Node):
            yield value


def walk(node: object) -> Iterator[object]:
    """Every node under ``node`` (itself included), depth first, in source order."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(list(children(current))))


# Nodes whose columns belong to another scope (all but the left side of ``x IN (SELECT ...)``).
_NESTED_QUERIES = (ast.Query, ast.ScalarSubquery, ast.Exists, ast.InSubquery)


def has_subquery(e: object) -> bool:
    """Whether expression ``e`` contains a subquery (of any kind)."""
    return any(isinstance(node, _NESTED_QUERIES) for node in walk_expr(e))


def walk_expr(node: object) -> Iterator[object]:
    """Nodes of one expression, not descending into subqueries."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        if isinstance(current, _NESTED_QUERIES):
            if isinstance(current, ast.InSubquery):
                stack.append(current.expr)
            continue
        stack.extend(reversed(list(children(current))))


def replace_columns(expr: ast.Expr, fn: Callable[[ast.Column], ast.Expr]) -> ast.Expr:
    """``expr`` with every column ``c`` replaced by ``fn(c)``; subqueries are left as they are
    (their columns belong to another scope)."""
    if isinstance(expr, ast.Column):
        return fn(expr)
    if isinstance(expr, ast.InSubquery):
        left = replace_columns(expr.expr, fn)
        return expr if left is expr.expr else dataclasses.replace(expr, expr=left)
    if not isinstance(expr, ast.Node) or isinstance(expr, _NESTED_QUERIES):
        return expr
    changes = {}
    for name in field_names(type(expr)):
        value = getattr(expr, name)
        if isinstance(value, ast.Node):
            new = replace_columns(value, fn)
        elif isinstance(value, tuple):
            new = tuple(replace_columns(v, fn) if isinstance(v, ast.Node) else v for v in value)
        else:
            continue
        if new is not value:
            changes[name] = new
    return dataclasses.replace(expr, **changes) if changes else expr
