"""Normalization of ``event_filter``: field-scoped logical operators become top-level ones.

MongoDB only accepts ``$or`` / ``$and`` / ``$nor`` at the top level of a filter (or inside
another logical operator). Filters like the seed's put them under a field path::

    {'updateDescription.updatedFields': {'$or': [{'email': {'$exists': True}},
                                                  {'status': {'$exists': True}}]}}

which reads naturally as "any of these fields of updatedFields", so queryleaf rewrites it to::

    {'$or': [{'updateDescription.updatedFields.email': {'$exists': True}},
             {'updateDescription.updatedFields.status': {'$exists': True}}]}

The rule, applied recursively:

* ``{path: {'$or': [f1, f2]}}`` → ``{'$or': [f1', f2']}`` where each ``fi'`` is ``fi`` with
  every field name prefixed by ``path.`` (same for ``$and`` and ``$nor``);
* a query operator directly inside a scoped branch applies to the path itself:
  ``{'price': {'$or': [{'$lt': 5}, {'$gt': 100}]}}`` → ``{'$or': [{'price': {'$lt': 5}},
  {'price': {'$gt': 100}}]}``;
* other operators next to the logical one stay on the path: ``{path: {'$exists': True,
  '$or': [...]}}`` → ``{path: {'$exists': True}, '$or': [...]}``;
* ``{path: {'$not': {'$or': [...]}}}`` → ``{'$nor': [{'$or': [...scoped...]}]}``;
* when two rewritten clauses would use the same key, the level becomes ``{'$and': [...]}``;
* embedded-document values without logical operators (exact matches) and ``$elemMatch`` are
  left exactly as written; ``$expr``/``$where``/``$text``/``$jsonSchema``/``$comment`` cannot
  be scoped under a field path (error).
"""

from __future__ import annotations

from typing import Any

LOGICAL = ("$or", "$and", "$nor")
TOP_LEVEL_ONLY = ("$expr", "$where", "$text", "$jsonSchema", "$comment")

Clause = tuple[str, Any]


class FilterError(ValueError):
    """The filter's shape cannot be normalized (the message says where)."""


def normalize_filter(filter: dict[str, Any]) -> dict[str, Any]:
    """The filter with field-scoped logical operators rewritten to top-level ones."""
    if not isinstance(filter, dict):
        raise FilterError("a filter must be an object")
    return _scoped(filter, "")


def _scoped(doc: Any, prefix: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        where = f" under {prefix!r}" if prefix else ""
        raise FilterError(f"the branches of a logical operator{where} must be objects")
    return _merge(_clauses(doc, prefix))


def _clauses(doc: dict[str, Any], prefix: str) -> list[Clause]:
    out: list[Clause] = []
    path_operators: dict[str, Any] = {}  # operators that apply to ``prefix`` itself
    for key, value in doc.items():
        if key in LOGICAL:
            out.append((key, _branches(key, value, prefix)))
        elif key.startswith("$"):
            if not prefix:
                out.append((key, value))
            elif key in TOP_LEVEL_ONLY:
                raise FilterError(f"{key} cannot be used under the field path {prefix!r}")
            else:
                path_operators[key] = value
        else:
            out.extend(_field(f"{prefix}.{key}" if prefix else key, value))
    if path_operators:
        out.insert(0, (prefix, path_operators))
    return out


def _branches(operator: str, value: Any, prefix: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise FilterError(f"{operator} needs a non-empty array of filters")
    return [_scoped(branch, prefix) for branch in value]


def _field(path: str, value: Any) -> list[Clause]:
    if not isinstance(value, dict):
        return [(path, value)]
    if any(key in LOGICAL for key in value):
        operators = {k: v for k, v in value.items() if k.startswith("$") and k not in LOGICAL}
        fields = {k: v for k, v in value.items() if not k.startswith("$")}
        out: list[Clause] = [(path, operators)] if operators else []
        out.extend((k, _branches(k, v, path)) for k, v in value.items() if k in LOGICAL)
        out.extend(_clauses(fields, path))
        return out
    negated = value.get("$not")
    if isinstance(negated, dict) and any(key in LOGICAL for key in negated):
        rest = {k: v for k, v in value.items() if k != "$not"}
        out = [("$nor", [_scoped(negated, path)])]
        return (_field(path, rest) if rest else []) + out
    return [(path, value)]


def _merge(clauses: list[Clause]) -> dict[str, Any]:
    keys = [key for key, _ in clauses]
    if len(set(keys)) == len(keys):
        return dict(clauses)
    return {"$and": [{key: value} for key, value in clauses]}
