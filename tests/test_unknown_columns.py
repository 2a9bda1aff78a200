"""Unknown columns against the embedded server: a column that no sampled document has is a
warning where it is read and an error where INSERT/UPDATE would store its (NULL) value; the
double-quote trap (``SET name = "Jane"`` names a column) is the case that matters most."""

from __future__ import annotations

import pytest

import queryleaf.dbapi as dbapi
from queryleaf import sampling
from queryleaf.errors import PlanningError, ScriptError


@pytest.fixture()
def users(ql):
    ql.execute(
        "INSERT INTO users (_id, name, age, customer.name, items) VALUES "
        "(1, 'ann', 31, 'acme', JSON_ARRAY(JSON_OBJECT('price', 5))), "
        "(2, 'bob', 42, 'initech', JSON_ARRAY())"
    )
    return ql


@pytest.fixture()
def sampled(ql, monkeypatch) -> list[str]:
    """The collections sampled, in order (the sampler reads the server once per entry)."""
    names: list[str] = []
    take = ql._fields._take

    def spy(collection: str):
        names.append(collection)
        return take(collection)

    monkeypatch.setattr(ql._fields, "_take", spy)
    return names


def messages(result) -> list[str]:
    return [str(w).removeprefix("QL2002: ") for w in result.warnings]


# ---------------------------------------------------------------- SELECT: warnings


def test_unknown_column_warns_with_suggestion_and_position(users):
    result = users.execute("SELECT name, nmae FROM users ORDER BY name")
    assert result.rows == [{"name": "ann", "nmae": None}, {"name": "bob", "nmae": None}]
    [warning] = result.warnings
    assert warning.message == (
        "QL2002: unknown column nmae: no sampled document of users has it (it "
        "reads as NULL); did you mean name?"
    )
    assert (warning.position.line, warning.position.column) == (1, 14)


def test_nested_paths_and_array_elements_are_known(users):
    result = users.execute(
        "SELECT customer.name, items[0].price, items.price FROM users WHERE age > 1"
    )
    assert result.warnings == []
    result = users.execute("SELECT customer.nmae FROM users")
    assert messages(result) == [
        "unknown column customer.nmae: no sampled document of users has "
        "it (it reads as NULL); did you mean customer.name? at line 1, "
        "column 8"
    ]


def test_every_clause_is_checked_and_each_place_reported_once(users):
    result = users.execute(
        "SELECT name FROM users WHERE agee > 1 GROUP BY name HAVING COUNT(nam) > 0 ORDER BY name"
    )
    assert [w.message.removeprefix("QL2002: ").split(":")[0] for w in result.warnings] == [
        "unknown column agee",
        "unknown column nam",
    ]


def test_select_list_aliases_and_ordinals_are_not_fields(users):
    result = users.execute(
        "SELECT age AS years, COUNT(*) AS n FROM users GROUP BY years "
        "HAVING n > 0 ORDER BY n DESC, 1"
    )
    assert result.warnings == []
    assert users.execute("SELECT name AS who FROM users ORDER BY who").warnings == []


def test_qualified_reference_is_taken_as_meant(users):
    assert users.execute("SELECT users.nickname FROM users").warnings == []
    assert users.execute("SELECT u.nickname FROM users AS u WHERE u.rare IS NULL").warnings == []


def test_no_close_field_suggests_qualifying(users):
    [warning] = users.execute("SELECT zzz FROM users u").warnings
    assert warning.message.endswith("; write u.zzz if the field is too rare to be in the sample")


def test_join_and_correlated_subquery_columns_are_checked(users):
    users.execute("INSERT INTO orders (user_id, total) VALUES (1, 10)")
    result = users.execute(
        "SELECT o.total, nmae FROM orders o JOIN (SELECT _id, name FROM users) "
        "u ON o.user_id = u._id"
    )
    # nmae is not a column of u (its columns are known), so it is read from orders
    assert [w.message for w in result.warnings] == [
        "QL2002: unknown column nmae: no sampled document of orders has it (it reads as NULL); write "
        "o.nmae if the field is too rare to be in the sample"
    ]
    result = users.execute(
        "SELECT name FROM users WHERE EXISTS "
        "(SELECT 1 FROM orders o WHERE o.user_id = _id AND totl > 1)"
    )
    assert [w.message.removeprefix("QL2002: ").split(";")[0] for w in result.warnings] == [
        "unknown column totl: no sampled document of orders has it (it reads as NULL)"
    ]


def test_derived_tables_ctes_and_system_tables_are_not_sampled(users, sampled):
    result = users.execute(
        "WITH c AS (SELECT name AS n FROM users) SELECT d.n FROM (SELECT n FROM c) d ORDER BY n"
    )
    assert result.warnings == [] and sampled == ["users"]
    users.execute("SELECT name, status FROM EVENT_SUBSCRIPTIONS()")
    assert sampled == ["users"]


def test_statements_that_read_no_column_sample_nothing(users, sampled):
    users.execute("SELECT * FROM users")
    users.execute("SELECT COUNT(*) FROM users")
    users.execute("INSERT INTO users (name) VALUES ('cy')")
    users.execute("UPDATE users SET age = 1")
    users.execute("SELECT users.name FROM users")
    assert sampled == []


def test_one_sample_per_collection_until_it_ages(users, sampled, monkeypatch):
    for _ in range(3):
        users.execute("SELECT name, age FROM users WHERE age > 1")
    assert sampled == ["users"]
    monkeypatch.setattr(sampling, "MAX_AGE_S", -1.0)
    users.execute("SELECT name FROM users")
    assert sampled == ["users", "users"]


def test_empty_collection_warns_nothing(ql):
    ql.db.create_collection("empty")
    assert ql.execute("SELECT anything FROM empty").warnings == []


def test_collection_too_varied_to_judge_warns_nothing(ql, monkeypatch):
    monkeypatch.setattr(sampling, "MAX_PATHS", 3)
    ql.execute("INSERT INTO wide (a, b, c, d) VALUES (1, 2, 3, 4)")
    assert ql.execute("SELECT zz FROM wide").warnings == []


def test_insert_of_a_new_field_is_seen_at_once(users, sampled):
    assert len(users.execute("SELECT nickname FROM users").warnings) == 1
    users.execute("INSERT INTO users (name, nickname) VALUES ('cy', 'c')")
    assert users.execute("SELECT nickname FROM users").warnings == []
    assert sampled == ["users", "users"]


def test_update_adding_a_field_is_seen_by_a_view_over_it(users):
    users.execute("CREATE VIEW adults AS SELECT * FROM users WHERE age > 18")
    assert len(users.execute("SELECT email FROM adults").warnings) == 1
    users.execute("UPDATE users SET email = 'a@b.c'")
    assert users.execute("SELECT email FROM adults").warnings == []


def test_script_results_carry_their_own_warnings(users):
    first, second = users.execute_script("SELECT nmae FROM users; SELECT name FROM users;")
    assert len(first.warnings) == 1 and second.warnings == []
    assert (first.warnings[0].position.line, first.warnings[0].position.column) == (1, 8)


def test_delete_where_unknown_column_warns(users):
    result = users.execute("DELETE FROM users WHERE agee > 100")
    assert result.rowcount == 0
    assert [w.message.removeprefix("QL2002: ").split(";")[0] for w in result.warnings] == [
        "unknown column agee: no sampled document of users has it (it reads as NULL)"
    ]


def test_insert_select_follows_the_select_rule(users):
    result = users.execute("INSERT INTO archive (name, nick) SELECT name, nickname FROM users")
    assert result.rowcount == 2
    assert [w.message.removeprefix("QL2002: ").split(":")[0] for w in result.warnings] == [
        "unknown column nickname"
    ]


# ---------------------------------------------------------------- INSERT/UPDATE values: errors


def test_update_set_double_quoted_string_is_an_error_and_writes_nothing(users):
    before = list(users.db.users.find())
    with pytest.raises(PlanningError) as info:
        users.execute('UPDATE users SET name = "Jane" WHERE age > 40')
    assert info.value.message == (
        "unknown column \"Jane\"; string literals use single quotes ('Jane'); no sampled "
        "document of users has a field Jane; write users.Jane if the field is too rare to be in "
        "the sample"
    )
    assert (info.value.position.line, info.value.position.column) == (1, 25)
    assert list(users.db.users.find()) == before


def test_update_set_typo_suggests_the_field(users):
    with pytest.raises(PlanningError) as info:
        users.execute("UPDATE users SET age = agee + 1")
    assert info.value.message.endswith("; did you mean age?")


def test_update_value_read_through_an_alias_or_in_where(users):
    with pytest.raises(PlanningError, match='unknown column "nick"'):
        users.execute("UPDATE users u SET age = LENGTH(nick)")
    result = users.execute("UPDATE users SET age = age + 1 WHERE agee IS NULL")
    assert result.rowcount == 2 and len(result.warnings) == 1  # WHERE reads: a warning


def test_update_set_target_may_be_new_and_qualified_value_is_taken_as_meant(users):
    result = users.execute("UPDATE users SET nickname = name, rare = users.rare")
    assert result.rowcount == 2 and result.warnings == []
    assert users.db.users.find_one({"_id": 1})["nickname"] == "ann"


def test_update_of_an_empty_collection_is_not_checked(ql):
    ql.db.create_collection("empty")
    assert ql.execute('UPDATE empty SET name = "Jane"').rowcount == 0


def test_insert_values_double_quoted_string_names_the_trap(ql):
    with pytest.raises(PlanningError) as info:
        ql.execute('INSERT INTO users (name) VALUES ("Jane")')
    assert info.value.message == (
        'VALUES cannot refer to columns ("Jane" is a column name; '
        "string literals use single quotes: 'Jane')"
    )


def test_script_stops_at_the_unknown_column(users):
    with pytest.raises(ScriptError) as info:
        users.execute_script(
            'UPDATE users SET age = 0;\nUPDATE users SET name = "x";\nUPDATE users SET age = 9;'
        )
    assert info.value.index == 1
    assert (info.value.position.line, info.value.position.column) == (2, 25)
    assert sorted(d["age"] for d in users.db.users.find()) == [0, 0]


# ---------------------------------------------------------------- DB-API


def test_dbapi_warns(server, dbname):
    with dbapi.connect(server.uri, database=dbname) as conn:
        cur = conn.cursor()
        cur.execute("INSERT INTO users (name) VALUES ('ann')")
        with pytest.warns(
            dbapi.Warning,
            match=r"unknown column nmae: .*did you mean name\? at "
            r"line 1, column 8",
        ):
            cur.execute("SELECT nmae FROM users")
        assert cur.fetchall() == [(None,)]
        with pytest.raises(dbapi.ProgrammingError, match="string literals use single quotes"):
            cur.execute('UPDATE users SET name = "Jane"')
        conn.queryleaf.client.drop_database(dbname)
