"""What every (sub)query of one statement shares while it is planned."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from queryleaf import plan
from queryleaf.errors import PlanningError
from queryleaf.planner.params import Bindings
from queryleaf.sql import ast


@dataclass
class Context:
    """Parameters, the WITH queries in scope, fresh names and the known tables."""

    bindings: Bindings
    ctes: dict[str, ast.Query] = field(default_factory=dict)
    counter: itertools.count = field(default_factory=itertools.count)
    tables: frozenset[str] | None = None  # existing collections and views (None: unknown)
    # Each WITH query planned once (by id of its AST, so a nested WITH that reuses a name
    # plans its own): a chain of CTEs, each reading the one before, is planned in a loop.
    planned: dict[int, plan.Aggregate | plan.Find] = field(default_factory=dict)

    def fresh(self, prefix: str) -> str:
        return f"{prefix}{next(self.counter)}"

    def with_ctes(self, ctes: tuple[ast.Cte, ...]) -> Context:
        if not ctes:
            return self
        env = dict(self.ctes)
        for cte in ctes:
            if cte.name in env and cte.name not in self.ctes:
                raise PlanningError(f"WITH defines {cte.name} twice", cte.pos)
            env[cte.name] = cte.query
        inner = Context(self.bindings, env, self.counter, self.tables, self.planned)
        for cte in ctes:  # in order: each finds the ones it reads planned already
            inner.cte_plan(cte.name)
        return inner

    def cte_plan(self, name: str) -> plan.Aggregate | plan.Find:
        from queryleaf.planner.select import plan_query  # a query's CTEs are queries

        query = self.ctes[name]
        found = self.planned.get(id(query))
        if found is None:
            found = self.planned[id(query)] = plan_query(query, self)
        return found
