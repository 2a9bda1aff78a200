"""Tab completion and highlighting for the REPL, from what queryleaf itself knows.

Completion is context-aware, as pgcli's is: after FROM / JOIN / INTO / UPDATE / DESCRIBE the
tables, views and system table functions; after EVENT_SUBSCRIPTION the subscriptions; inside
``CREATE EVENT_SUBSCRIPTION ... AS (`` the option names; after USE the databases; elsewhere the
field paths sampled from the tables the statement names (``customer.`` offers
``customer.name``), the functions (their signature as the meta) and the keywords. Keywords come
from the grammar, functions from the planner's catalogue, options from the event runtime.

The database is read through ``CatalogCache``: each list is kept until ``invalidate`` (the REPL
calls it after a statement that may change the catalog) or for ``MAX_AGE_S``. Completion runs in
a thread (prompt_toolkit's ThreadedCompleter) and swallows every error: it may come back empty,
never break the prompt.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prompt_toolkit.completion import (
    CompleteEvent,
    Completer,
    Completion,
    FuzzyCompleter,
    ThreadedCompleter,
)
from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.lexers import Lexer

from queryleaf.api import QueryLeaf
from queryleaf.planner.functions import function_listing
from queryleaf.planner.sources import table_function_names
from queryleaf.sql.parser import keywords

MAX_AGE_S = 30.0
SAMPLE_SIZE = 200  # documents sampled per table for field paths (a hint, kept small)


class CatalogCache:
    """The names completion offers, read from the database when first needed."""

    def __init__(self, ql: QueryLeaf):
        self.ql = ql
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, ...], tuple[float, Any]] = {}

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()

    def _cached(self, key: tuple[str, ...], load: Callable[[], Any], empty: Any) -> Any:
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < MAX_AGE_S:
            return hit[1]
        try:
            value = load()
        except Exception:  # noqa: BLE001 - completion is a hint: never an error at the prompt
            value = empty
        with self._lock:
            self._cache[key] = (time.monotonic(), value)
        return value

    def tables(self) -> dict[str, str]:
        """Collections and views: name → "collection" or "view"."""
        from queryleaf.introspection import user_collections

        def load() -> dict[str, str]:
            infos = user_collections(self.ql.db)
            return {i["name"]: i.get("type", "collection") for i in infos}

        return self._cached(("tables", self.ql.database_name), load, {})

    def databases(self) -> list[str]:
        return self._cached(("databases",), lambda: self.ql.client.list_database_names(), [])

    def subscriptions(self) -> list[str]:
        from queryleaf.events.names import SUBSCRIPTIONS

        def load() -> list[str]:
            return sorted(self.ql.db[SUBSCRIPTIONS].distinct("name"))

        return self._cached(("subscriptions", self.ql.database_name), load, [])

    def fields(self, table: str) -> list[str]:
        """The dotted field paths of a sample of ``table``'s documents."""
        from queryleaf.sampling import profile_fields

        if table not in self.tables():
            return []

        def load() -> list[str]:
            return [f.path for f in profile_fields(self.ql.db[table], SAMPLE_SIZE).fields]

        return self._cached(("fields", self.ql.database_name, table), load, [])


# ---------------------------------------------------------------- reading the statement

_SKIP = re.compile(r"'(?:[^']|'')*'?|--[^\n]*|/\*[\s\S]*?(?:\*/|$)")
_NAME = r"(?:[^\W\d][\w$]*|\"(?:[^\"]|\"\")*\"|`(?:[^`]|``)*`)"
_TABLE_BEFORE = re.compile(
    rf"(?i)\b(?:FROM|JOIN|INTO|UPDATE|DESCRIBE|INDEXES\s+(?:FROM|IN))\s+({_NAME}(?:\.{_NAME})*)"
    rf"(?:\s+(?:AS\s+)?({_NAME}))?"
)
_TABLE_CONTEXT = re.compile(
    r"(?i)(?:\b(?:FROM|JOIN|INTO|UPDATE|DESCRIBE|TABLE|(?:COLUMNS|INDEXES)\s+(?:FROM|IN))"
    r"|^\s*\\(?:d|dt|dv|di))\s+[\w$.]*$"
)
_FROM_LIST = re.compile(r"(?i)\bFROM\s+[^;]*,\s*[\w$.]*$")
_SUBSCRIPTION_CONTEXT = re.compile(r"(?i)\bEVENT_SUBSCRIPTION\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?\w*$")
_OPTION_CONTEXT = re.compile(
    r"(?i)\b(?:CREATE\s+EVENT_SUBSCRIPTION\b.*\bAS|ALTER\s+EVENT_SUBSCRIPTION\s+\S+\s+SET)"
    r"\s*\((?:(?:[^()]|\([^()]*\))*,)?\s*\w*$",
    re.S,
)
_DATABASE_CONTEXT = re.compile(r"(?i)(?:\bUSE|^\s*\\c(?:onnect)?)\s+\w*$")
_PARTIAL = re.compile(r"[\w$]*$")
_PATH = re.compile(r"((?:[\w$]+\.)+)([\w$]*)$")


def _blank_skipped(text: str) -> str:
    """``text`` with strings and comments blanked out (same length), so that words inside
    them are not read as SQL."""
    return _SKIP.sub(lambda m: " " * len(m.group()), text)


def _unquote(name: str) -> str:
    if name[:1] == '"':
        return name[1:-1].replace('""', '"')
    if name[:1] == "`":
        return name[1:-1].replace("``", "`")
    return name


def _current_statement(text: str, cursor: int) -> tuple[str, int]:
    """The statement the cursor is in (from the last ';' before it to the next one), and the
    cursor's offset in it."""
    blanked = _blank_skipped(text)
    start = blanked.rfind(";", 0, cursor) + 1
    end = blanked.find(";", cursor)
    end = len(text) if end < 0 else end
    return blanked[start:end], cursor - start


def named_tables(statement: str) -> dict[str, str]:
    """The tables a statement names, by the name or alias the statement uses for them."""
    found: dict[str, str] = {}
    for match in _TABLE_BEFORE.finditer(statement):
        table = ".".join(_unquote(p) for p in re.findall(_NAME, match.group(1)))
        found.setdefault(table, table)
        alias = match.group(2)
        if alias and alias.upper() not in keywords():
            found[_unquote(alias)] = table
    return found


# ---------------------------------------------------------------- the completer


class SqlCompleter(Completer):
    def __init__(self, catalog: CatalogCache):
        self.catalog = catalog
        self._functions = function_listing()
        self._keywords = sorted(keywords())

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterable[Completion]:
        try:
            yield from self._completions(document)
        except Exception:  # noqa: BLE001 - completion must never break the prompt
            return

    def _completions(self, document: Document) -> Iterator[Completion]:
        statement, cursor = _current_statement(document.text, document.cursor_position)
        before = statement[:cursor]
        partial = _PARTIAL.search(before)
        word = partial.group() if partial else ""
        if _OPTION_CONTEXT.search(before):
            from queryleaf.events.options import BY_NAME

            yield from _matching(
                word, ((name, spec.type_name) for name, spec in BY_NAME.items()), " = "
            )
        elif _SUBSCRIPTION_CONTEXT.search(before):
            yield from _matching(word, ((n, "subscription") for n in self.catalog.subscriptions()))
        elif _DATABASE_CONTEXT.search(before):
            yield from _matching(word, ((n, "database") for n in self.catalog.databases()))
        elif _TABLE_CONTEXT.search(before) or _FROM_LIST.search(before):
            yield from self._tables(word)
        elif (path := _PATH.search(before)) is not None:
            yield from self._child_fields(statement, path.group(1), path.group(2))
        else:
            yield from self._everything(statement, word)

    def _tables(self, word: str) -> Iterator[Completion]:
        yield from _matching(word, self.catalog.tables().items())
        yield from _matching(
            word, ((f"{n}()", "system table") for n in table_function_names()), quote=False
        )

    def _child_fields(self, statement: str, prefix: str, word: str) -> Iterator[Completion]:
        """After ``customer.`` (or ``o.customer.`` with ``o`` a table or alias): the fields
        under that path, inserted after the dot, shown whole."""
        tables = named_tables(statement)
        parts = prefix.rstrip(".").split(".")
        candidates: list[tuple[str, str]] = []
        searches = [(t, parts) for t in dict.fromkeys(tables.values())]
        if parts[0] in tables:
            searches.insert(0, (tables[parts[0]], parts[1:]))
        for table, path in searches:
            head = ".".join(path) + "." if path else ""
            for field in self.catalog.fields(table):
                if field.startswith(head) and "." not in field[len(head) :]:
                    candidates.append((field[len(head) :], prefix + field[len(head) :]))
            if candidates:
                break
        for name, whole in dict(candidates).items():
            if name.lower().startswith(word.lower()):
                yield Completion(name, -len(word), display=whole, display_meta="field")

    def _everything(self, statement: str, word: str) -> Iterator[Completion]:
        fields: dict[str, str] = {}
        for table in dict.fromkeys(named_tables(statement).values()):
            for field in self.catalog.fields(table):
                fields.setdefault(field, f"field of {table}")
        yield from _matching(word, fields.items())
        yield from _matching(word, ((name, meta) for name, meta in self._functions.items()))
        yield from _matching(word, ((k, "keyword") for k in self._keywords), quote=False)


_PLAIN = re.compile(r"[^\W\d][\w$]*(?:\.[^\W\d][\w$]*)*")


def _matching(
    word: str, items: Iterable[tuple[str, str]], suffix: str = "", quote: bool = True
) -> Iterator[Completion]:
    """Completions for the names that start with ``word`` (any case); names that are not plain
    identifiers are offered in double quotes."""
    lowered = word.lower()
    for name, meta in items:
        if not name.lower().startswith(lowered):
            continue
        text = name if not quote or _PLAIN.fullmatch(name) else '"' + name.replace('"', '""') + '"'
        yield Completion(text + suffix, -len(word), display=name, display_meta=meta)


def completer(ql: QueryLeaf) -> tuple[Completer, CatalogCache]:
    """The REPL's completer (fuzzy, in a thread) and the cache to invalidate after DDL."""
    catalog = CatalogCache(ql)
    return ThreadedCompleter(FuzzyCompleter(SqlCompleter(catalog))), catalog


# Statements after which the cached names may be stale.
_CHANGES_CATALOG = re.compile(
    r"(?i)\b(?:CREATE|DROP|ALTER|INSERT|UPDATE|DELETE|USE|RESET|PAUSE|RESUME)\b|^\s*\\c"
)


def changes_catalog(text: str) -> bool:
    return _CHANGES_CATALOG.search(_blank_skipped(text)) is not None


# ---------------------------------------------------------------- highlighting

_TOKENS = re.compile(
    r"""
      (?P<comment>--[^\n]*|/\*[\s\S]*?(?:\*/|$))
    | (?P<string>'(?:[^']|'')*'?)
    | (?P<quoted>"(?:[^"]|"")*"?|`(?:[^`]|``)*`?)
    | (?P<number>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
    | (?P<param>:[^\W\d]\w*|\?)
    | (?P<word>[^\W\d][\w$]*)
    | (?P<operator>[<>=!|&^~+\-*/%]+)
    | (?P<other>\\\S*|.)
    """,
    re.VERBOSE | re.DOTALL,
)
_STYLES = {
    "comment": "class:pygments.comment",
    "string": "class:pygments.literal.string",
    "quoted": "class:pygments.name",
    "number": "class:pygments.literal.number",
    "param": "class:pygments.name.variable",
    "operator": "class:pygments.operator",
    "keyword": "class:pygments.keyword",
    "function": "class:pygments.name.function",
    "meta": "class:pygments.keyword.pseudo",
    "word": "",
    "other": "",
}


class SqlLexer(Lexer):
    """Highlights queryleaf's own dialect: its keywords (from the grammar), its functions
    (from the planner), strings, quoted names, numbers, parameters and comments."""

    def __init__(self) -> None:
        self._keywords = keywords()
        self._functions = frozenset(function_listing())

    def fragments(self, text: str) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for match in _TOKENS.finditer(text):
            kind = match.lastgroup or "other"
            value = match.group()
            if kind == "word":
                upper = value.upper()
                if upper in self._keywords:
                    kind = "keyword"
                elif upper in self._functions and text[match.end() : match.end() + 1] == "(":
                    kind = "function"
            elif kind == "other" and value.startswith("\\"):
                kind = "meta"
            out.append((_STYLES[kind], value))
        return out

    def lex_document(self, document: Document) -> Callable[[int], StyleAndTextTuples]:
        lines: list[StyleAndTextTuples] = [[]]
        for style, value in self.fragments(document.text):
            pieces = value.split("\n")
            for i, piece in enumerate(pieces):
                if i:
                    lines.append([])
                if piece:
                    lines[-1].append((style, piece))

        def get_line(number: int) -> StyleAndTextTuples:
            return lines[number] if number < len(lines) else []

        return get_line
