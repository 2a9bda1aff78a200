"""Differential testing of queryleaf's SELECT semantics against SQLite (stdlib ``sqlite3``).

The same generated table goes into SQLite and into MongoDB, the same generated query runs on both
(rendered once per dialect), and the results are compared. See docs/testing.md.

Modules:

- ``data``: the table schema and the hypothesis strategy for its rows (NULL *and* missing).
- ``sqlgen``: a tiny expression/query model rendered to queryleaf SQL and to SQLite SQL, and the
  hypothesis strategies that generate queries over the language queryleaf supports.
- ``engines``: loading rows into SQLite / MongoDB and running a query on each.
- ``compare``: value normalisation and the result comparison (ordered, key-ordered or multiset).

Over several tables (tests/test_differential_relational.py):

- ``relations``: the three tables, relations under aliases, ``Select`` with joins and ``WITH``,
  the scopes expressions draw their columns from;
- ``selectgen``: query bodies (projection, grouped) over a FROM clause;
- ``joingen``, ``subquerygen``, ``windowgen``, ``derivedgen``: the query shapes;
- ``runner``: running a ``Select`` on both engines; ``gaps``: switches for missing features and
  open bugs.
"""
