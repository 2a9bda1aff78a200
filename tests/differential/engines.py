"""Loading one generated table into SQLite and MongoDB, and running a query on each."""

from __future__ import annotations

import itertools
import math
import sqlite3
from dataclasses import dataclass
from typing import Any

from .data import COLUMNS, MISSING, SQLITE_TYPES, mongo_document, sqlite_tuple

_names = itertools.count()


@dataclass
class Answer:
    columns: list[str]
    rows: list[tuple[Any, ...]]


def _cot(x: float | None) -> float | None:
    if x is None or math.isinf(x) or math.tan(x) == 0:
        return None
    return 1 / math.tan(x)


def _bit_count(x: Any) -> int | None:
    """queryleaf's BIT_COUNT: the 1 bits of a 64-bit integer; NULL for anything else."""
    if isinstance(x, float) and x.is_integer() and -(2**63) <= x < 2**63:
        x = int(x)
    if not isinstance(x, int):
        return None
    return bin(x & (2**64 - 1)).count("1")


def _bit_length(x: Any) -> int | None:
    return None if x is None else 8 * len(str(x).encode("utf-8"))


# Functions SQLite lacks, with queryleaf's (MySQL's) meaning.
_FUNCTIONS = {"COT": _cot, "BIT_COUNT": _bit_count, "BIT_LENGTH": _bit_length}


class SqliteTable:
    """An in-memory SQLite database holding the table (LIKE made case-sensitive)."""

    def __init__(self, name: str, rows: list[dict[str, Any]]):
        self.con = sqlite3.connect(":memory:")
        self.con.execute("PRAGMA case_sensitive_like = ON")
        for function, fn in _FUNCTIONS.items():
            self.con.create_function(function, 1, fn, deterministic=True)
        cols = ", ".join(f"{c} {SQLITE_TYPES[t]}" for c, t in COLUMNS.items())
        self.con.execute(f"CREATE TABLE {name} ({cols})")
        marks = ", ".join("?" for _ in COLUMNS)
        self.con.executemany(
            f"INSERT INTO {name} VALUES ({marks})", [sqlite_tuple(r) for r in rows]
        )

    def query(self, sql: str) -> Answer:
        cur = self.con.execute(sql)
        return Answer([d[0] for d in cur.description], [tuple(r) for r in cur.fetchall()])

    def close(self) -> None:
        self.con.close()


class MongoTable:
    """A fresh collection holding the rows as documents (MISSING values left out)."""

    def __init__(self, ql: Any, rows: list[dict[str, Any]], name: str | None = None):
        self.ql = ql
        self.name = name or f"dt{next(_names)}"
        self.collection = ql.db[self.name]
        self.collection.drop()
        docs = [mongo_document(r) for r in rows]
        if docs:
            self.collection.insert_many(docs)
        else:  # an empty table still exists (queryleaf rejects unknown tables)
            ql.db.create_collection(self.name)

    def query(self, sql: str, star: bool = False, names: list[str] | None = None) -> Answer:
        """Run through queryleaf. ``star``: rows are matched to ``names`` by column name
        (``SELECT *`` returns ``_id`` and only the fields some document holds)."""
        res = self.ql.execute(sql)
        if star:
            assert names is not None
            return Answer(list(names), [tuple(r.get(n) for n in names) for r in res.rows])
        return Answer(list(res.columns), [tuple(r[c] for c in res.columns) for r in res.rows])

    def drop(self) -> None:
        self.collection.drop()


class Tables:
    """The same rows in both engines, under one table name; a context manager."""

    def __init__(self, ql: Any, rows: list[dict[str, Any]]):
        self.mongo = MongoTable(ql, rows)
        self.name = self.mongo.name
        self.sqlite = SqliteTable(self.name, rows)

    def __enter__(self) -> Tables:
        return self

    def __exit__(self, *exc: object) -> None:
        self.mongo.drop()
        self.sqlite.close()


class Database:
    """Several tables (``{placeholder: rows}``, e.g. ``@A@``) in both engines: one in-memory
    SQLite database and one fresh collection per table; a context manager."""

    def __init__(self, ql: Any, tables: dict[str, list[dict[str, Any]]], columns: dict[str, str]):
        self.ql = ql
        self.names = {p: f"dt{next(_names)}" for p in tables}
        self.con = sqlite3.connect(":memory:")
        self.con.execute("PRAGMA case_sensitive_like = ON")
        for function, fn in _FUNCTIONS.items():
            self.con.create_function(function, 1, fn, deterministic=True)
        self.collections = []
        for p, data in tables.items():
            name = self.names[p]
            cols = ", ".join(f"{c} {SQLITE_TYPES[t]}" for c, t in columns.items())
            self.con.execute(f"CREATE TABLE {name} ({cols})")
            marks = ", ".join("?" for _ in columns)
            self.con.executemany(
                f"INSERT INTO {name} VALUES ({marks})",
                [
                    tuple(None if r.get(c, MISSING) is MISSING else r[c] for c in columns)
                    for r in data
                ],
            )
            coll = ql.db[name]
            coll.drop()
            if data:
                coll.insert_many([mongo_document(r) for r in data])
            else:
                ql.db.create_collection(name)
            self.collections.append(coll)

    def resolve(self, sql: str) -> str:
        for p, name in self.names.items():
            sql = sql.replace(p, name)
        return sql

    def sqlite(self, sql: str) -> Answer:
        cur = self.con.execute(sql)
        return Answer([d[0] for d in cur.description], [tuple(r) for r in cur.fetchall()])

    def mongo(self, sql: str) -> tuple[Answer, list[dict[str, Any]]]:
        """queryleaf's answer, and its rows as dicts (for SELECT *, matched by name)."""
        res = self.ql.execute(sql)
        return (
            Answer(list(res.columns), [tuple(r[c] for c in res.columns) for r in res.rows]),
            res.rows,
        )

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        for coll in self.collections:
            coll.drop()
        self.con.close()
