"""The result of one statement."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Result:
    """Rows (dicts keyed by column name, every column present) or a write's row count.

    ``rowcount`` is the number of rows returned for queries and the number of documents
    inserted/matched/deleted for writes; -1 when not applicable. ``message`` is a short status
    line for statements without rows (e.g. ``CREATE EVENT_SUBSCRIPTION``). ``commands`` holds the
    server commands for EXPLAIN.
    """

    columns: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    rowcount: int = -1
    statement: str = ""
    message: str | None = None
    commands: list[dict[str, Any]] | None = None
    elapsed_ms: float = 0.0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def scalar(self) -> Any:
        """The first column of the first row (None when there are no rows)."""
        if not self.rows or not self.columns:
            return None
        return self.rows[0][self.columns[0]]
