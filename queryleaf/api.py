"""The Python API: ``queryleaf.connect(...).execute(sql)``."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pymongo

from queryleaf import engine
from queryleaf.clients import close_client
from queryleaf.errors import Position, QueryLeafError, ScriptError
from queryleaf.executor import Executor
from queryleaf.planner import plan_statement
from queryleaf.result import Result
from queryleaf.sql import ast
from queryleaf.sql.parser import parse, parse_script

DEFAULT_DATABASE = "queryleaf"

Params = Mapping[str, Any] | Sequence[Any] | None


class QueryLeaf:
    """A connection to one MongoDB database that runs queryleaf SQL."""

    def __init__(self, uri: str | None = None, database: str | None = None,
                 data_dir: str | None = None):
        uri = uri or os.environ.get("QUERYLEAF_URI") or None
        self.database_name = database or os.environ.get("QUERYLEAF_DB") or DEFAULT_DATABASE
        self._lease: engine.ServerLease | None = None
        if uri is None:
            self._lease = engine.acquire(data_dir)
            uri = self._lease.uri
        try:
            self._connect(uri)
        except Exception:
            self.close_lease()
            raise
        self.handlers: dict[str, Callable[..., Any]] = {}
        if self._lease is not None:
            # If the embedded server dies, start it again (on the same port, so the clients
            # reconnect by themselves): a long-lived process must not stall on a dead server.
            self._lease.start_watchdog(on_change=self._server_moved)

    def _connect(self, uri: str) -> None:
        options: dict[str, Any] = {"tz_aware": True}
        if "serverselectiontimeoutms" not in uri.lower():
            options["serverSelectionTimeoutMS"] = 10_000
        self.client: pymongo.MongoClient = pymongo.MongoClient(uri, **options)
        self.uri = uri
        self.db = self.client[self.database_name]
        self._executor = Executor(self.db)

    def _server_moved(self, uri: str) -> None:
        """The embedded server was started again on another port: reconnect."""
        old = self.client
        self._connect(uri)
        close_client(old)

    # ------------------------------------------------------------ statements
    def execute(self, sql: str, params: Params = None) -> Result:
        """Run exactly one statement; ``params`` binds ``:name`` / ``?`` placeholders."""
        started = time.perf_counter()
        try:
            statement = parse(sql)
            result = self._run(statement, params)
        except QueryLeafError as exc:
            if exc.sql is None:
                exc.sql = sql
            engine.add_server_log_hint(exc, self._lease)
            raise
        result.elapsed_ms = (time.perf_counter() - started) * 1000
        return result

    def execute_script(self, text: str) -> list[Result]:
        """Run ``;``-separated statements in order; stop at the first error (ScriptError)."""
        results: list[Result] = []
        for index, parsed in enumerate(parse_script(text)):
            started = time.perf_counter()
            try:
                result = self._run(parsed.statement, None)
                result.rows  # noqa: B018 - read now: the next statement may change them
            except QueryLeafError as exc:
                if exc.sql is None:
                    exc.sql = text
                engine.add_server_log_hint(exc, self._lease)
                start = Position(parsed.line, parsed.column)
                raise ScriptError(index, exc, results, start) from exc
            result.elapsed_ms = (time.perf_counter() - started) * 1000
            results.append(result)
        return results

    def explain(self, sql: str, params: Params = None) -> Result:
        """The commands ``sql`` would run, without running them."""
        try:
            statement = parse(sql)
            if not isinstance(statement, ast.Explain):
                statement = ast.Explain(statement, statement.pos)
            return self._run(statement, params)
        except QueryLeafError as exc:
            if exc.sql is None:
                exc.sql = sql  # as execute() does: the excerpt, secret literals masked
            raise

    def _run(self, statement: ast.Statement, params: Params) -> Result:
        plan = plan_statement(statement, params, self._executor.catalog(statement))
        return self._executor.run(plan)

    # ------------------------------------------------------------ subscriptions
    def on(self, subscription: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register a Python handler for a subscription (``deliver_to`` of that subscription)."""

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.handlers[subscription] = fn
            return fn

        return register

    def run_subscriptions(self, **kwargs: Any) -> Any:
        """Run every active subscription in this process until stopped (see events.worker)."""
        from queryleaf.events.worker import run_worker

        return run_worker(self, **kwargs)

    # ------------------------------------------------------------ lifecycle
    def close(self) -> None:
        close_client(self.client)
        self.close_lease()

    def close_lease(self) -> None:
        if self._lease is not None:
            self._lease.release()
            self._lease = None

    def __enter__(self) -> QueryLeaf:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(uri: str | None = None, database: str | None = None,
            data_dir: str | None = None) -> QueryLeaf:
    """Connect to ``uri`` (any MongoDB), or with no URI to the embedded default server."""
    return QueryLeaf(uri, database, data_dir)
