"""docs/sql-reference.md stays complete and true to the planner.

- Every scalar function (``FUNCTIONS``), aggregate (``AGGREGATES``) and window-only function
  (``WINDOW_ONLY``) is mentioned as ``NAME(``; every function a function table lists exists.
- Every ```sql block parses. A ```sql block followed directly by a ```js block plans to exactly
  the commands shown there; one followed by a ```text block that starts with an error class name
  (``PlanningError: ...``) fails with exactly that message. A first line ``-- params: {json}``
  binds parameters.
- In a table whose last two columns are "Example" and "MongoDB translation", the translation
  (pieces separated by `` … ``) appears, in order, in what the example compiles to (an
  expression example is compiled as ``SELECT <example> FROM t``).

The planner is pure, so none of this needs a server. After a deliberate planner change, rewrite
the ```js blocks with ``python tests/test_sql_reference.py --update`` and review the diff.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from queryleaf import mongosh
from queryleaf.errors import QueryLeafError
from queryleaf.planner import plan_statement
from queryleaf.planner.expressions import AGGREGATES
from queryleaf.planner.functions import FUNCTIONS
from queryleaf.planner.sources import table_function_names
from queryleaf.planner.windows import WINDOW_ONLY
from queryleaf.sql.parser import parse, parse_script

DOC = Path(__file__).resolve().parent.parent / "docs" / "sql-reference.md"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```[ \t]*$", re.S | re.M)
_ERROR = re.compile(r"^(SqlSyntaxError|PlanningError|ParameterError): ")
_STATEMENT = re.compile(r"^\s*(SELECT|WITH|INSERT|UPDATE|DELETE|CREATE|DROP|EXPLAIN)\b", re.I)


def _text() -> str:
    return DOC.read_text(encoding="utf-8")


# ---------------------------------------------------------------- rendering


def _one_line(command: dict[str, Any]) -> str:
    with mock.patch.object(mongosh, "_WIDTH", 10**9):
        return mongosh.to_mongosh(command)


def _render_command(command: dict[str, Any]) -> str:
    """mongosh text; an aggregate with one stage per line, anything else on one line."""
    pipeline = command.get("pipeline")
    if (
        set(command) == {"aggregate", "pipeline", "cursor"}
        and command["cursor"] == {}
        and pipeline
        and "$changeStream" not in pipeline[0]
    ):
        stages = ",\n".join("  " + mongosh._flat(s) for s in pipeline)
        return f"{mongosh._coll(command['aggregate'])}.aggregate([\n{stages}\n])"
    return _one_line(command)


def _params(sql: str) -> Any:
    first = sql.lstrip().splitlines()[0] if sql.strip() else ""
    if first.startswith("-- params:"):
        return json.loads(first[len("-- params:") :])
    return None


def render(sql: str) -> str:
    plan = plan_statement(parse(sql), _params(sql))
    return "\n".join(_render_command(c) for c in plan.commands())


def compiled(example: str) -> str:
    """Everything an example compiles to, each command on one line."""
    sql = example if _STATEMENT.match(example) else f"SELECT {example} FROM t"
    return "\n".join(_one_line(c) for c in plan_statement(parse(sql)).commands())


def error_text(sql: str) -> str:
    try:
        plan_statement(parse(sql), _params(sql)).commands()
    except QueryLeafError as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return "(no error)"


# ---------------------------------------------------------------- the document's parts


def _blocks(text: str) -> list[re.Match[str]]:
    return list(_FENCE.finditer(text))


def _pairs(text: str) -> list[tuple[re.Match[str], re.Match[str]]]:
    """(```sql block, the block right after it) pairs with only white space between them."""
    blocks = _blocks(text)
    return [
        (a, b)
        for a, b in zip(blocks, blocks[1:], strict=False)
        if a.group(1) == "sql" and not text[a.end() : b.start()].strip()
    ]


def _cells(line: str) -> list[str]:
    parts = re.split(r"(?<!\\)\|", line.strip())[1:-1]
    return [p.strip().replace("\\|", "|") for p in parts]


def _code(cell: str) -> str | None:
    m = re.fullmatch(r"`([^`]+)`", cell)
    return m.group(1) if m else None


def _tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
    tables: list[tuple[list[str], list[list[str]]]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if (
            lines[i].startswith("|")
            and i + 1 < len(lines)
            and re.fullmatch(r"\|[-:| ]+\|", lines[i + 1].strip())
        ):
            header = _cells(lines[i])
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            tables.append((header, rows))
        else:
            i += 1
    return tables


def _translation_rows(text: str) -> list[tuple[str, str]]:
    rows = []
    for header, body in _tables(text):
        if len(header) >= 2 and header[-2] == "Example" and header[-1].startswith("MongoDB"):
            for cells in body:
                example, translation = _code(cells[-2]), _code(cells[-1])
                if example and translation:
                    rows.append((example, translation))
    return rows


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize("name", sorted(set(FUNCTIONS) | AGGREGATES | WINDOW_ONLY))
def test_every_function_is_documented(name: str) -> None:
    assert re.search(rf"(?<![\w$]){re.escape(name)}\(", _text()), f"{name}( is not in {DOC.name}"


def test_function_tables_list_only_real_functions() -> None:
    known = (
        set(FUNCTIONS)
        | AGGREGATES
        | WINDOW_ONLY
        | set(table_function_names())
        | {"CAST", "EXTRACT"}
    )
    listed = set()
    for header, rows in _tables(_text()):
        if header and header[0] == "Function":
            for cells in rows:
                listed |= set(re.findall(r"`([A-Z_0-9]+)\(", cells[0]))
    assert listed, "no function tables found"
    assert listed <= known, f"documented but unknown: {sorted(listed - known)}"


def test_sql_blocks_parse() -> None:
    blocks = [m for m in _blocks(_text()) if m.group(1) == "sql"]
    assert len(blocks) > 20
    syntax_errors = {
        a.start()
        for a, b in _pairs(_text())
        if b.group(1) == "text" and b.group(2).startswith("SqlSyntaxError")
    }
    for m in blocks:
        if m.start() not in syntax_errors:
            parse_script(m.group(2))


def _translation_cases() -> list[tuple[str, str]]:
    return [
        (a.group(2).strip(), b.group(2).rstrip("\n"))
        for a, b in _pairs(_text())
        if b.group(1) == "js"
    ]


def _id(sql: str) -> str:
    return " ".join(sql.split())[:70]


@pytest.mark.parametrize(
    ("sql", "expected"), _translation_cases(), ids=[_id(sql) for sql, _ in _translation_cases()]
)
def test_translations_are_what_the_planner_produces(sql: str, expected: str) -> None:
    assert render(sql) == expected


def _error_cases() -> list[tuple[str, str]]:
    return [
        (a.group(2).strip(), b.group(2).strip())
        for a, b in _pairs(_text())
        if b.group(1) == "text" and _ERROR.match(b.group(2))
    ]


@pytest.mark.parametrize(
    ("sql", "expected"), _error_cases(), ids=[_id(sql) for sql, _ in _error_cases()]
)
def test_documented_errors_are_raised(sql: str, expected: str) -> None:
    assert error_text(sql) == expected.splitlines()[0]


@pytest.mark.parametrize(
    ("example", "translation"),
    _translation_rows(_text()),
    ids=[_id(e) for e, _ in _translation_rows(_text())],
)
def test_table_translations(example: str, translation: str) -> None:
    full = compiled(example)
    at = 0
    for piece in translation.split(" … "):
        found = full.find(piece.strip(), at)
        assert found >= 0, f"{piece!r} not in the translation of {example!r}:\n{full}"
        at = found + len(piece.strip())


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_links_within_the_document_resolve() -> None:
    text = _text()
    anchors = {_slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}
    targets = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert targets <= anchors, f"broken links: {sorted(targets - anchors)}"


def test_the_document_has_enough_checked_examples() -> None:
    assert len(_translation_cases()) >= 30
    assert len(_translation_rows(_text())) >= 100


# ---------------------------------------------------------------- --update


def update() -> int:
    """Rewrite every ```js block that follows a ```sql block with the planner's output."""
    text = _text()
    out, last, changed = [], 0, 0
    for a, b in _pairs(text):
        if b.group(1) != "js":
            continue
        new = render(a.group(2).strip()) + "\n"
        if new != b.group(2):
            changed += 1
        out += [text[last : b.start(2)], new]
        last = b.end(2)
    out.append(text[last:])
    DOC.write_text("".join(out), encoding="utf-8")
    return changed


if __name__ == "__main__":
    if sys.argv[1:] == ["--update"]:
        print(f"{update()} block(s) rewritten in {DOC}")
    else:
        print(__doc__)
