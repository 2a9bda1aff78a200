"""Splitting SQL text into statements at ``;``, lexically, without parsing.

A ``;`` ends a statement only outside string literals (``'...'``, ``''`` inside one is a quote),
quoted names (``"..."`` and backticks, doubled to escape) and comments (``-- ...`` to the end of
the line, ``/* ... */``): the grammar's own rules for those tokens. The REPL asks
``is_complete`` whether what was typed so far can run; the script runners use ``split`` to run
and report statement by statement. Text the splitter accepts may still be invalid SQL: the parser
says so, with the position.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# One token that may hold a ';' without ending a statement, or a ';' itself. An opening quote or
# comment with no end matches the "open" groups: the text is unfinished.
_TOKEN = re.compile(
    r"""
      (?P<string>'(?:[^']|'')*')
    | (?P<quoted>"(?:[^"]|"")*")
    | (?P<backtick>`(?:[^`]|``)*`)
    | (?P<line_comment>--[^\n]*)
    | (?P<block_comment>/\*[\s\S]*?\*/)
    | (?P<open>['"`]|/\*)
    | (?P<semi>;)
    """,
    re.VERBOSE,
)
_SPECIAL = re.compile(r"['\"`;]|--|/\*")


@dataclass(frozen=True)
class Piece:
    """One statement's text (without its ``;``), where it starts in the whole text (offset,
    1-based line and column) and whether a ``;`` ended it."""

    text: str
    offset: int
    line: int
    column: int
    terminated: bool


@dataclass(frozen=True)
class _Scan:
    semicolons: list[int]  # offsets of the statement-ending ';'
    open_at: int | None  # offset of an unclosed string, quoted name or comment
    code_end: int  # offset just after the last character that is neither blank nor comment


def _scan(text: str) -> _Scan:
    semicolons: list[int] = []
    code_end = 0
    pos = 0
    while True:
        special = _SPECIAL.search(text, pos)
        if special is None:
            if text[pos:].strip():
                code_end = len(text.rstrip())
            return _Scan(semicolons, None, code_end)
        if text[pos : special.start()].strip():
            code_end = len(text[: special.start()].rstrip())
        match = _TOKEN.match(text, special.start())
        assert match is not None  # _SPECIAL only stops where a _TOKEN alternative starts
        kind = match.lastgroup
        if kind == "open":
            return _Scan(semicolons, match.start(), code_end)
        if kind == "semi":
            semicolons.append(match.start())
        if kind not in ("line_comment", "block_comment"):
            code_end = match.end()
        pos = match.end()


def split(text: str) -> list[Piece]:
    """The statements of ``text``; blank pieces (``;;``, comments alone) are left out. An
    unclosed string or comment makes the rest of the text one last unterminated piece."""
    scan = _scan(text)
    pieces: list[Piece] = []
    start = 0
    for end in [*scan.semicolons, len(text)]:
        terminated = end < len(text)
        chunk = text[start:end]
        lead = len(chunk) - len(chunk.lstrip())
        if _has_code(chunk):
            offset = start + lead
            line = text.count("\n", 0, offset) + 1
            column = offset - (text.rfind("\n", 0, offset) + 1) + 1
            pieces.append(Piece(chunk.strip(), offset, line, column, terminated))
        start = end + 1
    return pieces


def _has_code(chunk: str) -> bool:
    scan = _scan(chunk)
    return scan.code_end > 0 or scan.open_at is not None


def is_complete(text: str) -> bool:
    """Whether ``text`` ends a statement: its last code (after trailing blanks and comments) is
    a ``;`` outside strings, quoted names and comments. Blank text is complete."""
    scan = _scan(text)
    if scan.open_at is not None:
        return False
    if scan.code_end == 0:
        return True
    return bool(scan.semicolons) and scan.semicolons[-1] == scan.code_end - 1
