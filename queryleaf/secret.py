"""Secret values: credentials that are stored and used as themselves but never displayed.

A ``Secret`` is a ``str`` whose text is the credential for everything that uses the value
(BSON encoding, ``encode()``, comparison, HMAC keys) and ``'***'`` for everything that shows it
(``str``, ``repr``, f-strings, ``%s``). Renderers that read a string's characters directly
(JSON encoders) mask first with ``masked()``. Which values are secret is declared by the option
definitions (``queryleaf.events.options``), so a plan can carry the value the executor needs
while EXPLAIN, logs and error messages show the mask.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MASK = "***"


class Secret(str):
    __slots__ = ()

    def __new__(cls, value: str) -> Secret:
        # str(value) of a Secret is the mask: take the characters themselves.
        return super().__new__(cls, reveal(value))

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return repr(MASK)

    def __format__(self, spec: str) -> str:
        return format(MASK, spec)


def reveal(value: str) -> str:
    """The plain text of a (possibly) secret value: for the code that needs the credential."""
    return str.__str__(value)


def masked(value: Any) -> Any:
    """``value`` with every Secret inside (mappings, lists, tuples) replaced by the mask.

    Containers holding no secret are returned as they are, so the common case copies nothing.
    """
    if isinstance(value, Secret):
        return MASK
    if isinstance(value, Mapping):
        items = {k: masked(v) for k, v in value.items()}
        changed = any(items[k] is not v for k, v in value.items())
        return items if changed else value
    if isinstance(value, list | tuple):
        elements = [masked(v) for v in value]
        changed = any(new is not old for new, old in zip(elements, value, strict=True))
        return elements if changed else value  # rendered as an array either way
    return value
