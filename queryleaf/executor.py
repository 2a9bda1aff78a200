"""Runs plan objects through pymongo and returns Results."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator
from typing import Any

import bson.errors
import pymongo.errors
from pymongo.client_session import ClientSession
from pymongo.database import Database

from queryleaf import mongosh, plan
from queryleaf.documents import get_path, nest, spread_row
from queryleaf.errors import ErrorCode, ExecutionError, ServerUnreachable
from queryleaf.planner import Catalog
from queryleaf.result import Result
from queryleaf.validation_errors import explain_validation
from queryleaf.write_failures import insert_failed, multi_write_failed, query_failed_during_insert

INSERT_BATCH = 1000
CURSOR_BATCH = 1000  # rows per server batch: bounds the memory of a streamed result
CATALOG_TTL_S = 5.0
NAMESPACE_EXISTS = 48  # MongoDB's code: create of a name a collection or view has


# The error labels a statement's error may carry that queryleaf explains (transaction.py).
KNOWN_LABELS = ("TransientTransactionError", "UnknownTransactionCommitResult")


def error_labels(exc: pymongo.errors.PyMongoError) -> frozenset[str]:
    return frozenset(label for label in KNOWN_LABELS if exc.has_error_label(label))


def server_error(exc: pymongo.errors.PyMongoError) -> ExecutionError:
    if isinstance(exc, pymongo.errors.BulkWriteError):
        errors = exc.details.get("writeErrors", [])
        first = errors[0] if errors else {}
        inserted = exc.details.get("nInserted", 0)
        reason = explain_validation(first) if first else str(exc)
        message = f"{reason} ({inserted} row(s) written before the error)"
        return ExecutionError(
            message, first.get("code"), first.get("codeName"), labels=error_labels(exc)
        )
    if isinstance(exc, pymongo.errors.OperationFailure):
        details = exc.details or {}
        if "scalar subquery returned more than one row" in str(details.get("errmsg", "")):
            return ExecutionError(
                "a scalar subquery returned more than one row",
                exc.code,
                details.get("codeName"),
                labels=error_labels(exc),
            )
        name = f" ({details['codeName']})" if details.get("codeName") else ""
        reason = explain_validation(details) if "errmsg" in details else str(exc)
        return ExecutionError(
            f"server error {exc.code}{name}: {reason}",
            exc.code,
            details.get("codeName"),
            labels=error_labels(exc),
        )
    if isinstance(exc, pymongo.errors.ConnectionFailure):
        return ServerUnreachable(f"cannot reach the MongoDB server: {exc}", exc)
    return ExecutionError(str(exc))


def in_transaction(session: ClientSession | None) -> bool:
    """Whether commands sent in ``session`` are part of a transaction (a statement outside one
    runs in a session of its own: see queryleaf/cancel.py)."""
    return session is not None and session.in_transaction


# What the driver refuses to send: a value BSON cannot hold, a document over the server's size
# limit, a command nested deeper than the encoder's recursion allows.
DRIVER_ERRORS = (bson.errors.BSONError, OverflowError, UnicodeEncodeError, RecursionError)


def _driver_error(exc: BaseException) -> ExecutionError:
    if isinstance(exc, pymongo.errors.DocumentTooLarge):
        return ExecutionError(
            f"a document or command is larger than MongoDB allows (16 MB for a document): {exc}"
        )
    if isinstance(exc, RecursionError):
        return ExecutionError(
            "the command is nested too deeply to encode as BSON (see Limits in docs/semantics.md)"
        )
    if isinstance(exc, OverflowError):
        return ExecutionError(f"a value does not fit in BSON: {exc} (integers are 64-bit)")
    if isinstance(exc, UnicodeEncodeError):
        return ExecutionError(
            f"text that is not valid Unicode cannot be sent as BSON (UTF-8): {exc}"
        )
    return ExecutionError(f"the driver cannot encode the command as BSON: {exc}")


class Executor:
    def __init__(self, db: Database):
        self.db = db
        self._tables: frozenset[str] | None = None
        self._tables_at = 0.0

    def catalog(
        self, names: frozenset[str] = frozenset(), known: frozenset[str] = frozenset()
    ) -> Catalog:
        """What the planner needs to know: the existing tables, when the statement reads any
        (``names``: the tables it names, see sql/walk.py ``table_names``).

        The list of collections is kept for a few seconds and read again at once when the
        statement names a table not in it, so a table made elsewhere is never reported unknown.
        ``known`` are tables that exist for this statement although the list may not show them
        (those an open transaction created: listCollections runs outside transactions).
        """
        if not names:
            return Catalog()
        fresh = time.monotonic() - self._tables_at < CATALOG_TTL_S
        if self._tables is None or not fresh or not names <= self._tables | known:
            try:
                self._tables = frozenset(self.db.list_collection_names())
            except pymongo.errors.PyMongoError as exc:
                raise server_error(exc) from exc
            self._tables_at = time.monotonic()
        return Catalog(self._tables | known)

    def run(
        self, p: plan.Plan, session: ClientSession | None = None, comment: str | None = None
    ) -> Result:
        """Run ``p``; with ``session`` (an open transaction's, or the statement's own) every
        command is part of it. ``comment`` tags every command of the statement (Ctrl-C finds
        it on the server by it: see queryleaf/cancel.py)."""
        if not in_transaction(session) and not p.transactional:
            session = None  # the statement's own session is for the commands below only
        try:
            return self._run(p, session, comment)
        except pymongo.errors.PyMongoError as exc:
            raise server_error(exc) from exc
        except DRIVER_ERRORS as exc:
            raise _driver_error(exc) from exc

    # ------------------------------------------------------------ dispatch
    def _run(self, p: plan.Plan, session: ClientSession | None, comment: str | None) -> Result:
        if isinstance(p, plan.Explain):
            return self.explain(p.inner)
        if isinstance(p, plan.Aggregate | plan.Find):
            return self.query(p, session, comment)
        if isinstance(p, plan.Insert):
            return self.insert(p, session, comment)
        if isinstance(p, plan.InsertSelect):
            return self.insert_select(p, session, comment)
        if isinstance(p, plan.Update):
            return self.update(p, session, comment)
        if isinstance(p, plan.Delete):
            return self.delete(p, session, comment)
        if isinstance(p, plan.TransactionControl):
            raise ExecutionError(
                "BEGIN, COMMIT and ROLLBACK are run by the connection "
                "(QueryLeaf), which owns the transaction's session"
            )
        if session is not None and not p.transactional:  # the connection refuses these
            raise ExecutionError(f"{type(p).__name__} cannot run inside a transaction")
        if isinstance(p, plan.SelfRunning):
            return p.run(self.db, session)
        if isinstance(p, plan.CreateView):
            return self.create_view(p)
        if isinstance(p, plan.DropView):
            return self.drop_view(p)
        if isinstance(p, plan.CreateTable):
            return self.create_table(p)
        if isinstance(p, plan.DropTable):
            return self.drop_table(p)
        raise ExecutionError(f"no way to run a {type(p).__name__} plan")

    def write_filter(
        self,
        p: plan.Update | plan.Delete,
        session: ClientSession | None = None,
        comment: str | None = None,
    ) -> dict[str, Any]:
        if p.id_query is None:
            return p.filter
        key = p.id_query.columns[0].key if p.id_query.columns else "_id"
        ids = [d.get(key) for d in self.cursor(p.id_query, session, comment)]
        return {"_id": {"$in": ids}}

    # ------------------------------------------------------------ queries
    def cursor(
        self,
        p: plan.Aggregate | plan.Find,
        session: ClientSession | None = None,
        comment: str | None = None,
    ) -> Iterable[dict[str, Any]]:
        if isinstance(p, plan.Find):
            return self.db[p.collection].find(
                p.filter,
                p.projection,
                sort=p.sort or None,
                skip=p.skip,
                limit=p.limit,
                batch_size=CURSOR_BATCH,
                session=session,
                comment=comment,
            )
        options: dict[str, Any] = {"batchSize": CURSOR_BATCH, "session": session}
        if comment is not None:
            options["comment"] = comment
        if p.collection is None:
            return self.db.aggregate(p.pipeline, **options)
        return self.db[p.collection].aggregate(p.pipeline, **options)

    def query(
        self,
        p: plan.Aggregate | plan.Find,
        session: ClientSession | None = None,
        comment: str | None = None,
    ) -> Result:
        """Rows stream from the cursor as the caller iterates (see Result); the first batch is
        read here, so the statement's work (and its errors) happen while it runs."""
        cursor = self.cursor(p, session, comment)
        if p.columns is None:
            return Result(None, statement="SELECT", stream=self._first_batch(iter(cursor)))
        columns = p.columns
        if any(c.spread for c in columns):
            rows = (spread_row(d, columns) for d in cursor)
            return Result(None, statement="SELECT", stream=self._first_batch(rows))
        rows = ({c.name: get_path(d, c.key) for c in columns} for d in cursor)
        result = Result(
            [c.name for c in columns], statement="SELECT", stream=self._first_batch(rows)
        )
        result.declared_types = {c.name: c.type for c in columns if c.type is not None}
        return result

    @classmethod
    def _first_batch(cls, rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """``rows``, guarded, with the first one read now (a find sends nothing until then)."""
        guarded = cls._guard(rows)
        try:
            first = next(guarded)
        except StopIteration:
            return iter(())
        return itertools.chain((first,), guarded)

    @staticmethod
    def _guard(rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """Server errors met while streaming surface as ExecutionError, like the others."""
        try:
            yield from rows
        except pymongo.errors.PyMongoError as exc:
            raise server_error(exc) from exc
        except DRIVER_ERRORS as exc:
            raise _driver_error(exc) from exc

    # ------------------------------------------------------------ writes
    def insert(
        self, p: plan.Insert, session: ClientSession | None = None, comment: str | None = None
    ) -> Result:
        documents = p.documents
        if p.compute is not None:
            documents = list(self.db.aggregate(p.compute, session=session, comment=comment))
        if not documents:
            return Result(rowcount=0, statement="INSERT", message="INSERT 0")
        n = self._insert_rows(p.collection, documents, 0, len(documents), session, comment)
        return Result(rowcount=n, statement="INSERT", message=f"INSERT {n}")

    def insert_select(
        self, p: plan.InsertSelect, session: ClientSession | None = None, comment: str | None = None
    ) -> Result:
        result = self.query(p.source, session, comment)
        # SELECT * rows are documents: stored as they are (their field names are names, never
        # paths), and streamed; named columns are stored at their target paths.
        whole = not p.columns and (
            p.source.columns is None or any(c.spread for c in p.source.columns)
        )
        if p.columns and len(p.columns) != len(result.columns):
            raise ExecutionError(
                f"INSERT has {len(p.columns)} column(s) but the query returns {len(result.columns)}"
            )
        columns = [] if whole else result.columns
        targets = list(p.columns) or [tuple(c.split(".")) for c in columns]
        total = 0
        batch: list[dict[str, Any]] = []
        rows = iter(result)
        while True:
            try:
                row = next(rows)
            except StopIteration:
                break
            except ExecutionError as exc:  # the query failed after some batches were stored
                message = query_failed_during_insert(exc.message, total, in_transaction(session))
                raise ExecutionError(message, exc.code, exc.code_name, labels=exc.labels) from exc
            doc: dict[str, Any] = dict(row) if whole else {}
            for target, column in zip(targets, columns, strict=True):
                nest(doc, target, row[column])
            batch.append(doc)
            if len(batch) >= INSERT_BATCH:
                total += self._insert_rows(p.collection, batch, total, None, session, comment)
                batch = []
        if batch:
            total += self._insert_rows(p.collection, batch, total, None, session, comment)
        return Result(rowcount=total, statement="INSERT", message=f"INSERT {total}")

    def _insert_rows(
        self,
        collection: str,
        documents: list[dict[str, Any]],
        before: int,
        total: int | None,
        session: ClientSession | None,
        comment: str | None = None,
    ) -> int:
        """Insert in order; a failure says which rows of the statement were stored and which
        were not (``before``: rows stored by earlier batches, ``total``: the statement's rows
        when known)."""
        try:
            inserted = self.db[collection].insert_many(documents, session=session, comment=comment)
            return len(inserted.inserted_ids)
        except pymongo.errors.BulkWriteError as exc:
            message = insert_failed(exc.details, before, total, in_transaction(session))
            if message is None:
                raise
            error = server_error(exc)
            raise ExecutionError(message, error.code, error.code_name, labels=error.labels) from exc

    def update(
        self, p: plan.Update, session: ClientSession | None = None, comment: str | None = None
    ) -> Result:
        where = self.write_filter(p, session, comment)
        try:
            res = self.db[p.collection].update_many(
                where, p.update, session=session, comment=comment
            )
        except pymongo.errors.OperationFailure as exc:
            raise self._multi_write_error("UPDATE", exc, session) from exc
        return Result(
            rowcount=res.matched_count, statement="UPDATE", message=f"UPDATE {res.matched_count}"
        )

    def delete(
        self, p: plan.Delete, session: ClientSession | None = None, comment: str | None = None
    ) -> Result:
        where = self.write_filter(p, session, comment)
        try:
            res = self.db[p.collection].delete_many(where, session=session, comment=comment)
        except pymongo.errors.OperationFailure as exc:
            raise self._multi_write_error("DELETE", exc, session) from exc
        return Result(
            rowcount=res.deleted_count, statement="DELETE", message=f"DELETE {res.deleted_count}"
        )

    @staticmethod
    def _multi_write_error(
        verb: str, exc: pymongo.errors.OperationFailure, session: ClientSession | None
    ) -> ExecutionError:
        error = server_error(exc)
        return ExecutionError(
            multi_write_failed(verb, error.message, in_transaction(session)),
            error.code,
            error.code_name,
            labels=error.labels,
        )

    def create_view(self, p: plan.CreateView) -> Result:
        self._tables = None
        existing = list(self.db.list_collections(filter={"name": p.name}))
        if existing and existing[0].get("type") != "view":
            raise ExecutionError(f"{p.name} is a collection, not a view; a view cannot replace it")
        if existing and not p.or_replace:
            raise ExecutionError(f"view {p.name} already exists (use CREATE OR REPLACE VIEW)")
        create = {"create": p.name, "viewOn": p.source, "pipeline": p.pipeline}
        if not existing:
            self.db.command(create)
        else:
            # Replace the view; if the new definition is refused, put the old one back.
            # (collMod would do it in one step, but not every server applies it to views.)
            old = existing[0].get("options", {})
            self.db.drop_collection(p.name)
            try:
                self.db.command(create)
            except pymongo.errors.PyMongoError:
                self.db.command(
                    {
                        "create": p.name,
                        "viewOn": old.get("viewOn"),
                        "pipeline": old.get("pipeline", []),
                    }
                )
                raise
        return Result(statement="CREATE VIEW", message=f"CREATE VIEW {p.name}")

    def drop_view(self, p: plan.DropView) -> Result:
        self._tables = None
        info = list(self.db.list_collections(filter={"name": p.name}))
        if not info:
            if p.if_exists:
                return Result(statement="DROP VIEW", message=f"DROP VIEW {p.name} (did not exist)")
            raise ExecutionError(f"view {p.name} does not exist")
        if info[0].get("type") != "view":
            raise ExecutionError(
                f"{p.name} is a collection, not a view; DROP VIEW only drops views"
            )
        self.db.drop_collection(p.name)
        return Result(statement="DROP VIEW", message=f"DROP VIEW {p.name}")

    def create_table(self, p: plan.CreateTable) -> Result:
        self._tables = None
        create, *index = p.commands()
        # The server accepts a create of an existing collection with the same options, so
        # the name is looked up first (and NamespaceExists still caught: a create in between).
        exists = bool(list(self.db.list_collections(filter={"name": p.name})))
        try:
            if not exists:
                self.db.command(create)
        except pymongo.errors.OperationFailure as exc:
            if exc.code != NAMESPACE_EXISTS:
                raise
            exists = True
        if exists:
            if p.if_not_exists:
                message = f"CREATE TABLE {p.name} (already exists)"
                return Result(statement="CREATE TABLE", message=message)
            raise ExecutionError(
                f"table {p.name} already exists (a collection or view has that name; "
                "CREATE TABLE IF NOT EXISTS keeps it)",
                NAMESPACE_EXISTS,
                "NamespaceExists",
                p.position,
            )
        for command in index:
            self.db.command(command)
        return Result(statement="CREATE TABLE", message=f"CREATE TABLE {p.name}")

    def drop_table(self, p: plan.DropTable) -> Result:
        self._tables = None
        info = list(self.db.list_collections(filter={"name": p.name}))
        if not info:
            if p.if_exists:
                message = f"DROP TABLE {p.name} (did not exist)"
                return Result(statement="DROP TABLE", message=message)
            raise ExecutionError(
                f"table {p.name} does not exist",
                position=p.position,
                error_code=ErrorCode.UNKNOWN_TABLE,
            )
        if info[0].get("type") == "view":
            raise ExecutionError(
                f"{p.name} is a view, not a table; DROP VIEW drops it", position=p.position
            )
        self.db.drop_collection(p.name)
        return Result(statement="DROP TABLE", message=f"DROP TABLE {p.name}")

    # ------------------------------------------------------------ EXPLAIN
    def explain(self, p: plan.Plan) -> Result:
        commands = p.commands()
        rows = [{"mongosh": mongosh.to_mongosh(c), "json": mongosh.to_json(c)} for c in commands]
        return Result(["mongosh", "json"], rows, len(rows), "EXPLAIN", commands=commands)
