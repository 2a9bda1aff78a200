"""The REPL's backslash shorthands for the statements that describe the database (psql's
``\\d``, ``\\dt``, ``\\l``...): each is one SQL statement, which runs like any other."""

from __future__ import annotations

from queryleaf.sql.printer import quote_name

# command → (statement without a name, statement with one: {name} is the quoted name)
SHORTHANDS: dict[str, tuple[str | None, str | None]] = {
    "\\d": ("SHOW TABLES", "DESCRIBE {name}"),
    "\\dt": ("SHOW TABLES", "DESCRIBE {name}"),
    "\\dv": ("SHOW VIEWS", "DESCRIBE {name}"),
    "\\di": ("SHOW INDEXES", "SHOW INDEXES FROM {name}"),
    "\\ds": ("SHOW EVENT_SUBSCRIPTIONS", None),
    "\\l": ("SHOW DATABASES", None),
    "\\c": (None, "USE {name}"),
    "\\connect": (None, "USE {name}"),
}


def quoted(name: str) -> str:
    """A name typed after a shorthand, as SQL: taken as written when the user quoted it, each
    dotted part quoted when it needs to be."""
    if name[:1] in ('"', "`"):
        return name
    return ".".join(quote_name(part) for part in name.split("."))


def shorthand(command: str, arg: str) -> str | None:
    """The statement a backslash command stands for (None: not a shorthand, or its argument
    is missing or not expected)."""
    forms = SHORTHANDS.get(command)
    if forms is None:
        return None
    bare, named = forms
    if not arg:
        return bare
    return named.format(name=quoted(arg)) if named is not None else None
