"""Switches of the relational generator (joins, subqueries, windows, derived tables, CTEs).

Two kinds, both read by the generator modules (``joingen``, ``subquerygen``, ``windowgen``,
``derivedgen``, ``selectgen``):

- *Features queryleaf lacks* (``False`` = not generated): turn on when the feature lands.
- *Known bugs* (``AVOID_*``, ``True`` = the generator steers clear): each has a strict xfail
  ``test_known_bug_<name>`` in tests/test_differential_relational.py with the minimal repro; when
  it XPASSes the bug is fixed: delete the marker and set the switch to ``False``.

The repro of each is in docs/testing.md and next to its test.
"""

# ---- features queryleaf does not have yet (issue 9, item 2)

# x op ANY|SOME|ALL (subquery); SQLite gets an equivalent CASE over EXISTS (subquerygen).
QUANTIFIED_COMPARISONS = True
# SELECT * inside a derived table or CTE ("must list its columns" today).
DERIVED_SELECT_STAR = True

# ---- known bugs (the generator avoids the construct while True)

# x [NOT] IN (subquery) with x NULL/missing, the subquery non-empty and without NULLs: IN is
# FALSE and NOT IN TRUE (SQL: NULL both), so NOT IN keeps and NOT (x IN ...) keeps rows SQL drops.
# Avoided by COALESCE(x, literal).
AVOID_IN_SUBQUERY_NULL_OPERAND = False  # fixed
# A RANGE frame (also the default frame of an aggregate with ORDER BY) over a NULL/missing sort
# key fails on the server: "$setWindowFields range windows require numeric sortBy values".
# Avoided by COALESCE(key, 0).
AVOID_NULL_RANGE_KEYS = False  # fixed
# Arithmetic (+ - * / %) on a column that is missing, read through a $lookup variable (the left
# side of a join in ON or a WHERE moved into the join, an outer column in a correlated subquery):
# the embedded server binds the variable to a missing value that $add/$subtract/... refuse
# ("$add only supports numeric or date types, not object"; MongoDB documents null for a missing
# operand). queryleaf can bind such variables with $ifNull, as it does for $let. Avoided by
# reading such columns as COALESCE(col, NULL) in those places (relations.RelScope).
AVOID_ARITHMETIC_ON_MISSING_JOIN_VALUE = False  # fixed
# SELECT * (or d.*) over a derived table / CTE that selects _id names it _0, _1, ... (an internal
# name leaks; "_id through derived tables may be renamed"). Avoided by not generating the outer
# SELECT * when the relation has an _id column.
AVOID_STAR_OVER_DERIVED_ID = False  # fixed
# PARTITION BY with two or more keys puts NULL and missing in different partitions (the
# partitionBy document keeps a missing key missing). Avoided by COALESCE(key, NULL) keys.
AVOID_MULTI_KEY_PARTITION_MISSING = False  # fixed
# The same window call twice in a query (twice in the select list, or selected and repeated in
# ORDER BY) is a PlanningError "ROW_NUMBER() needs an OVER (...) clause". Avoided by one of each
# per select list and ORDER BY by the ordinal.
AVOID_REPEATED_WINDOW_CALL = False  # fixed
# A key repeated in a window's ORDER BY with another direction (OVER (ORDER BY _id, _id DESC)):
# the last direction wins (SQL: the first; the repeat changes nothing). Avoided by dropping
# repeats.
AVOID_REPEATED_WINDOW_ORDER_KEY = False  # fixed
# Arithmetic on a scalar subquery that finds no row ((SELECT b.i FROM b WHERE ...) + 1, or
# unary minus) fails on the embedded server: "$add only supports numeric or date types, not
# object" (the empty result is missing, not null). Avoided by COALESCE((SELECT ...), NULL).
AVOID_ARITHMETIC_ON_EMPTY_SCALAR_SUBQUERY = False  # fixed
# A subquery in JOIN ... ON fails on the server: "Use of undefined variable: o1_a" (the $lookup
# of the subquery reads a variable of the join's $lookup that is not passed on). Avoided by no
# subqueries in ON (subquerygen).
AVOID_SUBQUERY_IN_ON = False  # fixed
# A subquery in the select list or HAVING of a grouped query, correlated on a GROUP BY key
# (SELECT a.i, (SELECT COUNT(*) FROM b WHERE b.i = a.i) FROM a GROUP BY a.i; HAVING EXISTS (...
# b.i = a.i)), reads the key as NULL: wrong results. Avoided by uncorrelated subqueries there.
AVOID_CORRELATED_SUBQUERY_ON_GROUP_KEY = False  # fixed
# A derived table inside a subquery whose WHERE reads the enclosing query
# (EXISTS (SELECT 1 FROM (SELECT b.i FROM b WHERE b.i = a.i) x)) sees no rows (EXISTS is FALSE,
# COUNT(*) 0). Avoided by uncorrelated derived tables only there.
AVOID_CORRELATED_DERIVED_IN_SUBQUERY = False  # fixed
# A bare (unqualified) column name in ON is resolved against the wrong table: a name of the
# relation(s) already joined is read from the table being joined (FROM (SELECT _id AS k ...) d
# JOIN b ON k = b.i finds no rows), and under RIGHT JOIN a name of the right table is looked up in
# the left one (a PlanningError "d has no column s", or NULLs). Avoided by qualified names in ON.
AVOID_BARE_NAMES_IN_ON = False  # fixed
