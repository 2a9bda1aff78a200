"""Secret literals in SQL text: masked wherever a statement is quoted back (error excerpts).

A statement that fails, for any reason and even when it does not parse, must not echo a
credential it holds. The scan is lexical so that it works on text the parser rejects: after the
name of a secret option (``webhook_secret``; ``SECRET_OPTIONS`` of the option definitions), every
string literal up to the end of the option's value (a ``,`` or ``)`` at its nesting level, or
``;``) is a secret literal. An unterminated literal runs to the end of the text.

Each secret literal is replaced by ``'***'``. Positions stay those of the text as written (what
the user's editor shows); ``RedactedSql.locate`` maps one into the redacted text to place a
caret there, so an excerpt shows the mask with the caret under the same token as before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from queryleaf.secret import MASK

MASKED_LITERAL = f"'{MASK}'"

_TOKEN = re.compile(
    r"(?P<string>'[^']*(?:''[^']*)*(?:'|\Z))"
    r"|(?P<name>\"(?:[^\"]|\"\")*\"|`(?:[^`]|``)*`|[^\W\d][\w$]*)"
    r"|(?P<blank>\s+|--[^\n]*|/\*[\s\S]*?(?:\*/|\Z))"
    r"|(?P<other>[\s\S])"
)
# A message may show a literal clipped ("'abcdefgh...'"); a prefix this long is masked too.
_MIN_QUOTED_PREFIX = 8
# A bare value this short is not looked for in messages (it would mask parts of words).
_MIN_BARE_VALUE = 4


_SECRET_OPTIONS: set[str] = set()
_REFERENCE_PREFIX = ["env:"]


def register_secret_options(names: frozenset[str], reference_prefix: str) -> None:
    """Options whose string values are secrets (the package defining them registers them: the
    event runtime's options module does when it is imported), and the prefix of a
    value that names a secret instead of holding it."""
    _SECRET_OPTIONS.update(names)
    _REFERENCE_PREFIX[0] = reference_prefix


def _secret_options() -> tuple[frozenset[str], str]:
    """The names of the secret options, and the prefix of a reference that is not a secret."""
    return frozenset(_SECRET_OPTIONS), _REFERENCE_PREFIX[0]


def _name(token: str) -> str:
    if token[:1] in ('"', "`"):
        quote = token[0]
        return token[1:-1].replace(quote * 2, quote).lower()
    return token.lower()


def secret_spans(sql: str) -> list[tuple[int, int]]:
    """(start, end) offsets of the secret literals of ``sql``, in order ('env:NAME' literals
    are references, not secrets)."""
    names, reference = _secret_options()
    lowered = sql.lower()
    if not any(name in lowered for name in names):
        return []
    spans: list[tuple[int, int]] = []
    in_value = False
    depth = 0
    for match in _TOKEN.finditer(sql):
        kind, text = match.lastgroup, match.group()
        if kind == "blank":
            continue
        if kind == "name" and _name(text) in names:
            in_value, depth = True, 0
        elif not in_value:
            continue
        elif kind == "string":
            if not text[1:].startswith(reference):
                spans.append(match.span())
        elif text == "(":
            depth += 1
        elif text == ")" and depth:
            depth -= 1
        elif text in ",);" and depth == 0:
            in_value = False
    return spans


def _mask(literal: str) -> str:
    closed = len(literal) > 1 and literal.endswith("'")
    return MASKED_LITERAL if closed else MASKED_LITERAL[:-1]


@dataclass(frozen=True)
class RedactedSql:
    """SQL text with its secret literals masked, and how to place a position of the original
    in it. Holds nothing of the secrets but their place and length."""

    text: str
    edits: tuple[tuple[int, int, int], ...] = ()  # (start, end) in the original, masked length
    line_starts: tuple[int, ...] = (0,)  # of the original text

    @classmethod
    def of(cls, sql: str) -> RedactedSql:
        spans = secret_spans(sql)
        if not spans:
            return cls(sql)
        parts: list[str] = []
        edits: list[tuple[int, int, int]] = []
        done = 0
        for start, end in spans:
            mask = _mask(sql[start:end])
            parts += [sql[done:start], mask]
            edits.append((start, end, len(mask)))
            done = end
        parts.append(sql[done:])
        starts = (0, *(m.end() for m in re.finditer("\n", sql)))
        return cls("".join(parts), tuple(edits), starts)

    def locate(self, line: int, column: int) -> tuple[int, int]:
        """The (line, column) in ``text`` of a 1-based (line, column) of the original text; a
        place inside a secret literal goes to the start of its mask."""
        if not self.edits:
            return line, column
        original = self.line_starts[min(max(line, 1), len(self.line_starts)) - 1] + column - 1
        offset = original
        for start, end, size in self.edits:
            if original >= end:
                offset -= (end - start) - size
            else:
                if original > start:
                    offset -= original - start
                break
        offset = max(0, min(offset, len(self.text)))
        new_line = self.text.count("\n", 0, offset) + 1
        return new_line, offset - (self.text.rfind("\n", 0, offset) + 1) + 1


def scrub(message: str, sql: str) -> str:
    """``message`` with the secret literals of ``sql`` masked where it quotes them (whole, as a
    bare value, or clipped to a prefix)."""
    for start, end in secret_spans(sql):
        literal = sql[start:end]
        closed = _mask(literal) == MASKED_LITERAL
        value = literal[1:-1] if closed else literal[1:]
        message = message.replace(literal, _mask(literal))
        if len(value) >= _MIN_BARE_VALUE:
            message = message.replace(value, MASK).replace(value.replace("''", "'"), MASK)
        for size in range(min(len(literal), len(message)), _MIN_QUOTED_PREFIX - 1, -1):
            if literal[:size] in message:
                message = message.replace(literal[:size], "'" + MASK)
                break
    return message
