"""Every command queryleaf sends runs on the minimum MongoDB version (docs/semantics.md,
"MongoDB version"): no stage, operator, variable or option newer than that minimum, unless that
section names the feature and its higher minimum.

The tests run on the embedded server, which accepts some constructs MongoDB 6.0 does not; this
check plans the commands of the golden planner cases, of the SQL reference's examples and of a
fixed sample of the differential generator, and compares what they use with the versions
MongoDB's documentation gives ("New in version ..."). An operator missing from the table below
fails too: look its version up and add it.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import test_sql_reference as reference
from differential.sqlgen import queries
from hypothesis import HealthCheck, given, settings

from queryleaf.errors import QueryLeafError
from queryleaf.planner import plan_statement
from queryleaf.sql.parser import parse, parse_script

ROOT = Path(__file__).resolve().parent.parent
SEMANTICS = ROOT / "docs" / "semantics.md"
GOLDEN = ROOT / "tests" / "golden" / "planner"

Version = tuple[int, int]
EARLY: Version = (4, 4)  # in MongoDB 4.4 already (or long before)

# Aggregation stages and expression operators, query and update operators: the version that
# introduced each (MongoDB's documentation, "New in version"). Newer than 6.0 are listed too, so
# that using one fails with its version rather than as unknown.
OPERATORS: dict[str, Version] = {
    **dict.fromkeys(
        [
            # stages
            "$addFields",
            "$facet",
            "$group",
            "$limit",
            "$lookup",
            "$match",
            "$project",
            "$replaceRoot",
            "$set",
            "$skip",
            "$sort",
            "$unionWith",
            "$unset",
            "$unwind",
            "$changeStream",
            "$count",
            "$replaceWith",
            "$sample",
            # expressions and accumulators
            "$abs",
            "$add",
            "$addToSet",
            "$and",
            "$arrayElemAt",
            "$arrayToObject",
            "$avg",
            "$bsonSize",
            "$ceil",
            "$cmp",
            "$concat",
            "$concatArrays",
            "$cond",
            "$convert",
            "$dateFromParts",
            "$dateFromString",
            "$dateToParts",
            "$dateToString",
            "$dayOfMonth",
            "$dayOfWeek",
            "$dayOfYear",
            "$divide",
            "$eq",
            "$exp",
            "$filter",
            "$first",
            "$floor",
            "$gt",
            "$gte",
            "$hour",
            "$ifNull",
            "$in",
            "$indexOfArray",
            "$indexOfBytes",
            "$indexOfCP",
            "$isArray",
            "$isNumber",
            "$isoDayOfWeek",
            "$isoWeek",
            "$isoWeekYear",
            "$last",
            "$let",
            "$literal",
            "$ln",
            "$log",
            "$log10",
            "$lt",
            "$lte",
            "$ltrim",
            "$map",
            "$max",
            "$mergeObjects",
            "$millisecond",
            "$min",
            "$minute",
            "$mod",
            "$month",
            "$multiply",
            "$ne",
            "$not",
            "$objectToArray",
            "$or",
            "$pow",
            "$push",
            "$rand",
            "$range",
            "$reduce",
            "$regexFind",
            "$regexFindAll",
            "$regexMatch",
            "$replaceAll",
            "$replaceOne",
            "$reverseArray",
            "$round",
            "$rtrim",
            "$second",
            "$setDifference",
            "$setEquals",
            "$setIntersection",
            "$setIsSubset",
            "$setUnion",
            "$size",
            "$slice",
            "$split",
            "$sqrt",
            "$stdDevPop",
            "$stdDevSamp",
            "$strLenBytes",
            "$strLenCP",
            "$strcasecmp",
            "$substrBytes",
            "$substrCP",
            "$subtract",
            "$sum",
            "$switch",
            "$toBool",
            "$toDate",
            "$toDecimal",
            "$toDouble",
            "$toInt",
            "$toLong",
            "$toLower",
            "$toObjectId",
            "$toString",
            "$toUpper",
            "$trim",
            "$trunc",
            "$type",
            "$week",
            "$year",
            "$zip",
            # trigonometry (4.2)
            "$sin",
            "$cos",
            "$tan",
            "$asin",
            "$acos",
            "$atan",
            "$atan2",
            "$degreesToRadians",
            "$radiansToDegrees",
            # query and update operators
            "$all",
            "$comment",
            "$elemMatch",
            "$exists",
            "$expr",
            "$inc",
            "$jsonSchema",  # CREATE TABLE's validator (3.6)
            "$nin",
            "$nor",
            "$pull",
            "$regex",
            "$setOnInsert",
            # a command's database (a field of every OP_MSG command, shown where it is not ours)
            "$db",
            # sort/hint on the natural (storage) order, e.g. the oldest oplog entry
            "$natural",
        ],
        EARLY,
    ),
    "$dateAdd": (5, 0),
    "$dateDiff": (5, 0),
    "$dateSubtract": (5, 0),
    "$dateTrunc": (5, 0),
    "$getField": (5, 0),
    "$setField": (5, 0),
    "$unsetField": (5, 0),
    "$setWindowFields": (5, 0),
    "$shift": (5, 0),
    "$rank": (5, 0),
    "$denseRank": (5, 0),
    "$documentNumber": (5, 0),
    "$covariancePop": (5, 0),
    "$covarianceSamp": (5, 0),
    "$derivative": (5, 0),
    "$expMovingAvg": (5, 0),
    "$integral": (5, 0),
    "$documents": (5, 1),
    "$densify": (5, 1),
    "$tsSecond": (5, 1),
    "$tsIncrement": (5, 1),
    "$sortArray": (5, 2),
    "$locf": (5, 2),
    "$top": (5, 2),
    "$bottom": (5, 2),
    "$topN": (5, 2),
    "$bottomN": (5, 2),
    "$firstN": (5, 2),
    "$lastN": (5, 2),
    "$maxN": (5, 2),
    "$minN": (5, 2),
    "$fill": (5, 3),
    "$linearFill": (5, 3),
    "$bitAnd": (6, 3),
    "$bitOr": (6, 3),
    "$bitXor": (6, 3),
    "$bitNot": (6, 3),
    "$median": (7, 0),
    "$percentile": (7, 0),
}

# System variables ($$NAME); lower-case ones are the query's own ($let, $lookup let, $map ...).
VARIABLES: dict[str, Version] = {
    "$$NOW": (4, 2),
    "$$CLUSTER_TIME": (4, 2),
    "$$ROOT": EARLY,
    "$$CURRENT": EARLY,
    "$$REMOVE": EARLY,
    "$$DESCEND": EARLY,
    "$$PRUNE": EARLY,
    "$$KEEP": EARLY,
    "$$USER_ROLES": (7, 0),
}

COMMANDS: dict[str, Version] = {
    **dict.fromkeys(
        [
            "aggregate",
            "find",
            "insert",
            "update",
            "delete",
            "create",
            "drop",
            "collMod",
            "createIndexes",
            "listCollections",
            "findAndModify",
            "count",
            "listIndexes",
            "listDatabases",
        ],
        EARLY,
    ),
    # transactions (replica sets: 4.0; the fields BEGIN shows ride on the first command)
    **dict.fromkeys(["startTransaction", "commitTransaction", "abortTransaction"], (4, 0)),
    "bulkWrite": (8, 0),
}

# Options of a stage or command that are newer than the stage itself.
OPTIONS: dict[str, Version] = {
    "$changeStream.fullDocumentBeforeChange": (6, 0),
    "$changeStream.showExpandedEvents": (6, 0),
    "update.sort": (8, 0),  # an update statement's sort
    "$getField.field expression": (7, 2),  # a field name that is not a constant string
    "$setField.field expression": (7, 2),
}


# ---------------------------------------------------------------- the minimum, from the doc


def _section() -> str:
    text = SEMANTICS.read_text(encoding="utf-8")
    assert "\n## MongoDB version\n" in text, "docs/semantics.md has no 'MongoDB version' section"
    return text.split("\n## MongoDB version\n", 1)[1].split("\n## ", 1)[0]


def _minimum() -> Version:
    found = re.search(r"needs \*\*MongoDB (\d+)\.(\d+) or later\*\*", _section())
    assert found, "the 'MongoDB version' section does not state the minimum"
    return int(found.group(1)), int(found.group(2))


def _allowed() -> dict[str, Version]:
    """The features the section names with their own, higher minimum."""
    return {
        name: (int(major), int(minor))
        for name, major, minor in re.findall(
            r"^- `([^`]+)` needs MongoDB (\d+)\.(\d+)", _section(), re.M
        )
    }


# ---------------------------------------------------------------- what a command uses


def features(command: dict[str, Any]) -> Iterator[tuple[str, Version | None]]:
    """(feature, the version that introduced it, or None when unknown) for everything
    ``command`` uses."""
    name = next(iter(command))
    yield name, COMMANDS.get(name)
    if name == "update":
        for statement in command.get("updates", []):
            if "sort" in statement:
                yield "update.sort", OPTIONS["update.sort"]
    if name == "insert":  # the documents are data: their keys are field names
        return
    yield from _walk(command)


def _walk(value: Any) -> Iterator[tuple[str, Version | None]]:
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            for key, item in v.items():
                if not key.startswith("$"):
                    stack.append(item)
                    continue
                yield key, OPERATORS.get(key)
                yield from _options(key, item)
                if key != "$literal":  # its argument is data
                    stack.append(item)
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, str) and (system := re.match(r"\$\$[A-Z_]+\b", v)):
            yield system.group(), VARIABLES.get(system.group())


def _options(operator: str, argument: Any) -> Iterator[tuple[str, Version | None]]:
    if operator == "$changeStream" and isinstance(argument, dict):
        for option in argument:
            key = f"$changeStream.{option}"
            if key in OPTIONS:
                yield key, OPTIONS[key]
    if operator in ("$getField", "$setField"):
        field = argument.get("field") if isinstance(argument, dict) else argument
        constant = (isinstance(field, str) and not field.startswith("$")) or (
            isinstance(field, dict)
            and set(field) == {"$literal"}
            and isinstance(field["$literal"], str)
        )
        if not constant:
            key = f"{operator}.field expression"
            yield key, OPTIONS[key]


def check(commands: list[dict[str, Any]], where: str) -> None:
    minimum, allowed = _minimum(), _allowed()
    for command in commands:
        for feature, version in features(command):
            assert version is not None, (
                f"{where}: {feature} is not in tests/test_min_version.py's tables; add it with "
                f"the version MongoDB's documentation gives"
            )
            if version > minimum:
                assert feature in allowed and allowed[feature] >= version, (
                    f"{where}: {feature} needs MongoDB {version[0]}.{version[1]}, newer than "
                    f"the minimum {minimum[0]}.{minimum[1]}; avoid it, or name it with its "
                    f"minimum in the 'MongoDB version' section of docs/semantics.md"
                )


def _commands(sql: str, params: Any = None) -> list[dict[str, Any]]:
    return plan_statement(parse(sql), params).commands()


# ---------------------------------------------------------------- the inputs


def _golden() -> list[tuple[str, str]]:
    return [
        (path.stem, json.loads(path.read_text())["sql"]) for path in sorted(GOLDEN.glob("*.json"))
    ]


def _reference() -> list[tuple[str, Any]]:
    """Every statement of the reference's ```sql blocks and of its translation tables."""
    text = reference._text()
    out: list[tuple[str, Any]] = []
    for block in reference._blocks(text):
        if block.group(1) != "sql":
            continue
        try:
            statements = parse_script(block.group(2))
        except QueryLeafError:
            continue  # a documented syntax error
        out.extend((s.text, reference._params(block.group(2))) for s in statements)
    for example, _ in reference._translation_rows(text):
        out.append(
            (example if reference._STATEMENT.match(example) else f"SELECT {example} FROM t", None)
        )
    return out


# ---------------------------------------------------------------- the tests


def test_the_minimum_is_6_0():
    assert _minimum() == (6, 0)


@pytest.mark.parametrize(("name", "sql"), _golden(), ids=[n for n, _ in _golden()])
def test_golden_plans(name, sql):
    check(_commands(sql), f"golden {name}")


def test_reference_examples():
    cases = _reference()
    assert len(cases) > 200
    planned = 0
    for sql, params in cases:
        try:
            commands = _commands(sql, params)
        except QueryLeafError:
            continue  # a documented error
        check(commands, sql)
        planned += 1
    assert planned > 150  # most examples plan (the rest are documented errors)


@settings(
    max_examples=200,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(queries())
def test_differential_sample(query):
    sql = query.render("ql", "t")
    check(_commands(sql), sql)


def test_operators_written_in_the_code():
    """Every operator a dict literal of the planner, the plans, the executor or the events
    runtime writes as a key: also those no example reaches."""
    minimum, allowed = _minimum(), _allowed()
    package = ROOT / "queryleaf"
    files = [
        *package.glob("planner/*.py"),
        *package.glob("events/*.py"),
        package / "plan.py",
        package / "executor.py",
    ]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Dict):
                continue
            for key in node.keys:
                if (
                    isinstance(key, ast.Constant)
                    and isinstance(key.value, str)
                    and re.fullmatch(r"\$[a-zA-Z]+", key.value)
                ):
                    where = f"{path.relative_to(ROOT)}:{key.lineno}"
                    version = OPERATORS.get(key.value)
                    assert version is not None, f"{where}: {key.value} is not in the table"
                    assert version <= minimum or allowed.get(key.value, (0, 0)) >= version, (
                        f"{where}: {key.value} needs MongoDB {version[0]}.{version[1]}"
                    )


def test_the_check_finds_newer_features():
    with pytest.raises(AssertionError, match=r"\$median needs MongoDB 7\.0"):
        check(
            [
                {
                    "aggregate": "t",
                    "pipeline": [
                        {
                            "$group": {
                                "_id": None,
                                "m": {"$median": {"input": "$a", "method": "approximate"}},
                            }
                        }
                    ],
                    "cursor": {},
                }
            ],
            "test",
        )
    with pytest.raises(AssertionError, match=r"\$getField\.field expression needs MongoDB 7\.2"):
        check(
            [
                {
                    "aggregate": "t",
                    "pipeline": [
                        {"$project": {"x": {"$getField": {"field": {"$concat": ["a", "b"]}}}}}
                    ],
                }
            ],
            "test",
        )
    with pytest.raises(AssertionError, match=r"\$\$USER_ROLES needs MongoDB 7\.0"):
        check([{"find": "t", "filter": {"$expr": {"$in": ["admin", "$$USER_ROLES.role"]}}}], "test")
    with pytest.raises(AssertionError, match=r"\$newThing is not in"):
        check([{"aggregate": "t", "pipeline": [{"$newThing": {}}]}], "test")
    # data is not an operator: inserted keys and $literal arguments
    check([{"insert": "t", "documents": [{"$weird": 1}]}], "test")
    check(
        [
            {
                "aggregate": "t",
                "pipeline": [
                    {"$project": {"x": {"$literal": {"$bitAnd": 1}}}},
                    {
                        "$project": {
                            "y": {"$getField": {"field": {"$literal": "$a"}, "input": "$$ROOT"}}
                        }
                    },
                ],
            }
        ],
        "test",
    )
