"""Name resolution: which table a column belongs to and where it lives in the row document.

A single-table query keeps the collection's documents as rows, so ``o.customer.name`` and
``customer.name`` both read the field ``customer.name``. After a join each table's document is
nested under its alias (``{o: {...}, c: {...}}``). Derived tables and CTEs have known columns.
A column of an enclosing query (a correlated subquery) becomes a ``$$variable`` bound by the
subquery's ``$lookup``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from queryleaf.errors import ErrorCode, PlanningError
from queryleaf.planner import references
from queryleaf.sql import ast

# The prefix of the variables that bind an outer query's columns in a $lookup's let.
OUTER_VARIABLE = "o_"


def is_outer_variable(v: Any) -> bool:
    return isinstance(v, str) and v.startswith("$$" + OUTER_VARIABLE)


@dataclass
class Table:
    alias: str  # the name that qualifies its columns
    prefix: tuple[str, ...] = ()  # where its fields live in the row document
    columns: dict[str, str] | None = None  # known columns (name → key), None: schemaless
    label: str = ""  # how messages name an anonymous table
    # The stored collection or view read as is (its fields are sampled, not declared: see
    # planner/references.py); None for derived tables, CTEs and system tables.
    collection: str | None = None

    def at(self, prefix: tuple[str, ...]) -> Table:
        """The same table with its fields under ``prefix`` of the row document."""
        return replace(self, prefix=prefix)


@dataclass(frozen=True)
class Resolved:
    """A column: a field path of the current row, or a variable bound from an outer query."""

    table: str
    path: tuple[str | int, ...]
    variable: str | None = None  # set for outer (correlated) references


def is_plain_field(part: str | int) -> bool:
    """Whether a field name can be written in a MongoDB path as is: a name that starts with
    ``$`` would be read as an operator or variable, one with ``.`` as two fields."""
    return isinstance(part, str) and bool(part) and not part.startswith("$") and "." not in part


def field_path(parts: tuple[str | int, ...]) -> str | None:
    """The dotted MongoDB path of ``parts``, or None when a name cannot be written in a path
    (then the field is read with $getField and written with $setField)."""
    if not all(is_plain_field(p) or isinstance(p, int) for p in parts):
        return None
    return ".".join(str(p) for p in parts)


def display_path(parts: tuple[str | int, ...]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


@dataclass
class Scope:
    tables: list[Table] = field(default_factory=list)
    outer: Scope | None = None
    allow_columns: bool = True
    lets: dict[str, Any] = field(default_factory=dict)  # variable → expression in the outer row

    @classmethod
    def single(
        cls, alias: str | None, columns: dict[str, str] | None = None, outer: Scope | None = None
    ) -> Scope:
        return cls([Table(alias or "", (), columns)], outer)

    def aliases(self) -> list[str]:
        return [t.alias for t in self.tables if t.alias]

    def table(self, alias: str) -> Table | None:
        return next((t for t in self.tables if t.alias == alias), None)

    # ------------------------------------------------------------ resolution
    def resolve(self, col: ast.Column) -> Resolved:
        found = self._find(col)
        if found is not None:
            return found
        if self.outer is not None:
            inner = self.outer.resolve(col)
            value = self.outer.expression(inner)
            # Named by what it reads, so that the variables of two scopes merged into one
            # $lookup's let agree: one name, one value (merge_lets checks it).
            var = f"{OUTER_VARIABLE}{_safe(inner.table)}_{_safe(display_path(inner.path))}"
            for name, expr in self.lets.items():
                if expr == value:
                    var = name
                    break
            self.lets[var] = value
            return Resolved(inner.table, inner.path, var)
        raise self._unknown(col)

    def _find(self, col: ast.Column) -> Resolved | None:
        if not self.allow_columns:
            raise PlanningError(
                f"column {display_path(col.parts)} cannot be used here (no FROM)", col.pos
            )
        parts = col.parts
        if isinstance(parts[0], int):
            raise PlanningError("a column name cannot start with an array index", col.pos)
        if len(parts) > 1 and isinstance(parts[0], str):
            t = self.table(parts[0])
            if t is not None:
                return self._in_table(t, parts[1:], col)
            if self.outer is not None and self.outer.knows_alias(parts[0]):
                return None
        if len(self.tables) == 1:
            return self._in_table(self.tables[0], parts, col)
        candidates = [t for t in self.tables if t.columns is not None and parts[0] in t.columns]
        unknown = [t for t in self.tables if t.columns is None]
        if len(candidates) == 1:
            return self._in_table(candidates[0], parts, col)
        if not candidates and len(unknown) == 1:
            return self._in_table(unknown[0], parts, col)
        if candidates or unknown:
            raise PlanningError(
                f"column {display_path(parts)} is ambiguous: qualify it with one of "
                f"{', '.join(self.aliases())}",
                col.pos,
                error_code=ErrorCode.AMBIGUOUS_COLUMN,
            )
        return None

    def knows_alias(self, name: str) -> bool:
        return self.table(name) is not None or (
            self.outer is not None and self.outer.knows_alias(name)
        )

    def _in_table(self, t: Table, rest: tuple[str | int, ...], col: ast.Column) -> Resolved:
        if not rest:
            raise PlanningError(
                f"{col.parts[0]} is a table; name one of its columns ({col.parts[0]}.column)",
                col.pos,
            )
        if t.columns is not None:
            head = rest[0]
            if head not in t.columns:
                known = ", ".join(t.columns) or "none"
                raise PlanningError(
                    f"{t.alias or t.label or 'the subquery'} has no column "
                    f"{display_path(rest)} (columns: {known})",
                    col.pos,
                    error_code=ErrorCode.UNKNOWN_COLUMN,
                )
            rest = (*t.columns[head].split("."), *rest[1:])  # a key is a path we chose
        if t.collection is not None:
            qualified = len(rest) < len(col.parts)  # the table's name came first
            references.note(
                self, t.collection, t.alias, rest, display_path(col.parts), qualified, col.pos
            )
        return Resolved(t.alias, (*t.prefix, *rest))

    def _unknown(self, col: ast.Column) -> PlanningError:
        return PlanningError(
            f"unknown column {display_path(col.parts)}",
            col.pos,
            error_code=ErrorCode.UNKNOWN_COLUMN,
        )

    def expression(self, r: Resolved) -> Any:
        """The aggregation expression reading a resolved column in this scope's rows."""
        from queryleaf.planner.expressions import path_get

        if r.variable is not None:
            return "$$" + r.variable
        first = 0
        while first < len(r.path) and is_plain_field(r.path[first]):
            first += 1
        if first == 0:  # the first field's name is not a path: read it from the whole row
            return path_get("$$CURRENT", r.path)
        head = ".".join(str(p) for p in r.path[:first])
        return path_get("$" + head, r.path[first:])


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name) or "t"


def merge_lets(into: dict[str, Any], new: dict[str, Any]) -> None:
    """Add the variables ``new`` binds to ``into``; one name bound to two values would make one
    of them read the other's value: refused (a planner bug, never a wrong answer)."""
    for name, value in new.items():
        if name in into and into[name] != value:
            raise PlanningError(
                f"internal: $lookup variable {name} would be bound twice; "
                "please report this statement"
            )
        into[name] = value
