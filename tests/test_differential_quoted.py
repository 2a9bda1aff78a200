"""Differential test for quoted names: fields called ``$k``, ``a.b`` and ``x y`` (and a plain
``i``) are read, filtered, grouped, ordered and joined by quoted identifiers, on queryleaf
(MongoDB) and on SQLite, where such names are ordinary quoted columns. A name that MongoDB would
take as an operator or a path must behave as the plain column does (docs/semantics.md, Names).
"""

from __future__ import annotations

import itertools
import sqlite3
from collections import Counter
from typing import Any

from differential.data import MISSING
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FIELDS = {
    "$k": st.integers(-2, 2),
    "a.b": st.integers(-2, 2),
    "x y": st.sampled_from("ab"),
    "i": st.integers(-2, 2),
}
QUOTED = {name: f'"{name}"' for name in FIELDS}
_tables = itertools.count()


def _cell(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.just(MISSING), st.none(), values, values)


rows = st.lists(st.fixed_dictionaries({name: _cell(v) for name, v in FIELDS.items()}), max_size=12)
numeric = st.sampled_from(['"$k"', '"a.b"', "i"])
literal = st.integers(-2, 2).map(str)
comparison = st.tuples(
    numeric, st.sampled_from(["=", "<>", "<", ">=", "<="]), st.one_of(literal, numeric)
).map(" ".join)
text_test = st.sampled_from(
    ["\"x y\" = 'a'", "\"x y\" <> 'b'", '"x y" IS NULL', "\"x y\" IN ('a', 'z')"]
)
atom = st.one_of(
    comparison,
    text_test,
    numeric.map(lambda c: f"{c} IS NOT NULL"),
    numeric.map(lambda c: f"{c} IN (0, 1, NULL)"),
    numeric.map(lambda c: f"{c} BETWEEN -1 AND 1"),
)
predicate = st.recursive(
    atom,
    lambda p: st.one_of(
        st.tuples(p, st.sampled_from(["AND", "OR"]), p).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        p.map(lambda x: f"NOT ({x})"),
    ),
    max_leaves=4,
)
queries = st.one_of(
    predicate.map(lambda w: f'SELECT _id, "$k", "a.b", "x y", i FROM @T@ WHERE {w}'),
    st.tuples(st.sampled_from(['"$k"', '"a.b"', '"x y"']), numeric).map(
        lambda t: (
            f"SELECT {t[0]} AS g, COUNT(*) AS n, SUM({t[1]}) AS s, MIN({t[1]}) AS m "
            f"FROM @T@ GROUP BY {t[0]} HAVING COUNT({t[1]}) >= 0"
        )
    ),
    st.tuples(numeric, st.booleans()).map(
        lambda t: f"SELECT _id, {t[0]} AS v FROM @T@ ORDER BY {t[0]}{' DESC' if t[1] else ''}, _id"
    ),
    st.tuples(numeric, numeric).map(
        lambda t: f"SELECT x._id AS l, y._id AS r FROM @T@ x JOIN @T@ y ON x.{t[0]} = y.{t[1]}"
    ),
    numeric.map(
        lambda c: f"SELECT _id FROM @T@ WHERE {c} NOT IN (SELECT {c} FROM @T@ WHERE \"x y\" = 'a')"
    ),
)


def _answer(rows_: list[tuple]) -> Counter:
    return Counter(
        tuple(
            float(v) if isinstance(v, int | float) and not isinstance(v, bool) else v for v in row
        )
        for row in rows_
    )


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=rows, sqls=st.lists(queries, min_size=1, max_size=4))
def test_quoted_names_agree_with_sqlite(ql, data, sqls):
    name = f"qt{next(_tables)}"
    documents = [
        {"_id": n, **{k: v for k, v in row.items() if v is not MISSING}}
        for n, row in enumerate(data)
    ]
    if documents:
        ql.db[name].insert_many(documents)
    else:
        ql.db.create_collection(name)
    lite = sqlite3.connect(":memory:")
    columns = ", ".join(["_id INTEGER", *(f"{QUOTED[c]}" for c in FIELDS)])
    lite.execute(f"CREATE TABLE {name} ({columns})")
    lite.executemany(
        f"INSERT INTO {name} VALUES ({', '.join('?' * (len(FIELDS) + 1))})",
        [
            (n, *(None if row[c] is MISSING else row[c] for c in FIELDS))
            for n, row in enumerate(data)
        ],
    )
    try:
        for template in sqls:
            sql = template.replace("@T@", name)
            expected = lite.execute(sql).fetchall()
            result = ql.execute(sql)
            got = [tuple(row[c] for c in result.columns) for row in result]
            if " ORDER BY " in sql:
                assert [tuple(r) for r in got] == [tuple(r) for r in expected], sql
            assert _answer(got) == _answer(expected), sql
    finally:
        ql.db[name].drop()
