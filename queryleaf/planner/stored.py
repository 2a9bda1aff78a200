"""Filters on stored documents that hold several rows (the event log's entries).

A table function can read rows kept grouped in stored documents (``events`` arrays unwound by
its pipeline). A WHERE conjunct can then also be applied to the stored documents, before the
unwind, when the documents carry what it needs:

* columns every row of a document shares, stored once at its top level (``subscription_id``):
  the conjunct applies to the document as written;
* ranges: the least and greatest value of a column among the document's rows
  (``event_timestamp``): ``col >= x`` implies ``greatest >= x``, ``col < x`` implies
  ``least < x``, and so on — a document failing that holds no row that passes.

The conjuncts stay in WHERE: these only narrow what is unwound.
"""

from __future__ import annotations

from collections.abc import Mapping

from queryleaf.planner.comparisons import FLIPPED
from queryleaf.sql import ast
from queryleaf.sql.walk import has_subquery, walk_expr


def document_conditions(
    conjuncts: list[ast.Expr],
    alias: str,
    alone: bool,
    shared: frozenset[str],
    ranges: Mapping[str, tuple[str, str]],
) -> list[ast.Expr]:
    """Conditions on the stored documents implied by ``conjuncts`` (over table ``alias``;
    ``alone``: it is the query's only table, so unqualified columns are its own)."""

    def own(column: ast.Column) -> str | None:
        parts = column.parts
        if len(parts) == 1 and alone and isinstance(parts[0], str):
            return parts[0]
        if len(parts) == 2 and parts[0] == alias and isinstance(parts[1], str):
            return parts[1]
        return None

    def columns(e: ast.Expr) -> list[ast.Column]:
        return [node for node in walk_expr(e) if isinstance(node, ast.Column)]

    def only_shared(e: ast.Expr) -> bool:
        return not has_subquery(e) and all(own(c) in shared for c in columns(e))

    def constant(e: ast.Expr) -> bool:
        return not has_subquery(e) and not columns(e)

    def ranged(e: ast.Expr) -> tuple[str, str] | None:
        name = own(e) if isinstance(e, ast.Column) else None
        return ranges.get(name) if name is not None else None

    def field(name: str) -> ast.Column:
        return ast.Column((alias, name))

    def implied(e: ast.Expr) -> ast.Expr | None:
        if isinstance(e, ast.Binary) and e.op in FLIPPED and e.op != "<>":
            left, op, right = e.left, e.op, e.right
            if ranged(right) and not ranged(left):
                left, op, right = right, FLIPPED[op], left
            bounds = ranged(left)
            if bounds is None or not constant(right):
                return None
            least, greatest = bounds
            if op in (">", ">="):
                condition = ast.Binary(op, field(greatest), right)
            elif op in ("<", "<="):
                condition = ast.Binary(op, field(least), right)
            else:
                condition = ast.Binary(
                    "AND",
                    ast.Binary("<=", field(least), right),
                    ast.Binary(">=", field(greatest), right),
                )
        elif isinstance(e, ast.Between) and not e.negated:
            bounds = ranged(e.expr)
            if bounds is None or not (constant(e.low) and constant(e.high)):
                return None
            least, greatest = bounds
            condition = ast.Binary(
                "AND",
                ast.Binary(">=", field(greatest), e.low),
                ast.Binary("<=", field(least), e.high),
            )
        else:
            return None
        # A document without the bounds (none of its rows has a value, or it was written
        # before they were recorded) is kept: its rows are filtered after the unwind.
        return ast.Binary("OR", condition, ast.IsNull(field(greatest)))

    out = []
    for conjunct in conjuncts:
        if only_shared(conjunct):
            out.append(conjunct)
        elif (condition := implied(conjunct)) is not None:
            out.append(condition)
    return out
