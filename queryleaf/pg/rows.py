"""A statement's outcome on the wire: rows (their columns, types and the rows yet to send) or
a command tag, and how rows become RowDescription fields and DataRow encoders.

A query's first server batch is read to infer the column types (column_types.py); the rest of
its rows stream behind them, never kept.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from queryleaf.column_types import ColumnType, infer_column_types
from queryleaf.executor import CURSOR_BATCH
from queryleaf.live.stream import LiveRows
from queryleaf.pg import messages as m
from queryleaf.pg.types import BINARY_OF, OID_OF, SIZE_OF, text_of
from queryleaf.result import Result

PEEK_ROWS = CURSOR_BATCH  # rows read before the RowDescription (the first server batch)
EMPTY = ""  # the tag of an empty query (only blanks or comments): EmptyQueryResponse


@dataclass
class Rows:
    """A statement's rows: their columns and types, and the rows (tuples) yet to send."""

    columns: list[str]
    types: list[ColumnType]
    rows: Iterator[tuple[Any, ...]]
    tag: str = "SELECT"  # CommandComplete's word(s), followed by the rows sent
    live: LiveRows | None = None
    cursor: bool = False  # a DECLAREd cursor: it stays after Sync


@dataclass
class Command:
    tag: str
    notices: list[str] = field(default_factory=list)


Outcome = Rows | Command


def rows_of(result: Result) -> Rows:
    """A query's rows: the first ones read now (they give the types), the rest streamed."""
    rows = iter(result)
    first = list(itertools.islice(rows, PEEK_ROWS))
    columns = result.known_columns
    if columns is None:
        names: dict[str, None] = {}
        for row in first:
            names.update(dict.fromkeys(row))
        if not first and result.columns_when_empty is not None:
            names = dict.fromkeys(result.columns_when_empty())
        columns = list(names)
        if "_id" in names:
            columns = ["_id", *[c for c in columns if c != "_id"]]
    types = infer_column_types(columns, first, result.declared_types)
    keys = columns
    values = (tuple(row.get(c) for c in keys) for row in itertools.chain(first, rows))
    return Rows(columns, types, values)


def conform(outcome: Rows, shape: Rows) -> Rows:
    """``outcome``'s rows in the columns and types of ``shape`` (a missing column is NULL; a
    value that does not fit its type is sent in its text form, as always)."""
    if outcome.columns == shape.columns:
        return Rows(shape.columns, shape.types, outcome.rows, outcome.tag, outcome.live)
    where = {name: i for i, name in enumerate(outcome.columns)}
    picks = [where.get(name) for name in shape.columns]
    rows = (tuple(None if i is None else row[i] for i in picks) for row in outcome.rows)
    return Rows(shape.columns, shape.types, rows, outcome.tag, outcome.live)


def fields(outcome: Rows, formats: list[int]) -> list[m.Field]:
    fields = []
    for i, (name, kind) in enumerate(zip(outcome.columns, outcome.types, strict=True)):
        oid = OID_OF[kind]
        fields.append(m.Field(name, oid, SIZE_OF.get(oid, -1), format_of(formats, i)))
    return fields


def format_of(formats: list[int], i: int) -> int:
    if not formats:
        return 0
    return formats[i] if len(formats) > 1 else formats[0]


def encoders(outcome: Rows, formats: list[int]) -> list[Callable[[Any], bytes]]:
    encoders: list[Callable[[Any], bytes]] = []
    for i, kind in enumerate(outcome.types):
        if format_of(formats, i) == 1:
            encoders.append(BINARY_OF[OID_OF[kind]])
        else:
            encoders.append(text_of)
    return encoders
