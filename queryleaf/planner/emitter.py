"""The pipeline of one SELECT as its stages are emitted."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Emitter:
    """Stages in order. A subquery's ``$lookup`` waits in ``pending`` until the stage that
    needs its value is emitted; ``temp_fields`` are fields that subqueries, joins and windows
    add to rows, hidden from the output; ``lets`` are the outer query's variables that stages
    read (the enclosing ``$lookup`` binds them)."""

    pipeline: list[dict[str, Any]] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)
    temp_fields: list[str] = field(default_factory=list)
    lets: dict[str, Any] = field(default_factory=dict)

    def emit(self, stage: dict[str, Any]) -> None:
        self.pipeline.extend(self.pending)
        self.pending.clear()
        self.pipeline.append(stage)

    def finish(self) -> list[dict[str, Any]]:
        self.pipeline.extend(self.pending)
        self.pending.clear()
        return self.pipeline
