"""The result of one statement."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from queryleaf.column_types import ColumnType
from queryleaf.errors import ErrorCode, Position, QueryLeafError


@dataclass(frozen=True)
class QueryWarning:
    """Something about a statement that ran but may not do what was meant (e.g. it reads a
    column that no sampled document has: see docs/semantics.md)."""

    message: str
    position: Position | None = None

    def __str__(self) -> str:
        return f"{self.message} at {self.position}" if self.position else self.message


REPR_COLUMNS = 5  # the columns a repr names


class Result:
    """Rows (dicts keyed by column name) or a write's row count.

    A query's rows stream from the server cursor: iterating a fresh Result reads them batch by
    batch without keeping them, so memory does not grow with the result size (such a result can
    be iterated once). ``rows``, ``len()``, ``rowcount`` and ``columns`` of a ``SELECT *`` read
    (and keep) all remaining rows. Every row holds every column; in a streamed ``SELECT *`` a row
    holds the fields of its own document, since the other documents are not known yet.

    ``rowcount`` is the number of rows returned for queries and the number of documents
    inserted/matched/deleted for writes; -1 when not applicable. ``message`` is a short status
    line for statements without rows. ``commands`` holds the server commands for EXPLAIN.
    ``warnings`` lists QueryWarnings about the statement (empty when there are none).
    """

    def __init__(
        self,
        columns: list[str] | None = None,
        rows: list[dict[str, Any]] | None = None,
        rowcount: int = -1,
        statement: str = "",
        message: str | None = None,
        commands: list[dict[str, Any]] | None = None,
        elapsed_ms: float = 0.0,
        stream: Iterator[dict[str, Any]] | None = None,
    ):
        self._columns = columns
        self._rows = rows
        self._stream = stream
        self._streamed = 0  # rows handed out by a streaming iteration
        self._rowcount = rowcount
        self.statement = statement
        self.message = message
        self.commands = commands
        self.elapsed_ms = elapsed_ms
        self.warnings: list[QueryWarning] = []
        # The columns whose type the planner knows (the others' come from their values).
        self.declared_types: dict[str, ColumnType] = {}
        # SELECT * of a collection: its sampled fields, the columns when no row came back.
        self.columns_when_empty: Callable[[], list[str]] | None = None

    # ------------------------------------------------------------ rows
    def _materialize(self) -> list[dict[str, Any]]:
        if self._stream is not None:
            if self._streamed:
                raise _already_streamed()
            rows = list(self._stream)
            self._stream = None
            if self._columns is None:  # SELECT *: the union of the documents' fields
                names: dict[str, None] = {}
                for r in rows:
                    names.update(dict.fromkeys(r))
                columns = list(names)
                if not rows and self.columns_when_empty is not None:
                    columns = self.columns_when_empty()
                if "_id" in names:
                    columns = ["_id", *[c for c in columns if c != "_id"]]
                self._columns = columns
                rows = [{c: r.get(c) for c in columns} for r in rows]
            self._rows = rows
            self._rowcount = len(rows)
        return self._rows if self._rows is not None else []

    @property
    def returns_rows(self) -> bool:
        """Whether the statement returns rows (a query), rather than a count or a status."""
        return self._columns is not None or self._rows is not None or self._stream is not None

    @property
    def known_columns(self) -> list[str] | None:
        """The columns when known without reading rows; None for a streamed ``SELECT *``, whose
        columns are those of the documents it returns."""
        return self._columns

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self._materialize()

    @property
    def columns(self) -> list[str]:
        if self._columns is None:
            self._materialize()
        return self._columns or []

    @property
    def rowcount(self) -> int:
        if self._stream is not None and self._streamed:
            return self._rowcount
        if self._stream is not None:
            self._materialize()
        return self._rowcount

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self._stream is None:
            yield from self._materialize()
            return
        if self._streamed:
            raise _already_streamed()
        self._streamed = -1  # started
        count = 0
        for row in self._stream:
            count += 1
            yield row
        self._rowcount = count
        self._streamed = count or -1

    def release_after(self, release: Callable[[], None]) -> None:
        """Call ``release`` once the rows are read or the result is dropped (at once when
        there are no rows left to read): the end of what the statement holds on the server."""
        if self._stream is None:
            release()
        else:
            self._stream = _Releasing(self._stream, release)

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        """``<Result SELECT: 3 rows; columns _id, name, age>``, ``<Result INSERT: 2 affected>``;
        never reads a result's rows (a stream not read yet says so)."""
        kind = (self.statement.split() or ["?"])[0].upper()
        if self.commands is not None:
            n = len(self.commands)
            return f"<Result {kind}: {n} command{'' if n == 1 else 's'}>"
        if self._stream is not None and not self._streamed:
            size = "rows not read yet"
        elif self._rows is not None or self._stream is not None:
            n = self._rowcount if self._rows is None else len(self._rows)
            size = f"{n} row{'' if n == 1 else 's'}"
        elif self._rowcount >= 0:
            size = f"{self._rowcount} affected"
        else:
            size = self.message or "done"
        if self._columns:
            shown = ", ".join(self._columns[:REPR_COLUMNS])
            more = f", … ({len(self._columns)} in all)" if len(self._columns) > REPR_COLUMNS else ""
            size += f"; columns {shown}{more}"
        return f"<Result {kind}: {size}>"

    def scalar(self) -> Any:
        """The first column of the first row (None when there are no rows)."""
        rows = self.rows
        if not rows or not self.columns:
            return None
        return rows[0][self.columns[0]]


class _Releasing(Iterator[dict[str, Any]]):
    """``rows``, then ``release()`` once: when they end, fail, or are dropped unread."""

    def __init__(self, rows: Iterator[dict[str, Any]], release: Callable[[], None]):
        self._rows = rows
        self._release: Callable[[], None] | None = release

    def __next__(self) -> dict[str, Any]:
        try:
            return next(self._rows)
        except BaseException:
            self._done()
            raise

    def _done(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()

    def __del__(self) -> None:
        self._done()


def _already_streamed() -> QueryLeafError:
    return QueryLeafError(
        "the rows of this result were already streamed by iterating it; use .rows to keep them",
        error_code=ErrorCode.ROWS_ALREADY_STREAMED,
    )
