"""The server's account of a document a table's validator refused, in the table's terms.

A write that breaks a CREATE TABLE's ``$jsonSchema`` fails with code 121 ("Document failed
validation") and an ``errInfo`` naming the rules not satisfied; this turns it into the columns
at fault, e.g. ``column age: type did not match (got a string; the column takes int, long,
null)``, for the error message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DOCUMENT_VALIDATION_FAILURE = 121


def explain_validation(error: Mapping[str, Any]) -> str:
    """``errmsg`` of a server error (a write error or a command's reply), with the columns that
    broke the validator when it is a validation failure."""
    message = str(error.get("errmsg", "")).split(", full error:")[0]
    if error.get("code") != DOCUMENT_VALIDATION_FAILURE:
        return message
    details = (error.get("errInfo") or {}).get("details") or {}
    problems = [p for rule in details.get("schemaRulesNotSatisfied") or [] for p in _rule(rule)]
    return f"{message}: {'; '.join(problems)}" if problems else message


def _rule(rule: Mapping[str, Any]) -> list[str]:
    if rule.get("operatorName") == "required":
        missing = ", ".join(str(m) for m in rule.get("missingProperties") or [])
        return [f"NOT NULL column {missing} has no value"] if missing else []
    out = []
    for prop in rule.get("propertiesNotSatisfied") or []:
        for detail in prop.get("details") or [{}]:
            out.append(f"column {prop.get('propertyName')}: {_detail(detail)}")
    return out


def _detail(detail: Mapping[str, Any]) -> str:
    reason = str(detail.get("reason", "does not match the declared type"))
    specified = detail.get("specifiedAs") or {}
    if "bsonType" in specified:
        allowed = specified["bsonType"]
        takes = ", ".join(allowed) if isinstance(allowed, list) else str(allowed)
        got = detail.get("consideredType")
        return f"{reason} (got {'a ' + str(got) if got else 'a value'}; the column takes {takes})"
    if "maxLength" in specified:
        return f"{reason} (longer than {specified['maxLength']} characters)"
    return reason
