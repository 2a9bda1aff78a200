"""Unknown columns: references to fields that no sampled document of their collection has.

In this dialect double quotes name columns, so ``UPDATE users SET name = "Jane"`` reads a field
called ``Jane`` and, there being none, writes NULL. The planner reports which columns of which
collection a statement reads (planner/references.py); this checks them against a sample of the
documents (sampling.py) before the statement runs:

- a column read by a query (or a WHERE) is a warning, with the nearest field as a suggestion;
- a column whose value INSERT/UPDATE would store is an error: nothing is written;
- a qualified column (``users.nickname``) is taken as meant, so a field rare enough to be missing
  from the sample stays usable; an empty collection has nothing to compare with.
"""

from __future__ import annotations

import difflib

from queryleaf.errors import ErrorCode, PlanningError
from queryleaf.planner.references import ColumnReference
from queryleaf.result import QueryWarning
from queryleaf.sampling import FieldSampler, Sample
from queryleaf.sql import ast
from queryleaf.sql.printer import string_literal, to_sql


def check_columns(references: list[ColumnReference], sampler: FieldSampler) -> list[QueryWarning]:
    """Warnings for unknown columns read; raises PlanningError for an unknown stored one."""
    by_collection: dict[str, dict[tuple, ColumnReference]] = {}
    for ref in references:
        if not ref.qualified:  # one per place: planning may resolve a column several times
            key = (ref.field_path, ref.pos, ref.stored)
            by_collection.setdefault(ref.collection, {})[key] = ref
    unknown: list[tuple[ColumnReference, Sample]] = []
    for collection, refs in by_collection.items():
        sample = sampler.sample(collection)
        missing = _missing(list(refs.values()), sample)
        if missing:  # the sample may predate the field: look again before saying so
            sample = sampler.sample(collection, recheck=True)
            missing = _missing(missing, sample)
        unknown.extend((ref, sample) for ref in missing if sample is not None)
    unknown.sort(key=lambda u: u[0].pos.offset if u[0].pos else -1)
    for ref, sample in unknown:
        if ref.stored:
            raise PlanningError(
                _stored_message(ref, sample), ref.pos, error_code=ErrorCode.UNKNOWN_COLUMN
            )
    # A warning carries its code in its text, as an error's str() does.
    return [
        QueryWarning(f"{ErrorCode.UNKNOWN_COLUMN}: {_read_message(ref, sample)}", ref.pos)
        for ref, sample in unknown
    ]


def _missing(refs: list[ColumnReference], sample: Sample | None) -> list[ColumnReference]:
    if sample is None or not sample.documents or not sample.complete:
        return []
    return [ref for ref in refs if ref.field_path not in sample.paths]


def _read_message(ref: ColumnReference, sample: Sample) -> str:
    return (
        f"unknown column {ref.written}: no sampled document of {ref.collection} has it (it "
        f"reads as NULL){_hint(ref, sample)}"
    )


def _stored_message(ref: ColumnReference, sample: Sample) -> str:
    head = f"unknown column {ref.written}"
    if len(ref.path) == 1:
        head = (
            f'unknown column "{ref.written}"; string literals use single quotes '
            f"({string_literal(ref.written)})"
        )
    return (
        f"{head}; no sampled document of {ref.collection} has a field {ref.written}"
        f"{_hint(ref, sample)}"
    )


def _hint(ref: ColumnReference, sample: Sample) -> str:
    """The sampled field nearest to the reference (a typo), else how to name a rare field."""
    wanted = ".".join(ref.field_path)
    near = difflib.get_close_matches(wanted, sorted(".".join(p) for p in sample.paths), n=1)
    if near:
        return f"; did you mean {near[0]}?"
    qualified = to_sql(ast.Column((ref.alias, *ref.path)))
    return f"; write {qualified} if the field is too rare to be in the sample"
