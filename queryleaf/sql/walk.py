"""Generic traversal of AST nodes, iterative (no recursion limit on long or deep statements)."""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from queryleaf.sql import ast

_T = TypeVar("_T")


def per_class(fn: Callable[[type], _T]) -> Callable[[type], _T]:
    """``functools.cache`` for a function of a class. Typed as taking a ``type``: the cache's own
    signature asks for ``Hashable`` arguments, which type checkers deny to the node classes
    (their instances define ``__hash__``, so the class's unbound ``__hash__`` does not fit)."""
    return functools.cache(fn)


@per_class
def field_names(cls: type) -> tuple[str, ...]:
    """The fields of an AST class (all but ``pos``), cached."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.name != "pos")


_NODE_CLASSES = frozenset(
    name
    for name, value in vars(ast).items()
    if isinstance(value, type) and issubclass(value, ast.Node)
)


@per_class
def node_fields(cls: type) -> tuple[str, ...]:
    """The fields of an AST class whose annotation names a node class (``Expr``,
    ``tuple[OrderItem, ...]``...): the only ones that can hold child nodes. Leaves (Literal,
    Column, Param...) have none, so walks skip them at the cost of one lookup."""
    return tuple(name for name, _ in _field_shapes(cls))


@per_class
def _field_shapes(cls: type) -> tuple[tuple[str, int], ...]:
    """(name, shape) of the node fields: 0 a node or None, 1 a tuple of nodes, 2 a tuple of
    tuples of nodes (INSERT rows), as the annotations say."""
    out = []
    for f in dataclasses.fields(cls):
        words = re.findall(r"\w+", str(f.type))
        if f.name == "pos" or not _NODE_CLASSES.intersection(words):
            continue
        out.append((f.name, words[:2].count("tuple")))
    return tuple(out)


def child_list(node: object) -> list[ast.Node]:
    """Direct child nodes of an AST node (through tuples of nodes), in source order."""
    if not isinstance(node, ast.Node):
        return []
    out: list[ast.Node] = []
    for name, shape in _field_shapes(type(node)):
        value = getattr(node, name)
        if value is None:
            continue
        if shape == 0:
            out.append(value)
        elif shape == 1:
            out.extend(value)
        else:
            for row in value:
                out.extend(row)
    return out


def walk(node: object) -> Iterator[object]:
    """Every node under ``node`` (itself included), depth first, in source order."""
    stack = [node]
    pop, extend = stack.pop, stack.extend
    while stack:
        current = pop()
        yield current
        if _has_children(type(current)):
            extend(reversed(child_list(current)))


@per_class
def _has_children(cls: type) -> bool:
    return issubclass(cls, ast.Node) and bool(node_fields(cls))


# Nodes whose columns belong to another scope (all but the left side of ``x IN (SELECT ...)``).
_NESTED_QUERIES = (ast.Query, ast.ScalarSubquery, ast.Exists, ast.InSubquery, ast.Quantified)
# Subquery predicates whose left operand belongs to the enclosing query.
_WITH_OPERAND = (ast.InSubquery, ast.Quantified)


def table_names(statement: object) -> frozenset[str]:
    """The tables a statement names (FROM items that are not its own WITH queries)."""
    nodes = list(walk(statement))
    ctes = {n.name for n in nodes if isinstance(n, ast.Cte)}
    return frozenset(n.name for n in nodes if isinstance(n, ast.TableRef)) - ctes


def has_subquery(e: object) -> bool:
    """Whether expression ``e`` contains a subquery (of any kind)."""
    return any(isinstance(node, _NESTED_QUERIES) for node in walk_expr(e))


def walk_expr(node: object) -> Iterator[object]:
    """Nodes of one expression, not descending into subqueries."""
    stack = [node]
    pop, extend = stack.pop, stack.extend
    while stack:
        current = pop()
        yield current
        cls = type(current)
        if not _has_children(cls):
            continue
        if _is_nested_query(cls):
            if cls is ast.InSubquery or cls is ast.Quantified:
                stack.append(current.expr)  # type: ignore[attr-defined]
            continue
        extend(reversed(child_list(current)))


@per_class
def _is_nested_query(cls: type) -> bool:
    return issubclass(cls, _NESTED_QUERIES)


def replace_columns(expr: ast.Expr, fn: Callable[[ast.Column], ast.Expr]) -> ast.Expr:
    """``expr`` with every column ``c`` replaced by ``fn(c)``; subqueries are left as they are
    (their columns belong to another scope). Nodes without a replaced column are kept as they
    are. An explicit stack: nodes are rebuilt after their children (post-order)."""
    done: dict[int, Any] = {}  # id of a node → the node or its rebuilt copy
    stack: list[tuple[object, bool]] = [(expr, False)]
    while stack:
        node, expanded = stack.pop()
        if isinstance(node, ast.Column):
            done[id(node)] = fn(node)
            continue
        if not isinstance(node, ast.Node) or (
            isinstance(node, _NESTED_QUERIES) and not isinstance(node, _WITH_OPERAND)
        ):
            done[id(node)] = node
            continue
        if not expanded:
            stack.append((node, True))
            kids = [node.expr] if isinstance(node, _WITH_OPERAND) else _expr_children(node)
            stack.extend((kid, False) for kid in reversed(kids))
            continue
        done[id(node)] = _rebuilt(node, done)
    return done[id(expr)]


def _expr_children(node: ast.Node) -> list[object]:
    """The nodes replace_columns rebuilds below ``node``: direct fields and items of tuples."""
    out: list[object] = []
    for name in node_fields(type(node)):
        value = getattr(node, name)
        if isinstance(value, ast.Node):
            out.append(value)
        elif isinstance(value, tuple):
            out.extend(v for v in value if isinstance(v, ast.Node))
    return out


def _rebuilt(node: ast.Node, done: dict[int, Any]) -> object:
    if isinstance(node, _WITH_OPERAND):
        left = done[id(node.expr)]
        return node if left is node.expr else dataclasses.replace(node, expr=left)
    changes = {}
    for name in node_fields(type(node)):
        value = getattr(node, name)
        if isinstance(value, ast.Node):
            new = done[id(value)]
        elif isinstance(value, tuple):
            new = tuple(done[id(v)] if isinstance(v, ast.Node) else v for v in value)
            if all(a is b for a, b in zip(new, value, strict=True)):
                new = value
        else:
            continue
        if new is not value:
            changes[name] = new
    return dataclasses.replace(node, **changes) if changes else node
