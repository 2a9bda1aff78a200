"""Result rows as lines of text: a table that fits a width, or one record per block.

The table never folds a header or wraps a cell: when the row is too wide, the widest cells are
cut (ending in ``…``) down to ``MIN_CUT_WIDTH`` characters (or their header's width); when even
that does not fit, ``fit_table`` says so and the caller shows the vertical view instead, where
each value has a line of its own and is wrapped only between words.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from typing import Any

from rich.cells import cell_len

CUT = "…"
MIN_CUT_WIDTH = 10  # a cut cell keeps at least this many characters (or its header's width)
GAP = "  "
RULE = "─"
NULL_TEXT = "<null>"

Row = dict[str, Any]
CellText = Callable[[Any], str]


def cut(text: str, width: int) -> str:
    """``text`` in at most ``width`` terminal cells, ending in ``…`` when it was longer."""
    if cell_len(text) <= width:
        return text
    kept, used = [], 0
    for char in text:
        size = cell_len(char)
        if used + size > width - 1:
            break
        kept.append(char)
        used += size
    return "".join(kept) + CUT


def pad(text: str, width: int, right: bool = False) -> str:
    fill = " " * max(width - cell_len(text), 0)
    return fill + text if right else text + fill


def one_line(text: str) -> str:
    """A cell on one line: line breaks and tabs shown, never laid out."""
    return text.replace("\r\n", "↵").replace("\n", "↵").replace("\r", "↵").replace("\t", " ")


def fit_table(
    headers: Sequence[str], cells: Sequence[Sequence[str]], width: int
) -> list[int] | None:
    """Column widths that fit ``width`` (the widest columns cut first), or None when the
    headers and the shortest cuts do not fit."""
    widths = natural_widths(headers, cells)
    floors = [min(w, max(cell_len(h), MIN_CUT_WIDTH)) for w, h in zip(widths, headers, strict=True)]
    room = width - cell_len(GAP) * (len(headers) - 1)
    if sum(floors) > room:
        return None
    excess = sum(widths) - room
    while excess > 0:  # take one cell at a time from the widest column that can give
        i = max((i for i in range(len(widths)) if widths[i] > floors[i]), key=lambda i: widths[i])
        widths[i] -= 1
        excess -= 1
    return widths


def natural_widths(headers: Sequence[str], cells: Sequence[Sequence[str]]) -> list[int]:
    widths = [cell_len(h) for h in headers]
    for row in cells:
        widths = [max(w, cell_len(c)) for w, c in zip(widths, row, strict=True)]
    return widths


def table_lines(
    headers: Sequence[str],
    cells: Sequence[Sequence[str]],
    widths: Sequence[int],
    right: Sequence[bool],
) -> list[str]:
    """The header, a rule under each column, and the rows; cells cut to ``widths``."""

    def line(texts: Sequence[str]) -> str:
        parts = [pad(cut(t, w), w, r) for t, w, r in zip(texts, widths, right, strict=True)]
        return GAP.join(parts).rstrip()

    rule = GAP.join(RULE * w for w in widths)
    return [line(headers), rule, *(line(row) for row in cells)]


def vertical_lines(headers: Sequence[str], cells: Sequence[Sequence[str]], width: int) -> list[str]:
    """psql's expanded view: ``-[ RECORD n ]---`` then ``column | value`` per column.

    A value longer than the room beside the names continues on the next lines, broken only
    at spaces (a longer word stays whole: the terminal or the pager shows the rest)."""
    label = max((cell_len(h) for h in headers), default=0)
    room = max(width - label - 3, 20)
    records = [[_wrap(value, room) for value in row] for row in cells]
    longest = max((cell_len(p) for rec in records for parts in rec for p in parts), default=0)
    rule = min(label + 3 + longest, width)
    lines: list[str] = []
    for n, record in enumerate(records, 1):
        title = f"-[ RECORD {n} ]"
        lines.append(title + "-" * max(rule - len(title), 1))
        for header, parts in zip(headers, record, strict=True):
            for i, part in enumerate(parts):
                lines.append(f"{pad(header if i == 0 else '', label)} | {part}".rstrip())
    return lines


def _wrap(value: str, room: int) -> list[str]:
    parts: list[str] = []
    for paragraph in value.replace("\r\n", "\n").split("\n"):
        if cell_len(paragraph) <= room:
            parts.append(paragraph)
            continue
        parts.extend(
            textwrap.wrap(
                paragraph.replace("\t", " "),
                room,
                break_long_words=False,
                break_on_hyphens=False,
                drop_whitespace=True,
            )
            or [""]
        )
    return parts
